package vmm

import (
	"context"
	"encoding/binary"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xenvmm/xenvmm/loader"
	"github.com/xenvmm/xenvmm/vmm/hole"
	"github.com/xenvmm/xenvmm/vmm/kvm"
	"github.com/xenvmm/xenvmm/xenabi/abi"
	"github.com/xenvmm/xenvmm/xenabi/guestmem"
)

// RFLAGS bits.
const (
	flagCF   = 1 << 0
	flagTF   = 1 << 8
	flagIF   = 1 << 9
	flagDF   = 1 << 10
	flagIOPL = 3 << 12
	flagNT   = 1 << 14
	flagRF   = 1 << 16
	flagVM   = 1 << 17
	flagAC   = 1 << 18
)

// trapInfo is one entry of the guest's virtual IDT (struct trap_info,
// set by HYPERVISOR_set_trap_table).
type trapInfo struct {
	flags   uint8 // DPL in bits 0-1, TI_FLAG_IF (mask events) in bit 2
	cs      uint16
	address uint64
}

// callback is a registered guest entry point (callback.h).
type callback struct {
	address uint64
	flags   uint16 // CALLBACKF_mask_events
}

// VCPU is one virtual CPU of a PV domain. All its fields except the
// mailbox are owned by its goroutine.
type VCPU struct {
	id  int
	d   *Domain
	kv  *kvm.VCPU
	cpu hole.CPU

	online      bool
	initialised bool
	// regs are the guest's general registers while Go handles an exit;
	// frame is where the guest resumes (RIP, CS, RFLAGS, RSP, SS).
	regs  kvm.Regs
	frame hole.Frame
	chain hole.Chain
	// where says what KVM's register state is while Go handles an exit.
	syncRegs     bool // registers come and go through kvm_run (KVM_CAP_SYNC_REGS)
	where        position
	pendingFlush bool           // a TLB flush another vCPU asked for, due at the next stub
	fatal        error          // set by a hypercall that must kill the domain
	history      [32]exitRecord // the last exits, for post-mortems
	histPos      int
	spurious     struct {
		rip, addr uint64
		n         int
	}
	modified bool // regs/frame changed since an interruption in guest code

	// The PV CPU state Xen keeps in struct vcpu / arch_vcpu.
	kernelMode          bool
	cr3Kernel, cr3User  uint64 // guest_table, guest_table_user (machine addresses)
	kernelSP, kernelSS  uint64
	traps               [256]trapInfo
	cbEvent, cbFailsafe callback
	cbSyscall           callback
	cbSyscall32         callback
	cbSysenter          callback
	cbNMI               callback
	gdtFrames           []uint64
	gdtEnts             uint64
	ldtBase, ldtEnts    uint64
	iopl                uint64
	fsBase              uint64
	gsBaseKernel        uint64
	gsBaseUser          uint64
	fpuTS               bool
	debugreg            [8]uint64
	vcpuInfoGPA         uint64 // where this vCPU's vcpu_info lives
	vcpuInfoMoved       bool
	runstateVA          uint64
	timeVA              uint64

	// Time (see time.go).
	tscKHz        uint32
	clk           vcpuClock
	lastRefreshNS atomic.Int64 // when clk was last re-anchored (for the time keeper)
	singleshot    *time.Timer
	periodic      *time.Ticker
	periodicStop  chan struct{}
	timerDeadline uint64

	// mailbox guards what other goroutines post to this vCPU.
	mailbox  sync.Mutex
	wake     chan struct{}
	flushTLB bool // another vCPU asked for a full TLB flush
	timeTick bool // the time keeper asked for a vcpu_time_info refresh
}

