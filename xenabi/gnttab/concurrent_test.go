package gnttab

import (
	"bytes"
	"fmt"
	"math/rand"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xenvmm/xenvmm/xenabi/abi"
	"github.com/xenvmm/xenvmm/xenabi/guestmem"
)

// Backends map, unmap and copy a few grants from many goroutines while
// the guest keeps trying to end access to them (and re-granting) and
// grows its table. A grant the guest ended must never be in use, and a
// grant in use must always show GTF_reading (GTF_writing when writable).
// Run with -race.
func TestConcurrentMapUnmap(t *testing.T) {
	for _, v := range []uint32{1, 2} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) { concurrentMapUnmap(t, v) })
	}
}

func concurrentMapUnmap(t *testing.T, version uint32) {
	const (
		nrefs    = 12
		firstRef = 8
		workers  = 6
		iters    = 1500
	)
	e := newEnv(t, withMaxFrames(8))
	if rc, _ := e.setVersion(version); rc != 0 {
		t.Fatal(rc)
	}
	for i := 0; i < nrefs; i++ {
		e.fill(uint64(200+i), byte(i))
		e.grant(uint32(firstRef+i), 0, uint64(200+i), abi.GTF_permit_access)
	}
	// inUse counts the mappings the backends hold per ref: it is raised
	// after the pin is taken and lowered before it is dropped, so it never
	// exceeds the pins. (Copies pin only inside the call, where no
	// counter can follow them.)
	var inUse [nrefs]atomic.Int32
	var okMaps, failedMaps, ended atomic.Int64
	var stop atomic.Bool
	deadline := time.Now().Add(10 * time.Second)
	errs := make(chan error, workers+2)
	var wg, guest sync.WaitGroup

	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(w)))
			var held []*Mapping
			// Run iters operations, and on until the guest has ended a few
			// grants (it may be scheduled late), within a deadline.
			for i := 0; i < iters || (ended.Load() < 20 && time.Now().Before(deadline)); i++ {
				k := rng.Intn(nrefs)
				ref := uint32(firstRef + k)
				switch op := rng.Intn(4); {
				case op <= 1: // map, check the busy bits, maybe keep it a while
					ro := op == 0
					m, err := e.tab.MapGrant(testDom, ref, ro)
					if err != nil {
						if StatusOf(err) != StatusGeneralError {
							errs <- fmt.Errorf("map ref %d: %v", ref, err)
							return
						}
						failedMaps.Add(1)
						continue
					}
					okMaps.Add(1)
					inUse[k].Add(1)
					want := uint16(GTF_reading)
					if !ro {
						want |= GTF_writing
					}
					if got := e.busy(ref); got&want != want {
						errs <- fmt.Errorf("ref %d mapped (ro %v) but busy bits %#x", ref, ro, got)
						return
					}
					if m.Bytes()[0] != byte(k) {
						errs <- fmt.Errorf("ref %d maps the wrong page", ref)
						return
					}
					held = append(held, m)
					if len(held) > 3 || rng.Intn(2) == 0 {
						j := rng.Intn(len(held))
						hm := held[j]
						held = append(held[:j], held[j+1:]...)
						inUse[hm.Ref()-firstRef].Add(-1)
						if err := hm.Unmap(); err != nil {
							errs <- err
							return
						}
					}
				case op == 2: // copy out
					var b [16]byte
					err := e.tab.CopyFromGrant(testDom, ref, 0, b[:])
					if err != nil && StatusOf(err) != StatusGeneralError {
						errs <- err
						return
					}
					if err == nil && b[0] != byte(k) {
						errs <- fmt.Errorf("copy from ref %d: wrong page", ref)
						return
					}
				default: // copy in, each worker to its own bytes
					err := e.tab.CopyToGrant(testDom, ref, 128+8*w, []byte{byte(w)})
					if err != nil && StatusOf(err) != StatusGeneralError {
						errs <- err
						return
					}
				}
			}
			for _, m := range held {
				inUse[m.Ref()-firstRef].Add(-1)
				m.Unmap()
			}
		}(w)
	}

	// The guest: end access to grants, and re-grant them.
	guest.Add(1)
	go func() {
		defer guest.Done()
		rng := rand.New(rand.NewSource(99))
		for !stop.Load() {
			k := rng.Intn(nrefs)
			ref := uint32(firstRef + k)
			if e.endAccess(ref) {
				ended.Add(1)
				// Ended: nothing may use the grant until it is re-granted.
				if n := inUse[k].Load(); n > 0 {
					errs <- fmt.Errorf("guest ended ref %d while %d backend uses hold it", ref, n)
					return
				}
			} else if version == 1 {
				// Still in use: a v1 entry's flags hold the busy bits and
				// must be left alone (gnttab_end_foreign_access defers).
				continue
			}
			// Ended (or, in v2, revoked but busy): grant it again.
			e.grant(ref, 0, uint64(200+k), abi.GTF_permit_access)
		}
	}()

	// The guest also grows its table and queries it meanwhile.
	guest.Add(1)
	go func() {
		defer guest.Done()
		for n := 2; n <= 8 && !stop.Load(); n++ {
			a := make([]byte, SetupTableSize)
			le.PutUint16(a[setupDom:], abi.DOMID_SELF)
			le.PutUint32(a[setupNrFrames:], uint32(n))
			le.PutUint64(a[setupFrameList:], listVA)
			if rc := e.tab.Hypercall(abi.GNTTABOP_setup_table, 1, a, e.va); rc != 0 {
				errs <- fmt.Errorf("setup_table: %v", rc)
				return
			}
			querySize(e, abi.DOMID_SELF, 0)
		}
	}()

	wg.Wait()
	stop.Store(true)
	guest.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if okMaps.Load() == 0 || ended.Load() == 0 {
		t.Fatalf("no interleaving exercised: %d maps succeeded, %d failed, guest ended %d", okMaps.Load(), failedMaps.Load(), ended.Load())
	}
	t.Logf("%d maps, %d refused, %d grants ended by the guest", okMaps.Load(), failedMaps.Load(), ended.Load())
	for k := 0; k < nrefs; k++ {
		if b := e.busy(uint32(firstRef + k)); b != 0 {
			t.Errorf("ref %d still busy (%#x) with nothing mapped", firstRef+k, b)
		}
	}
	checkPins(t, e.tab)
}

