/*
 * head.S - ELF notes, entry point, hypercall page and wrappers, and the
 * exception/event/syscall entry stubs of xenvmm's PV test kernels.
 *
 * Everything here follows Xen's public ABI:
 *  - xen.h "Start-of-day memory layout" and xg_dom_x86.c vcpu_x86_64:
 *    entry with RSI = start_info VA, on a bootstrap stack, CS = 0xe033.
 *  - elfnote.h for the notes; docs/guest-guide/x86/hypercall-abi.rst for
 *    hypercalls (RAX = number, args RDI RSI RDX R10 R8, result RAX, the
 *    argument registers clobbered; SYSCALL from kernel mode or the 32-byte
 *    stubs of the hypercall page).
 *  - entry.S create_bounce_frame for the frame Xen pushes on exceptions,
 *    events and user SYSCALLs: RCX, R11, [ERRCODE,] RIP, CS, RFLAGS, RSP, SS.
 *  - arch-x86/xen-x86_64.h HYPERVISOR_iret: the stack holds
 *    {rax, r11, rcx, flags, rip, cs, rflags, rsp, ss} at the hypercall.
 */
#define __ASSEMBLER__ 1
#include "xen.h"
#include "vectors.h"

/* ---- ELF notes (elfnote.h). FEATURES comes from each kernel's PVK_KERNEL. */
.macro XEN_NOTE_BEGIN type
        .pushsection .note.Xen, "a", @note
        .balign 4
        .long   4               /* namesz: "Xen" and its NUL */
        .long   2f - 1f         /* descsz */
        .long   \type
        .asciz  "Xen"
        .balign 4
1:
.endm
.macro XEN_NOTE_END
2:      .balign 4
        .popsection
.endm
.macro XEN_NOTE_STR type, value
        XEN_NOTE_BEGIN \type
        .asciz  "\value"
        XEN_NOTE_END
.endm
.macro XEN_NOTE_QUAD type, value
        XEN_NOTE_BEGIN \type
        .quad   \value
        XEN_NOTE_END
.endm

        XEN_NOTE_STR  XEN_ELFNOTE_GUEST_OS,       xenvmm-test
        XEN_NOTE_STR  XEN_ELFNOTE_GUEST_VERSION,  0
        XEN_NOTE_STR  XEN_ELFNOTE_XEN_VERSION,    xen-3.0
        XEN_NOTE_STR  XEN_ELFNOTE_LOADER,         generic
        XEN_NOTE_QUAD XEN_ELFNOTE_VIRT_BASE,      0xffffffff80000000
        XEN_NOTE_QUAD XEN_ELFNOTE_PADDR_OFFSET,   0
        XEN_NOTE_QUAD XEN_ELFNOTE_ENTRY,          _start
        XEN_NOTE_QUAD XEN_ELFNOTE_HYPERCALL_PAGE, hypercall_page
        XEN_NOTE_STR  XEN_ELFNOTE_PAE_MODE,       yes

/* ---- entry ------------------------------------------------------------ */
        .section .text.head, "ax", @progbits
        .globl  _start
        .type   _start, @function
_start:
        cld
        /* RSI = VA of start_info (xen.h start-of-day item 3d). */
        movq    %rsi, start_info(%rip)
        /* Clear .bss ourselves, as Linux's startup_xen does. */
        leaq    __bss_start(%rip), %rdi
        leaq    __bss_end(%rip), %rcx
        subq    %rdi, %rcx
        xorl    %eax, %eax
        rep stosb
        /* Our own stack instead of the builder's bootstrap one. */
        leaq    boot_stack_top(%rip), %rsp
        xorl    %ebp, %ebp
        call    pvk_start
        ud2
        .size   _start, . - _start

/* ---- the hypercall page ------------------------------------------------ */
/*
 * XEN_ELFNOTE_HYPERCALL_PAGE names this page; the domain builder writes
 * 128 stubs of 32 bytes into it (pv/hypercall.c pv_ring3_init_hypercall_page).
 * Until then it holds ud2s, so a builder that forgot it is caught at the
 * first call instead of silently returning garbage.
 */
        .section .text.hypercall_page, "ax", @progbits
        .balign 4096
        .globl  hypercall_page
        .type   hypercall_page, @function
hypercall_page:
        .rept   4096 / 2
        ud2
        .endr
        .size   hypercall_page, 4096

        .text

/*
 * HYPERCALL name, nr: `long HYPERVISOR_name(a1, a2, a3, a4, a5)`.
 * SysV passes RDI RSI RDX RCX R8; Xen wants RDI RSI RDX R10 R8, so only the
 * fourth argument moves. pvk_hypercall_page (set by PVK_KERNEL) picks the way:
 *  0: `syscall` from kernel mode with RCX/R11 saved around it, exactly as
 *     post-XSA-466 Linux does (arch/x86/xen/xen-asm.S xen_hypercall_pv);
 *  1: `call hypercall_page + 32*nr` with a constant target, as NetBSD does.
 */
