// Package ring is the shared I/O ring of Xen's split drivers, as
// xen/include/public/io/ring.h defines it with DEFINE_RING_TYPES: a page (or
// several contiguous pages) shared by a frontend in the guest and a backend
// in domain 0, holding
//
//	struct __name##_sring {
//	    RING_IDX req_prod, req_event;   // offsets 0, 4
//	    RING_IDX rsp_prod, rsp_event;   // offsets 8, 12
//	    union { ... uint8_t pvt_pad[4]; } pvt;  // offset 16
//	    uint8_t __pad[44];
//	    union __name##_sring_entry ring[];  // offset 64 (HeaderSize)
//	};
//
// followed by a power-of-two number of fixed-size slots, each holding a
// request or a response (the union of the protocol's request and response
// types). RING_IDX is a free-running unsigned 32-bit index; a slot is
// ring[idx & (size-1)].
//
// Back is the backend's end (struct __name##_back_ring and the RING_*
// macros a backend uses), Front the frontend's (for tests that play the
// guest). Both keep their private indices in Go memory and touch the shared
// indices only with atomic loads and stores (package guestmem): Go's atomics
// are sequentially consistent, so each one is also the xen_rmb/xen_wmb/xen_mb
// that ring.h places around it.
//
// The guest is untrusted: Back validates the producer index the guest
// publishes (RING_REQUEST_PROD_OVERFLOW) and, on the first violation, stops
// consuming for good (as Linux's blkback and netback halt a "bogus ring"),
// reporting an *IndexError. It never indexes outside the page it was given.
// The slot slices it hands out alias guest memory that the guest may change
// at any time: copy what you use before validating it (RING_COPY_REQUEST).
//
// A Back or Front is used by one goroutine at a time (the device's ring
// worker); the other end runs concurrently in the guest.
package ring

import (
	"errors"
	"fmt"

	"github.com/xenvmm/xenvmm/xenabi/guestmem"
)

// Offsets in struct __name##_sring (io/ring.h, x86).
const (
	offReqProd  = 0
	offReqEvent = 4
	offRspProd  = 8
	offRspEvent = 12
	offPvt      = 16

	// HeaderSize is offsetof(struct __name##_sring, ring): the slots start
	// 64 bytes into the shared page.
	HeaderSize = 64
)

// Sentinel errors.
var (
	// ErrGeometry: the page cannot hold a ring of the given slot size.
	ErrGeometry = errors.New("ring: page too small for the slot size")
	// ErrBadIndex: the other end published an impossible producer index.
	ErrBadIndex = errors.New("ring: bogus producer index")
)

// IndexError reports a producer index the other end cannot have written
// legitimately: more than Size unanswered requests (RING_REQUEST_PROD_OVERFLOW),
// more than Size unconsumed responses (RING_RESPONSE_PROD_OVERFLOW), or a
// producer that moved backwards past what was already consumed.
type IndexError struct {
	Field string // "req_prod" or "rsp_prod"
	Prod  uint32 // the index read from the shared page
	Cons  uint32 // our consumer index (req_cons or rsp_cons)
	Base  uint32 // the oldest index still owned by the producer side's peer (rsp_prod_pvt or rsp_cons)
	Size  uint32
}

func (e *IndexError) Error() string {
	return fmt.Sprintf("ring: bogus %s %#x (consumer %#x, base %#x, ring size %d)", e.Field, e.Prod, e.Cons, e.Base, e.Size)
}

// Is makes errors.Is(err, ErrBadIndex) true.
func (e *IndexError) Is(target error) bool { return target == ErrBadIndex }

// Size is __RING_SIZE: the number of slots of slotSize bytes that a shared
// ring of pageLen bytes holds, the largest power of two that fits after the
// 64-byte header; 0 if none fits.
func Size(pageLen, slotSize int) uint32 {
	if slotSize <= 0 || pageLen < HeaderSize+slotSize {
		return 0
	}
	n := uint64(pageLen-HeaderSize) / uint64(slotSize)
	if n > 1<<31 {
		n = 1 << 31
	}
	return rd32(uint32(n))
}

