package gnttab

import (
	"errors"
	"fmt"
	"io"
	"sync"
)

// BackendDomID is the domain id of xenvmm's in-process backends: they act
// as domain 0, so the guest grants them access with entries whose domid
// is 0.
const BackendDomID = 0

// ErrReadOnly is returned by Mapping.WriteAt on a read-only mapping.
var ErrReadOnly = errors.New("gnttab: write to a read-only grant mapping")

// Mapping is a backend's mapping of one granted guest page, the
// equivalent of a dom0 GNTTABOP_map_grant_ref with GNTMAP_host_map: while
// it exists the grant entry is pinned, and the guest sees GTF_reading (and
// GTF_writing for a writable mapping) in the entry's status, so its
// gnttab_end_foreign_access finds the entry busy. A guest that revokes
// the grant anyway does not invalidate the mapping; it stays usable until
// Unmap, as on Xen.
//
// A Mapping may be used from several goroutines; Unmap must not race with
// uses of Bytes' slice.
type Mapping struct {
	t        *Table
	ref      uint32
	readonly bool
	gfn      uint64

	mu   sync.Mutex
	page []byte // nil once unmapped
}

// MapGrant maps grant ref of domain dom for the backends (domain 0),
// read-only or writable, as map_grant_ref does for a dom0 host mapping.
// It fails, with an *OpError holding Xen's GNTST_* status, when dom is not
// the guest (GNTST_bad_domain), ref is beyond the table
// (GNTST_bad_gntref), the entry is not a full-page GTF_permit_access grant
// to domain 0, is read-only and a writable map is asked for, changes under
// us more than Xen tolerates, or is already pinned for another domain
// (GNTST_general_error), or the frame is not guest memory
// (GNTST_bad_page). Mapping the same grant several times is allowed;
// each Mapping is unmapped on its own.
func (t *Table) MapGrant(dom uint16, ref uint32, readonly bool) (*Mapping, error) {
	fail := func(s Status, why string) (*Mapping, error) {
		return nil, &OpError{Op: "map", Dom: dom, Ref: ref, Status: s, Reason: why}
	}
	if dom != t.domid {
		return fail(StatusBadDomain, fmt.Sprintf("could not find domain %d", dom))
	}
	inc := uint32(pinHstwInc)
	if readonly {
		inc = pinHstrInc
	}
	gfn, page, s, why := t.pinForMap(BackendDomID, ref, inc, readonly)
	if s != StatusOkay {
		return fail(s, why)
	}
	// A foreign writable host mapping takes a writable type reference
	// (gnttab_host_mapping_get_page_type).
	if !readonly && !t.canWrite(gfn) {
		t.unpin(ref, inc, readonly)
		return fail(StatusGeneralError, fmt.Sprintf("could not pin grant frame %#x", gfn))
	}
	return &Mapping{t: t, ref: ref, readonly: readonly, gfn: gfn, page: page}, nil
}

// Ref is the grant reference mapped.
func (m *Mapping) Ref() uint32 { return m.ref }

// ReadOnly says whether the mapping is read-only.
func (m *Mapping) ReadOnly() bool { return m.readonly }

// GFN is the guest frame granted (also its MFN, with xenvmm's identity
// P2M): what Xen returns as dev_bus_addr >> 12.
func (m *Mapping) GFN() uint64 { return m.gfn }

// Bytes returns the granted page (PageSize bytes, aliasing guest memory),
// or nil once unmapped. The backend must not write through the slice of
// a read-only mapping.
func (m *Mapping) Bytes() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.page
}

// ReadAt copies from the granted page at off into p. It implements
// io.ReaderAt; reading past the page returns io.EOF with what was read.
func (m *Mapping) ReadAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.page == nil {
		return 0, ErrUnmapped
	}
	if off < 0 || off > PageSize {
		return 0, fmt.Errorf("gnttab: read at %d: %w", off, StatusBadCopyArg)
	}
	n := copy(p, m.page[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// WriteAt copies p into the granted page at off. It implements
// io.WriterAt; p must fit in the page.
func (m *Mapping) WriteAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.page == nil {
		return 0, ErrUnmapped
	}
	if m.readonly {
		return 0, ErrReadOnly
	}
	if off < 0 || off > PageSize || int64(len(p)) > PageSize-off {
		return 0, fmt.Errorf("gnttab: write of %d bytes at %d: %w", len(p), off, StatusBadCopyArg)
	}
	return copy(m.page[off:], p), nil
}

// Unmap ends the mapping: the pin is dropped, and when it was the last
// (writable) pin GTF_reading (GTF_writing) is cleared in the entry's
// status. A second Unmap returns ErrUnmapped.
func (m *Mapping) Unmap() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.page == nil {
		return ErrUnmapped
	}
	m.page = nil
	inc := uint32(pinHstwInc)
	if m.readonly {
		inc = pinHstrInc
	}
	m.t.unpin(m.ref, inc, m.readonly)
	return nil
}

// CopyFromGrant copies len(dst) bytes at offset off of the page granted
// by grant ref of domain dom into dst: a GNTTABOP_copy by domain 0 with
// GNTCOPY_source_gref (netback's TX path). CopyToGrant copies src into the
// granted page at off (GNTCOPY_dest_gref: netback's RX path, blkback
// reads). Both check as Xen's gnttab_copy does: the domain, the grant
// (GTF_permit_access or a v2 sub-page grant to domain 0; not read-only
// for CopyToGrant), then the range: off+len beyond the page is
// GNTST_bad_copy_arg, outside a sub-page grant's range
// GNTST_general_error. A zero length succeeds without looking at the
// grant, as in Xen. Errors are *OpError.
func (t *Table) CopyFromGrant(dom uint16, ref uint32, off int, dst []byte) error {
	return t.copyGrant("copy from", dom, ref, off, dst, true)
}

// CopyToGrant: see CopyFromGrant.
func (t *Table) CopyToGrant(dom uint16, ref uint32, off int, src []byte) error {
	return t.copyGrant("copy to", dom, ref, off, src, false)
}

func (t *Table) copyGrant(op string, dom uint16, ref uint32, off int, buf []byte, readonly bool) error {
	if len(buf) == 0 {
		return nil
	}
	fail := func(s Status, why string) error {
		return &OpError{Op: op, Dom: dom, Ref: ref, Status: s, Reason: why}
	}
	if dom != t.domid {
		return fail(StatusBadDomain, fmt.Sprintf("could not find domain %d", dom))
	}
	v, s, why := t.acquireForCopy(BackendDomID, ref, readonly)
	if s != StatusOkay {
		return fail(s, why)
	}
	defer t.releaseForCopy(ref, readonly)
	if !readonly && !t.canWrite(v.gfn) {
		return fail(StatusGeneralError, fmt.Sprintf("could not get writable frame %#x", v.gfn))
	}
	if s, why := copyRange(off, len(buf), v); s != StatusOkay {
		return fail(s, why)
	}
	if readonly {
		copy(buf, v.page[off:])
	} else {
		copy(v.page[off:], buf)
	}
	return nil
}

// copyRange is the range check of gnttab_copy_buf for one side of a copy.
func copyRange(off, n int, v grantView) (Status, string) {
	if off < 0 || n < 0 || off > PageSize || n > PageSize-off {
		return StatusBadCopyArg, "copy beyond page area"
	}
	if off < int(v.start) || off+n > int(v.start)+int(v.length) {
		return StatusGeneralError, fmt.Sprintf("copy out of bounds: [%d, %d) not in [%d, %d)", off, off+n, v.start, int(v.start)+int(v.length))
	}
	return StatusOkay, ""
}
