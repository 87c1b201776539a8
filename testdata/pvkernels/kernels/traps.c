/*
 * traps - exceptions in guest kernel mode: the virtual IDT
 * (HYPERVISOR_set_trap_table), Xen's bounce frame and HYPERVISOR_iret.
 * Hypercalls by `syscall` from kernel mode (post-XSA-466 Linux).
 *
 * Bounce frame (entry.S create_bounce_frame, prior-art §3.3): pushed at the
 * current RSP rounded down to 16, RCX, R11, [ERRCODE,] RIP, CS, RFLAGS,
 * RSP, SS; CS bits 0-15 hold CS with RPL cleared when the guest was in
 * kernel mode, bits 32-39 the upcall mask before the exception; RFLAGS.IF
 * is !that mask; trap_info flags bit 2 (TBF_INTERRUPT) then masks events.
 */
#include "pvk.h"

PVK_KERNEL("traps", "", PVK_VIA_SYSCALL);

#define UNMAPPED_VA   0x0000000012345000UL   /* L4 slot 0: empty at boot */
#define NONCANONICAL  0x8000000000000000UL

static unsigned char ro_page[4096] __aligned(4096);

static unsigned int saved_mask(const struct trap_expect *e) { return (e->cs >> 32) & 0xff; }
static unsigned int cs16(const struct trap_expect *e) { return e->cs & 0xffff; }

static bool kernel_frame(const struct trap_expect *e)
{
    return cs16(e) == (FLAT_KERNEL_CS & ~3) && e->ss == FLAT_KERNEL_SS &&
           e->rsp == e->rsp_at && e->frame_top == (e->rsp_at & ~15UL);
}

static void test_ud(void)
{
    struct trap_expect e = { .vector = X86_EXC_UD };
    uint64_t rcx, rdx, rsi, rdi, r8, r9, r10, r11;
    register uint64_t r8v __asm__("r8");
    register uint64_t r9v __asm__("r9");
    register uint64_t r10v __asm__("r10");
    register uint64_t r11v __asm__("r11");

    trap_expect(&e);
    events_unmask();    /* the handler must not change this: flags bit 2 is clear */
    __asm__ __volatile__(
        ARM_FAULT
        "movabs $0x1111111111111111, %%rcx\n\t"
        "movabs $0x2222222222222222, %%rdx\n\t"
        "movabs $0x3333333333333333, %%rsi\n\t"
        "movabs $0x4444444444444444, %%rdi\n\t"
        "movabs $0x8888888888888888, %%r8\n\t"
        "movabs $0x9999999999999999, %%r9\n\t"
        "movabs $0xaaaaaaaaaaaaaaaa, %%r10\n\t"
        "movabs $0xbbbbbbbbbbbbbbbb, %%r11\n\t"
        "1: ud2\n\t"
        "2:\n\t"
        : "=&c"(rcx), "=&d"(rdx), "=&S"(rsi), "=&D"(rdi),
          "=&r"(r8v), "=&r"(r9v), "=&r"(r10v), "=&r"(r11v)
        : ARM_OPERANDS(&e)
        : "rax", "memory");
    r8 = r8v, r9 = r9v, r10 = r10v, r11 = r11v;
    uint8_t mask_after = vcpu0->evtchn_upcall_mask;
    events_mask();
    trap_expect_clear();

    check(e.hit == 1 && kernel_frame(&e),
          "ud2 raises #UD at the ud2; frame: CS RPL 0 (kernel), SS, RSP, 16-byte aligned",
          "hit %d, cs %lx, ss %lx, rsp %lx (at %lx), frame top %lx", e.hit, e.cs, e.ss,
          e.rsp, e.rsp_at, e.frame_top);
    check(e.mask_in_handler == 0 && saved_mask(&e) == 0 && (e.rflags & X86_EFLAGS_IF) &&
              mask_after == 0,
          "#UD without trap_info flags bit 2: events stay enabled, saved mask 0, RFLAGS.IF set",
          "mask in handler %u, saved mask %u, rflags %lx, mask after %u", e.mask_in_handler,
          saved_mask(&e), e.rflags, mask_after);
    check(rcx == 0x1111111111111111 && rdx == 0x2222222222222222 && rsi == 0x3333333333333333 &&
              rdi == 0x4444444444444444 && r8 == 0x8888888888888888 &&
              r9 == 0x9999999999999999 && r10 == 0xaaaaaaaaaaaaaaaa &&
              r11 == 0xbbbbbbbbbbbbbbbb,
          "HYPERVISOR_iret resumes after ud2 with RCX, R11 and the other registers intact",
          "rcx %lx rdx %lx rsi %lx rdi %lx r8 %lx r9 %lx r10 %lx r11 %lx", rcx, rdx, rsi, rdi,
          r8, r9, r10, r11);
}

