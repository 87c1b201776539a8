package evtchn

import (
	"reflect"
	"sync"
	"testing"

	"github.com/xenvmm/xenvmm/xenabi/abi"
	"github.com/xenvmm/xenvmm/xenabi/guestmem"
)

// fifoGuest is the guest half of the FIFO ABI, written after Linux's
// drivers/xen/events/events_fifo.c: control block setup, event array
// pages initialised to MASKED, clear_masked and the unmask hypercall, and
// consume_one_event's queue walk.
type fifoGuest struct {
	t     *testing.T
	tb    *Table
	g     *fakeGuest
	cb    map[int][]byte
	heads map[int]*[abi.EVTCHN_FIFO_MAX_QUEUES]uint32
	array [][]byte
	next  uint64 // next free gfn
}

func newFIFOGuest(t *testing.T, tb *Table, g *fakeGuest) *fifoGuest {
	return &fifoGuest{t: t, tb: tb, g: g, cb: map[int][]byte{}, heads: map[int]*[abi.EVTCHN_FIFO_MAX_QUEUES]uint32{}, next: 0x100}
}

// initControl is init_control_block for vcpu (offset 8, to exercise it).
func (f *fifoGuest) initControl(vcpu int) {
	f.t.Helper()
	gfn := f.next
	f.next++
	page := f.g.addPage(gfn)
	var out InitControl
	if rc := call(f.t, f.tb, abi.EVTCHNOP_init_control, &InitControl{ControlGFN: gfn, Offset: 8, VCPU: uint32(vcpu)}, &out); rc != 0 {
		f.t.Fatalf("init_control(%d): %d", vcpu, rc)
	}
	if out.LinkBits != abi.EVTCHN_FIFO_LINK_BITS {
		f.t.Fatalf("link_bits %d", out.LinkBits)
	}
	f.cb[vcpu] = page[8 : 8+ControlBlockSize]
	f.heads[vcpu] = new([abi.EVTCHN_FIFO_MAX_QUEUES]uint32)
}

// expand is evtchn_fifo_setup's loop body: a page of MASKED words.
func (f *fifoGuest) expand() {
	f.t.Helper()
	gfn := f.next
	f.next++
	page := f.g.addPage(gfn)
	for i := 0; i < eventWordsPerPage; i++ {
		le.PutUint32(page[4*i:], 1<<abi.EVTCHN_FIFO_MASKED)
	}
	if rc := call(f.t, f.tb, abi.EVTCHNOP_expand_array, &ExpandArray{ArrayGFN: gfn}, nil); rc != 0 {
		f.t.Fatalf("expand_array: %d", rc)
	}
	f.array = append(f.array, page)
}

func (f *fifoGuest) word(port uint32) ([]byte, uint64) {
	return f.array[port/eventWordsPerPage], uint64(port%eventWordsPerPage) * 4
}

func (f *fifoGuest) load(port uint32) uint32 {
	b, off := f.word(port)
	w, _ := guestmem.Load32(b, off)
	return w
}

func (f *fifoGuest) has(port uint32, bit uint) bool { return f.load(port)&(1<<bit) != 0 }

func (f *fifoGuest) update(port uint32, fn func(uint32) (uint32, bool)) uint32 {
	b, off := f.word(port)
	for {
		w, _ := guestmem.Load32(b, off)
		nw, ok := fn(w)
		if !ok {
			continue
		}
		if done, _ := guestmem.CAS32(b, off, w, nw); done {
			return w
		}
	}
}

// unmask is evtchn_fifo_unmask: clear_masked (waiting while BUSY), then
// the hypercall if pending.
func (f *fifoGuest) unmask(port uint32) {
	f.update(port, func(w uint32) (uint32, bool) {
		return w &^ (1 << abi.EVTCHN_FIFO_MASKED), w&(1<<abi.EVTCHN_FIFO_BUSY) == 0
	})
	if f.has(port, abi.EVTCHN_FIFO_PENDING) {
		if rc := call(f.t, f.tb, abi.EVTCHNOP_unmask, &Unmask{Port: port}, nil); rc != 0 {
			f.t.Fatalf("unmask: %d", rc)
		}
	}
}

