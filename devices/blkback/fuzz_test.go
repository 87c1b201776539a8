package blkback_test

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/xenvmm/xenvmm/devices/blkback"
	"github.com/xenvmm/xenvmm/devices/blkback/blktest"
)

// Grant references the fuzz harness sets up, in Memory's order: the ring
// is 8, then data pages 9 and 10 (writable), 11 (read-only), and 12, an
// indirect page whose segments come from the input.
const (
	fuzzRefRW0, fuzzRefRW1, fuzzRefRO, fuzzRefIndirect = 9, 10, 11, 12
)

func fuzzSeeds(f *testing.F) {
	enc := func(p blkback.Protocol, rs ...blkback.Request) []byte {
		var out []byte
		for _, r := range rs {
			s := make([]byte, p.SlotSize())
			if err := r.Encode(p, s); err != nil {
				f.Fatal(err)
			}
			out = append(out, s...)
		}
		return out
	}
	valid := []blkback.Request{
		rw(blkback.OpWrite, 0, seg(fuzzRefRW0, 0, 7), seg(fuzzRefRO, 2, 3)),
		rw(blkback.OpRead, 8, seg(fuzzRefRW0, 0, 7), seg(fuzzRefRW1, 1, 1)),
		{Operation: blkback.OpIndirect, IndirectOp: blkback.OpRead, NrSegments: 3, Sector: 16, IndirectGrefs: [8]uint32{fuzzRefIndirect}},
		{Operation: blkback.OpIndirect, IndirectOp: blkback.OpWrite, NrSegments: 2, Sector: 100, IndirectGrefs: [8]uint32{fuzzRefIndirect}},
		{Operation: blkback.OpFlushDiskcache},
		rw(blkback.OpWriteBarrier, 4, seg(fuzzRefRO, 0, 0)),
		{Operation: blkback.OpDiscard, Sector: 8, NrSectors: 16, Flag: blkback.DiscardSecure},
		{Operation: 4, ID: 3},
	}
	indirect := make([]byte, 4*blkback.SegmentSize)
	blkback.PutSegments(indirect, []blkback.Segment{seg(fuzzRefRW0, 0, 7), seg(fuzzRefRW1, 3, 6), seg(fuzzRefRO, 0, 1), seg(99, 0, 0)})
	for _, p := range protocols {
		x86_32 := p == blkback.ProtocolX86_32
		f.Add(enc(p, valid...), indirect, x86_32, uint16(0), false)
		f.Add(enc(p, valid[0], valid[1]), indirect, x86_32, uint16(512), false)
		f.Add(enc(p, valid[2], valid[6], valid[4]), indirect, x86_32, uint16(0), true)
	}
	f.Add([]byte{0xff, 0xff, 0xff}, []byte{}, false, uint16(4096), true)
}

// FuzzRing fills the ring with arbitrary request slots (and the indirect
// page with arbitrary segments) against a queue with every feature on:
// the backend must not panic, must answer every request exactly once with
// a well-formed response (blktest.Front checks the status, and the
// operation for the requests it knows), and must leave no grant mapped.
// With bogus set, the input also overwrites req_prod, which the backend
// must survive (it stops serving a broken ring).
func FuzzRing(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, slots, indirect []byte, x86_32 bool, copyMax uint16, bogus bool) {
		p := blkback.ProtocolX86_64
		if x86_32 {
			p = blkback.ProtocolX86_32
		}
		st := blktest.NewMemStore(64<<10, false, true)
		feat := blktest.AllFeatures
		feat.Persistent = copyMax&1 == 1
		h, err := blktest.New(blktest.Config{Protocol: p, Store: st, Features: feat, CopyMax: int(copyMax % 8192), Pages: 64})
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		for i := range 4 {
			pg, err := h.Mem.Alloc()
			if err != nil {
				t.Fatal(err)
			}
			if ref := h.Mem.Grant(pg, i == 2); ref != uint32(fuzzRefRW0+i) {
				t.Fatalf("grant %d is ref %d", i, ref)
			}
			if i == 3 {
				copy(h.Mem.Page(pg), indirect)
			}
		}
		n := 0
		for len(slots) > 0 && n < 64 {
			s := slots[:min(len(slots), p.SlotSize())]
			slots = slots[len(s):]
			if err := h.Front.SubmitRaw(s); err != nil {
				t.Fatal(err)
			}
			n++
		}
		if bogus && len(slots) >= 4 {
			prod := binary.LittleEndian.Uint32(slots)
			binary.LittleEndian.PutUint32(h.Front.RingPage(), prod)
			h.Queue.Kick()
			time.Sleep(time.Millisecond)
			if err := h.Queue.Close(); err != nil && !feat.Persistent {
				t.Fatal(err)
			}
			return
		}
		if !h.Front.WaitIdle(time.After(blktest.Timeout)) {
			t.Fatalf("%d requests unanswered", h.Front.Outstanding())
		}
		if err := h.Front.ProtocolErr(); err != nil {
			t.Fatal(err)
		}
		if err := h.Queue.Close(); err != nil {
			t.Fatal(err)
		}
		if m := h.Mem.LiveMappings(); m != 0 {
			t.Fatalf("%d grants still mapped", m)
		}
	})
}
