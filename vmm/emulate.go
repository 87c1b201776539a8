package vmm

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/xenvmm/xenvmm/vmm/hole"
	"github.com/xenvmm/xenvmm/vmm/kvm"
	"github.com/xenvmm/xenvmm/xenabi/abi"
	"github.com/xenvmm/xenvmm/xenabi/guestmem"
	"golang.org/x/arch/x86/x86asm"
)

// Emulation of what a PV guest does that faults at CPL3 and Xen handles:
// page faults (spurious ones, and direct writes to page tables: Xen's
// writable page tables, pv/ro-page-fault.c), privileged instructions
// (pv/emul-priv-op.c) and the forced-emulation prefix (pv/emul-inv-op.c).

// fetchInsn reads up to 15 bytes of instruction at the guest's RIP.
func (v *VCPU) fetchInsn() ([]byte, error) {
	b := make([]byte, 15)
	rip := v.frame.RIP
	n := uint64(len(b))
	if rem := guestmem.PageSize - rip%guestmem.PageSize; rem < n {
		// Read the rest from the next page only if it is mapped.
		if err := v.d.space.CopyFromVirt(v.currentCR3(), rip, b, true); err == nil {
			return b, nil
		}
		n = rem
	}
	if err := v.d.space.CopyFromVirt(v.currentCR3(), rip, b[:n], true); err != nil {
		return nil, err
	}
	return b[:n], nil
}

func (v *VCPU) decode() (x86asm.Inst, error) {
	b, err := v.fetchInsn()
	if err != nil {
		return x86asm.Inst{}, err
	}
	return x86asm.Decode(b, 64)
}

// pageFault handles #PF from the guest.
func (v *VCPU) pageFault(ec uint64) error {
	var s kvm.Sregs
	if err := v.kv.GetSregs(&s); err != nil {
		return err
	}
	cr2 := s.CR2
	acc := guestmem.AccessRead
	switch {
	case ec&guestmem.PFErrWrite != 0:
		acc = guestmem.AccessWrite
	case ec&guestmem.PFErrFetch != 0:
		acc = guestmem.AccessFetch
	}
	cr3 := v.currentCR3()
	inHole := cr2 >= hole.VirtStart && cr2 < hole.VirtEnd
	if !inHole {
		// Spurious: the access is allowed now (a stale TLB entry, which
		// the fault itself flushed).
		if tr, err := v.d.space.Walk(cr3, cr2, acc, true); err == nil {
			// A fault that repeats at the same place is not spurious:
			// the hardware disagrees with this walk. Stop rather than
			// spin.
			if v.spurious.rip == v.frame.RIP && v.spurious.addr == cr2 {
				v.spurious.n++
				if v.spurious.n > 1000 {
					return fmt.Errorf("page fault at rip %#x on %#x (error code %#x) repeats although the page tables allow it (gpa %#x, flags %#x, cr3 %#x)",
						v.frame.RIP, cr2, ec, tr.GPA, tr.Flags, cr3)
				}
			} else {
				v.spurious.rip, v.spurious.addr, v.spurious.n = v.frame.RIP, cr2, 0
			}
			return nil
		}
		// A present entry without _PAGE_USER that the guest wrote
		// directly into a table xenvmm had not seen: add it and retry.
		if v.repairUser(cr3, cr2, acc) {
			return nil
		}
		// A write by the guest kernel to one of its page tables.
		if v.kernelMode && ec&(guestmem.PFErrWrite|guestmem.PFErrPresent|guestmem.PFErrRsvd) == guestmem.PFErrWrite|guestmem.PFErrPresent {
			if tr, err := v.d.space.Walk(cr3, cr2, guestmem.AccessRead, true); err == nil {
				if level := v.d.mmu.typeOf(tr.GPA >> guestmem.PageShift); level > 0 {
					handled, err := v.ptwr(cr2, tr.GPA, level)
					if handled || err != nil {
						return err
					}
				}
			}
		}
	}
	if v.d.debug {
		level := 0
		if tr, err := v.d.space.Walk(cr3, cr2, guestmem.AccessRead, true); err == nil {
			level = v.d.mmu.typeOf(tr.GPA >> guestmem.PageShift)
		}
		v.d.log.Debug("page fault reflected", "vcpu", v.id, "cr2", fmt.Sprintf("%#x", cr2), "error_code", fmt.Sprintf("%#x", ec), "rip", fmt.Sprintf("%#x", v.frame.RIP), "pt_level", level)
	}
	// Reflect to the guest: CR2 into vcpu_info, the error code's user bit
	// from the guest's mode (pv_inject_event).
	info := v.vcpuInfo()
	binary.LittleEndian.PutUint64(info[abi.VCPUInfoCR2:], cr2)
	if v.kernelMode {
		ec &^= guestmem.PFErrUser
	}
	return v.injectTrap(vecPF, ec, true)
}

