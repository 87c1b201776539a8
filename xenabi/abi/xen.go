package abi

// Layouts of the x86-64 structures of xen/include/public that live in
// guest memory, as byte offsets. The values were printed by a C program
// compiled against Xen's public headers (xen@c447b73, x86-64); guests
// share these pages with the VMM, so they are read and written in place
// through package guestmem rather than copied into Go structs.

// Constants defined through helper macros that scripts/gen-abi.py skips.
const (
	DOMID_FIRST_RESERVED = 0x7FF0
	DOMID_SELF           = 0x7FF0
	DOMID_IO             = 0x7FF1
	DOMID_XEN            = 0x7FF2
	DOMID_COW            = 0x7FF3
	DOMID_INVALID        = 0x7FF4
	DOMID_IDLE           = 0x7FFF

	VGCF_in_syscall       = 1 << 8 // xen-x86_64.h, iret flags
	CALLBACKF_mask_events = 1 << 0 // callback.h
	VCPU_SSHOTTMR_future  = 1 << 0 // vcpu.h
	TI_FLAG_DPL_MASK      = 3      // trap_info.flags bits 0-1: DPL
	TI_FLAG_IF            = 1 << 2 // trap_info.flags: clear event mask (interrupt gate)

	MAX_GUEST_CMDLINE = 1024
	XEN_PAGE_SIZE     = 4096

	// NR_EVENT_CHANNELS for the 2-level ABI on x86-64: 64*64 ports.
	NR_EVENT_CHANNELS_2L = 64 * 64
)

// struct start_info (xen.h), 1168 bytes.
const (
	StartInfoSize          = 1168
	StartInfoMagic         = 0
	StartInfoNrPages       = 32
	StartInfoSharedInfo    = 40
	StartInfoFlags         = 48
	StartInfoStoreMFN      = 56
	StartInfoStoreEvtchn   = 64
	StartInfoConsoleMFN    = 72
	StartInfoConsoleEvtchn = 80
	StartInfoPTBase        = 88
	StartInfoNrPTFrames    = 96
	StartInfoMFNList       = 104
	StartInfoModStart      = 112
	StartInfoModLen        = 120
	StartInfoCmdLine       = 128
	StartInfoFirstP2MPFN   = 1152
	StartInfoNrP2MFrames   = 1160
)

// StartInfoMagic64 is start_info.magic for a 64-bit PV guest of this Xen
// ABI ("xen-3.0-x86_64").
const StartInfoMagic64 = "xen-3.0-x86_64"

// struct shared_info (xen.h; arch part arch-x86/xen.h), 3136 bytes.
const (
	SharedInfoSize          = 3136
	SharedInfoVCPUInfo      = 0 // vcpu_info[XEN_LEGACY_MAX_VCPUS]
	SharedInfoEvtchnPending = 2048
	SharedInfoEvtchnMask    = 2560
	SharedInfoWcVersion     = 3072
	SharedInfoWcSec         = 3076
	SharedInfoWcNsec        = 3080
	SharedInfoWcSecHi       = 3084
	SharedInfoMaxPFN        = 3088
	SharedInfoP2MFrameList  = 3096 // pfn_to_mfn_frame_list_list
	SharedInfoNMIReason     = 3104
	SharedInfoP2MCR3        = 3112
	SharedInfoP2MVaddr      = 3120
	SharedInfoP2MGeneration = 3128
)

// struct vcpu_info (xen.h), 64 bytes, with struct vcpu_time_info at 32.
const (
	VCPUInfoSize          = 64
	VCPUInfoUpcallPending = 0
	VCPUInfoUpcallMask    = 1
	VCPUInfoPendingSel    = 8
	VCPUInfoCR2           = 16
	VCPUInfoTime          = 32

	// struct vcpu_time_info offsets, relative to its start.
	TimeInfoSize            = 32
	TimeInfoVersion         = 0
	TimeInfoTSCTimestamp    = 8
	TimeInfoSystemTime      = 16
	TimeInfoTSCToSystemMul  = 24
	TimeInfoTSCShift        = 28
	TimeInfoFlags           = 29
	XEN_PVCLOCK_TSC_STABLE  = 1 << 0
	XEN_PVCLOCK_GUEST_STOPD = 1 << 1
)

// struct vcpu_runstate_info (vcpu.h), 48 bytes.
const (
	RunstateInfoSize           = 48
	RunstateInfoState          = 0
	RunstateInfoStateEntryTime = 8
	RunstateInfoTime           = 16 // uint64_t time[4]
	XEN_RUNSTATE_UPDATE        = 1 << 63
)

// Sizes of hypercall argument structures (x86-64).
const (
	TrapInfoSize        = 16 // struct trap_info {u8 vector, flags; u16 cs; ulong address @8}
	MMUUpdateSize       = 16 // struct mmu_update {u64 ptr, val}
	MMUExtOpSize        = 24 // struct mmuext_op {u32 cmd; arg1 @8; arg2 @16}
	MulticallEntrySize  = 64 // struct multicall_entry {op @0, result @8, args[6] @16}
	CallbackRegister    = 16 // struct callback_register {u16 type, flags; address @8}
	MemoryReservation   = 32 // struct xen_memory_reservation {extent_start, nr_extents @8, extent_order @16, mem_flags @20, domid @24}
	GnttabCopySize      = 40
	GnttabSetupSize     = 24
	SchedPollSize       = 24
	XenconsInterfaceIn  = 0
	XenconsInterfaceOut = 1024
	XenconsInCons       = 3072
	XenconsInProd       = 3076
	XenconsOutCons      = 3080
	XenconsOutProd      = 3084
	XenconsInSize       = 1024
	XenconsOutSize      = 2048
)

// struct vcpu_guest_context (arch-x86/xen.h) for VCPUOP_initialise, 5168
// bytes, with struct cpu_user_regs (200 bytes) at 520.
const (
	VCPUGuestContextSize   = 5168
	VGCFlags               = 512
	VGCUserRegs            = 520
	VGCTrapCtxt            = 720 // trap_info[256]
	VGCLDTBase             = 4816
	VGCLDTEnts             = 4824
	VGCGDTFrames           = 4832 // ulong[16]
	VGCGDTEnts             = 4960
	VGCKernelSS            = 4968
	VGCKernelSP            = 4976
	VGCCtrlReg             = 4984 // ulong[8]
	VGCDebugReg            = 5048 // ulong[8]
	VGCEventCallbackEIP    = 5112
	VGCFailsafeCallbackEIP = 5120
	VGCSyscallCallbackEIP  = 5128
	VGCVMAssist            = 5136
	VGCFSBase              = 5144
	VGCGSBaseKernel        = 5152
	VGCGSBaseUser          = 5160

	// struct cpu_user_regs offsets (xen-x86_64.h).
	CPURegsR15    = 0
	CPURegsR14    = 8
	CPURegsR13    = 16
	CPURegsR12    = 24
	CPURegsRBP    = 32
	CPURegsRBX    = 40
	CPURegsR11    = 48
	CPURegsR10    = 56
	CPURegsR9     = 64
	CPURegsR8     = 72
	CPURegsRAX    = 80
	CPURegsRCX    = 88
	CPURegsRDX    = 96
	CPURegsRSI    = 104
	CPURegsRDI    = 112
	CPURegsRIP    = 128
	CPURegsCS     = 136
	CPURegsRFLAGS = 144
	CPURegsRSP    = 152
	CPURegsSS     = 160
)
