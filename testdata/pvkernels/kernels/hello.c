/*
 * hello - console output, xen_version, start_info and the M2P/P2M.
 * Hypercalls through the hypercall page (as NetBSD makes them).
 */
#include "pvk.h"

PVK_KERNEL("hello", "", PVK_VIA_PAGE);

static char buf[1024];

static bool in_initial_mapping(unsigned long va)
{
    return va >= VIRT_BASE && va < VIRT_BASE + initial_mapping_pages() * PAGE_SIZE;
}

static void check_version(void)
{
    /* version.h: XENVER_version returns major << 16 | minor. */
    long v = HYPERVISOR_xen_version(XENVER_version, NULL);
    diag("Xen version %ld.%ld", v >> 16, v & 0xffff);
    check(v >= (3L << 16) && v <= 0xffffffffL, "XENVER_version reports Xen 3.0 or later",
          "returned 0x%lx", v);

    /* XENVER_extraversion fills a 16-byte xen_extraversion_t. */
    memset(buf, 0x7f, sizeof(buf));
    long rc = HYPERVISOR_xen_version(XENVER_extraversion, buf);
    size_t n = strnlen(buf, 16);
    if (rc == 0 && n < 16)
        diag("extraversion \"%s\"", buf);
    check(rc == 0 && n < 16 && buf[16] == 0x7f,
          "XENVER_extraversion is a NUL-terminated string of at most 16 bytes",
          "rc %ld, length %lu, byte 16 = 0x%x", rc, n, (unsigned char)buf[16]);

    /* XENVER_capabilities: 1024 bytes naming what Xen can run. */
    memset(buf, 0, sizeof(buf));
    rc = HYPERVISOR_xen_version(XENVER_capabilities, buf);
    buf[sizeof(buf) - 1] = 0;
    if (rc == 0)
        diag("capabilities \"%s\"", buf);
    check(rc == 0 && strstr(buf, "xen-3.0-x86_64") != NULL,
          "XENVER_capabilities lists xen-3.0-x86_64", "rc %ld, \"%s\"", rc, buf);

    /* XENVER_get_features submap 0 (features.h; kernel.c do_xen_version). */
    struct xen_feature_info fi = { .submap_idx = 0 };
    rc = HYPERVISOR_xen_version(XENVER_get_features, &fi);
    diag("features submap 0 = 0x%x", fi.submap);
    check(rc == 0 &&
          !(fi.submap & (1U << XENFEAT_auto_translated_physmap)) &&
          !(fi.submap & (1U << XENFEAT_hvm_callback_vector)) &&
          !(fi.submap & (1U << XENFEAT_dom0)),
          "XENVER_get_features: a PV domU (no auto_translated_physmap, hvm_callback_vector, dom0)",
          "rc %ld, submap 0x%x", rc, fi.submap);
}

static void check_start_info(void)
{
    struct start_info *si = start_info;
    unsigned long si_va = (unsigned long)si;
    unsigned long mapped = initial_mapping_pages();

    check(memcmp(si->magic, "xen-3.0-x86_64", 15) == 0,
          "start_info.magic is \"xen-3.0-x86_64\"", "magic \"%.31s\"", si->magic);
    check((si_va & (PAGE_SIZE - 1)) == 0 && in_initial_mapping(si_va),
          "start_info (RSI at entry) is a page inside the initial mapping",
          "start_info at %lx, mapping %lx+%lu pages", si_va, VIRT_BASE, mapped);
    diag("nr_pages %lu, pt_base %lx, nr_pt_frames %lu, mfn_list %lx, flags 0x%x",
         si->nr_pages, si->pt_base, si->nr_pt_frames, si->mfn_list, si->flags);
    check(si->nr_pages > 0 && mapped <= si->nr_pages, "start_info.nr_pages covers the initial mapping",
          "nr_pages %lu, %lu pages mapped", si->nr_pages, mapped);
    check((si->pt_base & (PAGE_SIZE - 1)) == 0 && in_initial_mapping(si->pt_base) &&
              si->nr_pt_frames >= 4,
          "start_info.pt_base is page-aligned inside the initial mapping with >= 4 table frames",
          "pt_base %lx, nr_pt_frames %lu", si->pt_base, si->nr_pt_frames);
    check((si->mfn_list & 7) == 0 && in_initial_mapping(si->mfn_list) &&
              in_initial_mapping(si->mfn_list + si->nr_pages * 8 - 1),
          "start_info.mfn_list holds nr_pages entries inside the initial mapping",
          "mfn_list %lx, nr_pages %lu", si->mfn_list, si->nr_pages);
    check(si_va > si->mfn_list && si->pt_base > si_va,
          "start-of-day order: P2M list, start_info, page tables",
          "mfn_list %lx, start_info %lx, pt_base %lx", si->mfn_list, si_va, si->pt_base);
    check((si->flags & (SIF_PRIVILEGED | SIF_INITDOMAIN)) == 0,
          "start_info.flags: neither privileged nor the initial domain", "flags 0x%x", si->flags);
    check((si->shared_info & (PAGE_SIZE - 1)) == 0 && si->shared_info != 0,
          "start_info.shared_info is a page-aligned machine address", "shared_info %lx",
          si->shared_info);

    /* The PT frames are the boot L4 and what hangs below it: check the L4
     * maps the kernel (slot of VIRT_BASE present). */
    bool ok;
    uint64_t l4e = read_pte(VIRT_BASE, 4, &ok);
    check(ok && (l4e & _PAGE_PRESENT), "the boot L4 at pt_base maps VIRT_BASE",
          "L4 entry %lx", l4e);
    /* The bootstrap page tables are mapped read-only (xen.h item 6). */
    uint64_t pte = read_pte(si->pt_base, 1, &ok);
    check(ok && (pte & _PAGE_PRESENT) && !(pte & _PAGE_RW) &&
              ((pte & PTE_ADDR_MASK) >> PAGE_SHIFT) == virt_to_mfn((void *)si->pt_base),
          "the boot L4 is mapped read-only at pt_base", "L1 entry %lx", pte);

    size_t len = strnlen((const char *)si->cmd_line, MAX_GUEST_CMDLINE);
    check(len < MAX_GUEST_CMDLINE, "start_info.cmd_line is NUL-terminated", "no NUL in %d bytes",
          MAX_GUEST_CMDLINE);
    diag("cmdline: %s", len < MAX_GUEST_CMDLINE ? (const char *)si->cmd_line : "");

    void *store = mfn_to_virt(si->store_mfn);
    void *cons = mfn_to_virt(si->console.domU.mfn);
    diag("store mfn %lx evtchn %u, console mfn %lx evtchn %u", si->store_mfn,
         si->store_evtchn, si->console.domU.mfn, si->console.domU.evtchn);
    check(store != NULL && cons != NULL && (unsigned long)store > si_va &&
              (unsigned long)cons > (unsigned long)store &&
              (unsigned long)cons < si->pt_base,
          "xenstore and console pages sit between start_info and the page tables",
          "store at %p, console at %p", store, cons);
}