func (d *Domain) newVCPU(id int) (*VCPU, error) {
	kv, err := d.vm.CreateVCPU(id)
	if err != nil {
		return nil, err
	}
	v := &VCPU{id: id, d: d, kv: kv, cpu: d.layout.CPU(id), wake: make(chan struct{}, 1)}
	v.vcpuInfoGPA = d.xenheapPFN*guestmem.PageSize + uint64(id)*abi.VCPUInfoSize
	if err := kv.SetCPUID(d.cpuid.kvmEntries()); err != nil {
		return nil, fmt.Errorf("vmm: vCPU %d: %w", id, err)
	}
	if err := kv.SetMSRs(v.cpu.MSRs()); err != nil {
		return nil, fmt.Errorf("vmm: vCPU %d: %w", id, err)
	}
	if khz, err := kv.TSCKHz(); err == nil {
		v.tscKHz = khz
	}
	// KVM_CAP_SYNC_REGS: the general registers travel in kvm_run, saving
	// two ioctls per exit.
	if d.sys.CheckExtension(kvm.CapSyncRegs)&kvm.SyncRegsGPR != 0 {
		kv.EnableSyncRegs(kvm.SyncRegsGPR)
		v.syncRegs = true
	}
	return v, nil
}

func (v *VCPU) close() {
	if v.singleshot != nil {
		v.singleshot.Stop()
	}
	v.stopPeriodic()
	if v.kv != nil {
		v.kv.Close()
	}
}

// bootState sets the start-of-day vCPU state (vcpu_x86_64 in libxc):
// kernel mode at the entry point, RSI = start_info, RSP = boot stack.
func (v *VCPU) bootState(b *loader.Built) error {
	v.kernelMode = true
	if err := v.d.mmu.setBase(v, false, b.CR3); err != nil {
		return err
	}
	v.kernelSS = hole.FlatRing3DS
	v.kernelSP = b.StackTop
	v.regs = kvm.Regs{RSI: b.StartInfoVA}
	v.frame = hole.Frame{RIP: b.Entry, CS: hole.FlatRing3CS64, RFLAGS: flagIF | 2, RSP: b.StackTop, SS: hole.FlatRing3DS}
	s := v.cpu.Ring0Sregs(b.CR3)
	if err := v.kv.SetSregs(&s); err != nil {
		return err
	}
	v.d.clock.initVCPU(v)
	v.initialised = true
	return nil
}

// kick makes the vCPU look at its mailbox and pending events soon: it
// wakes it from a blocked wait or interrupts KVM_RUN.
func (v *VCPU) kick() {
	select {
	case v.wake <- struct{}{}:
	default:
	}
	v.kv.Kick()
}

// position is where the vCPU stopped, which decides how it resumes.
type position int

const (
	// atStub: halted in a ring-0 stub after an exit; Go owns the guest
	// state (regs, frame) and resumes it through a return chain.
	atStub position = iota
	// interrupted: KVM_RUN returned EINTR (a kick) wherever the vCPU was
	// — guest code, the return chain, or delivering an exception. Its
	// state is left exactly as KVM has it; to get control at a clean
	// point, xenvmm injects kickVector (KVM_INTERRUPT), which enters a
	// stub like any other vector.
	interrupted
)

func (p position) String() string {
	if p == atStub {
		return "at a stub"
	}
	return "interrupted"
}

// kickVector is the interrupt xenvmm injects to stop a running vCPU at a
// clean point when it has events or requests for it.
const kickVector = 0xf0

// errStop ends the vCPU loop.
type stopError struct{}

func (stopError) Error() string { return "vCPU stopped" }

// loop runs the vCPU until the domain stops.
func (v *VCPU) loop(ctx context.Context) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	v.kv.BindThread()
	defer func() {
		if v.d.debug {
			var r kvm.Regs
			v.kv.GetRegs(&r)
			v.d.log.Debug("vCPU stopped", "vcpu", v.id, "rip", fmt.Sprintf("%#x", r.RIP), "rsp", fmt.Sprintf("%#x", r.RSP), "history", v.historyString())
		}
	}()
	for !v.d.stopped() {
		if !v.online {
			select {
			case <-v.wake:
			case <-ctx.Done():
				return
			}
			continue
		}
		if err := v.step(); err != nil {
			if _, ok := err.(stopError); !ok {
				v.d.crash("vCPU %d: %v", v.id, err)
			}
			return
		}
	}
}

