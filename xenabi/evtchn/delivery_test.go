package evtchn

import (
	"reflect"
	"testing"

	"github.com/xenvmm/xenvmm/xenabi/abi"
	"github.com/xenvmm/xenvmm/xenabi/guestmem"
)

// guestState is the 2-level state the guest sees for one port and vCPU.
type guestState struct {
	pending, masked bool
	sel             uint64
	upcall          bool
	kicks           []int
}

func observe(g *fakeGuest, port uint32, vcpu int) guestState {
	return guestState{g.pending(port), g.masked(port), g.sel(vcpu), g.upcall(vcpu), g.takeKicks()}
}

// TestDelivery2L walks event_2l.c's rules step by step on an IPI port
// that is placed in bitmap word 1 (port 64+) so that selector bit 1 is the
// one to watch.
func TestDelivery2L(t *testing.T) {
	type step struct {
		name string
		do   func(t *testing.T, tb *Table, g *fakeGuest, port uint32)
		want guestState
	}
	sel1 := uint64(1) << 1
	steps := []step{
		{"send sets pending, selector, upcall and kicks once", func(t *testing.T, tb *Table, g *fakeGuest, p uint32) { send(t, tb, p) },
			guestState{pending: true, sel: sel1, upcall: true, kicks: []int{1}}},
		{"second send while pending: nothing new", func(t *testing.T, tb *Table, g *fakeGuest, p uint32) { send(t, tb, p) },
			guestState{pending: true, sel: sel1, upcall: true}},
		{"guest handles it", func(t *testing.T, tb *Table, g *fakeGuest, p uint32) { g.ack(1); g.clearPending(p) },
			guestState{}},
		{"masked send: pending only", func(t *testing.T, tb *Table, g *fakeGuest, p uint32) { g.setMask(p); send(t, tb, p) },
			guestState{pending: true, masked: true}},
		{"unmask re-delivers", func(t *testing.T, tb *Table, g *fakeGuest, p uint32) {
			if rc := call(t, tb, abi.EVTCHNOP_unmask, &Unmask{Port: p}, nil); rc != 0 {
				t.Fatal(rc)
			}
		}, guestState{pending: true, sel: sel1, upcall: true, kicks: []int{1}}},
		{"unmask of an unmasked pending port: nothing", func(t *testing.T, tb *Table, g *fakeGuest, p uint32) {
			g.ack(1)
			call(t, tb, abi.EVTCHNOP_unmask, &Unmask{Port: p}, nil)
		}, guestState{pending: true}},
		{"mask, clear, unmask of a non-pending port: nothing", func(t *testing.T, tb *Table, g *fakeGuest, p uint32) {
			g.setMask(p)
			g.clearPending(p)
			call(t, tb, abi.EVTCHNOP_unmask, &Unmask{Port: p}, nil)
		}, guestState{}},
		{"upcall already pending: selector set, no kick", func(t *testing.T, tb *Table, g *fakeGuest, p uint32) {
			guestmem.Store8(g.VCPUInfo(1), abi.VCPUInfoUpcallPending, 1)
			send(t, tb, p)
		}, guestState{pending: true, sel: sel1, upcall: true}},
		{"selector bit already set: no upcall", func(t *testing.T, tb *Table, g *fakeGuest, p uint32) {
			g.ack(1)
			g.clearPending(p)
			guestmem.Store64(g.VCPUInfo(1), abi.VCPUInfoPendingSel, sel1)
			send(t, tb, p)
		}, guestState{pending: true, sel: sel1}},
	}
	tb, g := newTable(t, 2, nil)
	for i := 1; i < 64; i++ {
		allocUnbound(t, tb, 0)
	}
	port := bindIPI(t, tb, 1)
	if port != 64 {
		t.Fatalf("IPI at port %d", port)
	}
	for _, s := range steps {
		s.do(t, tb, g, port)
		if got := observe(g, port, 1); !reflect.DeepEqual(got, s.want) {
			t.Fatalf("%s: got %+v, want %+v", s.name, got, s.want)
		}
		if g.upcall(0) || g.sel(0) != 0 {
			t.Fatalf("%s: vcpu 0 touched", s.name)
		}
	}
}

