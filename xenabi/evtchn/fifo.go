package evtchn

import (
	"github.com/xenvmm/xenvmm/xenabi/abi"
	"github.com/xenvmm/xenvmm/xenabi/guestmem"
)

// The FIFO ABI (xen/common/event_fifo.c; event_channel.h "FIFO-based event
// channel ABI"). Each port has a 32-bit event word in guest-provided event
// array pages: PENDING, MASKED, LINKED and BUSY bits and a 17-bit LINK to
// the next port of its queue. Each vCPU has a control block in a guest
// page with a READY bit and a HEAD port per priority queue (16 queues, 0
// the highest). The queue tails live here, as in Xen.

// fifoQueue is Xen's struct evtchn_fifo_queue; head is in the control
// block.
type fifoQueue struct {
	tail uint32
}

// fifoVCPU is Xen's struct evtchn_fifo_vcpu.
type fifoVCPU struct {
	cb []byte // struct evtchn_fifo_control_block; nil until init_control
	q  [abi.EVTCHN_FIFO_MAX_QUEUES]fifoQueue
}

// fifoDomain is Xen's struct evtchn_fifo_domain plus the per-vCPU state.
type fifoDomain struct {
	vcpus []fifoVCPU
	pages [][]byte // event_array; num_evtchns is len(pages)*eventWordsPerPage
}

// Bit operations on a guest event word or control-block word, atomic
// against the guest's locked instructions. A failed access (never
// expected: slices come checked from Guest.Page) reads as "bit set" for
// test-and-set so that nothing further is done.

func testBit32(b []byte, off uint64, bit uint) bool {
	w, err := guestmem.Load32(b, off)
	return err == nil && w&(1<<bit) != 0
}

func testAndSetBit32(b []byte, off uint64, bit uint) bool {
	m := uint32(1) << bit
	for {
		w, err := guestmem.Load32(b, off)
		if err != nil || w&m != 0 {
			return true
		}
		if ok, _ := guestmem.CAS32(b, off, w, w|m); ok {
			return false
		}
	}
}

func setBit32(b []byte, off uint64, bit uint) { testAndSetBit32(b, off, bit) }

func clearBit32(b []byte, off uint64, bit uint) {
	m := uint32(1) << bit
	for {
		w, err := guestmem.Load32(b, off)
		if err != nil || w&m == 0 {
			return
		}
		if ok, _ := guestmem.CAS32(b, off, w, w&^m); ok {
			return
		}
	}
}

// fifoWord is evtchn_fifo_word_from_port: the page and offset of port's
// event word, or ok false when no event array page covers it.
func (t *Table) fifoWord(port uint32) (page []byte, off uint64, ok bool) {
	f := t.fifo
	if uint64(port) >= uint64(len(f.pages))*eventWordsPerPage {
		return nil, 0, false
	}
	return f.pages[port/eventWordsPerPage], uint64(port%eventWordsPerPage) * eventWordSize, true
}

// fifoTryLink is try_set_link: set the LINK field of a LINKED word
// (clearing BUSY). 1: linked; 0: the word is no longer LINKED; -1: the
// guest changed the word meanwhile.
func fifoTryLink(b []byte, off uint64, link uint32) int {
	w, err := guestmem.Load32(b, off)
	if err != nil {
		return 1
	}
	if w&(1<<abi.EVTCHN_FIFO_LINKED) == 0 {
		return 0
	}
	nw := w&^(1<<abi.EVTCHN_FIFO_BUSY|abi.EVTCHN_FIFO_LINK_MASK) | link
	if ok, _ := guestmem.CAS32(b, off, w, nw); ok {
		return 1
	}
	return -1
}

