package guestmem

import (
	"errors"
	"testing"
)

func newSpace(t *testing.T, pages int) *Space {
	t.Helper()
	s, err := NewSpace(FromBytes(0, make([]byte, pages*PageSize)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSliceBounds(t *testing.T) {
	s := newSpace(t, 2)
	for _, tc := range []struct {
		gpa, n uint64
		ok     bool
	}{
		{0, 8192, true},
		{8191, 1, true},
		{8192, 0, false}, // address past the end
		{8190, 3, false},
		{0, 1 << 63, false},
		{1<<64 - 1, 2, false},
		{4096, 4096, true},
	} {
		_, err := s.Slice(tc.gpa, tc.n)
		if (err == nil) != tc.ok {
			t.Errorf("Slice(%#x, %#x) err=%v, want ok=%v", tc.gpa, tc.n, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrFault) {
			t.Errorf("Slice error %v is not ErrFault", err)
		}
	}
}

func TestOverlappingRegionsRejected(t *testing.T) {
	a := FromBytes(0, make([]byte, 8192))
	b := FromBytes(4096, make([]byte, 4096))
	if _, err := NewSpace(a, b); err == nil {
		t.Fatal("overlapping regions accepted")
	}
	c := FromBytes(1<<30, make([]byte, 4096))
	s, err := NewSpace(a, c)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Write64(1<<30+8, 0xabcdef); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Read64(1<<30 + 8); v != 0xabcdef {
		t.Fatalf("read back %#x", v)
	}
}

// buildTables maps va → frame with the given leaf flags through fresh
// tables in pages 1..3 of s (L4 at page 1).
func buildTables(t *testing.T, s *Space, va, frame, upper, leaf uint64) {
	t.Helper()
	l4, l3, l2, l1 := uint64(1), uint64(2), uint64(3), uint64(4)
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.Write64(l4<<12+((va>>39)&511)*8, l3<<12|upper))
	must(s.Write64(l3<<12+((va>>30)&511)*8, l2<<12|upper))
	must(s.Write64(l2<<12+((va>>21)&511)*8, l1<<12|upper))
	must(s.Write64(l1<<12+((va>>12)&511)*8, frame<<12|leaf))
}

func TestWalk(t *testing.T) {
	const va = 0xffffffff80201123
	for _, tc := range []struct {
		name        string
		upper, leaf uint64
		acc         Access
		user        bool
		wantErr     uint32 // 0: success
	}{
		{"user read", PTEPresent | PTEWrite | PTEUser, PTEPresent | PTEUser, AccessRead, true, 0},
		{"user write to RO", PTEPresent | PTEWrite | PTEUser, PTEPresent | PTEUser, AccessWrite, true, PFErrPresent | PFErrWrite | PFErrUser},
		{"supervisor write to RO (WP)", PTEPresent | PTEWrite, PTEPresent, AccessWrite, false, PFErrPresent | PFErrWrite},
		{"user read of supervisor page", PTEPresent | PTEWrite | PTEUser, PTEPresent, AccessRead, true, PFErrPresent | PFErrUser},
		{"not present", PTEPresent | PTEWrite | PTEUser, PTEUser, AccessRead, true, PFErrUser},
		{"fetch NX", PTEPresent | PTEWrite | PTEUser, PTEPresent | PTEUser | PTENX, AccessFetch, true, PFErrPresent | PFErrUser | PFErrFetch},
		{"upper level RO wins", PTEPresent | PTEUser, PTEPresent | PTEWrite | PTEUser, AccessWrite, true, PFErrPresent | PFErrWrite | PFErrUser},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSpace(t, 8)
			buildTables(t, s, va, 6, tc.upper, tc.leaf)
			tr, err := s.Walk(1<<12, va, tc.acc, tc.user)
			if tc.wantErr == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if tr.GPA != 6<<12|0x123 || tr.PageSize != 4096 {
					t.Fatalf("translation %+v", tr)
				}
				return
			}
			var pf *PageFault
			if !errors.As(err, &pf) || pf.ErrorCode != tc.wantErr || pf.Addr != va {
				t.Fatalf("err = %v, want #PF code %#x", err, tc.wantErr)
			}
		})
	}
}

func TestWalkLargePageAndNonCanonical(t *testing.T) {
	s := newSpace(t, 8)
	const va = 0x40212345
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.Write64(1<<12, 2<<12|PTEPresent|PTEWrite|PTEUser))
	must(s.Write64(2<<12+1*8, 3<<12|PTEPresent|PTEWrite|PTEUser))
	must(s.Write64(3<<12+1*8, 0x600000|PTEPresent|PTEWrite|PTEUser|PTEPSE))
	tr, err := s.Walk(1<<12, va, AccessRead, false)
	if err != nil {
		t.Fatal(err)
	}
	if tr.GPA != 0x600000|0x12345 || tr.PageSize != 2<<20 {
		t.Fatalf("2M translation %+v", tr)
	}
	if _, err := s.Walk(1<<12, 0x0000800000000000, AccessRead, false); err == nil {
		t.Fatal("non-canonical address translated")
	}
}

func TestCopyVirtAcrossPages(t *testing.T) {
	s := newSpace(t, 16)
	// Map two consecutive virtual pages to non-consecutive frames 9 and 7.
	const va = 0x7000
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.Write64(1<<12, 2<<12|7))
	must(s.Write64(2<<12, 3<<12|7))
	must(s.Write64(3<<12, 4<<12|7))
	must(s.Write64(4<<12+7*8, 9<<12|7))
	must(s.Write64(4<<12+8*8, 7<<12|7))
	msg := []byte("hello across the page boundary")
	if err := s.CopyToVirt(1<<12, va+PageSize-5, msg, true); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if err := s.CopyFromVirt(1<<12, va+PageSize-5, got, true); err != nil {
		t.Fatal(err)
	}
	if string(got) != string(msg) {
		t.Fatalf("got %q", got)
	}
	head, _ := s.Slice(9<<12+PageSize-5, 5)
	tail, _ := s.Slice(7<<12, 5)
	if string(head) != "hello" || string(tail) != " acro" {
		t.Fatalf("bytes landed at %q / %q", head, tail)
	}
	if err := s.CopyToVirt(1<<12, va+2*PageSize-2, msg, true); err == nil {
		t.Fatal("copy into an unmapped page succeeded")
	}
}

func TestAtomics(t *testing.T) {
	b := make([]byte, 64)
	if _, err := Or64(b, 8, 1<<5); err != nil {
		t.Fatal(err)
	}
	if old, _ := Or64(b, 8, 1<<6); old != 1<<5 {
		t.Fatalf("old = %#x", old)
	}
	if v, _ := Load64(b, 8); v != 1<<5|1<<6 {
		t.Fatalf("v = %#x", v)
	}
	if _, err := Or64(b, 4, 1); err == nil {
		t.Fatal("misaligned atomic accepted")
	}
	if _, err := Load64(b, 64); err == nil {
		t.Fatal("out-of-range atomic accepted")
	}
	b[5] = 0xaa
	if err := Store8(b, 6, 0x11); err != nil {
		t.Fatal(err)
	}
	if old, _ := Or8(b, 6, 0x80); old != 0x11 || b[6] != 0x91 || b[5] != 0xaa {
		t.Fatalf("byte ops: %x", b[4:8])
	}
	if old, _ := And8(b, 6, 0x0f); old != 0x91 || b[6] != 0x01 || b[5] != 0xaa {
		t.Fatalf("And8: %x", b[4:8])
	}
}
