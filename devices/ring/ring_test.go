package ring

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"
)

var le = binary.LittleEndian

func TestSize(t *testing.T) {
	tests := []struct {
		name       string
		page, slot int
		want       uint32
	}{
		{"blkif 4K", 4096, 112, 32},    // blkif_sring: 4032/112 = 36 -> 32
		{"netif tx 4K", 4096, 12, 256}, // 336 -> 256
		{"netif rx 4K", 4096, 8, 256},  // 504 -> 256
		{"64-byte slot", 4096, 64, 32}, // 63 -> 32
		{"exact power", 64 + 4*16, 16, 4},
		{"blkif 2 pages", 8192, 112, 64},
		{"blkif 16 pages", 65536, 112, 512},
		{"one slot", 64 + 100, 100, 1},
		{"header only", 64, 8, 0},
		{"too small", 70, 8, 0},
		{"zero slot", 4096, 0, 0},
		{"negative slot", 4096, -4, 0},
		{"empty page", 0, 8, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Size(tc.page, tc.slot); got != tc.want {
				t.Errorf("Size(%d, %d) = %d, want %d", tc.page, tc.slot, got, tc.want)
			}
			b, err := NewBack(make([]byte, tc.page), tc.slot)
			if tc.want == 0 {
				if !errors.Is(err, ErrGeometry) {
					t.Errorf("NewBack: err = %v, want ErrGeometry", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewBack: %v", err)
			}
			if b.Size() != tc.want {
				t.Errorf("Back.Size = %d, want %d", b.Size(), tc.want)
			}
		})
	}
}

func TestFrontInit(t *testing.T) {
	page := make([]byte, 4096)
	for i := range page {
		page[i] = 0xa5
	}
	f, err := NewFrontAt(page, 16, 0xfffffff0)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]uint32{offReqProd: 0xfffffff0, offReqEvent: 0xfffffff1, offRspProd: 0xfffffff0, offRspEvent: 0xfffffff1}
	for off, v := range want {
		if got := le.Uint32(page[off:]); got != v {
			t.Errorf("header word at %d = %#x, want %#x", off, got, v)
		}
	}
	for i := offPvt; i < HeaderSize; i++ {
		if page[i] != 0 {
			t.Fatalf("pad byte %d = %#x, want 0", i, page[i])
		}
	}
	if page[HeaderSize] != 0xa5 {
		t.Errorf("slots were touched by SHARED_RING_INIT")
	}
	if f.Free() != f.Size() || f.Full() {
		t.Errorf("fresh ring: Free %d Full %v", f.Free(), f.Full())
	}
}