func (f *fifoGuest) mask(port uint32) {
	f.update(port, func(w uint32) (uint32, bool) { return w | 1<<abi.EVTCHN_FIFO_MASKED, true })
}

func (f *fifoGuest) xchgReady(vcpu int) uint32 {
	cb := f.cb[vcpu]
	for {
		r, _ := guestmem.Load32(cb, controlBlockReady)
		if ok, _ := guestmem.CAS32(cb, controlBlockReady, r, 0); ok {
			return r
		}
	}
}

func (f *fifoGuest) orReady(vcpu int, bits uint32) {
	cb := f.cb[vcpu]
	for {
		r, _ := guestmem.Load32(cb, controlBlockReady)
		if ok, _ := guestmem.CAS32(cb, controlBlockReady, r, r|bits); ok {
			return
		}
	}
}

// consumeOne is consume_one_event: take the queue's head, unlink it, and
// report it if pending and unmasked (clearing PENDING as the handler's
// ack does).
func (f *fifoGuest) consumeOne(vcpu int, q uint32, ready *uint32) (uint32, bool) {
	head := f.heads[vcpu][q]
	if head == 0 {
		head, _ = guestmem.Load32(f.cb[vcpu], controlBlockHead+4*uint64(q))
	}
	port := head
	old := f.update(port, func(w uint32) (uint32, bool) {
		return w &^ (1<<abi.EVTCHN_FIFO_LINKED | abi.EVTCHN_FIFO_LINK_MASK), true
	})
	head = old & abi.EVTCHN_FIFO_LINK_MASK
	if head == 0 {
		*ready &^= 1 << q
	}
	f.heads[vcpu][q] = head
	if old&(1<<abi.EVTCHN_FIFO_PENDING) != 0 && old&(1<<abi.EVTCHN_FIFO_MASKED) == 0 {
		f.update(port, func(w uint32) (uint32, bool) { return w &^ (1 << abi.EVTCHN_FIFO_PENDING), true })
		return port, true
	}
	return port, false
}

// handle is __evtchn_fifo_handle_events: the ports handled, in order.
func (f *fifoGuest) handle(vcpu int) []uint32 {
	guestmem.Store8(f.g.VCPUInfo(vcpu), abi.VCPUInfoUpcallPending, 0)
	var got []uint32
	ready := f.xchgReady(vcpu)
	for ready != 0 {
		q := uint32(0)
		for ready&(1<<q) == 0 {
			q++
		}
		if p, ok := f.consumeOne(vcpu, q, &ready); ok {
			got = append(got, p)
		}
		ready |= f.xchgReady(vcpu)
	}
	return got
}

// fifoTable is a table already switched to FIFO with one array page and
// control blocks for vcpus.
func fifoTable(t *testing.T, nvcpus int, cfg func(*Config), vcpus ...int) (*Table, *fakeGuest, *fifoGuest) {
	tb, g := newTable(t, nvcpus, cfg)
	f := newFIFOGuest(t, tb, g)
	for _, v := range vcpus {
		f.initControl(v)
	}
	f.expand()
	return tb, g, f
}

// ipis binds n IPIs on vcpu and unmasks them, as Linux's bind does.
func (f *fifoGuest) ipis(vcpu uint32, n int) []uint32 {
	var ps []uint32
	for i := 0; i < n; i++ {
		p := bindIPI(f.t, f.tb, vcpu)
		f.unmask(p)
		ps = append(ps, p)
	}
	return ps
}

