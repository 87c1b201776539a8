package blkback

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/xenvmm/xenvmm/devices/ring"
)

// Features are what the backend advertised and the frontend took up;
// they decide which operations a Queue serves.
type Features struct {
	// Flush: feature-flush-cache, BLKIF_OP_FLUSH_DISKCACHE.
	Flush bool
	// Barrier: feature-barrier, BLKIF_OP_WRITE_BARRIER.
	Barrier bool
	// Discard: feature-discard, BLKIF_OP_DISCARD; DiscardSecure:
	// discard-secure, BLKIF_DISCARD_SECURE honoured (ignored otherwise,
	// as blkif.h says).
	Discard, DiscardSecure bool
	// MaxIndirectSegments: feature-max-indirect-segments; 0 means
	// BLKIF_OP_INDIRECT is not offered.
	MaxIndirectSegments int
	// Persistent: both ends wrote feature-persistent = 1.
	Persistent bool
}

// QueueConfig configures one ring's Queue.
type QueueConfig struct {
	// Ring is the shared ring page, mapped (the frontend initialised it).
	Ring []byte
	// Protocol is the frontend's ring ABI.
	Protocol Protocol
	// Store is the backing store; Sectors the disk size in 512-byte
	// sectors (0: Store.Info().Size/512).
	Store   Store
	Sectors uint64
	// ReadOnly refuses writes and discards even if Store takes them.
	ReadOnly bool
	// Grants reaches the frontend's granted pages.
	Grants Grants
	// Notify raises the event channel to the frontend.
	Notify func()
	// Features decides which operations are served.
	Features Features
	// CopyMax: data segments of at most this many bytes go through a
	// buffer by grant copy instead of being mapped; 0 maps every segment.
	CopyMax int
	// PersistentLimit bounds the grants kept mapped under
	// feature-persistent; 0 means ring size * max segments per request.
	PersistentLimit int
	// Log receives host I/O errors (Error), rejected requests (Debug)
	// and a broken ring (Warn). Nil discards.
	Log *slog.Logger
}

// Stats are a Queue's counters.
type Stats struct {
	Reads, Writes, Flushes, Barriers, Discards uint64
	ReadBytes, WriteBytes                      uint64
	// Errors counts BLKIF_RSP_ERROR responses, NotSupported
	// BLKIF_RSP_EOPNOTSUPP ones.
	Errors, NotSupported uint64
	// PersistentGrants is how many grants are kept mapped.
	PersistentGrants int
}

// Queue serves one blkif ring: it consumes requests in ring order,
// checks them, runs them against the Store (several at once, each on its
// own goroutine, with flushes and barriers ordered after the writes
// before them: see tracker) and answers each exactly once. Bad requests
// are answered BLKIF_RSP_ERROR or BLKIF_RSP_EOPNOTSUPP; a frontend that
// publishes an impossible req_prod stops the queue from consuming more,
// as xen-blkback halts a bogus ring. The guest cannot make it panic.
type Queue struct {
	cfg        QueueConfig
	back       *ring.Back
	log        *slog.Logger
	sectors    uint64
	readOnly   bool
	persistent *persistentGrants
	order      *tracker

	// ringMu serialises use of back: the dispatcher consumes requests,
	// request goroutines produce responses.
	ringMu sync.Mutex

	kick chan struct{}
	stop chan struct{}
	done chan struct{}
	reqs sync.WaitGroup // running request goroutines

	closeOnce sync.Once
	closeErr  error
	broken    atomic.Bool

	reads, writes, flushes, barriers, discards atomic.Uint64
	readBytes, writeBytes                      atomic.Uint64
	errors, notSupported                       atomic.Uint64
}

