// Package hole lays out what xenvmm maps into the hypervisor hole of every
// 64-bit PV guest address space: L4 slots 256–271
// (HYPERVISOR_VIRT_START..HYPERVISOR_VIRT_END of
// xen/include/public/arch-x86/xen-x86_64.h), which a PV guest may not map
// itself. As on Xen, slot 256 holds the read-only machine-to-physical table
// (M2P) at MACH2PHYS_VIRT_START. Slot 260 holds the VMM's ring-0 minimum:
// one IDT whose gates all lead to `hlt` stubs (one per vector, so a
// KVM_EXIT_HLT's RIP names the vector), the SYSCALL entry stub, and per
// vCPU a GDT window (the guest's frames from set_gdt, then Xen's reserved
// page with the flat selectors and the TSS descriptor), a TSS and ring-0
// stacks. Guest kernel and user code run at CPL3; everything that enters
// ring 0 halts at once and is handled in Go (design/pv-on-kvm.md §2).
//
// The hole's pages live in a guest-physical region above guest RAM that
// the caller maps; this package only computes the layout and writes the
// tables into that region's bytes.
package hole

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/xenvmm/xenvmm/xenabi/guestmem"
)

// Virtual layout (xen-x86_64.h and this package's choices).
const (
	// VirtStart and VirtEnd bound the hole (L4 slots 256–271).
	VirtStart = 0xffff800000000000
	VirtEnd   = 0xffff880000000000
	// FirstSlot and LastSlot are the L4 slots of the hole.
	FirstSlot = 256
	LastSlot  = 271
	// M2PStart is MACH2PHYS_VIRT_START, M2PEnd MACH2PHYS_VIRT_END.
	M2PStart = 0xffff800000000000
	M2PEnd   = 0xffff804000000000
	// m2pSlot and vmmSlot are the L4 slots this package fills.
	m2pSlot = 256
	vmmSlot = 260
	// VMMStart is where the IDT, stubs and per-vCPU areas live (slot 260).
	VMMStart = 0xffff820000000000

	idtVA  = VMMStart               // one page
	stubVA = VMMStart + 0x1000      // one page of hlt stubs
	cpuVA  = VMMStart + 0x200000    // per-vCPU windows from 2 MiB up
	cpuWin = 64 * guestmem.PageSize // one vCPU's window

	// Offsets inside a vCPU window (pages).
	gdtPages       = 16 // GDT virtual area; 0..13 guest, 14 reserved
	guestGDTPages  = 14 // FIRST_RESERVED_GDT_PAGE
	tssPage        = 16
	stackPage      = 18 // ring-0 stack (guard pages at 17 and 19)
	istPage        = 20 // IST1 stack for #DF, NMI, #MC (guard at 21)
	ldtPage        = 32 // LDT window: 16 pages, 8192 descriptors
	ldtPages       = 16
	stubStride     = 8
	syscallStubOff = 256 * stubStride
	sysenterOff    = syscallStubOff + stubStride
	// MaxVCPUs bounds the per-vCPU windows this layout places.
	MaxVCPUs = 128
)

// Selectors of the reserved GDT page (FIRST_RESERVED_GDT_BYTE = 0xe000).
const (
	ReservedGDTByte = 0xe000
	// Ring0CS and Ring0DS are the VMM's own (SYSCALL loads them from STAR).
	Ring0CS = 0xe008
	Ring0DS = 0xe010
	// FlatRing3CS32, FlatRing3DS and FlatRing3CS64 are Xen's FLAT_RING3_*
	// selectors (xen-x86_64.h), with RPL 3.
	FlatRing3CS32 = 0xe023
	FlatRing3DS   = 0xe02b
	FlatRing3CS64 = 0xe033
	// TSSSelector is the TSS descriptor (16 bytes).
	TSSSelector = 0xe040
	// LDTSelector is the LDT descriptor (16 bytes) for the guest's LDT
	// (MMUEXT_SET_LDT), mapped at the vCPU's LDT window.
	LDTSelector = 0xe050
	// GDTLimit covers the guest's 14 pages and the reserved page.
	GDTLimit = (guestGDTPages+1)*guestmem.PageSize - 1
)

// Descriptor values (Intel SDM vol. 3 §3.4.5, §7.2.3).
const (
	descRing0CS64 = 0x00af9b000000ffff
	descRing0DS   = 0x00cf93000000ffff
	descRing3CS32 = 0x00cffb000000ffff
	descRing3DS   = 0x00cff3000000ffff
	descRing3CS64 = 0x00affb000000ffff
)

