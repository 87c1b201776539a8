package vmm

import (
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/xenvmm/xenvmm/vmm/hole"
	"github.com/xenvmm/xenvmm/xenabi/abi"
	"github.com/xenvmm/xenvmm/xenabi/guestmem"
)

// The PV MMU (xen.h mmu_update/update_va_mapping/mmuext_op; Xen's
// arch/x86/mm.c and pv/ro-page-fault.c). With the identity P2M the guest's
// page tables hold guest-physical addresses that KVM's nested paging
// walks directly, so the MMU mostly writes what the guest asks. What Xen
// enforces, and the guest relies on, is kept:
//   - every present entry carries _PAGE_USER (the guest kernel runs at
//     CPL3), added on every update, as Xen's adjust_guest_l*e does;
//   - entries may map only the guest's RAM and the pages Xen shares with
//     it (shared info, grant frames), never the hypervisor hole's pages;
//   - every L4 in use carries the hypervisor's slots 256–271;
//   - frames in use as page tables are known ("typed"), so that the
//     guest kernel's direct writes to them fault and are emulated
//     (writable page tables).
type mmu struct {
	d *Domain
	// mu guards the maps and every typed table's entries (updates to
	// them go through the mmu so that references stay counted).
	mu     sync.Mutex
	tables map[uint64]*ptInfo // frame → its page-table type
	pinned map[uint64]int     // frame → pinned level
}

// ptInfo is a frame's page-table type and its type count: the references
// that keep it a page table (Xen's PGT_lN_page_table type with its count):
// entries of typed tables pointing at it, pins, and vCPUs using it as a
// base. At zero the type goes, recursively releasing what it points at.
type ptInfo struct {
	level int
	refs  int
}

func newMMU(d *Domain) *mmu {
	return &mmu{d: d, tables: map[uint64]*ptInfo{}, pinned: map[uint64]int{}}
}

// typeOf is the page-table level of frame pfn, 0 if it is not one.
func (m *mmu) typeOf(pfn uint64) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if t := m.tables[pfn]; t != nil {
		return t.level
	}
	return 0
}

// mappable reports whether a guest PTE may point at machine frame mfn.
func (d *Domain) mappable(mfn uint64) bool {
	return d.isRAM(mfn) || (mfn >= d.xenheapPFN && mfn < d.xenheapPFN+xenheapPages)
}

// adjust is the guest entry as it goes into a page table: present entries
// gain _PAGE_USER. A refused entry gets Xen's error: EPERM for a frame
// that is not the guest's (get_page_from_l1e: "non-privileged attempt to
// map MMIO space"), EINVAL for a superpage or a table outside its RAM.
func (d *Domain) adjust(e uint64, level int) (uint64, abi.Errno) {
	if e&guestmem.PTEPresent == 0 {
		return e, 0
	}
	mfn := (e & guestmem.PTEAddrMask) >> guestmem.PageShift
	switch {
	case level > 1 && e&guestmem.PTEPSE != 0:
		return e, abi.EINVAL // PV guests get no superpages
	case level > 1 && !d.isRAM(mfn):
		return e, abi.EINVAL
	case level == 1 && !d.mappable(mfn):
		return e, abi.EPERM
	}
	return e | guestmem.PTEUser, 0
}

func entryFrame(e uint64) uint64 { return (e & guestmem.PTEAddrMask) >> guestmem.PageShift }

// isHoleSlot reports whether index i of an L4 is one of the hypervisor's.
func isHoleSlot(level int, i uint64) bool {
	return level == 4 && i >= hole.FirstSlot && i <= hole.LastSlot
}

// validate takes a reference to pfn as a table of the given level (and,
// recursively, to the tables it points to), adjusting its entries
// (get_page_and_type for PGT_lN_page_table).
func (m *mmu) validate(pfn uint64, level int) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.getLocked(pfn, level, 0)
}

