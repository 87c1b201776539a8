// Package kvm is xenvmm's thin layer over the Linux KVM API
// (Documentation/virt/kvm/api.rst): the system, VM and vCPU file
// descriptors, guest memory slots, register state, the shared kvm_run page
// and the ioctls that a PV-guest VMM needs. It holds no policy: the PV CPU
// model in package vmm decides what the state means.
//
// Every ioctl returns its errno wrapped in an *Error naming the ioctl; EINTR
// is never retried here, because a vCPU kick must reach the run loop
// (architecture.md, house rule 4).
package kvm

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// APIVersion is the only KVM API version that exists (KVM_API_VERSION).
const APIVersion = 12

// DevicePath is where the KVM device lives.
const DevicePath = "/dev/kvm"

// ErrNoKVM is returned by Open when /dev/kvm does not exist.
var ErrNoKVM = errors.New("kvm: /dev/kvm does not exist (no hardware virtualization here; see scripts/sandbox.sh)")

// Error is a failed KVM ioctl.
type Error struct {
	Op    string // the ioctl, e.g. "KVM_RUN"
	Errno unix.Errno
}

func (e *Error) Error() string { return fmt.Sprintf("kvm: %s: %v", e.Op, e.Errno) }

// Unwrap lets errors.Is(err, unix.EINTR) work.
func (e *Error) Unwrap() error { return e.Errno }

func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var errno unix.Errno
	if errors.As(err, &errno) {
		return &Error{Op: op, Errno: errno}
	}
	return fmt.Errorf("kvm: %s: %w", op, err)
}

// System is an open /dev/kvm.
type System struct {
	fd       int
	mmapSize int
}

// Open opens /dev/kvm and checks the API version.
func Open() (*System, error) {
	fd, err := unix.Open(DevicePath, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, ErrNoKVM
		}
		return nil, fmt.Errorf("kvm: open %s: %w", DevicePath, err)
	}
	s := &System{fd: fd}
	v, err := ioctlInt(fd, ioctlGetAPIVersion, 0)
	if err != nil {
		s.Close()
		return nil, wrap("KVM_GET_API_VERSION", err)
	}
	if v != APIVersion {
		s.Close()
		return nil, fmt.Errorf("kvm: API version %d, want %d", v, APIVersion)
	}
	n, err := ioctlInt(fd, ioctlGetVCPUMmapSize, 0)
	if err != nil {
		s.Close()
		return nil, wrap("KVM_GET_VCPU_MMAP_SIZE", err)
	}
	s.mmapSize = n
	return s, nil
}

// Available reports whether /dev/kvm exists.
func Available() bool {
	_, err := os.Stat(DevicePath)
	return err == nil
}

// Close closes /dev/kvm. VMs created from it stay valid.
func (s *System) Close() error { return unix.Close(s.fd) }

// CheckExtension returns KVM_CHECK_EXTENSION for cap (0: absent).
func (s *System) CheckExtension(cap uint32) int {
	v, err := ioctlInt(s.fd, ioctlCheckExtension, uintptr(cap))
	if err != nil {
		return 0
	}
	return v
}

// CreateVM creates a VM (machine type 0).
func (s *System) CreateVM() (*VM, error) {
	fd, err := ioctlInt(s.fd, ioctlCreateVM, 0)
	if err != nil {
		return nil, wrap("KVM_CREATE_VM", err)
	}
	return &VM{fd: fd, sys: s}, nil
}

// VM is one KVM virtual machine.
type VM struct {
	fd  int
	sys *System
}

// Close closes the VM file descriptor.
func (vm *VM) Close() error { return unix.Close(vm.fd) }

// CheckExtension returns KVM_CHECK_EXTENSION on the VM fd (per-VM answers).
func (vm *VM) CheckExtension(cap uint32) int {
	v, err := ioctlInt(vm.fd, ioctlCheckExtension, uintptr(cap))
	if err != nil {
		return 0
	}
	return v
}

// SetUserMemoryRegion installs, moves or deletes (MemorySize 0) a slot.
func (vm *VM) SetUserMemoryRegion(r *UserspaceMemoryRegion) error {
	return wrap("KVM_SET_USER_MEMORY_REGION", ioctlPtr(vm.fd, ioctlSetUserMemoryRegion, ptr(r)))
}

// EnableCap enables a VM capability.
func (vm *VM) EnableCap(c *EnableCap) error {
	return wrap("KVM_ENABLE_CAP", ioctlPtr(vm.fd, ioctlEnableCap, ptr(c)))
}

// CreateVCPU creates vCPU id and maps its kvm_run page.
func (vm *VM) CreateVCPU(id int) (*VCPU, error) {
	fd, err := ioctlInt(vm.fd, ioctlCreateVCPU, uintptr(id))
	if err != nil {
		return nil, wrap("KVM_CREATE_VCPU", err)
	}
	run, err := unix.Mmap(fd, 0, vm.sys.mmapSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("kvm: mmap kvm_run of vCPU %d: %w", id, err)
	}
	v := &VCPU{fd: fd, id: id, runMap: run}
	v.run = runPointer(run)
	return v, nil
}

// SupportedCPUID returns KVM_GET_SUPPORTED_CPUID.
func (s *System) SupportedCPUID() ([]CPUIDEntry, error) {
	for n := 128; n <= 4096; n *= 2 {
		entries, err := getCPUID2(s.fd, ioctlGetSupportedCPUID, n)
		if errors.Is(err, unix.E2BIG) {
			continue
		}
		if err != nil {
			return nil, wrap("KVM_GET_SUPPORTED_CPUID", err)
		}
		return entries, nil
	}
	return nil, wrap("KVM_GET_SUPPORTED_CPUID", unix.E2BIG)
}

// MSRIndexList returns KVM_GET_MSR_INDEX_LIST.
func (s *System) MSRIndexList() ([]uint32, error) {
	l, err := getMSRIndexList(s.fd)
	return l, wrap("KVM_GET_MSR_INDEX_LIST", err)
}