// exchange drives a front and a back in lock step: batches of requests
// (each carrying its sequence number), answered with seq^mask, checking
// order, slot placement and notification decisions.
func TestExchange(t *testing.T) {
	tests := []struct {
		name    string
		page    int
		slot    int
		start   uint32
		batches []int // requests per batch; 0 = a batch the backend finds empty
	}{
		{"small batches", 4096, 112, 0, []int{1, 2, 3, 0, 5, 8, 13, 32, 1}},
		{"full ring", 4096, 112, 0, []int{32, 32, 32}},
		{"wrap at 2^32", 4096, 112, 0xffffffe0, []int{7, 32, 32, 1, 31, 5}},
		{"wrap mid-batch", 4096, 12, 0xffffff00, []int{255, 256, 3, 200}},
		{"multi-page", 16384, 112, 0xfffffff9, []int{128, 64, 1, 127}},
		{"one-slot ring", 64 + 16, 16, 0xfffffffe, []int{1, 1, 1, 1, 0, 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			page := make([]byte, tc.page)
			f, err := NewFrontAt(page, tc.slot, tc.start)
			if err != nil {
				t.Fatal(err)
			}
			b, err := AttachBack(page, tc.slot, tc.start)
			if err != nil {
				t.Fatal(err)
			}
			seq, got := uint64(0), uint64(0)
			backSleeping := true // req_event = start+1 asks for the first request
			for bi, n := range tc.batches {
				for i := 0; i < n; i++ {
					s := f.RequestSlot()
					if s == nil {
						t.Fatalf("batch %d: ring full after %d of %d", bi, i, n)
					}
					le.PutUint64(s, seq)
					seq++
				}
				notify := f.PushRequests()
				if want := backSleeping && n > 0; notify != want {
					t.Errorf("batch %d: front notify = %v, want %v", bi, notify, want)
				}
				p, err := b.Pending()
				if err != nil || p != uint32(n) {
					t.Fatalf("batch %d: Pending = %d, %v; want %d", bi, p, err, n)
				}
				for {
					r, ok := b.NextRequest()
					if !ok {
						break
					}
					v := le.Uint64(r)
					if v != got {
						t.Fatalf("request %d carries %d", got, v)
					}
					got++
					rs := b.ResponseSlot()
					le.PutUint64(rs, v^0xdeadbeef)
				}
				if b.Unanswered() != 0 {
					t.Fatalf("unanswered %d", b.Unanswered())
				}
				// The front consumed every earlier response and left
				// rsp_event at rsp_cons+1, so any new response notifies.
				if notify := b.PushResponses(); notify != (n > 0) {
					t.Errorf("batch %d: back notify = %v, want %v", bi, notify, n > 0)
				}
				backSleeping = !b.FinalCheckForRequests()
				if !backSleeping {
					t.Fatalf("batch %d: FinalCheck found work on an empty ring", bi)
				}
				for i := 0; i < n; i++ {
					r, ok := f.NextResponse()
					if !ok {
						t.Fatalf("batch %d: response %d missing", bi, i)
					}
					want := (got - uint64(n) + uint64(i)) ^ 0xdeadbeef
					if v := le.Uint64(r); v != want {
						t.Fatalf("response carries %#x, want %#x", v, want)
					}
				}
				if f.FinalCheckForResponses() {
					t.Fatalf("batch %d: spurious response", bi)
				}
				if f.Outstanding() != 0 || f.Free() != f.Size() {
					t.Fatalf("batch %d: outstanding %d free %d", bi, f.Outstanding(), f.Free())
				}
			}
			if got != seq {
				t.Errorf("backend saw %d requests, front sent %d", got, seq)
			}
			if want := tc.start + uint32(seq); b.ReqCons() != want || b.RspProdPvt() != want {
				t.Errorf("back indices %#x/%#x, want %#x", b.ReqCons(), b.RspProdPvt(), want)
			}
		})
	}
}

// TestNotifyHoldoff checks the req_event/rsp_event arithmetic of
// RING_PUSH_*_AND_CHECK_NOTIFY for events before, inside and after the
// pushed range, across the 2^32 wrap.
func TestNotifyHoldoff(t *testing.T) {
	tests := []struct {
		name          string
		start         uint32
		event         uint32 // rsp_event the frontend set
		pushed        int
		wantNotify    bool
		wantAfterMore bool // a second push of one more response
	}{
		{"event at first", 10, 11, 3, true, false},
		{"event at last", 10, 13, 3, true, false},
		{"event beyond", 10, 14, 3, false, true},
		{"event far beyond", 10, 40, 3, false, false},
		{"event already passed", 10, 10, 3, false, false},
		{"wrap event at first", 0xfffffffe, 0xffffffff, 4, true, false},
		{"wrap event after zero", 0xfffffffe, 1, 4, true, false},
		{"wrap event beyond", 0xfffffffe, 3, 4, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			page := make([]byte, 4096)
			f, _ := NewFrontAt(page, 16, tc.start)
			b, _ := AttachBack(page, 16, tc.start)
			for i := 0; i <= tc.pushed; i++ {
				f.RequestSlot()
			}
			f.PushRequests()
			for i := 0; i <= tc.pushed; i++ {
				b.NextRequest()
			}
			le.PutUint32(page[offRspEvent:], tc.event)
			for i := 0; i < tc.pushed; i++ {
				b.ResponseSlot()
			}
			if got := b.PushResponses(); got != tc.wantNotify {
				t.Errorf("notify = %v, want %v", got, tc.wantNotify)
			}
			b.ResponseSlot()
			if got := b.PushResponses(); got != tc.wantAfterMore {
				t.Errorf("second notify = %v, want %v", got, tc.wantAfterMore)
			}
			// Pushing nothing never notifies.
			if b.PushResponses() {
				t.Errorf("empty push notified")
			}
		})
	}
}