// repairUser adds _PAGE_USER to present entries on the path to va that
// lack it, if that makes the access succeed.
func (v *VCPU) repairUser(cr3, va uint64, acc guestmem.Access) bool {
	if _, err := v.d.space.Walk(cr3, va, acc, false); err != nil {
		return false // fails even for ring 0: a real fault
	}
	table := cr3 &^ 0xfff
	for level := 4; level >= 1; level-- {
		shift := uint(12 + 9*(level-1))
		idx := (va >> shift) & 511
		if level == 4 && idx >= hole.FirstSlot && idx <= hole.LastSlot {
			return false
		}
		gpa := table + idx*8
		b, err := v.d.space.Slice(gpa, 8)
		if err != nil || !v.d.isRAM(gpa>>guestmem.PageShift) {
			return false
		}
		e := binary.LittleEndian.Uint64(b)
		if e&guestmem.PTEPresent == 0 {
			return false
		}
		target := (e & guestmem.PTEAddrMask) >> guestmem.PageShift
		if level > 1 && !v.d.isRAM(target) || level == 1 && !v.d.mappable(target) {
			return false
		}
		if e&guestmem.PTEUser == 0 {
			guestmem.Or64(b, 0, guestmem.PTEUser)
		}
		table = e & guestmem.PTEAddrMask
	}
	_, err := v.d.space.Walk(cr3, va, acc, true)
	return err == nil
}

var errUnsupportedWrite = errors.New("unsupported page-table write")

// ptwr emulates the guest kernel's write at va (guest-physical gpa) into
// a page table of the given level. It returns handled=false when the
// instruction or the new entry is not acceptable, to reflect the fault.
func (v *VCPU) ptwr(va, gpa uint64, level int) (bool, error) {
	inst, err := v.decode()
	if err != nil {
		return false, nil
	}
	memArg, ok := memOperand(inst)
	if !ok {
		return false, nil
	}
	size := uint64(inst.MemBytes)
	if size != 8 && size != 4 {
		return false, nil
	}
	addr, ok := v.effectiveAddr(inst, memArg)
	if !ok || addr&^7 != va&^7 {
		return false, nil
	}
	entGPA := gpa &^ 7
	b, err := v.d.space.Slice(entGPA, 8)
	if err != nil {
		return false, nil
	}
	old, _ := guestmem.Load64(b, 0)
	shift := (addr & 7) * 8
	if size == 4 && addr&3 != 0 || size == 8 && addr&7 != 0 {
		return false, nil
	}
	mask := ^uint64(0)
	if size == 4 {
		mask = 0xffffffff << shift
	}
	cur := (old & mask) >> shift
	val, write, err := v.alu(inst, cur, size)
	if err != nil {
		return false, nil
	}
	if write {
		ne := old&^mask | (val<<shift)&mask
		if e := v.d.mmu.updateEntry(entGPA>>guestmem.PageShift, (entGPA&0xfff)/8, ne, false); e != 0 {
			return false, nil
		}
	}
	v.frame.RIP += uint64(inst.Len)
	v.modified = true
	return true, nil
}

func memOperand(inst x86asm.Inst) (x86asm.Mem, bool) {
	for _, a := range inst.Args {
		if m, ok := a.(x86asm.Mem); ok {
			return m, true
		}
	}
	return x86asm.Mem{}, false
}

