package evtchn

import (
	"github.com/xenvmm/xenvmm/xenabi/abi"
)

// The EVTCHNOP_* operations as the guest invokes them (Xen's
// do_event_channel_op and the functions it calls in
// xen/common/event_channel.c). Each returns nil or an abi.Errno, with the
// errno Xen returns for the same failure, checked in the same order. OUT
// fields are filled only on success.

// domRef names a domain the guest referred to by id.
type domRef int

const (
	domNone  domRef = iota // no such domain: ESRCH
	domGuest               // the guest itself
	domVMM                 // domain 0, xenvmm
)

// lookupDom is rcu_lock_domain_by_any_id.
func (t *Table) lookupDom(d uint16) domRef {
	switch {
	case d == abi.DOMID_SELF || d == t.dom:
		return domGuest
	case d == 0:
		return domVMM
	}
	return domNone
}

// AllocUnbound is EVTCHNOP_alloc_unbound (evtchn_alloc_unbound): a new
// port, unbound, that remote domain a.RemoteDom (DOMID_SELF: the guest)
// may bind to. a.Dom must be the guest: the dummy XSM policy refuses a
// domU allocating in domain 0 (EPERM).
func (t *Table) AllocUnbound(a *AllocUnbound) error {
	t.lock()
	defer t.unlock()
	switch t.lookupDom(a.Dom) {
	case domNone:
		return abi.ESRCH
	case domVMM:
		return abi.EPERM // xsm_evtchn_unbound(XSM_TARGET)
	}
	port, err := t.getFreePort()
	if err != nil {
		return err
	}
	c := &t.ch[port]
	c.state = ecsUnbound
	c.remoteDom = a.RemoteDom
	if c.remoteDom == abi.DOMID_SELF {
		c.remoteDom = t.dom
	}
	t.portInit(port)
	a.Port = port
	return nil
}

// BindInterdomain is EVTCHNOP_bind_interdomain (evtchn_bind_interdomain):
// connect a new local port to remote port a.RemotePort of a.RemoteDom,
// which must be unbound and waiting for the guest. The remote domain is
// the guest itself (loopback) or domain 0 (a VMM endpoint made by
// ListenBackend). Like Xen, the new local port is made pending, for
// notifications the remote end may have sent before the bind.
func (t *Table) BindInterdomain(a *BindInterdomain) error {
	t.lock()
	defer t.unlock()
	rd := t.lookupDom(a.RemoteDom)
	if rd == domNone {
		return abi.ESRCH
	}
	lport, err := t.getFreePort()
	if err != nil {
		return err
	}
	rport := a.RemotePort
	switch rd {
	case domGuest:
		if !t.valid(rport) {
			return abi.EINVAL
		}
		r := &t.ch[rport]
		if r.state != ecsUnbound || r.remoteDom != t.dom {
			return abi.EINVAL
		}
		r.state, r.remoteDom, r.remotePort = ecsInterdomain, t.dom, lport
	case domVMM:
		ep := t.dom0Port(rport)
		if ep == nil || ep.state != EndpointUnbound {
			return abi.EINVAL
		}
		ep.state, ep.guestPort = EndpointConnected, lport
		t.endpointEvent(ep, EndpointConnectedEvent)
	}
	l := &t.ch[lport]
	l.state = ecsInterdomain
	l.remoteDom = t.dom
	if rd == domVMM {
		l.remoteDom = 0
	}
	l.remotePort = rport
	t.portInit(lport)
	t.setPending(l.notify, lport)
	a.LocalPort = lport
	return nil
}