// rd32 is __RD32: round down to a power of two (0 stays 0).
func rd32(x uint32) uint32 {
	if x == 0 {
		return 0
	}
	for x&(x-1) != 0 {
		x &= x - 1
	}
	return x
}

// shared is the part common to both ends: the page and the geometry.
type shared struct {
	page []byte
	slot int
	size uint32
}

func newShared(page []byte, slotSize int) (shared, error) {
	n := Size(len(page), slotSize)
	if n == 0 {
		return shared{}, fmt.Errorf("%w: %d bytes, slot %d bytes", ErrGeometry, len(page), slotSize)
	}
	return shared{page: page, slot: slotSize, size: n}, nil
}

// load and store access a shared index. The offsets are constant and
// in-bounds (newShared checked len(page) > HeaderSize), so the only error
// guestmem can return, a misaligned slice, is impossible for a page the
// VMM maps; it reads as zero.
func (s *shared) load(off uint64) uint32 {
	v, _ := guestmem.Load32(s.page, off)
	return v
}

func (s *shared) store(off uint64, v uint32) { _ = guestmem.Store32(s.page, off, v) }

// at is the slot for free-running index idx (RING_GET_REQUEST /
// RING_GET_RESPONSE), capped so that appending cannot reach the next slot.
func (s *shared) at(idx uint32) []byte {
	off := HeaderSize + int(idx&(s.size-1))*s.slot
	return s.page[off : off+s.slot : off+s.slot]
}

// Back is the backend end of a shared ring of fixed-size request/response
// slots (struct __name##_back_ring): it consumes requests at req_cons and
// produces responses at rsp_prod_pvt.
type Back struct {
	shared
	reqCons    uint32 // next request to consume
	rspProdPvt uint32 // next response slot; published by PushResponses
	avail      uint32 // requests known valid beyond reqCons (from the last Pending)
	err        error  // sticky: the guest broke the protocol
}

// NewBack attaches to a shared ring that the frontend initialised
// (SHARED_RING_INIT, FRONT_RING_INIT): BACK_RING_INIT, with both private
// indices 0. slotSize is the size of the protocol's slot union, max(sizeof
// request, sizeof response) rounded up to its alignment; the ring size is
// __RING_SIZE of len(page).
func NewBack(page []byte, slotSize int) (*Back, error) {
	return AttachBack(page, slotSize, 0)
}

// AttachBack is BACK_RING_ATTACH: like NewBack, but both private indices
// start at idx, for a ring whose frontend started (or left off) there.
func AttachBack(page []byte, slotSize int, idx uint32) (*Back, error) {
	s, err := newShared(page, slotSize)
	if err != nil {
		return nil, err
	}
	return &Back{shared: s, reqCons: idx, rspProdPvt: idx}, nil
}

// Size is the number of slots (RING_SIZE).
func (b *Back) Size() uint32 { return b.size }

// SlotSize is the slot size given to NewBack.
func (b *Back) SlotSize() int { return b.slot }

// ReqCons is the index of the next request to consume (req_cons).
func (b *Back) ReqCons() uint32 { return b.reqCons }

// RspProdPvt is the index of the next response slot (rsp_prod_pvt).
func (b *Back) RspProdPvt() uint32 { return b.rspProdPvt }

// Err is the sticky protocol error: nil while the guest has behaved, an
// *IndexError once it published an impossible req_prod. After that the
// ring yields no more requests.
func (b *Back) Err() error { return b.err }

// Pending returns how many unconsumed requests there are
// (RING_HAS_UNCONSUMED_REQUESTS), validating req_prod first: a frontend
// can have at most Size requests without responses, so req_prod -
// rsp_prod_pvt > Size (RING_REQUEST_PROD_OVERFLOW), or a req_prod behind
// req_cons, is a broken guest. That returns an *IndexError (ErrBadIndex),
// now and on every later call.
func (b *Back) Pending() (uint32, error) {
	if b.err != nil {
		return 0, b.err
	}
	prod := b.load(offReqProd) // acquire: the slots are read after this (xen_rmb)
	inFlight := prod - b.rspProdPvt
	consumed := b.reqCons - b.rspProdPvt
	if inFlight > b.size || consumed > inFlight {
		b.err = &IndexError{Field: "req_prod", Prod: prod, Cons: b.reqCons, Base: b.rspProdPvt, Size: b.size}
		b.avail = 0
		return 0, b.err
	}
	b.avail = inFlight - consumed
	return b.avail, nil
}