static void test_bp(void)
{
    /* #BP with DPL 3 and flags bit 2 (mask events on entry), as XTF has it. */
    struct trap_info ti[2] = {
        { .vector = X86_EXC_BP, .flags = 3 | TI_MASK_EVENTS, .cs = FLAT_KERNEL_CS,
          .address = TRAP_ENTRY(X86_EXC_BP) },
        { .address = 0 },
    };
    check_ret("set_trap_table re-registers #BP with events masked on entry",
              HYPERVISOR_set_trap_table(ti), 0);

    /* Events enabled before int3. */
    struct trap_expect e = { .vector = X86_EXC_BP };
    trap_expect(&e);
    events_unmask();
    __asm__ __volatile__(ARM_TRAP "int3\n\t2:\n\t" : : ARM_OPERANDS(&e) : "rax", "memory");
    uint8_t mask_after = vcpu0->evtchn_upcall_mask;
    events_mask();
    trap_expect_clear();
    check(e.hit == 1 && kernel_frame(&e),
          "int3 raises #BP with RIP after the int3 (a trap), CS RPL 0, 16-byte aligned frame",
          "hit %d, cs %lx, ss %lx, rsp %lx (at %lx), frame top %lx", e.hit, e.cs, e.ss, e.rsp,
          e.rsp_at, e.frame_top);
    check(e.mask_in_handler == 1 && saved_mask(&e) == 0 && (e.rflags & X86_EFLAGS_IF),
          "#BP with flags bit 2 from unmasked: masked in the handler, saved mask 0, RFLAGS.IF set",
          "mask in handler %u, saved mask %u, rflags %lx", e.mask_in_handler, saved_mask(&e),
          e.rflags);
    check(mask_after == 0, "HYPERVISOR_iret with RFLAGS.IF set unmasks events again",
          "evtchn_upcall_mask %u after return", mask_after);

    /* Events masked before int3. */
    struct trap_expect m = { .vector = X86_EXC_BP };
    trap_expect(&m);
    events_mask();
    __asm__ __volatile__(ARM_TRAP "int3\n\t2:\n\t" : : ARM_OPERANDS(&m) : "rax", "memory");
    mask_after = vcpu0->evtchn_upcall_mask;
    trap_expect_clear();
    check(m.hit == 1 && m.mask_in_handler == 1 && saved_mask(&m) == 1 &&
              !(m.rflags & X86_EFLAGS_IF) && mask_after == 1,
          "#BP from masked: saved mask 1 in CS bits 32-39, RFLAGS.IF clear, masked after iret",
          "hit %d, mask in handler %u, saved mask %u, rflags %lx, mask after %u", m.hit,
          m.mask_in_handler, saved_mask(&m), m.rflags, mask_after);
}