// Vectors whose IDT gate has DPL 3, so that `int n` at CPL3 reaches its
// stub as a software interrupt rather than #GP: int3, into, the 32-bit
// system call vector and the 32-bit PV hypercall vector.
var userVectors = map[int]bool{3: true, 4: true, 0x80: true, 0x82: true}

// ErrorCodeVectors are the exceptions for which the CPU pushes an error
// code (Intel SDM vol. 3 table 6-1).
func HasErrorCode(vector int) bool {
	switch vector {
	case 8, 10, 11, 12, 13, 14, 17, 21, 29, 30:
		return true
	}
	return false
}

// Layout is the hole of one domain: where each table lives in the hole's
// guest-physical region and in the hole's virtual range.
type Layout struct {
	base    uint64 // guest-physical address of the hole region
	pages   uint64 // size of the region in pages
	nvcpus  int
	m2pN    uint64 // M2P entries (machine frames covered)
	m2pPFN0 uint64 // first M2P data page (region-relative page index)
	l4m2p   uint64 // region-relative page of the slot-256 L3
	l4vmm   uint64 // region-relative page of the slot-260 L3
	idtPg   uint64
	stubPg  uint64
	zeroPg  uint64
	cpuPg0  uint64 // first per-vCPU page; each vCPU has cpuPages
	vmmL1s  []uint64
}

const cpuPages = 4 // reserved GDT page, TSS, stack, IST stack

// Plan computes the layout for a domain with maxFrames machine frames
// (the M2P covers them) and nvcpus vCPUs, placed at guest-physical base.
func Plan(base, maxFrames uint64, nvcpus int) (*Layout, error) {
	if base%guestmem.PageSize != 0 {
		return nil, fmt.Errorf("hole: base %#x not page-aligned", base)
	}
	if nvcpus < 1 || nvcpus > MaxVCPUs {
		return nil, fmt.Errorf("hole: %d vCPUs, want 1..%d", nvcpus, MaxVCPUs)
	}
	if maxFrames == 0 || maxFrames*8 > M2PEnd-M2PStart {
		return nil, fmt.Errorf("hole: %d frames do not fit the M2P", maxFrames)
	}
	l := &Layout{base: base, nvcpus: nvcpus, m2pN: maxFrames}
	next := uint64(0)
	alloc := func(n uint64) uint64 { p := next; next += n; return p }

	m2pPages := ceilDiv(maxFrames*8, guestmem.PageSize)
	m2pL1 := ceilDiv(m2pPages, 512)
	m2pL2 := ceilDiv(m2pL1, 512)
	l.l4m2p = alloc(1)
	alloc(m2pL2) // L2s follow the L3
	alloc(m2pL1) // L1s follow the L2s
	l.m2pPFN0 = alloc(m2pPages)

	l.l4vmm = alloc(1)
	alloc(1) // the slot's single L2 (covers 1 GiB)
	vmmSpan := uint64(cpuVA-VMMStart) + uint64(nvcpus)*cpuWin
	nL1 := ceilDiv(vmmSpan, 2<<20)
	for i := uint64(0); i < nL1; i++ {
		l.vmmL1s = append(l.vmmL1s, alloc(1))
	}
	l.idtPg = alloc(1)
	l.stubPg = alloc(1)
	l.zeroPg = alloc(1)
	l.cpuPg0 = alloc(uint64(nvcpus) * cpuPages)
	l.pages = next
	return l, nil
}

func ceilDiv(a, b uint64) uint64 { return (a + b - 1) / b }

// Base is the guest-physical address of the hole region.
func (l *Layout) Base() uint64 { return l.base }

// Size is the hole region's size in bytes.
func (l *Layout) Size() uint64 { return l.pages * guestmem.PageSize }

func (l *Layout) gpa(page uint64) uint64 { return l.base + page*guestmem.PageSize }

// CPU describes the ring-0 state of one vCPU.
type CPU struct {
	GDTBase      uint64 // virtual address of the GDT window
	IDTBase      uint64
	TSSBase      uint64
	StackTop     uint64 // TSS.RSP0
	StackTopGPA  uint64 // guest-physical address of StackTop
	ISTTop       uint64
	SyscallEntry uint64 // MSR_LSTAR
	CSTAREntry   uint64 // MSR_CSTAR (32-bit SYSCALL)
	SysenterEIP  uint64
	LDTBase      uint64 // virtual address of the LDT window
	gdtWindow    uint64 // virtual address of the reserved GDT page
	reservedGPA  uint64
}