// The guest flips GTF_readonly (with cmpxchg, only while !GTF_writing, as
// grant_table.h says) while backends map: the v1 flags cmpxchg retries
// and never loses the guest's bit or leaves a writable pin on a read-only
// grant.
func TestConcurrentReadonlyFlips(t *testing.T) {
	e := newEnv(t)
	const ref = 20
	e.grant(ref, 0, 300, abi.GTF_permit_access)
	b, off := e.sharedPage(ref)
	var stop atomic.Bool
	var wg, guest sync.WaitGroup
	errs := make(chan error, 8)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				ro := (i+w)%2 == 0
				m, err := e.tab.MapGrant(testDom, ref, ro)
				if err != nil {
					if StatusOf(err) != StatusGeneralError {
						errs <- err
					}
					continue
				}
				if !ro {
					if f := e.flags(ref); f&GTF_readonly != 0 {
						errs <- fmt.Errorf("writable mapping of an entry now read-only (%#x)", f)
						return
					}
				}
				m.Unmap()
			}
		}(w)
	}
	guest.Add(1)
	go func() {
		defer guest.Done()
		for !stop.Load() {
			w, _ := guestmem.Load32(b, off)
			var nw uint32
			if w&GTF_readonly != 0 {
				nw = w &^ GTF_readonly
			} else if w&GTF_writing == 0 {
				nw = w | GTF_readonly
			} else {
				continue
			}
			guestmem.CAS32(b, off, w, nw)
		}
	}()
	wg.Wait()
	stop.Store(true)
	guest.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if e.busy(ref) != 0 {
		t.Fatalf("busy %#x after all unmaps", e.busy(ref))
	}
	checkPins(t, e.tab)
}

