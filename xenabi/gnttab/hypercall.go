package gnttab

import (
	"encoding/binary"
	"fmt"

	"github.com/xenvmm/xenvmm/xenabi/abi"
)

// GuestWriter copies hypercall output to guest-virtual memory: the
// frame_list arrays of GNTTABOP_setup_table and GNTTABOP_get_status_frames,
// which are guest handles inside the argument. An error is Xen's failing
// __copy_to_guest_offset.
type GuestWriter interface {
	CopyToGuest(va uint64, b []byte) error
}

// Continuation encoding of the cmd argument (GNTTABOP_CMD_MASK): the low
// 12 bits are the op; the rest is an opaque value only cache_flush uses.
const gnttabopCmdMask = 1<<12 - 1

// argSizes is the size of one argument element of each op.
var argSizes = map[uint32]int{
	abi.GNTTABOP_map_grant_ref:     MapGrantRefSize,
	abi.GNTTABOP_unmap_grant_ref:   UnmapGrantRefSize,
	abi.GNTTABOP_setup_table:       SetupTableSize,
	abi.GNTTABOP_transfer:          TransferSize,
	abi.GNTTABOP_copy:              CopySize,
	abi.GNTTABOP_query_size:        QuerySizeSize,
	abi.GNTTABOP_unmap_and_replace: UnmapReplaceSize,
	abi.GNTTABOP_set_version:       SetVersionSize,
	abi.GNTTABOP_get_status_frames: StatusFramesSize,
	abi.GNTTABOP_get_version:       GetVersionSize,
	abi.GNTTABOP_swap_grant_ref:    SwapGrantRefSize,
}

// ArgBytes returns how many bytes of argument, starting at the guest's
// uop pointer, HYPERVISOR_grant_table_op(cmd, uop, count) reads and may
// write back: count elements for the array ops, one struct for the
// single-struct ops, 0 when the call fails before reading anything
// (unknown op, bad count). cmd and count are the raw register values (Xen
// takes them as unsigned int). The dispatcher copies that many bytes in
// (-EFAULT if it cannot, as Xen's guest_handle_okay), calls Hypercall,
// and copies them back out. For the array ops count can be large (up to
// 2^31-1 elements): the dispatcher should copy large batches in pieces or
// refuse them with -EFAULT.
func ArgBytes(cmd, count uint64) uint64 {
	c, n := uint32(cmd), uint32(count)
	if int32(n) < 0 || (c&gnttabopCmdMask != abi.GNTTABOP_cache_flush && c&^gnttabopCmdMask != 0) {
		return 0
	}
	op := c & gnttabopCmdMask
	size, ok := argSizes[op]
	if !ok {
		return 0
	}
	switch op {
	case abi.GNTTABOP_setup_table, abi.GNTTABOP_query_size, abi.GNTTABOP_get_status_frames:
		if n != 1 {
			return 0
		}
		return uint64(size)
	case abi.GNTTABOP_set_version, abi.GNTTABOP_get_version:
		return uint64(size)
	}
	return uint64(size) * uint64(n)
}