// getLocked takes one reference to pfn as a level-N table, validating it
// when it was not one yet.
func (m *mmu) getLocked(pfn uint64, level, depth int) bool {
	if t := m.tables[pfn]; t != nil {
		if t.level != level {
			return false
		}
		t.refs++
		if level == 4 {
			m.writeHoleSlots(pfn)
		}
		return true
	}
	if depth > 4 || !m.d.isRAM(pfn) {
		return false
	}
	page, err := m.d.space.Page(pfn)
	if err != nil {
		return false
	}
	// Typed first, so that an entry pointing back at this table (a
	// linear page table) finds it.
	m.tables[pfn] = &ptInfo{level: level, refs: 1}
	for i := uint64(0); i < 512; i++ {
		if isHoleSlot(level, i) {
			continue
		}
		e := binary.LittleEndian.Uint64(page[i*8:])
		if e&guestmem.PTEPresent == 0 {
			continue
		}
		ne, bad := m.d.adjust(e, level)
		if bad == 0 && level > 1 && !m.isLinearLocked(ne, entryFrame(ne), level) &&
			!m.getLocked(entryFrame(ne), level-1, depth+1) {
			bad = abi.EINVAL
		}
		if bad != 0 {
			// Undo the references taken so far.
			for j := uint64(0); j < i; j++ {
				m.putEntryLocked(binary.LittleEndian.Uint64(page[j*8:]), level, pfn, j)
			}
			delete(m.tables, pfn)
			return false
		}
		if ne != e {
			binary.LittleEndian.PutUint64(page[i*8:], ne)
		}
	}
	if level == 4 {
		m.writeHoleSlots(pfn)
	}
	return true
}

// putLocked drops one reference to the table at pfn; at zero its type
// goes and it drops the references its entries hold.
func (m *mmu) putLocked(pfn uint64) {
	t := m.tables[pfn]
	if t == nil {
		return
	}
	t.refs--
	if t.refs > 0 {
		return
	}
	delete(m.tables, pfn)
	if t.level == 1 {
		return
	}
	page, err := m.d.space.Page(pfn)
	if err != nil {
		return
	}
	for i := uint64(0); i < 512; i++ {
		m.putEntryLocked(binary.LittleEndian.Uint64(page[i*8:]), t.level, pfn, i)
	}
}

// putEntryLocked drops the reference entry i of a level-N table holds.
func (m *mmu) putEntryLocked(e uint64, level int, table, i uint64) {
	if level == 1 || e&guestmem.PTEPresent == 0 || isHoleSlot(level, i) {
		return
	}
	child := entryFrame(e)
	if child == table || m.isLinearLocked(e, child, level) {
		return
	}
	m.putLocked(child)
}

// isLinearLocked reports whether entry e of a level-N table points to a
// level-N table read-only: a "linear page table" (the recursive slot
// NetBSD uses to see its own page tables), which Xen allows
// (get_l4_linear_pagetable and friends) only without _PAGE_RW. Such
// entries hold no reference.
func (m *mmu) isLinearLocked(e, child uint64, level int) bool {
	t := m.tables[child]
	return t != nil && t.level == level && e&guestmem.PTEWrite == 0
}

func (m *mmu) writeHoleSlots(pfn uint64) {
	page, err := m.d.space.Page(pfn)
	if err != nil {
		return
	}
	for i, e := range m.d.layout.L4Entries() {
		binary.LittleEndian.PutUint64(page[(hole.FirstSlot+i)*8:], e)
	}
}

type mmuError string

func (e mmuError) Error() string { return string(e) }

const errBadTable = mmuError("not a valid L4 page table")

// setBase makes cr3 (a machine address; 0 for none, user tables only) the
// vCPU's kernel or user page-table base, taking a reference to the new L4
// and dropping the old one's.
func (m *mmu) setBase(v *VCPU, user bool, cr3 uint64) error {
	if cr3 != 0 && !m.validate(cr3>>guestmem.PageShift, 4) {
		return errBadTable
	}
	old := &v.cr3Kernel
	if user {
		old = &v.cr3User
	}
	m.mu.Lock()
	if *old != 0 {
		m.putLocked(*old >> guestmem.PageShift)
	}
	*old = cr3
	m.mu.Unlock()
	return nil
}

