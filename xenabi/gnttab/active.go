package gnttab

import (
	"fmt"
	"sync"

	"github.com/xenvmm/xenvmm/xenabi/abi"
	"github.com/xenvmm/xenvmm/xenabi/guestmem"
)

// Pin counters of struct active_grant_entry (xen/common/grant_table.c):
// four byte-wide reference counts packed in one word, for writable and
// read-only host-CPU and device mappings. Copies pin as host mappings.
const (
	pinCntrWidth = 8
	pinHstwInc   = 1 << 0
	pinHstrInc   = 1 << 8
	pinDevwInc   = 1 << 16
	pinDevrInc   = 1 << 24
	pinHstwMask  = 0xff << 0
	pinDevwMask  = 0xff << 16
)

// pinOverflow is GNTPIN_incr2oflow_mask: a counter that reached 128 may
// not be incremented again.
func pinOverflow(inc uint32) uint32 { return inc << (pinCntrWidth - 1) }

// active is struct active_grant_entry: the hypervisor's private shadow of
// a grant entry while it is pinned. The first pin records whom the entry
// is pinned for and which frame it grants; later pins reuse that record
// without re-reading the guest's entry.
type active struct {
	mu sync.Mutex // the entry's spinlock; taken with Table.mu held
	// pin holds the packed pin counters; non-zero means in use.
	pin uint32
	// domid is the domain the entry is pinned for.
	domid uint16
	// gfn and page are the granted frame.
	gfn  uint64
	page []byte
	// start and length bound the accessible bytes of a sub-page grant
	// (0 and PageSize otherwise). Xen keeps start in 15 bits; it is kept
	// whole here.
	start, length uint16
	isSubPage     bool
}

// setStatus is _set_status (_set_status_v1/_set_status_v2): it checks that
// entry ref grants ldom access of the right type, and marks it
// GTF_reading (and GTF_writing unless readonly) where the guest sees it.
// mapflag forbids sub-page grants (and, in v2, transitive ones). Both
// locks are held.
func (t *Table) setStatus(ref uint32, act *active, readonly, mapflag bool, ldom uint16) (Status, string) {
	b, off := t.entry(ref)
	mask := uint16(abi.GTF_type_mask)
	if mapflag {
		mask |= GTF_sub_page
	}
	if t.version == 1 {
		return setStatusV1(b, off, act, readonly, mask, ldom)
	}
	return setStatusV2(b, off, t.status(ref), act, readonly, mapflag, mask, ldom)
}

func setStatusV1(b []byte, off uint64, act *active, readonly bool, mask uint16, ldom uint16) (Status, string) {
	// Xen bounds its cmpxchg retries: a guest that keeps changing the
	// entry could otherwise livelock it. Valid races (the guest toggling
	// GTF_readonly) settle within a few tries.
	scombo := load32(b, off)
	for retries := 0; ; retries++ {
		flags, domid := uint16(scombo), uint16(scombo>>16)
		if act.pin == 0 && (flags&mask != abi.GTF_permit_access || domid != ldom) {
			return StatusGeneralError, fmt.Sprintf("bad flags (%#x) or dom (%d); expected d%d", flags, domid, ldom)
		}
		nflags := flags | GTF_reading
		if !readonly {
			nflags |= GTF_writing
			if flags&GTF_readonly != 0 {
				return StatusGeneralError, "attempt to write-pin a r/o grant entry"
			}
		}
		ncombo := scombo&0xffff0000 | uint32(nflags)
		if cas32(b, off, scombo, ncombo) {
			return StatusOkay, ""
		}
		if retries == 4 {
			return StatusGeneralError, "shared grant entry is unstable"
		}
		scombo = load32(b, off)
	}
}

func setStatusV2(b []byte, off uint64, st statusWord, act *active, readonly, mapflag bool, mask uint16, ldom uint16) (Status, string) {
	bad := func(combo uint32) bool {
		flags, domid := uint16(combo), uint16(combo>>16)
		typ := flags & mask
		return (typ != abi.GTF_permit_access && (mapflag || typ != abi.GTF_transitive)) || domid != ldom
	}
	scombo := load32(b, off)
	if act.pin == 0 && bad(scombo) {
		return StatusGeneralError, fmt.Sprintf("bad flags (%#x) or dom (%d); expected d%d", uint16(scombo), uint16(scombo>>16), ldom)
	}
	if readonly {
		st.set(GTF_reading)
	} else {
		if uint16(scombo)&GTF_readonly != 0 {
			return StatusGeneralError, "attempt to write-pin a r/o grant entry"
		}
		st.set(GTF_reading | GTF_writing)
	}
	// The guest revokes a v2 grant by clearing hdr.flags and then reading
	// the status: re-read the entry after publishing the status, so that
	// either the guest sees the entry busy or we see it revoked.
	scombo = load32(b, off)
	if act.pin == 0 {
		if bad(scombo) || (!readonly && uint16(scombo)&GTF_readonly != 0) {
			st.clear(GTF_writing | GTF_reading)
			return StatusGeneralError, fmt.Sprintf("unstable flags (%#x) or dom (%d); expected d%d", uint16(scombo), uint16(scombo>>16), ldom)
		}
	} else if uint16(scombo)&GTF_readonly != 0 {
		st.clear(GTF_writing)
		return StatusGeneralError, "unstable grant readonly flag"
	}
	return StatusOkay, ""
}

