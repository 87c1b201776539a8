package vmm

import (
	"encoding/binary"
	"fmt"

	"github.com/xenvmm/xenvmm/vmm/hole"
	"github.com/xenvmm/xenvmm/xenabi/abi"
	"github.com/xenvmm/xenvmm/xenabi/guestmem"
)

// Exception vectors.
const (
	vecDE  = 0
	vecDB  = 1
	vecNMI = 2
	vecBP  = 3
	vecOF  = 4
	vecBR  = 5
	vecUD  = 6
	vecNM  = 7
	vecDF  = 8
	vecTS  = 10
	vecNP  = 11
	vecSS  = 12
	vecGP  = 13
	vecPF  = 14
	vecMF  = 16
	vecAC  = 17
	vecMC  = 18
	vecXM  = 19
)

// Trap-bounce flags (TBF_* in Xen's asm/domain.h).
const (
	tbfErrCode   = 1
	tbfInterrupt = 8
)

// modeSwitch toggles between guest kernel and user mode as Xen's
// toggle_guest_mode does: swapgs and the other page-table base.
func (v *VCPU) modeSwitch() {
	v.kernelMode = !v.kernelMode
	v.chain.Swapgs()
	v.chain.LoadCR3(v.currentCR3())
	v.modified = true
}

// bounce delivers a trap or event to the guest kernel at handler, building
// Xen's 64-bit bounce frame (create_bounce_frame in x86_64/entry.S):
// RCX, R11, [error code], RIP, CS (bits 32-39: saved upcall mask),
// RFLAGS, RSP, SS, on the guest kernel stack.
func (v *VCPU) bounce(handler uint64, flags int, errCode uint64) error {
	if handler == 0 {
		return fmt.Errorf("no guest handler registered (bounce at rip %#x)", v.frame.RIP)
	}
	f := v.frame
	var rsp uint64
	if !v.kernelMode {
		v.modeSwitch()
		rsp = v.kernelSP
	} else {
		rsp = f.RSP
		f.CS &^= 3 // tell the guest it was in kernel mode
	}
	rsp &^= 0xf
	if rsp >= hole.VirtStart && rsp < hole.VirtEnd+8*8 || !guestmem.Canonical(rsp) {
		return fmt.Errorf("guest kernel stack %#x is in the hypervisor hole", rsp)
	}
	info := v.vcpuInfo()
	mask := info[abi.VCPUInfoUpcallMask]
	if flags&tbfInterrupt != 0 {
		info[abi.VCPUInfoUpcallMask] = 1
	}
	rflags := f.RFLAGS &^ (flagIF | flagIOPL)
	if mask == 0 {
		rflags |= flagIF
	}
	if v.d.assist(abi.VMASST_TYPE_architectural_iopl) {
		rflags |= v.iopl & flagIOPL
	}
	words := []uint64{v.regs.RCX, v.regs.R11}
	if flags&tbfErrCode != 0 {
		words = append(words, errCode)
	}
	words = append(words, f.RIP, f.CS&0xffff|uint64(mask)<<32, rflags, f.RSP, f.SS)
	buf := make([]byte, len(words)*8)
	for i, w := range words {
		binary.LittleEndian.PutUint64(buf[i*8:], w)
	}
	rsp -= uint64(len(buf))
	if err := v.d.space.CopyToVirt(v.cr3Kernel, rsp, buf, false); err != nil {
		// Xen crashes the domain when it cannot write the frame.
		return fmt.Errorf("cannot write the bounce frame at %#x: %w", rsp, err)
	}
	v.frame = hole.Frame{
		RIP:    handler,
		CS:     hole.FlatRing3CS64,
		RFLAGS: f.RFLAGS &^ (flagAC | flagVM | flagRF | flagNT | flagTF),
		RSP:    rsp,
		SS:     hole.FlatRing3DS,
	}
	v.modified = true
	return nil
}

// injectTrap reflects exception vec to the guest's handler from its
// trap table (pv_inject_event).
func (v *VCPU) injectTrap(vec int, errCode uint64, hasErr bool) error {
	t := v.traps[vec]
	if t.address == 0 {
		detail := ""
		if vec == vecPF {
			detail = fmt.Sprintf(", cr2 %#x", binary.LittleEndian.Uint64(v.vcpuInfo()[abi.VCPUInfoCR2:]))
		}
		r := v.regs
		return fmt.Errorf("unhandled exception %d (error code %#x%s) at rip %#x in guest %s mode: no handler in the trap table "+
			"(rax %#x rbx %#x rcx %#x rdx %#x rsi %#x rdi %#x rbp %#x rsp %#x r8 %#x r9 %#x r10 %#x r11 %#x r12 %#x r13 %#x r14 %#x r15 %#x)",
			vec, errCode, detail, v.frame.RIP, v.modeName(),
			r.RAX, r.RBX, r.RCX, r.RDX, r.RSI, r.RDI, r.RBP, v.frame.RSP, r.R8, r.R9, r.R10, r.R11, r.R12, r.R13, r.R14, r.R15)
	}
	flags := 0
	if hasErr {
		flags |= tbfErrCode
	}
	if t.flags&abi.TI_FLAG_IF != 0 {
		flags |= tbfInterrupt
	}
	return v.bounce(t.address, flags, errCode)
}

func (v *VCPU) modeName() string {
	if v.kernelMode {
		return "kernel"
	}
	return "user"
}

