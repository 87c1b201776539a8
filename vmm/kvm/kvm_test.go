package kvm

import (
	"testing"

	"github.com/xenvmm/xenvmm/internal/testenv"
	"golang.org/x/sys/unix"
)

// newRealModeVM creates a VM with one 64 KiB slot at guest-physical 0
// holding code, and one vCPU in real mode starting at 0.
func newRealModeVM(t *testing.T, code []byte) (*VM, *VCPU, []byte) {
	t.Helper()
	testenv.RequireKVM(t)
	sys, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sys.Close() })
	vm, err := sys.CreateVM()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vm.Close() })
	mem, err := unix.Mmap(-1, 0, 0x10000, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(mem) })
	copy(mem, code)
	if err := vm.SetUserMemoryRegion(&UserspaceMemoryRegion{MemorySize: uint64(len(mem)), UserspaceAddr: addrOf(mem)}); err != nil {
		t.Fatal(err)
	}
	v, err := vm.CreateVCPU(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	var s Sregs
	if err := v.GetSregs(&s); err != nil {
		t.Fatal(err)
	}
	s.CS.Base, s.CS.Selector = 0, 0
	if err := v.SetSregs(&s); err != nil {
		t.Fatal(err)
	}
	if err := v.SetRegs(&Regs{RIP: 0, RFLAGS: 2, RAX: 0x1234}); err != nil {
		t.Fatal(err)
	}
	return vm, v, mem
}

// TestKVMRealModeIOAndHLT runs `out %al,$0x10; inc %ax; hlt` and checks
// the I/O exit's port and data, then the HLT exit and the registers.
func TestKVMRealModeIOAndHLT(t *testing.T) {
	code := []byte{0xe6, 0x10, 0x40, 0xf4} // out %al,$0x10; inc %ax; hlt
	_, v, _ := newRealModeVM(t, code)
	if err := v.Run(); err != nil {
		t.Fatal(err)
	}
	if v.ExitReason() != ExitIO {
		t.Fatalf("exit %s, want IO", ExitName(v.ExitReason()))
	}
	io, err := v.IO()
	if err != nil {
		t.Fatal(err)
	}
	if !io.Out || io.Port != 0x10 || io.Size != 1 || len(io.Data) != 1 || io.Data[0] != 0x34 {
		t.Fatalf("io exit = %+v, want out 0x34 to port 0x10", io)
	}
	if err := v.Run(); err != nil {
		t.Fatal(err)
	}
	if v.ExitReason() != ExitHLT {
		t.Fatalf("exit %s, want HLT", ExitName(v.ExitReason()))
	}
	var r Regs
	if err := v.GetRegs(&r); err != nil {
		t.Fatal(err)
	}
	if r.RAX&0xffff != 0x1235 || r.RIP != 4 {
		t.Fatalf("rax=%#x rip=%#x, want 0x1235 and 4", r.RAX, r.RIP)
	}
}

// TestKVMImmediateExit checks that immediate_exit makes KVM_RUN return
// EINTR without running the guest, as a vCPU kick relies on.
func TestKVMImmediateExit(t *testing.T) {
	_, v, _ := newRealModeVM(t, []byte{0xf4})
	v.SetImmediateExit(true)
	err := v.Run()
	if !IsInterrupted(err) {
		t.Fatalf("Run with immediate_exit = %v, want EINTR", err)
	}
	v.SetImmediateExit(false)
	if err := v.Run(); err != nil || v.ExitReason() != ExitHLT {
		t.Fatalf("Run = %v exit %s, want HLT", err, ExitName(v.ExitReason()))
	}
}

// TestKVMKickAfterClose: a kick that arrives after the vCPU is closed (a
// guest timer firing as its domain ends) is a no-op, not a write to the
// unmapped kvm_run page.
func TestKVMKickAfterClose(t *testing.T) {
	_, v, _ := newRealModeVM(t, []byte{0xf4})
	v.BindThread()
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if err := v.Kick(); err != nil {
		t.Fatalf("Kick after Close: %v", err)
	}
	if err := v.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
