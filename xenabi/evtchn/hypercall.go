package evtchn

import (
	"github.com/xenvmm/xenvmm/xenabi/abi"
)

// ArgSize is the size of EVTCHNOP cmd's argument struct (what the
// dispatcher copies in from the guest, and back out after a successful
// call), or 0 for a command Xen does not know. cmd is the low 32 bits of
// the guest's first argument (do_event_channel_op takes an int).
func ArgSize(cmd uint32) int {
	switch cmd {
	case abi.EVTCHNOP_bind_interdomain:
		return BindInterdomainSize
	case abi.EVTCHNOP_bind_virq:
		return BindVIRQSize
	case abi.EVTCHNOP_bind_pirq:
		return BindPIRQSize
	case abi.EVTCHNOP_close:
		return CloseSize
	case abi.EVTCHNOP_send:
		return SendSize
	case abi.EVTCHNOP_status:
		return StatusSize
	case abi.EVTCHNOP_alloc_unbound:
		return AllocUnboundSize
	case abi.EVTCHNOP_bind_ipi:
		return BindIPISize
	case abi.EVTCHNOP_bind_vcpu:
		return BindVCPUSize
	case abi.EVTCHNOP_unmask:
		return UnmaskSize
	case abi.EVTCHNOP_reset, abi.EVTCHNOP_reset_cont:
		return ResetSize
	case abi.EVTCHNOP_init_control:
		return InitControlSize
	case abi.EVTCHNOP_expand_array:
		return ExpandArraySize
	case abi.EVTCHNOP_set_priority:
		return SetPrioritySize
	}
	return 0
}

// Hypercall is __HYPERVISOR_event_channel_op(cmd, arg) (do_event_channel_op
// in xen/common/event_channel.c). arg holds the argument struct the
// dispatcher copied in from the guest (at least ArgSize(cmd) bytes; fewer
// is the guest's fault: -EFAULT). On success the OUT fields are written
// back into arg, for the dispatcher to copy out. It returns 0 or -errno.
func (t *Table) Hypercall(cmd uint32, arg []byte) int64 {
	n := ArgSize(cmd)
	if n == 0 {
		return -int64(abi.ENOSYS)
	}
	if len(arg) < n {
		return -int64(abi.EFAULT)
	}
	var err error
	switch cmd {
	case abi.EVTCHNOP_alloc_unbound:
		var a AllocUnbound
		a.decode(arg)
		if err = t.AllocUnbound(&a); err == nil {
			a.encode(arg)
		}
	case abi.EVTCHNOP_bind_interdomain:
		var a BindInterdomain
		a.decode(arg)
		if err = t.BindInterdomain(&a); err == nil {
			a.encode(arg)
		}
	case abi.EVTCHNOP_bind_virq:
		var a BindVIRQ
		a.decode(arg)
		if err = t.BindVIRQ(&a); err == nil {
			a.encode(arg)
		}
	case abi.EVTCHNOP_bind_ipi:
		var a BindIPI
		a.decode(arg)
		if err = t.BindIPI(&a); err == nil {
			a.encode(arg)
		}
	case abi.EVTCHNOP_bind_pirq:
		var a BindPIRQ
		a.decode(arg)
		if err = t.BindPIRQ(&a); err == nil {
			a.encode(arg)
		}
	case abi.EVTCHNOP_close:
		var a Close
		a.decode(arg)
		err = t.Close(a.Port)
	case abi.EVTCHNOP_send:
		var a Send
		a.decode(arg)
		err = t.Send(a.Port)
	case abi.EVTCHNOP_status:
		var a Status
		a.decode(arg)
		if err = t.Status(&a); err == nil {
			a.encode(arg)
		}
	case abi.EVTCHNOP_bind_vcpu:
		var a BindVCPU
		a.decode(arg)
		err = t.BindVCPU(a.Port, a.VCPU)
	case abi.EVTCHNOP_unmask:
		var a Unmask
		a.decode(arg)
		err = t.Unmask(a.Port)
	case abi.EVTCHNOP_reset:
		var a Reset
		a.decode(arg)
		err = t.Reset(a.Dom)
	case abi.EVTCHNOP_reset_cont:
		// Xen accepts the continuation of a preempted reset from the
		// guest too; with no reset in progress it answers EBUSY. This
		// Table never preempts a reset.
		var a Reset
		a.decode(arg)
		err = t.resetCont(a.Dom)
	case abi.EVTCHNOP_init_control:
		var a InitControl
		a.decode(arg)
		if err = t.InitControl(&a); err == nil {
			a.encode(arg)
		}
	case abi.EVTCHNOP_expand_array:
		var a ExpandArray
		a.decode(arg)
		err = t.ExpandArray(a.ArrayGFN)
	case abi.EVTCHNOP_set_priority:
		var a SetPriority
		a.decode(arg)
		err = t.SetPriority(a.Port, a.Priority)
	}
	return errnoRet(err)
}

func (t *Table) resetCont(dom uint16) error {
	switch t.lookupDom(dom) {
	case domNone:
		return abi.ESRCH
	case domVMM:
		return abi.EPERM
	}
	return abi.EBUSY
}

// HypercallCompat is __HYPERVISOR_event_channel_op_compat(struct evtchn_op
// *op) (do_event_channel_op_compat, xen/arch/x86/compat.c): arg holds the
// CompatOpSize bytes of struct evtchn_op, cmd first and the argument
// union at offset 4. Only the ten operations older than the new hypercall
// are accepted (others: -ENOSYS).
func (t *Table) HypercallCompat(arg []byte) int64 {
	if len(arg) < CompatOpSize {
		return -int64(abi.EFAULT)
	}
	cmd := le.Uint32(arg)
	switch cmd {
	case abi.EVTCHNOP_bind_interdomain, abi.EVTCHNOP_bind_virq, abi.EVTCHNOP_bind_pirq,
		abi.EVTCHNOP_close, abi.EVTCHNOP_send, abi.EVTCHNOP_status,
		abi.EVTCHNOP_alloc_unbound, abi.EVTCHNOP_bind_ipi, abi.EVTCHNOP_bind_vcpu,
		abi.EVTCHNOP_unmask:
		return t.Hypercall(cmd, arg[compatUnionOff:CompatOpSize])
	}
	return -int64(abi.ENOSYS)
}

// errnoRet turns an operation's result into the hypercall return value.
func errnoRet(err error) int64 {
	if err == nil {
		return 0
	}
	if e, ok := err.(abi.Errno); ok {
		return -int64(e)
	}
	return -int64(abi.EINVAL)
}
