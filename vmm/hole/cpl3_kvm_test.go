package hole

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/xenvmm/xenvmm/internal/testenv"
	"github.com/xenvmm/xenvmm/vmm/kvm"
	"github.com/xenvmm/xenvmm/xenabi/guestmem"
	"golang.org/x/arch/x86/x86asm"
)

// The CPL3 tests run hand-assembled code at CPL3 in a long-mode vCPU
// whose only ring-0 code is this package's hlt stubs, and check that
// every way into ring 0 exits to Go with the state the PV CPU model
// needs (design/pv-on-kvm.md §2).

const (
	ramSize  = 4 << 20
	holeBase = ramSize
	l4GPA    = 0x1000
	codeGPA  = 0x10000
	stackGPA = 0x11000
	codeVA   = 0x400000
	stackVA  = 0x600000
	unmapped = 0x700000
	userRSP  = stackVA + 0x1000 - 0x10
)

type cpl3VM struct {
	t      *testing.T
	vcpu   *kvm.VCPU
	layout *Layout
	space  *guestmem.Space
	cpu    CPU
}

// newCPL3VM builds the page tables, hole and vCPU, with code at codeVA
// (user, read-only, executable) and a user stack page at stackVA.
func newCPL3VM(t *testing.T, code []byte) *cpl3VM {
	t.Helper()
	testenv.RequireKVM(t)
	sys, err := kvm.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sys.Close() })
	vm, err := sys.CreateVM()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vm.Close() })

	layout, err := Plan(holeBase, ramSize/guestmem.PageSize, 1)
	if err != nil {
		t.Fatal(err)
	}
	ram, err := guestmem.Map(0, ramSize)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ram.Close() })
	holeMem, err := guestmem.Map(holeBase, layout.Size())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holeMem.Close() })
	if err := layout.Build(holeMem.Bytes()); err != nil {
		t.Fatal(err)
	}
	space, err := guestmem.NewSpace(ram, holeMem)
	if err != nil {
		t.Fatal(err)
	}
	for slot, r := range []*guestmem.Region{ram, holeMem} {
		if err := vm.SetUserMemoryRegion(&kvm.UserspaceMemoryRegion{
			Slot: uint32(slot), GuestPhysAddr: r.Base(), MemorySize: r.Size(), UserspaceAddr: kvm.AddrOf(r.Bytes()),
		}); err != nil {
			t.Fatal(err)
		}
	}

	// Guest page tables: L4 0x1000, L3 0x2000, L2 0x3000, L1 0x4000, all
	// user (a PV kernel runs at CPL3, so Xen sets _PAGE_USER everywhere).
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	up := uint64(guestmem.PTEPresent | guestmem.PTEWrite | guestmem.PTEUser)
	must(space.Write64(l4GPA, 0x2000|up))
	must(space.Write64(0x2000, 0x3000|up))
	must(space.Write64(0x3000+2*8, 0x4000|up)) // 0x400000-0x5fffff
	must(space.Write64(0x3000+3*8, 0x5000|up)) // 0x600000-0x7fffff
	must(space.Write64(0x4000, codeGPA|guestmem.PTEPresent|guestmem.PTEUser))
	must(space.Write64(0x5000, stackGPA|up|guestmem.PTENX))
	for i, e := range layout.L4Entries() {
		must(space.Write64(l4GPA+uint64(FirstSlot+i)*8, e))
	}
	must(space.Write(codeGPA, code))

	v, err := vm.CreateVCPU(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	c := layout.CPU(0)
	sregs := c.Sregs(l4GPA)
	must(v.SetSregs(&sregs))
	must(v.SetMSRs(c.MSRs()))
	must(v.SetRegs(&kvm.Regs{RIP: codeVA, RSP: userRSP, RFLAGS: 0x202}))
	return &cpl3VM{t: t, vcpu: v, layout: layout, space: space, cpu: c}
}

// frame is what the CPU pushed on the ring-0 stack when entering through
// an IDT gate from CPL3.
type frame struct {
	ErrorCode, RIP, CS, RFLAGS, RSP, SS uint64
}