// exception handles an exit through IDT vector vec.
func (v *VCPU) exception(vec int, ec uint64) error {
	if v.d.debug {
		v.d.log.Debug("exception", "vcpu", v.id, "vector", vec, "error_code", fmt.Sprintf("%#x", ec), "rip", fmt.Sprintf("%#x", v.frame.RIP), "kernel", v.kernelMode)
	}
	switch vec {
	case vecPF:
		return v.pageFault(ec)
	case vecGP:
		if handled, err := v.emulate(ec); handled || err != nil {
			return err
		}
		return v.injectTrap(vecGP, ec, true)
	case vecUD:
		if handled, err := v.forcedEmulation(); handled || err != nil {
			return err
		}
		var code [16]byte
		v.d.space.CopyFromVirt(v.currentCR3(), v.frame.RIP, code[:], true)
		v.d.log.Debug("reflecting #UD", "vcpu", v.id, "rip", fmt.Sprintf("%#x", v.frame.RIP), "code", fmt.Sprintf("% x", code), "history", v.historyString())
		return v.injectTrap(vecUD, 0, false)
	case vecNM:
		if v.fpuTS {
			// Xen clears CR0.TS set by fpu_taskswitch and lets the guest
			// handle #NM.
			v.fpuTS = false
			v.chain.LoadCR0(hole.CR0)
		}
		return v.injectTrap(vecNM, 0, false)
	case vecBP, vecOF, vecDB, vecDE, vecBR, vecMF, vecXM:
		return v.injectTrap(vec, 0, false)
	case vecTS, vecNP, vecSS, vecAC:
		return v.injectTrap(vec, ec, true)
	case 0x80, 0x82:
		// int $n through a DPL-3 gate: a software interrupt, allowed if
		// the guest's trap table gives it DPL 3 (else #GP as on Xen).
		t := v.traps[vec]
		if t.address == 0 || t.flags&abi.TI_FLAG_DPL_MASK < 3 {
			v.frame.RIP -= 2
			return v.injectTrap(vecGP, uint64(vec)<<3|2, true)
		}
		return v.injectTrap(vec, 0, false)
	case kickVector:
		// xenvmm's own interrupt: the guest stopped at a clean point;
		// pending events are delivered before it resumes.
		return nil
	case vecDF, vecNMI, vecMC:
		return fmt.Errorf("exception %d at guest rip %#x", vec, v.frame.RIP)
	}
	return fmt.Errorf("unexpected vector %d at guest rip %#x", vec, v.frame.RIP)
}

// syscall handles SYSCALL: a hypercall from guest kernel mode, a system
// call to bounce to the guest kernel from user mode.
func (v *VCPU) syscall() error {
	if v.kernelMode {
		return v.hypercall()
	}
	// switch_to_kernel: bounce to the syscall callback, with DF cleared.
	cb := v.cbSyscall
	if cb.address == 0 {
		// No callback: #UD, as Xen does.
		v.frame.RIP -= 2
		return v.injectTrap(vecUD, 0, false)
	}
	flags := 0
	if cb.flags&abi.CALLBACKF_mask_events != 0 {
		flags |= tbfInterrupt
	}
	if err := v.bounce(cb.address, flags, 0); err != nil {
		return err
	}
	v.frame.RFLAGS &^= flagDF
	return nil
}

// iretHypercall is HYPERVISOR_iret (pv/iret.c do_iret): pop the
// iret_context {rax, r11, rcx, flags, rip, cs, rflags, rsp, ss} the guest
// pushed, switch to user mode if returning there, and restore.
func (v *VCPU) iretHypercall() error {
	var b [9 * 8]byte
	if err := v.d.space.CopyFromVirt(v.cr3Kernel, v.regs.RSP, b[:], false); err != nil {
		return fmt.Errorf("iret: cannot read the iret frame at %#x: %w", v.regs.RSP, err)
	}
	w := func(i int) uint64 { return binary.LittleEndian.Uint64(b[i*8:]) }
	rax, r11, rcx, flags, rip, cs, rflags, rsp, ss := w(0), w(1), w(2), w(3), w(4), w(5), w(6), w(7), w(8)
	if cs&3 == 3 {
		if v.cr3User == 0 {
			return fmt.Errorf("iret: guest switches to user mode with no user page tables")
		}
		if v.kernelMode {
			v.modeSwitch()
		}
	}
	if v.d.assist(abi.VMASST_TYPE_architectural_iopl) {
		v.iopl = rflags & flagIOPL
	}
	v.frame = hole.Frame{
		RIP:    rip,
		CS:     cs | 3,
		RFLAGS: (rflags &^ (flagIOPL | flagVM)) | flagIF,
		RSP:    rsp,
		SS:     ss | 3,
	}
	if flags&abi.VGCF_in_syscall == 0 {
		v.regs.R11, v.regs.RCX = r11, rcx
	} else {
		// Xen returns through SYSRET here, which leaves the return RIP
		// in RCX and RFLAGS in R11 (x86_64/entry.S restore_all_guest).
		v.regs.RCX, v.regs.R11 = v.frame.RIP, v.frame.RFLAGS
	}
	info := v.vcpuInfo()
	if rflags&flagIF != 0 {
		info[abi.VCPUInfoUpcallMask] = 0
	} else {
		info[abi.VCPUInfoUpcallMask] = 1
	}
	v.regs.RAX = rax
	v.modified = true
	return nil
}

// deliverEvents bounces to the event callback when an upcall is pending
// and not masked (test_guest_events), before the guest runs again.
func (v *VCPU) deliverEvents() error {
	if v.cbEvent.address == 0 {
		return nil
	}
	info := v.vcpuInfo()
	pending, _ := guestmem.Load8(info, abi.VCPUInfoUpcallPending)
	if pending == 0 || info[abi.VCPUInfoUpcallMask] != 0 {
		return nil
	}
	if err := v.bounce(v.cbEvent.address, tbfInterrupt, 0); err != nil {
		return fmt.Errorf("event upcall at rip %#x rsp %#x (%s mode, %s): %w", v.frame.RIP, v.frame.RSP, v.modeName(), v.where, err)
	}
	return nil
}
