package vmm

import (
	"encoding/binary"

	"github.com/xenvmm/xenvmm/vmm/hole"
	"github.com/xenvmm/xenvmm/xenabi/abi"
	"github.com/xenvmm/xenvmm/xenabi/guestmem"
)

// Hypercalls that set the PV CPU's state: traps, callbacks, stacks,
// segments, the GDT (xen/include/public/xen.h, callback.h,
// arch-x86/xen-x86_64.h; Xen's pv/traps.c, pv/descriptor-tables.c,
// pv/callback.c, pv/misc-hypercalls.c).

// hcSetTrapTable: HYPERVISOR_set_trap_table(const struct trap_info *),
// entries until one with address 0; NULL clears the table.
func (v *VCPU) hcSetTrapTable(a hcArgs) uint64 {
	v.d.trace.count(abi.HYPERVISOR_set_trap_table, 0)
	if a[0] == 0 {
		v.traps = [256]trapInfo{}
		return 0
	}
	for i := uint64(0); i < 256; i++ {
		var b [abi.TrapInfoSize]byte
		if err := v.copyFrom(a[0]+i*abi.TrapInfoSize, b[:]); err != nil {
			return errno(abi.EFAULT)
		}
		addr := binary.LittleEndian.Uint64(b[8:])
		if addr == 0 {
			break
		}
		if !guestmem.Canonical(addr) {
			return errno(abi.EINVAL)
		}
		v.traps[b[0]] = trapInfo{flags: b[1], cs: binary.LittleEndian.Uint16(b[2:]), address: addr}
	}
	return 0
}

// hcStackSwitch: HYPERVISOR_stack_switch(ss, esp), the kernel stack for
// bounces from user mode.
func (v *VCPU) hcStackSwitch(a hcArgs) uint64 {
	v.d.trace.count(abi.HYPERVISOR_stack_switch, 0)
	v.kernelSS, v.kernelSP = a[0], a[1]
	return 0
}

// hcSetCallbacks: HYPERVISOR_set_callbacks(event, failsafe, syscall)
// (64-bit form).
func (v *VCPU) hcSetCallbacks(a hcArgs) uint64 {
	v.d.trace.count(abi.HYPERVISOR_set_callbacks, 0)
	for _, x := range a[:3] {
		if !guestmem.Canonical(x) {
			return errno(abi.EINVAL)
		}
	}
	v.cbEvent = callback{address: a[0]}
	v.cbFailsafe = callback{address: a[1]}
	v.cbSyscall = callback{address: a[2], flags: abi.CALLBACKF_mask_events}
	return 0
}

// hcCallbackOp: HYPERVISOR_callback_op(CALLBACKOP_register/unregister).
func (v *VCPU) hcCallbackOp(a hcArgs) uint64 {
	v.d.trace.count(abi.HYPERVISOR_callback_op, a[0])
	var b [16]byte
	switch a[0] {
	case abi.CALLBACKOP_register:
		if err := v.copyFrom(a[1], b[:16]); err != nil {
			return errno(abi.EFAULT)
		}
		typ := binary.LittleEndian.Uint16(b[0:])
		cb := callback{flags: binary.LittleEndian.Uint16(b[2:]), address: binary.LittleEndian.Uint64(b[8:])}
		if !guestmem.Canonical(cb.address) {
			return errno(abi.EINVAL)
		}
		return v.setCallback(typ, cb)
	case abi.CALLBACKOP_unregister:
		if err := v.copyFrom(a[1], b[:2]); err != nil {
			return errno(abi.EFAULT)
		}
		typ := binary.LittleEndian.Uint16(b[0:])
		if typ == abi.CALLBACKTYPE_event {
			// Xen refuses to unregister the event callback.
			return errno(abi.EINVAL)
		}
		return v.setCallback(typ, callback{})
	}
	return errno(abi.ENOSYS)
}

func (v *VCPU) setCallback(typ uint16, cb callback) uint64 {
	switch typ {
	case abi.CALLBACKTYPE_event:
		v.cbEvent = cb
	case abi.CALLBACKTYPE_failsafe:
		v.cbFailsafe = cb
	case abi.CALLBACKTYPE_syscall:
		v.cbSyscall = cb
	case abi.CALLBACKTYPE_syscall32:
		v.cbSyscall32 = cb
	case abi.CALLBACKTYPE_sysenter:
		v.cbSysenter = cb
	case abi.CALLBACKTYPE_nmi:
		v.cbNMI = cb
	default:
		return errno(abi.ENOSYS) // pv/callback.c
	}
	return 0
}

