package hole

import (
	"encoding/binary"
	"testing"

	"github.com/xenvmm/xenvmm/xenabi/guestmem"
)

func built(t *testing.T, frames uint64, ncpu int) (*Layout, *guestmem.Space, []byte) {
	t.Helper()
	const base = 1 << 30
	l, err := Plan(base, frames, ncpu)
	if err != nil {
		t.Fatal(err)
	}
	mem := make([]byte, l.Size())
	if err := l.Build(mem); err != nil {
		t.Fatal(err)
	}
	// A guest L4 at guest-physical 0 carrying the hole's slots.
	ram := make([]byte, guestmem.PageSize)
	for i, e := range l.L4Entries() {
		binary.LittleEndian.PutUint64(ram[(FirstSlot+i)*8:], e)
	}
	s, err := guestmem.NewSpace(guestmem.FromBytes(0, ram), guestmem.FromBytes(base, mem))
	if err != nil {
		t.Fatal(err)
	}
	return l, s, mem
}

func TestM2PIsIdentityAndUserReadOnly(t *testing.T) {
	_, s, _ := built(t, 70000, 1) // needs two M2P L1 tables
	for _, mfn := range []uint64{0, 1, 511, 512, 69999} {
		tr, err := s.Walk(0, M2PStart+mfn*8, guestmem.AccessRead, true)
		if err != nil {
			t.Fatalf("M2P[%d] not user-readable: %v", mfn, err)
		}
		v, _ := s.Read64(tr.GPA)
		if v != mfn {
			t.Fatalf("M2P[%d] = %d", mfn, v)
		}
		if _, err := s.Walk(0, M2PStart+mfn*8, guestmem.AccessWrite, true); err == nil {
			t.Fatalf("M2P[%d] is writable by the guest", mfn)
		}
	}
	if _, err := s.Walk(0, M2PStart+70000*8+guestmem.PageSize, guestmem.AccessRead, true); err == nil {
		t.Fatal("M2P mapped beyond the frames it covers")
	}
}

func TestVMMPagesAreSupervisorOnly(t *testing.T) {
	l, s, _ := built(t, 1024, 3)
	for i := 0; i < 3; i++ {
		c := l.CPU(i)
		for _, va := range []uint64{c.IDTBase, c.TSSBase, c.StackTop - 8, c.ISTTop - 8, c.GDTBase, c.GDTBase + ReservedGDTByte} {
			if _, err := s.Walk(0, va, guestmem.AccessRead, false); err != nil {
				t.Errorf("cpu %d: %#x not mapped for ring 0: %v", i, va, err)
			}
			if _, err := s.Walk(0, va, guestmem.AccessRead, true); err == nil {
				t.Errorf("cpu %d: %#x readable from CPL3", i, va)
			}
		}
		if _, err := s.Walk(0, c.StackTop, guestmem.AccessRead, false); err == nil {
			t.Errorf("cpu %d: no guard page above the ring-0 stack", i)
		}
		tr, err := s.Walk(0, c.SyscallEntry, guestmem.AccessFetch, false)
		if err != nil {
			t.Fatalf("syscall stub not executable: %v", err)
		}
		b, _ := s.Slice(tr.GPA, 3)
		if b[0] != 0xf4 {
			t.Fatalf("syscall stub starts with %#x, want hlt", b[0])
		}
		// The stack top's guest-physical address is what the VMM reads
		// frames from.
		tr, _ = s.Walk(0, c.StackTop-8, guestmem.AccessRead, false)
		if tr.GPA != c.StackTopGPA-8 {
			t.Errorf("StackTopGPA %#x disagrees with the walk %#x", c.StackTopGPA, tr.GPA+8)
		}
	}
}

