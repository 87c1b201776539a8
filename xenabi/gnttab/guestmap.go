package gnttab

import "sync"

// maptrack is the guest's table of its own grant mappings (struct
// grant_mapping), indexed by the handle map_grant_ref returns.
type maptrack struct {
	mu    sync.Mutex
	ents  []mapEntry // guarded by mu
	free  []uint32   // guarded by mu
	limit int        // max handles: max_maptrack_frames * MAPTRACK_PER_PAGE
}

// mapEntry is struct grant_mapping: flags (GNTMAP_* bits 0-4, 0 for a
// free handle), the grant ref and the granting domain.
type mapEntry struct {
	ref   uint32
	flags uint16
	domid uint16
}

// get is get_maptrack_handle.
func (m *maptrack) get() (uint32, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if n := len(m.free); n > 0 {
		h := m.free[n-1]
		m.free = m.free[:n-1]
		return h, true
	}
	if len(m.ents) >= m.limit {
		return 0, false
	}
	m.ents = append(m.ents, mapEntry{})
	return uint32(len(m.ents) - 1), true
}

// put is put_maptrack_handle.
func (m *maptrack) put(h uint32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ents[h] = mapEntry{}
	m.free = append(m.free, h)
}

// lookup returns handle h's entry, ok false for an unknown handle.
func (m *maptrack) lookup(h uint32) (mapEntry, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if uint64(h) >= uint64(len(m.ents)) {
		return mapEntry{}, false
	}
	return m.ents[h], true
}

// GuestMaps reports how many of the guest's own grant mappings exist
// (maptrack handles in use).
func (t *Table) GuestMaps() int {
	t.mt.mu.Lock()
	defer t.mt.mu.Unlock()
	return len(t.mt.ents) - len(t.mt.free)
}

// mapOp holds struct gnttab_map_grant_ref's fields.
type mapOp struct {
	hostAddr uint64
	flags    uint32
	ref      uint32
	dom      uint16
	// out
	status     Status
	handle     uint32
	devBusAddr uint64
}

// mapGrantRef is map_grant_ref for the guest as the mapping domain. The
// only domains it can name are itself and domain 0 (whose table grants
// nothing); any other is GNTST_bad_domain, as is DOMID_SELF (Xen looks
// the domain up with rcu_lock_domain_by_id).
func (t *Table) mapGrantRef(op *mapOp) {
	ro := op.flags&GNTMAP_readonly != 0
	var inc uint32
	if op.flags&GNTMAP_device_map != 0 {
		inc += pick(ro, pinDevrInc, pinDevwInc)
	}
	if op.flags&GNTMAP_host_map != 0 {
		inc += pick(ro, pinHstrInc, pinHstwInc)
	}
	if inc == 0 {
		op.status = StatusBadGntref
		return
	}
	if op.dom != t.domid && op.dom != 0 {
		op.status = StatusBadDomain
		return
	}
	h, ok := t.mt.get()
	if !ok {
		op.status = StatusNoSpace
		return
	}
	if op.dom == 0 {
		op.status, _ = dom0Grant(op.ref)
		t.mt.put(h)
		return
	}
	gfn, _, s, _ := t.pinForMap(t.domid, op.ref, inc, ro)
	if s != StatusOkay {
		op.status = s
		t.mt.put(h)
		return
	}
	undo := func(s Status) {
		t.unpin(op.ref, inc, ro)
		op.status = s
		t.mt.put(h)
	}
	// The page is the guest's own (owner == rd): a writable device
	// mapping and, for PV, a writable host mapping take a writable type
	// reference.
	if !ro && !t.canWrite(gfn) {
		undo(StatusGeneralError)
		return
	}
	if op.flags&GNTMAP_host_map != 0 {
		s := StatusGeneralError
		if t.hostMapper != nil {
			s = t.hostMapper.CreateGrantMapping(op.hostAddr, gfn, op.flags)
		}
		if s != StatusOkay {
			undo(s)
			return
		}
	}
	t.mt.mu.Lock()
	t.mt.ents[h] = mapEntry{ref: op.ref, flags: uint16(op.flags), domid: op.dom}
	t.mt.mu.Unlock()
	op.devBusAddr = gfn << 12
	op.handle = h
	op.status = StatusOkay
}

func pick(c bool, a, b uint32) uint32 {
	if c {
		return a
	}
	return b
}

// unmapOp holds struct gnttab_unmap_grant_ref's fields, and
// gnttab_unmap_and_replace's (newAddr).
type unmapOp struct {
	hostAddr   uint64
	devBusAddr uint64
	newAddr    uint64
	handle     uint32
	status     Status
}

// unmapCommon is unmap_common followed by unmap_common_complete. As in
// Xen, a zero host_addr or dev_bus_addr means "not this part"; so a
// device mapping of frame 0 (never a domU's frame on Xen, but guest RAM
// in xenvmm) cannot be unmapped, and keeps its handle and pin.
func (t *Table) unmapCommon(op *unmapOp) {
	me, ok := t.mt.lookup(op.handle)
	if !ok || me.flags == 0 {
		op.status = StatusBadHandle
		return
	}
	// The only domain whose grants can be mapped is the guest itself.
	t.mu.RLock()
	defer t.mu.RUnlock()
	if me.ref >= t.nrEntries() {
		op.status = StatusBadHandle
		return
	}
	act := t.act(me.ref)
	act.mu.Lock()
	defer act.mu.Unlock()
	// Re-read the handle under the entry lock: a racing unmap of the same
	// handle must find it gone.
	t.mt.mu.Lock()
	cur := t.mt.ents[op.handle]
	t.mt.mu.Unlock()
	if cur.flags == 0 || cur != me {
		op.status = StatusBadHandle
		return
	}
	flags := uint32(me.flags)
	mfn := act.gfn
	if op.devBusAddr != 0 && flags&GNTMAP_device_map != 0 && op.devBusAddr != mfn<<12 {
		op.status = StatusBadDevAddr
		return
	}
	var done uint32
	if op.hostAddr != 0 && flags&GNTMAP_host_map != 0 {
		s := StatusGeneralError
		if t.hostMapper != nil {
			s = t.hostMapper.ReplaceGrantMapping(op.hostAddr, mfn, op.newAddr, flags)
		}
		if s != StatusOkay {
			op.status = s
			return
		}
		cur.flags &^= GNTMAP_host_map
		done |= GNTMAP_host_map
	}
	if op.devBusAddr != 0 && flags&GNTMAP_device_map != 0 {
		cur.flags &^= GNTMAP_device_map
		done |= GNTMAP_device_map
	}
	t.mt.mu.Lock()
	if cur.flags&(GNTMAP_device_map|GNTMAP_host_map) == 0 {
		t.mt.ents[op.handle] = mapEntry{}
		t.mt.free = append(t.mt.free, op.handle)
	} else {
		t.mt.ents[op.handle] = cur
	}
	t.mt.mu.Unlock()
	op.status = StatusOkay

	// unmap_common_complete.
	ro := flags&GNTMAP_readonly != 0
	if done&GNTMAP_device_map != 0 {
		act.pin -= pick(ro, pinDevrInc, pinDevwInc)
	}
	if done&GNTMAP_host_map != 0 {
		act.pin -= pick(ro, pinHstrInc, pinHstwInc)
	}
	if done != 0 {
		reduceStatusForPin(act, t.status(me.ref), ro)
	}
}
