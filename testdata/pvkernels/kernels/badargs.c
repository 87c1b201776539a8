/*
 * badargs - hypercalls with bad arguments, each with the error Xen returns
 * (the source of Xen 4.2x named for each), and the guest keeps running.
 * Hypercalls through the hypercall page; the unknown-number case is made
 * both ways.
 */
#include "pvk.h"

PVK_KERNEL("badargs", "", PVK_VIA_PAGE);

#define UNMAPPED_VA     0x0000000012345000UL   /* nothing maps L4 slot 0 */
#define NO_L1_VA        0x0000100000000000UL   /* no page tables below it at all */
#define XEN_RANGE_VA    (HYPERVISOR_VIRT_START + 0x1000)
#define NONCANONICAL    0x8000000000000000UL
#define FAR_MFN         0x7ffffffffUL          /* 512 TiB up: no host has RAM there */

static unsigned char window[4096] __aligned(4096);
static unsigned char plain_page[4096] __aligned(4096);

static void unknown_hypercalls(void)
{
    /* pv/hypercall.c: numbers without a handler give -ENOSYS. */
    check_ret("hypercall 60 by syscall returns -ENOSYS",
              hypercall_raw_syscall(60, 0, 0, 0, 0, 0), -XEN_ENOSYS);
    check_ret("hypercall 60 through the hypercall page returns -ENOSYS",
              hypercall_raw_page(60, 0, 0, 0, 0, 0), -XEN_ENOSYS);
    /* Unknown sub-operations (default: cases of each handler). */
    check_ret("sched_op with an unknown command returns -ENOSYS",
              HYPERVISOR_sched_op(100, NULL), -XEN_ENOSYS);
    check_ret("event_channel_op with an unknown command returns -ENOSYS",
              HYPERVISOR_event_channel_op(100, NULL), -XEN_ENOSYS);
    check_ret("mmuext_op with an unknown command returns -ENOSYS",
              HYPERVISOR_mmuext_op(&(struct mmuext_op){ .cmd = 99 }, 1, NULL, DOMID_SELF),
              -XEN_ENOSYS);
    check_ret("callback_op with an unknown command returns -ENOSYS",
              HYPERVISOR_callback_op(99, NULL), -XEN_ENOSYS);
    check_ret("vcpu_op with an unknown command returns -ENOSYS",
              HYPERVISOR_vcpu_op(99, 0, NULL), -XEN_ENOSYS);
}

static void bad_pointers(void)
{
    /* common/memory.c: copy_from_guest fails -> -EFAULT; x86 uaccess.h
     * access_ok also refuses any pointer into Xen's range. */
    check_ret("memory_op(XENMEM_current_reservation) with an unmapped pointer returns -EFAULT",
              HYPERVISOR_memory_op(XENMEM_current_reservation, (void *)UNMAPPED_VA),
              -XEN_EFAULT);
    check_ret("memory_op(XENMEM_current_reservation) with a pointer into Xen's range returns -EFAULT",
              HYPERVISOR_memory_op(XENMEM_current_reservation, (void *)XEN_RANGE_VA),
              -XEN_EFAULT);
    struct xen_memory_domain self = { .domid = DOMID_SELF };
    long rc = HYPERVISOR_memory_op(XENMEM_current_reservation, &self);
    diag("current reservation %ld pages", rc);
    check(rc > 0, "memory_op(XENMEM_current_reservation, DOMID_SELF) returns a page count",
          "returned %ld", rc);
    check_ret("set_trap_table with an unmapped table returns -EFAULT",
              HYPERVISOR_set_trap_table((void *)UNMAPPED_VA), -XEN_EFAULT);
    check_ret("mmu_update with an unmapped request list returns -EFAULT",
              HYPERVISOR_mmu_update((void *)UNMAPPED_VA, 1, NULL, DOMID_SELF), -XEN_EFAULT);
    check_ret("sched_op(SCHEDOP_shutdown) with an unmapped argument returns -EFAULT",
              HYPERVISOR_sched_op(SCHEDOP_shutdown, (void *)UNMAPPED_VA), -XEN_EFAULT);
}

static void bad_values(void)
{
    /* kernel.c XENVER_get_features: only submap 0 exists. */
    struct xen_feature_info fi = { .submap_idx = 1 };
    check_ret("XENVER_get_features of submap 1 returns -EINVAL",
              HYPERVISOR_xen_version(XENVER_get_features, &fi), -XEN_EINVAL);

    /* pv/callback.c: set_trap_table and callbacks want canonical addresses. */
    struct trap_info ti[2] = {
        { .vector = 0x40, .flags = 0, .cs = FLAT_KERNEL_CS, .address = NONCANONICAL },
        { .address = 0 },
    };
    check_ret("set_trap_table with a non-canonical handler returns -EINVAL",
              HYPERVISOR_set_trap_table(ti), -XEN_EINVAL);
    struct callback_register cb = { .type = CALLBACKTYPE_event, .address = NONCANONICAL };
    check_ret("callback_op registering a non-canonical event callback returns -EINVAL",
              HYPERVISOR_callback_op(CALLBACKOP_register, &cb), -XEN_EINVAL);
    cb.type = 6;
    cb.address = (unsigned long)event_entry;
    check_ret("callback_op registering an unknown callback type returns -ENOSYS",
              HYPERVISOR_callback_op(CALLBACKOP_register, &cb), -XEN_ENOSYS);
    struct callback_unregister un = { .type = CALLBACKTYPE_event };
    check_ret("callback_op unregistering the event callback returns -EINVAL",
              HYPERVISOR_callback_op(CALLBACKOP_unregister, &un), -XEN_EINVAL);

    /* common/domain.c do_vm_assist, VCPUOP_set_periodic_timer; x86 do_vcpu_op. */
    check_ret("vm_assist with an unknown type returns -EINVAL",
              HYPERVISOR_vm_assist(VMASST_CMD_enable, 31), -XEN_EINVAL);
    check_ret("vcpu_op on vcpu 1000 returns -ENOENT",
              HYPERVISOR_vcpu_op(VCPUOP_stop_periodic_timer, 1000, NULL), -XEN_ENOENT);
    struct vcpu_set_periodic_timer pt = { .period_ns = 100000 };
    check_ret("VCPUOP_set_periodic_timer below 1 ms returns -EINVAL",
              HYPERVISOR_vcpu_op(VCPUOP_set_periodic_timer, 0, &pt), -XEN_EINVAL);
}

