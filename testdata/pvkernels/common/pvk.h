/*
 * pvk.h - the runtime shared by xenvmm's PV test kernels: hypercall
 * wrappers, the start-of-day helpers, the test-result protocol and the
 * exception/event plumbing. See ../README.md.
 */
#ifndef PVK_H
#define PVK_H

#include "xen.h"
#include "vectors.h"

struct cpu_regs;

/* Where the kernels are linked (linker.ld) and announced (XEN_ELFNOTE_VIRT_BASE). */
#define VIRT_BASE  0xffffffff80000000UL
#define PAGE_SIZE  4096UL
#define PAGE_SHIFT 12

/* x86-64 page-table entry bits (Intel SDM vol. 3 §4.5; xen.h mmu_update comment). */
#define _PAGE_PRESENT  0x001UL
#define _PAGE_RW       0x002UL
#define _PAGE_USER     0x004UL
#define _PAGE_ACCESSED 0x020UL
#define _PAGE_DIRTY    0x040UL
#define PTE_ADDR_MASK  0x000ffffffffff000UL
/* Kernel data mapping and kernel page-table link, as Linux writes them
 * (no _PAGE_USER: Xen adds it for 64-bit PV, mm.c adjust_guest_l*e). */
#define PTE_KERNEL_RW  (_PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED | _PAGE_DIRTY)
#define PTE_KERNEL_RO  (_PAGE_PRESENT | _PAGE_ACCESSED)
#define PTE_TABLE      (_PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED | _PAGE_DIRTY)
#define PTE_USER_TABLE (PTE_TABLE | _PAGE_USER)

#define L1_INDEX(va) (((va) >> 12) & 511)
#define L2_INDEX(va) (((va) >> 21) & 511)
#define L3_INDEX(va) (((va) >> 30) & 511)
#define L4_INDEX(va) (((va) >> 39) & 511)

/* Exception vectors (Intel SDM vol. 3 §6.3.1). */
#define X86_EXC_DE  0
#define X86_EXC_BP  3
#define X86_EXC_UD  6
#define X86_EXC_GP 13
#define X86_EXC_PF 14
/* #PF error-code bits */
#define PFEC_PRESENT 1
#define PFEC_WRITE   2
#define PFEC_USER    4

#define X86_EFLAGS_IF 0x200UL


#define barrier() __asm__ __volatile__("" ::: "memory")
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define __aligned(n) __attribute__((aligned(n)))
#define __noreturn __attribute__((noreturn))
#define __noinline __attribute__((noinline))

/*
 * Per-kernel configuration. Each kernel's source says, once:
 *   PVK_KERNEL("name", "features", PVK_VIA_SYSCALL or PVK_VIA_PAGE);
 * which emits its XEN_ELFNOTE_FEATURES note (elfnote.h: '|'-separated
 * XENFEAT names, '!' = required) and chooses how hypercalls are made:
 *  PVK_VIA_SYSCALL: `syscall` straight from kernel mode, as post-XSA-466 Linux;
 *  PVK_VIA_PAGE:    `call hypercall_page + 32*nr`, as NetBSD (hypercall-abi.rst).
 */
#define PVK_VIA_SYSCALL 0
#define PVK_VIA_PAGE    1
#define PVK_KERNEL(name, features, via)                                      \
    __asm__(".pushsection .note.Xen, \"a\", @note\n"                         \
            ".balign 4\n"                                                    \
            ".long 4, 2f - 1f, " PVK_STR(XEN_ELFNOTE_FEATURES) "\n"          \
            ".asciz \"Xen\"\n"                                               \
            ".balign 4\n"                                                    \
            "1: .asciz \"" features "\"\n"                                   \
            "2: .balign 4\n"                                                 \
            ".popsection\n");                                                \
    const char pvk_name[] = name;                                            \
    const unsigned char pvk_hypercall_page = (via)
#define PVK_STR_(x) #x
#define PVK_STR(x) PVK_STR_(x)

extern const char pvk_name[];
extern const unsigned char pvk_hypercall_page;
/* The page XEN_ELFNOTE_HYPERCALL_PAGE names; the domain builder fills it. */
extern unsigned char hypercall_page[4096];

/* The test itself: each kernel defines it. */
void test_main(void);

/* ---- hypercalls (head.S). All arguments are passed as full 64-bit values. */
long HYPERVISOR_set_trap_table(const struct trap_info *traps);
long HYPERVISOR_mmu_update(struct mmu_update *reqs, unsigned long count,
                           unsigned int *done, unsigned long foreigndom);