// CPU returns the layout of vCPU i.
func (l *Layout) CPU(i int) CPU {
	win := uint64(cpuVA) + uint64(i)*cpuWin
	pg := l.cpuPg0 + uint64(i)*cpuPages
	return CPU{
		GDTBase:      win,
		IDTBase:      idtVA,
		TSSBase:      win + tssPage*guestmem.PageSize,
		StackTop:     win + (stackPage+1)*guestmem.PageSize,
		StackTopGPA:  l.gpa(pg+2) + guestmem.PageSize,
		ISTTop:       win + (istPage+1)*guestmem.PageSize,
		SyscallEntry: stubVA + syscallStubOff,
		CSTAREntry:   stubVA + syscallStubOff,
		SysenterEIP:  stubVA + sysenterOff,
		LDTBase:      win + ldtPage*guestmem.PageSize,
		gdtWindow:    win + guestGDTPages*guestmem.PageSize,
		reservedGPA:  l.gpa(pg),
	}
}

// Exit classifies a KVM_EXIT_HLT at rip (the address after the hlt).
type Exit int

const (
	// ExitNone: rip is not one of the hole's stubs (the guest executed
	// hlt itself — impossible at CPL3 — or something is badly wrong).
	ExitNone Exit = iota
	// ExitVector: an exception or software interrupt through the IDT.
	ExitVector
	// ExitSyscall: the SYSCALL instruction.
	ExitSyscall
	// ExitSysenter: the SYSENTER instruction.
	ExitSysenter
)

// Classify tells which stub a KVM_EXIT_HLT at rip came from.
func Classify(rip uint64) (Exit, int) {
	if rip < stubVA+1 || rip > stubVA+guestmem.PageSize {
		return ExitNone, 0
	}
	off := rip - 1 - stubVA
	if off%stubStride != 0 {
		return ExitNone, 0
	}
	switch n := int(off / stubStride); {
	case n < 256:
		return ExitVector, n
	case off == syscallStubOff:
		return ExitSyscall, 0
	case off == sysenterOff:
		return ExitSysenter, 0
	}
	return ExitNone, 0
}

// L4Entries returns the entries of L4 slots 256–271 that every guest L4
// must carry (zero for slots left empty).
func (l *Layout) L4Entries() [LastSlot - FirstSlot + 1]uint64 {
	var e [LastSlot - FirstSlot + 1]uint64
	// The M2P is readable by the guest (it runs at CPL3): User, not Write
	// at the leaves. Upper levels grant Write; leaves decide.
	e[m2pSlot-FirstSlot] = l.gpa(l.l4m2p) | guestmem.PTEPresent | guestmem.PTEWrite | guestmem.PTEUser
	e[vmmSlot-FirstSlot] = l.gpa(l.l4vmm) | guestmem.PTEPresent | guestmem.PTEWrite
	return e
}

// ErrM2PRange is returned for a machine frame the M2P does not cover.
var ErrM2PRange = errors.New("hole: machine frame outside the M2P")

