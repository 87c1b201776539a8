package blktest

import (
	"errors"
	"sync"

	"github.com/xenvmm/xenvmm/devices/blkback"
)

// ErrInjectedIO is the host I/O error MemStore's failure hooks return.
var ErrInjectedIO = errors.New("blktest: injected I/O error")

// MemStore is a blkback.Store in memory that models the host's page
// cache: Data is what a write put in the host kernel (what survives the
// VMM being killed), Durable what the last Sync made stable (what
// survives the host losing power). It records every call, so tests can
// check that an acknowledged write had reached Data and an acknowledged
// flush had synced it.
type MemStore struct {
	mu       sync.Mutex
	data     []byte
	durable  []byte
	syncs    int
	readOnly bool
	discard  bool
	log      []Op

	// BeforeWrite, if set, runs before a write is applied, outside the
	// lock (a test may block in it); a non-nil error fails the write.
	BeforeWrite func(off int64, n int) error
	// BeforeRead likewise for reads.
	BeforeRead func(off int64, n int) error
	// FailSync makes Sync fail.
	FailSync bool
}

// Op is one recorded call.
type Op struct {
	Kind string // "read", "write", "sync", "discard"
	Off  int64
	Len  int64
}

// NewMemStore makes a store of size bytes, zeroed.
func NewMemStore(size int64, readOnly, discard bool) *MemStore {
	return &MemStore{data: make([]byte, size), durable: make([]byte, size), readOnly: readOnly, discard: discard}
}

// Info describes the store.
func (s *MemStore) Info() blkback.StoreInfo {
	return blkback.StoreInfo{
		Size: int64(len(s.data)), ReadOnly: s.readOnly,
		LogicalBlockSize: blkback.SectorSize, PhysicalBlockSize: blkback.SectorSize,
		Discard: s.discard, DiscardGranularity: blkback.PageSize,
	}
}

// ReadV copies from Data.
func (s *MemStore) ReadV(bufs [][]byte, off int64) error {
	n := total(bufs)
	if h := s.BeforeRead; h != nil {
		if err := h(off, n); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = append(s.log, Op{"read", off, int64(n)})
	if off < 0 || off+int64(n) > int64(len(s.data)) {
		return blkback.ErrShortIO
	}
	for _, b := range bufs {
		off += int64(copy(b, s.data[off:]))
	}
	return nil
}

// WriteV copies into Data.
func (s *MemStore) WriteV(bufs [][]byte, off int64) error {
	if s.readOnly {
		return blkback.ErrReadOnly
	}
	n := total(bufs)
	if h := s.BeforeWrite; h != nil {
		if err := h(off, n); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = append(s.log, Op{"write", off, int64(n)})
	if off < 0 || off+int64(n) > int64(len(s.data)) {
		return blkback.ErrShortIO
	}
	for _, b := range bufs {
		off += int64(copy(s.data[off:], b))
	}
	return nil
}

// Sync makes Data durable.
func (s *MemStore) Sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = append(s.log, Op{Kind: "sync"})
	if s.FailSync {
		return ErrInjectedIO
	}
	copy(s.durable, s.data)
	s.syncs++
	return nil
}

// Discard zeroes the range (as punching a hole does).
func (s *MemStore) Discard(off, n int64, secure bool) error {
	if s.readOnly {
		return blkback.ErrReadOnly
	}
	if !s.discard || secure {
		return blkback.ErrNotSupported
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = append(s.log, Op{"discard", off, n})
	clear(s.data[off : off+n])
	return nil
}

// Close does nothing.
func (s *MemStore) Close() error { return nil }

// Data returns a copy of [off, off+n) as written.
func (s *MemStore) Data(off, n int64) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.data[off:off+n]...)
}

// Durable returns a copy of [off, off+n) as last synced.
func (s *MemStore) Durable(off, n int64) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.durable[off:off+n]...)
}

// Fill sets the store's data (written and durable) at off.
func (s *MemStore) Fill(off int64, b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	copy(s.data[off:], b)
	copy(s.durable[off:], b)
}

// Syncs is how many Syncs succeeded.
func (s *MemStore) Syncs() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.syncs
}

// Log returns the calls so far.
func (s *MemStore) Log() []Op {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Op(nil), s.log...)
}

func total(bufs [][]byte) int {
	n := 0
	for _, b := range bufs {
		n += len(b)
	}
	return n
}
