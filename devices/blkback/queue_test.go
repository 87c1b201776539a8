package blkback_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/xenvmm/xenvmm/devices/blkback"
	"github.com/xenvmm/xenvmm/devices/blkback/blktest"
	"github.com/xenvmm/xenvmm/devices/ring"
)

// newTestLogger logs at Debug into buf, guarded by mu.
func newTestLogger(buf *bytes.Buffer, mu *sync.Mutex) *slog.Logger {
	return slog.New(slog.NewTextHandler(&lockedWriter{w: buf, mu: mu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

const diskSize = 4 << 20 // bytes: 8192 sectors

var protocols = []blkback.Protocol{blkback.ProtocolX86_64, blkback.ProtocolX86_32}

// newHarness starts a queue on store and checks, when the test ends, that
// every response was well-formed and every grant mapping undone.
func newHarness(t testing.TB, cfg blktest.Config) *blktest.Harness {
	t.Helper()
	h, err := blktest.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Front.ProtocolErr(); err != nil {
			t.Errorf("frontend saw a bad response: %v", err)
		}
		if err := h.Queue.Close(); err != nil {
			t.Errorf("queue close: %v", err)
		}
		if n := h.Mem.LiveMappings(); n != 0 {
			t.Errorf("%d grant mappings left after close", n)
		}
		h.Close()
	})
	return h
}

func randBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// randShape is n segments of random sector ranges.
func randShape(rng *rand.Rand, n int) []blktest.Shape {
	s := make([]blktest.Shape, n)
	for i := range s {
		first := uint8(rng.IntN(8))
		s[i] = blktest.Shape{First: first, Last: first + uint8(rng.IntN(8-int(first)))}
	}
	return s
}

func wantStatus(t *testing.T, what string, rsp blkback.Response, err error, want int16) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if rsp.Status != want {
		t.Fatalf("%s: status %d, want %d", what, rsp.Status, want)
	}
}

// TestEverySegmentShape writes random data with each of the 36
// first_sect/last_sect shapes of a one-segment request, reads it back
// with the same shape and as whole pages, and compares with the store,
// in both ring layouts.
func TestEverySegmentShape(t *testing.T) {
	for _, p := range protocols {
		t.Run(p.String(), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(p)))
			st := blktest.NewMemStore(diskSize, false, false)
			h := newHarness(t, blktest.Config{Protocol: p, Store: st, Features: blktest.AllFeatures})
			for first := uint8(0); first < 8; first++ {
				for last := first; last < 8; last++ {
					shape := []blktest.Shape{{First: first, Last: last}}
					n := blktest.ShapeLen(shape)
					sector := uint64(rng.IntN(diskSize/512 - 8))
					data := randBytes(rng, n)
					rsp, err := h.Front.Write(sector, data, shape, false)
					wantStatus(t, "write", rsp, err, blkback.RspOkay)
					if got := st.Data(int64(sector)*512, int64(n)); !bytes.Equal(got, data) {
						t.Fatalf("shape %d..%d at %d: store differs after write", first, last, sector)
					}
					rsp, got, err := h.Front.Read(sector, shape, false)
					wantStatus(t, "read", rsp, err, blkback.RspOkay)
					if !bytes.Equal(got, data) {
						t.Fatalf("shape %d..%d: read back differs", first, last)
					}
					rsp, got, err = h.Front.Read(sector, blktest.Contiguous(n/512), false)
					wantStatus(t, "read", rsp, err, blkback.RspOkay)
					if !bytes.Equal(got, data) {
						t.Fatalf("shape %d..%d: read back as pages differs", first, last)
					}
				}
			}
		})
	}
}

