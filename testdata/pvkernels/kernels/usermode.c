/*
 * usermode - guest user mode: separate user page tables
 * (MMUEXT_NEW_USER_BASEPTR), stack_switch, the syscall callback, both
 * flavours of HYPERVISOR_iret back to user, and exceptions from user mode.
 * Hypercalls through the hypercall page (NetBSD style); HYPERVISOR_iret
 * by jumping to its stub.
 *
 * ABI used (prior-art §3.3-3.4, entry.S switch_to_kernel/create_bounce_frame,
 * pv/iret.c do_iret, xen-x86_64.h):
 *  - A SYSCALL in user mode bounces to CALLBACKTYPE_syscall on the stack
 *    given to stack_switch with RCX, R11, RIP, CS, RFLAGS, RSP, SS; CS is
 *    FLAT_USER_CS with RPL 3. CALLBACKF_mask_events masks events there.
 *  - Exceptions in user mode bounce the same way with CS RPL 3 (not
 *    cleared: Xen clears the RPL only for frames from kernel mode).
 *  - HYPERVISOR_iret to CS RPL 3 switches to the user page tables; with
 *    VGCF_in_syscall only RAX, RIP, RFLAGS, RSP are restored and Xen
 *    leaves through SYSRET, so user code sees RCX = RIP and R11 = RFLAGS
 *    (entry.S restore_all_guest; entry-fred.S keeps that behaviour).
 */
#include "pvk.h"

PVK_KERNEL("usermode", "", PVK_VIA_PAGE);

#define USER_CODE_VA   0x400000UL   /* L4 0, L3 0, L2 2, L1 0 */
#define USER_STACK_VA  0x401000UL
#define USER_UNMAPPED  0x600000     /* also used in the asm below: no suffix */

#define SYS_ECHO    1   /* rax = rdi + 1, returned with VGCF_in_syscall */
#define SYS_FULL    2   /* returned with flags 0 and chosen RAX/RCX/R11 */
#define SYS_REPORT  3   /* the kernel records rdi, rsi, rdx */
#define SYS_EXIT    4   /* back to the kernel with rdi */

#define POISON_RCX 0xdead00000000c0c0UL
#define POISON_R11 0xdead00000000e011UL

/*
 * The user program: position-independent, one page, mapped at
 * USER_CODE_VA. It only talks to the kernel through SYSCALL, int3 and
 * faults.
 */
__asm__(
    ".pushsection .text.user, \"ax\", @progbits\n"
    ".balign 4096\n"
    ".globl user_code_start\n"
    "user_code_start:\n"
    "    movq $0x1234, %rdi\n"
    "    movl $" PVK_STR(SYS_ECHO) ", %eax\n"
    "    syscall\n"
    ".globl user_after_echo\n"
    "user_after_echo:\n"
    "    movq %rax, %rdi\n"
    "    movq %rcx, %rsi\n"
    "    movq %r11, %rdx\n"
    "    movl $" PVK_STR(SYS_REPORT) ", %eax\n"
    "    syscall\n"
    "    movl $" PVK_STR(SYS_FULL) ", %eax\n"
    "    syscall\n"
    "    movq %rax, %rdi\n"
    "    movq %rcx, %rsi\n"
    "    movq %r11, %rdx\n"
    "    movl $" PVK_STR(SYS_REPORT) ", %eax\n"
    "    syscall\n"
    "    int3\n"
    ".globl user_after_int3\n"
    "user_after_int3:\n"
    ".globl user_pf_unmapped\n"
    "user_pf_unmapped:\n"
    "    movq " PVK_STR(USER_UNMAPPED) ", %rax\n"
    ".globl user_pf_kernel\n"
    "user_pf_kernel:\n"
    "    movabs 0xffffffff80000000, %rax\n"
    ".globl user_pf_write\n"
    "user_pf_write:\n"
    "    movb $0, user_code_start(%rip)\n"
    ".globl user_exit\n"
    "user_exit:\n"
    "    movq $0x600d, %rdi\n"
    "    movl $" PVK_STR(SYS_EXIT) ", %eax\n"
    "    syscall\n"
    "    ud2\n"
    ".globl user_code_end\n"
    "user_code_end:\n"
    ".popsection\n");

extern char user_code_start[], user_after_echo[], user_after_int3[], user_pf_unmapped[],
    user_pf_kernel[], user_pf_write[], user_exit[], user_code_end[];
#define UVA(sym) (USER_CODE_VA + ((unsigned long)(sym) - (unsigned long)user_code_start))

static uint64_t u_l4[512] __aligned(4096);
static uint64_t u_l3[512] __aligned(4096);
static uint64_t u_l2[512] __aligned(4096);
static uint64_t u_l1[512] __aligned(4096);
static unsigned char user_stack[4096] __aligned(4096);
static unsigned char ktrap_stack[16384] __aligned(4096);
#define KTRAP_STACK_TOP ((unsigned long)ktrap_stack + sizeof(ktrap_stack))

