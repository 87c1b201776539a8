// Package pvkernels builds xenvmm's own small 64-bit Xen PV test kernels
// (C and assembly under testdata/pvkernels, compiled with gcc at test
// time) and says exactly what each one prints, in the spirit of Xen's XTF:
// one kernel per ABI area, small enough that a failure points at one
// hypercall or one bounce frame.
//
// The kernels are ordinary guests written against Xen's public ABI
// (xen/include/public: xen.h, arch-x86/xen-x86_64.h, callback.h, vcpu.h,
// event_channel.h, sched.h, memory.h, io/console.h, elfnote.h); they run
// unmodified as 64-bit PV domUs on real Xen, which makes their expected
// output a statement about Xen's behaviour, not about xenvmm's.
//
// Each kernel reports on its console (HYPERVISOR_console_io, or the PV
// console ring where Xen refuses console_io to a domU):
//
//	ok N - description
//	not ok N - description: details
//	# diagnostic
//	Bail out! reason
//	xenvmm-test: PASS            (or xenvmm-test: FAIL)
//
// and then shuts itself down with SCHEDOP_shutdown: SHUTDOWN_poweroff
// after PASS, SHUTDOWN_crash otherwise. Kernel.Want lists the
// descriptions of the ok lines in order; Kernel.Check verifies an output.
//
// Before its first check every kernel runs the same prologue: it clears
// its .bss, moves to its own stack, installs a trap table for all
// exception vectors (set_trap_table), maps start_info->shared_info over a
// page of its image (update_va_mapping), sets
// vcpu_info[0].evtchn_upcall_mask, and registers its event and failsafe
// callbacks (callback_op). A failure there prints "Bail out!".
package pvkernels

import "fmt"

// Hypercalls says how a kernel makes its hypercalls.
type Hypercalls string

const (
	// ViaSyscall: `syscall` from guest kernel mode with the number in
	// RAX and the arguments in RDI, RSI, RDX, R10, R8, RCX and R11 saved
	// around it, as Linux does since the XSA-466 hardening; HYPERVISOR_iret
	// likewise (push rcx, r11, rax; mov $23, %eax; syscall).
	ViaSyscall Hypercalls = "syscall"
	// ViaPage: `call hypercall_page + 32*nr` into the page named by
	// XEN_ELFNOTE_HYPERCALL_PAGE, as NetBSD does; HYPERVISOR_iret by
	// jumping to stub 23.
	ViaPage Hypercalls = "hypercall-page"
)

// Kernel is one test kernel.
type Kernel struct {
	// Name is the kernel's name: its source is kernels/<Name>.c under
	// SourceDir, and Build names its ELF after it.
	Name string
	// Doc says in a line what the kernel tests.
	Doc string
	// Hypercalls is how the kernel makes hypercalls (PVK_KERNEL in its
	// source says the same).
	Hypercalls Hypercalls
	// Features is its XEN_ELFNOTE_FEATURES string.
	Features string
	// Want are the descriptions of its "ok N - ..." lines, in order.
	Want []string
	// Ring are the lines (without their "\n") the kernel writes to the
	// PV console ring named by start_info->console.domU, in order; nil
	// for kernels that do not use the ring themselves.
	Ring []string
}