// TestRandomTransfers does random reads and writes of 1..11 segments of
// random shapes, direct and indirect (up to three indirect pages), with
// the data path by mapping, by grant copy, and mixed, and checks every
// byte against a model of the disk.
func TestRandomTransfers(t *testing.T) {
	modes := []struct {
		name    string
		copyMax int
	}{{"map", 0}, {"copy", blkback.PageSize}, {"mixed", 2048}}
	for _, p := range protocols {
		for _, m := range modes {
			t.Run(p.String()+"/"+m.name, func(t *testing.T) {
				rng := rand.New(rand.NewPCG(2, uint64(p)*7+uint64(m.copyMax)))
				st := blktest.NewMemStore(diskSize, false, false)
				feat := blktest.AllFeatures
				feat.MaxIndirectSegments = 1200
				h := newHarness(t, blktest.Config{Protocol: p, Store: st, Features: feat, CopyMax: m.copyMax, Pages: 8192})
				model := make([]byte, diskSize)
				for i := 0; i < 150; i++ {
					indirect := rng.IntN(3) == 0
					nseg := 1 + rng.IntN(blkback.MaxSegments)
					if indirect {
						nseg = 1 + rng.IntN(feat.MaxIndirectSegments)
					}
					shape := randShape(rng, nseg)
					n := blktest.ShapeLen(shape)
					sector := uint64(rng.IntN((diskSize - n) / 512))
					if rng.IntN(2) == 0 {
						data := randBytes(rng, n)
						rsp, err := h.Front.Write(sector, data, shape, indirect)
						wantStatus(t, "write", rsp, err, blkback.RspOkay)
						copy(model[sector*512:], data)
					} else {
						rsp, got, err := h.Front.Read(sector, shape, indirect)
						wantStatus(t, "read", rsp, err, blkback.RspOkay)
						if want := model[sector*512 : sector*512+uint64(n)]; !bytes.Equal(got, want) {
							t.Fatalf("read %d segments at %d (indirect %v): data differs", nseg, sector, indirect)
						}
					}
				}
				if !bytes.Equal(st.Data(0, diskSize), model) {
					t.Fatal("store differs from the model")
				}
				s := h.Queue.Stats()
				if s.Errors != 0 || s.Reads+s.Writes != 150 {
					t.Errorf("stats %+v", s)
				}
				if m.copyMax == 0 && h.Mem.CopyCalls() > h.Mem.MapCalls() {
					t.Errorf("map mode: %d copies, %d maps", h.Mem.CopyCalls(), h.Mem.MapCalls())
				}
				if m.copyMax == blkback.PageSize && h.Mem.MapCalls() != 0 {
					t.Errorf("copy mode mapped %d grants", h.Mem.MapCalls())
				}
			})
		}
	}
}

