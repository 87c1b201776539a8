// Package blktest plays the guest for tests and benchmarks of
// devices/blkback: Memory is guest RAM with a grant table (the fake
// grant mapper), Front is a blkfront driving a ring over a page of it
// (with ring.Front), MemStore is a backing store that keeps what was
// synced apart from what was only written, and Harness wires them to a
// blkback.Queue. The VMM-level benchmark reuses it to compare a real
// guest's throughput with the backend's own.
package blktest

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/xenvmm/xenvmm/devices/blkback"
)

// Grant errors, as gnttab's map and copy report them.
var (
	ErrBadRef      = errors.New("blktest: no such grant")
	ErrReadOnly    = errors.New("blktest: grant is read-only")
	ErrBadCopy     = errors.New("blktest: copy beyond the page")
	ErrInjected    = errors.New("blktest: injected grant failure")
	ErrOutOfMemory = errors.New("blktest: out of guest pages")
)

// grant is one entry of the fake grant table.
type grant struct {
	page     int
	readonly bool
	inUse    bool
	pinned   int // backend mappings
}

// Memory is guest RAM (one anonymous mapping, page-aligned as a real
// guest's is) and the grant table the guest uses to share its pages with
// the backend. It implements blkback.Grants. It counts live mappings so
// tests can check that the backend unmaps what it maps.
type Memory struct {
	mem []byte

	mu   sync.Mutex
	free []int
	// grants is indexed by reference; refs 0..7 are reserved, as in
	// Xen's table, and freeRefs is a LIFO of the free ones.
	grants   []grant
	freeRefs []uint32
	// failRef makes Map and the copies of that grant fail (0: none).
	failRef uint32

	live   atomic.Int64
	maps   atomic.Uint64
	copies atomic.Uint64
}

// firstRef is the first grant reference handed out
// (GNTTAB_NR_RESERVED_ENTRIES).
const firstRef = 8

// NewMemory maps pages of guest RAM.
func NewMemory(pages int) (*Memory, error) {
	mem, err := unix.Mmap(-1, 0, pages*blkback.PageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("blktest: mmap guest memory: %w", err)
	}
	m := &Memory{mem: mem, grants: make([]grant, firstRef)}
	for i := pages - 1; i >= 0; i-- {
		m.free = append(m.free, i)
	}
	return m, nil
}

// Close unmaps the memory.
func (m *Memory) Close() error { return unix.Munmap(m.mem) }

// Page returns guest page i.
func (m *Memory) Page(i int) []byte {
	return m.mem[i*blkback.PageSize : (i+1)*blkback.PageSize : (i+1)*blkback.PageSize]
}

// Alloc takes a free page.
func (m *Memory) Alloc() (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.free) == 0 {
		return 0, ErrOutOfMemory
	}
	i := m.free[len(m.free)-1]
	m.free = m.free[:len(m.free)-1]
	return i, nil
}

// Free returns a page.
func (m *Memory) Free(i int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.free = append(m.free, i)
}

// Grant grants page i to the backend and returns the reference: the
// first grant gets reference 8, the next 9, and so on; ended references
// are reused, last ended first.
func (m *Memory) Grant(i int, readonly bool) uint32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ref uint32
	if n := len(m.freeRefs); n > 0 {
		ref = m.freeRefs[n-1]
		m.freeRefs = m.freeRefs[:n-1]
	} else {
		ref = uint32(len(m.grants))
		m.grants = append(m.grants, grant{})
	}
	m.grants[ref] = grant{page: i, readonly: readonly, inUse: true}
	return ref
}

// Revoke ends a grant (gnttab_end_foreign_access). It fails while the
// backend still has the grant mapped, as the guest would see
// GTF_reading/GTF_writing.
func (m *Memory) Revoke(ref uint32) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if uint64(ref) >= uint64(len(m.grants)) || !m.grants[ref].inUse {
		return ErrBadRef
	}
	if m.grants[ref].pinned > 0 {
		return fmt.Errorf("blktest: grant %d still mapped by the backend", ref)
	}
	m.grants[ref] = grant{}
	m.freeRefs = append(m.freeRefs, ref)
	return nil
}

// FailRef makes every map or copy of ref fail with ErrInjected.
func (m *Memory) FailRef(ref uint32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.failRef = ref
}

// LiveMappings is how many backend mappings exist now.
func (m *Memory) LiveMappings() int64 { return m.live.Load() }

// MapCalls and CopyCalls count the backend's grant operations.
func (m *Memory) MapCalls() uint64  { return m.maps.Load() }
func (m *Memory) CopyCalls() uint64 { return m.copies.Load() }

func (m *Memory) lookup(ref uint32, write bool) ([]byte, error) {
	if ref == m.failRef && ref != 0 {
		return nil, ErrInjected
	}
	if uint64(ref) >= uint64(len(m.grants)) || !m.grants[ref].inUse {
		return nil, fmt.Errorf("%w: %d", ErrBadRef, ref)
	}
	g := m.grants[ref]
	if write && g.readonly {
		return nil, fmt.Errorf("%w: %d", ErrReadOnly, ref)
	}
	return m.Page(g.page), nil
}

type mapping struct {
	m    *Memory
	ref  uint32
	mu   sync.Mutex
	page []byte
}

func (p *mapping) Bytes() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.page
}

func (p *mapping) Unmap() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.page == nil {
		return errors.New("blktest: unmap twice")
	}
	p.page = nil
	p.m.live.Add(-1)
	p.m.mu.Lock()
	p.m.grants[p.ref].pinned--
	p.m.mu.Unlock()
	return nil
}

// Map maps a grant for the backend.
func (m *Memory) Map(ref uint32, readonly bool) (blkback.Mapping, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	page, err := m.lookup(ref, !readonly)
	if err != nil {
		return nil, err
	}
	m.maps.Add(1)
	m.live.Add(1)
	m.grants[ref].pinned++
	return &mapping{m: m, ref: ref, page: page}, nil
}

// CopyFrom copies from a granted page.
func (m *Memory) CopyFrom(ref uint32, off int, dst []byte) error {
	return m.copy(ref, off, dst, false)
}

// CopyTo copies into a granted page.
func (m *Memory) CopyTo(ref uint32, off int, src []byte) error {
	return m.copy(ref, off, src, true)
}

func (m *Memory) copy(ref uint32, off int, b []byte, to bool) error {
	m.mu.Lock()
	page, err := m.lookup(ref, to)
	m.mu.Unlock()
	if err != nil {
		return err
	}
	if off < 0 || off > len(page) || len(b) > len(page)-off {
		return ErrBadCopy
	}
	m.copies.Add(1)
	if to {
		copy(page[off:], b)
	} else {
		copy(b, page[off:])
	}
	return nil
}