// fifoSetLink is evtchn_fifo_set_link: link the tail word to port iff
// the tail is still LINKED. The guest may only set or clear MASKED, clear
// PENDING or clear LINKED on a linked word; setting BUSY keeps it from
// unmasking, so after one failed attempt at most four more are needed.
func fifoSetLink(b []byte, off uint64, link uint32) bool {
	if r := fifoTryLink(b, off, link); r >= 0 {
		return r == 1
	}
	setBit32(b, off, abi.EVTCHN_FIFO_BUSY)
	for try := 0; try < 4; try++ {
		if r := fifoTryLink(b, off, link); r >= 0 {
			if r == 0 {
				clearBit32(b, off, abi.EVTCHN_FIFO_BUSY)
			}
			return r == 1
		}
	}
	clearBit32(b, off, abi.EVTCHN_FIFO_BUSY)
	return true
}

// fifoSetPending is evtchn_fifo_set_pending: set PENDING; if the port is
// unmasked and not yet LINKED, append it to its queue on vcpu (the
// priority queue it was last on is forgotten if it moved), writing HEAD
// when the queue was empty, and then set the queue's READY bit and the
// upcall.
func (t *Table) fifoSetPending(vcpu, port uint32) {
	c := &t.ch[port]
	b, off, ok := t.fifoWord(port)
	if !ok {
		c.fifoPending = true // re-raised when the page is added
		return
	}
	fv := &t.fifo.vcpus[vcpu]
	q := &fv.q[c.priority]
	oldQ := &t.fifo.vcpus[c.lastVCPU].q[c.lastPrio]
	if fv.cb == nil {
		// The guest must not unmask an event before it sets up the
		// control block, so the event is dropped.
		return
	}
	checkPollers := !testAndSetBit32(b, off, abi.EVTCHN_FIFO_PENDING)
	linked := true
	if !testBit32(b, off, abi.EVTCHN_FIFO_MASKED) && !testAndSetBit32(b, off, abi.EVTCHN_FIFO_LINKED) {
		// If this event was a tail, the old queue is now empty and its
		// tail must not be linked to again.
		if oldQ.tail == port {
			oldQ.tail = 0
		}
		if oldQ != q {
			c.lastVCPU, c.lastPrio = vcpu, c.priority
		}
		linked = false
		if q.tail != 0 {
			if tb, toff, ok := t.fifoWord(q.tail); ok {
				linked = fifoSetLink(tb, toff, port)
			}
		}
		if !linked {
			guestmem.Store32(fv.cb, controlBlockHead+4*uint64(c.priority), port)
		}
		q.tail = port
	}
	if !linked && !testAndSetBit32(fv.cb, controlBlockReady, uint(c.priority)) {
		t.markEventsPending(vcpu)
	}
	if checkPollers {
		t.checkPollers(port)
	}
}

// fifoClearPending is evtchn_fifo_clear_pending: clear PENDING only; the
// guest unlinks and ignores events that are no longer pending.
func (t *Table) fifoClearPending(port uint32) {
	if b, off, ok := t.fifoWord(port); ok {
		clearBit32(b, off, abi.EVTCHN_FIFO_PENDING)
	}
}

// fifoUnmask is evtchn_fifo_unmask: clear MASKED and relink if pending.
func (t *Table) fifoUnmask(port uint32) {
	b, off, ok := t.fifoWord(port)
	if !ok {
		return
	}
	clearBit32(b, off, abi.EVTCHN_FIFO_MASKED)
	if testBit32(b, off, abi.EVTCHN_FIFO_PENDING) {
		t.fifoSetPending(t.ch[port].notify, port)
	}
}

func (t *Table) fifoIsPending(port uint32) bool {
	b, off, ok := t.fifoWord(port)
	return ok && testBit32(b, off, abi.EVTCHN_FIFO_PENDING)
}

func (t *Table) fifoIsMasked(port uint32) bool {
	b, off, ok := t.fifoWord(port)
	return !ok || testBit32(b, off, abi.EVTCHN_FIFO_MASKED)
}

// fifoIsBusy: a closed port still LINKED on a queue cannot be reused until
// the guest unlinks it.
func (t *Table) fifoIsBusy(port uint32) bool {
	b, off, ok := t.fifoWord(port)
	return ok && testBit32(b, off, abi.EVTCHN_FIFO_LINKED)
}