// BindVIRQ is EVTCHNOP_bind_virq (evtchn_bind_virq). Per-vCPU VIRQs
// (TIMER, DEBUG, XENOPROF, XENPMU) bind once per vCPU; the others bind on
// vCPU 0 only, once per domain, and global ones only if the guest is
// their handler (Config.GlobalVIRQs).
func (t *Table) BindVIRQ(a *BindVIRQ) error {
	if a.VIRQ >= nrVIRQs {
		return abi.EINVAL
	}
	typ := getVIRQType(a.VIRQ)
	if typ != virqVCPU && a.VCPU != 0 {
		return abi.EINVAL
	}
	if !t.validVCPU(a.VCPU) {
		return abi.ENOENT
	}
	t.lock()
	defer t.unlock()
	if typ == virqGlobal && !t.globalVIRQ[a.VIRQ] {
		return abi.EBUSY // get_global_virq_handler(virq) != d
	}
	if t.virqPort[a.VCPU][a.VIRQ] != 0 {
		return abi.EEXIST
	}
	port, err := t.getFreePort()
	if err != nil {
		return err
	}
	c := &t.ch[port]
	c.state, c.notify, c.virq = ecsVIRQ, a.VCPU, a.VIRQ
	t.portInit(port)
	t.virqPort[a.VCPU][a.VIRQ] = port
	a.Port = port
	return nil
}

// BindIPI is EVTCHNOP_bind_ipi (evtchn_bind_ipi): a port that the guest
// sends on to raise an event on vCPU a.VCPU.
func (t *Table) BindIPI(a *BindIPI) error {
	if !t.validVCPU(a.VCPU) {
		return abi.ENOENT
	}
	t.lock()
	defer t.unlock()
	port, err := t.getFreePort()
	if err != nil {
		return err
	}
	c := &t.ch[port]
	c.state, c.notify = ecsIPI, a.VCPU
	t.portInit(port)
	a.Port = port
	return nil
}

// BindPIRQ is EVTCHNOP_bind_pirq (evtchn_bind_pirq). A PV domU without
// passthrough may access no PIRQ: Xen answers EINVAL for pirq >= nr_pirqs
// and EPERM (pirq_access_permitted) below.
func (t *Table) BindPIRQ(a *BindPIRQ) error {
	if a.PIRQ >= t.cfg.NrPIRQs {
		return abi.EINVAL
	}
	return abi.EPERM
}

// Close is EVTCHNOP_close (evtchn_close). Closing one end of an
// interdomain channel leaves the other end unbound, waiting for the
// guest again; a VMM endpoint sees EndpointDisconnectedEvent.
func (t *Table) Close(port uint32) error {
	t.lock()
	defer t.unlock()
	return t.close(port)
}

func (t *Table) close(port uint32) error {
	if !t.valid(port) {
		return abi.EINVAL
	}
	c := &t.ch[port]
	switch c.state {
	case ecsFree, ecsReserved:
		return abi.EINVAL
	case ecsVIRQ:
		v := c.notify
		if getVIRQType(c.virq) != virqVCPU {
			v = 0
		}
		t.virqPort[v][c.virq] = 0
	case ecsInterdomain:
		if c.remoteDom == 0 {
			ep := t.dom0[c.remotePort]
			t.free(port)
			ep.state, ep.guestPort = EndpointUnbound, 0
			t.endpointEvent(ep, EndpointDisconnectedEvent)
			return nil
		}
		r := &t.ch[c.remotePort]
		t.free(port)
		r.state, r.remoteDom, r.remotePort = ecsUnbound, t.dom, 0
		return nil
	}
	t.free(port)
	return nil
}

// Send is EVTCHNOP_send (evtchn_send): notify the remote end of an
// interdomain channel (a VMM endpoint or, for loopback, the guest's
// other port) or raise an IPI port on its vCPU. Sends on an unbound port
// are dropped silently.
func (t *Table) Send(port uint32) error {
	t.lock()
	defer t.unlock()
	if !t.valid(port) {
		return abi.EINVAL
	}
	c := &t.ch[port]
	switch c.state {
	case ecsInterdomain:
		if c.remoteDom == 0 {
			t.notifyEndpoint(t.dom0[c.remotePort])
		} else {
			t.setPending(t.ch[c.remotePort].notify, c.remotePort)
		}
	case ecsIPI:
		t.setPending(c.notify, port)
	case ecsUnbound:
	default:
		return abi.EINVAL
	}
	return nil
}