static void test_pf(void)
{
    struct trap_expect e = { .vector = X86_EXC_PF };
    uint64_t val = 0;
    trap_expect(&e);
    __asm__ __volatile__(ARM_FAULT "1: movq (%[va]), %[val]\n\t2:\n\t"
                         : [val] "+r"(val)
                         : [va] "r"(UNMAPPED_VA), ARM_OPERANDS(&e)
                         : "rax", "memory");
    trap_expect_clear();
    check(e.hit == 1 && kernel_frame(&e) && e.cr2 == UNMAPPED_VA,
          "a read of an unmapped address raises #PF with CR2 in vcpu_info.arch.cr2",
          "hit %d, cr2 %lx, cs %lx, rsp %lx (at %lx)", e.hit, e.cr2, e.cs, e.rsp, e.rsp_at);
    check_eq("#PF error code of a kernel-mode read of a not-present page is 0",
             (long)e.error_code, 0);

    /* A present, read-only page: remap one of ours without _PAGE_RW. */
    check_ret("update_va_mapping makes a page read-only",
              remap_page(ro_page, PTE_KERNEL_RO), 0);
    struct trap_expect w = { .vector = X86_EXC_PF };
    trap_expect(&w);
    __asm__ __volatile__(ARM_FAULT "1: movq $1, (%[va])\n\t2:\n\t"
                         :
                         : [va] "r"(ro_page), ARM_OPERANDS(&w)
                         : "rax", "memory");
    trap_expect_clear();
    check(w.hit == 1 && w.cr2 == (unsigned long)ro_page &&
              w.error_code == (PFEC_PRESENT | PFEC_WRITE),
          "a write to a read-only page raises #PF with error code P|W",
          "hit %d, cr2 %lx, error code %lx", w.hit, w.cr2, w.error_code);
    long rc = remap_page(ro_page, PTE_KERNEL_RW);
    ro_page[0] = 0x5a;
    check(rc == 0 && ro_page[0] == 0x5a,
          "the page is writable again after update_va_mapping restores _PAGE_RW",
          "rc %ld", rc);
}

static void test_gp(void)
{
    struct trap_expect e = { .vector = X86_EXC_GP };
    uint64_t val = 0;
    trap_expect(&e);
    __asm__ __volatile__(ARM_FAULT "1: movq (%[va]), %[val]\n\t2:\n\t"
                         : [val] "+r"(val)
                         : [va] "r"(NONCANONICAL), ARM_OPERANDS(&e)
                         : "rax", "memory");
    trap_expect_clear();
    check(e.hit == 1 && kernel_frame(&e) && e.error_code == 0,
          "a non-canonical access raises #GP(0) at the faulting instruction",
          "hit %d, error code %lx, cs %lx", e.hit, e.error_code, e.cs);
}

static void test_de(void)
{
    struct trap_expect e = { .vector = X86_EXC_DE };
    trap_expect(&e);
    __asm__ __volatile__(ARM_FAULT
                         "movl $1, %%eax\n\t"
                         "xorl %%edx, %%edx\n\t"
                         "1: divl %[zero]\n\t2:\n\t"
                         :
                         : [zero] "r"(0U), ARM_OPERANDS(&e)
                         : "rax", "rdx", "memory");
    trap_expect_clear();
    check(e.hit == 1 && kernel_frame(&e), "a division by zero raises #DE at the div",
          "hit %d, cs %lx", e.hit, e.cs);
}

static void test_forced_cpuid(void)
{
    /* arch-x86/xen.h XEN_CPUID: ud2; .ascii "xen"; cpuid, emulated by Xen
     * (pv/emul-inv-op.c); no #UD reaches us. */
    uint32_t a, b, c, d;
    __asm__ __volatile__(XEN_EMULATE_PREFIX "cpuid"
                         : "=a"(a), "=b"(b), "=c"(c), "=d"(d)
                         : "a"(XEN_CPUID_FIRST_LEAF), "c"(0));
    check(b == XEN_CPUID_SIGNATURE_EBX && c == XEN_CPUID_SIGNATURE_ECX &&
              d == XEN_CPUID_SIGNATURE_EDX && a >= XEN_CPUID_FIRST_LEAF + 2,
          "forced-emulation CPUID leaf 0x40000000 answers XenVMMXenVMM",
          "eax %x ebx %x ecx %x edx %x", a, b, c, d);
    __asm__ __volatile__(XEN_EMULATE_PREFIX "cpuid"
                         : "=a"(a), "=b"(b), "=c"(c), "=d"(d)
                         : "a"(XEN_CPUID_FIRST_LEAF + 1), "c"(0));
    long v = HYPERVISOR_xen_version(XENVER_version, NULL);
    check_eq("forced-emulation CPUID leaf 0x40000001 EAX equals XENVER_version", a, v);
}

void test_main(void)
{
    test_ud();
    test_bp();
    test_pf();
    test_gp();
    test_de();
    test_forced_cpuid();
}