// TestConcurrentTransfers keeps the ring full of reads and writes on
// disjoint regions from several goroutines.
func TestConcurrentTransfers(t *testing.T) {
	st := blktest.NewMemStore(diskSize, false, false)
	h := newHarness(t, blktest.Config{Store: st, Features: blktest.AllFeatures, Pages: 8192})
	const workers, rounds, region = 16, 30, diskSize / 16
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(3, uint64(w)))
			base := uint64(w * region / 512)
			for range rounds {
				shape := blktest.Contiguous(1 + rng.IntN(88))
				n := blktest.ShapeLen(shape)
				sector := base + uint64(rng.IntN((region-n)/512))
				data := randBytes(rng, n)
				rsp, err := h.Front.Write(sector, data, shape, rng.IntN(2) == 0)
				if err != nil || rsp.Status != 0 {
					errc <- fmt.Errorf("write: %v %v", rsp, err)
					return
				}
				rsp, got, err := h.Front.Read(sector, shape, rng.IntN(2) == 0)
				if err != nil || rsp.Status != 0 || !bytes.Equal(got, data) {
					errc <- fmt.Errorf("read back at %d: %v %v", sector, rsp, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
}

// badReq is a request the backend must refuse.
type badReq struct {
	name string
	// make builds the request; refs are granted pages (0, 1 writable;
	// 2 read-only; 3 an indirect page holding segments of page 0).
	make func(refs []uint32) blkback.Request
	want int16
}

func seg(ref uint32, first, last uint8) blkback.Segment {
	return blkback.Segment{Gref: ref, FirstSect: first, LastSect: last}
}

func rw(op uint8, sector uint64, segs ...blkback.Segment) blkback.Request {
	r := blkback.Request{Operation: op, Sector: sector, NrSegments: uint16(len(segs))}
	copy(r.Seg[:], segs)
	return r
}

const sectors = diskSize / 512

var badRequests = []badReq{
	{"read without segments", func([]uint32) blkback.Request { return rw(blkback.OpRead, 0) }, blkback.RspError},
	{"write without segments", func([]uint32) blkback.Request { return rw(blkback.OpWrite, 0) }, blkback.RspError},
	{"12 segments", func(r []uint32) blkback.Request {
		q := rw(blkback.OpRead, 0, seg(r[0], 0, 0))
		q.NrSegments = 12
		return q
	}, blkback.RspError},
	{"255 segments", func(r []uint32) blkback.Request {
		q := rw(blkback.OpWrite, 0, seg(r[0], 0, 0))
		q.NrSegments = 255
		return q
	}, blkback.RspError},
	{"last_sect before first_sect", func(r []uint32) blkback.Request { return rw(blkback.OpRead, 0, seg(r[0], 3, 2)) }, blkback.RspError},
	{"last_sect past the page", func(r []uint32) blkback.Request { return rw(blkback.OpRead, 0, seg(r[0], 0, 8)) }, blkback.RspError},
	{"bad second segment", func(r []uint32) blkback.Request {
		return rw(blkback.OpWrite, 0, seg(r[0], 0, 7), seg(r[1], 255, 255))
	}, blkback.RspError},
	{"read past the end", func(r []uint32) blkback.Request { return rw(blkback.OpRead, sectors-1, seg(r[0], 0, 1)) }, blkback.RspError},
	{"write past the end", func(r []uint32) blkback.Request { return rw(blkback.OpWrite, sectors, seg(r[0], 0, 0)) }, blkback.RspError},
	{"sector overflow", func(r []uint32) blkback.Request { return rw(blkback.OpRead, 1<<64-1, seg(r[0], 0, 1)) }, blkback.RspError},
	{"sector overflow into range", func(r []uint32) blkback.Request {
		return rw(blkback.OpRead, 1<<64-2, seg(r[0], 0, 7))
	}, blkback.RspError},
	{"unknown grant", func([]uint32) blkback.Request { return rw(blkback.OpRead, 0, seg(9999, 0, 7)) }, blkback.RspError},
	{"second grant unknown", func(r []uint32) blkback.Request {
		return rw(blkback.OpWrite, 0, seg(r[0], 0, 7), seg(9999, 0, 7))
	}, blkback.RspError},
	{"read into a read-only grant", func(r []uint32) blkback.Request { return rw(blkback.OpRead, 0, seg(r[2], 0, 7)) }, blkback.RspError},
	{"BLKIF_OP_RESERVED_1", func([]uint32) blkback.Request { return blkback.Request{Operation: blkback.OpReserved1} }, blkback.RspEOPNOTSUPP},
	{"operation 7", func([]uint32) blkback.Request { return blkback.Request{Operation: 7} }, blkback.RspEOPNOTSUPP},
	{"operation 255", func([]uint32) blkback.Request { return blkback.Request{Operation: 255, NrSegments: 3} }, blkback.RspEOPNOTSUPP},
	{"indirect flush", func(r []uint32) blkback.Request {
		return blkback.Request{Operation: blkback.OpIndirect, IndirectOp: blkback.OpFlushDiskcache, NrSegments: 1, IndirectGrefs: [8]uint32{r[3]}}
	}, blkback.RspError},
	{"indirect discard", func(r []uint32) blkback.Request {
		return blkback.Request{Operation: blkback.OpIndirect, IndirectOp: blkback.OpDiscard, NrSegments: 1, IndirectGrefs: [8]uint32{r[3]}}
	}, blkback.RspError},
	{"indirect without segments", func(r []uint32) blkback.Request {
		return blkback.Request{Operation: blkback.OpIndirect, IndirectOp: blkback.OpRead, IndirectGrefs: [8]uint32{r[3]}}
	}, blkback.RspError},
	{"indirect beyond feature-max-indirect-segments", func(r []uint32) blkback.Request {
		return blkback.Request{Operation: blkback.OpIndirect, IndirectOp: blkback.OpRead, NrSegments: 257, IndirectGrefs: [8]uint32{r[3]}}
	}, blkback.RspError},
	{"indirect 65535 segments", func(r []uint32) blkback.Request {
		return blkback.Request{Operation: blkback.OpIndirect, IndirectOp: blkback.OpWrite, NrSegments: 65535, IndirectGrefs: [8]uint32{r[3]}}
	}, blkback.RspError},
	{"indirect page unknown", func([]uint32) blkback.Request {
		return blkback.Request{Operation: blkback.OpIndirect, IndirectOp: blkback.OpRead, NrSegments: 1, IndirectGrefs: [8]uint32{9999}}
	}, blkback.RspError},
	{"indirect segment bad", func(r []uint32) blkback.Request {
		// The indirect page's third segment is 5..4.
		return blkback.Request{Operation: blkback.OpIndirect, IndirectOp: blkback.OpRead, NrSegments: 3, IndirectGrefs: [8]uint32{r[3]}}
	}, blkback.RspError},
	{"indirect past the end", func(r []uint32) blkback.Request {
		return blkback.Request{Operation: blkback.OpIndirect, IndirectOp: blkback.OpRead, NrSegments: 2, Sector: sectors - 8, IndirectGrefs: [8]uint32{r[3]}}
	}, blkback.RspError},
	{"discard past the end", func([]uint32) blkback.Request {
		return blkback.Request{Operation: blkback.OpDiscard, Sector: sectors - 1, NrSectors: 2}
	}, blkback.RspError},
	{"discard overflow", func([]uint32) blkback.Request {
		return blkback.Request{Operation: blkback.OpDiscard, Sector: 8, NrSectors: 1<<64 - 4}
	}, blkback.RspError},
	{"secure discard (not offered: done as a plain one)", func([]uint32) blkback.Request {
		return blkback.Request{Operation: blkback.OpDiscard, Flag: blkback.DiscardSecure, Sector: 8, NrSectors: 8}
	}, blkback.RspOkay},
	{"discard of nothing", func([]uint32) blkback.Request {
		return blkback.Request{Operation: blkback.OpDiscard, Sector: sectors, NrSectors: 0}
	}, blkback.RspOkay},
	{"flush with 12 segments", func(r []uint32) blkback.Request {
		q := rw(blkback.OpFlushDiskcache, 0, seg(r[0], 0, 0))
		q.NrSegments = 12
		return q
	}, blkback.RspError},
	{"flush with a bad segment", func(r []uint32) blkback.Request { return rw(blkback.OpFlushDiskcache, 0, seg(r[0], 1, 0)) }, blkback.RspError},
	{"barrier past the end", func(r []uint32) blkback.Request { return rw(blkback.OpWriteBarrier, sectors, seg(r[0], 0, 0)) }, blkback.RspError},
	{"read at the last sector", func(r []uint32) blkback.Request { return rw(blkback.OpRead, sectors-1, seg(r[0], 7, 7)) }, blkback.RspOkay},
	{"flush without segments and a garbage sector", func([]uint32) blkback.Request {
		return blkback.Request{Operation: blkback.OpFlushDiskcache, Sector: 1 << 63}
	}, blkback.RspOkay},
}

// TestBadRequests sends requests the backend must refuse (and a few
// edge cases it must take) and checks the status, that the response
// echoes the id and operation (blktest.Front checks), that the disk is
// unchanged, and that no grant stays mapped.
func TestBadRequests(t *testing.T) {
	for _, p := range protocols {
		t.Run(p.String(), func(t *testing.T) {
			st := blktest.NewMemStore(diskSize, false, true)
			orig := randBytes(rand.New(rand.NewPCG(4, 4)), diskSize)
			st.Fill(0, orig)
			h := newHarness(t, blktest.Config{Protocol: p, Store: st, Features: blktest.AllFeatures})
			refs := grantTestPages(t, h)
			for _, tt := range badRequests {
				rsp, err := h.Front.Do(tt.make(refs))
				if err != nil {
					t.Fatalf("%s: %v", tt.name, err)
				}
				if rsp.Status != tt.want {
					t.Errorf("%s: status %d, want %d", tt.name, rsp.Status, tt.want)
				}
				if n := h.Mem.LiveMappings(); n != 0 {
					t.Errorf("%s: %d mappings left", tt.name, n)
				}
				if tt.want != blkback.RspOkay && !bytes.Equal(st.Data(0, diskSize), orig) {
					t.Fatalf("%s: refused request changed the disk", tt.name)
				}
				orig = st.Data(0, diskSize)
			}
			if err := h.Front.ProtocolErr(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// grantTestPages grants the pages badRequests use: 0 and 1 writable, 2
// read-only, 3 an indirect page with segments 0..7 of page 0, 0..7 of
// page 1, then 5..4 (bad).
func grantTestPages(t *testing.T, h *blktest.Harness) []uint32 {
	t.Helper()
	var refs []uint32
	for i := range 4 {
		pg, err := h.Mem.Alloc()
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, h.Mem.Grant(pg, i >= 2))
		if i == 3 {
			blkback.PutSegments(h.Mem.Page(pg), []blkback.Segment{seg(refs[0], 0, 7), seg(refs[1], 0, 7), seg(refs[0], 5, 4)})
		}
	}
	return refs
}

// TestFeaturesNotOffered: operations whose feature is off are answered
// BLKIF_RSP_EOPNOTSUPP.
func TestFeaturesNotOffered(t *testing.T) {
	st := blktest.NewMemStore(diskSize, false, true)
	h := newHarness(t, blktest.Config{Store: st})
	refs := grantTestPages(t, h)
	for _, r := range []blkback.Request{
		{Operation: blkback.OpFlushDiskcache},
		{Operation: blkback.OpWriteBarrier},
		{Operation: blkback.OpDiscard, NrSectors: 8},
		{Operation: blkback.OpIndirect, IndirectOp: blkback.OpRead, NrSegments: 1, IndirectGrefs: [8]uint32{refs[3]}},
	} {
		rsp, err := h.Front.Do(r)
		wantStatus(t, fmt.Sprintf("op %d", r.Operation), rsp, err, blkback.RspEOPNOTSUPP)
	}
	if st.Syncs() != 0 || len(st.Log()) != 0 {
		t.Errorf("store touched: %v", st.Log())
	}
}

// TestReadOnly: a read-only disk (mode r, cdrom) refuses every write
// with BLKIF_RSP_ERROR, whatever the features say, and serves reads.
func TestReadOnly(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		storeRO, cfgReadOnly bool
	}{{"store", true, false}, {"config", false, true}} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(5, 5))
			st := blktest.NewMemStore(diskSize, tc.storeRO, true)
			orig := randBytes(rng, diskSize)
			st.Fill(0, orig)
			h := newHarness(t, blktest.Config{Store: st, ReadOnly: tc.cfgReadOnly, Features: blktest.AllFeatures})
			data := randBytes(rng, 4096)
			rsp, err := h.Front.Write(16, data, blktest.Contiguous(8), false)
			wantStatus(t, "write", rsp, err, blkback.RspError)
			rsp, err = h.Front.Write(16, data, blktest.Contiguous(8), true)
			wantStatus(t, "indirect write", rsp, err, blkback.RspError)
			t1, err := h.Front.StartIO(blkback.OpFlushDiskcache, 16, data, blktest.Contiguous(8), false)
			if err != nil {
				t.Fatal(err)
			}
			rsp, _, err = t1.Wait()
			wantStatus(t, "flush with data", rsp, err, blkback.RspError)
			t2, err := h.Front.StartIO(blkback.OpWriteBarrier, 16, data, blktest.Contiguous(8), false)
			if err != nil {
				t.Fatal(err)
			}
			rsp, _, err = t2.Wait()
			wantStatus(t, "barrier with data", rsp, err, blkback.RspError)
			rsp, err = h.Front.Discard(16, 8, false)
			wantStatus(t, "discard", rsp, err, blkback.RspError)
			rsp, got, err := h.Front.Read(16, blktest.Contiguous(8), false)
			wantStatus(t, "read", rsp, err, blkback.RspOkay)
			if !bytes.Equal(got, orig[16*512:16*512+4096]) {
				t.Error("read differs")
			}
			if !bytes.Equal(st.Data(0, diskSize), orig) {
				t.Error("read-only disk changed")
			}
			for _, op := range st.Log() {
				if op.Kind != "read" && op.Kind != "sync" {
					t.Errorf("store saw %v", op)
				}
			}
		})
	}
}

// gate blocks the store's writes to chosen offsets until released.
type gate struct {
	mu      sync.Mutex
	blocked map[int64]chan struct{}
	entered chan int64
}

// newGate installs the gate; call it after newHarness, so that its
// cleanup (which opens every gate) runs before the queue is closed.
func newGate(t *testing.T, st *blktest.MemStore) *gate {
	g := &gate{blocked: map[int64]chan struct{}{}, entered: make(chan int64, 16)}
	t.Cleanup(func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		for off, c := range g.blocked {
			close(c)
			delete(g.blocked, off)
		}
	})
	st.BeforeWrite = func(off int64, n int) error {
		g.mu.Lock()
		c := g.blocked[off]
		g.mu.Unlock()
		if c != nil {
			g.entered <- off
			<-c
		}
		return nil
	}
	return g
}