// The frontend/backend exchange of a block or network device: the guest
// grants 1000 pages, backends on several goroutines map them or copy
// from them and check every byte, write replies into the writable ones,
// and unmap; the guest then finds the replies and ends every grant.
func TestFrontendBackendExchange(t *testing.T) {
	for _, v := range []uint32{1, 2} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) { exchange(t, v) })
	}
}

func exchange(t *testing.T, version uint32) {
	const (
		npages   = 1000
		firstRef = GNTTAB_NR_RESERVED_ENTRIES
		firstGFN = 500
		workers  = 8
	)
	e := newEnv(t)
	if rc, _ := e.setVersion(version); rc != 0 {
		t.Fatal(rc)
	}
	per := EntriesPerFrameV1
	if version == 2 {
		per = EntriesPerFrameV2
	}
	e.setup((firstRef + npages + per - 1) / per)
	pattern := func(i, j int) byte { return byte(i*131 + j*7 + j>>8) }
	for i := 0; i < npages; i++ {
		p := e.page(uint64(firstGFN + i))
		for j := range p {
			p[j] = pattern(i, j)
		}
		flags := uint16(abi.GTF_permit_access)
		if i%2 == 1 {
			flags |= GTF_readonly
		}
		e.grant(uint32(firstRef+i), 0, uint64(firstGFN+i), flags)
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			buf := make([]byte, PageSize)
			for i := w; i < npages; i += workers {
				ref := uint32(firstRef + i)
				readonly := i%2 == 1
				// Check the page through a read-only mapping...
				m, err := e.tab.MapGrant(testDom, ref, true)
				if err != nil {
					errs <- err
					return
				}
				got := m.Bytes()
				for j := range got {
					if got[j] != pattern(i, j) {
						errs <- fmt.Errorf("ref %d byte %d: %#x, want %#x", ref, j, got[j], pattern(i, j))
						return
					}
				}
				// ... and through a copy, while still mapped.
				if err := e.tab.CopyFromGrant(testDom, ref, 0, buf); err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(buf, got) {
					errs <- fmt.Errorf("ref %d: copy differs from the mapping", ref)
					return
				}
				if err := m.Unmap(); err != nil {
					errs <- err
					return
				}
				// Reply: a writable mapping for even pages, a copy for
				// odd ones -- which are read-only grants and must refuse.
				reply := []byte(fmt.Sprintf("reply %d", i))
				if !readonly {
					wm, err := e.tab.MapGrant(testDom, ref, false)
					if err != nil {
						errs <- err
						return
					}
					if _, err := wm.WriteAt(reply, 64); err != nil {
						errs <- err
						return
					}
					wm.Unmap()
					if err := e.tab.CopyToGrant(testDom, ref, PageSize-len(reply), reply); err != nil {
						errs <- err
						return
					}
				} else if err := e.tab.CopyToGrant(testDom, ref, 0, reply); StatusOf(err) != StatusGeneralError {
					errs <- fmt.Errorf("ref %d: copy into a read-only grant: %v", ref, err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i := 0; i < npages; i++ {
		ref := uint32(firstRef + i)
		p := e.page(uint64(firstGFN + i))
		reply := fmt.Sprintf("reply %d", i)
		if i%2 == 0 {
			if string(p[64:64+len(reply)]) != reply || string(p[PageSize-len(reply):]) != reply {
				t.Fatalf("page %d: reply missing", i)
			}
		} else if p[0] != pattern(i, 0) {
			t.Fatalf("read-only page %d was written", i)
		}
		if !e.endAccess(ref) {
			t.Fatalf("ref %d still busy after the exchange", ref)
		}
	}
	checkPins(t, e.tab)
}