// step delivers pending events, resumes the guest, and handles one exit.
func (v *VCPU) step() error {
	v.takeMail()
	if v.where == atStub {
		// A kick interrupt queued while the vCPU was interrupted may
		// have been taken without an interrupt-window exit; a request
		// left on would stop the guest again as soon as it resumes.
		v.kv.RequestInterruptWindow(false)
		v.maybeRefreshTime()
		if err := v.deliverEvents(); err != nil {
			return err
		}
		if err := v.commit(); err != nil {
			return err
		}
	} else if v.wantsControl() {
		// Stop the guest at its next interruptible point: KVM exits
		// when the guest can take an interrupt (IF=1, so never inside
		// xenvmm's ring-0 code), and kickVector is queued then.
		v.kv.RequestInterruptWindow(true)
	}
	err := v.kv.Run()
	if kvm.IsInterrupted(err) {
		v.kv.SetImmediateExit(false)
		v.where = interrupted
		return nil
	}
	if err != nil {
		return err
	}
	switch r := v.kv.ExitReason(); r {
	case kvm.ExitHLT:
		return v.stubExit()
	case kvm.ExitIRQWindowOpen:
		// The vCPU is in guest code, its state KVM's: leave it, queue
		// the kick interrupt.
		v.where = interrupted
		v.kv.RequestInterruptWindow(false)
		return v.kv.Interrupt(kickVector)
	case kvm.ExitShutdown:
		return fmt.Errorf("triple fault (KVM_EXIT_SHUTDOWN): %s", v.postMortem())
	case kvm.ExitFailEntry:
		return fmt.Errorf("VM entry failed: hardware reason %#x", v.kv.FailEntryReason())
	case kvm.ExitInternalError:
		sub, data := v.kv.InternalError()
		return fmt.Errorf("KVM internal error %d %x", sub, data)
	case kvm.ExitIO:
		io, _ := v.kv.IO()
		return fmt.Errorf("unexpected port I/O exit (port %#x) — PV guests have no I/O ports", io.Port)
	case kvm.ExitMMIO:
		m := v.kv.MMIO()
		return fmt.Errorf("guest touched unbacked physical memory at %#x (write=%v)", m.PhysAddr, m.IsWrite)
	default:
		return fmt.Errorf("unexpected KVM exit %s", kvm.ExitName(r))
	}
}

// wantsControl reports whether an interrupted vCPU has work that needs
// it stopped at a stub: an event upcall to deliver or a TLB flush asked
// for by another vCPU.
func (v *VCPU) wantsControl() bool {
	if v.pendingFlush {
		return true
	}
	if v.cbEvent.address == 0 {
		return false
	}
	info := v.vcpuInfo()
	pending, _ := guestmem.Load8(info, abi.VCPUInfoUpcallPending)
	mask, _ := guestmem.Load8(info, abi.VCPUInfoUpcallMask)
	return pending != 0 && mask == 0
}

// commit resumes the guest at v.frame with v.regs through a return chain.
func (v *VCPU) commit() error {
	v.checkHoleSlots()
	stack, err := v.d.space.Slice(v.cpu.StackTopGPA-guestmem.PageSize, guestmem.PageSize)
	if err != nil {
		return err
	}
	f := v.frame
	f.RFLAGS = (f.RFLAGS | flagIF | 2) &^ (flagIOPL | flagVM)
	rsp, ok := v.chain.Place(stack, v.cpu.StackTop, f)
	if !ok {
		return fmt.Errorf("return chain of %d words does not fit the ring-0 stack", v.chain.Len())
	}
	v.chain.Reset()
	r := v.regs
	r.RIP = hole.StubRet
	r.RSP = rsp
	r.RFLAGS = 2
	if v.syncRegs {
		v.kv.SyncRegs().Regs = r
		v.kv.MarkSyncRegsDirty(kvm.SyncRegsGPR)
	} else if err := v.kv.SetRegs(&r); err != nil {
		return err
	}
	v.modified = false
	return nil
}