/* What the syscall callback saw. */
static struct {
    int calls;
    uint64_t rip, cs, rflags, rsp, ss, rcx, r11, frame_top;
    uint8_t mask;
} echo;
static struct { uint64_t rax, rcx, r11; } reports[4];
static volatile int nreports;

static void user_syscall(struct cpu_regs *r)
{
    switch (r->rax) {
    case SYS_ECHO:
        echo.calls++;
        echo.rip = r->rip;
        echo.cs = r->cs;
        echo.rflags = r->rflags;
        echo.rsp = r->rsp;
        echo.ss = r->ss;
        echo.rcx = r->rcx;
        echo.r11 = r->r11;
        echo.frame_top = (uint64_t)(&r->ss + 1);
        echo.mask = vcpu0->evtchn_upcall_mask;
        r->rax = r->rdi + 1;
        /* Discarded by HYPERVISOR_iret with VGCF_in_syscall. */
        r->rcx = POISON_RCX;
        r->r11 = POISON_R11;
        r->error_code = VGCF_in_syscall;
        return;
    case SYS_FULL:
        r->rax = 0x3333;
        r->rcx = 0x1111;
        r->r11 = 0x2222;
        r->error_code = 0;
        return;
    case SYS_REPORT:
        if (nreports < (int)ARRAY_SIZE(reports)) {
            reports[nreports].rax = r->rdi;
            reports[nreports].rcx = r->rsi;
            reports[nreports].r11 = r->rdx;
        }
        nreports++;
        r->rax = 0;
        r->error_code = VGCF_in_syscall;
        return;
    case SYS_EXIT:
        leave_user(r->rdi);
    }
    bail("unknown user syscall %lu at %lx", r->rax, r->rip);
}

static bool setup_user(void)
{
    /* Page tables for the user half: L4[0] -> L3[0] -> L2[2] -> L1. */
    u_l4[0] = virt_to_maddr(u_l3) | PTE_USER_TABLE;
    u_l3[0] = virt_to_maddr(u_l2) | PTE_USER_TABLE;
    u_l2[L2_INDEX(USER_CODE_VA)] = virt_to_maddr(u_l1) | PTE_USER_TABLE;
    u_l1[L1_INDEX(USER_CODE_VA)] = virt_to_maddr(user_code_start) |
                                   _PAGE_PRESENT | _PAGE_USER | _PAGE_ACCESSED;
    u_l1[L1_INDEX(USER_STACK_VA)] = virt_to_maddr(user_stack) | PTE_USER_TABLE;

    /* Page-table frames may not stay writable anywhere (xen.h mmu_update). */
    long rc = remap_page(u_l1, PTE_KERNEL_RO);
    if (!rc)
        rc = remap_page(u_l2, PTE_KERNEL_RO);
    if (!rc)
        rc = remap_page(u_l3, PTE_KERNEL_RO);
    if (!rc)
        rc = remap_page(u_l4, PTE_KERNEL_RO);
    if (!check_ret("update_va_mapping makes the four user page-table pages read-only", rc, 0))
        return false;

    struct mmuext_op op = { .cmd = MMUEXT_PIN_L4_TABLE, .arg1.mfn = virt_to_mfn(u_l4) };
    unsigned int done = 0;
    rc = HYPERVISOR_mmuext_op(&op, 1, &done, DOMID_SELF);
    if (!check(rc == 0 && done == 1, "MMUEXT_PIN_L4_TABLE validates the user L4",
               "rc %ld, done %u", rc, done))
        return false;
    op.cmd = MMUEXT_NEW_USER_BASEPTR;
    rc = HYPERVISOR_mmuext_op(&op, 1, NULL, DOMID_SELF);
    if (!check_ret("MMUEXT_NEW_USER_BASEPTR installs the user L4", rc, 0))
        return false;

    rc = HYPERVISOR_stack_switch(FLAT_KERNEL_SS, KTRAP_STACK_TOP);
    if (!check_ret("stack_switch(FLAT_KERNEL_SS, kernel stack) returns 0", rc, 0))
        return false;

    struct callback_register cb = {
        .type = CALLBACKTYPE_syscall,
        .flags = CALLBACKF_mask_events,
        .address = (unsigned long)syscall_entry,
    };
    rc = HYPERVISOR_callback_op(CALLBACKOP_register, &cb);
    return check_ret("callback_op registers the syscall callback (CALLBACKF_mask_events)", rc, 0);
}

