package kvm

// Go mirrors of the x86 structures of <linux/kvm.h> and
// <asm/kvm.h> (arch/x86/include/uapi/asm/kvm.h). Field order, types and
// padding match the C definitions one-to-one; layout_unsafe_test.go checks
// every size and the offsets that matter.

// Regs mirrors struct kvm_regs (asm/kvm.h).
type Regs struct {
	RAX, RBX, RCX, RDX uint64
	RSI, RDI, RSP, RBP uint64
	R8, R9, R10, R11   uint64
	R12, R13, R14, R15 uint64
	RIP, RFLAGS        uint64
}

// Segment mirrors struct kvm_segment (asm/kvm.h).
type Segment struct {
	Base     uint64
	Limit    uint32
	Selector uint16
	Type     uint8
	Present  uint8
	DPL      uint8
	DB       uint8
	S        uint8
	L        uint8
	G        uint8
	AVL      uint8
	Unusable uint8
	_        uint8
}

// DTable mirrors struct kvm_dtable (asm/kvm.h): a GDTR or IDTR.
type DTable struct {
	Base  uint64
	Limit uint16
	_     [3]uint16
}

// Sregs mirrors struct kvm_sregs (asm/kvm.h).
type Sregs struct {
	CS, DS, ES, FS, GS, SS Segment
	TR, LDT                Segment
	GDT, IDT               DTable
	CR0, CR2, CR3, CR4     uint64
	CR8                    uint64
	EFER                   uint64
	APICBase               uint64
	InterruptBitmap        [4]uint64
}

// FPU mirrors struct kvm_fpu (asm/kvm.h).
type FPU struct {
	FPR        [8][16]uint8
	FCW        uint16
	FSW        uint16
	FTWX       uint8
	_          uint8
	LastOpcode uint16
	LastIP     uint64
	LastDP     uint64
	XMM        [16][16]uint8
	MXCSR      uint32
	_          uint32
}

// MSREntry mirrors struct kvm_msr_entry (asm/kvm.h).
type MSREntry struct {
	Index    uint32
	Reserved uint32
	Data     uint64
}

// msrsHeader mirrors the fixed part of struct kvm_msrs; entries follow it.
type msrsHeader struct {
	NMSRs uint32
	_     uint32
}

// msrList mirrors the fixed part of struct kvm_msr_list; indices follow it.
type msrList struct {
	NMSRs uint32
}

// CPUIDEntry mirrors struct kvm_cpuid_entry2 (asm/kvm.h).
type CPUIDEntry struct {
	Function uint32
	Index    uint32
	Flags    uint32
	EAX      uint32
	EBX      uint32
	ECX      uint32
	EDX      uint32
	_        [3]uint32
}

// CPUIDFlagSignificantIndex is KVM_CPUID_FLAG_SIGNIFCANT_INDEX: the entry
// applies only to the given subleaf (Index).
const CPUIDFlagSignificantIndex = 1 << 0

// cpuid2Header mirrors the fixed part of struct kvm_cpuid2.
type cpuid2Header struct {
	NEnt uint32
	_    uint32
}

// UserspaceMemoryRegion mirrors struct kvm_userspace_memory_region.
type UserspaceMemoryRegion struct {
	Slot          uint32
	Flags         uint32
	GuestPhysAddr uint64
	MemorySize    uint64
	UserspaceAddr uint64
}

// Memory region flags (KVM_MEM_*).
const (
	MemLogDirtyPages = 1 << 0
	MemReadonly      = 1 << 1
)

// EnableCap mirrors struct kvm_enable_cap.
type EnableCap struct {
	Cap   uint32
	Flags uint32
	Args  [4]uint64
	_     [64]uint8
}

// Translation mirrors struct kvm_translation.
type Translation struct {
	LinearAddress   uint64
	PhysicalAddress uint64
	Valid           uint8
	Writeable       uint8
	Usermode        uint8
	_               [5]uint8
}

// signalMaskHeader mirrors the fixed part of struct kvm_signal_mask.
type signalMaskHeader struct {
	Len uint32
}

