/*
 * events - event channels (2-level ABI), the event upcall, VIRQ_TIMER with
 * a singleshot timer, SCHEDOP_block and vcpu_time_info.
 * Hypercalls through the hypercall page.
 *
 * ABI (xen.h shared_info/vcpu_info comments, event_channel.h, vcpu.h,
 * sched.h; event_channel.c and event_2l.c for the exact behaviour):
 *  - a port becoming pending sets its evtchn_pending bit; if its mask bit
 *    is clear it also sets the selector bit and evtchn_upcall_pending;
 *  - Xen bounces to the event callback on the way back to the guest when
 *    evtchn_upcall_pending && !evtchn_upcall_mask (entry.S test_guest_events),
 *    masking events (TBF_INTERRUPT);
 *  - SCHEDOP_block unmasks events and blocks until one is pending;
 *  - EVTCHNOP_unmask re-raises a port that became pending while masked.
 */
#include "pvk.h"

PVK_KERNEL("events", "", PVK_VIA_PAGE);

#define MS 1000000UL

static evtchn_port_t timer_port;
static volatile unsigned int timer_fired;
static volatile uint64_t timer_time;
static volatile uint8_t timer_mask;
static volatile uint64_t timer_cs, timer_rflags;

static void on_event(evtchn_port_t port, struct cpu_regs *r)
{
    if (port != timer_port || !timer_port)
        return;
    timer_fired++;
    timer_time = xen_system_time();
    timer_mask = vcpu0->evtchn_upcall_mask;
    timer_cs = r->cs;
    timer_rflags = r->rflags;
}

static long singleshot(uint64_t deadline)
{
    struct vcpu_set_singleshot_timer t = { .timeout_abs_ns = deadline, .flags = 0 };
    return HYPERVISOR_vcpu_op(VCPUOP_set_singleshot_timer, 0, &t);
}

static void quiet_other_ports(void)
{
    /* The console and xenstore ports may be raised by their backends at
     * any time; mask them so they cannot disturb the checks below. */
    evtchn_port_t ports[2] = { start_info->store_evtchn, start_info->console.domU.evtchn };
    for (int i = 0; i < 2; i++) {
        if (!ports[i])
            continue;
        evtchn_set_mask(ports[i], true);
        evtchn_clear_pending(ports[i]);
    }
}

static void test_time(void)
{
    volatile struct vcpu_time_info *t = &vcpu0->time;
    uint32_t v = t->version;
    for (int i = 0; i < 1000 && (v & 1); i++)
        v = t->version;
    check(!(v & 1) && t->tsc_to_system_mul != 0,
          "vcpu_time_info: version even (no update in progress) and tsc_to_system_mul set",
          "version %u, mul %u, shift %d", v, t->tsc_to_system_mul, t->tsc_shift);
    uint64_t t0 = xen_system_time();
    for (int i = 0; i < 100; i++)
        HYPERVISOR_xen_version(XENVER_version, NULL);
    uint64_t t1 = xen_system_time();
    diag("system time %lu ns, then %lu ns", t0, t1);
    check(t0 > 0 && t1 > t0, "system time (system_time + scaled TSC delta) advances",
          "t0 %lu, t1 %lu", t0, t1);
}

