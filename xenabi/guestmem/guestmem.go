// Package guestmem is guest memory as the VMM sees it: regions of
// guest-physical address space backed by host mappings, bounds-checked
// accessors, atomic operations for the words that the guest and the VMM
// share (event-channel bitmaps, grant-entry flags, ring indices), and
// x86-64 page-table walks that translate guest-virtual addresses the way
// the guest's MMU does.
//
// Every accessor takes guest-supplied addresses and lengths and checks them;
// a bad one returns ErrFault (Xen's -EFAULT), never panics.
package guestmem

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// PageSize is the x86 base page size; PageShift its log2.
const (
	PageSize  = 4096
	PageShift = 12
)

// ErrFault means an address or length falls outside guest memory.
var ErrFault = errors.New("guestmem: bad guest address")

// FaultError is an ErrFault with the address that failed.
type FaultError struct {
	Addr, Len uint64
	What      string // "physical", or the guest-virtual access kind
}

func (e *FaultError) Error() string {
	return fmt.Sprintf("guestmem: %s access [%#x, +%#x) outside guest memory", e.What, e.Addr, e.Len)
}

// Is makes errors.Is(err, ErrFault) true.
func (e *FaultError) Is(target error) bool { return target == ErrFault }

// Region is a contiguous range of guest-physical memory [Base, Base+Size)
// backed by host memory.
type Region struct {
	base   uint64
	b      []byte
	mapped bool // b came from Map and must be unmapped
}

// Map creates a region of size bytes at guest-physical base backed by a
// fresh anonymous mapping (zero-filled, not reserved until touched).
func Map(base, size uint64) (*Region, error) {
	if size == 0 || size%PageSize != 0 || base%PageSize != 0 {
		return nil, fmt.Errorf("guestmem: region [%#x, +%#x) is not page-aligned", base, size)
	}
	b, err := unix.Mmap(-1, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return nil, fmt.Errorf("guestmem: map %d MiB: %w", size>>20, err)
	}
	return &Region{base: base, b: b, mapped: true}, nil
}

// FromBytes wraps b as a region at guest-physical base (for tests and
// for memory the caller manages).
func FromBytes(base uint64, b []byte) *Region { return &Region{base: base, b: b} }

// Close unmaps a region created by Map.
func (r *Region) Close() error {
	if !r.mapped || r.b == nil {
		return nil
	}
	err := unix.Munmap(r.b)
	r.b = nil
	return err
}

// Base is the region's first guest-physical address.
func (r *Region) Base() uint64 { return r.base }

// Size is the region's length in bytes.
func (r *Region) Size() uint64 { return uint64(len(r.b)) }

// Bytes is the backing memory (for registering a KVM memory slot).
func (r *Region) Bytes() []byte { return r.b }

// Slice returns the n bytes at guest-physical gpa, aliasing guest memory.
func (r *Region) Slice(gpa, n uint64) ([]byte, error) {
	if gpa < r.base || gpa-r.base > uint64(len(r.b)) || n > uint64(len(r.b))-(gpa-r.base) {
		return nil, &FaultError{Addr: gpa, Len: n, What: "physical"}
	}
	off := gpa - r.base
	return r.b[off : off+n : off+n], nil
}

// Space is the guest-physical address space: a set of non-overlapping
// regions (guest RAM, the VMM's own pages).
type Space struct {
	regions []*Region
}

// NewSpace returns a space made of the given regions.
func NewSpace(regions ...*Region) (*Space, error) {
	s := &Space{}
	for _, r := range regions {
		if err := s.Add(r); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Add adds a region; it must not overlap another.
func (s *Space) Add(r *Region) error {
	for _, o := range s.regions {
		if r.base < o.base+o.Size() && o.base < r.base+r.Size() {
			return fmt.Errorf("guestmem: region [%#x, +%#x) overlaps [%#x, +%#x)", r.base, r.Size(), o.base, o.Size())
		}
	}
	s.regions = append(s.regions, r)
	return nil
}

// Regions returns the regions in the order they were added.
func (s *Space) Regions() []*Region { return s.regions }

// Slice returns the n bytes at gpa; the range must lie in one region.
func (s *Space) Slice(gpa, n uint64) ([]byte, error) {
	for _, r := range s.regions {
		if gpa >= r.base && gpa-r.base < r.Size() {
			return r.Slice(gpa, n)
		}
	}
	return nil, &FaultError{Addr: gpa, Len: n, What: "physical"}
}

// Page returns the 4 KiB page of frame number pfn.
func (s *Space) Page(pfn uint64) ([]byte, error) {
	if pfn > (1<<52)>>PageShift {
		return nil, &FaultError{Addr: pfn << PageShift, Len: PageSize, What: "physical"}
	}
	return s.Slice(pfn<<PageShift, PageSize)
}

// Read copies len(p) bytes from gpa into p.
func (s *Space) Read(gpa uint64, p []byte) error {
	b, err := s.Slice(gpa, uint64(len(p)))
	if err != nil {
		return err
	}
	copy(p, b)
	return nil
}

// Write copies p to gpa.
func (s *Space) Write(gpa uint64, p []byte) error {
	b, err := s.Slice(gpa, uint64(len(p)))
	if err != nil {
		return err
	}
	copy(b, p)
	return nil
}

// Read64 reads a little-endian uint64 at gpa (not atomically).
func (s *Space) Read64(gpa uint64) (uint64, error) {
	b, err := s.Slice(gpa, 8)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

// Write64 writes a little-endian uint64 at gpa (not atomically).
func (s *Space) Write64(gpa, v uint64) error {
	b, err := s.Slice(gpa, 8)
	if err != nil {
		return err
	}
	binary.LittleEndian.PutUint64(b, v)
	return nil
}

// Read32 reads a little-endian uint32 at gpa (not atomically).
func (s *Space) Read32(gpa uint64) (uint32, error) {
	b, err := s.Slice(gpa, 4)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

// Write32 writes a little-endian uint32 at gpa (not atomically).
func (s *Space) Write32(gpa uint64, v uint32) error {
	b, err := s.Slice(gpa, 4)
	if err != nil {
		return err
	}
	binary.LittleEndian.PutUint32(b, v)
	return nil
}

// Zero clears n bytes at gpa.
func (s *Space) Zero(gpa, n uint64) error {
	b, err := s.Slice(gpa, n)
	if err != nil {
		return err
	}
	clear(b)
	return nil
}