// Hypercall performs HYPERVISOR_grant_table_op(cmd, uop, count) for the
// guest (do_grant_table_op in xen/common/grant_table.c). args holds the
// ArgBytes(cmd, count) bytes the dispatcher copied from uop; the results
// are written into args (status, handle, frame counts, version ...), which
// the dispatcher copies back. setup_table and get_status_frames also
// write their frame lists through g.
//
// It returns the hypercall's result as an errno: 0 for success (per-
// element failures are in the elements' status fields), else the error
// to return as -errno in RAX. Every element is processed in one call: no
// continuations.
//
// Ops: map_grant_ref, unmap_grant_ref, unmap_and_replace (the guest can
// map only its own grants: see mapGrantRef), setup_table, query_size,
// copy, set_version, get_version, get_status_frames, swap_grant_ref.
// transfer returns -EOPNOTSUPP, as Xen booted with gnttab=no-transfer
// does; dump_table and cache_flush return -ENOSYS, as Xen does on x86.
func (t *Table) Hypercall(cmd, count uint64, args []byte, g GuestWriter) abi.Errno {
	c, n := uint32(cmd), uint32(count)
	if int32(n) < 0 {
		return abi.EINVAL
	}
	op := c & gnttabopCmdMask
	if op != abi.GNTTABOP_cache_flush && c&^gnttabopCmdMask != 0 {
		return abi.EINVAL
	}
	switch op {
	case abi.GNTTABOP_setup_table, abi.GNTTABOP_query_size, abi.GNTTABOP_get_status_frames:
		if n != 1 {
			return abi.EINVAL
		}
	}
	want := ArgBytes(cmd, count)
	if uint64(len(args)) < want {
		return abi.EFAULT
	}
	size := uint64(argSizes[op])
	each := func(f func(e []byte)) {
		for i := uint64(0); i < uint64(n); i++ {
			f(args[i*size : (i+1)*size])
		}
	}
	switch op {
	case abi.GNTTABOP_map_grant_ref:
		each(t.hcMap)
	case abi.GNTTABOP_unmap_grant_ref:
		each(func(e []byte) { t.hcUnmap(e, false) })
	case abi.GNTTABOP_unmap_and_replace:
		each(func(e []byte) { t.hcUnmap(e, true) })
	case abi.GNTTABOP_setup_table:
		return t.hcSetupTable(args, g)
	case abi.GNTTABOP_transfer:
		return abi.EOPNOTSUPP
	case abi.GNTTABOP_copy:
		each(t.hcCopy)
	case abi.GNTTABOP_query_size:
		t.hcQuerySize(args)
	case abi.GNTTABOP_set_version:
		return t.hcSetVersion(args)
	case abi.GNTTABOP_get_status_frames:
		return t.hcGetStatusFrames(args, g)
	case abi.GNTTABOP_get_version:
		return t.hcGetVersion(args)
	case abi.GNTTABOP_swap_grant_ref:
		each(t.hcSwap)
	default:
		return abi.ENOSYS
	}
	return 0
}

var le = binary.LittleEndian

func putStatus(b []byte, s Status) { le.PutUint16(b, uint16(s)) }

// self reports how Xen's rcu_lock_domain_by_any_id(dom) resolves for the
// guest: itself (DOMID_SELF or its own id), domain 0, or no domain.
type domKind int

const (
	domNone domKind = iota
	domSelf
	dom0
)

func (t *Table) lookupAny(dom uint16) domKind {
	switch {
	case dom == abi.DOMID_SELF || dom == t.domid:
		return domSelf
	case dom == 0:
		return dom0
	}
	return domNone
}

// targetStatus is the GNTST_* answer of the ops that look a domain up by
// any id and then ask XSM_TARGET (setup_table, query_size,
// get_status_frames): a domU may name only itself.
func (t *Table) targetStatus(dom uint16) Status {
	switch t.lookupAny(dom) {
	case domSelf:
		return StatusOkay
	case dom0:
		return StatusPermissionDenied
	}
	return StatusBadDomain
}

func (t *Table) hcMap(e []byte) {
	op := mapOp{
		hostAddr: le.Uint64(e[mapHostAddr:]),
		flags:    le.Uint32(e[mapFlags:]),
		ref:      le.Uint32(e[mapRef:]),
		dom:      le.Uint16(e[mapDom:]),
	}
	t.mapGrantRef(&op)
	putStatus(e[mapStatus:], op.status)
	if op.status == StatusOkay {
		le.PutUint32(e[mapHandle:], op.handle)
		le.PutUint64(e[mapDevBusAddr:], op.devBusAddr)
	}
}

func (t *Table) hcUnmap(e []byte, replace bool) {
	var op unmapOp
	if replace {
		op.hostAddr = le.Uint64(e[urHostAddr:])
		op.newAddr = le.Uint64(e[urNewAddr:])
		op.handle = le.Uint32(e[urHandle:])
	} else {
		op.hostAddr = le.Uint64(e[unmapHostAddr:])
		op.devBusAddr = le.Uint64(e[unmapDevBusAddr:])
		op.handle = le.Uint32(e[unmapHandle:])
	}
	t.unmapCommon(&op)
	if replace {
		putStatus(e[urStatus:], op.status)
	} else {
		putStatus(e[unmapStatus:], op.status)
	}
}

// accessOK is guest_handle_okay for a 64-bit PV guest: the range must not
// wrap and must lie outside the hypervisor's hole [2^47 sign-extended,
// HYPERVISOR_VIRT_END).
func accessOK(va, size uint64) bool {
	const virtEnd = 0xffff880000000000
	end := va + size
	if end < va {
		return false
	}
	if size == 0 {
		return true
	}
	return end <= 1<<47 || va >= virtEnd
}

