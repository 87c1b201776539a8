/*
 * xen.h - the slice of Xen's public guest ABI that xenvmm's PV test kernels
 * use, written from the public headers (xen/include/public/...). Every
 * definition names the header it comes from; struct layouts are pinned with
 * _Static_assert so a typo cannot silently move a field.
 *
 * Only what a 64-bit PV guest needs is here; usable from C and assembly.
 */
#ifndef PVK_XEN_H
#define PVK_XEN_H

/* ---- xen.h: hypercall numbers ("enum hypercall_num") ---------------- */
#define __HYPERVISOR_set_trap_table     0
#define __HYPERVISOR_mmu_update         1
#define __HYPERVISOR_stack_switch       3
#define __HYPERVISOR_memory_op          12
#define __HYPERVISOR_update_va_mapping  14
#define __HYPERVISOR_xen_version        17
#define __HYPERVISOR_console_io         18
#define __HYPERVISOR_vm_assist          21
#define __HYPERVISOR_iret               23 /* x86 only; jumped to, never called */
#define __HYPERVISOR_vcpu_op            24
#define __HYPERVISOR_mmuext_op          26
#define __HYPERVISOR_sched_op           29
#define __HYPERVISOR_callback_op        30
#define __HYPERVISOR_event_channel_op   32

/* arch-x86/xen-x86_64.h: flat selectors (GDT entries Xen reserves). */
#define FLAT_RING3_CS64   0xe033 /* GDT index 262 */
#define FLAT_RING3_SS64   0xe02b /* GDT index 261 */
#define FLAT_KERNEL_CS    FLAT_RING3_CS64
#define FLAT_KERNEL_SS    FLAT_RING3_SS64
#define FLAT_USER_CS      FLAT_RING3_CS64
#define FLAT_USER_SS      FLAT_RING3_SS64

/* arch-x86/xen-x86_64.h: the hypervisor hole and the read-only M2P. */
#define HYPERVISOR_VIRT_START 0xFFFF800000000000
#define HYPERVISOR_VIRT_END   0xFFFF880000000000
#define MACH2PHYS_VIRT_START  0xFFFF800000000000
#define MACH2PHYS_VIRT_END    0xFFFF804000000000

/* arch-x86/xen-x86_64.h: HYPERVISOR_iret flags. */
#define VGCF_in_syscall       (1 << 8)

/* elfnote.h */
#define XEN_ELFNOTE_ENTRY          1
#define XEN_ELFNOTE_HYPERCALL_PAGE 2
#define XEN_ELFNOTE_VIRT_BASE      3
#define XEN_ELFNOTE_PADDR_OFFSET   4
#define XEN_ELFNOTE_XEN_VERSION    5
#define XEN_ELFNOTE_GUEST_OS       6
#define XEN_ELFNOTE_GUEST_VERSION  7
#define XEN_ELFNOTE_LOADER         8
#define XEN_ELFNOTE_PAE_MODE       9
#define XEN_ELFNOTE_FEATURES      10

/* arch-x86/xen.h: XEN_EMULATE_PREFIX, the forced-emulation prefix (ud2; "xen"). */
#define XEN_EMULATE_PREFIX ".byte 0x0f,0x0b,0x78,0x65,0x6e ; "
/* arch-x86/cpuid.h */
#define XEN_CPUID_FIRST_LEAF    0x40000000
#define XEN_CPUID_SIGNATURE_EBX 0x566e6558 /* "XenV" */
#define XEN_CPUID_SIGNATURE_ECX 0x65584d4d /* "MMXe" */
#define XEN_CPUID_SIGNATURE_EDX 0x4d4d566e /* "nVMM" */

/* errno.h: hypercalls return -XEN_Exxx. */
#define XEN_EPERM    1
#define XEN_ENOENT   2
#define XEN_ESRCH    3
#define XEN_EFAULT  14
#define XEN_EBUSY   16
#define XEN_EEXIST  17
#define XEN_EINVAL  22
#define XEN_ENOSYS  38
#define XEN_ETIME   62

#ifndef __ASSEMBLER__

typedef unsigned char      uint8_t;
typedef signed char        int8_t;
typedef unsigned short     uint16_t;
typedef unsigned int       uint32_t;
typedef int                int32_t;
typedef unsigned long      uint64_t;
typedef long               int64_t;
typedef unsigned long      uintptr_t;
typedef unsigned long      size_t;
typedef _Bool              bool;
#define true  1
#define false 0
#define NULL ((void *)0)

