package blkback

import (
	"fmt"
	"sync"

	"github.com/xenvmm/xenvmm/xenabi/gnttab"
)

// Mapping is a backend's mapping of one granted page:
// *gnttab.Mapping, or a test's fake.
type Mapping interface {
	// Bytes is the page (PageSize bytes, aliasing guest memory), nil once
	// unmapped.
	Bytes() []byte
	Unmap() error
}

// Grants reaches the pages one frontend grants to the backend: the
// frontend's domain is bound in. Map is GNTTABOP_map_grant_ref with
// GNTMAP_host_map (read-only for data the guest writes to disk, writable
// for data read into the guest); CopyFrom and CopyTo are GNTTABOP_copy
// with a grant reference on one side.
type Grants interface {
	Map(ref uint32, readonly bool) (Mapping, error)
	CopyFrom(ref uint32, off int, dst []byte) error
	CopyTo(ref uint32, off int, src []byte) error
}

// GrantMapper is the grant-table side the VMM gives its backends
// (xenbus.Host's Grants(), *gnttab.Table).
type GrantMapper interface {
	MapGrant(dom uint16, ref uint32, readonly bool) (*gnttab.Mapping, error)
	CopyFromGrant(dom uint16, ref uint32, off int, dst []byte) error
	CopyToGrant(dom uint16, ref uint32, off int, src []byte) error
}

// DomainGrants binds a GrantMapper to the frontend's domain.
type DomainGrants struct {
	M   GrantMapper
	Dom uint16
}

// Map maps ref of the frontend's domain.
func (g DomainGrants) Map(ref uint32, readonly bool) (Mapping, error) {
	m, err := g.M.MapGrant(g.Dom, ref, readonly)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// CopyFrom copies from the granted page at off into dst.
func (g DomainGrants) CopyFrom(ref uint32, off int, dst []byte) error {
	return g.M.CopyFromGrant(g.Dom, ref, off, dst)
}

// CopyTo copies src into the granted page at off.
func (g DomainGrants) CopyTo(ref uint32, off int, src []byte) error {
	return g.M.CopyToGrant(g.Dom, ref, off, src)
}

// persistentGrants is the backend's half of feature-persistent
// (blkif.h, notes 7 and 8): grants stay mapped, writable, from first use
// until the ring is torn down, since the frontend reuses the same set.
// At most limit grants are kept; beyond that, and for a grant the
// frontend made read-only after all, a request maps and unmaps as
// without the feature.
type persistentGrants struct {
	g     Grants
	limit int

	mu sync.Mutex
	m  map[uint32]Mapping
}

func newPersistentGrants(g Grants, limit int) *persistentGrants {
	return &persistentGrants{g: g, limit: limit, m: map[uint32]Mapping{}}
}

// get returns the persistent mapping of ref, mapping it if there is room;
// ok is false when the caller must map it itself.
func (p *persistentGrants) get(ref uint32) (Mapping, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if m, ok := p.m[ref]; ok {
		return m, true
	}
	if len(p.m) >= p.limit {
		return nil, false
	}
	m, err := p.g.Map(ref, false)
	if err != nil {
		return nil, false
	}
	p.m[ref] = m
	return m, true
}

func (p *persistentGrants) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.m)
}

// unmapAll unmaps every persistent grant; no request may be using them.
func (p *persistentGrants) unmapAll() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var first error
	for ref, m := range p.m {
		if err := m.Unmap(); err != nil && first == nil {
			first = fmt.Errorf("blkback: unmap persistent grant %d: %w", ref, err)
		}
		delete(p.m, ref)
	}
	return first
}