func TestFIFOSwitchPreservesPorts(t *testing.T) {
	tb, g := newTable(t, 2, func(c *Config) { c.GlobalVIRQs = []uint32{abi.VIRQ_CONSOLE} })
	ipi := bindIPI(t, tb, 0)
	idle := bindIPI(t, tb, 1)
	a := allocUnbound(t, tb, abi.DOMID_SELF)
	b := bindLoopback(t, tb, a) // pending in 2-level
	timer := bindVIRQ(t, tb, abi.VIRQ_TIMER, 1)
	send(t, tb, ipi)
	g.ack(0)
	g.takeKicks()
	before := tb.Channels()

	f := newFIFOGuest(t, tb, g)
	f.initControl(0)
	if !tb.FIFO() {
		t.Fatal("init_control did not switch to FIFO")
	}
	after := tb.Channels()
	if len(after) != len(before) {
		t.Fatalf("ports changed: %+v → %+v", before, after)
	}
	for i := range after {
		if after[i].Priority != abi.EVTCHN_FIFO_PRIORITY_DEFAULT {
			t.Fatalf("port %d priority %d", after[i].Port, after[i].Priority)
		}
		// No event array yet: nothing pending, everything masked.
		if after[i].Pending || !after[i].Masked {
			t.Fatalf("port %d before expand_array: %+v", after[i].Port, after[i])
		}
		after[i].Priority, after[i].Pending, after[i].Masked = 0, false, false
		before[i].Pending, before[i].Masked = false, false
	}
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("bindings changed:\n%+v\n%+v", before, after)
	}
	// Events raised before the array exists are kept.
	ep, _ := tb.AllocBackend(nil)
	_, gp := ep.State()
	ep.Notify()

	f.expand()
	for _, p := range []uint32{ipi, b, gp} {
		if !f.has(p, abi.EVTCHN_FIFO_PENDING) || f.has(p, abi.EVTCHN_FIFO_LINKED) {
			t.Fatalf("port %d after expand: %#x (want PENDING, masked, unlinked)", p, f.load(p))
		}
	}
	for _, p := range []uint32{idle, a, timer} {
		if f.has(p, abi.EVTCHN_FIFO_PENDING) {
			t.Fatalf("port %d pending after expand", p)
		}
	}
	if len(g.takeKicks()) != 0 || g.upcall(0) {
		t.Fatal("masked events raised an upcall")
	}
	// Unmasking delivers in unmask order.
	f.unmask(b)
	f.unmask(ipi)
	if k := g.takeKicks(); !reflect.DeepEqual(k, []int{0}) {
		t.Fatalf("kicks %v", k)
	}
	if got := f.handle(0); !reflect.DeepEqual(got, []uint32{b, ipi}) {
		t.Fatalf("handled %v", got)
	}
	// The other ABI's pieces work on.
	f.initControl(1)
	f.unmask(timer)
	tb.RaiseVIRQ(abi.VIRQ_TIMER, 1)
	if got := f.handle(1); !reflect.DeepEqual(got, []uint32{timer}) {
		t.Fatalf("vcpu 1 handled %v", got)
	}
	if err := checkInvariants(tb); err != nil {
		t.Fatal(err)
	}
}

func TestFIFOQueueOrder(t *testing.T) {
	tb, g, f := fifoTable(t, 1, nil, 0)
	p := f.ipis(0, 4)
	order := []uint32{p[2], p[0], p[3], p[1]}
	for _, port := range order {
		send(t, tb, port)
	}
	send(t, tb, p[0]) // already linked: no duplicate
	if k := g.takeKicks(); !reflect.DeepEqual(k, []int{0}) {
		t.Fatalf("kicks %v, want one", k)
	}
	if got := f.handle(0); !reflect.DeepEqual(got, order) {
		t.Fatalf("handled %v, want %v", got, order)
	}
	// The queue is empty now, though its tail still names the last port:
	// a new event must start a new list at HEAD and raise READY again.
	send(t, tb, p[1])
	send(t, tb, p[3])
	if k := g.takeKicks(); !reflect.DeepEqual(k, []int{0}) {
		t.Fatalf("kicks %v", k)
	}
	if got := f.handle(0); !reflect.DeepEqual(got, []uint32{p[1], p[3]}) {
		t.Fatalf("second round %v", got)
	}
	if f.handle(0) != nil {
		t.Fatal("events left over")
	}
}

