package evtchn

import (
	"github.com/xenvmm/xenvmm/xenabi/abi"
)

// Domain 0's side of interdomain channels. In Xen a backend in dom0 owns a
// port in dom0's own table; here the VMM's in-process backends (xenstore,
// console, blkback, netback) own an Endpoint, which is a domain-0 port
// held in the guest's Table. The guest sees an ordinary interdomain
// channel to domain 0 (EVTCHNOP_status: dom 0, port Endpoint.Port), and
// the transitions are Xen's: closing either end leaves the other end
// unbound and waiting for the same peer.

// EndpointState is the state of a domain-0 port.
type EndpointState int

const (
	// EndpointUnbound: waiting for the guest to bind (ECS_UNBOUND with
	// remote_domid = the guest).
	EndpointUnbound EndpointState = iota + 1
	// EndpointConnected: an interdomain channel to a guest port.
	EndpointConnected
	// EndpointClosed: Endpoint.Close was called; the port is free.
	EndpointClosed
)

func (s EndpointState) String() string {
	switch s {
	case EndpointUnbound:
		return "unbound"
	case EndpointConnected:
		return "connected"
	case EndpointClosed:
		return "closed"
	}
	return "invalid"
}

// EndpointEvent is what a Handler is told.
type EndpointEvent int

const (
	// EndpointNotifiedEvent: the guest sent on its port (EVTCHNOP_send),
	// or a bind made the endpoint conservatively pending as Xen's
	// evtchn_bind_interdomain does.
	EndpointNotifiedEvent EndpointEvent = iota + 1
	// EndpointConnectedEvent: the guest bound a port to this endpoint.
	EndpointConnectedEvent
	// EndpointDisconnectedEvent: the guest closed its port (EVTCHNOP_close
	// or EVTCHNOP_reset); the endpoint is unbound again and the guest may
	// bind to it anew.
	EndpointDisconnectedEvent
)

func (e EndpointEvent) String() string {
	switch e {
	case EndpointNotifiedEvent:
		return "notified"
	case EndpointConnectedEvent:
		return "connected"
	case EndpointDisconnectedEvent:
		return "disconnected"
	}
	return "invalid"
}

// Handler receives an Endpoint's events synchronously on the goroutine
// that caused them (usually a vCPU in a hypercall), after the Table's lock
// is released: it may call the Table and the Endpoint, and should return
// quickly.
type Handler func(ep *Endpoint, ev EndpointEvent)

// Endpoint is a domain-0 port of the VMM: the backend end of an
// interdomain channel with the guest.
type Endpoint struct {
	t       *Table
	port    uint32
	h       Handler
	notifyC chan struct{}
	changeC chan struct{}

	// Guarded by t.mu.
	state     EndpointState
	guestPort uint32
}

type endpointEvent struct {
	ep *Endpoint
	ev EndpointEvent
}

// Port is the endpoint's domain-0 port number, what the guest passes as
// remote_port to EVTCHNOP_bind_interdomain with remote_dom 0.
func (e *Endpoint) Port() uint32 { return e.port }

// State is the endpoint's state and, when connected, the guest's port.
func (e *Endpoint) State() (EndpointState, uint32) {
	e.t.lock()
	defer e.t.unlock()
	return e.state, e.guestPort
}

// C delivers the guest's notifications, coalesced: one value stands for
// any number of notifications since the last receive, as a pending bit
// does.
func (e *Endpoint) C() <-chan struct{} { return e.notifyC }

// Changes signals, coalesced, that State may have changed (connect,
// disconnect).
func (e *Endpoint) Changes() <-chan struct{} { return e.changeC }

// Notify raises the event on the guest's port (what EVTCHNOP_send on the
// domain-0 port does). It returns ErrNotConnected while the guest has not
// bound to the endpoint (Xen drops such a send silently) and ErrClosed
// after Close.
func (e *Endpoint) Notify() error {
	t := e.t
	t.lock()
	defer t.unlock()
	switch e.state {
	case EndpointClosed:
		return ErrClosed
	case EndpointUnbound:
		return ErrNotConnected
	}
	t.setPending(t.ch[e.guestPort].notify, e.guestPort)
	return nil
}

