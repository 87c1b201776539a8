/*
 * xen.c - start of day, page-table helpers, event channels and time.
 */
#include "pvk.h"

struct shared_info *shared;
uint8_t boot_upcall_mask;
/* A page of the image that pvk_start points at the shared info frame. */
unsigned char shared_info_page[4096] __aligned(4096);

volatile unsigned int evtchn_seen[256];
volatile unsigned int upcalls;
void (*evtchn_hook)(evtchn_port_t port, struct cpu_regs *regs);

#define READ_ONCE(x)     (*(const volatile __typeof__(x) *)&(x))
#define WRITE_ONCE(x, v) (*(volatile __typeof__(x) *)&(x) = (v))

/*
 * The common prologue every kernel runs before test_main:
 *  1. set_trap_table for all exception vectors (a fault is reported, not fatal);
 *  2. map start_info->shared_info (a machine address, xen.h) over
 *     shared_info_page with update_va_mapping, as Linux maps its fixmap;
 *  3. keep events masked (vcpu_info.evtchn_upcall_mask = 1) and register the
 *     event and failsafe callbacks (callback.h), so that a stray event never
 *     finds Xen without a callback (create_bounce_frame crashes the domain).
 * Failures here print "Bail out!" and crash the domain.
 */
void __noreturn pvk_start(void)
{
    long rc = install_trap_table();
    if (rc)
        bail("set_trap_table returned %ld", rc);

    rc = HYPERVISOR_update_va_mapping((unsigned long)shared_info_page,
                                      (start_info->shared_info & PTE_ADDR_MASK) | PTE_KERNEL_RW,
                                      UVMF_INVLPG);
    if (rc)
        bail("update_va_mapping(shared_info) returned %ld", rc);
    shared = (struct shared_info *)shared_info_page;
    boot_upcall_mask = READ_ONCE(vcpu0->evtchn_upcall_mask);
    events_mask();

    struct callback_register ev = {
        .type = CALLBACKTYPE_event,
        .address = (unsigned long)event_entry,
    };
    struct callback_register fs = {
        .type = CALLBACKTYPE_failsafe,
        .address = (unsigned long)failsafe_entry,
    };
    rc = HYPERVISOR_callback_op(CALLBACKOP_register, &ev);
    if (rc)
        bail("callback_op(register event) returned %ld", rc);
    rc = HYPERVISOR_callback_op(CALLBACKOP_register, &fs);
    if (rc)
        bail("callback_op(register failsafe) returned %ld", rc);

    diag("xenvmm-test kernel %s, hypercalls via %s", pvk_name,
         pvk_hypercall_page ? "the hypercall page" : "syscall");
    test_main();
    pvk_finish();
}

void __noreturn failsafe_dispatch(uint64_t *frame)
{
    bail("failsafe callback: Xen could not load segments (rip %lx, cs %lx)",
         frame[6], frame[7]);
}

/* ---- memory ---------------------------------------------------------- */
unsigned long initial_mapping_pages(void)
{
    return virt_to_pfn((void *)start_info->pt_base) + start_info->nr_pt_frames;
}

void *mfn_to_virt(unsigned long mfn)
{
    unsigned long pfn = m2p()[mfn];
    if (pfn >= initial_mapping_pages() || pfn >= start_info->nr_pages || p2m()[pfn] != mfn)
        return NULL;
    return (void *)(VIRT_BASE + (pfn << PAGE_SHIFT));
}

static unsigned int pt_index(unsigned long va, int level)
{
    return (va >> (PAGE_SHIFT + 9 * (level - 1))) & 511;
}

/* The table of level `level` that covers va, read-only through the
 * initial mapping (the bootstrap tables are part of it, xen.h item 3g). */
static uint64_t *table_for(unsigned long va, int level, unsigned long *mfn)
{
    uint64_t *table = (uint64_t *)start_info->pt_base;
    *mfn = virt_to_mfn(table);
    for (int l = 4; l > level; l--) {
        uint64_t e = READ_ONCE(table[pt_index(va, l)]);
        if (!(e & _PAGE_PRESENT))
            return NULL;
        *mfn = (e & PTE_ADDR_MASK) >> PAGE_SHIFT;
        table = mfn_to_virt(*mfn);
        if (!table)
            return NULL;
    }
    return table;
}

uint64_t pte_maddr(unsigned long va, int level)
{
    unsigned long mfn;
    if (!table_for(va, level, &mfn))
        return 0;
    return (mfn << PAGE_SHIFT) + 8 * pt_index(va, level);
}

uint64_t read_pte(unsigned long va, int level, bool *ok)
{
    unsigned long mfn;
    uint64_t *table = table_for(va, level, &mfn);
    *ok = table != NULL;
    return table ? READ_ONCE(table[pt_index(va, level)]) : 0;
}

long map_mfn_at(void *va, unsigned long mfn, uint64_t flags)
{
    return HYPERVISOR_update_va_mapping((unsigned long)va, (mfn << PAGE_SHIFT) | flags,
                                        UVMF_INVLPG);
}