// Build writes the hole's tables into mem, the bytes of the hole region
// (Size() bytes, zeroed). The M2P starts as the identity (entry i = i).
func (l *Layout) Build(mem []byte) error {
	if uint64(len(mem)) < l.Size() {
		return fmt.Errorf("hole: region of %d bytes, need %d", len(mem), l.Size())
	}
	page := func(p uint64) []byte { return mem[p*guestmem.PageSize : (p+1)*guestmem.PageSize] }
	put := func(p, idx, v uint64) { binary.LittleEndian.PutUint64(page(p)[idx*8:], v) }

	// Slot 256: the M2P, read-only to the guest, not executable.
	m2pPages := ceilDiv(l.m2pN*8, guestmem.PageSize)
	m2pL1 := ceilDiv(m2pPages, 512)
	m2pL2 := ceilDiv(m2pL1, 512)
	l2First := l.l4m2p + 1
	l1First := l2First + m2pL2
	upper := uint64(guestmem.PTEPresent | guestmem.PTEWrite | guestmem.PTEUser)
	for i := uint64(0); i < m2pL2; i++ {
		put(l.l4m2p, i, l.gpa(l2First+i)|upper)
	}
	for i := uint64(0); i < m2pL1; i++ {
		put(l2First+i/512, i%512, l.gpa(l1First+i)|upper)
	}
	for i := uint64(0); i < m2pPages; i++ {
		put(l1First+i/512, i%512, l.gpa(l.m2pPFN0+i)|guestmem.PTEPresent|guestmem.PTEUser|guestmem.PTENX)
	}
	for mfn := uint64(0); mfn < l.m2pN; mfn++ {
		binary.LittleEndian.PutUint64(mem[l.m2pPFN0*guestmem.PageSize+mfn*8:], mfn)
	}

	// Slot 260: the VMM's pages, supervisor-only.
	sup := uint64(guestmem.PTEPresent | guestmem.PTEWrite)
	l2 := l.l4vmm + 1
	put(l.l4vmm, 0, l.gpa(l2)|sup)
	for i, l1 := range l.vmmL1s {
		put(l2, uint64(i), l.gpa(l1)|sup)
	}
	mapVA := func(va, gpa, flags uint64) {
		off := va - VMMStart
		l1 := l.vmmL1s[off>>21]
		put(l1, (off>>12)&511, gpa|flags)
	}
	nx := uint64(guestmem.PTENX)
	mapVA(idtVA, l.gpa(l.idtPg), sup|nx)
	mapVA(stubVA, l.gpa(l.stubPg), guestmem.PTEPresent) // read + execute
	for i := 0; i < l.nvcpus; i++ {
		c := l.CPU(i)
		pg := l.cpuPg0 + uint64(i)*cpuPages
		for g := uint64(0); g < guestGDTPages; g++ {
			mapVA(c.GDTBase+g*guestmem.PageSize, l.gpa(l.zeroPg), guestmem.PTEPresent|nx)
		}
		mapVA(c.gdtWindow, l.gpa(pg), sup|nx)
		mapVA(c.TSSBase, l.gpa(pg+1), sup|nx)
		mapVA(c.StackTop-guestmem.PageSize, l.gpa(pg+2), sup|nx)
		mapVA(c.ISTTop-guestmem.PageSize, l.gpa(pg+3), sup|nx)
		l.writeReservedGDT(page(pg), c)
		l.writeTSS(page(pg+1), c)
	}

	// Stubs: hlt; jmp .-1 (so a re-entry without a new RIP halts again).
	stubs := page(l.stubPg)
	for off := 0; off <= sysenterOff; off += stubStride {
		copy(stubs[off:], []byte{0xf4, 0xeb, 0xfd})
	}
	copy(stubs[chainOff:], chainCode)
	// IDT: an interrupt gate per vector to its stub.
	idt := page(l.idtPg)
	for v := 0; v < 256; v++ {
		dpl := uint64(0)
		if userVectors[v] {
			dpl = 3
		}
		ist := uint64(0)
		if v == 2 || v == 8 || v == 18 { // NMI, #DF, #MC on IST1
			ist = 1
		}
		target := uint64(stubVA) + uint64(v*stubStride)
		lo := target&0xffff | uint64(Ring0CS)<<16 | ist<<32 | 0xe<<40 | dpl<<45 | 1<<47 | (target>>16&0xffff)<<48
		hi := target >> 32
		binary.LittleEndian.PutUint64(idt[v*16:], lo)
		binary.LittleEndian.PutUint64(idt[v*16+8:], hi)
	}
	return nil
}

func (l *Layout) writeReservedGDT(p []byte, c CPU) {
	put := func(sel int, v uint64) { binary.LittleEndian.PutUint64(p[sel&^7-ReservedGDTByte:], v) }
	put(Ring0CS, descRing0CS64)
	put(Ring0DS, descRing0DS)
	put(FlatRing3CS32, descRing3CS32)
	put(FlatRing3DS, descRing3DS)
	put(FlatRing3CS64, descRing3CS64)
	// 64-bit available TSS (type 9), DPL 0, present, limit 0x67.
	b := c.TSSBase
	lo := uint64(0x67) | (b&0xffffff)<<16 | 0x89<<40 | (b>>24&0xff)<<56
	put(TSSSelector, lo)
	put(TSSSelector+8, b>>32)
}

func (l *Layout) writeTSS(p []byte, c CPU) {
	binary.LittleEndian.PutUint64(p[4:], c.StackTop) // RSP0
	binary.LittleEndian.PutUint64(p[36:], c.ISTTop)  // IST1
	binary.LittleEndian.PutUint16(p[102:], 0x68)     // no I/O bitmap
}

