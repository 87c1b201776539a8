/*
 * pagetables - the PV MMU: mmu_update, update_va_mapping, mmuext_op,
 * MMU_MACHPHYS_UPDATE and writable page tables (VMASST_TYPE_writable_pagetables).
 * Hypercalls by `syscall` from kernel mode.
 *
 * Rules followed (xen.h mmu_update comment, mm.c): a frame becomes a page
 * table only when no writable mapping of it exists, so every new table is
 * filled first, then remapped read-only with update_va_mapping, then
 * pinned or hooked in. mmu_update of an L1 entry does not flush the TLB;
 * only previously non-present entries are read without a flush.
 */
#include "pvk.h"

PVK_KERNEL("pagetables", "!writable_page_tables", PVK_VIA_SYSCALL);

#define PAT_A 0xa0a0a0a0a0a0a0a0UL
#define PAT_B 0xb0b0b0b0b0b0b0b0UL
#define PAT_C 0xc0c0c0c0c0c0c0c0UL

/* A guest L4 slot above the hypervisor's 256-271 that is empty at boot. */
#define X_SLOT 300UL
#define X_VA   (0xffff000000000000UL | (X_SLOT << 39))

static uint64_t page_a[512] __aligned(4096);
static uint64_t page_b[512] __aligned(4096);
static uint64_t page_c[512] __aligned(4096);
static uint64_t n_l1[512] __aligned(4096);       /* hooked into the boot L2 */
static uint64_t x_l4[512] __aligned(4096);       /* a second kernel L4 ... */
static uint64_t x_l3[512] __aligned(4096);
static uint64_t x_l2[512] __aligned(4096);
static uint64_t x_l1[512] __aligned(4096);       /* ... whose slot X_SLOT maps page_a */

/* Read a qword at va; false (with CR2) if that raised #PF. */
static bool probe(unsigned long va, uint64_t *val, uint64_t *cr2)
{
    struct trap_expect e = { .vector = X86_EXC_PF };
    uint64_t v = 0;
    trap_expect(&e);
    __asm__ __volatile__(ARM_FAULT "1: movq (%[va]), %[v]\n\t2:\n\t"
                         : [v] "+r"(v)
                         : [va] "r"(va), ARM_OPERANDS(&e)
                         : "rax", "memory");
    trap_expect_clear();
    *cr2 = e.cr2;
    *val = v;
    return !e.hit;
}

static bool reads(unsigned long va, uint64_t want, uint64_t *got)
{
    uint64_t cr2;
    *got = 0;
    return probe(va, got, &cr2) && *got == want;
}

static long mmu_update1(uint64_t ptr, uint64_t val, unsigned int *done)
{
    struct mmu_update req = { .ptr = ptr, .val = val };
    *done = 0;
    return HYPERVISOR_mmu_update(&req, 1, done, DOMID_SELF);
}

static long mmuext1(unsigned int cmd, unsigned long arg)
{
    struct mmuext_op op = { .cmd = cmd, .arg1.mfn = arg };
    return HYPERVISOR_mmuext_op(&op, 1, NULL, DOMID_SELF);
}

static unsigned long new_va;

static bool test_new_l1(void)
{
    /* A 2 MiB slot of the boot L2 beyond the initial mapping. */
    unsigned long va = 0;
    for (unsigned long i = L2_INDEX(VIRT_BASE) + 1; i < 512; i++) {
        bool ok;
        unsigned long cand = VIRT_BASE + (i - L2_INDEX(VIRT_BASE)) * (2UL << 20);
        uint64_t l2e = read_pte(cand, 2, &ok);
        if (ok && !(l2e & _PAGE_PRESENT)) {
            va = cand;
            break;
        }
    }
    if (!check(va != 0, "found an empty 2 MiB slot in the boot L2", "none"))
        return false;
    new_va = va;
    diag("new L1 at %lx", new_va);

    n_l1[0] = virt_to_maddr(page_a) | PTE_KERNEL_RW;
    long rc = remap_page(n_l1, PTE_KERNEL_RO);
    check_ret("update_va_mapping makes the new L1 read-only", rc, 0);
    rc = mmuext1(MMUEXT_PIN_L1_TABLE, virt_to_mfn(n_l1));
    check_ret("MMUEXT_PIN_L1_TABLE pins it", rc, 0);

    unsigned int done;
    rc = mmu_update1(pte_maddr(new_va, 2) | MMU_NORMAL_PT_UPDATE,
                     virt_to_maddr(n_l1) | PTE_TABLE, &done);
    uint64_t got;
    bool ok = reads(new_va, PAT_A, &got);
    return check(rc == 0 && done == 1 && ok,
                 "mmu_update of an L2 entry hooks the L1 in: its first entry maps page A",
                 "rc %ld, done %u, read %lx", rc, done, got);
}

