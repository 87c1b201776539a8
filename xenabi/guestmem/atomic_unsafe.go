package guestmem

import (
	"sync/atomic"
	"unsafe"
)

// Atomic operations on words of guest memory that the guest updates
// concurrently (with locked instructions on its vCPUs). They take a slice
// from Slice/Page so that the bounds are already checked, and an offset
// that must be naturally aligned; a misaligned or out-of-range offset
// returns ErrFault.

func word32(b []byte, off uint64) (*uint32, error) {
	if off%4 != 0 || off > uint64(len(b)) || uint64(len(b))-off < 4 {
		return nil, &FaultError{Addr: off, Len: 4, What: "atomic 32-bit"}
	}
	return (*uint32)(unsafe.Pointer(&b[off])), nil
}

func word64(b []byte, off uint64) (*uint64, error) {
	if off%8 != 0 || off > uint64(len(b)) || uint64(len(b))-off < 8 {
		return nil, &FaultError{Addr: off, Len: 8, What: "atomic 64-bit"}
	}
	return (*uint64)(unsafe.Pointer(&b[off])), nil
}

// Load32 atomically loads the uint32 at b[off:].
func Load32(b []byte, off uint64) (uint32, error) {
	p, err := word32(b, off)
	if err != nil {
		return 0, err
	}
	return atomic.LoadUint32(p), nil
}

// Store32 atomically stores v at b[off:].
func Store32(b []byte, off uint64, v uint32) error {
	p, err := word32(b, off)
	if err != nil {
		return err
	}
	atomic.StoreUint32(p, v)
	return nil
}

// Load64 atomically loads the uint64 at b[off:].
func Load64(b []byte, off uint64) (uint64, error) {
	p, err := word64(b, off)
	if err != nil {
		return 0, err
	}
	return atomic.LoadUint64(p), nil
}

// Store64 atomically stores v at b[off:].
func Store64(b []byte, off uint64, v uint64) error {
	p, err := word64(b, off)
	if err != nil {
		return err
	}
	atomic.StoreUint64(p, v)
	return nil
}

// Or64 atomically sets the bits of mask in the uint64 at b[off:] and
// returns the old value.
func Or64(b []byte, off uint64, mask uint64) (uint64, error) {
	p, err := word64(b, off)
	if err != nil {
		return 0, err
	}
	return atomic.OrUint64(p, mask), nil
}

// And64 atomically keeps only the bits of mask in the uint64 at b[off:]
// and returns the old value.
func And64(b []byte, off uint64, mask uint64) (uint64, error) {
	p, err := word64(b, off)
	if err != nil {
		return 0, err
	}
	return atomic.AndUint64(p, mask), nil
}

// CAS32 atomically replaces old with new in the uint32 at b[off:].
func CAS32(b []byte, off uint64, old, new uint32) (bool, error) {
	p, err := word32(b, off)
	if err != nil {
		return false, err
	}
	return atomic.CompareAndSwapUint32(p, old, new), nil
}

// Or8 atomically sets bits in the byte at b[off:] (through a CAS on its
// aligned 32-bit word) and returns the old byte.
func Or8(b []byte, off uint64, mask uint8) (uint8, error) {
	base := off &^ 3
	shift := (off & 3) * 8
	for {
		w, err := Load32(b, base)
		if err != nil {
			return 0, err
		}
		old := uint8(w >> shift)
		nw := w | uint32(mask)<<shift
		if ok, _ := CAS32(b, base, w, nw); ok {
			return old, nil
		}
	}
}

// And8 atomically keeps only the bits of mask in the byte at b[off:] and
// returns the old byte.
func And8(b []byte, off uint64, mask uint8) (uint8, error) {
	base := off &^ 3
	shift := (off & 3) * 8
	for {
		w, err := Load32(b, base)
		if err != nil {
			return 0, err
		}
		old := uint8(w >> shift)
		nw := w &^ (uint32(^mask) << shift)
		if ok, _ := CAS32(b, base, w, nw); ok {
			return old, nil
		}
	}
}

// Load8 atomically loads the byte at b[off:].
func Load8(b []byte, off uint64) (uint8, error) {
	w, err := Load32(b, off&^3)
	return uint8(w >> ((off & 3) * 8)), err
}

// Store8 atomically stores a byte at b[off:] (through a CAS on its
// aligned 32-bit word, so neighbouring bytes are not disturbed).
func Store8(b []byte, off uint64, v uint8) error {
	base := off &^ 3
	shift := (off & 3) * 8
	for {
		w, err := Load32(b, base)
		if err != nil {
			return err
		}
		nw := w&^(0xff<<shift) | uint32(v)<<shift
		if ok, _ := CAS32(b, base, w, nw); ok {
			return nil
		}
	}
}