func TestBindVCPUMovesDelivery(t *testing.T) {
	tb, g := newTable(t, 3, nil)
	a := allocUnbound(t, tb, abi.DOMID_SELF)
	b := bindLoopback(t, tb, a)
	g.ack(0)
	g.clearPending(b)
	g.takeKicks()
	if rc := call(t, tb, abi.EVTCHNOP_bind_vcpu, &BindVCPU{Port: a, VCPU: 2}, nil); rc != 0 {
		t.Fatal(rc)
	}
	send(t, tb, b)
	if !g.upcall(2) || g.sel(2) != 1 || g.upcall(0) || g.upcall(1) {
		t.Fatalf("delivery not on vcpu 2: upcall %v/%v/%v", g.upcall(0), g.upcall(1), g.upcall(2))
	}
	if k := g.takeKicks(); !reflect.DeepEqual(k, []int{2}) {
		t.Fatalf("kicks %v", k)
	}
	// Unmask re-delivers on the notify vCPU too.
	g.ack(2)
	g.clearPending(a)
	g.setMask(a)
	send(t, tb, b)
	if g.upcall(2) {
		t.Fatal("masked port raised an upcall")
	}
	call(t, tb, abi.EVTCHNOP_unmask, &Unmask{Port: a}, nil)
	if !g.upcall(2) || g.upcall(0) {
		t.Fatal("unmask did not deliver on vcpu 2")
	}
}

func TestVIRQDelivery(t *testing.T) {
	tb, g := newTable(t, 2, func(c *Config) { c.GlobalVIRQs = []uint32{abi.VIRQ_CONSOLE} })
	t0 := bindVIRQ(t, tb, abi.VIRQ_TIMER, 0)
	t1 := bindVIRQ(t, tb, abi.VIRQ_TIMER, 1)
	con := bindVIRQ(t, tb, abi.VIRQ_CONSOLE, 0)

	if err := tb.RaiseVIRQ(abi.VIRQ_TIMER, 1); err != nil {
		t.Fatal(err)
	}
	if !g.pending(t1) || g.pending(t0) || !g.upcall(1) || g.upcall(0) {
		t.Fatal("VIRQ_TIMER on vcpu 1 went astray")
	}
	if k := g.takeKicks(); !reflect.DeepEqual(k, []int{1}) {
		t.Fatalf("kicks %v", k)
	}
	// Unbound per-vCPU VIRQ: dropped.
	if err := tb.RaiseVIRQ(abi.VIRQ_DEBUG, 0); err != nil || g.upcall(0) {
		t.Fatalf("unbound VIRQ_DEBUG: %v, upcall %v", err, g.upcall(0))
	}
	// Global VIRQ: vcpu argument ignored, delivered on the notify vCPU.
	call(t, tb, abi.EVTCHNOP_bind_vcpu, &BindVCPU{Port: con, VCPU: 1}, nil)
	g.ack(1)
	if err := tb.RaiseVIRQ(abi.VIRQ_CONSOLE, 0); err != nil {
		t.Fatal(err)
	}
	if !g.pending(con) || !g.upcall(1) || g.upcall(0) {
		t.Fatal("VIRQ_CONSOLE not on its notify vcpu 1")
	}
	for _, c := range []struct {
		virq uint32
		vcpu int
		want error
	}{
		{24, 0, abi.EINVAL},
		{abi.VIRQ_TIMER, 2, abi.ENOENT},
		{abi.VIRQ_TIMER, -1, abi.ENOENT},
		{abi.VIRQ_CONSOLE, 7, nil},
	} {
		if err := tb.RaiseVIRQ(c.virq, c.vcpu); err != c.want {
			t.Errorf("RaiseVIRQ(%d, %d) = %v, want %v", c.virq, c.vcpu, err, c.want)
		}
	}
	if !tb.VIRQBound(abi.VIRQ_TIMER, 1) || tb.VIRQBound(abi.VIRQ_DEBUG, 1) || !tb.VIRQBound(abi.VIRQ_CONSOLE, 1) {
		t.Fatal("VIRQBound wrong")
	}
}