static void test_l1_updates(void)
{
    unsigned long va = new_va + PAGE_SIZE;
    unsigned int done;
    uint64_t got;

    long rc = mmu_update1(virt_to_maddr(&n_l1[1]) | MMU_NORMAL_PT_UPDATE,
                          virt_to_maddr(page_b) | PTE_KERNEL_RW, &done);
    bool ok = reads(va, PAT_B, &got);
    check(rc == 0 && done == 1 && ok,
          "mmu_update (MMU_NORMAL_PT_UPDATE) of an L1 entry maps page B at a new VA",
          "rc %ld, done %u, read %lx", rc, done, got);

    if (ok)
        *(volatile uint64_t *)(va + 8) = 0x1234;
    check(ok && page_b[1] == 0x1234, "a write through the new mapping lands in page B",
          "page_b[1] = %lx", page_b[1]);

    rc = HYPERVISOR_update_va_mapping(va, virt_to_maddr(page_c) | PTE_KERNEL_RW,
                                      UVMF_INVLPG | UVMF_LOCAL);
    ok = reads(va, PAT_C, &got);
    check(rc == 0 && ok, "update_va_mapping with UVMF_INVLPG remaps the VA to page C",
          "rc %ld, read %lx", rc, got);

    rc = HYPERVISOR_update_va_mapping(va, virt_to_maddr(page_b) | PTE_KERNEL_RW,
                                      UVMF_TLB_FLUSH | UVMF_LOCAL);
    ok = reads(va, PAT_B, &got);
    check(rc == 0 && ok, "update_va_mapping with UVMF_TLB_FLUSH remaps it back to page B",
          "rc %ld, read %lx", rc, got);

    rc = HYPERVISOR_update_va_mapping(va, 0, UVMF_INVLPG | UVMF_LOCAL);
    uint64_t cr2;
    bool readable = probe(va, &got, &cr2);
    check(rc == 0 && !readable && cr2 == va,
          "update_va_mapping to 0 unmaps it: a read raises #PF at that VA",
          "rc %ld, readable %d, cr2 %lx", rc, readable, cr2);
}

static void test_writable_pagetables(void)
{
    check_ret("vm_assist(VMASST_CMD_enable, VMASST_TYPE_writable_pagetables) returns 0",
              HYPERVISOR_vm_assist(VMASST_CMD_enable, VMASST_TYPE_writable_pagetables), 0);

    /* n_l1 is a live L1 mapped read-only: write its entry 2 directly, the
     * write faults into Xen, which validates and performs it (ptwr). */
    unsigned long va = new_va + 2 * PAGE_SIZE;
    volatile uint64_t *pte = &n_l1[2];
    uint64_t got;
    *pte = virt_to_maddr(page_c) | PTE_KERNEL_RW;
    bool ok = reads(va, PAT_C, &got);
    check(ok, "a direct write to a non-present L1 entry maps page C", "read %lx", got);
    check_eq("reading that L1 entry back shows page C's frame",
             (long)((*pte & PTE_ADDR_MASK) >> PAGE_SHIFT), (long)virt_to_mfn(page_c));

    *pte = virt_to_maddr(page_a) | PTE_KERNEL_RW;
    struct mmuext_op op = { .cmd = MMUEXT_INVLPG_LOCAL, .arg1.linear_addr = va };
    long rc = HYPERVISOR_mmuext_op(&op, 1, NULL, DOMID_SELF);
    ok = reads(va, PAT_A, &got);
    check(rc == 0 && ok,
          "a direct write replacing a present L1 entry, then MMUEXT_INVLPG_LOCAL: page A",
          "rc %ld, read %lx", rc, got);
}

static void test_machphys(void)
{
    unsigned long mfn = virt_to_mfn(page_b);
    unsigned long pfn = m2p()[mfn];
    unsigned int done;

    long rc = mmu_update1((mfn << PAGE_SHIFT) | MMU_MACHPHYS_UPDATE, 0x12345, &done);
    unsigned long seen = m2p()[mfn];
    check(rc == 0 && done == 1 && seen == 0x12345,
          "MMU_MACHPHYS_UPDATE sets an M2P entry, visible at MACH2PHYS_VIRT_START",
          "rc %ld, done %u, m2p[%lx] = %lx", rc, done, mfn, seen);
    rc = mmu_update1((mfn << PAGE_SHIFT) | MMU_MACHPHYS_UPDATE, pfn, &done);
    seen = m2p()[mfn];
    check(rc == 0 && seen == pfn && seen == virt_to_pfn(page_b),
          "MMU_MACHPHYS_UPDATE restores it", "rc %ld, m2p[%lx] = %lx, want %lx", rc, mfn,
          seen, pfn);
}

