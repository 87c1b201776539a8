package blktest

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/xenvmm/xenvmm/devices/blkback"
	"github.com/xenvmm/xenvmm/devices/ring"
)

// ErrClosed: the Front was closed.
var ErrClosed = errors.New("blktest: front closed")

// Front is a blkfront: it owns the shared ring page (granted to the
// backend as RingRef), puts requests on the ring, kicks the backend when
// the ring asks for it, and collects responses on its own goroutine when
// the backend notifies it. It checks every response: the id must be one
// of its requests still unanswered, the operation the request's, the
// status one of BLKIF_RSP_*; a violation is kept in ProtocolErr.
type Front struct {
	Mem      *Memory
	Protocol blkback.Protocol
	RingRef  uint32
	// NoClear leaves read pages as they were instead of zeroing them
	// before the request (benchmarks).
	NoClear bool

	ringPage int
	kick     func()
	notifyC  chan struct{}
	stop     chan struct{}
	done     chan struct{}

	mu      sync.Mutex
	space   sync.Cond // signalled when responses free ring slots
	ring    *ring.Front
	nextID  uint64
	pending map[uint64]pendingReq
	closed  bool
	protErr error
	kicks   int
	raw     int // raw requests unanswered
}

type pendingReq struct {
	op uint8
	c  chan blkback.Response
}

// NewFront allocates and initialises a ring page in mem for protocol p.
// kick is called when the backend must be notified (the event channel);
// SetKick may set it later.
func NewFront(mem *Memory, p blkback.Protocol, kick func()) (*Front, error) {
	pg, err := mem.Alloc()
	if err != nil {
		return nil, err
	}
	r, err := ring.NewFront(mem.Page(pg), p.SlotSize())
	if err != nil {
		mem.Free(pg)
		return nil, err
	}
	f := &Front{
		Mem: mem, Protocol: p, ringPage: pg, kick: kick,
		RingRef: mem.Grant(pg, false),
		notifyC: make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		ring:    r,
		nextID:  0x1234_0000_0000_0000,
		pending: map[uint64]pendingReq{},
	}
	f.space.L = &f.mu
	go f.collect()
	return f, nil
}

// RingPage is the shared ring page (what the backend maps).
func (f *Front) RingPage() []byte { return f.Mem.Page(f.ringPage) }

// SetKick sets the function that notifies the backend.
func (f *Front) SetKick(kick func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.kick = kick
}

// Notify is the backend's event: call it from the backend's notify.
func (f *Front) Notify() {
	select {
	case f.notifyC <- struct{}{}:
	default:
	}
}

// Kicks is how many times the front notified the backend.
func (f *Front) Kicks() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.kicks
}

// ProtocolErr is the first bad response seen, or nil.
func (f *Front) ProtocolErr() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.protErr
}

// Outstanding is how many requests await responses.
func (f *Front) Outstanding() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.pending) + f.raw
}

// WaitIdle waits until every request has been answered or the deadline
// channel fires; it reports whether all were answered.
func (f *Front) WaitIdle(deadline <-chan time.Time) bool {
	for {
		if f.Outstanding() == 0 {
			return true
		}
		select {
		case <-deadline:
			return false
		case <-time.After(time.Millisecond):
		}
	}
}

// Close stops the collector. Requests still pending never complete.
func (f *Front) Close() {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return
	}
	f.closed = true
	f.space.Broadcast()
	f.mu.Unlock()
	close(f.stop)
	<-f.done
}

// Submit puts r on the ring with a fresh id (returned in r's response),
// waiting while the ring is full, and kicks the backend if it asked to
// be notified. The channel receives the response.
func (f *Front) Submit(r blkback.Request) (<-chan blkback.Response, error) {
	f.mu.Lock()
	for f.ring.Full() && !f.closed {
		f.space.Wait()
	}
	if f.closed {
		f.mu.Unlock()
		return nil, ErrClosed
	}
	r.ID = f.nextID
	f.nextID++
	c := make(chan blkback.Response, 1)
	f.pending[r.ID] = pendingReq{op: r.DataOp(), c: c}
	if err := r.Encode(f.Protocol, f.ring.RequestSlot()); err != nil {
		f.mu.Unlock()
		return nil, err
	}
	notify := f.ring.PushRequests()
	kick := f.kick
	if notify {
		f.kicks++
	}
	f.mu.Unlock()
	if notify && kick != nil {
		kick()
	}
	return c, nil
}

// SubmitRaw puts a raw slot on the ring (the fuzzer's garbage); its
// response may carry any id. Outstanding counts it until answered.
func (f *Front) SubmitRaw(slot []byte) error {
	f.mu.Lock()
	for f.ring.Full() && !f.closed {
		f.space.Wait()
	}
	if f.closed {
		f.mu.Unlock()
		return ErrClosed
	}
	s := f.ring.RequestSlot()
	clear(s)
	copy(s, slot)
	f.raw++
	notify := f.ring.PushRequests()
	kick := f.kick
	f.mu.Unlock()
	if notify && kick != nil {
		kick()
	}
	return nil
}

// Do submits r and waits for its response.
func (f *Front) Do(r blkback.Request) (blkback.Response, error) {
	c, err := f.Submit(r)
	if err != nil {
		return blkback.Response{}, err
	}
	select {
	case rsp := <-c:
		return rsp, nil
	case <-f.stop:
		return blkback.Response{}, ErrClosed
	}
}

// collect consumes responses whenever the backend notifies.
func (f *Front) collect() {
	defer close(f.done)
	for {
		select {
		case <-f.notifyC:
		case <-f.stop:
			return
		}
		f.mu.Lock()
		for {
			for {
				slot, ok := f.ring.NextResponse()
				if !ok {
					break
				}
				f.deliver(slot)
			}
			if !f.ring.FinalCheckForResponses() {
				break
			}
		}
		if err := f.ring.Err(); err != nil && f.protErr == nil {
			f.protErr = err
		}
		f.space.Broadcast()
		f.mu.Unlock()
	}
}

// deliver matches one response to its request; f.mu is held.
func (f *Front) deliver(slot []byte) {
	rsp, err := blkback.ParseResponse(f.Protocol, slot)
	if err != nil {
		f.fail(err)
		return
	}
	if rsp.Status != blkback.RspOkay && rsp.Status != blkback.RspError && rsp.Status != blkback.RspEOPNOTSUPP {
		f.fail(fmt.Errorf("response %#x: status %d", rsp.ID, rsp.Status))
	}
	p, ok := f.pending[rsp.ID]
	if !ok {
		// A raw request's response may carry any id.
		if f.raw > 0 {
			f.raw--
			return
		}
		f.fail(fmt.Errorf("response for unknown id %#x", rsp.ID))
		return
	}
	delete(f.pending, rsp.ID)
	if p.op != rsp.Operation {
		f.fail(fmt.Errorf("response %#x: operation %d, request's %d", rsp.ID, rsp.Operation, p.op))
	}
	p.c <- rsp
}

func (f *Front) fail(err error) {
	if f.protErr == nil {
		f.protErr = err
	}
}
