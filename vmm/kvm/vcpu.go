package kvm

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// VCPU is one virtual CPU: its fd and its mapped kvm_run page.
//
// All methods except Kick must be called from the goroutine that runs the
// vCPU; that goroutine should be locked to its OS thread (and call
// BindThread) so that Kick's signal reaches KVM_RUN.
type VCPU struct {
	fd     int
	id     int
	runMap []byte
	run    *runPage
	tid    atomic.Int32
	inRun  atomic.Bool // the bound thread is in (or entering) KVM_RUN

	// closeMu orders Kick, which any goroutine may call at any time (a
	// guest timer firing as the domain ends), against Close's unmapping
	// of kvm_run.
	closeMu sync.RWMutex
	closed  bool
}

// ID is the vCPU index given to CreateVCPU.
func (v *VCPU) ID() int { return v.id }

// Close unmaps kvm_run and closes the vCPU fd. Kicks after Close do
// nothing.
func (v *VCPU) Close() error {
	v.closeMu.Lock()
	defer v.closeMu.Unlock()
	if v.closed {
		return nil
	}
	v.closed = true
	err := unix.Munmap(v.runMap)
	if cerr := unix.Close(v.fd); err == nil {
		err = cerr
	}
	return err
}

// Run enters the guest (KVM_RUN). It returns nil after an exit that
// ExitReason describes, or an *Error; errors.Is(err, unix.EINTR) means a
// signal or immediate_exit interrupted it (KVM_EXIT_INTR).
func (v *VCPU) Run() error {
	v.inRun.Store(true)
	err := runIoctl(v.fd)
	v.inRun.Store(false)
	return wrap("KVM_RUN", err)
}

// IsInterrupted reports whether err from Run means "interrupted by a
// signal or immediate_exit" rather than a failure.
func IsInterrupted(err error) bool { return errors.Is(err, unix.EINTR) }

// ExitReason is kvm_run.exit_reason of the last exit.
func (v *VCPU) ExitReason() uint32 { return v.run.ExitReason }

// SetImmediateExit sets kvm_run.immediate_exit: while it is 1, KVM_RUN
// returns EINTR at once.
func (v *VCPU) SetImmediateExit(on bool) {
	var b uint8
	if on {
		b = 1
	}
	storeByte(&v.run.ImmediateExit, b)
}

// kickSignal interrupts KVM_RUN. The Go runtime already handles SIGURG
// (asynchronous preemption) and ignores it for a thread in a system call,
// so sending it is harmless to the runtime, and KVM_RUN returns EINTR.
const kickSignal = unix.SIGURG

// BindThread records the calling OS thread as this vCPU's runner. Call it
// from the vCPU goroutine after runtime.LockOSThread.
func (v *VCPU) BindThread() { v.tid.Store(int32(unix.Gettid())) }

// Kick makes the vCPU leave KVM_RUN soon (or not enter it): it sets
// immediate_exit and, when the bound thread is in KVM_RUN, signals it.
// (A thread outside KVM_RUN needs no signal: its next KVM_RUN sees
// immediate_exit; both flags are sequentially consistent atomics, so a
// kick cannot fall between the check and the entry. Each signal to a
// running vCPU costs an IPI and an exit, dear under nested KVM.) Safe
// from any goroutine.
// The runner must clear immediate_exit (SetImmediateExit(false)) after it
// has looked at its mailbox.
func (v *VCPU) Kick() error {
	v.closeMu.RLock()
	defer v.closeMu.RUnlock()
	if v.closed {
		return nil
	}
	v.SetImmediateExit(true)
	tid := v.tid.Load()
	if tid == 0 || !v.inRun.Load() {
		return nil
	}
	if err := unix.Tgkill(unix.Getpid(), int(tid), kickSignal); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("kvm: kick vCPU %d: %w", v.id, err)
	}
	return nil
}

// GetRegs reads the general-purpose registers.
func (v *VCPU) GetRegs(r *Regs) error {
	return wrap("KVM_GET_REGS", ioctlPtr(v.fd, ioctlGetRegs, ptr(r)))
}