// NextRequest returns the slot of the next request and advances req_cons
// (RING_GET_REQUEST at req_cons, then req_cons++). It returns false when
// no request is pending or the ring is broken (see Pending and Err). The
// slice aliases guest memory that the guest may rewrite at any moment:
// copy the fields you use (RING_COPY_REQUEST) before checking them.
func (b *Back) NextRequest() ([]byte, bool) {
	s, ok := b.PeekRequest(0)
	if !ok {
		return nil, false
	}
	b.reqCons++
	b.avail--
	return s, true
}

// PeekRequest returns the slot of the i-th unconsumed request (0 is the
// next one) without consuming it, for protocols whose requests span several
// slots (netif_tx_request fragments and extra-info slots), or false if
// fewer than i+1 requests are pending.
func (b *Back) PeekRequest(i uint32) ([]byte, bool) {
	if i >= b.avail {
		if n, err := b.Pending(); err != nil || i >= n {
			return nil, false
		}
	}
	return b.at(b.reqCons + i), true
}

// SkipRequests consumes n pending requests without looking at them (after
// PeekRequest). It returns false, consuming nothing, if fewer are pending.
func (b *Back) SkipRequests(n uint32) bool {
	if n > b.avail {
		if p, err := b.Pending(); err != nil || n > p {
			return false
		}
	}
	b.reqCons += n
	b.avail -= n
	return true
}

// ResponseSlot returns the slot at rsp_prod_pvt and advances it
// (RING_GET_RESPONSE at rsp_prod_pvt, then rsp_prod_pvt++). Every ring.h
// protocol answers each consumed request slot with exactly one response
// slot, so a response slot exists only for a consumed, unanswered
// request: with none outstanding ResponseSlot returns nil (a backend bug;
// writing to the result panics rather than overwrite a request the guest
// has not produced). The response is invisible to the guest until
// PushResponses.
func (b *Back) ResponseSlot() []byte {
	if b.rspProdPvt == b.reqCons {
		return nil
	}
	s := b.at(b.rspProdPvt)
	b.rspProdPvt++
	return s
}

// Unanswered is how many consumed requests await a response slot
// (req_cons - rsp_prod_pvt).
func (b *Back) Unanswered() uint32 { return b.reqCons - b.rspProdPvt }

// PushResponses publishes the responses written since the last push and
// says whether the frontend asked to be notified of them
// (RING_PUSH_RESPONSES_AND_CHECK_NOTIFY): rsp_prod is stored after the
// slots (xen_wmb), and rsp_event is read after rsp_prod is visible
// (xen_mb); notify is true when rsp_event lies in (old rsp_prod, new
// rsp_prod].
func (b *Back) PushResponses() (notify bool) {
	old := b.load(offRspProd)
	nw := b.rspProdPvt
	b.store(offRspProd, nw)
	ev := b.load(offRspEvent)
	return nw-ev < nw-old
}

// FinalCheckForRequests is RING_FINAL_CHECK_FOR_REQUESTS: if no request is
// pending it sets req_event to req_cons+1, so that the frontend notifies
// on its next request, and then checks again (closing the race with a
// request pushed in between). It returns whether there is work; false on
// a broken ring (check Err), so a worker loop sleeps instead of spinning.
func (b *Back) FinalCheckForRequests() (more bool) {
	if n, err := b.Pending(); err != nil || n > 0 {
		return err == nil
	}
	b.store(offReqEvent, b.reqCons+1)
	n, err := b.Pending()
	return err == nil && n > 0
}

// Front is the frontend end of a shared ring (struct
// __name##_front_ring), what a guest's driver does. xenvmm uses it to play
// the guest in tests of its backends. It validates the backend's rsp_prod
// as Back validates req_prod, so it is safe against garbage too.
type Front struct {
	shared
	reqProdPvt uint32
	rspCons    uint32
	avail      uint32
	err        error
}