// InitControl is EVTCHNOP_init_control (evtchn_fifo_init_control): register
// vCPU a.VCPU's control block at a.Offset in guest frame a.ControlGFN and
// report EVTCHN_FIFO_LINK_BITS. The first success switches the domain
// from the 2-level ABI to FIFO: every port stays bound, takes the default
// priority, and keeps its 2-level pending state, which is raised on the
// FIFO queues once an event array page covers the port (ExpandArray).
func (t *Table) InitControl(a *InitControl) error {
	if t.cfg.NoFIFO {
		return abi.EOPNOTSUPP
	}
	if !t.validVCPU(a.VCPU) {
		return abi.ENOENT
	}
	if a.Offset > abi.XEN_PAGE_SIZE-ControlBlockSize || a.Offset&7 != 0 {
		return abi.EINVAL
	}
	t.lock()
	defer t.unlock()
	if t.fifo == nil {
		f := &fifoDomain{vcpus: make([]fifoVCPU, t.nvcpus)}
		if err := t.mapControlBlock(f, a); err != nil {
			return err
		}
		prev := t.maxEvtchns()
		t.fifo = f
		t.setupPorts(prev)
	} else if err := t.mapControlBlock(t.fifo, a); err != nil {
		return err
	}
	a.LinkBits = abi.EVTCHN_FIFO_LINK_BITS
	return nil
}

// mapControlBlock is map_control_block.
func (t *Table) mapControlBlock(f *fifoDomain, a *InitControl) error {
	fv := &f.vcpus[a.VCPU]
	if fv.cb != nil {
		return abi.EINVAL
	}
	page, err := t.g.Page(a.ControlGFN)
	if err != nil || len(page) < abi.XEN_PAGE_SIZE {
		return abi.EINVAL
	}
	fv.cb = page[a.Offset : a.Offset+ControlBlockSize : a.Offset+ControlBlockSize]
	return nil
}

// setupPorts is setup_ports: carry the 2-level pending bits of the ports
// below prev over as saved FIFO pending state, and give every port the
// default priority.
func (t *Table) setupPorts(prev uint32) {
	for port := uint32(1); port < prev && t.valid(port); port++ {
		c := &t.ch[port]
		if t.isPending2L(port) {
			c.fifoPending = true
		}
		c.priority = abi.EVTCHN_FIFO_PRIORITY_DEFAULT
	}
}

// ExpandArray is EVTCHNOP_expand_array (evtchn_fifo_expand_array): add
// guest frame gfn as the next event array page (1024 more ports), then
// raise the events that became pending while their ports had no event
// word. In the 2-level ABI it answers EOPNOTSUPP.
//
// Unlike Xen, which re-raises a saved pending state even for a port that
// was closed meanwhile and never forgets it, only ports still in use are
// re-raised and the saved state is cleared once raised.
func (t *Table) ExpandArray(gfn uint64) error {
	if t.cfg.NoFIFO {
		return abi.EOPNOTSUPP
	}
	t.lock()
	defer t.unlock()
	f := t.fifo
	if f == nil {
		return abi.EOPNOTSUPP
	}
	slot := len(f.pages)
	if slot >= maxEventArrayPages {
		return abi.ENOSPC
	}
	page, err := t.g.Page(gfn)
	if err != nil || len(page) < abi.XEN_PAGE_SIZE {
		return abi.EINVAL
	}
	f.pages = append(f.pages, page[:abi.XEN_PAGE_SIZE:abi.XEN_PAGE_SIZE])
	for port := uint32(slot * eventWordsPerPage); port < uint32(len(f.pages)*eventWordsPerPage) && t.valid(port); port++ {
		c := &t.ch[port]
		if c.fifoPending && c.usable() {
			c.fifoPending = false
			t.fifoSetPending(c.notify, port)
		}
	}
	return nil
}