// reduceStatusForPin is reduce_status_for_pin: it clears GTF_reading once
// nothing pins the entry, and GTF_writing once nothing pins it writable.
func reduceStatusForPin(act *active, st statusWord, readonly bool) {
	var clr uint8
	if act.pin == 0 {
		clr = GTF_reading
	}
	if !readonly && act.pin&(pinHstwMask|pinDevwMask) == 0 {
		clr |= GTF_writing
	}
	st.clear(clr)
}

// pinForMap is the part of map_grant_ref that works on the granting
// domain's table: it pins entry ref for ldom by inc (GNTPIN_*_inc) and
// returns the granted frame. A failure leaves the entry as it was.
func (t *Table) pinForMap(ldom uint16, ref uint32, inc uint32, readonly bool) (uint64, []byte, Status, string) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if ref >= t.nrEntries() {
		return 0, nil, StatusBadGntref, fmt.Sprintf("bad ref %#x for d%d", ref, t.domid)
	}
	act := t.act(ref)
	act.mu.Lock()
	defer act.mu.Unlock()
	if act.pin != 0 && (act.domid != ldom || act.pin&pinOverflow(inc) != 0 || act.isSubPage) {
		return 0, nil, StatusGeneralError, fmt.Sprintf("bad domain (%d != %d), or risk of counter overflow %08x, or subpage %v", act.domid, ldom, act.pin, act.isSubPage)
	}
	if act.pin == 0 || (!readonly && act.pin&(pinHstwMask|pinDevwMask) == 0) {
		if st, why := t.setStatus(ref, act, readonly, true, ldom); st != StatusOkay {
			return 0, nil, st, why
		}
		if act.pin == 0 {
			gfn := t.entryFrame(ref)
			page, st := t.guestPage(gfn)
			if st != StatusOkay {
				reduceStatusForPin(act, t.status(ref), readonly)
				return 0, nil, st, fmt.Sprintf("frame %#x is not the guest's", gfn)
			}
			act.domid = ldom
			act.gfn, act.page = gfn, page
			act.start, act.length, act.isSubPage = 0, PageSize, false
		}
	}
	act.pin += inc
	return act.gfn, act.page, StatusOkay, ""
}

// unpin drops a pin taken by pinForMap or acquireForCopy
// (unmap_common_complete, release_grant_for_copy).
func (t *Table) unpin(ref uint32, inc uint32, readonly bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	act := t.act(ref)
	act.mu.Lock()
	defer act.mu.Unlock()
	act.pin -= inc
	reduceStatusForPin(act, t.status(ref), readonly)
	if act.pin == 0 && act.isSubPage {
		act.isSubPage = false
		t.nrV2Ops.Add(-1)
	}
}

// entryFrame reads the frame an entry grants: grant_entry_v1.frame or
// grant_entry_v2.full_page.frame (which sub_page.frame shares). mu held.
func (t *Table) entryFrame(ref uint32) uint64 {
	b, off := t.entry(ref)
	if t.version == 1 {
		return uint64(load32(b, off+entV1Frame))
	}
	return load64(b, off+entV2Frame)
}

// grantView is what acquireForCopy yields: the granted page and the
// accessible range [start, start+length) within it.
type grantView struct {
	page          []byte
	gfn           uint64
	start, length uint16
}

