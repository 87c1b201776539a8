package kvm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// runPage mirrors struct kvm_run (linux/kvm.h) up to and including the
// synchronized registers; the exit union is kept as raw bytes and decoded
// by the accessors below.
type runPage struct {
	RequestInterruptWindow     uint8
	ImmediateExit              uint8
	_                          [6]uint8
	ExitReason                 uint32
	ReadyForInterruptInjection uint8
	IFFlag                     uint8
	Flags                      uint16
	CR8                        uint64
	APICBase                   uint64
	Exit                       [256]byte
	KVMValidRegs               uint64
	KVMDirtyRegs               uint64
	S                          SyncRegs
	_                          [2048 - unsafe.Sizeof(SyncRegs{})]byte
}

func runPointer(m []byte) *runPage {
	if uintptr(len(m)) < unsafe.Sizeof(runPage{}) {
		panic(fmt.Sprintf("kvm: kvm_run mapping of %d bytes is smaller than struct kvm_run", len(m)))
	}
	return (*runPage)(unsafe.Pointer(&m[0]))
}

func (r *runPage) exitU64(off int) uint64 { return binary.LittleEndian.Uint64(r.Exit[off:]) }

// storeByte writes a byte of kvm_run that another thread (the kernel, on
// the vCPU's CPU) reads: an atomic store of the containing aligned word
// would clobber its neighbours, so store the byte through a volatile-like
// atomic on a uint32 view with a compare-and-swap loop.
func storeByte(p *uint8, b uint8) {
	off := uintptr(unsafe.Pointer(p)) & 3
	word := (*uint32)(unsafe.Add(unsafe.Pointer(p), -int(off)))
	shift := off * 8
	for {
		old := atomic.LoadUint32(word)
		nw := old&^(0xff<<shift) | uint32(b)<<shift
		if atomic.CompareAndSwapUint32(word, old, nw) {
			return
		}
	}
}

func (v *VCPU) ioExit() (IOExit, error) {
	e := v.run.Exit[:]
	x := IOExit{
		Out:   e[0] == 1,
		Size:  e[1],
		Port:  binary.LittleEndian.Uint16(e[2:]),
		Count: binary.LittleEndian.Uint32(e[4:]),
	}
	off := binary.LittleEndian.Uint64(e[8:])
	n := uint64(x.Size) * uint64(x.Count)
	if off > uint64(len(v.runMap)) || n > uint64(len(v.runMap))-off {
		return x, fmt.Errorf("kvm: KVM_EXIT_IO data [%#x,+%d) outside kvm_run", off, n)
	}
	x.Data = v.runMap[off : off+n]
	return x, nil
}

func (v *VCPU) mmioExit() MMIOExit {
	e := v.run.Exit[:]
	n := binary.LittleEndian.Uint32(e[16:])
	if n > 8 {
		n = 8
	}
	return MMIOExit{
		PhysAddr: binary.LittleEndian.Uint64(e[0:]),
		Data:     e[8 : 8+n],
		IsWrite:  e[20] != 0,
	}
}

func (v *VCPU) internalError() (uint32, []uint64) {
	e := v.run.Exit[:]
	sub := binary.LittleEndian.Uint32(e[0:])
	n := binary.LittleEndian.Uint32(e[4:])
	if n > 16 {
		n = 16
	}
	data := make([]uint64, n)
	for i := range data {
		data[i] = binary.LittleEndian.Uint64(e[8+8*i:])
	}
	return sub, data
}

// ioctlInt issues an ioctl with an integer argument. Every ioctl but
// KVM_RUN is retried on EINTR: the Go runtime's own signals (SIGURG for
// preemption) interrupt calls such as KVM_CREATE_VM, which are safe to
// repeat. KVM_RUN goes through runIoctl, which returns EINTR to the run
// loop, where it means "look at the mailbox".
func ioctlInt(fd int, req, arg uintptr) (int, error) {
	for {
		r, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, arg)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(r), nil
	}
}

// runIoctl issues KVM_RUN once; EINTR is returned, not retried.
func runIoctl(fd int) error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), ioctlRun, 0)
	if e != 0 {
		return e
	}
	return nil
}

