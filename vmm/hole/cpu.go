package hole

import "github.com/xenvmm/xenvmm/vmm/kvm"

// Control-register and MSR values of a PV vCPU (design/pv-on-kvm.md §2).
const (
	CR0 = 0x80050033 // PE MP ET NE WP AM PG
	// CR4: PAE, OSFXSR, OSXMMEXCPT.
	CR4 = 1<<5 | 1<<9 | 1<<10
	// EFER: SCE, LME, LMA, NXE.
	EFER = 1<<0 | 1<<8 | 1<<10 | 1<<11

	MSRSTAR         = 0xc0000081
	MSRLSTAR        = 0xc0000082
	MSRCSTAR        = 0xc0000083
	MSRSyscallMask  = 0xc0000084
	MSRFSBase       = 0xc0000100
	MSRGSBase       = 0xc0000101
	MSRKernelGSBase = 0xc0000102
	MSRSysenterCS   = 0x174
	MSRSysenterESP  = 0x175
	MSRSysenterEIP  = 0x176

	// SyscallMask clears TF, IF, DF, NT and AC on SYSCALL.
	SyscallMask = 1<<8 | 1<<9 | 1<<10 | 1<<14 | 1<<18
)

// Segment values with their hidden parts, as KVM_SET_SREGS takes them.
var (
	// UserCS64 is FLAT_RING3_CS64: 64-bit code, DPL 3.
	UserCS64 = kvm.Segment{Selector: FlatRing3CS64, Limit: 0xffffffff, Type: 11, Present: 1, DPL: 3, S: 1, L: 1, G: 1}
	// UserCS32 is FLAT_RING3_CS32: compatibility-mode code, DPL 3.
	UserCS32 = kvm.Segment{Selector: FlatRing3CS32, Limit: 0xffffffff, Type: 11, Present: 1, DPL: 3, S: 1, DB: 1, G: 1}
	// UserSS is FLAT_RING3_SS64 (= DS32): data, DPL 3.
	UserSS = kvm.Segment{Selector: FlatRing3DS, Limit: 0xffffffff, Type: 3, Present: 1, DPL: 3, S: 1, DB: 1, G: 1}
	// NullData is a null data segment (DS/ES/FS/GS in 64-bit mode).
	NullData = kvm.Segment{Unusable: 1}
)

// Sregs returns the special registers for vCPU c running guest code at
// CPL3 with page tables at cr3.
func (c CPU) Sregs(cr3 uint64) kvm.Sregs {
	return kvm.Sregs{
		CS: UserCS64, SS: UserSS,
		DS: NullData, ES: NullData, FS: NullData, GS: NullData,
		TR:   kvm.Segment{Selector: TSSSelector, Base: c.TSSBase, Limit: 0x67, Type: 11, Present: 1},
		LDT:  kvm.Segment{Type: 2, Unusable: 1},
		GDT:  kvm.DTable{Base: c.GDTBase, Limit: GDTLimit},
		IDT:  kvm.DTable{Base: c.IDTBase, Limit: 256*16 - 1},
		CR0:  CR0,
		CR3:  cr3,
		CR4:  CR4,
		EFER: EFER,
	}
}

// MSRs returns the system-call MSRs of vCPU c: SYSCALL enters the
// ring-0 stub with the VMM's selectors; SYSRET's selector base is the
// flat ring-3 group (never used: the VMM returns to CPL3 by setting
// registers).
func (c CPU) MSRs() []kvm.MSREntry {
	return []kvm.MSREntry{
		{Index: MSRSTAR, Data: uint64(Ring0CS)<<32 | uint64(FlatRing3CS32&^3)<<48},
		{Index: MSRLSTAR, Data: c.SyscallEntry},
		{Index: MSRCSTAR, Data: c.CSTAREntry},
		{Index: MSRSyscallMask, Data: SyscallMask},
		{Index: MSRSysenterCS, Data: Ring0CS},
		{Index: MSRSysenterESP, Data: c.StackTop},
		{Index: MSRSysenterEIP, Data: c.SysenterEIP},
	}
}

// Ring-0 segments of the VMM's own code (the chain runs with them).
var (
	Ring0CSSeg = kvm.Segment{Selector: Ring0CS, Limit: 0xffffffff, Type: 11, Present: 1, S: 1, L: 1, G: 1}
	Ring0SSSeg = kvm.Segment{Selector: Ring0DS, Limit: 0xffffffff, Type: 3, Present: 1, S: 1, DB: 1, G: 1}
)

// Ring0Sregs is Sregs with ring-0 CS/SS: the state in which the vCPU
// starts its first return chain.
func (c CPU) Ring0Sregs(cr3 uint64) kvm.Sregs {
	s := c.Sregs(cr3)
	s.CS, s.SS = Ring0CSSeg, Ring0SSSeg
	return s
}