type exit struct {
	kind   Exit
	vector int
	regs   kvm.Regs
	sregs  kvm.Sregs
	frame  frame
}

// run enters the guest until the next stub exit and decodes it.
func (m *cpl3VM) run() exit {
	m.t.Helper()
	if err := m.vcpu.Run(); err != nil {
		m.t.Fatal(err)
	}
	var e exit
	if r := m.vcpu.ExitReason(); r != kvm.ExitHLT {
		m.t.Fatalf("exit %s, want HLT from a stub", kvm.ExitName(r))
	}
	if err := m.vcpu.GetRegs(&e.regs); err != nil {
		m.t.Fatal(err)
	}
	if err := m.vcpu.GetSregs(&e.sregs); err != nil {
		m.t.Fatal(err)
	}
	e.kind, e.vector = Classify(e.regs.RIP)
	if e.kind == ExitVector {
		n := uint64(5)
		if HasErrorCode(e.vector) {
			n = 6
		}
		if e.regs.RSP != m.cpu.StackTop-n*8 {
			m.t.Fatalf("vector %d: ring-0 RSP %#x, want %#x", e.vector, e.regs.RSP, m.cpu.StackTop-n*8)
		}
		raw := make([]byte, n*8)
		if err := m.space.Read(m.cpu.StackTopGPA-n*8, raw); err != nil {
			m.t.Fatal(err)
		}
		w := func(i uint64) uint64 { return binary.LittleEndian.Uint64(raw[i*8:]) }
		i := uint64(0)
		if n == 6 {
			e.frame.ErrorCode = w(0)
			i = 1
		}
		e.frame.RIP, e.frame.CS, e.frame.RFLAGS, e.frame.RSP, e.frame.SS = w(i), w(i+1), w(i+2), w(i+3), w(i+4)
	}
	return e
}

// resume returns the vCPU to CPL3 at rip with rsp and rflags, as the PV
// CPU model does after handling an exit: new CS/SS with their hidden
// parts, and the registers.
func (m *cpl3VM) resume(regs kvm.Regs, rip, rsp, rflags uint64) {
	m.t.Helper()
	var s kvm.Sregs
	if err := m.vcpu.GetSregs(&s); err != nil {
		m.t.Fatal(err)
	}
	s.CS, s.SS = UserCS64, UserSS
	if err := m.vcpu.SetSregs(&s); err != nil {
		m.t.Fatal(err)
	}
	regs.RIP, regs.RSP, regs.RFLAGS = rip, rsp, rflags
	if err := m.vcpu.SetRegs(&regs); err != nil {
		m.t.Fatal(err)
	}
}

// insnLen decodes the instruction at guest-virtual va.
func (m *cpl3VM) insnLen(va uint64) int {
	m.t.Helper()
	b := make([]byte, 15)
	if err := m.space.CopyFromVirt(l4GPA, va, b[:min(15, int(0x1000-va%0x1000))], true); err != nil {
		m.t.Fatal(err)
	}
	inst, err := x86asm.Decode(b, 64)
	if err != nil {
		m.t.Fatalf("decode at %#x: %v", va, err)
	}
	return inst.Len
}

func (m *cpl3VM) checkUserFrame(e exit, wantRIP uint64) {
	m.t.Helper()
	f := e.frame
	if f.RIP != wantRIP || f.CS != FlatRing3CS64 || f.SS != FlatRing3DS || f.RSP != userRSP || f.RFLAGS&0x200 == 0 {
		m.t.Fatalf("vector %d frame %+v, want rip %#x cs %#x ss %#x rsp %#x IF=1", e.vector, f, wantRIP, FlatRing3CS64, FlatRing3DS, userRSP)
	}
	if e.sregs.CS.Selector != Ring0CS || e.sregs.CS.DPL != 0 {
		m.t.Fatalf("stub ran with CS %#x DPL %d, want ring 0", e.sregs.CS.Selector, e.sregs.CS.DPL)
	}
}

