package blktest

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/xenvmm/xenvmm/devices/blkback"
)

// Shape is one segment's sectors in its page: first_sect and last_sect
// of struct blkif_request_segment.
type Shape struct{ First, Last uint8 }

// Len is the segment's length in bytes.
func (s Shape) Len() int { return (int(s.Last) - int(s.First) + 1) * blkback.SectorSize }

// Contiguous is the shape of a transfer of nsect sectors in whole pages:
// 8-sector segments, the last one shorter.
func Contiguous(nsect int) []Shape {
	var s []Shape
	for nsect > 0 {
		n := min(nsect, 8)
		s = append(s, Shape{0, uint8(n - 1)})
		nsect -= n
	}
	return s
}

// ShapeLen is the bytes a shape transfers.
func ShapeLen(shape []Shape) int {
	n := 0
	for _, s := range shape {
		n += s.Len()
	}
	return n
}

// Timeout bounds Transfer.Wait.
const Timeout = 20 * time.Second

// Transfer is a request with data in flight: its pages are granted until
// Wait returns.
type Transfer struct {
	f     *Front
	read  bool
	shape []Shape
	pages []int
	refs  []uint32
	c     <-chan blkback.Response
}

// StartIO submits a request of operation op (BLKIF_OP_READ, WRITE,
// FLUSH_DISKCACHE or WRITE_BARRIER) at sector with segments of the given
// shape, each in its own freshly granted page; data (for a write) is laid
// out in the segments in order (nil leaves the pages as they are, for
// benchmarks). indirect sends it as BLKIF_OP_INDIRECT with the segments
// in granted indirect pages.
func (f *Front) StartIO(op uint8, sector uint64, data []byte, shape []Shape, indirect bool) (*Transfer, error) {
	read := op == blkback.OpRead
	if !read && data != nil && len(data) != ShapeLen(shape) {
		return nil, fmt.Errorf("blktest: %d bytes of data for a %d-byte shape", len(data), ShapeLen(shape))
	}
	t := &Transfer{f: f, read: read, shape: shape}
	segs := make([]blkback.Segment, len(shape))
	for i, s := range shape {
		pg, err := f.Mem.Alloc()
		if err != nil {
			t.release()
			return nil, err
		}
		t.pages = append(t.pages, pg)
		page := f.Mem.Page(pg)
		switch {
		case !read && data != nil:
			off := int(s.First) * blkback.SectorSize
			n := copy(page[off:off+s.Len()], data)
			data = data[n:]
		case read && !f.NoClear:
			clear(page)
		}
		// A read fills the page: the guest grants it writable.
		ref := f.Mem.Grant(pg, !read)
		t.refs = append(t.refs, ref)
		segs[i] = blkback.Segment{Gref: ref, FirstSect: s.First, LastSect: s.Last}
	}
	r := blkback.Request{Operation: op, Sector: sector, NrSegments: uint16(len(segs))}
	if indirect {
		r.Operation, r.IndirectOp = blkback.OpIndirect, op
		per := blkback.SegsPerIndirectPage
		for i := 0; i*per < len(segs); i++ {
			if i >= blkback.MaxIndirectPages {
				t.release()
				return nil, errors.New("blktest: too many segments for an indirect request")
			}
			pg, err := f.Mem.Alloc()
			if err != nil {
				t.release()
				return nil, err
			}
			t.pages = append(t.pages, pg)
			blkback.PutSegments(f.Mem.Page(pg), segs[i*per:min(len(segs), (i+1)*per)])
			ref := f.Mem.Grant(pg, true)
			t.refs = append(t.refs, ref)
			r.IndirectGrefs[i] = ref
		}
	} else {
		if len(segs) > blkback.MaxSegments {
			t.release()
			return nil, fmt.Errorf("blktest: %d segments in a direct request", len(segs))
		}
		copy(r.Seg[:], segs)
	}
	c, err := f.Submit(r)
	if err != nil {
		t.release()
		return nil, err
	}
	t.c = c
	return t, nil
}

// StartWrite submits a write of data at sector.
func (f *Front) StartWrite(sector uint64, data []byte, shape []Shape, indirect bool) (*Transfer, error) {
	return f.StartIO(blkback.OpWrite, sector, data, shape, indirect)
}

// StartRead submits a read at sector.
func (f *Front) StartRead(sector uint64, shape []Shape, indirect bool) (*Transfer, error) {
	return f.StartIO(blkback.OpRead, sector, nil, shape, indirect)
}