// stubExit handles a HLT in one of the hole's stubs.
func (v *VCPU) stubExit() error {
	v.where = atStub
	if v.syncRegs {
		v.regs = v.kv.SyncRegs().Regs
	} else if err := v.kv.GetRegs(&v.regs); err != nil {
		return err
	}
	kind, vec := hole.Classify(v.regs.RIP)
	nr := v.regs.RAX
	defer func() {
		v.history[v.histPos%len(v.history)] = exitRecord{kind: kind, vec: vec, rip: v.frame.RIP, rax: nr, ret: v.regs.RAX, kernel: v.kernelMode, cr3: v.currentCR3(), chain: v.chain.Len()}
		v.histPos++
	}()
	switch kind {
	case hole.ExitSyscall:
		// SYSCALL saved the return RIP and RFLAGS in RCX and R11; RSP is
		// the guest's.
		v.frame = hole.Frame{RIP: v.regs.RCX, RFLAGS: v.regs.R11, RSP: v.regs.RSP}
		v.setModeSelectors()
		return v.syscall()
	case hole.ExitVector:
		n := uint64(5)
		if hole.HasErrorCode(vec) {
			n = 6
		}
		if v.regs.RSP != v.cpu.StackTop-n*8 {
			// Not an entry from CPL3 (which switches to the top of the
			// ring-0 stack): the event hit xenvmm's ring-0 code.
			return fmt.Errorf("vector %d entered at ring 0 (ring-0 rsp %#x, want %#x): the return chain faulted; %s",
				vec, v.regs.RSP, v.cpu.StackTop-n*8, v.historyString())
		}
		raw, err := v.d.space.Slice(v.cpu.StackTopGPA-n*8, n*8)
		if err != nil {
			return err
		}
		w := func(i uint64) uint64 { return binary.LittleEndian.Uint64(raw[i*8:]) }
		var ec uint64
		i := uint64(0)
		if n == 6 {
			ec, i = w(0), 1
		}
		v.frame = hole.Frame{RIP: w(i), CS: w(i + 1), RFLAGS: w(i + 2), RSP: w(i + 3), SS: w(i + 4)}
		if v.frame.CS&3 == 0 {
			return fmt.Errorf("exception %d in the VMM's ring-0 code at %#x (error code %#x): the return chain failed; guest frame was rip %#x", vec, v.frame.RIP, ec, v.regs.RIP)
		}
		return v.exception(vec, ec)
	case hole.ExitSysenter:
		return fmt.Errorf("SYSENTER from a 64-bit guest")
	}
	return fmt.Errorf("vCPU halted at %#x outside the VMM's stubs", v.regs.RIP)
}

// setModeSelectors fills frame CS/SS for an entry that does not record
// them (SYSCALL): Xen's lstar path uses the flat selectors.
func (v *VCPU) setModeSelectors() {
	v.frame.CS = hole.FlatRing3CS64
	v.frame.SS = hole.FlatRing3DS
}

// takeMail applies requests other goroutines posted.
func (v *VCPU) takeMail() {
	v.mailbox.Lock()
	flush, tick := v.flushTLB, v.timeTick
	v.flushTLB, v.timeTick = false, false
	v.mailbox.Unlock()
	if flush {
		v.pendingFlush = true
	}
	if v.pendingFlush && v.where == atStub {
		v.chain.LoadCR3(v.currentCR3())
		v.pendingFlush = false
	}
	if tick {
		v.refreshTime()
	}
}

// currentCR3 is the page-table base of the guest's current mode.
func (v *VCPU) currentCR3() uint64 {
	if v.kernelMode || v.cr3User == 0 {
		return v.cr3Kernel
	}
	return v.cr3User
}

// vcpuInfo returns this vCPU's vcpu_info bytes.
func (v *VCPU) vcpuInfo() []byte {
	b, err := v.d.space.Slice(v.vcpuInfoGPA, abi.VCPUInfoSize)
	if err != nil {
		panic(fmt.Sprintf("vcpu_info at %#x: %v", v.vcpuInfoGPA, err)) // checked when registered
	}
	return b
}

// stallReport describes where a vCPU was when the domain was stopped from
// outside, for a guest that hung. Call it once the vCPU loop has ended.
func (v *VCPU) stallReport() string {
	var r kvm.Regs
	v.kv.GetRegs(&r)
	info := v.vcpuInfo()
	return fmt.Sprintf("vCPU %d after %d exits: %s at rip %#x rsp %#x (guest %s mode; last resume rip %#x); upcall pending %d mask %d; last exits (oldest first):%s",
		v.id, v.histPos, v.where, r.RIP, r.RSP, v.modeName(), v.frame.RIP, info[abi.VCPUInfoUpcallPending], info[abi.VCPUInfoUpcallMask], v.historyString())
}