long HYPERVISOR_stack_switch(unsigned long ss, unsigned long sp);
long HYPERVISOR_memory_op(unsigned long cmd, void *arg);
long HYPERVISOR_update_va_mapping(unsigned long va, uint64_t val, unsigned long flags);
long HYPERVISOR_xen_version(unsigned long cmd, void *arg);
long HYPERVISOR_console_io(unsigned long cmd, unsigned long count, const char *buf);
long HYPERVISOR_vm_assist(unsigned long cmd, unsigned long type);
long HYPERVISOR_vcpu_op(unsigned long cmd, unsigned long vcpu, void *arg);
long HYPERVISOR_mmuext_op(struct mmuext_op *ops, unsigned long count,
                          unsigned int *done, unsigned long foreigndom);
long HYPERVISOR_sched_op(unsigned long cmd, void *arg);
long HYPERVISOR_callback_op(unsigned long cmd, const void *arg);
long HYPERVISOR_event_channel_op(unsigned long cmd, void *arg);
/* Any hypercall number, made the kernel's way (page calls go through a register). */
long hypercall_raw(unsigned long nr, unsigned long a1, unsigned long a2,
                   unsigned long a3, unsigned long a4, unsigned long a5);
/* Any hypercall number, forced one way or the other (badargs). */
long hypercall_raw_syscall(unsigned long nr, unsigned long a1, unsigned long a2,
                           unsigned long a3, unsigned long a4, unsigned long a5);
long hypercall_raw_page(unsigned long nr, unsigned long a1, unsigned long a2,
                        unsigned long a3, unsigned long a4, unsigned long a5);

/* ---- start of day (xen.c) ------------------------------------------- */
extern struct start_info *start_info;
extern struct shared_info *shared;          /* start_info->shared_info, mapped by pvk_start */
extern uint8_t boot_upcall_mask;            /* vcpu_info[0].evtchn_upcall_mask as found */
extern unsigned char shared_info_page[4096];
#define vcpu0 (&shared->vcpu_info[0])

static inline unsigned long *p2m(void) { return (unsigned long *)start_info->mfn_list; }
static inline const unsigned long *m2p(void) { return (const unsigned long *)MACH2PHYS_VIRT_START; }
/* Pseudo-physical frame of a VA in the initial mapping (xen.h start-of-day item 5). */
static inline unsigned long virt_to_pfn(const void *va) { return ((unsigned long)va - VIRT_BASE) >> PAGE_SHIFT; }
static inline unsigned long virt_to_mfn(const void *va) { return p2m()[virt_to_pfn(va)]; }
static inline uint64_t virt_to_maddr(const void *va)
{
    return (virt_to_mfn(va) << PAGE_SHIFT) | ((unsigned long)va & (PAGE_SIZE - 1));
}
/* Pages from VIRT_BASE through the last bootstrap page-table frame: all of
 * them are mapped at boot (xen.h start-of-day items 3-6; more follow, the
 * bootstrap stack and the padding, but we never need those). */
unsigned long initial_mapping_pages(void);
/* VA of machine frame mfn inside the initial mapping, or NULL if its pfn
 * (from the M2P) lies outside it or the P2M disagrees. */
void *mfn_to_virt(unsigned long mfn);
/* Machine address of the level-`level` (4..1) entry for va in the boot page
 * tables (walked from start_info->pt_base through the initial mapping), or 0
 * where an upper level is not present or not reachable. */
uint64_t pte_maddr(unsigned long va, int level);
/* That entry's value; *ok is false where it cannot be reached. */
uint64_t read_pte(unsigned long va, int level, bool *ok);
/* Remap the page at va (in the initial mapping) with the given flags. */
long remap_page(void *va, uint64_t flags);
/* Remap the page at va to machine frame mfn. */
long map_mfn_at(void *va, unsigned long mfn, uint64_t flags);

/* ---- events (xen.c) ----------------------------------------------- */
void events_mask(void);                     /* vcpu_info.evtchn_upcall_mask = 1 */
void events_unmask(void);                   /* = 0, then deliver anything pending */
void force_evtchn_callback(void);           /* a harmless hypercall: xen_version(0) */
void evtchn_set_mask(evtchn_port_t port, bool masked);
bool evtchn_is_pending(evtchn_port_t port);
void evtchn_clear_pending(evtchn_port_t port);
long evtchn_send(evtchn_port_t port);
long evtchn_close(evtchn_port_t port);
long evtchn_status(evtchn_port_t port, struct evtchn_status *st);
/* Per-port delivery counts kept by the event upcall (ports < 256). */
extern volatile unsigned int evtchn_seen[256];
extern volatile unsigned int upcalls;
/* Optional per-kernel hook, called from the upcall for each port. */
extern void (*evtchn_hook)(evtchn_port_t port, struct cpu_regs *regs);

/* ---- time (xen.c) ------------------------------------------------- */
uint64_t xen_system_time(void);
static inline uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

