package kvm

import (
	"testing"
	"unsafe"
)

// The expected values were printed by a C program compiled against
// <linux/kvm.h> (Debian 12 linux-libc-dev, x86-64).

func TestStructSizes(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  uintptr
		want uintptr
	}{
		{"kvm_regs", unsafe.Sizeof(Regs{}), 144},
		{"kvm_sregs", unsafe.Sizeof(Sregs{}), 312},
		{"kvm_fpu", unsafe.Sizeof(FPU{}), 416},
		{"kvm_segment", unsafe.Sizeof(Segment{}), 24},
		{"kvm_dtable", unsafe.Sizeof(DTable{}), 16},
		{"kvm_msr_entry", unsafe.Sizeof(MSREntry{}), 16},
		{"kvm_cpuid_entry2", unsafe.Sizeof(CPUIDEntry{}), 40},
		{"kvm_userspace_memory_region", unsafe.Sizeof(UserspaceMemoryRegion{}), 32},
		{"kvm_enable_cap", unsafe.Sizeof(EnableCap{}), 104},
		{"kvm_translation", unsafe.Sizeof(Translation{}), 24},
		{"kvm_vcpu_events", unsafe.Sizeof(VCPUEvents{}), 64},
		{"kvm_xcrs", unsafe.Sizeof(XCRs{}), 392},
		{"kvm_guest_debug", unsafe.Sizeof(GuestDebug{}), 72},
		{"kvm_sync_regs", unsafe.Sizeof(SyncRegs{}), 520},
		{"kvm_run", unsafe.Sizeof(runPage{}), 2352},
	} {
		if tc.got != tc.want {
			t.Errorf("sizeof(struct %s) = %d, want %d", tc.name, tc.got, tc.want)
		}
	}
}

func TestOffsets(t *testing.T) {
	var r runPage
	var s Sregs
	var e VCPUEvents
	for _, tc := range []struct {
		name      string
		got, want uintptr
	}{
		{"kvm_run.immediate_exit", unsafe.Offsetof(r.ImmediateExit), 1},
		{"kvm_run.exit_reason", unsafe.Offsetof(r.ExitReason), 8},
		{"kvm_run.io (exit union)", unsafe.Offsetof(r.Exit), 32},
		{"kvm_run.kvm_valid_regs", unsafe.Offsetof(r.KVMValidRegs), 288},
		{"kvm_run.kvm_dirty_regs", unsafe.Offsetof(r.KVMDirtyRegs), 296},
		{"kvm_run.s", unsafe.Offsetof(r.S), 304},
		{"kvm_sregs.cr0", unsafe.Offsetof(s.CR0), 224},
		{"kvm_sregs.efer", unsafe.Offsetof(s.EFER), 264},
		{"kvm_vcpu_events.exception_payload", unsafe.Offsetof(e.ExceptionPayload), 56},
	} {
		if tc.got != tc.want {
			t.Errorf("offsetof(%s) = %d, want %d", tc.name, tc.got, tc.want)
		}
	}
}

func TestIoctlNumbers(t *testing.T) {
	for _, tc := range []struct {
		name      string
		got, want uintptr
	}{
		{"KVM_RUN", ioctlRun, 0xae80},
		{"KVM_GET_REGS", ioctlGetRegs, 0x8090ae81},
		{"KVM_SET_SREGS", ioctlSetSregs, 0x4138ae84},
		{"KVM_SET_USER_MEMORY_REGION", ioctlSetUserMemoryRegion, 0x4020ae46},
		{"KVM_GET_MSRS", ioctlGetMSRs, 0xc008ae88},
		{"KVM_SET_CPUID2", ioctlSetCPUID2, 0x4008ae90},
		{"KVM_ENABLE_CAP", ioctlEnableCap, 0x4068aea3},
		{"KVM_GET_SUPPORTED_CPUID", ioctlGetSupportedCPUID, 0xc008ae05},
		{"KVM_SET_SIGNAL_MASK", ioctlSetSignalMask, 0x4004ae8b},
		{"KVM_GET_TSC_KHZ", ioctlGetTSCKHz, 0xaea3},
		{"KVM_SET_XCRS", ioctlSetXCRs, 0x4188aea7},
		{"KVM_GET_VCPU_EVENTS", ioctlGetVCPUEvents, 0x8040ae9f},
		{"KVM_SET_GUEST_DEBUG", ioctlSetGuestDebug, 0x4048ae9b},
		{"KVM_TRANSLATE", ioctlTranslate, 0xc018ae85},
		{"KVM_GET_FPU", ioctlGetFPU, 0x81a0ae8c},
		{"KVM_GET_MSR_INDEX_LIST", ioctlGetMSRIndexList, 0xc004ae02},
		{"KVM_INTERRUPT", ioctlInterrupt, 0x4004ae86},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %#x, want %#x", tc.name, tc.got, tc.want)
		}
	}
}

func TestStoreByteKeepsNeighbours(t *testing.T) {
	var r runPage
	r.RequestInterruptWindow = 0xaa
	r.ExitReason = 0x11223344
	storeByte(&r.ImmediateExit, 1)
	if r.ImmediateExit != 1 || r.RequestInterruptWindow != 0xaa || r.ExitReason != 0x11223344 {
		t.Fatalf("storeByte clobbered kvm_run: %+v", r)
	}
	storeByte(&r.ImmediateExit, 0)
	if r.ImmediateExit != 0 || r.RequestInterruptWindow != 0xaa {
		t.Fatalf("storeByte(0) failed: %+v", r)
	}
}