// finish expects the code's closing `mov $0x99,%eax; syscall`.
func (m *cpl3VM) finish() exit {
	m.t.Helper()
	e := m.run()
	if e.kind != ExitSyscall || e.regs.RAX != 0x99 {
		m.t.Fatalf("after resuming: exit %v rax %#x, want the final syscall with rax 0x99", e.kind, e.regs.RAX)
	}
	return e
}

var finalSyscall = []byte{0xb8, 0x99, 0, 0, 0, 0x0f, 0x05} // mov $0x99,%eax; syscall

func code(parts ...[]byte) []byte {
	var c []byte
	for _, p := range parts {
		c = append(c, p...)
	}
	return c
}

// TestKVMCPL3Syscall: SYSCALL at CPL3 reaches the ring-0 stub; RCX and R11
// hold the return RIP and RFLAGS; Go answers in RAX and returns to CPL3.
func TestKVMCPL3Syscall(t *testing.T) {
	m := newCPL3VM(t, code(
		[]byte{0xb8, 0x11, 0, 0, 0}, // mov $0x11,%eax
		[]byte{0x0f, 0x05},          // syscall
		[]byte{0x48, 0x89, 0xc3},    // mov %rax,%rbx
		finalSyscall))
	e := m.run()
	if e.kind != ExitSyscall {
		t.Fatalf("exit %v, want syscall", e.kind)
	}
	if e.regs.RAX != 0x11 || e.regs.RCX != codeVA+7 || e.regs.R11&0x200 == 0 || e.regs.RSP != userRSP {
		t.Fatalf("at the syscall stub: rax %#x rcx %#x r11 %#x rsp %#x", e.regs.RAX, e.regs.RCX, e.regs.R11, e.regs.RSP)
	}
	if e.sregs.CS.Selector != Ring0CS || e.sregs.SS.Selector != Ring0DS {
		t.Fatalf("syscall loaded CS %#x SS %#x, want %#x %#x from STAR", e.sregs.CS.Selector, e.sregs.SS.Selector, Ring0CS, Ring0DS)
	}
	if e.regs.RFLAGS&0x200 != 0 {
		t.Fatalf("SFMASK did not clear IF: rflags %#x", e.regs.RFLAGS)
	}
	regs := e.regs
	regs.RAX = 0x22
	m.resume(regs, e.regs.RCX, e.regs.RSP, e.regs.R11)
	f := m.finish()
	if f.regs.RBX != 0x22 {
		t.Fatalf("rbx = %#x after return, want 0x22 set by Go", f.regs.RBX)
	}
	if f.sregs.CS.Selector != Ring0CS {
		t.Fatal("second syscall did not reach ring 0")
	}
}

// TestKVMCPL3InvalidOpcode: ud2 exits through vector 6 with a frame
// naming the faulting instruction; Go skips it and the code continues.
func TestKVMCPL3InvalidOpcode(t *testing.T) {
	m := newCPL3VM(t, code([]byte{0x0f, 0x0b}, finalSyscall))
	e := m.run()
	if e.kind != ExitVector || e.vector != 6 {
		t.Fatalf("exit %v vector %d, want #UD", e.kind, e.vector)
	}
	m.checkUserFrame(e, codeVA)
	m.resume(e.regs, e.frame.RIP+uint64(m.insnLen(e.frame.RIP)), e.frame.RSP, e.frame.RFLAGS)
	m.finish()
}

// TestKVMCPL3Breakpoint: int3 (DPL 3 gate) exits through vector 3 with
// the frame's RIP after the instruction.
func TestKVMCPL3Breakpoint(t *testing.T) {
	m := newCPL3VM(t, code([]byte{0x90, 0xcc}, finalSyscall))
	e := m.run()
	if e.kind != ExitVector || e.vector != 3 {
		t.Fatalf("exit %v vector %d, want #BP", e.kind, e.vector)
	}
	m.checkUserFrame(e, codeVA+2)
	m.resume(e.regs, e.frame.RIP, e.frame.RSP, e.frame.RFLAGS)
	m.finish()
}