// SetRegs writes the general-purpose registers.
func (v *VCPU) SetRegs(r *Regs) error {
	return wrap("KVM_SET_REGS", ioctlPtr(v.fd, ioctlSetRegs, ptr(r)))
}

// GetSregs reads the special registers.
func (v *VCPU) GetSregs(s *Sregs) error {
	return wrap("KVM_GET_SREGS", ioctlPtr(v.fd, ioctlGetSregs, ptr(s)))
}

// SetSregs writes the special registers.
func (v *VCPU) SetSregs(s *Sregs) error {
	return wrap("KVM_SET_SREGS", ioctlPtr(v.fd, ioctlSetSregs, ptr(s)))
}

// GetFPU reads the FPU/SSE state.
func (v *VCPU) GetFPU(f *FPU) error {
	return wrap("KVM_GET_FPU", ioctlPtr(v.fd, ioctlGetFPU, ptr(f)))
}

// SetFPU writes the FPU/SSE state.
func (v *VCPU) SetFPU(f *FPU) error {
	return wrap("KVM_SET_FPU", ioctlPtr(v.fd, ioctlSetFPU, ptr(f)))
}

// GetXCRs reads the extended control registers (XCR0).
func (v *VCPU) GetXCRs(x *XCRs) error {
	return wrap("KVM_GET_XCRS", ioctlPtr(v.fd, ioctlGetXCRs, ptr(x)))
}

// SetXCRs writes the extended control registers (XCR0).
func (v *VCPU) SetXCRs(x *XCRs) error {
	return wrap("KVM_SET_XCRS", ioctlPtr(v.fd, ioctlSetXCRs, ptr(x)))
}

// GetVCPUEvents reads pending exception/interrupt/NMI state.
func (v *VCPU) GetVCPUEvents(e *VCPUEvents) error {
	return wrap("KVM_GET_VCPU_EVENTS", ioctlPtr(v.fd, ioctlGetVCPUEvents, ptr(e)))
}

// SetVCPUEvents writes pending exception/interrupt/NMI state.
func (v *VCPU) SetVCPUEvents(e *VCPUEvents) error {
	return wrap("KVM_SET_VCPU_EVENTS", ioctlPtr(v.fd, ioctlSetVCPUEvents, ptr(e)))
}

// SetGuestDebug sets single-step and breakpoint control (for the gdbstub).
func (v *VCPU) SetGuestDebug(d *GuestDebug) error {
	return wrap("KVM_SET_GUEST_DEBUG", ioctlPtr(v.fd, ioctlSetGuestDebug, ptr(d)))
}

// Translate asks KVM to walk the guest page tables for a linear address.
func (v *VCPU) Translate(t *Translation) error {
	return wrap("KVM_TRANSLATE", ioctlPtr(v.fd, ioctlTranslate, ptr(t)))
}

// TSCKHz returns the vCPU's TSC frequency in kHz (KVM_GET_TSC_KHZ).
func (v *VCPU) TSCKHz() (uint32, error) {
	n, err := ioctlInt(v.fd, ioctlGetTSCKHz, 0)
	return uint32(n), wrap("KVM_GET_TSC_KHZ", err)
}

// SetCPUID sets the CPUID table the guest sees (KVM_SET_CPUID2).
func (v *VCPU) SetCPUID(entries []CPUIDEntry) error {
	return wrap("KVM_SET_CPUID2", setCPUID2(v.fd, entries))
}

// GetMSRs reads the MSRs named by entries[i].Index into entries[i].Data.
// It fails unless every MSR was read.
func (v *VCPU) GetMSRs(entries []MSREntry) error {
	n, err := msrs(v.fd, ioctlGetMSRs, entries)
	if err != nil {
		return wrap("KVM_GET_MSRS", err)
	}
	if n != len(entries) {
		return fmt.Errorf("kvm: KVM_GET_MSRS: read %d of %d MSRs (MSR %#x unsupported)", n, len(entries), entries[n].Index)
	}
	return nil
}