func (g *gate) block(off int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.blocked[off] = make(chan struct{})
}

func (g *gate) release(off int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	close(g.blocked[off])
	delete(g.blocked, off)
}

// notYet asserts that c has no response within a short while.
func notYet(t *testing.T, what string, c <-chan blkback.Response) {
	t.Helper()
	select {
	case rsp := <-c:
		t.Fatalf("%s answered early: %+v", what, rsp)
	case <-time.After(50 * time.Millisecond):
	}
}

func recv(t *testing.T, what string, c <-chan blkback.Response) blkback.Response {
	t.Helper()
	select {
	case rsp := <-c:
		return rsp
	case <-time.After(blktest.Timeout):
		t.Fatalf("%s: no response", what)
		return blkback.Response{}
	}
}

// TestFlushWaitsForEarlierWrites: a flush issued while a write is still
// running is answered only after that write reached the store and a
// sync followed it; the write's data is then durable. Writes issued
// after the flush do not wait for it.
func TestFlushWaitsForEarlierWrites(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 6))
	st := blktest.NewMemStore(diskSize, false, false)
	h := newHarness(t, blktest.Config{Store: st, Features: blktest.AllFeatures})
	g := newGate(t, st)

	d1, d2 := randBytes(rng, 4096), randBytes(rng, 4096)
	g.block(0)
	w1, err := h.Front.StartWrite(0, d1, blktest.Contiguous(8), false)
	if err != nil {
		t.Fatal(err)
	}
	<-g.entered // w1 is in the store, blocked
	fc, err := h.Front.Submit(blkback.Request{Operation: blkback.OpFlushDiskcache})
	if err != nil {
		t.Fatal(err)
	}
	w2, err := h.Front.StartWrite(64, d2, blktest.Contiguous(8), false)
	if err != nil {
		t.Fatal(err)
	}
	// The later write completes although the flush and w1 are pending.
	rsp, _, err := w2.Wait()
	wantStatus(t, "write after flush", rsp, err, blkback.RspOkay)
	notYet(t, "flush", fc)
	if st.Syncs() != 0 {
		t.Fatal("synced before the earlier write reached the store")
	}
	g.release(0)
	rsp, _, err = w1.Wait()
	wantStatus(t, "write", rsp, err, blkback.RspOkay)
	if rsp := recv(t, "flush", fc); rsp.Status != blkback.RspOkay {
		t.Fatalf("flush status %d", rsp.Status)
	}
	if !bytes.Equal(st.Durable(0, 4096), d1) {
		t.Fatal("write before the flush is not durable after it")
	}
	// The store saw w1's write before the sync.
	log := st.Log()
	iw, is := -1, -1
	for i, op := range log {
		if op.Kind == "write" && op.Off == 0 && iw < 0 {
			iw = i
		}
		if op.Kind == "sync" && is < 0 {
			is = i
		}
	}
	if iw < 0 || is < iw {
		t.Fatalf("store log %v: sync not after the write", log)
	}
}