// hcFPUTaskswitch: HYPERVISOR_fpu_taskswitch(set): set or clear CR0.TS.
func (v *VCPU) hcFPUTaskswitch(a hcArgs) uint64 {
	v.d.trace.count(abi.HYPERVISOR_fpu_taskswitch, 0)
	v.fpuTS = a[0] != 0
	cr0 := uint64(hole.CR0)
	if v.fpuTS {
		cr0 |= 1 << 3
	}
	v.chain.LoadCR0(cr0)
	return 0
}

// hcSetSegmentBase: HYPERVISOR_set_segment_base(which, base).
func (v *VCPU) hcSetSegmentBase(a hcArgs) uint64 {
	v.d.trace.count(abi.HYPERVISOR_set_segment_base, a[0])
	base := a[1]
	switch a[0] {
	case abi.SEGBASE_FS:
		if !guestmem.Canonical(base) {
			return errno(abi.EINVAL)
		}
		v.fsBase = base
		v.chain.WRMSR(hole.MSRFSBase, base)
	case abi.SEGBASE_GS_USER:
		if !guestmem.Canonical(base) {
			return errno(abi.EINVAL)
		}
		v.gsBaseUser = base
		// In kernel mode the user's GS base is the inactive one.
		v.chain.WRMSR(hole.MSRKernelGSBase, base)
	case abi.SEGBASE_GS_KERNEL:
		if !guestmem.Canonical(base) {
			return errno(abi.EINVAL)
		}
		v.gsBaseKernel = base
		v.chain.WRMSR(hole.MSRGSBase, base)
	case abi.SEGBASE_GS_USER_SEL:
		v.chain.LoadUserGS(uint16(base))
	default:
		return errno(abi.EINVAL)
	}
	return 0
}

// FIRST_RESERVED_GDT_ENTRY: the guest's GDT may use entries below it.
const firstReservedGDTEntry = 14 * 512

// hcSetGDT: HYPERVISOR_set_gdt(frame_list, entries): the guest's GDT
// frames, mapped into this vCPU's GDT window after their descriptors are
// checked.
func (v *VCPU) hcSetGDT(a hcArgs) uint64 {
	v.d.trace.count(abi.HYPERVISOR_set_gdt, 0)
	entries := a[1]
	if entries > firstReservedGDTEntry {
		return errno(abi.EINVAL)
	}
	nframes := (entries + 511) / 512
	frames := make([]uint64, nframes)
	for i := range frames {
		f, err := v.read64(a[0] + uint64(i)*8)
		if err != nil {
			return errno(abi.EFAULT)
		}
		if !v.d.isRAM(f) {
			return errno(abi.EINVAL)
		}
		page, _ := v.d.space.Page(f)
		n := min(uint64(512), entries-uint64(i)*512)
		for e := uint64(0); e < n; e++ {
			if !checkDescriptor(page[e*8 : e*8+8]) {
				return errno(abi.EINVAL)
			}
		}
		frames[i] = f
	}
	if err := v.d.layout.SetGDTFrames(v.d.holeMem.Bytes(), v.id, frames); err != nil {
		return errno(abi.EINVAL)
	}
	v.gdtFrames, v.gdtEnts = frames, entries
	for g := uint64(0); g < 14; g++ {
		v.chain.Invlpg(v.cpu.GDTBase + g*guestmem.PageSize)
	}
	return 0
}

// hcUpdateDescriptor: HYPERVISOR_update_descriptor(ma, desc): write one
// GDT/LDT descriptor at machine address ma.
func (v *VCPU) hcUpdateDescriptor(a hcArgs) uint64 {
	v.d.trace.count(abi.HYPERVISOR_update_descriptor, 0)
	ma, desc := a[0], a[1]
	if ma%8 != 0 || !v.d.isRAM(ma>>guestmem.PageShift) {
		return errno(abi.EINVAL)
	}
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], desc)
	if !checkDescriptor(b[:]) {
		return errno(abi.EINVAL)
	}
	if err := v.d.space.Write(ma, b[:]); err != nil {
		return errno(abi.EFAULT)
	}
	return 0
}

// checkDescriptor validates (and adjusts in place) a descriptor the guest
// puts in its GDT or LDT, as Xen's check_descriptor does for a 64-bit PV
// guest: code and data segments get DPL 3 (the guest kernel runs at
// CPL3); system descriptors (call gates, TSS, LDT) are refused, so the
// guest can never reach ring 0.
func checkDescriptor(d []byte) bool {
	w := binary.LittleEndian.Uint64(d)
	if w == 0 || w>>47&1 == 0 { // not present: harmless
		return true
	}
	if w>>44&1 == 0 { // S=0: system descriptor
		return false
	}
	w |= 3 << 45 // DPL 3
	binary.LittleEndian.PutUint64(d, w)
	return true
}