func TestIDTGatesLeadToTheirStubs(t *testing.T) {
	l, s, _ := built(t, 16, 1)
	c := l.CPU(0)
	for v := 0; v < 256; v++ {
		tr, err := s.Walk(0, c.IDTBase+uint64(v)*16, guestmem.AccessRead, false)
		if err != nil {
			t.Fatal(err)
		}
		lo, _ := s.Read64(tr.GPA)
		hi, _ := s.Read64(tr.GPA + 8)
		target := lo&0xffff | (lo>>48&0xffff)<<16 | hi<<32
		if sel := lo >> 16 & 0xffff; sel != Ring0CS {
			t.Fatalf("vector %d selector %#x", v, sel)
		}
		if typ := lo >> 40 & 0xf; typ != 0xe || lo>>47&1 != 1 {
			t.Fatalf("vector %d is not a present interrupt gate", v)
		}
		wantDPL := uint64(0)
		if v == 3 || v == 4 || v == 0x80 || v == 0x82 {
			wantDPL = 3
		}
		if dpl := lo >> 45 & 3; dpl != wantDPL {
			t.Errorf("vector %d DPL %d, want %d", v, dpl, wantDPL)
		}
		kind, got := Classify(target + 1)
		if kind != ExitVector || got != v {
			t.Fatalf("stub of vector %d classifies as %v/%d", v, kind, got)
		}
	}
	if k, _ := Classify(c.SyscallEntry + 1); k != ExitSyscall {
		t.Fatalf("syscall stub classifies as %v", k)
	}
	if k, _ := Classify(c.SysenterEIP + 1); k != ExitSysenter {
		t.Fatalf("sysenter stub classifies as %v", k)
	}
	for _, rip := range []uint64{0, c.SyscallEntry, c.SyscallEntry + 2, 0xffffffff80000000} {
		if k, _ := Classify(rip); k != ExitNone {
			t.Errorf("Classify(%#x) = %v, want none", rip, k)
		}
	}
}

func TestReservedGDTAndTSS(t *testing.T) {
	l, s, mem := built(t, 16, 2)
	c := l.CPU(1)
	read := func(va uint64) uint64 {
		tr, err := s.Walk(0, va, guestmem.AccessRead, false)
		if err != nil {
			t.Fatal(err)
		}
		v, _ := s.Read64(tr.GPA)
		return v
	}
	for sel, want := range map[uint64]uint64{
		Ring0CS: descRing0CS64, Ring0DS: descRing0DS,
		FlatRing3CS64 &^ 7: descRing3CS64, FlatRing3DS &^ 7: descRing3DS, FlatRing3CS32 &^ 7: descRing3CS32,
	} {
		if got := read(c.GDTBase + sel); got != want {
			t.Errorf("GDT[%#x] = %#x, want %#x", sel, got, want)
		}
	}
	tss := read(c.GDTBase + TSSSelector)
	base := tss>>16&0xffffff | (tss>>56)<<24 | read(c.GDTBase+TSSSelector+8)<<32
	if base != c.TSSBase || tss&0xffff != 0x67 || tss>>40&0xff != 0x89 {
		t.Errorf("TSS descriptor %#x: base %#x, want %#x", tss, base, c.TSSBase)
	}
	if rsp0 := read(c.TSSBase + 4); rsp0 != c.StackTop {
		t.Errorf("TSS.RSP0 = %#x, want %#x", rsp0, c.StackTop)
	}
	// Guest GDT frames replace the zero page; unset ones stay null.
	if err := l.SetGDTFrames(mem, 1, []uint64{0}); err != nil {
		t.Fatal(err)
	}
	tr, err := s.Walk(0, c.GDTBase, guestmem.AccessWrite, false)
	if err != nil || tr.GPA != 0 {
		t.Fatalf("GDT frame 0 mapped at %#x (%v), want guest frame 0 writable", tr.GPA, err)
	}
	if err := l.SetGDTFrames(mem, 1, make([]uint64, 15)); err == nil {
		t.Fatal("15 GDT frames accepted")
	}
}

func TestPlanLimits(t *testing.T) {
	if _, err := Plan(0, 16, 0); err == nil {
		t.Error("0 vCPUs accepted")
	}
	if _, err := Plan(0, 16, MaxVCPUs+1); err == nil {
		t.Error("too many vCPUs accepted")
	}
	if _, err := Plan(123, 16, 1); err == nil {
		t.Error("unaligned base accepted")
	}
	if _, err := Plan(0, (M2PEnd-M2PStart)/8+1, 1); err == nil {
		t.Error("M2P larger than its slot accepted")
	}
	l, err := Plan(0, 16, 1)
	if err != nil {
		t.Fatal(err)
	}
	mem := make([]byte, l.Size())
	l.Build(mem)
	if err := l.M2PSet(mem, 16, 1); err != ErrM2PRange {
		t.Errorf("M2PSet out of range: %v", err)
	}
	l.M2PSet(mem, 3, 42)
	if v, _ := l.M2PGet(mem, 3); v != 42 {
		t.Errorf("M2PGet = %d", v)
	}
}