// TestAcknowledgedWritesDurableAfterFlush: rounds of writes in flight
// together (each to its own region, of random shapes, direct and
// indirect), then a flush. Each write's data is in the store (the host
// kernel) when it is acknowledged, and everything acknowledged is
// durable when the flush is.
func TestAcknowledgedWritesDurableAfterFlush(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	st := blktest.NewMemStore(diskSize, false, false)
	h := newHarness(t, blktest.Config{Store: st, Features: blktest.AllFeatures, Pages: 8192})
	model := make([]byte, diskSize)
	const perRound, region = 12, diskSize / 12 &^ 511
	for round := range 10 {
		var ts []*blktest.Transfer
		var datas [][]byte
		var offs []int64
		for w := range perRound {
			shape := randShape(rng, 1+rng.IntN(11))
			n := blktest.ShapeLen(shape)
			off := int64(w*region + rng.IntN((region-n)/512)*512)
			d := randBytes(rng, n)
			tr, err := h.Front.StartWrite(uint64(off/512), d, shape, rng.IntN(2) == 0)
			if err != nil {
				t.Fatal(err)
			}
			ts, datas, offs = append(ts, tr), append(datas, d), append(offs, off)
		}
		for i, tr := range ts {
			rsp, _, err := tr.Wait()
			wantStatus(t, "write", rsp, err, blkback.RspOkay)
			if !bytes.Equal(st.Data(offs[i], int64(len(datas[i]))), datas[i]) {
				t.Fatalf("round %d: write %d acknowledged before its data reached the store", round, i)
			}
			copy(model[offs[i]:], datas[i])
		}
		rsp, err := h.Front.Flush()
		wantStatus(t, "flush", rsp, err, blkback.RspOkay)
		if !bytes.Equal(st.Durable(0, diskSize), model) {
			t.Fatalf("round %d: acknowledged data not durable after the flush", round)
		}
	}
	if st.Syncs() != 10 {
		t.Errorf("%d syncs for 10 flushes", st.Syncs())
	}
}