long remap_page(void *va, uint64_t flags)
{
    return map_mfn_at(va, virt_to_mfn(va), flags);
}

/* ---- event channels (event_channel.h, xen.h shared_info) -------------- */
void events_mask(void)
{
    WRITE_ONCE(vcpu0->evtchn_upcall_mask, 1);
    barrier();
}

void force_evtchn_callback(void)
{
    /* Any hypercall returns through Xen's test_guest_events; XENVER_version
     * is the customary harmless one (Linux xen_force_evtchn_callback). */
    HYPERVISOR_xen_version(XENVER_version, NULL);
}

void events_unmask(void)
{
    barrier();
    WRITE_ONCE(vcpu0->evtchn_upcall_mask, 0);
    barrier();
    /* An event that arrived while masked raised no upcall: collect it. */
    if (READ_ONCE(vcpu0->evtchn_upcall_pending))
        force_evtchn_callback();
}

void evtchn_set_mask(evtchn_port_t port, bool masked)
{
    unsigned long bit = 1UL << (port % 64);
    if (masked)
        __atomic_fetch_or(&shared->evtchn_mask[port / 64], bit, __ATOMIC_SEQ_CST);
    else
        __atomic_fetch_and(&shared->evtchn_mask[port / 64], ~bit, __ATOMIC_SEQ_CST);
}

bool evtchn_is_pending(evtchn_port_t port)
{
    return (READ_ONCE(shared->evtchn_pending[port / 64]) >> (port % 64)) & 1;
}

void evtchn_clear_pending(evtchn_port_t port)
{
    __atomic_fetch_and(&shared->evtchn_pending[port / 64], ~(1UL << (port % 64)),
                       __ATOMIC_SEQ_CST);
}

long evtchn_send(evtchn_port_t port)
{
    struct evtchn_send op = { .port = port };
    return HYPERVISOR_event_channel_op(EVTCHNOP_send, &op);
}

long evtchn_close(evtchn_port_t port)
{
    struct evtchn_close op = { .port = port };
    return HYPERVISOR_event_channel_op(EVTCHNOP_close, &op);
}

long evtchn_status(evtchn_port_t port, struct evtchn_status *st)
{
    memset(st, 0, sizeof(*st));
    st->dom = DOMID_SELF;
    st->port = port;
    return HYPERVISOR_event_channel_op(EVTCHNOP_status, st);
}

/*
 * The event upcall (CALLBACKTYPE_event), 2-level ABI as xen.h describes
 * it: clear evtchn_upcall_pending first, then take the selector word with
 * an atomic exchange, then for each selected word the pending & ~mask bits,
 * clearing each pending bit before handling it. Repeat while Xen raised a
 * new upcall meanwhile.
 */
void evtchn_dispatch(struct cpu_regs *regs)
{
    struct vcpu_info *v = vcpu0;
    upcalls++;
    do {
        WRITE_ONCE(v->evtchn_upcall_pending, 0);
        unsigned long sel = __atomic_exchange_n(&v->evtchn_pending_sel, 0, __ATOMIC_SEQ_CST);
        while (sel) {
            unsigned int w = __builtin_ctzl(sel);
            sel &= sel - 1;
            unsigned long pend = READ_ONCE(shared->evtchn_pending[w]) &
                                 ~READ_ONCE(shared->evtchn_mask[w]);
            while (pend) {
                unsigned int b = __builtin_ctzl(pend);
                pend &= pend - 1;
                evtchn_port_t port = w * 64 + b;
                evtchn_clear_pending(port);
                if (port < ARRAY_SIZE(evtchn_seen))
                    evtchn_seen[port]++;
                if (evtchn_hook)
                    evtchn_hook(port, regs);
            }
        }
    } while (READ_ONCE(v->evtchn_upcall_pending));
    regs->error_code = 0;   /* HYPERVISOR_iret flags */
}

/* ---- time (xen.h struct vcpu_time_info) ------------------------------- */
/*
 * system_time + ((((tsc - tsc_timestamp) << tsc_shift) * tsc_to_system_mul) >> 32),
 * read under the version protocol: retry while the version is odd or changed.
 */
uint64_t xen_system_time(void)
{
    volatile struct vcpu_time_info *t = &vcpu0->time;
    uint32_t version, mul;
    uint64_t stamp, sys, tsc;
    int8_t shift;

    do {
        version = t->version;
        barrier();
        stamp = t->tsc_timestamp;
        sys = t->system_time;
        mul = t->tsc_to_system_mul;
        shift = t->tsc_shift;
        tsc = rdtsc();
        barrier();
    } while ((version & 1) || version != t->version);

    uint64_t delta = tsc - stamp;
    if ((int64_t)delta < 0)
        delta = 0;                      /* the TSC cannot run backwards */
    if (shift < 0)
        delta >>= -shift;
    else
        delta <<= shift;
    return sys + (uint64_t)(((unsigned __int128)delta * mul) >> 32);
}
