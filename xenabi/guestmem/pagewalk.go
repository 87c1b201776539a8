package guestmem

import "fmt"

// x86-64 page-table entry bits (Intel SDM vol. 3 §4.5; Xen's _PAGE_*).
const (
	PTEPresent  = 1 << 0
	PTEWrite    = 1 << 1
	PTEUser     = 1 << 2
	PTEPWT      = 1 << 3
	PTEPCD      = 1 << 4
	PTEAccessed = 1 << 5
	PTEDirty    = 1 << 6
	PTEPSE      = 1 << 7 // large page in L2/L3; PAT in L1
	PTEGlobal   = 1 << 8
	PTEAvail    = 7 << 9
	PTENX       = 1 << 63

	// PTEAddrMask selects the frame address bits of an entry (bits 12-51).
	PTEAddrMask = 0x000ffffffffff000
)

// Page-fault error code bits (#PF), as the CPU reports them and as Xen
// reflects them to a PV guest.
const (
	PFErrPresent = 1 << 0
	PFErrWrite   = 1 << 1
	PFErrUser    = 1 << 2
	PFErrRsvd    = 1 << 3
	PFErrFetch   = 1 << 4
)

// Access is what a translation is for.
type Access uint8

const (
	AccessRead Access = iota
	AccessWrite
	AccessFetch
)

// PageFault is a failed guest-virtual translation: the address and the
// #PF error code the CPU would report for it.
type PageFault struct {
	Addr      uint64
	ErrorCode uint32
}

func (e *PageFault) Error() string {
	return fmt.Sprintf("guestmem: page fault at %#x (error code %#x)", e.Addr, e.ErrorCode)
}

// Is makes errors.Is(err, ErrFault) true.
func (e *PageFault) Is(target error) bool { return target == ErrFault }

// Canonical reports whether va is a canonical 48-bit address.
func Canonical(va uint64) bool {
	top := va >> 47
	return top == 0 || top == 0x1ffff
}

// Translation is the result of a successful walk.
type Translation struct {
	GPA uint64 // guest-physical address of va
	// Flags are the effective permissions: PTEWrite and PTEUser set only if
	// set at every level, PTENX if set at any level.
	Flags uint64
	// PageSize is 4 KiB, 2 MiB or 1 GiB.
	PageSize uint64
	// LeafGPA is the guest-physical address of the leaf entry.
	LeafGPA uint64
}

// Walk translates va through the 4-level page tables rooted at cr3 for
// the given access by code at privilege user (CPL3) or supervisor, with
// CR0.WP set and EFER.NXE set. It does not set accessed/dirty bits.
func (s *Space) Walk(cr3, va uint64, acc Access, user bool) (Translation, error) {
	errCode := uint32(0)
	if acc == AccessWrite {
		errCode |= PFErrWrite
	}
	if acc == AccessFetch {
		errCode |= PFErrFetch
	}
	if user {
		errCode |= PFErrUser
	}
	if !Canonical(va) {
		return Translation{}, &PageFault{Addr: va, ErrorCode: errCode}
	}
	table := cr3 & PTEAddrMask
	flags := uint64(PTEWrite | PTEUser)
	for level := 4; level >= 1; level-- {
		shift := uint(12 + 9*(level-1))
		idx := (va >> shift) & 511
		entGPA := table + idx*8
		ent, err := s.Read64(entGPA)
		if err != nil {
			return Translation{}, &PageFault{Addr: va, ErrorCode: errCode | PFErrRsvd}
		}
		if ent&PTEPresent == 0 {
			return Translation{}, &PageFault{Addr: va, ErrorCode: errCode}
		}
		flags &= ent | ^uint64(PTEWrite|PTEUser)
		flags |= ent & PTENX
		if (level == 2 || level == 3) && ent&PTEPSE != 0 || level == 1 {
			size := uint64(1) << shift
			t := Translation{
				GPA:      (ent&PTEAddrMask)&^(size-1) | va&(size-1),
				Flags:    flags,
				PageSize: size,
				LeafGPA:  entGPA,
			}
			errCode |= PFErrPresent
			switch {
			case user && flags&PTEUser == 0,
				acc == AccessWrite && flags&PTEWrite == 0,
				acc == AccessFetch && flags&PTENX != 0:
				return Translation{}, &PageFault{Addr: va, ErrorCode: errCode}
			}
			return t, nil
		}
		table = ent & PTEAddrMask
	}
	panic("unreachable")
}

// VirtSlice returns the bytes at guest-virtual va..va+n, which must not
// cross a page boundary, translated for acc as user or supervisor.
func (s *Space) VirtSlice(cr3, va, n uint64, acc Access, user bool) ([]byte, error) {
	if n == 0 {
		return nil, nil
	}
	if n > PageSize || (va&(PageSize-1))+n > PageSize {
		return nil, &FaultError{Addr: va, Len: n, What: "page-crossing virtual"}
	}
	t, err := s.Walk(cr3, va, acc, user)
	if err != nil {
		return nil, err
	}
	return s.Slice(t.GPA, n)
}

// CopyFromVirt copies len(p) bytes from guest-virtual va, page by page.
func (s *Space) CopyFromVirt(cr3, va uint64, p []byte, user bool) error {
	for len(p) > 0 {
		n := min(uint64(len(p)), PageSize-(va&(PageSize-1)))
		b, err := s.VirtSlice(cr3, va, n, AccessRead, user)
		if err != nil {
			return err
		}
		copy(p, b)
		p = p[n:]
		va += n
	}
	return nil
}

// CopyToVirt copies p to guest-virtual va, page by page. On a fault the
// bytes before the faulting page have been written.
func (s *Space) CopyToVirt(cr3, va uint64, p []byte, user bool) error {
	for len(p) > 0 {
		n := min(uint64(len(p)), PageSize-(va&(PageSize-1)))
		b, err := s.VirtSlice(cr3, va, n, AccessWrite, user)
		if err != nil {
			return err
		}
		copy(b, p)
		p = p[n:]
		va += n
	}
	return nil
}
