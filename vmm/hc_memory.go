package vmm

import (
	"encoding/binary"

	"github.com/xenvmm/xenvmm/vmm/hole"
	"github.com/xenvmm/xenvmm/xenabi/abi"
	"github.com/xenvmm/xenvmm/xenabi/guestmem"
	"golang.org/x/sys/unix"
)

// memory_op (memory.h; Xen's common/memory.c and arch/x86/x86_64/mm.c).

const (
	memopCmdMask     = 0x3f
	memopExtentShift = 6
	e820RAM          = 1
)

// hcMemoryOp: HYPERVISOR_memory_op(cmd, arg).
func (v *VCPU) hcMemoryOp(a hcArgs) uint64 {
	cmd := a[0] & memopCmdMask
	start := a[0] >> memopExtentShift
	v.d.trace.count(abi.HYPERVISOR_memory_op, cmd)
	d := v.d
	switch cmd {
	case abi.XENMEM_machphys_mapping:
		// struct xen_machphys_mapping {v_start, v_end, max_mfn}: the
		// read-only M2P the guest may read.
		covered := d.xenheapPFN + xenheapPages
		var b [24]byte
		binary.LittleEndian.PutUint64(b[0:], hole.M2PStart)
		binary.LittleEndian.PutUint64(b[8:], hole.M2PEnd)
		binary.LittleEndian.PutUint64(b[16:], covered-1)
		if err := v.copyTo(a[1], b[:]); err != nil {
			return errno(abi.EFAULT)
		}
		return 0
	case abi.XENMEM_memory_map:
		// struct xen_memory_map {nr_entries (in/out), buffer}: one RAM
		// range covering the domain's maximum reservation.
		var b [16]byte
		if err := v.copyFrom(a[1], b[:]); err != nil {
			return errno(abi.EFAULT)
		}
		if binary.LittleEndian.Uint32(b[0:]) < 1 {
			return errno(abi.EINVAL)
		}
		var e [20]byte
		binary.LittleEndian.PutUint64(e[0:], 0)
		binary.LittleEndian.PutUint64(e[8:], d.maxPages*guestmem.PageSize)
		binary.LittleEndian.PutUint32(e[16:], e820RAM)
		if err := v.copyTo(binary.LittleEndian.Uint64(b[8:]), e[:]); err != nil {
			return errno(abi.EFAULT)
		}
		binary.LittleEndian.PutUint32(b[0:], 1)
		if err := v.copyTo(a[1], b[:4]); err != nil {
			return errno(abi.EFAULT)
		}
		return 0
	case abi.XENMEM_maximum_ram_page:
		return d.xenheapPFN + xenheapPages - 1
	case abi.XENMEM_current_reservation, abi.XENMEM_maximum_reservation, abi.XENMEM_maximum_gpfn:
		var b [2]byte
		if err := v.copyFrom(a[1], b[:]); err != nil {
			return errno(abi.EFAULT)
		}
		if dom := binary.LittleEndian.Uint16(b[:]); dom != abi.DOMID_SELF && dom != d.domid {
			return errno(abi.ESRCH)
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		switch cmd {
		case abi.XENMEM_current_reservation:
			return d.populated
		case abi.XENMEM_maximum_reservation:
			return d.maxPages
		}
		return d.maxPages - 1
	case abi.XENMEM_increase_reservation, abi.XENMEM_decrease_reservation, abi.XENMEM_populate_physmap:
		return v.reservation(cmd, start, a[1])
	case abi.XENMEM_get_vnumainfo:
		return errno(abi.EOPNOTSUPP)
	case abi.XENMEM_add_to_physmap, abi.XENMEM_add_to_physmap_batch, abi.XENMEM_remove_from_physmap:
		// Only translated guests use these.
		return errno(abi.EINVAL)
	case abi.XENMEM_claim_pages, abi.XENMEM_machine_memory_map, abi.XENMEM_set_memory_map:
		return errno(abi.EPERM)
	}
	d.unknown("memory_op " + itoa(cmd))
	return errno(abi.ENOSYS)
}

// reservation handles increase/decrease_reservation and populate_physmap
// (struct xen_memory_reservation {extent_start, nr_extents, extent_order,
// mem_flags, domid}) for order-0 extents. With the identity P2M, a frame
// given back is unmapped on the host (its memory returned) and comes back
// zeroed when populated again; populate_physmap and increase_reservation
// write the machine frames they hand out into extent_start.
func (v *VCPU) reservation(cmd, start, argVA uint64) uint64 {
	d := v.d
	var b [abi.MemoryReservation]byte
	if err := v.copyFrom(argVA, b[:]); err != nil {
		return errno(abi.EFAULT)
	}
	list := binary.LittleEndian.Uint64(b[0:])
	n := binary.LittleEndian.Uint64(b[8:])
	order := binary.LittleEndian.Uint32(b[16:])
	dom := binary.LittleEndian.Uint16(b[24:])
	if dom != abi.DOMID_SELF && dom != d.domid {
		return errno(abi.ESRCH)
	}
	if order > 9 || n > 1<<30 || start > n {
		return errno(abi.EINVAL)
	}
	pages := uint64(1) << order
	done := start
	for ; done < n; done++ {
		entVA := list + done*8
		switch cmd {
		case abi.XENMEM_decrease_reservation:
			gpfn, err := v.read64(entVA)
			if err != nil {
				return done
			}
			if gpfn+pages > d.maxPages || gpfn%pages != 0 {
				return done
			}
			for p := gpfn; p < gpfn+pages; p++ {
				if d.mmu.typeOf(p) != 0 {
					return done // a page table cannot be given back
				}
			}
			d.releaseFrames(gpfn, pages)
		case abi.XENMEM_populate_physmap:
			gpfn, err := v.read64(entVA)
			if err != nil {
				return done
			}
			if gpfn+pages > d.maxPages || gpfn%pages != 0 || !d.populateFrames(gpfn, pages) {
				return done
			}
			// PV: the list receives the machine frame (identity).
			if err := v.write64(entVA, gpfn); err != nil {
				return done
			}
		case abi.XENMEM_increase_reservation:
			mfn, ok := d.takeReleased(pages)
			if !ok {
				return done
			}
			if list != 0 {
				if err := v.write64(entVA, mfn); err != nil {
					return done
				}
			}
		}
	}
	return done
}

// releaseFrames gives frames back to the host (balloon out).
func (d *Domain) releaseFrames(pfn, n uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for p := pfn; p < pfn+n; p++ {
		if !d.populatedLocked(p) {
			continue
		}
		d.popBits[p/64] &^= 1 << (p % 64)
		d.populated--
		if b, err := d.space.Page(p); err == nil {
			unix.Madvise(b, unix.MADV_DONTNEED)
		}
		d.layout.M2PSet(d.holeMem.Bytes(), p, ^uint64(0))
	}
}

// populateFrames populates the frames at pfn (released ones, or ones above
// the initial reservation up to maxmem), zeroed; false if any is
// populated already.
func (d *Domain) populateFrames(pfn, n uint64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for p := pfn; p < pfn+n; p++ {
		if p >= d.maxPages || d.populatedLocked(p) {
			return false
		}
	}
	for p := pfn; p < pfn+n; p++ {
		d.popBits[p/64] |= 1 << (p % 64)
		d.populated++
		d.layout.M2PSet(d.holeMem.Bytes(), p, p)
		if b, err := d.space.Page(p); err == nil {
			clear(b)
		}
	}
	return true
}

// takeReleased populates one unpopulated frame (order 0 only) for
// increase_reservation and returns it.
func (d *Domain) takeReleased(n uint64) (uint64, bool) {
	if n != 1 {
		return 0, false
	}
	d.mu.Lock()
	pfn, found := uint64(0), false
	for w, bits := range d.popBits {
		if bits != ^uint64(0) {
			for b := uint64(0); b < 64; b++ {
				if p := uint64(w)*64 + b; bits&(1<<b) == 0 && p < d.maxPages {
					pfn, found = p, true
					break
				}
			}
			if found {
				break
			}
		}
	}
	d.mu.Unlock()
	if !found || !d.populateFrames(pfn, 1) {
		return 0, false
	}
	return pfn, true
}

func (d *Domain) populatedLocked(p uint64) bool {
	return p < d.maxPages && d.popBits[p/64]&(1<<(p%64)) != 0
}

// isRAM reports whether machine frame mfn is populated guest RAM.
func (d *Domain) isRAM(mfn uint64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.populatedLocked(mfn)
}