// TestBarrier: a barrier waits for everything before it, and nothing
// after it starts until it is answered; its data is durable when it is.
func TestBarrier(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	st := blktest.NewMemStore(diskSize, false, false)
	reads := make(chan int64, 4)
	st.BeforeRead = func(off int64, n int) error { reads <- off; return nil }
	h := newHarness(t, blktest.Config{Store: st, Features: blktest.AllFeatures})
	g := newGate(t, st)

	d1, db := randBytes(rng, 4096), randBytes(rng, 2048)
	g.block(0)
	w1, err := h.Front.StartWrite(0, d1, blktest.Contiguous(8), false)
	if err != nil {
		t.Fatal(err)
	}
	<-g.entered
	b, err := h.Front.StartIO(blkback.OpWriteBarrier, 128, db, []blktest.Shape{{First: 2, Last: 5}}, false)
	if err != nil {
		t.Fatal(err)
	}
	r, err := h.Front.StartRead(256, blktest.Contiguous(8), false)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case off := <-reads:
		t.Fatalf("read at %d started before the barrier", off)
	case <-time.After(50 * time.Millisecond):
	}
	g.release(0)
	for _, tr := range []*blktest.Transfer{w1, b, r} {
		rsp, _, err := tr.Wait()
		wantStatus(t, "after barrier", rsp, err, blkback.RspOkay)
	}
	if !bytes.Equal(st.Durable(0, 4096), d1) || !bytes.Equal(st.Durable(128*512, 2048), db) {
		t.Fatal("barrier answered before its data and the earlier write were durable")
	}
	var kinds []string
	for _, op := range st.Log() {
		kinds = append(kinds, op.Kind)
	}
	if fmt.Sprint(kinds) != "[write write sync read]" {
		t.Errorf("store order %v, want write (w1), write (barrier data), sync, read", kinds)
	}
	if s := h.Queue.Stats(); s.Barriers != 1 {
		t.Errorf("stats %+v", s)
	}
}