func TestPoll(t *testing.T) {
	tb, g := newTable(t, 2, nil)
	a := bindIPI(t, tb, 0)
	b := bindIPI(t, tb, 0)
	g.setMask(a)
	g.setMask(b)

	// Errors.
	if _, err := tb.Poll(1, make([]uint32, MaxPollPorts+1)); err != abi.EINVAL {
		t.Fatalf("129 ports: %v", err)
	}
	if _, err := tb.Poll(1, []uint32{a, 40}); err != abi.EINVAL {
		t.Fatalf("port not in use: %v", err)
	}
	if _, err := tb.Poll(1, []uint32{0}); err != abi.EINVAL {
		t.Fatalf("port 0: %v", err)
	}

	// Poll on one masked port: woken when it becomes pending, with no
	// upcall.
	if ready, err := tb.Poll(1, []uint32{a}); ready || err != nil {
		t.Fatalf("Poll = %v, %v", ready, err)
	}
	send(t, tb, b) // another port: no wake-up
	if k := g.takeKicks(); len(k) != 0 {
		t.Fatalf("kicked %v for a port not polled", k)
	}
	send(t, tb, a)
	if k := g.takeKicks(); !reflect.DeepEqual(k, []int{1}) {
		t.Fatalf("kicks %v, want poller 1", k)
	}
	if g.upcall(0) || g.upcall(1) {
		t.Fatal("masked port raised an upcall")
	}
	// Woken once: the registration is gone.
	g.clearPending(a)
	send(t, tb, a)
	if k := g.takeKicks(); len(k) != 0 {
		t.Fatalf("second wake-up %v", k)
	}
	// Already pending: ready at once.
	if ready, err := tb.Poll(1, []uint32{b, a}); !ready || err != nil {
		t.Fatalf("Poll on pending ports = %v, %v", ready, err)
	}
	// Several ports (poll_evtchn -1): any port wakes; StopPoll cancels.
	g.clearPending(a)
	g.clearPending(b)
	if ready, _ := tb.Poll(1, []uint32{a, b}); ready {
		t.Fatal("ready with nothing pending")
	}
	c := bindIPI(t, tb, 0)
	g.setMask(c)
	send(t, tb, c)
	if k := g.takeKicks(); !reflect.DeepEqual(k, []int{1}) {
		t.Fatalf("multi-port poll kicks %v", k)
	}
	tb.Poll(1, nil)
	tb.StopPoll(1)
	g.clearPending(c)
	send(t, tb, c)
	if k := g.takeKicks(); len(k) != 0 {
		t.Fatalf("kicked after StopPoll: %v", k)
	}
	// An upcall awaiting delivery makes the poll return at once.
	guestmem.Store8(g.VCPUInfo(1), abi.VCPUInfoUpcallPending, 1)
	if ready, _ := tb.Poll(1, []uint32{a}); !ready {
		t.Fatal("upcall pending and unmasked, not ready")
	}
	guestmem.Store8(g.VCPUInfo(1), abi.VCPUInfoUpcallMask, 1)
	if ready, _ := tb.Poll(1, []uint32{a}); ready {
		t.Fatal("upcall masked, but ready")
	}
	if tb.NeedsDelivery(1) {
		t.Fatal("NeedsDelivery with the upcall masked")
	}
	guestmem.Store8(g.VCPUInfo(1), abi.VCPUInfoUpcallMask, 0)
	if !tb.NeedsDelivery(1) || tb.NeedsDelivery(0) || tb.NeedsDelivery(5) {
		t.Fatal("NeedsDelivery disagrees with vcpu_info")
	}
	if err := checkInvariants(tb); err != nil {
		t.Fatal(err)
	}
}

func TestPendingMasked(t *testing.T) {
	tb, g := newTable(t, 1, nil)
	p := bindIPI(t, tb, 0)
	if tb.Pending(p) || tb.Masked(p) {
		t.Fatal("fresh port pending or masked")
	}
	send(t, tb, p)
	g.setMask(p)
	if !tb.Pending(p) || !tb.Masked(p) {
		t.Fatal("Pending/Masked do not follow shared_info")
	}
	// Ports not in use: never pending, always masked (evtchn_is_*).
	g.setMask(5)
	guestmem.Or64(g.shared, abi.SharedInfoEvtchnPending, 1<<5)
	if tb.Pending(5) || !tb.Masked(9) || tb.Pending(1000) || !tb.Masked(1000) {
		t.Fatal("unused ports")
	}
}

func TestVCPUInfoMoved(t *testing.T) {
	tb, g := newTable(t, 40, nil)
	p := bindIPI(t, tb, 35)
	// vCPU 35 has no vcpu_info yet: the event is pending but no upcall
	// can be raised (Xen's dummy vcpu_info).
	send(t, tb, p)
	if !g.pending(p) || len(g.takeKicks()) != 0 {
		t.Fatal("delivery to a vCPU without vcpu_info")
	}
	vi := make([]byte, abi.VCPUInfoSize)
	g.mu.Lock()
	g.vi[35] = vi
	g.mu.Unlock()
	tb.VCPUInfoMoved(35)
	if s, _ := guestmem.Load64(vi, abi.VCPUInfoPendingSel); s != ^uint64(0) || vi[abi.VCPUInfoUpcallPending] != 1 {
		t.Fatalf("after move: sel %#x upcall %d", s, vi[abi.VCPUInfoUpcallPending])
	}
	if k := g.takeKicks(); !reflect.DeepEqual(k, []int{35}) {
		t.Fatalf("kicks %v", k)
	}
	// Later deliveries use the new location.
	guestmem.Store64(vi, abi.VCPUInfoPendingSel, 0)
	vi[0] = 0
	g.clearPending(p)
	send(t, tb, p)
	if s, _ := guestmem.Load64(vi, abi.VCPUInfoPendingSel); s != 1 || vi[0] != 1 {
		t.Fatalf("delivery after move: sel %#x upcall %d", s, vi[0])
	}
}