// NewQueue attaches to the ring and starts serving it; it processes
// requests already on the ring and then whenever Kick is called.
func NewQueue(cfg QueueConfig) (*Queue, error) {
	if cfg.Store == nil || cfg.Grants == nil {
		return nil, errors.New("blkback: QueueConfig needs Store and Grants")
	}
	back, err := ring.NewBack(cfg.Ring, cfg.Protocol.SlotSize())
	if err != nil {
		return nil, fmt.Errorf("blkback: attach ring: %w", err)
	}
	info := cfg.Store.Info()
	q := &Queue{
		cfg:      cfg,
		back:     back,
		log:      cfg.Log,
		sectors:  cfg.Sectors,
		readOnly: cfg.ReadOnly || info.ReadOnly,
		order:    newTracker(),
		kick:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	if q.log == nil {
		q.log = slog.New(slog.DiscardHandler)
	}
	if q.sectors == 0 {
		q.sectors = uint64(info.Size) >> SectorShift
	}
	if q.cfg.Notify == nil {
		q.cfg.Notify = func() {}
	}
	if cfg.Features.Persistent {
		limit := cfg.PersistentLimit
		if limit <= 0 {
			limit = int(back.Size()) * max(MaxSegments, cfg.Features.MaxIndirectSegments+MaxIndirectPages)
		}
		q.persistent = newPersistentGrants(cfg.Grants, limit)
	}
	go q.loop()
	return q, nil
}

// Kick tells the queue the frontend notified its event channel. It never
// blocks; call it from an evtchn.Handler.
func (q *Queue) Kick() {
	select {
	case q.kick <- struct{}{}:
	default:
	}
}

// Close stops consuming requests, waits for the running ones to be
// answered and unmaps the persistent grants. The ring page and the event
// channel are the caller's to release afterwards.
func (q *Queue) Close() error {
	q.closeOnce.Do(func() {
		close(q.stop)
		<-q.done
		q.reqs.Wait()
		if q.persistent != nil {
			q.closeErr = q.persistent.unmapAll()
		}
	})
	return q.closeErr
}

// Stats returns the counters.
func (q *Queue) Stats() Stats {
	s := Stats{
		Reads: q.reads.Load(), Writes: q.writes.Load(), Flushes: q.flushes.Load(),
		Barriers: q.barriers.Load(), Discards: q.discards.Load(),
		ReadBytes: q.readBytes.Load(), WriteBytes: q.writeBytes.Load(),
		Errors: q.errors.Load(), NotSupported: q.notSupported.Load(),
	}
	if q.persistent != nil {
		s.PersistentGrants = q.persistent.len()
	}
	return s
}

// Err is the ring's protocol error (an *ring.IndexError) once the
// frontend broke the ring, else nil.
func (q *Queue) Err() error {
	q.ringMu.Lock()
	defer q.ringMu.Unlock()
	return q.back.Err()
}

func (q *Queue) loop() {
	defer close(q.done)
	var batch []Request
	for {
		batch = q.drain(batch[:0])
		select {
		case <-q.kick:
		case <-q.stop:
			return
		}
	}
}

// drain consumes and dispatches requests until the ring is empty and
// req_event is armed (RING_FINAL_CHECK_FOR_REQUESTS).
func (q *Queue) drain(batch []Request) []Request {
	for {
		batch = batch[:0]
		q.ringMu.Lock()
		for {
			slot, ok := q.back.NextRequest()
			if !ok {
				break
			}
			// The slot size is the protocol's, so this cannot fail.
			r, _ := ParseRequest(q.cfg.Protocol, slot)
			batch = append(batch, r)
		}
		more := len(batch) > 0 || q.back.FinalCheckForRequests()
		err := q.back.Err()
		q.ringMu.Unlock()
		if err != nil && q.broken.CompareAndSwap(false, true) {
			q.log.Warn("blkback: frontend broke the ring; no more requests are served", "err", err)
		}
		for i := range batch {
			q.dispatch(&batch[i])
		}
		if !more {
			return batch
		}
		select {
		case <-q.stop:
			return batch
		default:
		}
	}
}

// dispatch starts one request, in ring order.
func (q *Queue) dispatch(r *Request) {
	f := &q.cfg.Features
	switch r.Operation {
	case OpRead, OpWrite:
		q.async(r, r.Operation == OpWrite, 0, false)
	case OpIndirect:
		if f.MaxIndirectSegments == 0 {
			q.respond(r, RspEOPNOTSUPP)
			return
		}
		q.async(r, r.IndirectOp == OpWrite, 0, false)
	case OpDiscard:
		if !f.Discard {
			q.respond(r, RspEOPNOTSUPP)
			return
		}
		q.async(r, true, 0, false)
	case OpFlushDiskcache:
		if !f.Flush {
			q.respond(r, RspEOPNOTSUPP)
			return
		}
		// The flush waits for the writes of the epoch it closes; its
		// own data (if any) is a write of the next one.
		e := q.order.closeEpoch()
		q.async(r, true, e, true)
	case OpWriteBarrier:
		if !f.Barrier {
			q.respond(r, RspEOPNOTSUPP)
			return
		}
		// Everything before the barrier completes first, and nothing
		// after it starts until it is answered.
		q.order.waitIdle()
		q.order.closeEpoch()
		q.barriers.Add(1)
		q.respond(r, q.flush(r))
	default:
		q.respond(r, RspEOPNOTSUPP)
	}
}

// async runs r on its own goroutine. write registers it with the
// tracker as a write; a flush first waits for the writes of epoch
// flushEpoch and earlier.
func (q *Queue) async(r *Request, write bool, flushEpoch uint64, isFlush bool) {
	e := q.order.start(write)
	req := *r
	q.reqs.Add(1)
	go func() {
		defer q.reqs.Done()
		var st int16
		if isFlush {
			q.order.waitWrites(flushEpoch)
			q.flushes.Add(1)
			st = q.flush(&req)
		} else {
			st = q.execute(&req)
		}
		q.order.finish(write, e)
		q.respond(&req, st)
	}()
}

// respond writes r's response and notifies the frontend if it asked.
func (q *Queue) respond(r *Request, status int16) {
	switch status {
	case RspError:
		q.errors.Add(1)
	case RspEOPNOTSUPP:
		q.notSupported.Add(1)
	}
	rsp := Response{ID: r.ID, Operation: r.DataOp(), Status: status}
	q.ringMu.Lock()
	slot := q.back.ResponseSlot()
	if slot == nil {
		q.ringMu.Unlock()
		q.log.Error("blkback: no response slot for a consumed request", "id", r.ID)
		return
	}
	_ = PutResponse(q.cfg.Protocol, slot, rsp) // slot is the protocol's size
	notify := q.back.PushResponses()
	q.ringMu.Unlock()
	if notify {
		q.cfg.Notify()
	}
}

// reject logs a request refused for the guest's fault (at Debug: a
// guest must not be able to flood the host's log) and returns status.
func (q *Queue) reject(r *Request, status int16, why string, args ...any) int16 {
	if q.log.Enabled(context.Background(), slog.LevelDebug) {
		q.log.Debug("blkback: request refused: "+fmt.Sprintf(why, args...),
			"op", r.Operation, "id", r.ID, "sector", r.Sector, "status", status)
	}
	return status
}

// execute runs a read, write, indirect read/write or discard.
func (q *Queue) execute(r *Request) int16 {
	if r.Operation == OpDiscard {
		q.discards.Add(1)
		return q.discard(r)
	}
	op := r.DataOp()
	if op != OpRead && op != OpWrite {
		// An indirect request may only carry a read or a write.
		return q.reject(r, RspError, "indirect operation %d", op)
	}
	if op == OpWrite {
		q.writes.Add(1)
	} else {
		q.reads.Add(1)
	}
	segs, st := q.segments(r, false)
	if st != RspOkay {
		return st
	}
	return q.transfer(r, op == OpWrite, segs)
}

// flush runs a flush or barrier: the request's data, if it carries any,
// is written first, then the store is synced; it is answered only after
// fdatasync returned. (A Linux frontend sends FUA writes as barriers with
// data when the backend only offers barriers, so the data itself is
// synced too.)
func (q *Queue) flush(r *Request) int16 {
	segs, st := q.segments(r, true)
	if st != RspOkay {
		return st
	}
	if len(segs) > 0 {
		if st := q.transfer(r, true, segs); st != RspOkay {
			return st
		}
	}
	if err := q.cfg.Store.Sync(); err != nil {
		q.log.Error("blkback: flush failed", "err", err)
		return RspError
	}
	return RspOkay
}

// segments returns the data segments of a read, write, flush or barrier,
// checked as xen-blkback checks them: 1..11 segments in a direct read or
// write (0..11 in a flush or barrier), 1..feature-max-indirect-segments
// in an indirect request, and every segment's sectors within its page.
func (q *Queue) segments(r *Request, flush bool) ([]Segment, int16) {
	var segs []Segment
	if r.Operation == OpIndirect {
		n := int(r.NrSegments)
		if n == 0 || n > q.cfg.Features.MaxIndirectSegments {
			return nil, q.reject(r, RspError, "%d indirect segments", n)
		}
		pages := (n + SegsPerIndirectPage - 1) / SegsPerIndirectPage
		raw := make([]byte, n*SegmentSize)
		for i := 0; i < pages; i++ {
			chunk := raw[i*PageSize : min(len(raw), (i+1)*PageSize)]
			if err := q.cfg.Grants.CopyFrom(r.IndirectGrefs[i], 0, chunk); err != nil {
				return nil, q.reject(r, RspError, "indirect page %d: %v", i, err)
			}
		}
		segs = make([]Segment, n)
		_ = ParseSegments(raw, segs) // raw holds n segments
	} else {
		n := int(r.NrSegments)
		if (n == 0 && !flush) || n > MaxSegments {
			return nil, q.reject(r, RspError, "%d segments", n)
		}
		segs = r.Seg[:n]
	}
	for i, s := range segs {
		if !s.Valid() {
			return nil, q.reject(r, RspError, "segment %d: sectors %d..%d", i, s.FirstSect, s.LastSect)
		}
	}
	return segs, RspOkay
}

// inRange reports whether n sectors from sector lie on the disk.
func (q *Queue) inRange(sector, n uint64) bool {
	end := sector + n
	return end >= sector && end <= q.sectors
}

// transfer moves the data of segs between the guest's pages and the
// store at r.Sector.
func (q *Queue) transfer(r *Request, write bool, segs []Segment) int16 {
	if write && q.readOnly {
		return q.reject(r, RspError, "write to a read-only disk")
	}
	var nsect uint64
	for _, s := range segs {
		nsect += uint64(s.LastSect-s.FirstSect) + 1
	}
	if !q.inRange(r.Sector, nsect) {
		return q.reject(r, RspError, "sectors %d+%d beyond the disk's %d", r.Sector, nsect, q.sectors)
	}
	io, err := q.mapData(segs, write)
	if err != nil {
		return q.reject(r, RspError, "%v", err)
	}
	off := int64(r.Sector) << SectorShift
	if write {
		err = q.cfg.Store.WriteV(io.bufs, off)
	} else {
		err = q.cfg.Store.ReadV(io.bufs, off)
	}
	if err == nil && !write {
		err = io.copyOut(q.cfg.Grants)
	}
	io.release()
	if err != nil {
		op := "read"
		if write {
			op = "write"
		}
		q.log.Error("blkback: "+op+" failed", "sector", r.Sector, "sectors", nsect, "err", err)
		return RspError
	}
	n := nsect << SectorShift
	if write {
		q.writeBytes.Add(n)
	} else {
		q.readBytes.Add(n)
	}
	return RspOkay
}

// discard runs BLKIF_OP_DISCARD.
func (q *Queue) discard(r *Request) int16 {
	if q.readOnly {
		return q.reject(r, RspError, "discard on a read-only disk")
	}
	if !q.inRange(r.Sector, r.NrSectors) {
		return q.reject(r, RspError, "discard %d+%d beyond the disk's %d sectors", r.Sector, r.NrSectors, q.sectors)
	}
	secure := r.Flag&DiscardSecure != 0 && q.cfg.Features.DiscardSecure
	err := q.cfg.Store.Discard(int64(r.Sector)<<SectorShift, int64(r.NrSectors)<<SectorShift, secure)
	switch {
	case errors.Is(err, ErrNotSupported):
		return RspEOPNOTSUPP
	case err != nil:
		q.log.Error("blkback: discard failed", "sector", r.Sector, "sectors", r.NrSectors, "err", err)
		return RspError
	}
	return RspOkay
}

// dataIO is one request's buffers: slices of mapped guest pages, or of
// local buffers for segments that move by grant copy.
type dataIO struct {
	bufs   [][]byte
	unmap  []Mapping
	copies []pendingCopy
}

// pendingCopy is a segment read into a local buffer, to be copied into
// the guest's page.
type pendingCopy struct {
	ref uint32
	off int
	buf []byte
}

func (d *dataIO) copyOut(g Grants) error {
	for _, c := range d.copies {
		if err := g.CopyTo(c.ref, c.off, c.buf); err != nil {
			return fmt.Errorf("blkback: copy to grant %d: %w", c.ref, err)
		}
	}
	return nil
}

func (d *dataIO) release() {
	for _, m := range d.unmap {
		_ = m.Unmap() // a mapping we made; it cannot be unmapped twice
	}
	d.unmap = nil
}

// mapData gives each segment a buffer: the segment's bytes in the mapped
// guest page (writable for a read, read-only for a write), or, for
// segments of at most CopyMax bytes, a local buffer filled by grant copy
// (write) or copied out after the read.
func (q *Queue) mapData(segs []Segment, write bool) (*dataIO, error) {
	d := &dataIO{bufs: make([][]byte, len(segs))}
	var local []byte // one buffer for all the copied segments
	if q.cfg.CopyMax > 0 {
		total := 0
		for _, s := range segs {
			if n := s.Len(); n <= q.cfg.CopyMax {
				total += n
			}
		}
		local = make([]byte, total)
	}
	for i, s := range segs {
		off, n := s.Offset(), s.Len()
		if n <= q.cfg.CopyMax {
			buf := local[:n:n]
			local = local[n:]
			if write {
				if err := q.cfg.Grants.CopyFrom(s.Gref, off, buf); err != nil {
					d.release()
					return nil, fmt.Errorf("segment %d: copy from grant %d: %w", i, s.Gref, err)
				}
			} else {
				d.copies = append(d.copies, pendingCopy{s.Gref, off, buf})
			}
			d.bufs[i] = buf
			continue
		}
		var m Mapping
		ok := false
		if q.persistent != nil {
			m, ok = q.persistent.get(s.Gref)
		}
		if !ok {
			var err error
			// The guest's data goes to disk from a read-only
			// mapping; a read lands in a writable one.
			readonly := write
			m, err = q.cfg.Grants.Map(s.Gref, readonly)
			if err != nil {
				d.release()
				return nil, fmt.Errorf("segment %d: map grant %d: %w", i, s.Gref, err)
			}
			d.unmap = append(d.unmap, m)
		}
		page := m.Bytes()
		if len(page) < off+n {
			d.release()
			return nil, fmt.Errorf("segment %d: grant %d maps %d bytes", i, s.Gref, len(page))
		}
		d.bufs[i] = page[off : off+n : off+n]
	}
	return d, nil
}