// acquireForCopy is acquire_grant_for_copy for this table as the granting
// domain: it pins entry ref for ldom (read-only or writable) and returns
// the granted page and the accessible range. Sub-page grants are allowed;
// transitive grants are followed as Xen does, which in xenvmm always
// fails (their only possible target is domain 0, whose table holds no
// grants).
func (t *Table) acquireForCopy(ldom uint16, ref uint32, readonly bool) (grantView, Status, string) {
	inc := uint32(pinHstwInc)
	if readonly {
		inc = pinHstrInc
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	if ref >= t.nrEntries() {
		return grantView{}, StatusBadGntref, fmt.Sprintf("bad grant reference %#x", ref)
	}
	act := t.act(ref)
	act.mu.Lock()
	defer act.mu.Unlock()
	if act.pin != 0 && (act.domid != ldom || act.pin&pinOverflow(inc) != 0) {
		return grantView{}, StatusGeneralError, fmt.Sprintf("bad domain (%d != %d), or risk of counter overflow %08x", act.domid, ldom, act.pin)
	}
	st := t.status(ref)
	oldPin := act.pin
	needStatus := oldPin == 0 || (!readonly && oldPin&(pinDevwMask|pinHstwMask) == 0)
	b, off := t.entry(ref)
	flags := uint16(load32(b, off))
	switch {
	case t.version == 2 && flags&abi.GTF_type_mask == abi.GTF_transitive:
		if needStatus {
			if s, why := t.setStatus(ref, act, readonly, false, ldom); s != StatusOkay {
				return grantView{}, s, why
			}
		}
		fail := func(s Status, why string) (grantView, Status, string) {
			reduceStatusForPin(act, st, readonly)
			return grantView{}, s, why
		}
		transDom := uint16(load32(b, off+entV2TransDo))
		transRef := load32(b, off+entV2TransRf)
		switch transDom {
		case t.domid:
			return fail(StatusGeneralError, "transitive grants cannot be self-referential")
		case 0:
			// acquire_grant_for_copy(dom0, trans_gref, ...): domain 0's
			// table is all GTF_invalid entries.
			s, why := dom0Grant(transRef)
			return fail(s, why)
		default:
			return fail(StatusGeneralError, fmt.Sprintf("transitive grant referenced bad domain %d", transDom))
		}
	case needStatus:
		if s, why := t.setStatus(ref, act, readonly, false, ldom); s != StatusOkay {
			return grantView{}, s, why
		}
		gfn := t.entryFrame(ref)
		start, length, sub := uint16(0), uint16(PageSize), false
		if t.version == 2 && flags&GTF_sub_page != 0 {
			w := load32(b, off+entV2PageOff)
			start, length, sub = uint16(w), uint16(w>>16), true
		}
		page, s := t.guestPage(gfn)
		if s != StatusOkay {
			reduceStatusForPin(act, st, readonly)
			return grantView{}, s, fmt.Sprintf("frame %#x is not the guest's", gfn)
		}
		if act.pin == 0 {
			act.domid = ldom
			act.isSubPage = sub
			act.start, act.length = start, length
			act.gfn, act.page = gfn, page
			if sub {
				t.nrV2Ops.Add(1)
			}
		} else if act.gfn != gfn || (act.isSubPage && (!sub || act.start != start || act.length != length)) {
			reduceStatusForPin(act, st, readonly)
			return grantView{}, StatusGeneralError, "grant entry changed while pinned"
		}
	}
	act.pin += inc
	return grantView{page: act.page, gfn: act.gfn, start: act.start, length: act.length}, StatusOkay, ""
}

// releaseForCopy is release_grant_for_copy.
func (t *Table) releaseForCopy(ref uint32, readonly bool) {
	inc := uint32(pinHstwInc)
	if readonly {
		inc = pinHstrInc
	}
	t.unpin(ref, inc, readonly)
}

// dom0Grant is the answer of domain 0's grant table, as a guest or a
// transitive grant sees it: domain 0 (the VMM's own backends) grants
// nothing, so its table is Xen's initial one, a single frame of
// GTF_invalid v1 entries.
func dom0Grant(ref uint32) (Status, string) {
	if ref >= EntriesPerFrameV1 {
		return StatusBadGntref, fmt.Sprintf("bad ref %#x for d0", ref)
	}
	return StatusGeneralError, "bad flags (0) or dom (0) in d0's table"
}

// Shared-memory accessors. Offsets are computed by this package within
// pages whose length was checked to be PageSize, so the errors that
// guestmem returns for misaligned or out-of-range offsets cannot happen;
// one would be a bug here, not bad guest input.

func must(err error) {
	if err != nil {
		panic(fmt.Sprintf("gnttab: internal error: %v", err))
	}
}

func load32(b []byte, off uint64) uint32 {
	v, err := guestmem.Load32(b, off)
	must(err)
	return v
}

func load64(b []byte, off uint64) uint64 {
	v, err := guestmem.Load64(b, off)
	must(err)
	return v
}

func store32(b []byte, off uint64, v uint32) { must(guestmem.Store32(b, off, v)) }

func store64(b []byte, off uint64, v uint64) { must(guestmem.Store64(b, off, v)) }

func cas32(b []byte, off uint64, old, new uint32) bool {
	ok, err := guestmem.CAS32(b, off, old, new)
	must(err)
	return ok
}

func or8(b []byte, off uint64, m uint8) {
	_, err := guestmem.Or8(b, off, m)
	must(err)
}

func and8(b []byte, off uint64, m uint8) {
	_, err := guestmem.And8(b, off, m)
	must(err)
}
