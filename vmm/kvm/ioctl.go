package kvm

// ioctl request numbers, computed from the argument type as <asm-generic/ioctl.h>
// does (_IO, _IOR, _IOW, _IOWR); never written as bare hex.

const (
	iocNone  = 0
	iocWrite = 1
	iocRead  = 2

	iocNRBits   = 8
	iocTypeBits = 8
	iocSizeBits = 14

	iocNRShift   = 0
	iocTypeShift = iocNRShift + iocNRBits
	iocSizeShift = iocTypeShift + iocTypeBits
	iocDirShift  = iocSizeShift + iocSizeBits

	// kvmio is KVMIO from <linux/kvm.h>.
	kvmio = 0xAE
)

func ioc(dir, typ, nr, size uintptr) uintptr {
	if size >= 1<<iocSizeBits {
		panic("kvm: ioctl argument too large") // programming error, caught by TestIoctlNumbers
	}
	return dir<<iocDirShift | typ<<iocTypeShift | nr<<iocNRShift | size<<iocSizeShift
}

func io(nr uintptr) uintptr         { return ioc(iocNone, kvmio, nr, 0) }
func ior(nr, size uintptr) uintptr  { return ioc(iocRead, kvmio, nr, size) }
func iow(nr, size uintptr) uintptr  { return ioc(iocWrite, kvmio, nr, size) }
func iowr(nr, size uintptr) uintptr { return ioc(iocRead|iocWrite, kvmio, nr, size) }
