// Package evtchn is xenvmm's event-channel core: the port table of the one
// PV guest domain a xenvmm process runs, both delivery ABIs, and the
// domain-0 ends of the channels that connect the guest to the VMM's
// in-process backends.
//
// Specification:
//   - xen/include/public/event_channel.h: every EVTCHNOP_* and its argument
//     struct (args.go), struct evtchn_op for the compat hypercall, the FIFO
//     event word bits and struct evtchn_fifo_control_block;
//   - xen/include/public/xen.h: shared_info.evtchn_pending/evtchn_mask,
//     vcpu_info.evtchn_upcall_pending/evtchn_upcall_mask/evtchn_pending_sel,
//     the VIRQ_* numbers.
//
// Semantics and error numbers follow Xen's implementation
// (xen/common/event_channel.c, event_2l.c, event_fifo.c, event_channel.h,
// xen/include/xen/event.h; do_poll in xen/common/sched/core.c;
// do_event_channel_op_compat in xen/arch/x86/compat.c) as it treats an
// unprivileged PV domU under the dummy XSM policy, checked against the
// guests that use it (Linux drivers/xen/events/events_{base,2l,fifo}.c,
// NetBSD sys/arch/xen/xen/evtchn.c):
//
//   - Ports are allocated lowest-first from 1 (port 0 is reserved) up to
//     Config.MaxPort, in buckets of 64 as Xen does, so an unused port
//     inside an allocated bucket is "valid but closed" (close → EINVAL,
//     unmask → 0, status → EVTCHNSTAT_closed) while a port beyond it is
//     invalid (EINVAL everywhere).
//   - Domain 0 is xenvmm itself. The guest may name itself (DOMID_SELF or
//     its own id) and domain 0; any other domain does not exist (ESRCH).
//     Operations on domain 0's table that the dummy XSM policy keeps from
//     a domU answer EPERM.
//   - Global VIRQs (all but TIMER, DEBUG, XENOPROF, XENPMU, which are per
//     vCPU, and ARGO, which is per domain) bind on vCPU 0 only, and only
//     when the guest was made their handler (Config.GlobalVIRQs, Xen's
//     XEN_DOMCTL_set_virq_handler); otherwise EBUSY, as for any domU.
//   - A PV domU without passthrough has no PIRQs: bind_pirq answers EPERM
//     for a PIRQ below Config.NrPIRQs and EINVAL above, as Xen does.
//   - The 2-level ABI is the default; the first successful
//     EVTCHNOP_init_control switches the domain to FIFO, keeping every
//     bound port and carrying its pending state over; EVTCHNOP_reset
//     closes every port and switches back.
//
// Concurrency: one mutex guards the table. Bits in guest memory (the
// 2-level bitmaps, vcpu_info, FIFO event words and control blocks) change
// only through atomic operations (package guestmem), because the guest
// changes the same words concurrently with locked instructions. Guest.Kick
// and backend handlers are called after the mutex is released, so they may
// call back into the Table.
//
// Waking vCPUs: Guest.Kick(v) is the single wake-up signal. It is called
// when an event newly sets v's evtchn_upcall_pending (Xen's
// vcpu_mark_events_pending → vcpu_kick), and when a port that v polls
// (Table.Poll, for SCHEDOP_poll) becomes pending, masked or not (Xen's
// evtchn_check_pollers → vcpu_unblock). A vCPU blocked in SCHEDOP_block
// or SCHEDOP_poll wakes on it; a running one re-checks its vcpu_info
// before re-entering the guest.
package evtchn