static void test_timer(void)
{
    check_ret("VCPUOP_stop_periodic_timer returns 0",
              HYPERVISOR_vcpu_op(VCPUOP_stop_periodic_timer, 0, NULL), 0);

    struct evtchn_bind_virq bv = { .virq = VIRQ_TIMER, .vcpu = 0 };
    long rc = HYPERVISOR_event_channel_op(EVTCHNOP_bind_virq, &bv);
    if (!check(rc == 0 && bv.port > 0 && bv.port < 4096,
               "EVTCHNOP_bind_virq(VIRQ_TIMER, vcpu 0) returns a port", "rc %ld, port %u",
               rc, bv.port))
        return;
    timer_port = bv.port;
    diag("VIRQ_TIMER on port %u", timer_port);

    struct evtchn_status st;
    rc = evtchn_status(timer_port, &st);
    check(rc == 0 && st.status == EVTCHNSTAT_virq && st.vcpu == 0 && st.u.virq == VIRQ_TIMER,
          "EVTCHNOP_status of that port: virq, vcpu 0, VIRQ_TIMER",
          "rc %ld, status %u, vcpu %u, virq %u", rc, st.status, st.vcpu, st.u.virq);

    uint64_t start = xen_system_time();
    rc = singleshot(start + 10 * MS);
    check_ret("VCPUOP_set_singleshot_timer(now + 10 ms) returns 0", rc, 0);

    int blocks = 0;
    while (!timer_fired && blocks < 1000) {
        events_mask();
        if (timer_fired)
            break;
        blocks++;
        HYPERVISOR_sched_op(SCHEDOP_block, NULL);   /* unmasks events and waits */
    }
    events_mask();
    diag("%d SCHEDOP_block calls", blocks);
    check(timer_fired == 1, "SCHEDOP_block returns once the timer event reached the upcall",
          "timer fired %u times after %d blocks", timer_fired, blocks);
    check(timer_mask == 1 && (timer_cs & 0xffff) == (FLAT_KERNEL_CS & ~3) &&
              ((timer_cs >> 32) & 0xff) == 0 && (timer_rflags & X86_EFLAGS_IF),
          "upcall frame: events masked in the handler, kernel CS, saved mask 0 and IF set",
          "mask %u, cs %lx, rflags %lx", timer_mask, timer_cs, timer_rflags);
    uint64_t elapsed = timer_time - start;
    diag("timer after %lu ns", elapsed);
    check(timer_fired && elapsed >= 10 * MS - 100000 && elapsed < 20000 * MS,
          "the timer fired 10 ms or more after it was set (100 us slack for clock skew)",
          "elapsed %lu ns", elapsed);
    check(!evtchn_is_pending(timer_port), "the upcall cleared the timer port's pending bit",
          "still pending");

    /* A deadline in the past: current Xen sends the event at once (vcpu_op
     * VCPUOP_set_singleshot_timer), older Xen from the expired timer. */
    unsigned int before = timer_fired;
    rc = singleshot(xen_system_time() / 2);
    uint64_t until = xen_system_time() + 1000 * MS;
    while (!evtchn_is_pending(timer_port) && xen_system_time() < until)
        HYPERVISOR_sched_op(SCHEDOP_yield, NULL);
    bool pending = evtchn_is_pending(timer_port);
    events_unmask();
    events_mask();
    check(rc == 0 && pending && timer_fired == before + 1,
          "a singleshot deadline in the past fires at once; unmasking delivers it",
          "rc %ld, pending %d, fired %u -> %u", rc, pending, before, timer_fired);
}