/* ---- console and test protocol (lib.c) ------------------------------ */
int printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int snprintf(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void console_write(const char *s, size_t n);
/* Write to the PV console ring (io/console.h) and wait until the backend
 * consumed it; returns false if it did not within the yield budget. */
bool console_ring_write(const char *s, size_t n);
struct xencons_interface *console_ring(void);

/* ok N - desc / not ok N - desc: details */
bool check(bool ok, const char *desc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
bool check_eq(const char *desc, long got, long want);
bool check_ret(const char *desc, long rc, long want);   /* names errnos */
void diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void __noreturn bail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void __noreturn pvk_finish(void);
void __noreturn shutdown(unsigned int reason);
extern unsigned int test_count, test_failures;

/* ---- libc bits (lib.c) -------------------------------------------- */
void *memset(void *s, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
size_t strnlen(const char *s, size_t max);
int strncmp(const char *a, const char *b, size_t n);
const char *strstr(const char *h, const char *n);

/* ---- exceptions (traps.c, head.S) ----------------------------------- */
/*
 * What the entry stubs save, low to high. From `error_code` up it is the
 * bounce frame Xen builds (entry.S create_bounce_frame: RCX, R11,
 * [ERRCODE,] RIP, CS, RFLAGS, RSP, SS) after the stub popped RCX and R11
 * back into their registers and pushed a zero error code where Xen gave
 * none. On return the stubs pass error_code as the HYPERVISOR_iret
 * `flags` word (arch-x86/xen-x86_64.h struct iret_context), so handlers
 * leave it 0 or set VGCF_in_syscall.
 */
struct cpu_regs {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
    uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
    uint64_t vector;
    uint64_t error_code;
    uint64_t rip;
    uint64_t cs;        /* bits 0-15 CS, bits 32-39 saved upcall mask */
    uint64_t rflags;
    uint64_t rsp;
    uint64_t ss;
};
_Static_assert(sizeof(struct cpu_regs) == 22 * 8, "cpu_regs layout");

/* One exception the test expects: when `vector` arrives with RIP == rip,
 * it is recorded and RIP is set to `fixup` (unless 0). */
struct trap_expect {
    unsigned int vector;
    uint64_t rip, fixup;
    /* Filled in when it happened. */
    volatile int hit;
    uint64_t error_code, cs, rflags, rsp, ss, cr2, frame_top;
    uint8_t mask_in_handler;
    /* RSP just before the faulting instruction, stored by ARM_*. */
    uint64_t rsp_at;
};
/*
 * Inline-asm prologues that arm a registered expectation from the labels
 * of the same asm statement: ARM_FAULT for a fault at label 1 resumed at
 * label 2, ARM_TRAP for a trap whose RIP is label 2 (the next instruction).
 * They clobber RAX; pass ARM_OPERANDS(e) as inputs.
 */
#define ARM_FAULT                                                            \
    "lea 1f(%%rip), %%rax\n\tmovq %%rax, %c[o_rip](%[exp])\n\t"              \
    "lea 2f(%%rip), %%rax\n\tmovq %%rax, %c[o_fix](%[exp])\n\t"              \
    "movq %%rsp, %c[o_rsp](%[exp])\n\t"
#define ARM_TRAP                                                             \
    "lea 2f(%%rip), %%rax\n\tmovq %%rax, %c[o_rip](%[exp])\n\t"              \
    "movq $0, %c[o_fix](%[exp])\n\t"                                         \
    "movq %%rsp, %c[o_rsp](%[exp])\n\t"
#define ARM_OPERANDS(e)                                                      \
    [exp] "r"(e),                                                            \
    [o_rip] "i"(__builtin_offsetof(struct trap_expect, rip)),                \
    [o_fix] "i"(__builtin_offsetof(struct trap_expect, fixup)),              \
    [o_rsp] "i"(__builtin_offsetof(struct trap_expect, rsp_at))
void trap_expect(struct trap_expect *e);     /* arm (up to 8 at once) */
void trap_expect_clear(void);
/* Called for traps nobody expected; default: fail the run. A kernel may
 * install its own (returns true if handled). */
extern bool (*trap_hook)(struct cpu_regs *regs);
/* Install the default trap table (all exception vectors to our stubs). */
long install_trap_table(void);
/* Entry stubs (head.S) for registration. */
extern char trap_entry_table[];            /* 32 stubs of 16 bytes, one per vector */
#define TRAP_ENTRY(vec) ((unsigned long)trap_entry_table + 16 * (vec))
void event_entry(void);
void failsafe_entry(void);
void syscall_entry(void);
/* For the syscall callback (usermode): set by the kernel that registers it. */
extern void (*syscall_hook)(struct cpu_regs *regs);

/* usermode: enter user mode at rip/rsp through HYPERVISOR_iret; returns
 * (with the value passed) when user code makes leave_user() happen from
 * the syscall hook. */
unsigned long enter_user(unsigned long rip, unsigned long rsp);
void __noreturn leave_user(unsigned long value);

#endif /* PVK_H */