// effectiveAddr computes a memory operand's linear address.
func (v *VCPU) effectiveAddr(inst x86asm.Inst, m x86asm.Mem) (uint64, bool) {
	var a uint64
	if m.Base == x86asm.RIP {
		a = v.frame.RIP + uint64(inst.Len)
	} else if m.Base != 0 {
		b, ok := v.reg(m.Base)
		if !ok {
			return 0, false
		}
		a = b
	}
	if m.Index != 0 {
		x, ok := v.reg(m.Index)
		if !ok {
			return 0, false
		}
		a += x * uint64(m.Scale)
	}
	a += uint64(m.Disp)
	switch m.Segment {
	case x86asm.FS:
		a += v.fsBase
	case x86asm.GS:
		if v.kernelMode {
			a += v.gsBaseKernel
		} else {
			a += v.gsBaseUser
		}
	}
	return a, true
}

// reg reads a general register (any width) from the guest's registers.
func (v *VCPU) reg(r x86asm.Reg) (uint64, bool) {
	p, size := v.regPtr(r)
	if p == nil {
		return 0, false
	}
	switch size {
	case 1:
		if r >= x86asm.AH && r <= x86asm.BH {
			return (*p >> 8) & 0xff, true
		}
		return *p & 0xff, true
	case 2:
		return *p & 0xffff, true
	case 4:
		return *p & 0xffffffff, true
	}
	return *p, true
}

// setReg writes a register with x86 semantics (32-bit writes zero-extend).
func (v *VCPU) setReg(r x86asm.Reg, val uint64) bool {
	p, size := v.regPtr(r)
	if p == nil {
		return false
	}
	switch size {
	case 1:
		if r >= x86asm.AH && r <= x86asm.BH {
			*p = *p&^0xff00 | (val&0xff)<<8
		} else {
			*p = *p&^0xff | val&0xff
		}
	case 2:
		*p = *p&^0xffff | val&0xffff
	case 4:
		*p = val & 0xffffffff
	default:
		*p = val
	}
	v.modified = true
	return true
}

func (v *VCPU) regPtr(r x86asm.Reg) (*uint64, int) {
	g := []*uint64{&v.regs.RAX, &v.regs.RCX, &v.regs.RDX, &v.regs.RBX, &v.frame.RSP, &v.regs.RBP, &v.regs.RSI, &v.regs.RDI,
		&v.regs.R8, &v.regs.R9, &v.regs.R10, &v.regs.R11, &v.regs.R12, &v.regs.R13, &v.regs.R14, &v.regs.R15}
	switch {
	case r >= x86asm.RAX && r <= x86asm.R15:
		return g[r-x86asm.RAX], 8
	case r >= x86asm.EAX && r <= x86asm.R15L:
		return g[r-x86asm.EAX], 4
	case r >= x86asm.AX && r <= x86asm.R15W:
		return g[r-x86asm.AX], 2
	case r >= x86asm.AL && r <= x86asm.BL:
		return g[r-x86asm.AL], 1
	case r >= x86asm.AH && r <= x86asm.BH:
		return g[r-x86asm.AH], 1
	case r >= x86asm.SPB && r <= x86asm.R15B:
		return g[r-x86asm.SPB+4], 1
	}
	return nil, 0
}

// operand reads a non-memory operand.
func (v *VCPU) operand(a x86asm.Arg) (uint64, bool) {
	switch x := a.(type) {
	case x86asm.Reg:
		return v.reg(x)
	case x86asm.Imm:
		return uint64(int64(x)), true
	}
	return 0, false
}