// VCPUEvents mirrors struct kvm_vcpu_events (asm/kvm.h).
type VCPUEvents struct {
	Exception struct {
		Injected     uint8
		Nr           uint8
		HasErrorCode uint8
		Pending      uint8
		ErrorCode    uint32
	}
	Interrupt struct {
		Injected uint8
		Nr       uint8
		Soft     uint8
		Shadow   uint8
	}
	NMI struct {
		Injected uint8
		Pending  uint8
		Masked   uint8
		_        uint8
	}
	SIPIVector uint32
	Flags      uint32
	SMI        struct {
		SMM          uint8
		Pending      uint8
		SMMInsideNMI uint8
		LatchedInit  uint8
	}
	Reserved            [27]uint8
	ExceptionHasPayload uint8
	ExceptionPayload    uint64
}

// XCR mirrors struct kvm_xcr.
type XCR struct {
	XCR      uint32
	Reserved uint32
	Value    uint64
}

// XCRs mirrors struct kvm_xcrs.
type XCRs struct {
	NrXCRs  uint32
	Flags   uint32
	XCRs    [16]XCR
	Padding [16]uint64
}

// DebugRegs is the arch part of struct kvm_guest_debug (struct
// kvm_guest_debug_arch: debugreg[8]).
type DebugRegs struct {
	DebugReg [8]uint64
}

// GuestDebug mirrors struct kvm_guest_debug.
type GuestDebug struct {
	Control uint32
	_       uint32
	Arch    DebugRegs
}

// Guest debug control bits (KVM_GUESTDBG_*).
const (
	GuestDbgEnable     = 0x00000001
	GuestDbgSingleStep = 0x00000002
	GuestDbgUseSWBP    = 0x00010000
	GuestDbgUseHWBP    = 0x00020000
)

// SyncRegs mirrors struct kvm_sync_regs (x86): the register state KVM
// copies into kvm_run on exit when KVM_CAP_SYNC_REGS is in use.
type SyncRegs struct {
	Regs   Regs
	Sregs  Sregs
	Events VCPUEvents
}

// Sync register sets (KVM_SYNC_X86_*), for kvm_valid_regs/kvm_dirty_regs.
const (
	SyncRegsGPR    = 1 << 0
	SyncRegsSregs  = 1 << 1
	SyncRegsEvents = 1 << 2
)

// Exit reasons (KVM_EXIT_*).
const (
	ExitUnknown       = 0
	ExitException     = 1
	ExitIO            = 2
	ExitHypercall     = 3
	ExitDebug         = 4
	ExitHLT           = 5
	ExitMMIO          = 6
	ExitIRQWindowOpen = 7
	ExitShutdown      = 8
	ExitFailEntry     = 9
	ExitIntr          = 10
	ExitSetTPR        = 11
	ExitTPRAccess     = 12
	ExitNMI           = 16
	ExitInternalError = 17
	ExitSystemEvent   = 24
	ExitX86RDMSR      = 29
	ExitX86WRMSR      = 30
)

var exitNames = map[uint32]string{
	ExitUnknown: "UNKNOWN", ExitException: "EXCEPTION", ExitIO: "IO",
	ExitHypercall: "HYPERCALL", ExitDebug: "DEBUG", ExitHLT: "HLT",
	ExitMMIO: "MMIO", ExitIRQWindowOpen: "IRQ_WINDOW_OPEN",
	ExitShutdown: "SHUTDOWN", ExitFailEntry: "FAIL_ENTRY", ExitIntr: "INTR",
	ExitSetTPR: "SET_TPR", ExitTPRAccess: "TPR_ACCESS", ExitNMI: "NMI",
	ExitInternalError: "INTERNAL_ERROR", ExitSystemEvent: "SYSTEM_EVENT",
	ExitX86RDMSR: "X86_RDMSR", ExitX86WRMSR: "X86_WRMSR",
}

// ExitName returns the KVM_EXIT_* name of an exit reason.
func ExitName(reason uint32) string {
	if n, ok := exitNames[reason]; ok {
		return n
	}
	return "EXIT_" + itoa(uint64(reason))
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

// Capabilities (KVM_CAP_*) this package asks about.
const (
	CapIRQChip         = 0
	CapHLT             = 1
	CapUserMemory      = 3
	CapSetTSSAddr      = 4
	CapExtCPUID        = 7
	CapNrVCPUs         = 9
	CapNrMemslots      = 10
	CapMPState         = 14
	CapImmediateExit   = 136
	CapSyncRegs        = 74
	CapGetTSCKHz       = 61
	CapMaxVCPUs        = 66
	CapXenHVM          = 38
	CapXCRs            = 56
	CapVCPUEvents      = 41
	CapSetGuestDebug   = 23
	CapX86UserSpaceMSR = 188
)