func (t *Table) hcSetupTable(a []byte, g GuestWriter) abi.Errno {
	dom := le.Uint16(a[setupDom:])
	nr := le.Uint32(a[setupNrFrames:])
	list := le.Uint64(a[setupFrameList:])
	if !accessOK(list, uint64(nr)*8) {
		return abi.EFAULT
	}
	st := t.targetStatus(dom)
	if st == StatusOkay {
		st = t.setupTable(nr, list, g)
	}
	putStatus(a[setupStatus:], st)
	return 0
}

// setupTable is gnttab_setup_table once the domain is found.
func (t *Table) setupTable(nr uint32, list uint64, g GuestWriter) Status {
	t.mu.Lock()
	defer t.mu.Unlock()
	if uint64(nr) > uint64(t.maxFrames) {
		return StatusGeneralError
	}
	if int(nr) > t.nrShared || (t.version > 1 && statusFramesFor(int(nr)) > t.nrStatus) {
		if t.grow(int(nr)) != nil {
			return StatusGeneralError
		}
	}
	var b [8]byte
	for i := 0; i < int(nr); i++ {
		le.PutUint64(b[:], t.allShared[i].mfn)
		if g == nil || g.CopyToGuest(list+uint64(i)*8, b[:]) != nil {
			return StatusBadVirtAddr
		}
	}
	return StatusOkay
}

func (t *Table) hcQuerySize(a []byte) {
	dom := le.Uint16(a[querySizeDom:])
	st := t.targetStatus(dom)
	if st == StatusOkay {
		t.mu.RLock()
		le.PutUint32(a[querySizeNr:], uint32(t.nrShared))
		le.PutUint32(a[querySizeMax:], uint32(t.maxFrames))
		t.mu.RUnlock()
	}
	putStatus(a[querySizeStatus:], st)
}

func (t *Table) hcGetStatusFrames(a []byte, g GuestWriter) abi.Errno {
	nr := le.Uint32(a[sfNrFrames:])
	dom := le.Uint16(a[sfDom:])
	list := le.Uint64(a[sfFrameList:])
	if !accessOK(list, uint64(nr)*8) {
		return abi.EFAULT
	}
	st := t.targetStatus(dom)
	if st == StatusOkay {
		st = t.getStatusFrames(nr, list, g)
	}
	putStatus(a[sfStatus:], st)
	return 0
}

func (t *Table) getStatusFrames(nr uint32, list uint64, g GuestWriter) Status {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if uint64(nr) > uint64(t.nrStatus) {
		return StatusGeneralError
	}
	var b [8]byte
	for i := 0; i < int(nr); i++ {
		le.PutUint64(b[:], t.allStatus[i].mfn)
		if g == nil || g.CopyToGuest(list+uint64(i)*8, b[:]) != nil {
			return StatusBadVirtAddr
		}
	}
	return StatusOkay
}

func (t *Table) hcGetVersion(a []byte) abi.Errno {
	switch t.lookupAny(le.Uint16(a[gvDom:])) {
	case domNone:
		return abi.ESRCH
	case dom0:
		return abi.EPERM // xsm_grant_query_size(XSM_TARGET)
	}
	le.PutUint32(a[gvVersion:], uint32(t.Version()))
	return 0
}

func (t *Table) hcSetVersion(a []byte) abi.Errno {
	v := le.Uint32(a)
	err, cur := t.SetVersion(v)
	le.PutUint32(a, uint32(cur))
	return err
}