func TestFinalCheckSetsEvent(t *testing.T) {
	page := make([]byte, 4096)
	f, _ := NewFrontAt(page, 16, 0xffffffff)
	b, _ := AttachBack(page, 16, 0xffffffff)
	f.RequestSlot()
	f.RequestSlot()
	f.PushRequests()
	if !b.FinalCheckForRequests() {
		t.Fatal("FinalCheck missed 2 pending requests")
	}
	// With work pending, req_event is left alone.
	if ev := le.Uint32(page[offReqEvent:]); ev != 0 {
		t.Errorf("req_event = %#x, want untouched 0", ev)
	}
	b.NextRequest()
	b.NextRequest()
	if b.FinalCheckForRequests() {
		t.Fatal("FinalCheck on an empty ring")
	}
	if ev := le.Uint32(page[offReqEvent:]); ev != 2 {
		t.Errorf("req_event = %#x, want req_cons+1 = 2", ev)
	}
	f.RequestSlot()
	if !f.PushRequests() {
		t.Errorf("push after FinalCheck did not ask for a notification")
	}
}

func TestBogusReqProd(t *testing.T) {
	var start uint32 = 0xfffffff0
	tests := []struct {
		name     string
		consumed uint32 // requests consumed before the bad write (of 8 pushed)
		answered uint32
		reqProd  uint32 // minus start
		wantErr  bool
		want     uint32
	}{
		{"exactly full", 8, 8, 8 + 32, false, 32},
		{"full with unanswered", 8, 3, 3 + 32, false, 27},
		{"one past full", 8, 8, 8 + 33, true, 0},
		{"past full with unanswered", 8, 3, 3 + 33, true, 0},
		{"far ahead", 0, 0, 0x80000000, true, 0},
		{"behind req_cons", 8, 3, 5, true, 0},
		{"behind everything", 8, 8, 0xffffffff, true, 0},
		{"unchanged", 8, 8, 8, false, 0},
		{"at req_cons, rsp behind", 8, 0, 8, false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			page := make([]byte, 64+32*16)
			f, _ := NewFrontAt(page, 16, start)
			b, _ := AttachBack(page, 16, start)
			for i := 0; i < 8; i++ {
				f.RequestSlot()
			}
			f.PushRequests()
			for i := uint32(0); i < tc.consumed; i++ {
				if _, ok := b.NextRequest(); !ok {
					t.Fatal("NextRequest failed")
				}
			}
			for i := uint32(0); i < tc.answered; i++ {
				b.ResponseSlot()
			}
			b.PushResponses()
			bad := start + tc.reqProd
			le.PutUint32(page[offReqProd:], bad)
			n, err := b.Pending()
			if tc.wantErr {
				var ie *IndexError
				if !errors.As(err, &ie) || !errors.Is(err, ErrBadIndex) || ie.Prod != bad {
					t.Fatalf("Pending = %d, %v; want *IndexError for %#x", n, err, bad)
				}
				// Sticky: a repaired index does not revive the ring.
				le.PutUint32(page[offReqProd:], start+tc.consumed)
				if _, err := b.Pending(); err == nil {
					t.Error("error not sticky")
				}
				if _, ok := b.NextRequest(); ok {
					t.Error("NextRequest on a broken ring")
				}
				if b.FinalCheckForRequests() {
					t.Error("FinalCheck reports work on a broken ring")
				}
				if b.Err() == nil {
					t.Error("Err() = nil")
				}
				return
			}
			if err != nil || n != tc.want {
				t.Fatalf("Pending = %d, %v; want %d", n, err, tc.want)
			}
			for i := uint32(0); i < n; i++ {
				if _, ok := b.NextRequest(); !ok {
					t.Fatalf("NextRequest %d of %d failed", i, n)
				}
			}
			if _, ok := b.NextRequest(); ok {
				t.Fatal("NextRequest beyond Pending")
			}
		})
	}
}

func TestResponseSlotNeedsRequest(t *testing.T) {
	page := make([]byte, 4096)
	f, _ := NewFront(page, 16)
	b, _ := NewBack(page, 16)
	if s := b.ResponseSlot(); s != nil {
		t.Fatal("response slot with no request consumed")
	}
	f.RequestSlot()
	f.PushRequests()
	b.NextRequest()
	if s := b.ResponseSlot(); len(s) != 16 || cap(s) != 16 {
		t.Fatalf("response slot len %d cap %d", len(s), cap(s))
	}
	if s := b.ResponseSlot(); s != nil {
		t.Fatal("second response slot for one request")
	}
}