// TestKVMCPL3PageFault: a read of an unmapped address and a write to a
// read-only page exit through vector 14 with CR2 and the error code the
// PV model reflects to the guest.
func TestKVMCPL3PageFault(t *testing.T) {
	m := newCPL3VM(t, code(
		[]byte{0x48, 0x8b, 0x04, 0x25, 0x00, 0x00, 0x70, 0x00}, // mov 0x700000,%rax
		[]byte{0x48, 0x89, 0x04, 0x25, 0x00, 0x00, 0x40, 0x00}, // mov %rax,0x400000
		finalSyscall))
	for i, want := range []struct {
		rip, cr2, code uint64
	}{
		{codeVA, unmapped, guestmem.PFErrUser},
		{codeVA + 8, codeVA, guestmem.PFErrUser | guestmem.PFErrWrite | guestmem.PFErrPresent},
	} {
		e := m.run()
		if e.kind != ExitVector || e.vector != 14 {
			t.Fatalf("fault %d: exit %v vector %d, want #PF", i, e.kind, e.vector)
		}
		m.checkUserFrame(e, want.rip)
		if e.sregs.CR2 != want.cr2 || e.frame.ErrorCode != want.code {
			t.Fatalf("fault %d: cr2 %#x error %#x, want %#x %#x", i, e.sregs.CR2, e.frame.ErrorCode, want.cr2, want.code)
		}
		m.resume(e.regs, e.frame.RIP+uint64(m.insnLen(e.frame.RIP)), e.frame.RSP, e.frame.RFLAGS)
	}
	m.finish()
}

// TestKVMCPL3GeneralProtection: privileged instructions at CPL3 (hlt,
// mov %cr3, int $0x81 through a DPL-0 gate) raise #GP with the error code
// Xen's emulation starts from.
func TestKVMCPL3GeneralProtection(t *testing.T) {
	m := newCPL3VM(t, code(
		[]byte{0xf4},             // hlt
		[]byte{0x0f, 0x20, 0xd8}, // mov %cr3,%rax
		[]byte{0xcd, 0x81},       // int $0x81
		finalSyscall))
	for _, want := range []struct {
		rip, code uint64
		name      string
	}{
		{codeVA, 0, "hlt"},
		{codeVA + 1, 0, "mov %cr3"},
		{codeVA + 4, 0x81<<3 | 2, "int $0x81"}, // IDT vector, EXT=0, IDT bit set
	} {
		e := m.run()
		if e.kind != ExitVector || e.vector != 13 {
			t.Fatalf("%s: exit %v vector %d, want #GP", want.name, e.kind, e.vector)
		}
		m.checkUserFrame(e, want.rip)
		// Hardware reports an IDT vector v as v<<3|2; QEMU TCG (the
		// sandbox's CPU) reports v<<4|2. The PV model decodes the
		// instruction instead of trusting this field.
		if e.frame.ErrorCode != want.code && !(want.code != 0 && e.frame.ErrorCode == (want.code>>3)<<4|2) {
			t.Fatalf("%s: error code %#x, want %#x", want.name, e.frame.ErrorCode, want.code)
		}
		m.resume(e.regs, e.frame.RIP+uint64(m.insnLen(e.frame.RIP)), e.frame.RSP, e.frame.RFLAGS)
	}
	m.finish()
}

// TestKVMCPL3RoundTrips measures nothing but checks that many
// CPL3→ring 0→Go→CPL3 round trips keep the state consistent.
func TestKVMCPL3RoundTrips(t *testing.T) {
	// loop: inc %rbx; syscall; jmp loop
	m := newCPL3VM(t, []byte{0x48, 0xff, 0xc3, 0x0f, 0x05, 0xeb, 0xf9})
	for i := 1; i <= 200; i++ {
		e := m.run()
		if e.kind != ExitSyscall || e.regs.RBX != uint64(i) {
			t.Fatal(fmt.Sprintf("round trip %d: exit %v rbx %d", i, e.kind, e.regs.RBX))
		}
		m.resume(e.regs, e.regs.RCX, e.regs.RSP, e.regs.R11)
	}
}