// exitRecord is one handled exit, kept for post-mortems.
type exitRecord struct {
	kind   hole.Exit
	vec    int
	rip    uint64
	rax    uint64
	ret    uint64
	kernel bool
	cr3    uint64
	chain  int
}

// postMortem describes the vCPU's state after a fatal exit.
func (v *VCPU) postMortem() string {
	var b strings.Builder
	var r kvm.Regs
	var s kvm.Sregs
	v.kv.GetRegs(&r)
	v.kv.GetSregs(&s)
	fmt.Fprintf(&b, "rip %#x rsp %#x cs %#x ss %#x cr2 %#x cr3 %#x; guest mode %s, kernel cr3 %#x user cr3 %#x",
		r.RIP, r.RSP, s.CS.Selector, s.SS.Selector, s.CR2, s.CR3, v.modeName(), v.cr3Kernel, v.cr3User)
	// After a triple fault KVM has reset the vCPU; what xenvmm last
	// resumed is more telling.
	fmt.Fprintf(&b, "; last resume: rip %#x cs %#x rflags %#x rsp %#x ss %#x", v.frame.RIP, v.frame.CS, v.frame.RFLAGS, v.frame.RSP, v.frame.SS)
	for _, cr3 := range []uint64{v.cr3Kernel, v.cr3User} {
		if cr3 == 0 {
			continue
		}
		e256, _ := v.d.space.Read64(cr3 + 256*8)
		e260, _ := v.d.space.Read64(cr3 + 260*8)
		fmt.Fprintf(&b, "; L4 %#x: [256]=%#x [260]=%#x (typed L%d)", cr3, e256, e260, v.d.mmu.typeOf(cr3>>guestmem.PageShift))
	}
	fmt.Fprintf(&b, "; gdt frames %x", v.gdtFrames)
	b.WriteString("; last exits (oldest first):")
	b.WriteString(v.historyString())
	return b.String()
}

func (v *VCPU) historyString() string {
	var b strings.Builder
	for i := 0; i < len(v.history); i++ {
		h := v.history[(v.histPos+i)%len(v.history)]
		if h.rip == 0 {
			continue
		}
		switch h.kind {
		case hole.ExitSyscall:
			fmt.Fprintf(&b, " [syscall %d ret=%#x next rip=%#x kernel=%v cr3=%#x chain=%d]", h.rax, h.ret, h.rip, h.kernel, h.cr3, h.chain)
		default:
			fmt.Fprintf(&b, " [vec %d next rip=%#x kernel=%v cr3=%#x chain=%d]", h.vec, h.rip, h.kernel, h.cr3, h.chain)
		}
	}
	return b.String()
}

// checkHoleSlots verifies that the L4s this vCPU may run on still carry
// the hypervisor's slots (without them the next exception triple-faults)
// and restores them if the guest overwrote them through a writable alias
// of a page table, which Xen's type system would have refused.
func (v *VCPU) checkHoleSlots() {
	want := v.d.layout.L4Entries()
	for _, cr3 := range []uint64{v.cr3Kernel, v.cr3User} {
		if cr3 == 0 {
			continue
		}
		page, err := v.d.space.Page(cr3 >> guestmem.PageShift)
		if err != nil {
			continue
		}
		for i, e := range want {
			off := (hole.FirstSlot + i) * 8
			// The CPU sets the accessed bit as it walks.
			if binary.LittleEndian.Uint64(page[off:])&^guestmem.PTEAccessed != e&^guestmem.PTEAccessed {
				v.d.log.Warn("guest overwrote a hypervisor slot of its L4; restored", "vcpu", v.id, "l4", fmt.Sprintf("%#x", cr3), "slot", hole.FirstSlot+i, "rip", fmt.Sprintf("%#x", v.frame.RIP))
				v.d.mmu.writeHoleSlots(cr3 >> guestmem.PageShift)
				v.chain.LoadCR3(v.currentCR3())
				break
			}
		}
	}
}