.macro HYPERCALL name, nr
        .globl  HYPERVISOR_\name
        .type   HYPERVISOR_\name, @function
HYPERVISOR_\name:
        movq    %rcx, %r10
        cmpb    $0, pvk_hypercall_page(%rip)
        jne     1f
        movl    $\nr, %eax
        pushq   %rcx
        pushq   %r11
        syscall
        popq    %r11
        popq    %rcx
        ret
1:      call    hypercall_page + \nr * 32
        ret
        .size   HYPERVISOR_\name, . - HYPERVISOR_\name
.endm

        HYPERCALL set_trap_table,    __HYPERVISOR_set_trap_table
        HYPERCALL mmu_update,        __HYPERVISOR_mmu_update
        HYPERCALL stack_switch,      __HYPERVISOR_stack_switch
        HYPERCALL memory_op,         __HYPERVISOR_memory_op
        HYPERCALL update_va_mapping, __HYPERVISOR_update_va_mapping
        HYPERCALL xen_version,       __HYPERVISOR_xen_version
        HYPERCALL console_io,        __HYPERVISOR_console_io
        HYPERCALL vm_assist,         __HYPERVISOR_vm_assist
        HYPERCALL vcpu_op,           __HYPERVISOR_vcpu_op
        HYPERCALL mmuext_op,         __HYPERVISOR_mmuext_op
        HYPERCALL sched_op,          __HYPERVISOR_sched_op
        HYPERCALL callback_op,       __HYPERVISOR_callback_op
        HYPERCALL event_channel_op,  __HYPERVISOR_event_channel_op

/* long hypercall_raw_*(nr, a1, a2, a3, a4, a5): any number (badargs). */
.macro RAW_SHUFFLE
        movq    %rdi, %rax
        movq    %rsi, %rdi
        movq    %rdx, %rsi
        movq    %rcx, %rdx
        movq    %r8, %r10
        movq    %r9, %r8
.endm

        .globl  hypercall_raw_syscall
        .type   hypercall_raw_syscall, @function
hypercall_raw_syscall:
        RAW_SHUFFLE
        pushq   %rcx
        pushq   %r11
        syscall
        popq    %r11
        popq    %rcx
        ret
        .size   hypercall_raw_syscall, . - hypercall_raw_syscall

        .globl  hypercall_raw_page
        .type   hypercall_raw_page, @function
hypercall_raw_page:
        RAW_SHUFFLE
        cmpq    $(4096 / 32), %rax      /* the page has 128 stubs */
        jae     1f
        shlq    $5, %rax
        leaq    hypercall_page(%rip), %r9
        addq    %rax, %r9
        call    *%r9
        ret
1:      movq    $-XEN_ENOSYS, %rax
        ret
        .size   hypercall_raw_page, . - hypercall_raw_page

        .globl  hypercall_raw
        .type   hypercall_raw, @function
hypercall_raw:
        cmpb    $0, pvk_hypercall_page(%rip)
        jne     hypercall_raw_page
        jmp     hypercall_raw_syscall
        .size   hypercall_raw, . - hypercall_raw

/* ---- returning through HYPERVISOR_iret --------------------------------- */
/*
 * On entry the stack holds {flags, rip, cs, rflags, rsp, ss} and every
 * register is what the interrupted context should get back, except that
 * RAX, R11 and RCX are still ours to push: iret_context is
 * {rax, r11, rcx, flags, rip, cs, rflags, rsp, ss} (xen-x86_64.h), which
 * the iret stub of the hypercall page builds with push %rcx; push %r11;
 * push %rax (pv/hypercall.c), and which Linux's xen_iret builds the same
 * way before its `syscall`.
 */
        .type   pvk_iret, @function
pvk_iret:
        cmpb    $0, pvk_hypercall_page(%rip)
        jne     1f
        pushq   %rcx
        pushq   %r11
        pushq   %rax
        movl    $__HYPERVISOR_iret, %eax
        syscall
        ud2                             /* HYPERVISOR_iret does not return */
1:      jmp     hypercall_page + __HYPERVISOR_iret * 32
        .size   pvk_iret, . - pvk_iret

/* ---- entry stubs ------------------------------------------------------- */
.macro SAVE_REGS                /* matches struct cpu_regs (pvk.h) */
        pushq   %rax
        pushq   %rbx
        pushq   %rcx
        pushq   %rdx
        pushq   %rsi
        pushq   %rdi
        pushq   %rbp
        pushq   %r8
        pushq   %r9
        pushq   %r10
        pushq   %r11
        pushq   %r12
        pushq   %r13
        pushq   %r14
        pushq   %r15
.endm

