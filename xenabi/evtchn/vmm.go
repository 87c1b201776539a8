package evtchn

import (
	"github.com/xenvmm/xenvmm/xenabi/abi"
	"github.com/xenvmm/xenvmm/xenabi/guestmem"
)

// What the rest of the VMM uses besides the hypercall: VIRQs, SCHEDOP_poll
// support, vcpu_info moves and a snapshot for debugging.

// MaxPollPorts is do_poll's limit on sched_poll.nr_ports.
const MaxPollPorts = 128

// RaiseVIRQ raises virq, as Xen's send_guest_vcpu_virq (per-vCPU VIRQs:
// on vcpu) and send_guest_domain_virq / send_global_virq (the others: on
// the vCPU the port is bound to; vcpu is ignored) do. A VIRQ the guest has
// not bound is dropped. Errors: abi.EINVAL for virq >= NR_VIRQS, abi.ENOENT
// for a per-vCPU VIRQ on a vCPU that does not exist.
func (t *Table) RaiseVIRQ(virq uint32, vcpu int) error {
	if virq >= nrVIRQs {
		return abi.EINVAL
	}
	perVCPU := getVIRQType(virq) == virqVCPU
	if !perVCPU {
		vcpu = 0
	} else if vcpu < 0 || vcpu >= t.nvcpus {
		return abi.ENOENT
	}
	t.lock()
	defer t.unlock()
	port := t.virqPort[vcpu][virq]
	if port == 0 {
		return nil
	}
	if perVCPU {
		t.setPending(uint32(vcpu), port)
	} else {
		t.setPending(t.ch[port].notify, port)
	}
	return nil
}

// VIRQBound reports whether the guest has bound virq (on vcpu, for a
// per-vCPU VIRQ): Xen's evtchn_virq_enabled.
func (t *Table) VIRQBound(virq uint32, vcpu int) bool {
	if virq >= nrVIRQs || vcpu < 0 || vcpu >= t.nvcpus {
		return false
	}
	if getVIRQType(virq) != virqVCPU {
		vcpu = 0
	}
	t.lock()
	defer t.unlock()
	return t.virqPort[vcpu][virq] != 0
}

// Pending reports whether port is in use and pending (evtchn_is_pending),
// in whichever ABI the guest uses.
func (t *Table) Pending(port uint32) bool {
	t.lock()
	defer t.unlock()
	return t.valid(port) && t.isPending(port)
}

// Masked reports whether port is masked; ports not in use count as masked
// (evtchn_is_masked).
func (t *Table) Masked(port uint32) bool {
	t.lock()
	defer t.unlock()
	return !t.valid(port) || t.isMasked(port)
}

// NeedsDelivery is Xen's local_events_need_delivery for vCPU vcpu:
// evtchn_upcall_pending set and evtchn_upcall_mask clear in its vcpu_info.
func (t *Table) NeedsDelivery(vcpu int) bool {
	if vcpu < 0 || vcpu >= t.nvcpus {
		return false
	}
	return t.needsDelivery(uint32(vcpu))
}

// Poll is the event-channel half of SCHEDOP_poll (do_poll,
// xen/common/sched/core.c) for vCPU vcpu. It answers ready when an upcall
// awaits delivery or one of ports is pending (masked or not); the
// hypercall then returns 0 at once. Otherwise it registers vcpu as polling
// ports (all ports, if none are given) and answers not ready: the
// scheduler blocks the vCPU until Guest.Kick(vcpu), the poll timeout or
// another wake-up, then calls StopPoll and returns 0 to the guest.
// Errors, before anything is registered: abi.EINVAL for more than
// MaxPollPorts ports or for a port not in use (evtchn_port_poll).
func (t *Table) Poll(vcpu int, ports []uint32) (ready bool, err error) {
	if len(ports) > MaxPollPorts {
		return false, abi.EINVAL
	}
	if vcpu < 0 || vcpu >= t.nvcpus {
		return false, abi.ENOENT
	}
	t.lock()
	defer t.unlock()
	if t.needsDelivery(uint32(vcpu)) {
		return true, nil
	}
	for _, p := range ports {
		if !t.valid(p) || !t.ch[p].usable() {
			return false, abi.EINVAL
		}
		if t.isPending(p) {
			return true, nil
		}
	}
	t.pollMask[vcpu] = true
	t.pollPort[vcpu] = -1
	if len(ports) == 1 {
		t.pollPort[vcpu] = int64(ports[0])
	}
	return false, nil
}

// StopPoll ends vcpu's poll registration (when it wakes for any reason).
func (t *Table) StopPoll(vcpu int) {
	if vcpu < 0 || vcpu >= t.nvcpus {
		return
	}
	t.lock()
	defer t.unlock()
	t.pollMask[vcpu] = false
	t.pollPort[vcpu] = 0
}

// VCPUInfoMoved does the event-channel part of VCPUOP_register_vcpu_info
// once the guest's new vcpu_info is in place (Guest.VCPUInfo returns it):
// like Xen, set every bit of evtchn_pending_sel and mark events pending, so
// that nothing raised during the move is lost; the guest takes a spurious
// upcall.
func (t *Table) VCPUInfoMoved(vcpu int) {
	if vcpu < 0 || vcpu >= t.nvcpus {
		return
	}
	t.lock()
	defer t.unlock()
	if vi := t.vcpuInfo(uint32(vcpu)); vi != nil {
		guestmem.Store64(vi, abi.VCPUInfoPendingSel, ^uint64(0))
		t.markEventsPending(uint32(vcpu))
	}
}

// FIFO reports whether the guest switched to the FIFO ABI.
func (t *Table) FIFO() bool {
	t.lock()
	defer t.unlock()
	return t.fifo != nil
}

// ChannelInfo describes one port in use, for debugging (Xen's 'e' debug
// key dumps the same).
type ChannelInfo struct {
	Port   uint32
	Status uint32 // EVTCHNSTAT_*
	VCPU   uint32 // notify vCPU
	// Unbound: RemoteDom. Interdomain: RemoteDom and RemotePort.
	RemoteDom  uint16
	RemotePort uint32
	VIRQ       uint32 // EVTCHNSTAT_virq
	Pending    bool
	Masked     bool
	Priority   uint8 // FIFO only
}

// Channels lists the ports in use, in order.
func (t *Table) Channels() []ChannelInfo {
	t.lock()
	defer t.unlock()
	var out []ChannelInfo
	for port := range t.ch {
		p := uint32(port)
		c := &t.ch[p]
		if !c.usable() {
			continue
		}
		var s Status
		t.status(p, &s)
		ci := ChannelInfo{
			Port: p, Status: s.Status, VCPU: s.VCPU,
			Pending: t.isPending(p), Masked: t.isMasked(p),
		}
		switch s.Status {
		case abi.EVTCHNSTAT_unbound:
			ci.RemoteDom = uint16(s.U0)
		case abi.EVTCHNSTAT_interdomain:
			ci.RemoteDom, ci.RemotePort = uint16(s.U0), s.U1
		case abi.EVTCHNSTAT_virq:
			ci.VIRQ = s.U0
		}
		if t.fifo != nil {
			ci.Priority = c.priority
		}
		out = append(out, ci)
	}
	return out
}