// Close closes the domain-0 port (evtchn_close in domain 0). If the guest
// was connected, its port becomes unbound with remote domain 0, as in
// Xen, so a backend may BindBackend to it again. Close after Close
// returns ErrClosed.
func (e *Endpoint) Close() error {
	t := e.t
	t.lock()
	defer t.unlock()
	if e.state == EndpointClosed {
		return ErrClosed
	}
	if e.state == EndpointConnected {
		c := &t.ch[e.guestPort]
		c.state, c.remoteDom, c.remotePort = ecsUnbound, 0, 0
	}
	e.state, e.guestPort = EndpointClosed, 0
	t.dom0[e.port] = nil
	signal(e.changeC)
	return nil
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// endpointEvent records ev for ep's handler and signals its channels.
func (t *Table) endpointEvent(ep *Endpoint, ev EndpointEvent) {
	if ev == EndpointNotifiedEvent {
		signal(ep.notifyC)
	} else {
		signal(ep.changeC)
	}
	if ep.h != nil {
		t.epEvents = append(t.epEvents, endpointEvent{ep, ev})
	}
}

func (t *Table) notifyEndpoint(ep *Endpoint) { t.endpointEvent(ep, EndpointNotifiedEvent) }

// dom0Port is domain 0's port p, or nil if it is not in use.
func (t *Table) dom0Port(p uint32) *Endpoint {
	if uint64(p) >= uint64(len(t.dom0)) {
		return nil
	}
	return t.dom0[p]
}

// newEndpoint allocates the lowest free domain-0 port (port 0 is
// reserved, as in every domain), growing the table in buckets.
func (t *Table) newEndpoint(h Handler) (*Endpoint, error) {
	port := uint32(1)
	for ; uint64(port) < uint64(len(t.dom0)) && t.dom0[port] != nil; port++ {
	}
	if port >= abi.EVTCHN_FIFO_NR_CHANNELS {
		return nil, abi.ENOSPC
	}
	if uint64(port) >= uint64(len(t.dom0)) {
		t.dom0 = append(t.dom0, make([]*Endpoint, portsPerBucket)...)
	}
	ep := &Endpoint{
		t: t, port: port, h: h,
		notifyC: make(chan struct{}, 1),
		changeC: make(chan struct{}, 1),
		state:   EndpointUnbound,
	}
	t.dom0[port] = ep
	return ep, nil
}

// connect is domain 0's evtchn_bind_interdomain to guest port gport,
// which must be unbound and waiting for domain 0.
func (t *Table) connect(h Handler, gport uint32) (*Endpoint, error) {
	if !t.valid(gport) {
		return nil, abi.EINVAL
	}
	g := &t.ch[gport]
	if g.state != ecsUnbound || g.remoteDom != 0 {
		return nil, abi.EINVAL
	}
	ep, err := t.newEndpoint(h)
	if err != nil {
		return nil, err
	}
	g.state, g.remoteDom, g.remotePort = ecsInterdomain, 0, ep.port
	ep.state, ep.guestPort = EndpointConnected, gport
	t.endpointEvent(ep, EndpointConnectedEvent)
	// Xen sets the binder's new local port pending, for notifications
	// the guest may have sent on its unbound port.
	t.notifyEndpoint(ep)
	return ep, nil
}

// AllocBackend gives the guest a new port connected to a new VMM
// endpoint: what the toolstack's alloc_unbound(guest, remote 0) followed
// by the backend daemon's bind_interdomain does for start_info's
// store_evtchn and console.evtchn. The guest's port is Endpoint.State's
// second result. h may be nil.
func (t *Table) AllocBackend(h Handler) (*Endpoint, error) {
	t.lock()
	defer t.unlock()
	port, err := t.getFreePort()
	if err != nil {
		return nil, err
	}
	c := &t.ch[port]
	c.state, c.remoteDom = ecsUnbound, 0
	t.portInit(port)
	return t.connect(h, port)
}

// BindBackend connects a new VMM endpoint to guestPort, a port the guest
// frontend allocated with EVTCHNOP_alloc_unbound(remote_dom 0) and
// published in xenstore. It fails with abi.EINVAL unless guestPort is
// unbound and waiting for domain 0. h may be nil.
func (t *Table) BindBackend(guestPort uint32, h Handler) (*Endpoint, error) {
	t.lock()
	defer t.unlock()
	return t.connect(h, guestPort)
}

// ListenBackend allocates an unbound domain-0 port waiting for the guest,
// which connects with EVTCHNOP_bind_interdomain(remote_dom 0, remote_port
// Endpoint.Port). h may be nil.
func (t *Table) ListenBackend(h Handler) (*Endpoint, error) {
	t.lock()
	defer t.unlock()
	return t.newEndpoint(h)
}