// SetVersion is GNTTABOP_set_version: it switches the table to version v
// (1 or 2) and returns the errno (0 on success) and the version now in
// effect. It fails with -EINVAL for another version, -ENOSYS for 2 when
// the table's MaxVersion is 1, -EBUSY while any entry but the 8 reserved
// ones is pinned (mapped or being copied), -EAGAIN while a sub-page grant
// is in use, -ERANGE when a reserved v2 entry has no v1 form, -ENOMEM when
// status frames cannot be had. The switch clears every entry except the
// reserved ones, which it converts.
func (t *Table) SetVersion(v uint32) (abi.Errno, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if v != 1 && v != 2 {
		return abi.EINVAL, t.version
	}
	if v == 2 && t.maxVersion == 1 {
		return abi.ENOSYS, t.version
	}
	if int(v) == t.version {
		return 0, t.version
	}
	nr := t.nrEntries()
	for i := uint32(GNTTAB_NR_RESERVED_ENTRIES); i < nr; i++ {
		if t.act(i).pin != 0 {
			return abi.EBUSY, t.version
		}
	}
	if t.version == 1 {
		if t.populateStatus(t.nrShared) != nil {
			return abi.ENOMEM, t.version
		}
	} else {
		if t.nrV2Ops.Load() != 0 {
			return abi.EAGAIN, t.version
		}
		for i := uint32(0); i < GNTTAB_NR_RESERVED_ENTRIES; i++ {
			b, off := t.entry(i)
			switch uint16(load32(b, off)) & abi.GTF_type_mask {
			case abi.GTF_permit_access:
				if load64(b, off+entV2Frame)>>32 == 0 {
					break
				}
				return abi.ERANGE, t.version
			case abi.GTF_transitive:
				return abi.ERANGE, t.version
			}
		}
	}

	// Keep the reserved entries, in v1 form with the status bits folded
	// into the flags.
	type v1ent struct {
		combo uint32 // flags | domid<<16
		frame uint32
	}
	var keep [GNTTAB_NR_RESERVED_ENTRIES]v1ent
	for i := range keep {
		b, off := t.entry(uint32(i))
		if t.version == 1 {
			keep[i] = v1ent{load32(b, off), load32(b, off+entV1Frame)}
			continue
		}
		combo := load32(b, off)
		if uint16(combo)&abi.GTF_type_mask == abi.GTF_permit_access {
			sflags := uint32(load16(t.status(uint32(i))))
			keep[i] = v1ent{combo | sflags, uint32(load64(b, off+entV2Frame))}
		}
	}
	if t.version == 2 {
		t.nrStatus = 0 // gnttab_unpopulate_status_frames; the pages are kept for reuse
	}
	for _, f := range t.allShared[:t.nrShared] {
		clear(f.page)
	}
	t.version = int(v)
	for i, e := range keep {
		b, off := t.entry(uint32(i))
		if v == 1 {
			store32(b, off+entV1Frame, e.frame)
			store32(b, off, e.combo)
			continue
		}
		store16(t.status(uint32(i)), uint16(e.combo)&(GTF_reading|GTF_writing))
		store64(b, off+entV2Frame, uint64(e.frame))
		store32(b, off, e.combo&^uint32(GTF_reading|GTF_writing))
	}
	return 0, t.version
}

func (t *Table) hcSwap(e []byte) {
	a, b := le.Uint32(e[swapRefA:]), le.Uint32(e[swapRefB:])
	putStatus(e[swapStatus:], t.swapGrantRef(a, b))
}

// swapGrantRef is swap_grant_ref.
func (t *Table) swapGrantRef(a, b uint32) Status {
	t.mu.Lock()
	defer t.mu.Unlock()
	nr := t.nrEntries()
	if a >= nr || b >= nr {
		return StatusBadGntref
	}
	if a == b {
		return StatusOkay
	}
	if t.act(a).pin != 0 || t.act(b).pin != 0 {
		return StatusEagain
	}
	pa, oa := t.entry(a)
	pb, ob := t.entry(b)
	size := uint64(EntrySizeV1)
	if t.version == 2 {
		size = EntrySizeV2
	}
	for w := uint64(0); w < size; w += 4 {
		x, y := load32(pa, oa+w), load32(pb, ob+w)
		store32(pa, oa+w, y)
		store32(pb, ob+w, x)
	}
	if t.version == 2 {
		sa, sb := t.status(a), t.status(b)
		x, y := load16(sa), load16(sb)
		store16(sa, y)
		store16(sb, x)
	}
	return StatusOkay
}

// copyPtr is struct gnttab_copy_ptr.
type copyPtr struct {
	u      uint64 // ref or gmfn
	domid  uint16
	offset uint16
}

// copyOp is struct gnttab_copy.
type copyOp struct {
	src, dst copyPtr
	len      uint16
	flags    uint16
}

