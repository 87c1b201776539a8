package evtchn

import (
	"reflect"
	"sync"
	"testing"

	"github.com/xenvmm/xenvmm/xenabi/abi"
)

// recorder is a Handler that records events.
type recorder struct {
	mu  sync.Mutex
	evs []EndpointEvent
}

func (r *recorder) handle(_ *Endpoint, ev EndpointEvent) {
	r.mu.Lock()
	r.evs = append(r.evs, ev)
	r.mu.Unlock()
}

func (r *recorder) take() []EndpointEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.evs
	r.evs = nil
	return e
}

func drained(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func wantEvents(t *testing.T, r *recorder, want ...EndpointEvent) {
	t.Helper()
	if got := r.take(); !reflect.DeepEqual(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
}

func TestAllocBackend(t *testing.T) {
	tb, g := newTable(t, 2, nil)
	var r recorder
	ep, err := tb.AllocBackend(r.handle)
	if err != nil {
		t.Fatal(err)
	}
	st, gport := ep.State()
	if st != EndpointConnected || gport != 1 || ep.Port() != 1 {
		t.Fatalf("state %v guest port %d dom0 port %d", st, gport, ep.Port())
	}
	// Xen's bind conservatively notifies the binder.
	wantEvents(t, &r, EndpointConnectedEvent, EndpointNotifiedEvent)
	if !drained(ep.C()) || !drained(ep.Changes()) {
		t.Fatal("channels not signalled on bind")
	}
	if s := status(t, tb, gport); s.Status != abi.EVTCHNSTAT_interdomain || s.U0 != 0 || s.U1 != ep.Port() {
		t.Fatalf("guest status %+v", s)
	}

	// Guest → backend, coalesced on C.
	send(t, tb, gport)
	send(t, tb, gport)
	wantEvents(t, &r, EndpointNotifiedEvent, EndpointNotifiedEvent)
	if !drained(ep.C()) || drained(ep.C()) {
		t.Fatal("C not coalescing")
	}
	if g.pending(gport) || len(g.takeKicks()) != 0 {
		t.Fatal("guest send raised the guest's own port")
	}

	// Backend → guest.
	if err := ep.Notify(); err != nil {
		t.Fatal(err)
	}
	if !g.pending(gport) || !g.upcall(0) {
		t.Fatal("Notify did not raise the guest port")
	}
	if k := g.takeKicks(); !reflect.DeepEqual(k, []int{0}) {
		t.Fatalf("kicks %v", k)
	}
	// Notify follows bind_vcpu.
	g.ack(0)
	g.clearPending(gport)
	call(t, tb, abi.EVTCHNOP_bind_vcpu, &BindVCPU{Port: gport, VCPU: 1}, nil)
	ep.Notify()
	if !g.upcall(1) || g.upcall(0) {
		t.Fatal("Notify ignored bind_vcpu")
	}

	// Guest closes: endpoint back to unbound, waiting for the guest.
	if rc := call(t, tb, abi.EVTCHNOP_close, &Close{Port: gport}, nil); rc != 0 {
		t.Fatal(rc)
	}
	wantEvents(t, &r, EndpointDisconnectedEvent)
	if !drained(ep.Changes()) {
		t.Fatal("Changes not signalled on disconnect")
	}
	if st, _ := ep.State(); st != EndpointUnbound {
		t.Fatalf("after guest close: %v", st)
	}
	if err := ep.Notify(); err != ErrNotConnected {
		t.Fatalf("Notify when unbound: %v", err)
	}
	// The guest binds to it again (bind_interdomain to domain 0).
	var out BindInterdomain
	if rc := call(t, tb, abi.EVTCHNOP_bind_interdomain, &BindInterdomain{RemoteDom: 0, RemotePort: ep.Port()}, &out); rc != 0 {
		t.Fatal(rc)
	}
	wantEvents(t, &r, EndpointConnectedEvent)
	if st, gp := ep.State(); st != EndpointConnected || gp != out.LocalPort {
		t.Fatalf("rebind: %v %d", st, gp)
	}
	if !g.pending(out.LocalPort) {
		t.Fatal("guest's new port not made pending by the bind")
	}

	// Backend closes: the guest's port is unbound, waiting for domain 0.
	if err := ep.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ep.Close(); err != ErrClosed {
		t.Fatalf("second Close: %v", err)
	}
	if err := ep.Notify(); err != ErrClosed {
		t.Fatalf("Notify after Close: %v", err)
	}
	if s := status(t, tb, out.LocalPort); s.Status != abi.EVTCHNSTAT_unbound || s.U0 != 0 {
		t.Fatalf("guest port after backend close: %+v", s)
	}
	send(t, tb, out.LocalPort) // dropped silently
	wantEvents(t, &r)
	// A new backend binds to the same guest port.
	ep2, err := tb.BindBackend(out.LocalPort, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ep2.Port() != 1 {
		t.Fatalf("freed domain-0 port not reused: %d", ep2.Port())
	}
	if err := checkInvariants(tb); err != nil {
		t.Fatal(err)
	}
}

func TestBindBackend(t *testing.T) {
	tb, g := newTable(t, 1, nil)
	for _, c := range []struct {
		name  string
		setup func() uint32
	}{
		{"invalid port", func() uint32 { return 500 }},
		{"free port", func() uint32 { return 9 }},
		{"reserved port", func() uint32 { return 0 }},
		{"unbound for the guest itself", func() uint32 { return allocUnbound(t, tb, abi.DOMID_SELF) }},
		{"unbound for another domain", func() uint32 { return allocUnbound(t, tb, 5) }},
		{"an IPI", func() uint32 { return bindIPI(t, tb, 0) }},
	} {
		if _, err := tb.BindBackend(c.setup(), nil); err != abi.EINVAL {
			t.Errorf("%s: %v, want EINVAL", c.name, err)
		}
	}
	// The frontend's way: alloc_unbound(remote 0), the backend binds.
	gp := allocUnbound(t, tb, 0)
	send(t, tb, gp) // lost while unbound...
	ep, err := tb.BindBackend(gp, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !drained(ep.C()) { // ...made up for by the bind's notification
		t.Fatal("no notification on bind")
	}
	if _, err := tb.BindBackend(gp, nil); err != abi.EINVAL {
		t.Fatalf("second bind: %v", err)
	}
	send(t, tb, gp)
	if !drained(ep.C()) {
		t.Fatal("guest send not seen")
	}
	ep.Notify()
	if !g.pending(gp) {
		t.Fatal("Notify not seen")
	}
}

func TestListenBackend(t *testing.T) {
	tb, g := newTable(t, 1, nil)
	var r recorder
	ep, err := tb.ListenBackend(r.handle)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := ep.State(); st != EndpointUnbound {
		t.Fatal(st)
	}
	if err := ep.Notify(); err != ErrNotConnected {
		t.Fatal(err)
	}
	var out BindInterdomain
	if rc := call(t, tb, abi.EVTCHNOP_bind_interdomain, &BindInterdomain{RemoteDom: 0, RemotePort: ep.Port()}, &out); rc != 0 {
		t.Fatal(rc)
	}
	wantEvents(t, &r, EndpointConnectedEvent)
	if !g.pending(out.LocalPort) {
		t.Fatal("binder's port not pending")
	}
	send(t, tb, out.LocalPort)
	wantEvents(t, &r, EndpointNotifiedEvent)

	// Reset closes the guest's end.
	if rc := call(t, tb, abi.EVTCHNOP_reset, &Reset{Dom: abi.DOMID_SELF}, nil); rc != 0 {
		t.Fatal(rc)
	}
	wantEvents(t, &r, EndpointDisconnectedEvent)
	if st, _ := ep.State(); st != EndpointUnbound {
		t.Fatal(st)
	}
	// Closing an unbound endpoint frees its port; the guest can no
	// longer bind to it.
	ep.Close()
	if rc := call(t, tb, abi.EVTCHNOP_bind_interdomain, &BindInterdomain{RemoteDom: 0, RemotePort: ep.Port()}, nil); rc != ret(abi.EINVAL) {
		t.Fatalf("bind to closed endpoint: %d", rc)
	}
	if err := checkInvariants(tb); err != nil {
		t.Fatal(err)
	}
}

// TestHandlerReentry: handlers run without the lock and may call back.
func TestHandlerReentry(t *testing.T) {
	tb, g := newTable(t, 1, nil)
	echo := func(ep *Endpoint, ev EndpointEvent) {
		if ev == EndpointNotifiedEvent {
			ep.Notify()
			tb.Channels()
		}
	}
	ep, err := tb.AllocBackend(echo)
	if err != nil {
		t.Fatal(err)
	}
	_, gp := ep.State()
	g.clearPending(gp)
	send(t, tb, gp)
	if !g.pending(gp) {
		t.Fatal("echo not delivered")
	}
}

// TestBackendsConcurrent runs backends notifying while vCPU goroutines send
// and unmask, to give the race detector something to look at.
func TestBackendsConcurrent(t *testing.T) {
	tb, g := newTable(t, 4, nil)
	var eps []*Endpoint
	for i := 0; i < 4; i++ {
		ep, err := tb.AllocBackend(nil)
		if err != nil {
			t.Fatal(err)
		}
		eps = append(eps, ep)
	}
	var wg sync.WaitGroup
	for i, ep := range eps {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for j := 0; j < 500; j++ {
				ep.Notify()
			}
		}()
		go func() {
			defer wg.Done()
			_, gp := ep.State()
			for j := 0; j < 500; j++ {
				tb.Hypercall(abi.EVTCHNOP_send, le32(gp))
				tb.Hypercall(abi.EVTCHNOP_unmask, le32(gp))
				g.clearPending(gp)
				g.ack(i)
				select {
				case <-ep.C():
				default:
				}
			}
		}()
	}
	wg.Wait()
	if err := checkInvariants(tb); err != nil {
		t.Fatal(err)
	}
}

func le32(v uint32) []byte {
	b := make([]byte, 4)
	le.PutUint32(b, v)
	return b
}