func TestFIFOPartialConsume(t *testing.T) {
	tb, _, f := fifoTable(t, 1, nil, 0)
	p := f.ipis(0, 3)
	send(t, tb, p[0])
	send(t, tb, p[1])
	// The guest takes one event; p[1] is still LINKED as the tail.
	ready := f.xchgReady(0)
	if got, ok := f.consumeOne(0, abi.EVTCHN_FIFO_PRIORITY_DEFAULT, &ready); !ok || got != p[0] {
		t.Fatalf("first %d", got)
	}
	f.orReady(0, ready) // put back what is left
	send(t, tb, p[2])   // links to p[1]
	if f.load(p[1])&abi.EVTCHN_FIFO_LINK_MASK != p[2] {
		t.Fatalf("tail word %#x not linked to %d", f.load(p[1]), p[2])
	}
	if got := f.handle(0); !reflect.DeepEqual(got, []uint32{p[1], p[2]}) {
		t.Fatalf("rest %v", got)
	}
}

func TestFIFOPriorities(t *testing.T) {
	tb, _, f := fifoTable(t, 1, nil, 0)
	p := f.ipis(0, 4)
	for port, prio := range map[uint32]uint32{p[0]: 10, p[1]: 2, p[2]: 2, p[3]: abi.EVTCHN_FIFO_PRIORITY_MAX} {
		if rc := call(t, tb, abi.EVTCHNOP_set_priority, &SetPriority{Port: port, Priority: prio}, nil); rc != 0 {
			t.Fatal(rc)
		}
	}
	for _, port := range p {
		send(t, tb, port)
	}
	if got := f.handle(0); !reflect.DeepEqual(got, []uint32{p[3], p[1], p[2], p[0]}) {
		t.Fatalf("handled %v", got)
	}
	for _, c := range []struct {
		name string
		in   SetPriority
		want int64
	}{
		{"lowest", SetPriority{Port: p[0], Priority: abi.EVTCHN_FIFO_PRIORITY_MIN}, 0},
		{"beyond lowest", SetPriority{Port: p[0], Priority: abi.EVTCHN_FIFO_PRIORITY_MIN + 1}, ret(abi.EINVAL)},
		{"free port", SetPriority{Port: 60, Priority: 1}, ret(abi.EACCES)},
		{"reserved port", SetPriority{Port: 0, Priority: 1}, ret(abi.EACCES)},
		{"invalid port", SetPriority{Port: 64, Priority: 1}, ret(abi.EINVAL)},
	} {
		if rc := call(t, tb, abi.EVTCHNOP_set_priority, &c.in, nil); rc != c.want {
			t.Errorf("%s: %d, want %d", c.name, rc, c.want)
		}
	}
	// A new binding starts at the default priority.
	call(t, tb, abi.EVTCHNOP_close, &Close{Port: p[3]}, nil)
	f.handle(0)
	q := bindIPI(t, tb, 0)
	for _, c := range tb.Channels() {
		if c.Port == q && c.Priority != abi.EVTCHN_FIFO_PRIORITY_DEFAULT {
			t.Fatalf("rebound port priority %d", c.Priority)
		}
	}
}