/*
 * trap_entry_table: one 16-byte stub per vector 0-31 for set_trap_table.
 * Xen's frame starts with RCX and R11 because it may SYSRET to us (which
 * clobbers both); pop them first. Vectors without an error code get a 0 so
 * that every frame has the same shape. The frame's top is 16-byte aligned
 * (create_bounce_frame), so after 2 + 15 pushes RSP is aligned for the call.
 */
        .balign 16
        .globl  trap_entry_table
trap_entry_table:
        vec = 0
        .rept   32
        .balign 16
        popq    %rcx
        popq    %r11
        .if !(vec == 8 || (vec >= 10 && vec <= 14) || vec == 17 || vec == 21 || vec == 29 || vec == 30)
        pushq   $0
        .endif
        pushq   $vec
        jmp     trap_common
        vec = vec + 1
        .endr

trap_common:
        SAVE_REGS
        cld
        movq    %rsp, %rdi
        call    trap_dispatch
        jmp     pvk_return

/*
 * event_entry: CALLBACKTYPE_event. Frame RCX, R11, RIP, CS, RFLAGS, RSP,
 * SS; Xen has set evtchn_upcall_mask (TBF_INTERRUPT).
 */
        .globl  event_entry
        .type   event_entry, @function
event_entry:
        popq    %rcx
        popq    %r11
        pushq   $0
        pushq   $PVK_VEC_EVENT
        SAVE_REGS
        cld
        movq    %rsp, %rdi
        call    evtchn_dispatch
        jmp     pvk_return
        .size   event_entry, . - event_entry

/*
 * syscall_entry: CALLBACKTYPE_syscall, a SYSCALL made in user mode
 * (entry.S switch_to_kernel). Same frame as events; RCX/R11 in it are the
 * user's (return RIP and RFLAGS as SYSCALL left them).
 */
        .globl  syscall_entry
        .type   syscall_entry, @function
syscall_entry:
        popq    %rcx
        popq    %r11
        pushq   $0
        pushq   $PVK_VEC_SYSCALL
        SAVE_REGS
        cld
        movq    %rsp, %rdi
        call    syscall_dispatch
        jmp     pvk_return
        .size   syscall_entry, . - syscall_entry

/* Restore what SAVE_REGS saved, drop the vector, and leave through
 * HYPERVISOR_iret with the error_code slot as its `flags`. */
pvk_return:
        popq    %r15
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %r11
        popq    %r10
        popq    %r9
        popq    %r8
        popq    %rbp
        popq    %rdi
        popq    %rsi
        popq    %rdx
        popq    %rcx
        popq    %rbx
        popq    %rax
        addq    $8, %rsp
        jmp     pvk_iret

/*
 * failsafe_entry: CALLBACKTYPE_failsafe, which Xen uses when it cannot
 * load the guest's segment registers on the way back (frame RCX, R11, DS,
 * ES, FS, GS, RIP, CS, RFLAGS, RSP, SS; domain.c load_segments). None of
 * our kernels should ever get here: report it and crash.
 */
        .globl  failsafe_entry
        .type   failsafe_entry, @function
failsafe_entry:
        movq    %rsp, %rdi
        andq    $-16, %rsp
        call    failsafe_dispatch
        ud2
        .size   failsafe_entry, . - failsafe_entry

/* ---- user mode -------------------------------------------------------- */
/*
 * unsigned long enter_user(rip, rsp): HYPERVISOR_iret to CS = FLAT_USER_CS
 * (RPL 3 means "return to user mode", xen-x86_64.h) with RFLAGS.IF set, so
 * events stay enabled there. leave_user(value), called from the syscall
 * callback, abandons that frame and returns `value` from enter_user.
 */
        .globl  enter_user
        .type   enter_user, @function
enter_user:
        pushq   %rbp
        pushq   %rbx
        pushq   %r12
        pushq   %r13
        pushq   %r14
        pushq   %r15
        movq    %rsp, user_saved_ksp(%rip)
        pushq   $FLAT_USER_SS           /* ss */
        pushq   %rsi                    /* rsp */
        pushq   $0x202                  /* rflags: IF */
        pushq   $FLAT_USER_CS           /* cs */
        pushq   %rdi                    /* rip */
        pushq   $0                      /* flags */
        jmp     pvk_iret
        .size   enter_user, . - enter_user

        .globl  leave_user
        .type   leave_user, @function
leave_user:
        movq    %rdi, %rax
        movq    user_saved_ksp(%rip), %rsp
        popq    %r15
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %rbx
        popq    %rbp
        ret
        .size   leave_user, . - leave_user

/* ---- data ------------------------------------------------------------- */
        .data
        .balign 8
        .globl  start_info
start_info:
        .quad   0
user_saved_ksp:
        .quad   0

        .bss
        .balign 4096
boot_stack:
        .skip   16384
boot_stack_top:

        .section .note.GNU-stack, "", @progbits
