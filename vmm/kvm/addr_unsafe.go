package kvm

import "unsafe"

// addrOf returns the host virtual address of b's first byte, for
// UserspaceMemoryRegion.UserspaceAddr. b must stay mapped while the slot
// exists (guest memory is mmap'd, never Go-heap).
func addrOf(b []byte) uint64 { return uint64(uintptr(unsafe.Pointer(&b[0]))) }

// AddrOf is addrOf for other packages that register memory slots.
func AddrOf(b []byte) uint64 { return addrOf(b) }