// updateEntry writes val into entry idx of the table in frame pfn, as
// MMU_NORMAL_PT_UPDATE and writable page-table emulation do: in a typed
// table the entry is adjusted, what it points to is validated (taking a
// reference) and what it pointed to released; in any other frame it is a
// plain write, as Xen does for a writable page. A present, writable L1
// entry may not map a page table (EBUSY, as Xen refuses).
func (m *mmu) updateEntry(pfn, idx, val uint64, preserveAD bool) abi.Errno {
	if idx >= 512 || !m.d.isRAM(pfn) {
		return abi.EINVAL
	}
	b, err := m.d.space.Slice(pfn*guestmem.PageSize+idx*8, 8)
	if err != nil {
		return abi.EFAULT
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	old, _ := guestmem.Load64(b, 0)
	if preserveAD {
		val |= old & (guestmem.PTEAccessed | guestmem.PTEDirty)
	}
	t := m.tables[pfn]
	if t == nil {
		guestmem.Store64(b, 0, val)
		return 0
	}
	level := t.level
	if isHoleSlot(level, idx) {
		return abi.EINVAL // is_guest_l4_slot
	}
	ne, bad := m.d.adjust(val, level)
	if bad != 0 {
		return bad
	}
	present := ne&guestmem.PTEPresent != 0
	switch {
	case !present:
	case level == 1:
		if ne&guestmem.PTEWrite != 0 && m.tables[entryFrame(ne)] != nil {
			return abi.EBUSY
		}
	case entryFrame(ne) == entryFrame(old) && old&guestmem.PTEPresent != 0 && (ne^old)&guestmem.PTEWrite == 0:
		// Same table, other flags: the reference carries over.
		guestmem.Store64(b, 0, ne)
		return 0
	case m.isLinearLocked(ne, entryFrame(ne), level):
	default:
		if !m.getLocked(entryFrame(ne), level-1, 0) {
			return abi.EINVAL
		}
	}
	guestmem.Store64(b, 0, ne)
	m.putEntryLocked(old, level, pfn, idx)
	return 0
}

// writeEntry is updateEntry for a machine address.
func (m *mmu) writeEntry(ptr, val uint64, preserveAD bool) abi.Errno {
	if ptr%8 != 0 {
		return abi.EINVAL
	}
	return m.updateEntry(ptr>>guestmem.PageShift, (ptr&0xfff)/8, val, preserveAD)
}

// hcMMUUpdate: HYPERVISOR_mmu_update(reqs, count, success_count, foreigndom).
func (v *VCPU) hcMMUUpdate(a hcArgs) uint64 {
	v.d.trace.count(abi.HYPERVISOR_mmu_update, 0)
	reqs, count, doneVA, dom := a[0], a[1], a[2], uint16(a[3])
	if dom != abi.DOMID_SELF && dom != v.d.domid {
		return errno(abi.ESRCH)
	}
	if count > 1<<20 {
		return errno(abi.EINVAL)
	}
	var ret uint64
	i := uint64(0)
	flush := false
	for ; i < count; i++ {
		var b [abi.MMUUpdateSize]byte
		if err := v.copyFrom(reqs+i*abi.MMUUpdateSize, b[:]); err != nil {
			ret = errno(abi.EFAULT)
			break
		}
		ptr, val := binary.LittleEndian.Uint64(b[0:]), binary.LittleEndian.Uint64(b[8:])
		cmd := ptr & 3
		ptr &^= 3
		var e abi.Errno
		switch cmd {
		case abi.MMU_NORMAL_PT_UPDATE, abi.MMU_PT_UPDATE_PRESERVE_AD:
			e = v.d.mmu.writeEntry(ptr, val, cmd == abi.MMU_PT_UPDATE_PRESERVE_AD)
			flush = true
		case abi.MMU_MACHPHYS_UPDATE:
			mfn := ptr >> guestmem.PageShift
			if !v.d.isRAM(mfn) {
				e = abi.EINVAL
			} else if err := v.d.layout.M2PSet(v.d.holeMem.Bytes(), mfn, val); err != nil {
				e = abi.EINVAL
			}
		default:
			e = abi.ENOSYS
		}
		if e != 0 {
			ret = errno(e)
			break
		}
	}
	if doneVA != 0 {
		// success_count is an unsigned int * (xen.h).
		var b [4]byte
		binary.LittleEndian.PutUint32(b[:], uint32(i))
		v.copyTo(doneVA, b[:])
	}
	_ = flush // Xen does not flush after mmu_update; the guest asks for flushes.
	return ret
}

// hcUpdateVAMapping: HYPERVISOR_update_va_mapping(va, val, flags): write
// the L1 entry that maps va in the current page tables, then flush.
func (v *VCPU) hcUpdateVAMapping(a hcArgs) uint64 {
	v.d.trace.count(abi.HYPERVISOR_update_va_mapping, 0)
	return v.updateVAMapping(a[0], a[1], a[2])
}

func (v *VCPU) hcUpdateVAMappingOtherdomain(a hcArgs) uint64 {
	v.d.trace.count(abi.HYPERVISOR_update_va_mapping_otherdomain, 0)
	if dom := uint16(a[3]); dom != abi.DOMID_SELF && dom != v.d.domid {
		return errno(abi.ESRCH)
	}
	return v.updateVAMapping(a[0], a[1], a[2])
}

func (v *VCPU) updateVAMapping(va, val, flags uint64) uint64 {
	if !guestmem.Canonical(va) || va >= hole.VirtStart && va < hole.VirtEnd {
		return errno(abi.EINVAL)
	}
	l1e, ok := v.l1EntryAddr(va)
	if !ok {
		return errno(abi.EINVAL)
	}
	if e := v.d.mmu.writeEntry(l1e, val, false); e != 0 {
		return errno(e)
	}
	switch flags & abi.UVMF_FLUSHTYPE_MASK {
	case abi.UVMF_INVLPG:
		v.flush(flags, va)
	case abi.UVMF_TLB_FLUSH:
		v.flush(flags, 0)
	}
	return 0
}

// l1EntryAddr finds the machine address of the L1 entry mapping va in the
// current page tables (the L1 must exist).
func (v *VCPU) l1EntryAddr(va uint64) (uint64, bool) {
	table := v.currentCR3() &^ 0xfff
	for level := 4; level > 1; level-- {
		shift := uint(12 + 9*(level-1))
		e, err := v.d.space.Read64(table + ((va>>shift)&511)*8)
		if err != nil || e&guestmem.PTEPresent == 0 || e&guestmem.PTEPSE != 0 {
			return 0, false
		}
		table = e & guestmem.PTEAddrMask
	}
	return table + ((va>>12)&511)*8, true
}

// flush flushes the TLB of this vCPU (and others per UVMF_ALL/MULTI):
// va != 0 for one page.
func (v *VCPU) flush(flags, va uint64) {
	local := func() {
		if va != 0 {
			v.chain.Invlpg(va)
		} else {
			v.chain.LoadCR3(v.currentCR3())
		}
	}
	local()
	if flags&abi.UVMF_ALL != 0 {
		v.d.flushOthers(v)
	} else if mask := flags &^ 7; mask != 0 {
		// UVMF_MULTI: flags holds a pointer to a vCPU bitmap.
		bits, err := v.read64(mask)
		if err == nil {
			v.d.flushMask(v, bits)
		}
	}
}

func (d *Domain) flushOthers(self *VCPU) {
	for _, o := range d.vcpus {
		if o != self {
			o.requestFlush()
		}
	}
}

func (d *Domain) flushMask(self *VCPU, bits uint64) {
	for i, o := range d.vcpus {
		if i < 64 && bits&(1<<i) != 0 && o != self {
			o.requestFlush()
		}
	}
}

func (v *VCPU) requestFlush() {
	v.mailbox.Lock()
	v.flushTLB = true
	v.mailbox.Unlock()
	v.kick()
}

// hcMMUExtOp: HYPERVISOR_mmuext_op(ops, count, success_count, foreigndom).
func (v *VCPU) hcMMUExtOp(a hcArgs) uint64 {
	ops, count, doneVA, dom := a[0], a[1], a[2], uint16(a[3])
	if dom != abi.DOMID_SELF && dom != v.d.domid {
		return errno(abi.ESRCH)
	}
	if count > 1<<20 {
		return errno(abi.EINVAL)
	}
	var ret uint64
	i := uint64(0)
	for ; i < count; i++ {
		var b [abi.MMUExtOpSize]byte
		if err := v.copyFrom(ops+i*abi.MMUExtOpSize, b[:]); err != nil {
			ret = errno(abi.EFAULT)
			break
		}
		cmd := uint64(binary.LittleEndian.Uint32(b[0:]))
		arg1, arg2 := binary.LittleEndian.Uint64(b[8:]), binary.LittleEndian.Uint64(b[16:])
		v.d.trace.count(abi.HYPERVISOR_mmuext_op, cmd)
		if e := v.mmuext(cmd, arg1, arg2); e != 0 {
			if v.d.debug {
				v.d.log.Debug("mmuext_op refused", "cmd", cmd, "arg1", fmt.Sprintf("%#x", arg1), "arg2", fmt.Sprintf("%#x", arg2), "errno", e.Name())
			}
			ret = errno(e)
			break
		}
	}
	if doneVA != 0 {
		// success_count is an unsigned int * (xen.h).
		var b [4]byte
		binary.LittleEndian.PutUint32(b[:], uint32(i))
		v.copyTo(doneVA, b[:])
	}
	return ret
}

func (v *VCPU) mmuext(cmd, arg1, arg2 uint64) abi.Errno {
	m := v.d.mmu
	switch cmd {
	case abi.MMUEXT_PIN_L1_TABLE, abi.MMUEXT_PIN_L2_TABLE, abi.MMUEXT_PIN_L3_TABLE, abi.MMUEXT_PIN_L4_TABLE:
		level := int(cmd-abi.MMUEXT_PIN_L1_TABLE) + 1
		m.mu.Lock()
		_, already := m.pinned[arg1]
		m.mu.Unlock()
		if already {
			return abi.EINVAL
		}
		if !m.validate(arg1, level) {
			return abi.EINVAL
		}
		m.mu.Lock()
		m.pinned[arg1] = level
		m.mu.Unlock()
		return 0
	case abi.MMUEXT_UNPIN_TABLE:
		m.mu.Lock()
		defer m.mu.Unlock()
		if _, ok := m.pinned[arg1]; !ok {
			return abi.EINVAL
		}
		delete(m.pinned, arg1)
		m.putLocked(arg1)
		return 0
	case abi.MMUEXT_NEW_BASEPTR:
		cr3 := arg1 << guestmem.PageShift
		if err := m.setBase(v, false, cr3); err != nil {
			return abi.EINVAL
		}
		if v.kernelMode {
			v.chain.LoadCR3(cr3)
		}
		return 0
	case abi.MMUEXT_NEW_USER_BASEPTR:
		cr3 := arg1 << guestmem.PageShift
		if err := m.setBase(v, true, cr3); err != nil {
			return abi.EINVAL
		}
		if !v.kernelMode && cr3 != 0 {
			v.chain.LoadCR3(cr3)
		}
		return 0
	case abi.MMUEXT_TLB_FLUSH_LOCAL:
		v.chain.LoadCR3(v.currentCR3())
		return 0
	case abi.MMUEXT_INVLPG_LOCAL:
		if guestmem.Canonical(arg1) {
			v.chain.Invlpg(arg1)
		}
		return 0
	case abi.MMUEXT_TLB_FLUSH_ALL:
		v.chain.LoadCR3(v.currentCR3())
		v.d.flushOthers(v)
		return 0
	case abi.MMUEXT_INVLPG_ALL:
		if guestmem.Canonical(arg1) {
			v.chain.Invlpg(arg1)
		}
		v.d.flushOthers(v)
		return 0
	case abi.MMUEXT_TLB_FLUSH_MULTI, abi.MMUEXT_INVLPG_MULTI:
		bits, err := v.read64(arg2)
		if err != nil {
			return abi.EFAULT
		}
		if bits&(1<<v.id) != 0 {
			if cmd == abi.MMUEXT_INVLPG_MULTI && guestmem.Canonical(arg1) {
				v.chain.Invlpg(arg1)
			} else {
				v.chain.LoadCR3(v.currentCR3())
			}
		}
		v.d.flushMask(v, bits)
		return 0
	case abi.MMUEXT_FLUSH_CACHE, abi.MMUEXT_FLUSH_CACHE_GLOBAL:
		return 0 // nothing to do with coherent guest memory
	case abi.MMUEXT_SET_LDT:
		return v.setLDT(arg1, arg2&0xffffffff) // arg2.nr_ents is an unsigned int
	case abi.MMUEXT_CLEAR_PAGE:
		if !v.d.isRAM(arg1) || m.typeOf(arg1) != 0 {
			return abi.EINVAL
		}
		p, _ := v.d.space.Page(arg1)
		clear(p)
		return 0
	case abi.MMUEXT_COPY_PAGE:
		if !v.d.isRAM(arg1) || !v.d.isRAM(arg2) || m.typeOf(arg1) != 0 {
			return abi.EINVAL
		}
		dst, _ := v.d.space.Page(arg1)
		src, _ := v.d.space.Page(arg2)
		copy(dst, src)
		return 0
	case abi.MMUEXT_MARK_SUPER, abi.MMUEXT_UNMARK_SUPER:
		return abi.EOPNOTSUPP
	}
	v.d.unknown("mmuext_op " + itoa(cmd))
	return abi.ENOSYS
}

// setLDT installs the guest's LDT (MMUEXT_SET_LDT; Xen's
// pv/descriptor-tables.c and mm.c): the linear range must be page
// aligned and mapped, its descriptors are checked as for the GDT, and its
// frames are mapped into the vCPU's LDT window in the hypervisor hole.
func (v *VCPU) setLDT(base, ents uint64) abi.Errno {
	var frames []uint64
	if ents > 8192 || base%guestmem.PageSize != 0 || !guestmem.Canonical(base) ||
		ents > 0 && !v.guestAddrOK(base, ents*8) {
		return abi.EINVAL
	}
	for off := uint64(0); off < ents*8; off += guestmem.PageSize {
		tr, err := v.d.space.Walk(v.cr3Kernel, base+off, guestmem.AccessRead, false)
		if err != nil {
			return abi.EINVAL
		}
		pfn := tr.GPA >> guestmem.PageShift
		if !v.d.isRAM(pfn) {
			return abi.EINVAL
		}
		page, _ := v.d.space.Page(pfn)
		n := min(uint64(512), ents-off/8)
		for e := uint64(0); e < n; e++ {
			if !checkDescriptor(page[e*8 : e*8+8]) {
				return abi.EINVAL
			}
		}
		frames = append(frames, pfn)
	}
	if err := v.d.layout.SetLDT(v.d.holeMem.Bytes(), v.id, frames, ents); err != nil {
		return abi.EINVAL
	}
	v.ldtBase, v.ldtEnts = base, ents
	for g := uint64(0); g < hole.LDTWindowPages; g++ {
		v.chain.Invlpg(v.cpu.LDTBase + g*guestmem.PageSize)
	}
	v.chain.Invlpg(v.cpu.GDTBase + hole.LDTSelector)
	if ents == 0 {
		v.chain.LLDT(0)
	} else {
		v.chain.LLDT(hole.LDTSelector)
	}
	return 0
}
