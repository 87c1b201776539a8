package loader

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error Load and LoadFile return is an *Error that
// wraps one of these (test with errors.Is).
var (
	// ErrNotPV: the kernel is a valid ELF or bzImage but cannot boot as a
	// Xen PV guest: it has no Xen ELF notes and no __xen_guest section, or
	// only the PVH entry point (XEN_ELFNOTE_PHYS32_ENTRY).
	ErrNotPV = errors.New("this kernel has no Xen PV support")
	// ErrUnsupported: the kernel is a Xen PV kernel of a kind xenvmm (or
	// Xen's domain builder) does not run: 32-bit non-PAE, a non-x86
	// machine, a dom0-only kernel, an unknown required feature, an
	// unsupported compression format.
	ErrUnsupported = errors.New("unsupported kernel")
	// ErrMalformed: the image is damaged or inconsistent (truncated
	// headers, offsets past the end of the file, a corrupt compressed
	// stream, addresses that fail Xen's elf_xen_addr_calc_check).
	ErrMalformed = errors.New("malformed kernel image")
	// ErrTooLarge: decompressing the image would exceed the size limit.
	ErrTooLarge = errors.New("decompressed kernel exceeds the size limit")
)

// Error is the error Load and LoadFile return: the kernel's path (or the
// name given to Load) and the reason, which wraps one of the sentinel
// errors.
type Error struct {
	Path string
	Err  error
}

func (e *Error) Error() string { return "loader: " + e.Path + ": " + e.Err.Error() }

// Unwrap returns the reason.
func (e *Error) Unwrap() error { return e.Err }

// reason is an error with its own text that wraps a sentinel without
// repeating the sentinel's text.
type reason struct {
	msg      string
	sentinel error
}

func (r *reason) Error() string { return r.msg }
func (r *reason) Unwrap() error { return r.sentinel }

func malformed(format string, args ...any) error {
	return &reason{fmt.Sprintf(format, args...), ErrMalformed}
}

func unsupported(format string, args ...any) error {
	return &reason{fmt.Sprintf(format, args...), ErrUnsupported}
}

func notPV(detail string) error {
	return &reason{ErrNotPV.Error() + " (" + detail + "); build it with CONFIG_XEN_PV=y", ErrNotPV}
}