static void test_new_baseptr(void)
{
    /* A copy of the boot L4 (without Xen's slots 256-271, which Xen fills
     * in itself) plus slot X_SLOT -> x_l3 -> x_l2 -> x_l1 -> page_a. */
    const uint64_t *boot_l4 = (const uint64_t *)start_info->pt_base;
    for (int i = 0; i < 512; i++)
        if (i < 256 || i > 271)
            x_l4[i] = boot_l4[i];
    x_l4[X_SLOT] = virt_to_maddr(x_l3) | PTE_TABLE;
    x_l3[L3_INDEX(X_VA)] = virt_to_maddr(x_l2) | PTE_TABLE;
    x_l2[L2_INDEX(X_VA)] = virt_to_maddr(x_l1) | PTE_TABLE;
    x_l1[L1_INDEX(X_VA)] = virt_to_maddr(page_a) | PTE_KERNEL_RW;

    long rc = remap_page(x_l1, PTE_KERNEL_RO);
    if (!rc)
        rc = remap_page(x_l2, PTE_KERNEL_RO);
    if (!rc)
        rc = remap_page(x_l3, PTE_KERNEL_RO);
    if (!rc)
        rc = remap_page(x_l4, PTE_KERNEL_RO);
    check_ret("update_va_mapping makes a new L4, L3, L2 and L1 read-only", rc, 0);

    struct mmuext_op pin[4] = {
        { .cmd = MMUEXT_PIN_L1_TABLE, .arg1.mfn = virt_to_mfn(x_l1) },
        { .cmd = MMUEXT_PIN_L2_TABLE, .arg1.mfn = virt_to_mfn(x_l2) },
        { .cmd = MMUEXT_PIN_L3_TABLE, .arg1.mfn = virt_to_mfn(x_l3) },
        { .cmd = MMUEXT_PIN_L4_TABLE, .arg1.mfn = virt_to_mfn(x_l4) },
    };
    unsigned int done = 0;
    rc = HYPERVISOR_mmuext_op(pin, 4, &done, DOMID_SELF);
    check(rc == 0 && done == 4, "MMUEXT_PIN_L1_TABLE..PIN_L4_TABLE pin the new hierarchy",
          "rc %ld, done %u", rc, done);

    uint64_t got, cr2;
    bool before = probe(X_VA, &got, &cr2);
    check(!before && cr2 == X_VA, "the new L4's extra slot is not mapped by the boot L4",
          "read %lx, cr2 %lx", got, cr2);

    rc = mmuext1(MMUEXT_NEW_BASEPTR, virt_to_mfn(x_l4));
    bool ok = reads(X_VA, PAT_A, &got);
    check(rc == 0 && ok, "MMUEXT_NEW_BASEPTR switches to the new L4: its slot maps page A",
          "rc %ld, read %lx", rc, got);

    struct mmuext_op flush = { .cmd = MMUEXT_TLB_FLUSH_LOCAL };
    rc = HYPERVISOR_mmuext_op(&flush, 1, NULL, DOMID_SELF);
    ok = reads(X_VA, PAT_A, &got);
    check(rc == 0 && ok, "MMUEXT_TLB_FLUSH_LOCAL returns 0 and the mapping stays",
          "rc %ld, read %lx", rc, got);

    rc = mmuext1(MMUEXT_NEW_BASEPTR, virt_to_mfn((void *)start_info->pt_base));
    bool after = probe(X_VA, &got, &cr2);
    check(rc == 0 && !after && cr2 == X_VA,
          "MMUEXT_NEW_BASEPTR back to the boot L4: the extra slot faults again",
          "rc %ld, readable %d, cr2 %lx", rc, after, cr2);

    struct mmuext_op unpin[4] = {
        { .cmd = MMUEXT_UNPIN_TABLE, .arg1.mfn = virt_to_mfn(x_l4) },
        { .cmd = MMUEXT_UNPIN_TABLE, .arg1.mfn = virt_to_mfn(x_l3) },
        { .cmd = MMUEXT_UNPIN_TABLE, .arg1.mfn = virt_to_mfn(x_l2) },
        { .cmd = MMUEXT_UNPIN_TABLE, .arg1.mfn = virt_to_mfn(x_l1) },
    };
    done = 0;
    rc = HYPERVISOR_mmuext_op(unpin, 4, &done, DOMID_SELF);
    check(rc == 0 && done == 4, "MMUEXT_UNPIN_TABLE unpins the four tables",
          "rc %ld, done %u", rc, done);

    /* No longer a page table anywhere: it may be mapped writable again. */
    rc = remap_page(x_l4, PTE_KERNEL_RW);
    if (rc == 0)
        x_l4[X_SLOT] = 0;
    check(rc == 0 && x_l4[X_SLOT] == 0,
          "an unpinned, unused L4 can be mapped writable and written again", "rc %ld", rc);
}

void test_main(void)
{
    page_a[0] = PAT_A;
    page_b[0] = PAT_B;
    page_c[0] = PAT_C;

    if (test_new_l1()) {
        test_l1_updates();
        test_writable_pagetables();
    }
    test_machphys();
    test_new_baseptr();
}