// Kernels are all the test kernels, in the order they are best run: each
// assumes less of the hypervisor than the ones after it.
var Kernels = []Kernel{
	{
		Name:       "hello",
		Doc:        "console_io, xen_version, start_info and the start-of-day layout, the M2P and the P2M",
		Hypercalls: ViaPage,
		Features:   "",
		Want: []string{
			"the domain builder filled XEN_ELFNOTE_HYPERCALL_PAGE",
			"console_io(CONSOLEIO_write) returns 0 (or -EPERM on release Xen)",
			"vcpu_info[0].evtchn_upcall_mask is set at boot",
			"XENVER_version reports Xen 3.0 or later",
			"XENVER_extraversion is a NUL-terminated string of at most 16 bytes",
			"XENVER_capabilities lists xen-3.0-x86_64",
			"XENVER_get_features: a PV domU (no auto_translated_physmap, hvm_callback_vector, dom0)",
			`start_info.magic is "xen-3.0-x86_64"`,
			"start_info (RSI at entry) is a page inside the initial mapping",
			"start_info.nr_pages covers the initial mapping",
			"start_info.pt_base is page-aligned inside the initial mapping with >= 4 table frames",
			"start_info.mfn_list holds nr_pages entries inside the initial mapping",
			"start-of-day order: P2M list, start_info, page tables",
			"start_info.flags: neither privileged nor the initial domain",
			"start_info.shared_info is a page-aligned machine address",
			"the boot L4 at pt_base maps VIRT_BASE",
			"the boot L4 is mapped read-only at pt_base",
			"start_info.cmd_line is NUL-terminated",
			"xenstore and console pages sit between start_info and the page tables",
			"XENMEM_machphys_mapping: the M2P starts at MACH2PHYS_VIRT_START and holds max_mfn + 1 entries",
			"XENMEM_machphys_mapping.max_mfn covers the domain's frames",
			"the M2P inverts the P2M: m2p[p2m[pfn]] == pfn",
			"the M2P maps a kernel page's frame back to its pfn",
		},
	},
	{
		Name:       "traps",
		Doc:        "exceptions in kernel mode: set_trap_table, bounce frames, the saved upcall mask, HYPERVISOR_iret, forced-emulation CPUID",
		Hypercalls: ViaSyscall,
		Features:   "",
		Want: []string{
			"ud2 raises #UD at the ud2; frame: CS RPL 0 (kernel), SS, RSP, 16-byte aligned",
			"#UD without trap_info flags bit 2: events stay enabled, saved mask 0, RFLAGS.IF set",
			"HYPERVISOR_iret resumes after ud2 with RCX, R11 and the other registers intact",
			"set_trap_table re-registers #BP with events masked on entry",
			"int3 raises #BP with RIP after the int3 (a trap), CS RPL 0, 16-byte aligned frame",
			"#BP with flags bit 2 from unmasked: masked in the handler, saved mask 0, RFLAGS.IF set",
			"HYPERVISOR_iret with RFLAGS.IF set unmasks events again",
			"#BP from masked: saved mask 1 in CS bits 32-39, RFLAGS.IF clear, masked after iret",
			"a read of an unmapped address raises #PF with CR2 in vcpu_info.arch.cr2",
			"#PF error code of a kernel-mode read of a not-present page is 0",
			"update_va_mapping makes a page read-only",
			"a write to a read-only page raises #PF with error code P|W",
			"the page is writable again after update_va_mapping restores _PAGE_RW",
			"a non-canonical access raises #GP(0) at the faulting instruction",
			"a division by zero raises #DE at the div",
			"forced-emulation CPUID leaf 0x40000000 answers XenVMMXenVMM",
			"forced-emulation CPUID leaf 0x40000001 EAX equals XENVER_version",
		},
	},
	{
		Name:       "usermode",
		Doc:        "guest user mode: user page tables, stack_switch, the syscall callback, both HYPERVISOR_iret returns, user exceptions",
		Hypercalls: ViaPage,
		Features:   "",
		Want: []string{
			"update_va_mapping makes the four user page-table pages read-only",
			"MMUEXT_PIN_L4_TABLE validates the user L4",
			"MMUEXT_NEW_USER_BASEPTR installs the user L4",
			"stack_switch(FLAT_KERNEL_SS, kernel stack) returns 0",
			"callback_op registers the syscall callback (CALLBACKF_mask_events)",
			"back in kernel mode after the user's exit syscall: hypercalls work again",
			"user syscall: callback frame has CS FLAT_USER_CS (RPL 3), SS, the user RSP and RIP",
			"user syscall: frame RCX is the return RIP and R11 the user RFLAGS",
			"user syscall: the frame sits at the top of the stack_switch stack",
			"CALLBACKF_mask_events: events masked in the callback, RFLAGS.IF set in the frame",
			"the user program reported back twice",
			"iret with VGCF_in_syscall: user gets RAX, and RCX/R11 as SYSRET leaves them",
			"iret without VGCF_in_syscall: user gets RAX, RCX and R11 from the frame",
			"user int3: #BP on the kernel stack with CS RPL 3 and the user RSP",
			"user read of an unmapped user address: #PF with error code U and CR2",
			"user read of a kernel address: #PF, the kernel is not in the user page tables",
			"user write to its read-only code page: #PF with error code P|W|U",
		},
	},
	{
		Name:       "pagetables",
		Doc:        "the PV MMU: mmu_update, update_va_mapping, mmuext_op pins/baseptr/flushes, MMU_MACHPHYS_UPDATE, writable page tables",
		Hypercalls: ViaSyscall,
		Features:   "!writable_page_tables",
		Want: []string{
			"found an empty 2 MiB slot in the boot L2",
			"update_va_mapping makes the new L1 read-only",
			"MMUEXT_PIN_L1_TABLE pins it",
			"mmu_update of an L2 entry hooks the L1 in: its first entry maps page A",
			"mmu_update (MMU_NORMAL_PT_UPDATE) of an L1 entry maps page B at a new VA",
			"a write through the new mapping lands in page B",
			"update_va_mapping with UVMF_INVLPG remaps the VA to page C",
			"update_va_mapping with UVMF_TLB_FLUSH remaps it back to page B",
			"update_va_mapping to 0 unmaps it: a read raises #PF at that VA",
			"vm_assist(VMASST_CMD_enable, VMASST_TYPE_writable_pagetables) returns 0",
			"a direct write to a non-present L1 entry maps page C",
			"reading that L1 entry back shows page C's frame",
			"a direct write replacing a present L1 entry, then MMUEXT_INVLPG_LOCAL: page A",
			"MMU_MACHPHYS_UPDATE sets an M2P entry, visible at MACH2PHYS_VIRT_START",
			"MMU_MACHPHYS_UPDATE restores it",
			"update_va_mapping makes a new L4, L3, L2 and L1 read-only",
			"MMUEXT_PIN_L1_TABLE..PIN_L4_TABLE pin the new hierarchy",
			"the new L4's extra slot is not mapped by the boot L4",
			"MMUEXT_NEW_BASEPTR switches to the new L4: its slot maps page A",
			"MMUEXT_TLB_FLUSH_LOCAL returns 0 and the mapping stays",
			"MMUEXT_NEW_BASEPTR back to the boot L4: the extra slot faults again",
			"MMUEXT_UNPIN_TABLE unpins the four tables",
			"an unpinned, unused L4 can be mapped writable and written again",
		},
	},
	{
		Name:       "events",
		Doc:        "event channels and the upcall, VIRQ_TIMER with a singleshot timer, SCHEDOP_block, vcpu_time_info, loopback interdomain channels",
		Hypercalls: ViaPage,
		Features:   "",
		Want: []string{
			"vcpu_time_info: version even (no update in progress) and tsc_to_system_mul set",
			"system time (system_time + scaled TSC delta) advances",
			"VCPUOP_stop_periodic_timer returns 0",
			"EVTCHNOP_bind_virq(VIRQ_TIMER, vcpu 0) returns a port",
			"EVTCHNOP_status of that port: virq, vcpu 0, VIRQ_TIMER",
			"VCPUOP_set_singleshot_timer(now + 10 ms) returns 0",
			"SCHEDOP_block returns once the timer event reached the upcall",
			"upcall frame: events masked in the handler, kernel CS, saved mask 0 and IF set",
			"the timer fired 10 ms or more after it was set (100 us slack for clock skew)",
			"the upcall cleared the timer port's pending bit",
			"a singleshot deadline in the past fires at once; unmasking delivers it",
			"EVTCHNOP_alloc_unbound(DOMID_SELF, remote DOMID_SELF) returns a port",
			"EVTCHNOP_status: unbound, remote is our own domain id",
			"EVTCHNOP_bind_interdomain to our own unbound port returns a new port",
			"bind_interdomain leaves the new port pending; unmasking delivers it",
			"EVTCHNOP_status: both ends interdomain, connected to each other in our domain",
			"EVTCHNOP_send with events masked: the other end is pending, no upcall yet",
			"unmasking events (then a hypercall) delivers the upcall for it",
			"EVTCHNOP_send with events enabled: the upcall runs before the hypercall returns",
			"EVTCHNOP_send to a masked port sets only its pending bit",
			"EVTCHNOP_unmask clears the mask bit and delivers the pending event",
			"EVTCHNOP_close of both ends; EVTCHNOP_status then reports closed",
			"EVTCHNOP_close of the VIRQ_TIMER port returns 0",
		},
	},
	{
		Name:       "console",
		Doc:        "the PV console ring: more than a ringful written, EVTCHNOP_send notifications, SCHEDOP_yield until out_cons catches up",
		Hypercalls: ViaSyscall,
		Features:   "",
		Want: []string{
			"start_info.console.domU: a page of the initial mapping and an event channel",
			"the out ring indexes are consistent",
			"EVTCHNOP_send on the console event channel returns 0",
			"more than the 2048-byte out ring holds was written, notified and consumed",
			"out_prod advanced by exactly the bytes written and out_cons caught up with it",
		},
		Ring: ConsoleRingLines(),
	},
	{
		Name:       "badargs",
		Doc:        "bad hypercall arguments and the error Xen returns for each; the guest carries on",
		Hypercalls: ViaPage,
		Features:   "",
		Want: []string{
			"hypercall 60 by syscall returns -ENOSYS",
			"hypercall 60 through the hypercall page returns -ENOSYS",
			"sched_op with an unknown command returns -ENOSYS",
			"event_channel_op with an unknown command returns -ENOSYS",
			"mmuext_op with an unknown command returns -ENOSYS",
			"callback_op with an unknown command returns -ENOSYS",
			"vcpu_op with an unknown command returns -ENOSYS",
			"memory_op(XENMEM_current_reservation) with an unmapped pointer returns -EFAULT",
			"memory_op(XENMEM_current_reservation) with a pointer into Xen's range returns -EFAULT",
			"memory_op(XENMEM_current_reservation, DOMID_SELF) returns a page count",
			"set_trap_table with an unmapped table returns -EFAULT",
			"mmu_update with an unmapped request list returns -EFAULT",
			"sched_op(SCHEDOP_shutdown) with an unmapped argument returns -EFAULT",
			"XENVER_get_features of submap 1 returns -EINVAL",
			"set_trap_table with a non-canonical handler returns -EINVAL",
			"callback_op registering a non-canonical event callback returns -EINVAL",
			"callback_op registering an unknown callback type returns -ENOSYS",
			"callback_op unregistering the event callback returns -EINVAL",
			"vm_assist with an unknown type returns -EINVAL",
			"vcpu_op on vcpu 1000 returns -ENOENT",
			"VCPUOP_set_periodic_timer below 1 ms returns -EINVAL",
			"EVTCHNOP_bind_virq with an out-of-range VIRQ returns -EINVAL",
			"EVTCHNOP_bind_virq on vcpu 1000 returns -ENOENT",
			"EVTCHNOP_alloc_unbound then EVTCHNOP_close return 0",
			"EVTCHNOP_send to that closed port returns -EINVAL",
			"EVTCHNOP_send to a port never allocated (4095) returns -EINVAL",
			"EVTCHNOP_close of the reserved port 0 returns -EINVAL",
			"mmu_update of a PTE pointing outside the domain's memory returns -EPERM",
			"update_va_mapping of a VA without an L1 table returns -EINVAL",
			"update_va_mapping of the L4 frame writable returns -EBUSY",
			"the L4 frame can be mapped read-only at another VA and reads the same",
			"MMUEXT_PIN_L4_TABLE of the boot L4, already pinned by the builder, returns -EINVAL",
			"MMUEXT_UNPIN_TABLE of a page that is not pinned returns -EINVAL",
			"the hypervisor still answers: XENVER_version",
		},
	},
}

// Lookup returns the kernel called name.
func Lookup(name string) (Kernel, bool) {
	for _, k := range Kernels {
		if k.Name == name {
			return k, true
		}
	}
	return Kernel{}, false
}

// Console-ring lines of the console kernel (kernels/console.c builds the
// same text with snprintf).
const (
	consoleRingLines   = 40
	consoleRingPattern = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)

// ConsoleRingLines returns the lines the console kernel writes to the PV
// console ring, without their "\n": 40 lines of 97 bytes, more than the
// 2048-byte out ring holds, so the writer wraps around and waits for the
// backend.
func ConsoleRingLines() []string {
	lines := make([]string, consoleRingLines)
	for i := range lines {
		lines[i] = fmt.Sprintf("xenvmm console ring line %02d of %d: %s", i+1, consoleRingLines, consoleRingPattern)
	}
	return lines
}