func TestFIFOMaskedAndPoll(t *testing.T) {
	tb, g, f := fifoTable(t, 2, nil, 0, 1)
	p := bindIPI(t, tb, 1) // stays MASKED
	if ready, err := tb.Poll(1, []uint32{p}); ready || err != nil {
		t.Fatal(ready, err)
	}
	send(t, tb, p)
	if !f.has(p, abi.EVTCHN_FIFO_PENDING) || f.has(p, abi.EVTCHN_FIFO_LINKED) {
		t.Fatalf("masked send: word %#x", f.load(p))
	}
	if r, _ := guestmem.Load32(f.cb[1], controlBlockReady); r != 0 || g.upcall(1) {
		t.Fatal("masked event made a queue ready")
	}
	if k := g.takeKicks(); !reflect.DeepEqual(k, []int{1}) {
		t.Fatalf("poller kicks %v", k)
	}
	if !tb.Pending(p) || !tb.Masked(p) {
		t.Fatal("Pending/Masked in FIFO")
	}
	f.unmask(p)
	if got := f.handle(1); !reflect.DeepEqual(got, []uint32{p}) {
		t.Fatalf("after unmask %v", got)
	}
}

func TestFIFONoControlBlock(t *testing.T) {
	tb, g, f := fifoTable(t, 2, nil, 0)
	p := bindIPI(t, tb, 1)
	f.unmask(p)
	send(t, tb, p)
	// Dropped entirely, as Xen does: not even PENDING.
	if f.load(p) != 0 || g.upcall(1) || len(g.takeKicks()) != 0 {
		t.Fatalf("event for a vCPU without control block: word %#x", f.load(p))
	}
	f.initControl(1)
	send(t, tb, p)
	if got := f.handle(1); !reflect.DeepEqual(got, []uint32{p}) {
		t.Fatalf("after init_control %v", got)
	}
}

func TestFIFOSavedPendingBeyondArray(t *testing.T) {
	tb, _, f := fifoTable(t, 1, maxPort(2000), 0)
	for i := 1; i < eventWordsPerPage; i++ {
		allocUnbound(t, tb, 0)
	}
	p := bindIPI(t, tb, 0)
	if p != eventWordsPerPage {
		t.Fatalf("port %d", p)
	}
	send(t, tb, p)
	if tb.Pending(p) {
		t.Fatal("pending without an event word")
	}
	f.expand()
	if !f.has(p, abi.EVTCHN_FIFO_PENDING) {
		t.Fatalf("saved event not raised: %#x", f.load(p))
	}
	f.unmask(p)
	if got := f.handle(0); !reflect.DeepEqual(got, []uint32{p}) {
		t.Fatalf("handled %v", got)
	}
}

func TestFIFOLinkedPortNotReused(t *testing.T) {
	tb, _, f := fifoTable(t, 1, nil, 0)
	p := f.ipis(0, 2)
	send(t, tb, p[0])
	send(t, tb, p[1])
	call(t, tb, abi.EVTCHNOP_close, &Close{Port: p[0]}, nil)
	if f.has(p[0], abi.EVTCHN_FIFO_PENDING) || !f.has(p[0], abi.EVTCHN_FIFO_LINKED) {
		t.Fatalf("closed word %#x: want LINKED, not PENDING", f.load(p[0]))
	}
	// Still on the queue: the next allocation skips it.
	if q := allocUnbound(t, tb, 0); q == p[0] {
		t.Fatal("LINKED port reused")
	}
	// The guest walks the queue, ignoring the closed event.
	if got := f.handle(0); !reflect.DeepEqual(got, []uint32{p[1]}) {
		t.Fatalf("handled %v", got)
	}
	if q := allocUnbound(t, tb, 0); q != p[0] {
		t.Fatalf("unlinked port %d not reused (got %d)", p[0], q)
	}
}