// SetMSRs writes MSRs. It fails unless every MSR was written.
func (v *VCPU) SetMSRs(entries []MSREntry) error {
	n, err := msrs(v.fd, ioctlSetMSRs, entries)
	if err != nil {
		return wrap("KVM_SET_MSRS", err)
	}
	if n != len(entries) {
		return fmt.Errorf("kvm: KVM_SET_MSRS: wrote %d of %d MSRs (MSR %#x refused)", n, len(entries), entries[n].Index)
	}
	return nil
}

// SetSignalMask sets the signal mask in force while the vCPU is in
// KVM_RUN (KVM_SET_SIGNAL_MASK); nil removes it.
func (v *VCPU) SetSignalMask(set *unix.Sigset_t) error {
	return wrap("KVM_SET_SIGNAL_MASK", setSignalMask(v.fd, set))
}

// EnableSyncRegs asks KVM to copy the register sets in mask
// (SyncRegsGPR|SyncRegsSregs|SyncRegsEvents) into kvm_run on every exit
// (KVM_CAP_SYNC_REGS). Check the capability first.
func (v *VCPU) EnableSyncRegs(mask uint64) { v.run.KVMValidRegs = mask }

// SyncRegs is the register state in kvm_run, valid after an exit for the
// sets enabled with EnableSyncRegs. Changes take effect on the next Run
// only for the sets marked with MarkSyncRegsDirty.
func (v *VCPU) SyncRegs() *SyncRegs { return &v.run.S }

// MarkSyncRegsDirty tells KVM to load the given sets from kvm_run on the
// next Run.
func (v *VCPU) MarkSyncRegsDirty(mask uint64) { v.run.KVMDirtyRegs |= mask }

// IOExit describes a KVM_EXIT_IO.
type IOExit struct {
	Out   bool
	Size  uint8
	Port  uint16
	Count uint32
	Data  []byte // Size*Count bytes inside kvm_run
}

// IO returns the port I/O exit details; valid when ExitReason is ExitIO.
func (v *VCPU) IO() (IOExit, error) { return v.ioExit() }

// MMIOExit describes a KVM_EXIT_MMIO.
type MMIOExit struct {
	PhysAddr uint64
	Data     []byte // Len bytes inside kvm_run
	IsWrite  bool
}

// MMIO returns the MMIO exit details; valid when ExitReason is ExitMMIO.
func (v *VCPU) MMIO() MMIOExit { return v.mmioExit() }

// FailEntryReason is hardware_entry_failure_reason of a KVM_EXIT_FAIL_ENTRY.
func (v *VCPU) FailEntryReason() uint64 { return v.run.exitU64(0) }

// InternalError returns suberror and data of a KVM_EXIT_INTERNAL_ERROR.
func (v *VCPU) InternalError() (suberror uint32, data []uint64) { return v.internalError() }

// DebugExit returns the exception, pc, dr6 and dr7 of a KVM_EXIT_DEBUG.
func (v *VCPU) DebugExit() (exception uint32, pc, dr6, dr7 uint64) {
	return uint32(v.run.exitU64(0)), v.run.exitU64(8), v.run.exitU64(16), v.run.exitU64(24)
}

// Interrupt queues an external interrupt (KVM_INTERRUPT), for VMs without
// an in-kernel irqchip. Issue it only when ReadyForInterrupt says so (or
// after a KVM_EXIT_IRQ_WINDOW_OPEN).
func (v *VCPU) Interrupt(vector uint32) error {
	irq := vector
	return wrap("KVM_INTERRUPT", ioctlPtr(v.fd, ioctlInterrupt, ptr(&irq)))
}

// ReadyForInterrupt reports kvm_run.ready_for_interrupt_injection and
// if_flag: an interrupt queued now is delivered on the next entry.
func (v *VCPU) ReadyForInterrupt() bool {
	return v.run.ReadyForInterruptInjection != 0 && v.run.IFFlag != 0
}

// RequestInterruptWindow sets kvm_run.request_interrupt_window: KVM exits
// with KVM_EXIT_IRQ_WINDOW_OPEN as soon as the guest can take an
// interrupt.
func (v *VCPU) RequestInterruptWindow(on bool) {
	var b uint8
	if on {
		b = 1
	}
	v.run.RequestInterruptWindow = b
}
