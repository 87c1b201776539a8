/*
 * traps.c - the virtual IDT (arch-x86/xen.h struct trap_info,
 * HYPERVISOR_set_trap_table) and what happens when an exception arrives.
 */
#include "pvk.h"

bool (*trap_hook)(struct cpu_regs *regs);
void (*syscall_hook)(struct cpu_regs *regs);

#define MAX_EXPECT 8
static struct trap_expect *expected[MAX_EXPECT];

void trap_expect(struct trap_expect *e)
{
    e->hit = 0;
    for (unsigned int i = 0; i < MAX_EXPECT; i++) {
        if (!expected[i]) {
            expected[i] = e;
            return;
        }
    }
    bail("too many armed trap expectations");
}

void trap_expect_clear(void)
{
    for (unsigned int i = 0; i < MAX_EXPECT; i++)
        expected[i] = NULL;
}

/*
 * Every architectural exception vector goes to our stubs with DPL 0,
 * except #BP (3) and #OF (4), which are DPL 3 so that int3/into work from
 * user mode (pv-traps.rst). No entry masks events (flags bit 2 clear).
 * Vectors 2 (NMI, a callback in PV), 9 and 15 (reserved) are left out.
 */
long install_trap_table(void)
{
    static struct trap_info table[33];
    unsigned int n = 0;
    for (unsigned int vec = 0; vec < 32; vec++) {
        if (vec == 2 || vec == 9 || vec == 15 || (vec > 21 && vec != 29 && vec != 30))
            continue;
        table[n].vector = (uint8_t)vec;
        table[n].flags = (vec == 3 || vec == 4) ? 3 : 0;
        table[n].cs = FLAT_KERNEL_CS;
        table[n].address = TRAP_ENTRY(vec);
        n++;
    }
    table[n].address = 0;   /* the sentinel (arch-x86/xen.h) */
    return HYPERVISOR_set_trap_table(table);
}

static const char *vector_name(uint64_t v)
{
    static const char *names[32] = {
        "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "?",
        "#TS", "#NP", "#SS", "#GP", "#PF", "?", "#MF", "#AC", "#MC", "#XM",
        "#VE", "#CP",
    };
    return v < 32 && names[v] ? names[v] : "?";
}

void trap_dispatch(struct cpu_regs *regs)
{
    uint64_t cr2 = regs->vector == X86_EXC_PF ? vcpu0->arch.cr2 : 0;
    uint8_t mask = vcpu0->evtchn_upcall_mask;

    for (unsigned int i = 0; i < MAX_EXPECT; i++) {
        struct trap_expect *e = expected[i];
        if (!e || e->vector != regs->vector || e->rip != regs->rip)
            continue;
        e->error_code = regs->error_code;
        e->cs = regs->cs;
        e->rflags = regs->rflags;
        e->rsp = regs->rsp;
        e->ss = regs->ss;
        e->cr2 = cr2;
        e->mask_in_handler = mask;
        e->frame_top = (uint64_t)(&regs->ss + 1);
        e->hit++;
        if (e->fixup)
            regs->rip = e->fixup;
        regs->error_code = 0;   /* HYPERVISOR_iret flags */
        return;
    }
    if (trap_hook && trap_hook(regs)) {
        regs->error_code = 0;
        return;
    }
    bail("unexpected %s (vector %lu) at rip %lx cs %lx err %lx cr2 %lx rsp %lx",
         vector_name(regs->vector), regs->vector, regs->rip, regs->cs,
         regs->error_code, cr2, regs->rsp);
}

void syscall_dispatch(struct cpu_regs *regs)
{
    if (!syscall_hook)
        bail("syscall callback without a handler (rip %lx)", regs->rip);
    regs->error_code = VGCF_in_syscall;
    syscall_hook(regs);
}
