package ring

import (
	"testing"
)

// FuzzBack runs a program of backend operations against a page whose
// header and indices the "guest" (the fuzzer) rewrites at will. The
// backend must never panic, never hand out a slot outside the ring area,
// and keep its invariants: Pending <= Size, at most Size unanswered
// requests, and a sticky error once it reported one.
func FuzzBack(f *testing.F) {
	f.Add(uint16(4096), uint8(112), []byte{0, 1, 2, 3, 4, 5})
	f.Add(uint16(4096), uint8(12), []byte{0x10, 0xff, 0xff, 0xff, 0x7f, 1, 2, 3, 1, 2, 3})
	f.Add(uint16(200), uint8(16), []byte{0x40, 8, 0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 4})
	f.Add(uint16(64+16), uint8(16), []byte{0x30, 1, 0, 0, 0, 1, 2, 3, 5, 1})
	f.Fuzz(func(t *testing.T, pageLen uint16, slot uint8, prog []byte) {
		page := make([]byte, int(pageLen)&^3)
		b, err := NewBack(page, int(slot))
		if err != nil {
			if Size(len(page), int(slot)) != 0 {
				t.Fatalf("NewBack failed for a valid geometry: %v", err)
			}
			return
		}
		inRing := func(s []byte) {
			if len(s) != int(slot) {
				t.Fatalf("slot of %d bytes", len(s))
			}
		}
		var sawErr error
		for len(prog) > 0 {
			op := prog[0]
			prog = prog[1:]
			switch op & 0xf {
			case 0: // guest writes a header word
				if len(prog) < 4 {
					return
				}
				off := int(op>>4&3) * 4
				copy(page[off:off+4], prog[:4])
				prog = prog[4:]
			case 1:
				if s, ok := b.NextRequest(); ok {
					inRing(s)
				}
			case 2:
				if s := b.ResponseSlot(); s != nil {
					inRing(s)
				}
			case 3:
				b.PushResponses()
			case 4:
				b.FinalCheckForRequests()
			case 5:
				n, err := b.Pending()
				if n > b.Size() {
					t.Fatalf("Pending %d > Size %d", n, b.Size())
				}
				if sawErr != nil && err == nil {
					t.Fatal("error not sticky")
				}
				if err != nil {
					sawErr = err
				}
			case 6:
				if s, ok := b.PeekRequest(uint32(op >> 4)); ok {
					inRing(s)
				}
			case 7:
				b.SkipRequests(uint32(op >> 4))
			default:
				// guest fills slot bytes: harmless, but exercises aliasing
				if len(page) > HeaderSize {
					page[HeaderSize+int(op)%(len(page)-HeaderSize)] = op
				}
			}
			if b.Unanswered() > b.Size() {
				t.Fatalf("%d unanswered requests on a ring of %d", b.Unanswered(), b.Size())
			}
		}
	})
}

// FuzzFront is FuzzBack for the frontend end against a hostile backend.
func FuzzFront(f *testing.F) {
	f.Add([]byte{1, 1, 2, 0, 9, 0, 0, 0, 3, 3})
	f.Add([]byte{1, 2, 0, 1, 0, 0, 0, 3, 4, 3})
	f.Fuzz(func(t *testing.T, prog []byte) {
		page := make([]byte, 4096)
		fr, err := NewFront(page, 16)
		if err != nil {
			t.Fatal(err)
		}
		for len(prog) > 0 {
			op := prog[0]
			prog = prog[1:]
			switch op & 7 {
			case 0:
				if len(prog) < 4 {
					return
				}
				off := int(op>>3&3) * 4
				copy(page[off:off+4], prog[:4])
				prog = prog[4:]
			case 1:
				if s := fr.RequestSlot(); s != nil && len(s) != 16 {
					t.Fatal("bad slot")
				}
			case 2:
				fr.PushRequests()
			case 3:
				if s, ok := fr.NextResponse(); ok && len(s) != 16 {
					t.Fatal("bad slot")
				}
			case 4:
				fr.FinalCheckForResponses()
			case 5:
				if n, _ := fr.Pending(); n > fr.Size() {
					t.Fatalf("Pending %d", n)
				}
			}
			if fr.Outstanding() > fr.Size() {
				t.Fatalf("outstanding %d", fr.Outstanding())
			}
		}
	})
}
