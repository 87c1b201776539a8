package blkback

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// blkGetSize64 is ioctl(BLKGETSIZE64): a block device's size in bytes.
func blkGetSize64(fd int) (uint64, error) {
	var size uint64
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.BLKGETSIZE64, uintptr(unsafe.Pointer(&size)))
	if errno != 0 {
		return 0, errno
	}
	return size, nil
}

// blkDiscard is ioctl(BLKDISCARD or BLKSECDISCARD) of the byte range
// [off, off+n): the argument is a uint64[2] {start, length}.
func blkDiscard(fd int, req uint, off, n uint64) error {
	r := [2]uint64{off, n}
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(unsafe.Pointer(&r)))
	if errno != 0 {
		return errno
	}
	return nil
}

// isAligned reports whether b's first byte is at an address that is a
// multiple of align (a power of two). An empty slice is aligned.
func isAligned(b []byte, align int) bool {
	if len(b) == 0 {
		return true
	}
	return uintptr(unsafe.Pointer(unsafe.SliceData(b)))&uintptr(align-1) == 0
}

// alignSkip is how many bytes to skip from the start of b to reach an
// address that is a multiple of align.
func alignSkip(b []byte, align int) int {
	a := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	return int((uintptr(align) - a&uintptr(align-1)) & uintptr(align-1))
}