// TestFlushWithData: a FLUSH_DISKCACHE carrying segments writes them and
// syncs before answering.
func TestFlushWithData(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	st := blktest.NewMemStore(diskSize, false, false)
	h := newHarness(t, blktest.Config{Store: st, Features: blktest.AllFeatures})
	d := randBytes(rng, 8192)
	tr, err := h.Front.StartIO(blkback.OpFlushDiskcache, 40, d, blktest.Contiguous(16), false)
	if err != nil {
		t.Fatal(err)
	}
	rsp, _, err := tr.Wait()
	wantStatus(t, "flush with data", rsp, err, blkback.RspOkay)
	if !bytes.Equal(st.Durable(40*512, 8192), d) {
		t.Fatal("flush data not durable")
	}
}

// TestHostErrors: a failing host read, write or sync is answered
// BLKIF_RSP_ERROR and logged; the queue goes on serving.
func TestHostErrors(t *testing.T) {
	rng := rand.New(rand.NewPCG(10, 10))
	st := blktest.NewMemStore(diskSize, false, false)
	var logs bytes.Buffer
	var logMu sync.Mutex
	h := newHarness(t, blktest.Config{Store: st, Features: blktest.AllFeatures, Log: newTestLogger(&logs, &logMu)})
	st.BeforeWrite = func(off int64, n int) error {
		if off == 512*100 {
			return blktest.ErrInjectedIO
		}
		return nil
	}
	st.BeforeRead = func(off int64, n int) error {
		if off == 512*200 {
			return blktest.ErrInjectedIO
		}
		return nil
	}
	d := randBytes(rng, 4096)
	rsp, err := h.Front.Write(100, d, blktest.Contiguous(8), false)
	wantStatus(t, "failing write", rsp, err, blkback.RspError)
	rsp, _, err = h.Front.Read(200, blktest.Contiguous(8), true)
	wantStatus(t, "failing read", rsp, err, blkback.RspError)
	st.FailSync = true
	rsp, err = h.Front.Flush()
	wantStatus(t, "failing flush", rsp, err, blkback.RspError)
	st.FailSync = false
	rsp, err = h.Front.Write(101, d, blktest.Contiguous(8), false)
	wantStatus(t, "write after errors", rsp, err, blkback.RspOkay)
	rsp, err = h.Front.Flush()
	wantStatus(t, "flush after errors", rsp, err, blkback.RspOkay)
	logMu.Lock()
	out := logs.String()
	logMu.Unlock()
	for _, want := range []string{"write failed", "read failed", "flush failed", "injected I/O error"} {
		if !bytes.Contains([]byte(out), []byte(want)) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if s := h.Queue.Stats(); s.Errors != 3 {
		t.Errorf("stats %+v", s)
	}
}

// TestDiscardMemStore: a discard zeroes the range (the store punches a
// hole), an unsupported store answers EOPNOTSUPP.
func TestDiscardMemStore(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 11))
	for _, supported := range []bool{true, false} {
		st := blktest.NewMemStore(diskSize, false, supported)
		orig := randBytes(rng, diskSize)
		st.Fill(0, orig)
		h := newHarness(t, blktest.Config{Store: st, Features: blktest.AllFeatures})
		rsp, err := h.Front.Discard(24, 40, false)
		if !supported {
			wantStatus(t, "discard", rsp, err, blkback.RspEOPNOTSUPP)
			continue
		}
		wantStatus(t, "discard", rsp, err, blkback.RspOkay)
		want := bytes.Clone(orig)
		clear(want[24*512 : 64*512])
		if !bytes.Equal(st.Data(0, diskSize), want) {
			t.Fatal("discard did not zero exactly its range")
		}
	}
}

// TestBrokenRing: a frontend that publishes an impossible req_prod gets
// no more requests served; the queue neither panics nor spins, and
// closes.
func TestBrokenRing(t *testing.T) {
	st := blktest.NewMemStore(diskSize, false, false)
	h := newHarness(t, blktest.Config{Store: st, Features: blktest.AllFeatures})
	rsp, err := h.Front.Flush()
	wantStatus(t, "flush", rsp, err, blkback.RspOkay)
	page := h.Front.RingPage()
	// req_prod jumps 1000 requests ahead.
	page[0], page[1] = 0xe9, 0x03
	h.Queue.Kick()
	deadline := time.Now().Add(blktest.Timeout)
	for h.Queue.Err() == nil {
		if time.Now().After(deadline) {
			t.Fatal("queue did not notice the bogus req_prod")
		}
		time.Sleep(time.Millisecond)
	}
	if !errors.Is(h.Queue.Err(), ring.ErrBadIndex) {
		t.Fatalf("Err = %v", h.Queue.Err())
	}
	if s := h.Queue.Stats(); s.Flushes != 1 || s.Errors != 0 {
		t.Errorf("requests served from a broken ring: %+v", s)
	}
}