// ioctlPtr issues an ioctl whose argument is a pointer. The conversion to
// uintptr happens inside the Syscall call expression, so the pointee stays
// alive and in place for the call (unsafe.Pointer rule 4).
func ioctlPtr(fd int, req uintptr, arg unsafe.Pointer) error {
	for {
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return e
		}
		return nil
	}
}

func ioctlIntPtr(fd int, req uintptr, arg unsafe.Pointer) (int, error) {
	for {
		r, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(r), nil
	}
}

// ptr converts a pointer to one of this package's ioctl structs into the
// ioctl argument. The struct is reachable from the caller's frame for the
// duration of the system call.
func ptr[T any](p *T) unsafe.Pointer { return unsafe.Pointer(p) }

func getCPUID2(fd int, req uintptr, n int) ([]CPUIDEntry, error) {
	hdr := unsafe.Sizeof(cpuid2Header{})
	buf := make([]byte, hdr+uintptr(n)*unsafe.Sizeof(CPUIDEntry{}))
	(*cpuid2Header)(unsafe.Pointer(&buf[0])).NEnt = uint32(n)
	if err := ioctlPtr(fd, req, unsafe.Pointer(&buf[0])); err != nil {
		return nil, err
	}
	got := (*cpuid2Header)(unsafe.Pointer(&buf[0])).NEnt
	if int(got) > n {
		return nil, errors.New("kernel returned more CPUID entries than room")
	}
	src := unsafe.Slice((*CPUIDEntry)(unsafe.Pointer(&buf[hdr])), got)
	return append([]CPUIDEntry(nil), src...), nil
}

func setCPUID2(fd int, entries []CPUIDEntry) error {
	hdr := unsafe.Sizeof(cpuid2Header{})
	buf := make([]byte, hdr+uintptr(len(entries))*unsafe.Sizeof(CPUIDEntry{}))
	(*cpuid2Header)(unsafe.Pointer(&buf[0])).NEnt = uint32(len(entries))
	copy(unsafe.Slice((*CPUIDEntry)(unsafe.Pointer(&buf[hdr])), len(entries)), entries)
	return ioctlPtr(fd, ioctlSetCPUID2, unsafe.Pointer(&buf[0]))
}

func msrs(fd int, req uintptr, entries []MSREntry) (int, error) {
	hdr := unsafe.Sizeof(msrsHeader{})
	buf := make([]byte, hdr+uintptr(len(entries))*unsafe.Sizeof(MSREntry{}))
	(*msrsHeader)(unsafe.Pointer(&buf[0])).NMSRs = uint32(len(entries))
	es := unsafe.Slice((*MSREntry)(unsafe.Pointer(&buf[hdr])), len(entries))
	copy(es, entries)
	n, err := ioctlIntPtr(fd, req, unsafe.Pointer(&buf[0]))
	if err != nil {
		return 0, err
	}
	copy(entries, es)
	return n, nil
}

func getMSRIndexList(fd int) ([]uint32, error) {
	for n := 256; n <= 16384; n *= 2 {
		buf := make([]uint32, 1+n)
		buf[0] = uint32(n)
		err := ioctlPtr(fd, ioctlGetMSRIndexList, unsafe.Pointer(&buf[0]))
		if errors.Is(err, unix.E2BIG) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return append([]uint32(nil), buf[1:1+buf[0]]...), nil
	}
	return nil, unix.E2BIG
}

func setSignalMask(fd int, set *unix.Sigset_t) error {
	if set == nil {
		return ioctlPtr(fd, ioctlSetSignalMask, nil)
	}
	// struct kvm_signal_mask { __u32 len; __u8 sigset[]; } with the
	// kernel's sigset size (8 bytes on x86-64).
	var buf struct {
		Len uint32
		Set [8]byte
	}
	buf.Len = 8
	binary.LittleEndian.PutUint64(buf.Set[:], set.Val[0])
	return ioctlPtr(fd, ioctlSetSignalMask, unsafe.Pointer(&buf))
}