// Status is EVTCHNOP_status (evtchn_status). Asking about domain 0's
// ports is refused (EPERM) once the port is known to be valid there.
func (t *Table) Status(a *Status) error {
	t.lock()
	defer t.unlock()
	switch t.lookupDom(a.Dom) {
	case domNone:
		return abi.ESRCH
	case domVMM:
		if uint64(a.Port) >= uint64(len(t.dom0)) {
			return abi.EINVAL
		}
		return abi.EPERM // xsm_evtchn_status(XSM_TARGET)
	}
	if !t.valid(a.Port) {
		return abi.EINVAL
	}
	t.status(a.Port, a)
	return nil
}

func (t *Table) status(port uint32, a *Status) {
	c := &t.ch[port]
	a.U0, a.U1 = 0, 0
	switch c.state {
	case ecsFree, ecsReserved:
		a.Status = abi.EVTCHNSTAT_closed
	case ecsUnbound:
		a.Status = abi.EVTCHNSTAT_unbound
		a.U0 = uint32(c.remoteDom)
	case ecsInterdomain:
		a.Status = abi.EVTCHNSTAT_interdomain
		a.U0, a.U1 = uint32(c.remoteDom), c.remotePort
	case ecsPIRQ:
		a.Status = abi.EVTCHNSTAT_pirq
		a.U0 = c.pirq
	case ecsVIRQ:
		a.Status = abi.EVTCHNSTAT_virq
		a.U0 = c.virq
	case ecsIPI:
		a.Status = abi.EVTCHNSTAT_ipi
	}
	a.VCPU = c.notify
}

// BindVCPU is EVTCHNOP_bind_vcpu (evtchn_bind_vcpu): deliver port's
// events to another vCPU. Xen allows it for unbound, interdomain and PIRQ
// ports and for VIRQs that are not per-vCPU; not for IPIs.
func (t *Table) BindVCPU(port, vcpu uint32) error {
	if !t.validVCPU(vcpu) {
		return abi.ENOENT
	}
	t.lock()
	defer t.unlock()
	if !t.valid(port) {
		return abi.EINVAL
	}
	c := &t.ch[port]
	switch c.state {
	case ecsVIRQ:
		if getVIRQType(c.virq) == virqVCPU {
			return abi.EINVAL
		}
		c.notify = vcpu
	case ecsUnbound, ecsInterdomain, ecsPIRQ:
		c.notify = vcpu
	default:
		return abi.EINVAL
	}
	return nil
}

// Unmask is EVTCHNOP_unmask (evtchn_unmask): clear the port's mask and,
// if it is pending, deliver it again. Valid ports that are not in use
// succeed doing nothing.
func (t *Table) Unmask(port uint32) error {
	t.lock()
	defer t.unlock()
	if !t.valid(port) {
		return abi.EINVAL
	}
	t.unmask(port)
	return nil
}

// Reset is EVTCHNOP_reset (evtchn_reset): close every port of domain dom
// (the guest; DOMID_SELF) and return to the 2-level ABI. Resetting
// domain 0 is refused (EPERM).
func (t *Table) Reset(dom uint16) error {
	t.lock()
	defer t.unlock()
	switch t.lookupDom(dom) {
	case domNone:
		return abi.ESRCH
	case domVMM:
		return abi.EPERM // xsm_evtchn_reset(XSM_TARGET)
	}
	t.reset()
	return nil
}

func (t *Table) reset() {
	for port := uint32(1); t.valid(port); port++ {
		if t.ch[port].usable() {
			t.close(port)
		}
	}
	if t.fifo != nil {
		t.fifo = nil // evtchn_fifo_destroy, evtchn_2l_init
	}
}

// SetPriority is EVTCHNOP_set_priority (evtchn_set_priority): a FIFO
// port's queue for future events. The 2-level ABI has no priorities
// (ENOSYS).
func (t *Table) SetPriority(port, priority uint32) error {
	t.lock()
	defer t.unlock()
	if !t.valid(port) {
		return abi.EINVAL
	}
	if t.fifo == nil {
		return abi.ENOSYS
	}
	if !t.ch[port].usable() {
		return abi.EACCES
	}
	if priority > abi.EVTCHN_FIFO_PRIORITY_MIN {
		return abi.EINVAL
	}
	t.ch[port].priority = uint8(priority)
	return nil
}