func TestFIFOBindVCPUMovesQueue(t *testing.T) {
	tb, _, f := fifoTable(t, 2, nil, 0, 1)
	a := allocUnbound(t, tb, abi.DOMID_SELF)
	b := bindLoopback(t, tb, a)
	f.unmask(a)
	f.unmask(b)
	f.handle(0) // b's bind notification
	send(t, tb, b)
	if got := f.handle(0); !reflect.DeepEqual(got, []uint32{a}) {
		t.Fatalf("vcpu 0 %v", got)
	}
	// Move a to vCPU 1. vCPU 0's queue tail still names a; the move must
	// forget it so that vCPU 0's next event starts a fresh list.
	call(t, tb, abi.EVTCHNOP_bind_vcpu, &BindVCPU{Port: a, VCPU: 1}, nil)
	send(t, tb, b)
	if got := f.handle(1); !reflect.DeepEqual(got, []uint32{a}) {
		t.Fatalf("vcpu 1 %v", got)
	}
	c := f.ipis(0, 1)[0]
	send(t, tb, c)
	if got := f.handle(0); !reflect.DeepEqual(got, []uint32{c}) {
		t.Fatalf("vcpu 0 after move %v", got)
	}
	if f.handle(1) != nil {
		t.Fatal("vcpu 1 got more")
	}
}

func TestFIFOResetTo2L(t *testing.T) {
	tb, g, f := fifoTable(t, 1, nil, 0)
	p := f.ipis(0, 2)
	send(t, tb, p[0])
	if rc := call(t, tb, abi.EVTCHNOP_reset, &Reset{Dom: abi.DOMID_SELF}, nil); rc != 0 {
		t.Fatal(rc)
	}
	if tb.FIFO() || len(tb.Channels()) != 0 {
		t.Fatal("reset did not return to an empty 2-level table")
	}
	if rc := call(t, tb, abi.EVTCHNOP_expand_array, &ExpandArray{ArrayGFN: 0x100}, nil); rc != ret(abi.EOPNOTSUPP) {
		t.Fatalf("expand_array after reset: %d", rc)
	}
	g.ack(0)
	q := bindIPI(t, tb, 0)
	send(t, tb, q)
	if !g.pending(q) || !g.upcall(0) {
		t.Fatal("2-level delivery after reset")
	}
	// FIFO can be set up again (Linux does after kexec or resume).
	f2 := newFIFOGuest(t, tb, g)
	f2.next = 0x200
	f2.initControl(0)
	f2.expand()
	f2.unmask(q)
	send(t, tb, q) // its 2-level pending bit was carried over, so already PENDING
	if got := f2.handle(0); !reflect.DeepEqual(got, []uint32{q}) {
		t.Fatalf("after re-init %v", got)
	}
}

func TestFIFOExpandArrayErrors(t *testing.T) {
	tb, g, f := fifoTable(t, 1, nil, 0)
	if rc := call(t, tb, abi.EVTCHNOP_expand_array, &ExpandArray{ArrayGFN: 0xdead}, nil); rc != ret(abi.EINVAL) {
		t.Fatalf("bad gfn: %d", rc)
	}
	g.addPage(0x999)
	for i := len(f.array); i < maxEventArrayPages; i++ {
		if rc := call(t, tb, abi.EVTCHNOP_expand_array, &ExpandArray{ArrayGFN: 0x999}, nil); rc != 0 {
			t.Fatalf("page %d: %d", i, rc)
		}
	}
	if rc := call(t, tb, abi.EVTCHNOP_expand_array, &ExpandArray{ArrayGFN: 0x999}, nil); rc != ret(abi.ENOSPC) {
		t.Fatalf("page %d: %d", maxEventArrayPages, rc)
	}
	// init_control for the same vCPU again, and a bad frame for another.
	if rc := call(t, tb, abi.EVTCHNOP_init_control, &InitControl{ControlGFN: 0x999}, nil); rc != ret(abi.EINVAL) {
		t.Fatalf("second init_control: %d", rc)
	}
}

