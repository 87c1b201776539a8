package blkback

import "sync"

// tracker orders flushes and barriers after the writes before them, as
// blkif.h asks: BLKIF_OP_FLUSH_DISKCACHE commits what was written, so it
// must not sync before the writes that the frontend issued ahead of it
// reached the host; BLKIF_OP_WRITE_BARRIER additionally keeps every
// later request from starting until it is done.
//
// The dispatcher registers requests in ring order. Writes (and discards,
// and flushes carrying data) belong to the current epoch; a flush closes
// the epoch and waits until no write of it, or of an earlier one, is
// still running. Reads and writes of later epochs run meanwhile. A
// barrier waits until nothing at all is running, and the dispatcher
// starts nothing else until the barrier is answered.
type tracker struct {
	mu   sync.Mutex
	cond sync.Cond
	// running counts every request started and not yet finished.
	running int
	// epoch is the current write epoch; writes[e] counts the running
	// writes of epoch e.
	epoch  uint64
	writes map[uint64]int
}

func newTracker() *tracker {
	t := &tracker{writes: map[uint64]int{}}
	t.cond.L = &t.mu
	return t
}

// start registers a request; write says whether it changes the disk.
// It returns the epoch to pass to finish.
func (t *tracker) start(write bool) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.running++
	if write {
		t.writes[t.epoch]++
	}
	return t.epoch
}

// finish unregisters a request start returned epoch e for.
func (t *tracker) finish(write bool, e uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.running--
	if write {
		if t.writes[e]--; t.writes[e] <= 0 {
			delete(t.writes, e)
		}
	}
	t.cond.Broadcast()
}

// closeEpoch ends the current epoch (a flush was issued) and returns it:
// the flush waits for the writes of that epoch and before.
func (t *tracker) closeEpoch() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.epoch
	t.epoch++
	return e
}

// waitWrites blocks until no write of epoch e or earlier is running.
func (t *tracker) waitWrites(e uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for t.writesUpTo(e) {
		t.cond.Wait()
	}
}

func (t *tracker) writesUpTo(e uint64) bool {
	for k := range t.writes {
		if k <= e {
			return true
		}
	}
	return false
}

// waitIdle blocks until no request is running.
func (t *tracker) waitIdle() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for t.running > 0 {
		t.cond.Wait()
	}
}