static void bad_event_channels(void)
{
    /* event_channel.c evtchn_bind_virq */
    struct evtchn_bind_virq bv = { .virq = NR_VIRQS, .vcpu = 0 };
    check_ret("EVTCHNOP_bind_virq with an out-of-range VIRQ returns -EINVAL",
              HYPERVISOR_event_channel_op(EVTCHNOP_bind_virq, &bv), -XEN_EINVAL);
    bv.virq = VIRQ_TIMER;
    bv.vcpu = 1000;
    check_ret("EVTCHNOP_bind_virq on vcpu 1000 returns -ENOENT",
              HYPERVISOR_event_channel_op(EVTCHNOP_bind_virq, &bv), -XEN_ENOENT);

    /* evtchn_send: a free port's state falls to the default case. */
    struct evtchn_alloc_unbound au = { .dom = DOMID_SELF, .remote_dom = 0 };
    long rc = HYPERVISOR_event_channel_op(EVTCHNOP_alloc_unbound, &au);
    long rc2 = rc == 0 ? evtchn_close(au.port) : rc;
    check(rc == 0 && rc2 == 0, "EVTCHNOP_alloc_unbound then EVTCHNOP_close return 0",
          "alloc %ld (port %u), close %ld", rc, au.port, rc2);
    check_ret("EVTCHNOP_send to that closed port returns -EINVAL", evtchn_send(au.port),
              -XEN_EINVAL);
    check_ret("EVTCHNOP_send to a port never allocated (4095) returns -EINVAL",
              evtchn_send(4095), -XEN_EINVAL);
    check_ret("EVTCHNOP_close of the reserved port 0 returns -EINVAL", evtchn_close(0),
              -XEN_EINVAL);
}

static void bad_mmu(void)
{
    unsigned int done = 99;
    /* mm.c get_page_from_l1e: a frame that is not RAM and not I/O memory
     * this domain may map: "non-privileged attempt to map MMIO space". */
    struct mmu_update req = {
        .ptr = pte_maddr((unsigned long)window, 1) | MMU_NORMAL_PT_UPDATE,
        .val = (FAR_MFN << PAGE_SHIFT) | PTE_KERNEL_RW,
    };
    long rc = HYPERVISOR_mmu_update(&req, 1, &done, DOMID_SELF);
    check(rc == -XEN_EPERM && done == 0,
          "mmu_update of a PTE pointing outside the domain's memory returns -EPERM",
          "returned %ld, done %u", rc, done);
    window[0] = 1;  /* the old mapping is still there */

    /* mm.c __do_update_va_mapping: no L1 for the VA. */
    check_ret("update_va_mapping of a VA without an L1 table returns -EINVAL",
              HYPERVISOR_update_va_mapping(NO_L1_VA, virt_to_maddr(window) | PTE_KERNEL_RW,
                                           UVMF_INVLPG),
              -XEN_EINVAL);

    /* A page-table frame cannot get a writable mapping (get_page_type fails:
     * get_page_from_l1e -> could_not_pin). Read-only is fine. */
    unsigned long l4_mfn = virt_to_mfn((void *)start_info->pt_base);
    check_ret("update_va_mapping of the L4 frame writable returns -EBUSY",
              map_mfn_at(window, l4_mfn, PTE_KERNEL_RW), -XEN_EBUSY);
    rc = map_mfn_at(window, l4_mfn, PTE_KERNEL_RO);
    const uint64_t *alias = (const uint64_t *)window, *l4 = (const uint64_t *)start_info->pt_base;
    check(rc == 0 && alias[511] == l4[511] && (alias[511] & _PAGE_PRESENT),
          "the L4 frame can be mapped read-only at another VA and reads the same",
          "rc %ld, slot 511 %lx vs %lx", rc, rc == 0 ? alias[511] : 0, l4[511]);
    remap_page(window, PTE_KERNEL_RW);

    /* mm.c do_mmuext_op */
    struct mmuext_op op = { .cmd = MMUEXT_PIN_L4_TABLE, .arg1.mfn = l4_mfn };
    check_ret("MMUEXT_PIN_L4_TABLE of the boot L4, already pinned by the builder, returns -EINVAL",
              HYPERVISOR_mmuext_op(&op, 1, NULL, DOMID_SELF), -XEN_EINVAL);
    op.cmd = MMUEXT_UNPIN_TABLE;
    op.arg1.mfn = virt_to_mfn(plain_page);
    check_ret("MMUEXT_UNPIN_TABLE of a page that is not pinned returns -EINVAL",
              HYPERVISOR_mmuext_op(&op, 1, NULL, DOMID_SELF), -XEN_EINVAL);
}

void test_main(void)
{
    unknown_hypercalls();
    bad_pointers();
    bad_values();
    bad_event_channels();
    bad_mmu();
    long v = HYPERVISOR_xen_version(XENVER_version, NULL);
    check(v >= (3L << 16), "the hypervisor still answers: XENVER_version", "returned %lx", v);
}