func (t *Table) hcCopy(e []byte) {
	op := copyOp{
		src:   copyPtr{le.Uint64(e[copySrcU:]), le.Uint16(e[copySrcDomID:]), le.Uint16(e[copySrcOffset:])},
		dst:   copyPtr{le.Uint64(e[copyDstU:]), le.Uint16(e[copyDstDomID:]), le.Uint16(e[copyDstOffset:])},
		len:   le.Uint16(e[copyLen:]),
		flags: le.Uint16(e[copyFlags:]),
	}
	putStatus(e[copyStatus:], t.guestCopy(&op))
}

// copyBuf is struct gnttab_copy_buf: one side of a copy, claimed.
type copyBuf struct {
	view     grantView
	isGrant  bool
	ref      uint32
	readonly bool
}

// guestCopy is gnttab_copy_one for the guest as the copying domain: each
// side is a grant of the guest itself or of domain 0 (GNTCOPY_*_gref), or
// one of the guest's own frames (with DOMID_SELF).
func (t *Table) guestCopy(op *copyOp) Status {
	if op.len == 0 {
		return StatusOkay
	}
	// gnttab_copy_lock_domains.
	for _, side := range []struct {
		p    copyPtr
		gref bool
	}{{op.src, op.flags&GNTCOPY_source_gref != 0}, {op.dst, op.flags&GNTCOPY_dest_gref != 0}} {
		if side.p.domid != abi.DOMID_SELF && !side.gref {
			return StatusPermissionDenied
		}
		if t.lookupAny(side.p.domid) == domNone {
			return StatusBadDomain
		}
	}
	src, s := t.claim(op.src, op.flags&GNTCOPY_source_gref != 0, true)
	if s != StatusOkay {
		return s
	}
	defer t.release(src)
	dst, s := t.claim(op.dst, op.flags&GNTCOPY_dest_gref != 0, false)
	if s != StatusOkay {
		return s
	}
	defer t.release(dst)
	// gnttab_copy_buf.
	n := int(op.len)
	so, do := int(op.src.offset), int(op.dst.offset)
	if so+n > PageSize || do+n > PageSize {
		return StatusBadCopyArg
	}
	if s, _ := copyRange(so, n, src.view); s != StatusOkay {
		return s
	}
	if s, _ := copyRange(do, n, dst.view); s != StatusOkay {
		return s
	}
	copy(dst.view.page[do:do+n], src.view.page[so:so+n])
	return StatusOkay
}

// claim is gnttab_copy_claim_buf.
func (t *Table) claim(p copyPtr, gref, readonly bool) (copyBuf, Status) {
	b := copyBuf{isGrant: gref, readonly: readonly}
	if gref {
		b.ref = uint32(p.u)
		if t.lookupAny(p.domid) == dom0 {
			s, _ := dom0Grant(b.ref)
			return copyBuf{}, s
		}
		v, s, _ := t.acquireForCopy(t.domid, b.ref, readonly)
		if s != StatusOkay {
			return copyBuf{}, s
		}
		b.view = v
	} else {
		page, s := t.guestPage(p.u)
		if s != StatusOkay {
			return copyBuf{}, s
		}
		b.view = grantView{page: page, gfn: p.u, start: 0, length: PageSize}
	}
	if !readonly && !t.canWrite(b.view.gfn) {
		t.release(b)
		return copyBuf{}, StatusGeneralError
	}
	return b, StatusOkay
}

// release is gnttab_copy_release_buf.
func (t *Table) release(b copyBuf) {
	if b.isGrant && b.view.page != nil {
		t.releaseForCopy(b.ref, b.readonly)
	}
}

func load16(s statusWord) uint16 {
	return uint16(load32(s.b, s.off&^3) >> ((s.off & 3) * 8))
}

// store16 writes a status word; only swapGrantRef uses it, with the
// table locked for writing. The 32-bit CAS keeps the neighbouring status
// word intact against the guest's concurrent updates.
func store16(s statusWord, v uint16) {
	if !s.ok {
		return
	}
	must(storeHalf(s.b, s.off, v))
}

func storeHalf(b []byte, off uint64, v uint16) error {
	if off%2 != 0 {
		return fmt.Errorf("misaligned status word at %d", off)
	}
	base, shift := off&^3, (off&3)*8
	for {
		w := load32(b, base)
		nw := w&^(0xffff<<shift) | uint32(v)<<shift
		if cas32(b, base, w, nw) {
			return nil
		}
	}
}