static void test_loopback(void)
{
    struct evtchn_alloc_unbound au = { .dom = DOMID_SELF, .remote_dom = DOMID_SELF };
    long rc = HYPERVISOR_event_channel_op(EVTCHNOP_alloc_unbound, &au);
    if (!check(rc == 0 && au.port > 0 && au.port < 256,
               "EVTCHNOP_alloc_unbound(DOMID_SELF, remote DOMID_SELF) returns a port",
               "rc %ld, port %u", rc, au.port))
        return;
    evtchn_port_t a = au.port;

    struct evtchn_status st;
    rc = evtchn_status(a, &st);
    domid_t self = st.u.unbound.dom;
    diag("port %u unbound, remote domain %u", a, self);
    check(rc == 0 && st.status == EVTCHNSTAT_unbound && st.vcpu == 0 && self != DOMID_SELF,
          "EVTCHNOP_status: unbound, remote is our own domain id",
          "rc %ld, status %u, vcpu %u, dom %u", rc, st.status, st.vcpu, self);

    struct evtchn_bind_interdomain bi = { .remote_dom = DOMID_SELF, .remote_port = a };
    rc = HYPERVISOR_event_channel_op(EVTCHNOP_bind_interdomain, &bi);
    if (!check(rc == 0 && bi.local_port > 0 && bi.local_port < 256 && bi.local_port != a,
               "EVTCHNOP_bind_interdomain to our own unbound port returns a new port",
               "rc %ld, port %u", rc, bi.local_port))
        return;
    evtchn_port_t b = bi.local_port;
    diag("loopback %u <-> %u", a, b);

    /* event_channel.c evtchn_bind_interdomain sets the local port pending. */
    bool pending = evtchn_is_pending(b);
    events_unmask();
    events_mask();
    check(pending && evtchn_seen[b] == 1,
          "bind_interdomain leaves the new port pending; unmasking delivers it",
          "pending %d, delivered %u times", pending, evtchn_seen[b]);

    struct evtchn_status sa, sb;
    long ra = evtchn_status(a, &sa), rb = evtchn_status(b, &sb);
    check(ra == 0 && rb == 0 && sa.status == EVTCHNSTAT_interdomain &&
              sb.status == EVTCHNSTAT_interdomain && sa.u.interdomain.port == b &&
              sb.u.interdomain.port == a && sa.u.interdomain.dom == self &&
              sb.u.interdomain.dom == self,
          "EVTCHNOP_status: both ends interdomain, connected to each other in our domain",
          "a: rc %ld status %u dom %u port %u; b: rc %ld status %u dom %u port %u", ra,
          sa.status, sa.u.interdomain.dom, sa.u.interdomain.port, rb, sb.status,
          sb.u.interdomain.dom, sb.u.interdomain.port);

    /* send with events masked: pending, no upcall yet. */
    unsigned int seen_a = evtchn_seen[a];
    rc = evtchn_send(b);
    check(rc == 0 && evtchn_is_pending(a) && vcpu0->evtchn_upcall_pending &&
              evtchn_seen[a] == seen_a,
          "EVTCHNOP_send with events masked: the other end is pending, no upcall yet",
          "rc %ld, pending %d, upcall_pending %u, delivered %u", rc, evtchn_is_pending(a),
          vcpu0->evtchn_upcall_pending, evtchn_seen[a]);
    events_unmask();
    events_mask();
    check(evtchn_seen[a] == seen_a + 1 && !evtchn_is_pending(a),
          "unmasking events (then a hypercall) delivers the upcall for it",
          "delivered %u times, pending %d", evtchn_seen[a], evtchn_is_pending(a));

    /* send with events enabled: the upcall runs on the hypercall's way back. */
    unsigned int seen_b = evtchn_seen[b];
    events_unmask();
    rc = evtchn_send(a);
    unsigned int seen_b_now = evtchn_seen[b];
    events_mask();
    check(rc == 0 && seen_b_now == seen_b + 1,
          "EVTCHNOP_send with events enabled: the upcall runs before the hypercall returns",
          "rc %ld, delivered %u -> %u", rc, seen_b, seen_b_now);

    /* A masked port: pending bit only, no selector bit, no upcall. */
    evtchn_set_mask(a, true);
    seen_a = evtchn_seen[a];
    rc = evtchn_send(b);
    unsigned long sel = vcpu0->evtchn_pending_sel;
    check(rc == 0 && evtchn_is_pending(a) && !(sel & (1UL << (a / 64))) &&
              !vcpu0->evtchn_upcall_pending,
          "EVTCHNOP_send to a masked port sets only its pending bit",
          "rc %ld, pending %d, pending_sel %lx, upcall_pending %u", rc, evtchn_is_pending(a),
          sel, vcpu0->evtchn_upcall_pending);

    events_unmask();
    struct evtchn_unmask um = { .port = a };
    rc = HYPERVISOR_event_channel_op(EVTCHNOP_unmask, &um);
    unsigned int seen_a_now = evtchn_seen[a];
    events_mask();
    bool masked = (shared->evtchn_mask[a / 64] >> (a % 64)) & 1;
    check(rc == 0 && !masked && seen_a_now == seen_a + 1,
          "EVTCHNOP_unmask clears the mask bit and delivers the pending event",
          "rc %ld, masked %d, delivered %u -> %u", rc, masked, seen_a, seen_a_now);

    long ca = evtchn_close(a), cb = evtchn_close(b);
    ra = evtchn_status(a, &sa);
    rb = evtchn_status(b, &sb);
    check(ca == 0 && cb == 0 && ra == 0 && rb == 0 && sa.status == EVTCHNSTAT_closed &&
              sb.status == EVTCHNSTAT_closed,
          "EVTCHNOP_close of both ends; EVTCHNOP_status then reports closed",
          "close %ld/%ld, status rc %ld/%ld, status %u/%u", ca, cb, ra, rb, sa.status,
          sb.status);
}

void test_main(void)
{
    quiet_other_ports();
    evtchn_hook = on_event;
    test_time();
    test_timer();
    test_loopback();
    if (timer_port)
        check_ret("EVTCHNOP_close of the VIRQ_TIMER port returns 0", evtchn_close(timer_port), 0);
}