// alu computes what a read-modify-write instruction stores into the
// memory operand whose current value is cur, updates registers and flags,
// and says whether memory is written.
func (v *VCPU) alu(inst x86asm.Inst, cur, size uint64) (uint64, bool, error) {
	mask := ^uint64(0)
	if size == 4 {
		mask = 0xffffffff
	}
	src := func() (uint64, bool) { return v.operand(inst.Args[1]) }
	setZF := func(res uint64) {
		if res&mask == 0 {
			v.frame.RFLAGS |= 1 << 6
		} else {
			v.frame.RFLAGS &^= 1 << 6
		}
	}
	switch inst.Op {
	case x86asm.MOV:
		s, ok := src()
		return s & mask, ok, nil
	case x86asm.XCHG:
		// xchg mem, reg (either order)
		for _, a := range inst.Args[:2] {
			if r, ok := a.(x86asm.Reg); ok {
				s, _ := v.reg(r)
				v.setReg(r, cur)
				return s & mask, true, nil
			}
		}
	case x86asm.CMPXCHG:
		s, ok := src()
		if !ok {
			break
		}
		acc := v.regs.RAX & mask
		if acc == cur {
			v.frame.RFLAGS |= 1 << 6
			return s & mask, true, nil
		}
		v.frame.RFLAGS &^= 1 << 6
		if size == 4 {
			v.regs.RAX = cur
		} else {
			v.regs.RAX = cur
		}
		return cur, false, nil
	case x86asm.AND, x86asm.OR, x86asm.XOR, x86asm.ADD, x86asm.SUB:
		s, ok := src()
		if !ok {
			break
		}
		var r uint64
		switch inst.Op {
		case x86asm.AND:
			r = cur & s
		case x86asm.OR:
			r = cur | s
		case x86asm.XOR:
			r = cur ^ s
		case x86asm.ADD:
			r = cur + s
		case x86asm.SUB:
			r = cur - s
		}
		v.frame.RFLAGS &^= 1 | 1<<11 // CF, OF
		setZF(r)
		return r & mask, true, nil
	case x86asm.BTS, x86asm.BTR, x86asm.BTC:
		s, ok := src()
		if !ok {
			break
		}
		b := s % (size * 8)
		if cur&(1<<b) != 0 {
			v.frame.RFLAGS |= flagCF
		} else {
			v.frame.RFLAGS &^= flagCF
		}
		switch inst.Op {
		case x86asm.BTS:
			return cur | 1<<b, true, nil
		case x86asm.BTR:
			return cur &^ (1 << b), true, nil
		}
		return cur ^ 1<<b, true, nil
	}
	return 0, false, fmt.Errorf("%w: %v", errUnsupportedWrite, inst)
}

// forcedEmulation handles #UD: the forced-emulation prefix
// `ud2; .ascii "xen"` followed by cpuid (arch-x86/xen.h XEN_CPUID).
func (v *VCPU) forcedEmulation() (bool, error) {
	var b [7]byte
	if err := v.d.space.CopyFromVirt(v.currentCR3(), v.frame.RIP, b[:], true); err != nil {
		return false, nil
	}
	if b != [7]byte{0x0f, 0x0b, 'x', 'e', 'n', 0x0f, 0xa2} {
		return false, nil
	}
	v.cpuid()
	v.frame.RIP += 7
	v.modified = true
	return true, nil
}

func (v *VCPU) cpuid() {
	leaf, sub := uint32(v.regs.RAX), uint32(v.regs.RCX)
	a, b, c, d := v.d.cpuid.lookup(leaf, sub)
	if leaf == 1 {
		b = b&^(0xff<<24) | uint32(v.id)<<24
	}
	v.regs.RAX, v.regs.RBX, v.regs.RCX, v.regs.RDX = uint64(a), uint64(b), uint64(c), uint64(d)
}

// MSRs a PV guest may read or write through emulation.
const (
	msrEFER       = 0xc0000080
	msrPAT        = 0x277
	msrMiscEnable = 0x1a0
	msrPlatformID = 0x17
	msrAPICBase   = 0x1b
	msrTSCAux     = 0xc0000103
	msrSpecCtrl   = 0x48
	msrArchCap    = 0x10a
	patDefault    = 0x0007040600070406
	// Vendor MSRs that older PV kernels read at boot.
	msrAMDNBCfg    = 0xc001001f
	msrAMDHWCR     = 0xc0010015
	msrPatchLevel  = 0x8b   // IA32_BIOS_SIGN_ID / AMD patch level
	miscEnableBits = 1 << 0 // fast strings
)