// TestPersistentGrants: with feature-persistent the frontend reuses a
// fixed set of writable grants; the backend maps each once, keeps it
// (the guest cannot end the grant meanwhile) and unmaps it all when the
// queue closes. Data moves correctly both ways.
func TestPersistentGrants(t *testing.T) {
	rng := rand.New(rand.NewPCG(12, 12))
	st := blktest.NewMemStore(diskSize, false, false)
	feat := blktest.AllFeatures
	feat.Persistent = true
	h, err := blktest.New(blktest.Config{Store: st, Features: feat})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	// The frontend's pool: 16 writable grants.
	var pages []int
	var refs []uint32
	for range 16 {
		pg, err := h.Mem.Alloc()
		if err != nil {
			t.Fatal(err)
		}
		pages, refs = append(pages, pg), append(refs, h.Mem.Grant(pg, false))
	}
	model := make([]byte, diskSize)
	for i := range 200 {
		nseg := 1 + rng.IntN(11)
		perm := rng.Perm(16)[:nseg]
		sector := uint64(rng.IntN(diskSize/512 - nseg*8))
		r := blkback.Request{Operation: blkback.OpRead, Sector: sector, NrSegments: uint16(nseg)}
		write := i%2 == 0
		var data []byte
		if write {
			r.Operation = blkback.OpWrite
			data = randBytes(rng, nseg*4096)
		}
		for j, k := range perm {
			r.Seg[j] = seg(refs[k], 0, 7)
			if write {
				copy(h.Mem.Page(pages[k]), data[j*4096:])
			}
		}
		rsp, err := h.Front.Do(r)
		wantStatus(t, "request", rsp, err, blkback.RspOkay)
		if write {
			copy(model[sector*512:], data)
			continue
		}
		for j, k := range perm {
			off := sector*512 + uint64(j)*4096
			if !bytes.Equal(h.Mem.Page(pages[k]), model[off:off+4096]) {
				t.Fatalf("request %d: segment %d differs", i, j)
			}
		}
	}
	s := h.Queue.Stats()
	if s.PersistentGrants != 16 {
		t.Errorf("%d persistent grants, want 16", s.PersistentGrants)
	}
	if m := h.Mem.MapCalls(); m != 16 {
		t.Errorf("%d map calls for 16 reused grants", m)
	}
	if err := h.Mem.Revoke(refs[0]); err == nil {
		t.Error("guest ended a grant the backend keeps mapped")
	}
	if err := h.Queue.Close(); err != nil {
		t.Fatal(err)
	}
	if n := h.Mem.LiveMappings(); n != 0 {
		t.Errorf("%d mappings after close", n)
	}
	for _, ref := range refs {
		if err := h.Mem.Revoke(ref); err != nil {
			t.Errorf("revoke after close: %v", err)
		}
	}
	if err := h.Front.ProtocolErr(); err != nil {
		t.Fatal(err)
	}
}

// TestPersistentGrantsLimit: beyond PersistentLimit, and for a grant the
// frontend made read-only after all, the backend maps for the request
// only and unmaps before answering.
func TestPersistentGrantsLimit(t *testing.T) {
	st := blktest.NewMemStore(diskSize, false, false)
	feat := blktest.AllFeatures
	feat.Persistent = true
	h := newHarness(t, blktest.Config{Store: st, Features: feat, PersistentLimit: 2})
	rng := rand.New(rand.NewPCG(13, 13))
	// A read of four pages grants them writable: two become persistent.
	data := randBytes(rng, 4*4096)
	st.Fill(0, data)
	tr, err := h.Front.StartRead(0, blktest.Contiguous(32), false)
	if err != nil {
		t.Fatal(err)
	}
	rsp, err := tr.Finish()
	if err == nil {
		t.Fatal("the guest ended grants the backend keeps mapped")
	}
	if rsp.Status != blkback.RspOkay {
		t.Fatalf("status %d", rsp.Status)
	}
	if s := h.Queue.Stats(); s.PersistentGrants != 2 || h.Mem.LiveMappings() != 2 {
		t.Errorf("%d persistent, %d mapped; want 2, 2", s.PersistentGrants, h.Mem.LiveMappings())
	}
	for i := range 4 {
		if !bytes.Equal(h.Mem.Page(i+1), data[i*4096:(i+1)*4096]) {
			t.Errorf("page %d differs", i)
		}
	}
	// A read-only grant (a write's) cannot be kept writable: it is
	// mapped for the request only.
	h2 := newHarness(t, blktest.Config{Store: st, Features: feat})
	rsp, err = h2.Front.Write(64, data[:4096], blktest.Contiguous(8), false)
	wantStatus(t, "write through a read-only grant", rsp, err, blkback.RspOkay)
	if n := h2.Mem.LiveMappings(); n != 0 {
		t.Errorf("read-only grant kept mapped (%d)", n)
	}
}