// M2PSet sets M2P entry mfn to pfn in mem (the hole region's bytes).
func (l *Layout) M2PSet(mem []byte, mfn, pfn uint64) error {
	if mfn >= l.m2pN {
		return ErrM2PRange
	}
	binary.LittleEndian.PutUint64(mem[l.m2pPFN0*guestmem.PageSize+mfn*8:], pfn)
	return nil
}

// M2PGet reads M2P entry mfn from mem.
func (l *Layout) M2PGet(mem []byte, mfn uint64) (uint64, error) {
	if mfn >= l.m2pN {
		return 0, ErrM2PRange
	}
	return binary.LittleEndian.Uint64(mem[l.m2pPFN0*guestmem.PageSize+mfn*8:]), nil
}

// SetGDTFrames maps the guest's GDT frames (from HYPERVISOR_set_gdt) into
// vCPU cpu's GDT window, writable at supervisor level so that the CPU can
// set descriptors' accessed bits; the remaining guest pages of the window
// map the zero page (null descriptors). mem is the hole region's bytes.
func (l *Layout) SetGDTFrames(mem []byte, cpu int, frames []uint64) error {
	if cpu < 0 || cpu >= l.nvcpus {
		return fmt.Errorf("hole: no vCPU %d", cpu)
	}
	if len(frames) > guestGDTPages {
		return fmt.Errorf("hole: %d GDT frames, at most %d", len(frames), guestGDTPages)
	}
	c := l.CPU(cpu)
	for g := uint64(0); g < guestGDTPages; g++ {
		va := c.GDTBase + g*guestmem.PageSize
		off := va - VMMStart
		l1 := l.vmmL1s[off>>21]
		ent := l.gpa(l.zeroPg) | guestmem.PTEPresent | guestmem.PTENX
		if g < uint64(len(frames)) {
			ent = frames[g]<<guestmem.PageShift | guestmem.PTEPresent | guestmem.PTEWrite | guestmem.PTENX
		}
		binary.LittleEndian.PutUint64(mem[l1*guestmem.PageSize+((off>>12)&511)*8:], ent)
	}
	return nil
}

// SetLDT maps the guest's LDT frames (from MMUEXT_SET_LDT, already
// validated) into vCPU cpu's LDT window and writes the LDT descriptor for
// ents entries into its reserved GDT page; ents == 0 clears both. The
// caller must then flush the window's TLB entries and load LDTSelector
// (or the null selector).
func (l *Layout) SetLDT(mem []byte, cpu int, frames []uint64, ents uint64) error {
	if cpu < 0 || cpu >= l.nvcpus {
		return fmt.Errorf("hole: no vCPU %d", cpu)
	}
	if len(frames) > ldtPages || ents > ldtPages*512 {
		return fmt.Errorf("hole: LDT of %d entries is too large", ents)
	}
	c := l.CPU(cpu)
	for g := uint64(0); g < ldtPages; g++ {
		off := c.LDTBase + g*guestmem.PageSize - VMMStart
		l1 := l.vmmL1s[off>>21]
		ent := uint64(0)
		if g < uint64(len(frames)) {
			ent = frames[g]<<guestmem.PageShift | guestmem.PTEPresent | guestmem.PTEWrite | guestmem.PTENX
		}
		binary.LittleEndian.PutUint64(mem[l1*guestmem.PageSize+((off>>12)&511)*8:], ent)
	}
	pg := l.cpuPg0 + uint64(cpu)*cpuPages
	res := mem[pg*guestmem.PageSize : (pg+1)*guestmem.PageSize]
	var lo, hi uint64
	if ents > 0 {
		b := c.LDTBase
		limit := ents*8 - 1
		// 64-bit LDT descriptor (type 2), DPL 0, present.
		lo = limit&0xffff | (b&0xffffff)<<16 | 0x82<<40 | (limit>>16&0xf)<<48 | (b>>24&0xff)<<56
		hi = b >> 32
	}
	binary.LittleEndian.PutUint64(res[LDTSelector-ReservedGDTByte:], lo)
	binary.LittleEndian.PutUint64(res[LDTSelector-ReservedGDTByte+8:], hi)
	return nil
}

// LDTWindowPages is the number of pages of the LDT window (for flushing).
const LDTWindowPages = ldtPages