// TestFIFOLinkRacesGuest links events onto a tail whose MASKED bit the
// guest toggles concurrently with clear_masked/mask: the BUSY protocol
// must still leave the right LINK and no BUSY behind.
func TestFIFOLinkRacesGuest(t *testing.T) {
	tb, _, f := fifoTable(t, 1, nil, 0)
	ps := f.ipis(0, 64)
	tail := ps[0]
	stop := make(chan struct{})
	var pause sync.Mutex // held by the test while it needs the word still
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			pause.Lock()
			f.update(tail, func(w uint32) (uint32, bool) {
				return w ^ (1 << abi.EVTCHN_FIFO_MASKED), w&(1<<abi.EVTCHN_FIFO_BUSY) == 0
			})
			pause.Unlock()
		}
	}()
	for i := 0; i < 200; i++ {
		// Link tail alone while the guest is quiet...
		pause.Lock()
		f.update(tail, func(w uint32) (uint32, bool) { return w &^ (1 << abi.EVTCHN_FIFO_MASKED), true })
		send(t, tb, tail)
		if !f.has(tail, abi.EVTCHN_FIFO_LINKED) {
			t.Fatalf("round %d: tail not linked: %#x", i, f.load(tail))
		}
		pause.Unlock()
		// ...then link another port after it while the guest toggles
		// the tail's MASKED bit.
		next := ps[1+i%63]
		send(t, tb, next)
		pause.Lock()
		w := f.load(tail)
		if w&abi.EVTCHN_FIFO_LINK_MASK != next || w&(1<<abi.EVTCHN_FIFO_BUSY) != 0 {
			t.Fatalf("round %d: tail word %#x, want link %d and no BUSY", i, w, next)
		}
		got := f.handle(0)
		if len(got) == 0 || got[len(got)-1] != next {
			t.Fatalf("round %d: handled %v, want ... %d", i, got, next)
		}
		f.update(tail, func(w uint32) (uint32, bool) { return w &^ (1 << abi.EVTCHN_FIFO_PENDING), true })
		pause.Unlock()
	}
	close(stop)
	wg.Wait()
}

// TestFIFOSetLinkContended drives evtchn_fifo_set_link's retry path: the
// guest flips MASKED on a LINKED word (as clear_masked and mask do, never
// while BUSY) as fast as it can while the link is set, and must never see
// its change lost, a wrong LINK, or BUSY left behind. Unlinking makes set
// link report false.
func TestFIFOSetLinkContended(t *testing.T) {
	word := make([]byte, 8)
	guestmem.Store32(word, 0, 1<<abi.EVTCHN_FIFO_LINKED)
	stop := make(chan struct{})
	flips := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				flips <- n
				return
			default:
			}
			w, _ := guestmem.Load32(word, 0)
			if w&(1<<abi.EVTCHN_FIFO_BUSY) != 0 {
				continue
			}
			if ok, _ := guestmem.CAS32(word, 0, w, w^(1<<abi.EVTCHN_FIFO_MASKED)); ok {
				n++
			}
		}
	}()
	for i := uint32(1); i <= 200000; i++ {
		link := i % abi.EVTCHN_FIFO_NR_CHANNELS
		if !fifoSetLink(word, 0, link) {
			t.Fatal("set_link failed on a LINKED word")
		}
		w, _ := guestmem.Load32(word, 0)
		if w&abi.EVTCHN_FIFO_LINK_MASK != link || w&(1<<abi.EVTCHN_FIFO_LINKED) == 0 {
			t.Fatalf("word %#x after linking %d", w, link)
		}
	}
	close(stop)
	n := <-flips
	w, _ := guestmem.Load32(word, 0)
	if w&(1<<abi.EVTCHN_FIFO_BUSY) != 0 {
		t.Fatalf("BUSY left set: %#x", w)
	}
	if masked := w&(1<<abi.EVTCHN_FIFO_MASKED) != 0; masked != (n%2 == 1) {
		t.Fatalf("guest flipped MASKED %d times but it is %v: a flip was lost", n, masked)
	}
	clearBit32(word, 0, abi.EVTCHN_FIFO_LINKED)
	if fifoSetLink(word, 0, 5) {
		t.Fatal("set_link succeeded on an unlinked word")
	}
}
