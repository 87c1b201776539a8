package vmm

import (
	"encoding/binary"
	"fmt"

	"github.com/xenvmm/xenvmm/vmm/hole"
	"github.com/xenvmm/xenvmm/vmm/kvm"
	"github.com/xenvmm/xenvmm/xenabi/abi"
	"github.com/xenvmm/xenvmm/xenabi/guestmem"
)

// initialise sets a secondary vCPU's state from struct
// vcpu_guest_context (VCPUOP_initialise; arch-x86/xen.h), as Xen's
// arch_set_info_guest does for a 64-bit PV vCPU.
func (v *VCPU) initialise(ctx []byte) error {
	u := func(off int) uint64 { return binary.LittleEndian.Uint64(ctx[off:]) }
	r := func(off int) uint64 { return u(abi.VGCUserRegs + off) }
	cr3 := u(abi.VGCCtrlReg + 3*8) // xen_pfn_to_cr3: pfn << 12 on x86-64
	if !v.d.isRAM(cr3 >> guestmem.PageShift) {
		return fmt.Errorf("cr3 %#x outside RAM", cr3)
	}
	for i := 0; i < 256; i++ {
		e := ctx[abi.VGCTrapCtxt+i*abi.TrapInfoSize:]
		addr := binary.LittleEndian.Uint64(e[8:])
		if addr != 0 {
			v.traps[e[0]] = trapInfo{flags: e[1], cs: binary.LittleEndian.Uint16(e[2:]), address: addr}
		}
	}
	v.regs = kvm.Regs{
		RAX: r(abi.CPURegsRAX), RBX: r(abi.CPURegsRBX), RCX: r(abi.CPURegsRCX), RDX: r(abi.CPURegsRDX),
		RSI: r(abi.CPURegsRSI), RDI: r(abi.CPURegsRDI), RBP: r(abi.CPURegsRBP),
		R8: r(abi.CPURegsR8), R9: r(abi.CPURegsR9), R10: r(abi.CPURegsR10), R11: r(abi.CPURegsR11),
		R12: r(abi.CPURegsR12), R13: r(abi.CPURegsR13), R14: r(abi.CPURegsR14), R15: r(abi.CPURegsR15),
	}
	v.frame = hole.Frame{RIP: r(abi.CPURegsRIP), CS: r(abi.CPURegsCS) | 3, RFLAGS: r(abi.CPURegsRFLAGS), RSP: r(abi.CPURegsRSP), SS: r(abi.CPURegsSS) | 3}
	v.kernelMode = true
	v.kernelSS, v.kernelSP = u(abi.VGCKernelSS), u(abi.VGCKernelSP)
	v.cbEvent = callback{address: u(abi.VGCEventCallbackEIP)}
	v.cbFailsafe = callback{address: u(abi.VGCFailsafeCallbackEIP)}
	v.cbSyscall = callback{address: u(abi.VGCSyscallCallbackEIP), flags: abi.CALLBACKF_mask_events}
	var frames []uint64
	ents := u(abi.VGCGDTEnts)
	for i := uint64(0); i < (ents+511)/512 && i < 14; i++ {
		frames = append(frames, u(abi.VGCGDTFrames+int(i)*8))
	}
	if err := v.d.layout.SetGDTFrames(v.d.holeMem.Bytes(), v.id, frames); err != nil {
		return err
	}
	v.gdtFrames, v.gdtEnts = frames, ents
	v.fsBase, v.gsBaseKernel, v.gsBaseUser = u(abi.VGCFSBase), u(abi.VGCGSBaseKernel), u(abi.VGCGSBaseUser)
	if err := v.d.mmu.setBase(v, false, cr3&^0xfff); err != nil {
		return err
	}
	s := v.cpu.Ring0Sregs(v.cr3Kernel)
	if err := v.kv.SetSregs(&s); err != nil {
		return err
	}
	msrs := []kvm.MSREntry{{Index: hole.MSRFSBase, Data: v.fsBase}, {Index: hole.MSRGSBase, Data: v.gsBaseKernel}, {Index: hole.MSRKernelGSBase, Data: v.gsBaseUser}}
	if err := v.kv.SetMSRs(msrs); err != nil {
		return err
	}
	v.initialised = true
	return nil
}