// hcVMAssist: HYPERVISOR_vm_assist(cmd, type).
func (v *VCPU) hcVMAssist(a hcArgs) uint64 {
	v.d.trace.count(abi.HYPERVISOR_vm_assist, a[1])
	const valid = 1<<abi.VMASST_TYPE_writable_pagetables | 1<<abi.VMASST_TYPE_pae_extended_cr3 |
		1<<abi.VMASST_TYPE_architectural_iopl | 1<<abi.VMASST_TYPE_runstate_update_flag | 1<<abi.VMASST_TYPE_m2p_strict
	if a[1] >= 64 || valid&(uint64(1)<<a[1]) == 0 {
		return errno(abi.EINVAL)
	}
	v.d.mu.Lock()
	defer v.d.mu.Unlock()
	switch a[0] {
	case 0: // VMASST_CMD_enable
		v.d.vmAssist |= 1 << a[1]
	case 1: // VMASST_CMD_disable
		v.d.vmAssist &^= 1 << a[1]
	default:
		return errno(abi.ENOSYS)
	}
	return 0
}

func (d *Domain) assist(typ int) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.vmAssist&(1<<typ) != 0
}

// hcPhysdevOp: HYPERVISOR_physdev_op(cmd, arg) for what a domU without
// devices calls.
func (v *VCPU) hcPhysdevOp(a hcArgs) uint64 {
	v.d.trace.count(abi.HYPERVISOR_physdev_op, a[0])
	return v.physdev(a[0], a[1])
}

// hcPhysdevOpCompat: the old form, physdev_op_compat(struct physdev_op *)
// with cmd first and the argument union at offset 8.
func (v *VCPU) hcPhysdevOpCompat(a hcArgs) uint64 {
	var b [4]byte
	if err := v.copyFrom(a[0], b[:]); err != nil {
		return errno(abi.EFAULT)
	}
	cmd := uint64(binary.LittleEndian.Uint32(b[:]))
	v.d.trace.count(abi.HYPERVISOR_physdev_op_compat, cmd)
	return v.physdev(cmd, a[0]+8)
}

func (v *VCPU) physdev(cmd, arg uint64) uint64 {
	switch cmd {
	case abi.PHYSDEVOP_set_iopl:
		var b [4]byte
		if err := v.copyFrom(arg, b[:]); err != nil {
			return errno(abi.EFAULT)
		}
		iopl := binary.LittleEndian.Uint32(b[:])
		if iopl > 3 {
			return errno(abi.EINVAL)
		}
		v.iopl = uint64(iopl) << 12
		return 0
	case abi.PHYSDEVOP_set_iobitmap:
		return 0
	case abi.PHYSDEVOP_irq_status_query, abi.PHYSDEVOP_eoi, abi.PHYSDEVOP_pirq_eoi_gmfn_v1, abi.PHYSDEVOP_pirq_eoi_gmfn_v2,
		abi.PHYSDEVOP_map_pirq, abi.PHYSDEVOP_unmap_pirq, abi.PHYSDEVOP_get_free_pirq, abi.PHYSDEVOP_setup_gsi:
		// A domU without passed-through devices has no physical IRQs.
		return errno(abi.EPERM)
	}
	v.d.unknown("physdev_op " + itoa(cmd))
	return errno(abi.ENOSYS)
}

// hcSetDebugreg: HYPERVISOR_set_debugreg(reg, value): recorded, not
// armed (xenvmm's gdbstub owns the hardware breakpoints).
func (v *VCPU) hcSetDebugreg(a hcArgs) uint64 {
	v.d.trace.count(abi.HYPERVISOR_set_debugreg, a[0])
	if a[0] > 7 || a[0] == 4 || a[0] == 5 {
		return errno(abi.EINVAL)
	}
	v.debugreg[a[0]] = a[1]
	return 0
}

// hcGetDebugreg: HYPERVISOR_get_debugreg(reg).
func (v *VCPU) hcGetDebugreg(a hcArgs) uint64 {
	v.d.trace.count(abi.HYPERVISOR_get_debugreg, a[0])
	if a[0] > 7 || a[0] == 4 || a[0] == 5 {
		return errno(abi.EINVAL)
	}
	return v.debugreg[a[0]]
}

// hcNMIOp: NMI callbacks are not delivered by xenvmm.
func (v *VCPU) hcNMIOp(a hcArgs) uint64 {
	v.d.trace.count(abi.HYPERVISOR_nmi_op, a[0])
	return errno(abi.ENOSYS)
}

func itoa(v uint64) string {
	if v == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for v > 0 {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return string(b[i:])
}