static void check_m2p(void)
{
    /* memory.h XENMEM_machphys_mapping: where the M2P is and how many
     * entries it has. Xen itself answers MACH2PHYS_VIRT_START..END and
     * max_mfn = MACH2PHYS_NR_ENTRIES - 1 (x86 mm.c); a guest may rely only
     * on the table starting at v_start (Linux xen_setup_machphys_mapping)
     * and covering max_mfn + 1 entries below v_end. */
    struct xen_machphys_mapping map = { 0 };
    long rc = HYPERVISOR_memory_op(XENMEM_machphys_mapping, &map);
    diag("M2P %lx-%lx, max_mfn %lx", map.v_start, map.v_end, map.max_mfn);
    check(rc == 0 && map.v_start == MACH2PHYS_VIRT_START && map.v_end > map.v_start &&
              map.v_end <= MACH2PHYS_VIRT_END && map.max_mfn < (map.v_end - map.v_start) / 8,
          "XENMEM_machphys_mapping: the M2P starts at MACH2PHYS_VIRT_START and holds max_mfn + 1 entries",
          "rc %ld, v_start %lx, v_end %lx, max_mfn %lx", rc, map.v_start, map.v_end, map.max_mfn);

    /* Sample pfns: first, second, middle, last. */
    unsigned long n = start_info->nr_pages;
    unsigned long pfns[4] = { 0, 1, n / 2, n - 1 };
    bool ok = true, below_max = true;
    for (int i = 0; i < 4; i++) {
        unsigned long mfn = p2m()[pfns[i]];
        if (mfn > map.max_mfn) {
            below_max = false;
            diag("pfn %lx: mfn %lx above max_mfn %lx", pfns[i], mfn, map.max_mfn);
            continue;
        }
        unsigned long back = m2p()[mfn];
        if (back != pfns[i]) {
            ok = false;
            diag("pfn %lx -> mfn %lx -> pfn %lx", pfns[i], mfn, back);
        }
    }
    check(below_max, "XENMEM_machphys_mapping.max_mfn covers the domain's frames",
          "max_mfn %lx", map.max_mfn);
    check(ok, "the M2P inverts the P2M: m2p[p2m[pfn]] == pfn", "see the diagnostics above");

    /* Our own image: the frame of a page we know, both ways. */
    unsigned long mfn = virt_to_mfn(buf);
    check(mfn_to_virt(mfn) == (void *)((unsigned long)buf & ~(PAGE_SIZE - 1)),
          "the M2P maps a kernel page's frame back to its pfn", "mfn %lx", mfn);
}

void test_main(void)
{
    /* The builder wrote the hypercall page over our ud2 filler. */
    check(!(hypercall_page[0] == 0x0f && hypercall_page[1] == 0x0b),
          "the domain builder filled XEN_ELFNOTE_HYPERCALL_PAGE", "slot 0 still holds ud2");
    diag("hypercall page slot 1: %02x %02x %02x %02x %02x %02x %02x %02x %02x %02x",
         hypercall_page[32], hypercall_page[33], hypercall_page[34], hypercall_page[35],
         hypercall_page[36], hypercall_page[37], hypercall_page[38], hypercall_page[39],
         hypercall_page[40], hypercall_page[41]);

    /* A release Xen refuses console_io to a domU (-EPERM, xsm/dummy.h);
     * lib.c then prints through the PV console ring instead. */
    const char msg[] = "# console_io write of one line\n";
    long rc = HYPERVISOR_console_io(CONSOLEIO_write, sizeof(msg) - 1, msg);
    check(rc == 0 || rc == -XEN_EPERM, "console_io(CONSOLEIO_write) returns 0 (or -EPERM on release Xen)",
          "returned %ld", rc);
    check(boot_upcall_mask == 1, "vcpu_info[0].evtchn_upcall_mask is set at boot",
          "evtchn_upcall_mask %u", boot_upcall_mask);

    check_version();
    check_start_info();
    check_m2p();
}