func TestPeekAndSkip(t *testing.T) {
	page := make([]byte, 4096)
	f, _ := NewFrontAt(page, 16, 0xfffffffd)
	b, _ := AttachBack(page, 16, 0xfffffffd)
	for i := 0; i < 5; i++ {
		le.PutUint32(f.RequestSlot(), uint32(100+i))
	}
	f.PushRequests()
	for i := uint32(0); i < 5; i++ {
		s, ok := b.PeekRequest(i)
		if !ok || le.Uint32(s) != 100+i {
			t.Fatalf("PeekRequest(%d) = %v, %v", i, s, ok)
		}
	}
	if _, ok := b.PeekRequest(5); ok {
		t.Fatal("PeekRequest beyond the producer")
	}
	if b.SkipRequests(6) {
		t.Fatal("SkipRequests(6) of 5")
	}
	if !b.SkipRequests(3) {
		t.Fatal("SkipRequests(3) failed")
	}
	s, ok := b.NextRequest()
	if !ok || le.Uint32(s) != 103 {
		t.Fatalf("after skip: %v %v", s, ok)
	}
	if b.Unanswered() != 4 {
		t.Fatalf("Unanswered = %d", b.Unanswered())
	}
}

func TestBogusRspProd(t *testing.T) {
	page := make([]byte, 4096)
	f, _ := NewFront(page, 16)
	for i := 0; i < 4; i++ {
		f.RequestSlot()
	}
	f.PushRequests()
	le.PutUint32(page[offRspProd:], 5)
	if _, err := f.Pending(); !errors.Is(err, ErrBadIndex) {
		t.Fatalf("Pending = %v, want ErrBadIndex", err)
	}
	if _, ok := f.NextResponse(); ok {
		t.Fatal("NextResponse on a broken ring")
	}
	if f.FinalCheckForResponses() {
		t.Fatal("FinalCheck on a broken ring")
	}
}

// TestConcurrent runs a frontend and a backend on separate goroutines
// with channels standing in for event channels, each end sleeping only
// after its final check, as real drivers do: no wake-up may be lost.
func TestConcurrent(t *testing.T) {
	const total = 200000
	page := make([]byte, 4096)
	f, _ := NewFrontAt(page, 16, 0xffff0000)
	b, _ := AttachBack(page, 16, 0xffff0000)
	toBack := make(chan struct{}, 1)
	toFront := make(chan struct{}, 1)
	kick := func(c chan struct{}) {
		select {
		case c <- struct{}{}:
		default:
		}
	}
	done := make(chan error, 1)
	go func() {
		served := uint64(0)
		for served < total {
			for {
				r, ok := b.NextRequest()
				if !ok {
					break
				}
				v := le.Uint64(r)
				if v != served {
					done <- errors.New("request out of order")
					return
				}
				served++
				le.PutUint64(b.ResponseSlot(), ^v)
			}
			if b.PushResponses() {
				kick(toFront)
			}
			if b.Err() != nil {
				done <- b.Err()
				return
			}
			if !b.FinalCheckForRequests() && served < total {
				<-toBack
			}
		}
		done <- nil
	}()
	sent, recv := uint64(0), uint64(0)
	timeout := time.After(60 * time.Second)
	for recv < total {
		n := 0
		for sent < total && n < 7 {
			s := f.RequestSlot()
			if s == nil {
				break
			}
			le.PutUint64(s, sent)
			sent++
			n++
		}
		if f.PushRequests() {
			kick(toBack)
		}
		for {
			r, ok := f.NextResponse()
			if !ok {
				break
			}
			if v := le.Uint64(r); v != ^recv {
				t.Fatalf("response %d = %#x", recv, v)
			}
			recv++
		}
		if f.Err() != nil {
			t.Fatal(f.Err())
		}
		if recv < total && (f.Full() || sent == total) && !f.FinalCheckForResponses() {
			select {
			case <-toFront:
			case <-timeout:
				t.Fatalf("lost wake-up: sent %d received %d", sent, recv)
			}
		}
	}
	t.Logf("sent %d received %d", sent, recv)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