// emulate handles #GP at CPL3: privileged instructions the guest kernel
// may use (emulate_privileged_op), software interrupts through DPL-0
// gates, cli/sti with virtual IOPL. It returns handled=false to reflect
// the #GP.
func (v *VCPU) emulate(ec uint64) (bool, error) {
	inst, err := v.decode()
	if err != nil {
		return false, nil
	}
	next := func() (bool, error) {
		v.frame.RIP += uint64(inst.Len)
		v.modified = true
		return true, nil
	}
	// int $n through a gate the guest may not use from this mode, or one
	// its trap table allows (DPL >= 3): a software interrupt.
	if inst.Op == x86asm.INT && len(inst.Args) > 0 {
		n, _ := inst.Args[0].(x86asm.Imm)
		t := v.traps[uint8(n)]
		if t.address != 0 && t.flags&abi.TI_FLAG_DPL_MASK == 3 {
			v.frame.RIP += uint64(inst.Len)
			return true, v.injectTrap(int(uint8(n)), 0, false)
		}
		return false, nil
	}
	ioplOK := func() bool {
		need := uint64(3)
		if v.kernelMode {
			need = 1
		}
		return v.iopl>>12 >= need
	}
	switch inst.Op {
	case x86asm.CLI, x86asm.STI:
		if !ioplOK() {
			return false, nil
		}
		info := v.vcpuInfo()
		if inst.Op == x86asm.CLI {
			info[abi.VCPUInfoUpcallMask] = 1
		} else {
			info[abi.VCPUInfoUpcallMask] = 0
		}
		return next()
	case x86asm.IN:
		if !ioplOK() {
			return false, nil
		}
		r, _ := inst.Args[0].(x86asm.Reg)
		port, ok := v.ioPort(inst.Args[1])
		if !ok {
			return false, nil
		}
		v.setReg(r, v.d.ioRead(port))
		return next()
	case x86asm.OUT:
		if !ioplOK() {
			return false, nil
		}
		port, ok := v.ioPort(inst.Args[0])
		if !ok {
			return false, nil
		}
		val, _ := v.operand(inst.Args[1])
		v.d.ioWrite(port, val)
		return next()
	case x86asm.INSB, x86asm.INSW, x86asm.INSD, x86asm.OUTSB, x86asm.OUTSW, x86asm.OUTSD:
		if !ioplOK() {
			return false, nil
		}
		return next() // string I/O to ports nothing decodes: no effect
	}
	if !v.kernelMode {
		return false, nil
	}
	switch inst.Op {
	case x86asm.HLT:
		v.frame.RIP += uint64(inst.Len)
		v.modified = true
		v.block()
		return true, nil
	case x86asm.WBINVD, x86asm.INVD:
		return next()
	case x86asm.CLTS:
		v.fpuTS = false
		v.chain.LoadCR0(hole.CR0)
		return next()
	case x86asm.INVLPG:
		if m, ok := memOperand(inst); ok {
			if a, ok := v.effectiveAddr(inst, m); ok && guestmem.Canonical(a) {
				v.chain.Invlpg(a)
			}
		}
		return next()
	case x86asm.MOV:
		return v.emulateMovCR(inst, next)
	case x86asm.RDMSR:
		val, ok := v.rdmsr(uint32(v.regs.RCX))
		if !ok {
			return false, nil
		}
		v.regs.RAX, v.regs.RDX = val&0xffffffff, val>>32
		return next()
	case x86asm.WRMSR:
		if !v.wrmsr(uint32(v.regs.RCX), v.regs.RDX<<32|v.regs.RAX&0xffffffff) {
			return false, nil
		}
		return next()
	case x86asm.XSETBV:
		return false, nil
	}
	return false, nil
}

// ioPort is the port operand of in/out: an immediate or DX.
func (v *VCPU) ioPort(a x86asm.Arg) (uint16, bool) {
	switch x := a.(type) {
	case x86asm.Imm:
		return uint16(x), true
	case x86asm.Reg:
		if x == x86asm.DX {
			return uint16(v.regs.RDX), true
		}
	}
	return 0, false
}