// NewFront initialises the shared page and attaches to it
// (XEN_FRONT_RING_INIT: SHARED_RING_INIT then FRONT_RING_INIT): indices 0,
// req_event = rsp_event = 1, pad zeroed.
func NewFront(page []byte, slotSize int) (*Front, error) {
	return NewFrontAt(page, slotSize, 0)
}

// NewFrontAt is NewFront with every index starting at idx (the shared
// producers idx, the events idx+1, FRONT_RING_ATTACH at idx), to exercise
// index wraparound; a backend then attaches with AttachBack(page, slot, idx).
func NewFrontAt(page []byte, slotSize int, idx uint32) (*Front, error) {
	s, err := newShared(page, slotSize)
	if err != nil {
		return nil, err
	}
	f := &Front{shared: s, reqProdPvt: idx, rspCons: idx}
	clear(page[offPvt:HeaderSize])
	f.store(offReqProd, idx)
	f.store(offRspProd, idx)
	f.store(offReqEvent, idx+1)
	f.store(offRspEvent, idx+1)
	return f, nil
}

// Size is the number of slots (RING_SIZE).
func (f *Front) Size() uint32 { return f.size }

// Err is the sticky error set when the backend published a bogus rsp_prod.
func (f *Front) Err() error { return f.err }

// Free is RING_FREE_REQUESTS: slots the frontend may still fill.
func (f *Front) Free() uint32 { return f.size - (f.reqProdPvt - f.rspCons) }

// Full is RING_FULL.
func (f *Front) Full() bool { return f.Free() == 0 }

// RequestSlot returns the slot at req_prod_pvt and advances it, or nil if
// the ring is full. The request is invisible to the backend until
// PushRequests.
func (f *Front) RequestSlot() []byte {
	if f.Full() {
		return nil
	}
	s := f.at(f.reqProdPvt)
	f.reqProdPvt++
	return s
}

// PushRequests is RING_PUSH_REQUESTS_AND_CHECK_NOTIFY: it publishes
// req_prod and says whether the backend asked to be notified.
func (f *Front) PushRequests() (notify bool) {
	old := f.load(offReqProd)
	nw := f.reqProdPvt
	f.store(offReqProd, nw)
	ev := f.load(offReqEvent)
	return nw-ev < nw-old
}

// Pending returns how many unconsumed responses there are, validating
// rsp_prod (RING_RESPONSE_PROD_OVERFLOW: more responses than requests
// produced, or fewer than already consumed, is an *IndexError).
func (f *Front) Pending() (uint32, error) {
	if f.err != nil {
		return 0, f.err
	}
	prod := f.load(offRspProd)
	if prod-f.rspCons > f.reqProdPvt-f.rspCons {
		f.err = &IndexError{Field: "rsp_prod", Prod: prod, Cons: f.rspCons, Base: f.rspCons, Size: f.size}
		f.avail = 0
		return 0, f.err
	}
	f.avail = prod - f.rspCons
	return f.avail, nil
}

// NextResponse returns the slot of the next response and advances
// rsp_cons, or false if none is pending (or the ring is broken).
func (f *Front) NextResponse() ([]byte, bool) {
	if f.avail == 0 {
		if n, err := f.Pending(); err != nil || n == 0 {
			return nil, false
		}
	}
	s := f.at(f.rspCons)
	f.rspCons++
	f.avail--
	return s, true
}

// FinalCheckForResponses is RING_FINAL_CHECK_FOR_RESPONSES: with nothing
// pending, set rsp_event = rsp_cons+1 and check again.
func (f *Front) FinalCheckForResponses() (more bool) {
	if n, err := f.Pending(); err != nil || n > 0 {
		return err == nil
	}
	f.store(offRspEvent, f.rspCons+1)
	n, err := f.Pending()
	return err == nil && n > 0
}

// Outstanding is how many requests await their responses (req_prod_pvt -
// rsp_cons).
func (f *Front) Outstanding() uint32 { return f.reqProdPvt - f.rspCons }