#define PVK_OFFSETOF(t, m) __builtin_offsetof(t, m)
#define PVK_CHECK_LAYOUT(t, m, off) \
    _Static_assert(PVK_OFFSETOF(t, m) == (off), #t "." #m " is at " #off)

/* arch-x86/xen.h: xen_pfn_t and xen_ulong_t are unsigned long on x86-64. */
typedef unsigned long xen_pfn_t;
typedef unsigned long xen_ulong_t;
/* xen.h */
typedef uint16_t domid_t;
#define DOMID_SELF 0x7FF0U

/* ---- arch-x86/xen.h: struct trap_info (HYPERVISOR_set_trap_table) --- */
struct trap_info {
    uint8_t       vector;  /* exception vector */
    uint8_t       flags;   /* bits 0-1: DPL; bit 2: mask events on entry (TI_GET_IF) */
    uint16_t      cs;      /* code selector */
    unsigned long address; /* code offset; 0 terminates the table */
};
PVK_CHECK_LAYOUT(struct trap_info, address, 8);
_Static_assert(sizeof(struct trap_info) == 16, "trap_info is 16 bytes");
#define TI_DPL(d)        ((d) & 3)
#define TI_MASK_EVENTS   4

/* ---- xen.h: vcpu_time_info, vcpu_info, shared_info ------------------- */
struct vcpu_time_info {
    uint32_t version;           /* odd while Xen updates the fields */
    uint32_t pad0;
    uint64_t tsc_timestamp;     /* TSC at last update of time vals */
    uint64_t system_time;       /* ns since boot at tsc_timestamp */
    uint32_t tsc_to_system_mul;
    int8_t   tsc_shift;
    uint8_t  flags;
    uint8_t  pad1[2];
};
_Static_assert(sizeof(struct vcpu_time_info) == 32, "vcpu_time_info is 32 bytes");

/* arch-x86/xen-x86_64.h: struct arch_vcpu_info */
struct arch_vcpu_info {
    unsigned long cr2;          /* #PF linear address for PV guests */
    unsigned long pad;
};

struct vcpu_info {
    uint8_t evtchn_upcall_pending;
    uint8_t evtchn_upcall_mask;  /* XEN_HAVE_PV_UPCALL_MASK: x86 has it */
    xen_ulong_t evtchn_pending_sel;
    struct arch_vcpu_info arch;
    struct vcpu_time_info time;
};
PVK_CHECK_LAYOUT(struct vcpu_info, evtchn_upcall_mask, 1);
PVK_CHECK_LAYOUT(struct vcpu_info, evtchn_pending_sel, 8);
PVK_CHECK_LAYOUT(struct vcpu_info, arch.cr2, 16);
PVK_CHECK_LAYOUT(struct vcpu_info, time, 32);
_Static_assert(sizeof(struct vcpu_info) == 64, "vcpu_info is 64 bytes (x86)");

#define XEN_LEGACY_MAX_VCPUS 32 /* arch-x86/xen.h */

struct shared_info {
    struct vcpu_info vcpu_info[XEN_LEGACY_MAX_VCPUS];
    xen_ulong_t evtchn_pending[sizeof(xen_ulong_t) * 8];
    xen_ulong_t evtchn_mask[sizeof(xen_ulong_t) * 8];
    uint32_t wc_version;
    uint32_t wc_sec;
    uint32_t wc_nsec;
    uint32_t wc_sec_hi;
    /* struct arch_shared_info follows; unused here. */
};
PVK_CHECK_LAYOUT(struct shared_info, evtchn_pending, 2048);
PVK_CHECK_LAYOUT(struct shared_info, evtchn_mask, 2560);
PVK_CHECK_LAYOUT(struct shared_info, wc_version, 3072);

/* ---- xen.h: struct start_info (XEN_HAVE_PV_GUEST_ENTRY) -------------- */
#define MAX_GUEST_CMDLINE 1024
struct start_info {
    char magic[32];             /* "xen-<version>-<platform>" */
    unsigned long nr_pages;     /* total pages allocated to this domain */
    unsigned long shared_info;  /* MACHINE address of shared info struct */
    uint32_t flags;             /* SIF_xxx flags */
    xen_pfn_t store_mfn;        /* MACHINE page number of shared page */
    uint32_t store_evtchn;      /* event channel for store communication */
    union {
        struct {
            xen_pfn_t mfn;      /* MACHINE page number of console page */
            uint32_t  evtchn;   /* event channel for console page */
        } domU;
        struct {
            uint32_t info_off;
            uint32_t info_size;
        } dom0;
    } console;
    unsigned long pt_base;      /* VIRTUAL address of page directory */
    unsigned long nr_pt_frames; /* number of bootstrap p.t. frames */
    unsigned long mfn_list;     /* VIRTUAL address of page-frame list */
    unsigned long mod_start;    /* VIRTUAL address of pre-loaded module */
    unsigned long mod_len;      /* size (bytes) of pre-loaded module */
    int8_t cmd_line[MAX_GUEST_CMDLINE];
    unsigned long first_p2m_pfn;
    unsigned long nr_p2m_frames;
};
PVK_CHECK_LAYOUT(struct start_info, nr_pages, 32);
PVK_CHECK_LAYOUT(struct start_info, shared_info, 40);
PVK_CHECK_LAYOUT(struct start_info, flags, 48);
PVK_CHECK_LAYOUT(struct start_info, store_mfn, 56);
PVK_CHECK_LAYOUT(struct start_info, store_evtchn, 64);
PVK_CHECK_LAYOUT(struct start_info, console.domU.mfn, 72);
PVK_CHECK_LAYOUT(struct start_info, console.domU.evtchn, 80);
PVK_CHECK_LAYOUT(struct start_info, pt_base, 88);
PVK_CHECK_LAYOUT(struct start_info, nr_pt_frames, 96);
PVK_CHECK_LAYOUT(struct start_info, mfn_list, 104);
PVK_CHECK_LAYOUT(struct start_info, mod_start, 112);
PVK_CHECK_LAYOUT(struct start_info, mod_len, 120);
PVK_CHECK_LAYOUT(struct start_info, cmd_line, 128);
PVK_CHECK_LAYOUT(struct start_info, first_p2m_pfn, 1152);
PVK_CHECK_LAYOUT(struct start_info, nr_p2m_frames, 1160);

/* xen.h: start_info.flags */
#define SIF_PRIVILEGED    (1 << 0)
#define SIF_INITDOMAIN    (1 << 1)

/* ---- xen.h: mmu_update, mmuext_op, update_va_mapping, vm_assist ------ */
struct mmu_update {
    uint64_t ptr;   /* machine address of PTE; bits 1:0 select the command */
    uint64_t val;   /* new contents of PTE */
};
#define MMU_NORMAL_PT_UPDATE  0 /* checked '*ptr = val'. ptr is MA. */
#define MMU_MACHPHYS_UPDATE   1 /* ptr = MA of frame to modify entry for */

#define MMUEXT_PIN_L1_TABLE      0
#define MMUEXT_PIN_L2_TABLE      1
#define MMUEXT_PIN_L3_TABLE      2
#define MMUEXT_PIN_L4_TABLE      3
#define MMUEXT_UNPIN_TABLE       4
#define MMUEXT_NEW_BASEPTR       5
#define MMUEXT_TLB_FLUSH_LOCAL   6
#define MMUEXT_INVLPG_LOCAL      7
#define MMUEXT_NEW_USER_BASEPTR 15

struct mmuext_op {
    unsigned int cmd;
    union {
        xen_pfn_t mfn;              /* [UN]PIN_TABLE, NEW_BASEPTR, NEW_USER_BASEPTR */
        unsigned long linear_addr;  /* INVLPG_LOCAL */
    } arg1;
    union {
        unsigned int nr_ents;
        const void *vcpumask;
        xen_pfn_t src_mfn;
    } arg2;
};
PVK_CHECK_LAYOUT(struct mmuext_op, arg1, 8);
PVK_CHECK_LAYOUT(struct mmuext_op, arg2, 16);
_Static_assert(sizeof(struct mmuext_op) == 24, "mmuext_op is 24 bytes");

/* update_va_mapping flags ("enum uvm_flags") */
#define UVMF_NONE       0UL
#define UVMF_TLB_FLUSH  1UL
#define UVMF_INVLPG     2UL
#define UVMF_LOCAL      0UL

/* vm_assist */
#define VMASST_CMD_enable                0
#define VMASST_CMD_disable               1
#define VMASST_TYPE_writable_pagetables  2

/* console_io */
#define CONSOLEIO_write 0

/* ---- version.h ------------------------------------------------------- */
#define XENVER_version       0
#define XENVER_extraversion  1
#define XENVER_capabilities  3
#define XENVER_get_features  6
struct xen_feature_info {
    uint32_t submap_idx;  /* IN: which 32-bit submap to return */
    uint32_t submap;      /* OUT: 32-bit submap */
};
/* features.h */
#define XENFEAT_writable_page_tables     0
#define XENFEAT_auto_translated_physmap  2
#define XENFEAT_hvm_callback_vector      8
#define XENFEAT_dom0                    11

/* ---- memory.h -------------------------------------------------------- */
#define XENMEM_current_reservation 3
#define XENMEM_machphys_mapping   12
struct xen_memory_domain {
    domid_t domid;
};
struct xen_machphys_mapping {
    xen_ulong_t v_start, v_end; /* start and end virtual addresses */
    xen_ulong_t max_mfn;        /* maximum MFN that can be looked up */
};

/* ---- sched.h --------------------------------------------------------- */
#define SCHEDOP_yield      0
#define SCHEDOP_block      1
#define SCHEDOP_shutdown   2
struct sched_shutdown {
    unsigned int reason;
};
#define SHUTDOWN_poweroff  0
#define SHUTDOWN_crash     3

/* ---- callback.h ------------------------------------------------------ */
#define CALLBACKTYPE_event     0
#define CALLBACKTYPE_failsafe  1
#define CALLBACKTYPE_syscall   2
#define CALLBACKF_mask_events  (1U << 0)
#define CALLBACKOP_register    0
#define CALLBACKOP_unregister  1
struct callback_register {
    uint16_t type;
    uint16_t flags;
    unsigned long address;  /* xen_callback_t: unsigned long on x86-64 */
};
PVK_CHECK_LAYOUT(struct callback_register, address, 8);
struct callback_unregister {
    uint16_t type;
    uint16_t _unused;
};

/* ---- vcpu.h ---------------------------------------------------------- */
#define VCPUOP_set_periodic_timer    6
#define VCPUOP_stop_periodic_timer   7
#define VCPUOP_set_singleshot_timer  8
struct vcpu_set_periodic_timer {
    uint64_t period_ns;
};
struct vcpu_set_singleshot_timer {
    uint64_t timeout_abs_ns;   /* absolute system time value in ns */
    uint32_t flags;            /* VCPU_SSHOTTMR_??? */
};

/* ---- event_channel.h ------------------------------------------------- */
typedef uint32_t evtchn_port_t;
#define EVTCHNOP_bind_interdomain 0
#define EVTCHNOP_bind_virq        1
#define EVTCHNOP_close            3
#define EVTCHNOP_send             4
#define EVTCHNOP_status           5
#define EVTCHNOP_alloc_unbound    6
#define EVTCHNOP_unmask           9
struct evtchn_alloc_unbound {
    domid_t dom, remote_dom;    /* IN */
    evtchn_port_t port;         /* OUT */
};
struct evtchn_bind_interdomain {
    domid_t remote_dom;         /* IN */
    evtchn_port_t remote_port;  /* IN */
    evtchn_port_t local_port;   /* OUT */
};
struct evtchn_bind_virq {
    uint32_t virq;              /* IN: enum virq */
    uint32_t vcpu;              /* IN */
    evtchn_port_t port;         /* OUT */
};
struct evtchn_close {
    evtchn_port_t port;
};
struct evtchn_send {
    evtchn_port_t port;
};
#define EVTCHNSTAT_closed       0
#define EVTCHNSTAT_unbound      1
#define EVTCHNSTAT_interdomain  2
#define EVTCHNSTAT_pirq         3
#define EVTCHNSTAT_virq         4
#define EVTCHNSTAT_ipi          5
struct evtchn_status {
    domid_t dom;                /* IN */
    evtchn_port_t port;         /* IN */
    uint32_t status;            /* OUT */
    uint32_t vcpu;              /* OUT */
    union {
        struct { domid_t dom; } unbound;
        struct { domid_t dom; evtchn_port_t port; } interdomain;
        uint32_t pirq;
        uint32_t virq;
    } u;
};
PVK_CHECK_LAYOUT(struct evtchn_status, port, 4);
PVK_CHECK_LAYOUT(struct evtchn_status, status, 8);
PVK_CHECK_LAYOUT(struct evtchn_status, u, 16);
PVK_CHECK_LAYOUT(struct evtchn_status, u.interdomain.port, 20);
struct evtchn_unmask {
    evtchn_port_t port;
};

/* xen.h: VIRQs */
#define VIRQ_TIMER 0
#define NR_VIRQS   24

/* ---- io/console.h ---------------------------------------------------- */
typedef uint32_t XENCONS_RING_IDX;
struct xencons_interface {
    char in[1024];
    char out[2048];
    XENCONS_RING_IDX in_cons, in_prod;
    XENCONS_RING_IDX out_cons, out_prod;
};
PVK_CHECK_LAYOUT(struct xencons_interface, out, 1024);
PVK_CHECK_LAYOUT(struct xencons_interface, out_cons, 3080);
PVK_CHECK_LAYOUT(struct xencons_interface, out_prod, 3084);
#define MASK_XENCONS_IDX(idx, ring) ((idx) & (sizeof(ring) - 1))

#endif /* !__ASSEMBLER__ */
#endif /* PVK_XEN_H */