// emulateMovCR emulates mov to/from control and debug registers.
func (v *VCPU) emulateMovCR(inst x86asm.Inst, next func() (bool, error)) (bool, error) {
	dst, _ := inst.Args[0].(x86asm.Reg)
	src, _ := inst.Args[1].(x86asm.Reg)
	switch {
	case src >= x86asm.CR0 && src <= x86asm.CR15:
		var val uint64
		switch src {
		case x86asm.CR0:
			val = hole.CR0
			if v.fpuTS {
				val |= 1 << 3
			}
		case x86asm.CR2:
			val = binary.LittleEndian.Uint64(v.vcpuInfo()[abi.VCPUInfoCR2:])
		case x86asm.CR3:
			val = v.currentCR3()
		case x86asm.CR4:
			val = hole.CR4
		default:
			return false, nil
		}
		v.setReg(dst, val)
		return next()
	case dst >= x86asm.CR0 && dst <= x86asm.CR15:
		val, _ := v.reg(src)
		switch dst {
		case x86asm.CR0:
			// Only TS may change (as fpu_taskswitch).
			v.fpuTS = val&(1<<3) != 0
			cr0 := uint64(hole.CR0)
			if v.fpuTS {
				cr0 |= 1 << 3
			}
			v.chain.LoadCR0(cr0)
		case x86asm.CR3:
			cr3 := val &^ 0xfff
			if err := v.d.mmu.setBase(v, false, cr3); err != nil {
				return false, nil
			}
			v.chain.LoadCR3(cr3)
		case x86asm.CR4:
			// Ignored, as Xen ignores bits a PV guest may not change.
		default:
			return false, nil
		}
		return next()
	case src >= x86asm.DR0 && src <= x86asm.DR7:
		v.setReg(dst, 0)
		return next()
	case dst >= x86asm.DR0 && dst <= x86asm.DR7:
		return next()
	}
	return false, nil
}

func (v *VCPU) rdmsr(msr uint32) (uint64, bool) {
	switch msr {
	case hole.MSRFSBase:
		return v.fsBase, true
	case hole.MSRGSBase:
		if v.kernelMode {
			return v.gsBaseKernel, true
		}
		return v.gsBaseUser, true
	case hole.MSRKernelGSBase:
		if v.kernelMode {
			return v.gsBaseUser, true
		}
		return v.gsBaseKernel, true
	case msrEFER:
		return hole.EFER, true
	case msrPAT:
		return patDefault, true
	case msrMiscEnable:
		return miscEnableBits, true
	case msrPlatformID, msrSpecCtrl, msrArchCap, msrAMDNBCfg, msrAMDHWCR, msrPatchLevel:
		// Read as zero, as Xen does for a PV guest (pv/emul-priv-op.c).
		return 0, true
	case msrTSC:
		t, ok := v.guestTSC()
		return t, ok
	}
	if legacyMSR(msr) {
		return 0, true
	}
	return 0, false
}

// legacyMSR reports whether msr is one that 2.6.18-era PV kernels and
// NetBSD 5 touch unconditionally on their CPU's vendor path (AMD's
// 0xc001xxxx configuration registers, the MTRRs): the Xen they were
// written for read such MSRs as zero and dropped writes (with a log
// line), where today's Xen injects #GP. xenvmm keeps the old behaviour
// for those ranges only.
func legacyMSR(msr uint32) bool {
	return msr >= 0xc0010000 && msr <= 0xc0011fff || msr >= 0x200 && msr <= 0x2ff || msr == 0xfe
}

func (v *VCPU) wrmsr(msr uint32, val uint64) bool {
	switch msr {
	case hole.MSRFSBase:
		if !guestmem.Canonical(val) {
			return false
		}
		v.fsBase = val
		v.chain.WRMSR(hole.MSRFSBase, val)
		return true
	case hole.MSRGSBase:
		if !guestmem.Canonical(val) {
			return false
		}
		v.gsBaseKernel = val
		v.chain.WRMSR(hole.MSRGSBase, val)
		return true
	case hole.MSRKernelGSBase:
		if !guestmem.Canonical(val) {
			return false
		}
		v.gsBaseUser = val
		v.chain.WRMSR(hole.MSRKernelGSBase, val)
		return true
	case msrPAT, msrSpecCtrl, msrMiscEnable:
		return true // accepted and ignored, as Xen does for a PV guest
	}
	return legacyMSR(msr)
}