// Wait waits for the response, revokes the grants (which fails if the
// backend still maps one) and frees the pages. For a successful read it
// returns the data gathered from the segments.
func (t *Transfer) Wait() (blkback.Response, []byte, error) {
	return t.wait(true)
}

// Finish is Wait without gathering the data read.
func (t *Transfer) Finish() (blkback.Response, error) {
	rsp, _, err := t.wait(false)
	return rsp, err
}

func (t *Transfer) wait(gather bool) (blkback.Response, []byte, error) {
	var rsp blkback.Response
	timer := time.NewTimer(Timeout)
	defer timer.Stop()
	select {
	case rsp = <-t.c:
	case <-timer.C:
		return rsp, nil, errors.New("blktest: no response")
	}
	var data []byte
	if gather && t.read && rsp.Status == blkback.RspOkay {
		for i, s := range t.shape {
			off := int(s.First) * blkback.SectorSize
			data = append(data, t.f.Mem.Page(t.pages[i])[off:off+s.Len()]...)
		}
	}
	return rsp, data, t.release()
}

func (t *Transfer) release() error {
	var first error
	for _, ref := range t.refs {
		if err := t.f.Mem.Revoke(ref); err != nil && first == nil {
			first = err
		}
	}
	for _, pg := range t.pages {
		t.f.Mem.Free(pg)
	}
	t.refs, t.pages = nil, nil
	return first
}

// Write writes data at sector and waits.
func (f *Front) Write(sector uint64, data []byte, shape []Shape, indirect bool) (blkback.Response, error) {
	t, err := f.StartWrite(sector, data, shape, indirect)
	if err != nil {
		return blkback.Response{}, err
	}
	rsp, _, err := t.Wait()
	return rsp, err
}

// Read reads at sector and waits.
func (f *Front) Read(sector uint64, shape []Shape, indirect bool) (blkback.Response, []byte, error) {
	t, err := f.StartRead(sector, shape, indirect)
	if err != nil {
		return blkback.Response{}, nil, err
	}
	return t.Wait()
}

// Flush sends BLKIF_OP_FLUSH_DISKCACHE without data and waits.
func (f *Front) Flush() (blkback.Response, error) {
	return f.Do(blkback.Request{Operation: blkback.OpFlushDiskcache})
}

// Discard sends BLKIF_OP_DISCARD and waits.
func (f *Front) Discard(sector, n uint64, secure bool) (blkback.Response, error) {
	r := blkback.Request{Operation: blkback.OpDiscard, Sector: sector, NrSectors: n}
	if secure {
		r.Flag = blkback.DiscardSecure
	}
	return f.Do(r)
}

// Config configures a Harness.
type Config struct {
	Protocol blkback.Protocol
	Store    blkback.Store
	ReadOnly bool
	Features blkback.Features
	CopyMax  int
	// PersistentLimit: see blkback.QueueConfig.
	PersistentLimit int
	// Pages of guest memory; 0 means 4096 (16 MiB).
	Pages int
	Log   *slog.Logger
}

// Harness is a guest (Memory, Front) connected to a blkback.Queue.
type Harness struct {
	Mem   *Memory
	Front *Front
	Queue *blkback.Queue
}

// New builds a harness and starts the queue.
func New(cfg Config) (*Harness, error) {
	pages := cfg.Pages
	if pages == 0 {
		pages = 4096
	}
	mem, err := NewMemory(pages)
	if err != nil {
		return nil, err
	}
	f, err := NewFront(mem, cfg.Protocol, nil)
	if err != nil {
		mem.Close()
		return nil, err
	}
	q, err := blkback.NewQueue(blkback.QueueConfig{
		Ring:     f.RingPage(),
		Protocol: cfg.Protocol,
		Store:    cfg.Store,
		ReadOnly: cfg.ReadOnly,
		Grants:   mem,
		Notify:   f.Notify,
		Features: cfg.Features,
		CopyMax:  cfg.CopyMax,
		Log:      cfg.Log,

		PersistentLimit: cfg.PersistentLimit,
	})
	if err != nil {
		f.Close()
		mem.Close()
		return nil, err
	}
	f.SetKick(q.Kick)
	return &Harness{Mem: mem, Front: f, Queue: q}, nil
}

// Close stops the queue and the front and frees the memory.
func (h *Harness) Close() error {
	err := h.Queue.Close()
	h.Front.Close()
	if e := h.Mem.Close(); err == nil {
		err = e
	}
	return err
}

// AllFeatures is every optional operation on, with indirect requests of
// up to 256 segments (1 MiB).
var AllFeatures = blkback.Features{Flush: true, Barrier: true, Discard: true, MaxIndirectSegments: 256}