void test_main(void)
{
    if (!setup_user())
        return;
    syscall_hook = user_syscall;

    struct trap_expect bp = { .vector = X86_EXC_BP, .rip = UVA(user_after_int3) };
    struct trap_expect pf_user = { .vector = X86_EXC_PF, .rip = UVA(user_pf_unmapped),
                                   .fixup = UVA(user_pf_kernel) };
    struct trap_expect pf_kern = { .vector = X86_EXC_PF, .rip = UVA(user_pf_kernel),
                                   .fixup = UVA(user_pf_write) };
    struct trap_expect pf_write = { .vector = X86_EXC_PF, .rip = UVA(user_pf_write),
                                    .fixup = UVA(user_exit) };
    trap_expect(&bp);
    trap_expect(&pf_user);
    trap_expect(&pf_kern);
    trap_expect(&pf_write);

    unsigned long ret = enter_user(UVA(user_code_start), USER_STACK_VA + sizeof(user_stack));

    trap_expect_clear();
    long v = HYPERVISOR_xen_version(XENVER_version, NULL);
    check(ret == 0x600d && v >= (3L << 16),
          "back in kernel mode after the user's exit syscall: hypercalls work again",
          "enter_user returned %lx, xen_version %lx", ret, v);

    check(echo.calls == 1 && (echo.cs & 0xffff) == FLAT_USER_CS && echo.ss == FLAT_USER_SS &&
              echo.rsp == USER_STACK_VA + sizeof(user_stack) && echo.rip == UVA(user_after_echo),
          "user syscall: callback frame has CS FLAT_USER_CS (RPL 3), SS, the user RSP and RIP",
          "calls %d, cs %lx, ss %lx, rsp %lx, rip %lx", echo.calls, echo.cs, echo.ss, echo.rsp,
          echo.rip);
    check(echo.rcx == UVA(user_after_echo) && (echo.r11 & X86_EFLAGS_IF),
          "user syscall: frame RCX is the return RIP and R11 the user RFLAGS",
          "rcx %lx, r11 %lx", echo.rcx, echo.r11);
    check(echo.frame_top == KTRAP_STACK_TOP,
          "user syscall: the frame sits at the top of the stack_switch stack",
          "frame ends at %lx, kernel_sp %lx", echo.frame_top, KTRAP_STACK_TOP);
    check(echo.mask == 1 && ((echo.cs >> 32) & 0xff) == 0 && (echo.rflags & X86_EFLAGS_IF),
          "CALLBACKF_mask_events: events masked in the callback, RFLAGS.IF set in the frame",
          "mask %u, saved mask %lu, rflags %lx", echo.mask, (echo.cs >> 32) & 0xff,
          echo.rflags);

    check(nreports == 2, "the user program reported back twice", "%d reports", nreports);
    check(reports[0].rax == 0x1235 && reports[0].rcx == UVA(user_after_echo) &&
              reports[0].r11 != POISON_R11 && (reports[0].r11 & X86_EFLAGS_IF),
          "iret with VGCF_in_syscall: user gets RAX, and RCX/R11 as SYSRET leaves them",
          "rax %lx, rcx %lx, r11 %lx", reports[0].rax, reports[0].rcx, reports[0].r11);
    check(reports[1].rax == 0x3333 && reports[1].rcx == 0x1111 && reports[1].r11 == 0x2222,
          "iret without VGCF_in_syscall: user gets RAX, RCX and R11 from the frame",
          "rax %lx, rcx %lx, r11 %lx", reports[1].rax, reports[1].rcx, reports[1].r11);

    check(bp.hit == 1 && (bp.cs & 0xffff) == FLAT_USER_CS && bp.ss == FLAT_USER_SS &&
              bp.rsp == USER_STACK_VA + sizeof(user_stack) && bp.frame_top == KTRAP_STACK_TOP,
          "user int3: #BP on the kernel stack with CS RPL 3 and the user RSP",
          "hit %d, cs %lx, ss %lx, rsp %lx, frame top %lx", bp.hit, bp.cs, bp.ss, bp.rsp,
          bp.frame_top);
    check(pf_user.hit == 1 && pf_user.cr2 == USER_UNMAPPED && pf_user.error_code == PFEC_USER &&
              (pf_user.cs & 0xffff) == FLAT_USER_CS,
          "user read of an unmapped user address: #PF with error code U and CR2",
          "hit %d, cr2 %lx, error code %lx, cs %lx", pf_user.hit, pf_user.cr2,
          pf_user.error_code, pf_user.cs);
    check(pf_kern.hit == 1 && pf_kern.cr2 == VIRT_BASE && pf_kern.error_code == PFEC_USER,
          "user read of a kernel address: #PF, the kernel is not in the user page tables",
          "hit %d, cr2 %lx, error code %lx", pf_kern.hit, pf_kern.cr2, pf_kern.error_code);
    check(pf_write.hit == 1 && pf_write.cr2 == USER_CODE_VA &&
              pf_write.error_code == (PFEC_PRESENT | PFEC_WRITE | PFEC_USER),
          "user write to its read-only code page: #PF with error code P|W|U",
          "hit %d, cr2 %lx, error code %lx", pf_write.hit, pf_write.cr2, pf_write.error_code);
}
