package kvm

import "unsafe"

// The KVM ioctls this package issues, from <linux/kvm.h>.
var (
	// System ioctls.
	ioctlGetAPIVersion       = io(0x00)
	ioctlCreateVM            = io(0x01)
	ioctlGetMSRIndexList     = iowr(0x02, unsafe.Sizeof(msrList{}))
	ioctlCheckExtension      = io(0x03)
	ioctlGetVCPUMmapSize     = io(0x04)
	ioctlGetSupportedCPUID   = iowr(0x05, unsafe.Sizeof(cpuid2Header{}))
	ioctlSetUserMemoryRegion = iow(0x46, unsafe.Sizeof(UserspaceMemoryRegion{}))
	ioctlCreateVCPU          = io(0x41)
	ioctlEnableCap           = iow(0xa3, unsafe.Sizeof(EnableCap{}))

	// vCPU ioctls.
	ioctlRun           = io(0x80)
	ioctlGetRegs       = ior(0x81, unsafe.Sizeof(Regs{}))
	ioctlSetRegs       = iow(0x82, unsafe.Sizeof(Regs{}))
	ioctlGetSregs      = ior(0x83, unsafe.Sizeof(Sregs{}))
	ioctlSetSregs      = iow(0x84, unsafe.Sizeof(Sregs{}))
	ioctlTranslate     = iowr(0x85, unsafe.Sizeof(Translation{}))
	ioctlInterrupt     = iow(0x86, unsafe.Sizeof(uint32(0)))
	ioctlGetMSRs       = iowr(0x88, unsafe.Sizeof(msrsHeader{}))
	ioctlSetMSRs       = iow(0x89, unsafe.Sizeof(msrsHeader{}))
	ioctlSetSignalMask = iow(0x8b, unsafe.Sizeof(signalMaskHeader{}))
	ioctlGetFPU        = ior(0x8c, unsafe.Sizeof(FPU{}))
	ioctlSetFPU        = iow(0x8d, unsafe.Sizeof(FPU{}))
	ioctlSetCPUID2     = iow(0x90, unsafe.Sizeof(cpuid2Header{}))
	ioctlSetGuestDebug = iow(0x9b, unsafe.Sizeof(GuestDebug{}))
	ioctlGetVCPUEvents = ior(0x9f, unsafe.Sizeof(VCPUEvents{}))
	ioctlSetVCPUEvents = iow(0xa0, unsafe.Sizeof(VCPUEvents{}))
	ioctlSetTSCKHz     = io(0xa2)
	ioctlGetTSCKHz     = io(0xa3)
	ioctlGetXCRs       = ior(0xa6, unsafe.Sizeof(XCRs{}))
	ioctlSetXCRs       = iow(0xa7, unsafe.Sizeof(XCRs{}))
)
