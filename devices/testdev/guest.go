// Package testdev holds test fixtures for xenvmm's split-driver backends:
// a fake PV guest (Guest) wired to the real xenstore.Daemon, evtchn.Table
// and gnttab.Table, with the guest-side operations a frontend driver uses
// (grant pages, allocate and signal event channels, talk to xenstore over
// its ring as the guest's xenbus does), and a trivial "echo" split device
// (Echo, the backend; EchoFront, the frontend) that exercises the whole
// path: xenbus state machine, shared ring, grant maps and copies, event
// channels.
//
// Backends (blkback, netback, ...) may use Guest in their own tests: it
// implements xenbus.Host.
package testdev

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"sync"

	"github.com/xenvmm/xenvmm/devices/xenbus"
	"github.com/xenvmm/xenvmm/xenabi/abi"
	"github.com/xenvmm/xenvmm/xenabi/evtchn"
	"github.com/xenvmm/xenvmm/xenabi/gnttab"
	"github.com/xenvmm/xenvmm/xenabi/guestmem"
	"github.com/xenvmm/xenvmm/xenabi/xenstore"
)

// Guest is a fake PV guest: byte-slice memory, the hypervisor-side tables
// of xenvmm around it, and a driver-level API for frontends. It has one
// vCPU whose event upcalls run on a goroutine of the Guest.
type Guest struct {
	domid  uint16
	log    *slog.Logger
	mem    *guestmem.Space
	shared []byte // shared_info
	npages uint64

	gnt    *gnttab.Table
	frames *frames
	ev     *evtchn.Table
	xsd    *xenstore.Daemon
	store  *xenstore.Client
	xs     *XS

	kick chan struct{}
	stop chan struct{}
	wg   sync.WaitGroup

	mu       sync.Mutex
	nextPage uint64                   // bump allocator over guest frames
	freeRefs []uint32                 // grant references available
	ports    map[uint32]chan struct{} // event handlers by guest port
}

// GuestConfig sizes a Guest.
type GuestConfig struct {
	DomID uint16 // 0 means 1
	Pages int    // guest RAM in 4 KiB frames; 0 means 1024
	// Log receives the logs of the xenstore daemon and of Host users
	// (the bus); nil discards them.
	Log *slog.Logger
}

// Guest memory layout: frame 0 is shared_info-like scratch, frame 1 the
// xenstore ring; frames from firstFree are handed out by AllocPage.
const (
	xenstoreGFN = 1
	firstFree   = 2
	tableMFN    = 0x100000 // grant-table frames live outside guest RAM
	firstRef    = gnttab.GNTTAB_NR_RESERVED_ENTRIES
)

// NewGuest builds the guest and its domain: memory, grant table,
// event-channel table, a xenstore daemon with the domain's tree written
// as xl does (PopulateDomU) and the guest's xenstore connection. Close it
// to stop its goroutines.
func NewGuest(cfg GuestConfig) (*Guest, error) {
	if cfg.DomID == 0 {
		cfg.DomID = 1
	}
	if cfg.Pages == 0 {
		cfg.Pages = 1024
	}
	if cfg.Pages < firstFree+1 {
		return nil, fmt.Errorf("testdev: %d pages is too little guest memory", cfg.Pages)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	g := &Guest{
		domid:    cfg.DomID,
		log:      cfg.Log,
		shared:   make([]byte, guestmem.PageSize),
		npages:   uint64(cfg.Pages),
		kick:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		nextPage: firstFree,
		ports:    map[uint32]chan struct{}{},
		frames:   &frames{byMFN: map[uint64][]byte{}},
	}
	var err error
	g.mem, err = guestmem.NewSpace(guestmem.FromBytes(0, make([]byte, cfg.Pages*guestmem.PageSize)))
	if err != nil {
		return nil, err
	}
	g.gnt, err = gnttab.New(gnttab.Config{DomID: g.domid, Frames: g.frames, Memory: g.mem, MaxVersion: 1})
	if err != nil {
		return nil, err
	}
	for r := uint32(gnttab.EntriesPerFrameV1) - 1; r >= firstRef; r-- {
		g.freeRefs = append(g.freeRefs, r)
	}
	g.ev, err = evtchn.New(eventGuest{g}, evtchn.Config{DomID: g.domid})
	if err != nil {
		return nil, err
	}
	g.wg.Add(1)
	go g.upcalls()

	g.xsd = xenstore.New(xenstore.Options{Logger: cfg.Log})
	g.store = g.xsd.NewClient()
	// The xenstore event channel: the daemon's end is a domain-0
	// endpoint, as the VMM would set it up.
	xsPort, err := g.AllocUnbound()
	if err != nil {
		g.Close()
		return nil, err
	}
	if err := g.store.PopulateDomU(xenstore.DomU{
		Domid: uint32(g.domid), Name: "testdev", UUID: "00000000-0000-0000-0000-000000000001",
		MaxMemKiB: uint64(cfg.Pages) * 4, TargetMemKiB: uint64(cfg.Pages) * 4, VCPUs: 1,
		StorePort: xsPort, StoreRingRef: xenstoreGFN,
	}); err != nil {
		g.Close()
		return nil, err
	}
	xsPage, _ := g.mem.Page(xenstoreGFN)
	g.xs, err = newXS(g, xsPage, xsPort)
	if err != nil {
		g.Close()
		return nil, err
	}
	return g, nil
}

// Close stops the guest's goroutines (upcalls, xenstore reader) and the
// privileged client. It does not close a bus built on the guest.
func (g *Guest) Close() {
	select {
	case <-g.stop:
		return
	default:
	}
	if g.xs != nil {
		g.xs.close()
	}
	close(g.stop)
	g.wg.Wait()
	g.store.Close()
}

// xenbus.Host.

// DomID is the guest's domain id.
func (g *Guest) DomID() uint16 { return g.domid }

// Grants is the guest's grant table (backend side).
func (g *Guest) Grants() xenbus.GrantMapper { return g.gnt }

// Events is the guest's event-channel table (backend side).
func (g *Guest) Events() xenbus.EventBinder { return g.ev }

// Store is a privileged (domain 0) xenstore client.
func (g *Guest) Store() *xenstore.Client { return g.store }

// Log is the logger given in GuestConfig.
func (g *Guest) Log() *slog.Logger { return g.log }

var _ xenbus.Host = (*Guest)(nil)

// GrantTable is the grant table itself, for tests that inspect it.
func (g *Guest) GrantTable() *gnttab.Table { return g.gnt }

// EventTable is the event-channel table itself.
func (g *Guest) EventTable() *evtchn.Table { return g.ev }

// Daemon is the xenstore daemon.
func (g *Guest) Daemon() *xenstore.Daemon { return g.xsd }

// XS is the guest's own xenstore connection (unprivileged, over its ring).
func (g *Guest) XS() *XS { return g.xs }

// Memory is guest memory.
func (g *Guest) Memory() *guestmem.Space { return g.mem }

// Guest-side driver operations.

// ErrNoMemory: the bump allocator ran out of guest frames.
var ErrNoMemory = errors.New("testdev: out of guest frames")

// AllocPage hands out a fresh (zeroed) guest frame: its number and its
// bytes.
func (g *Guest) AllocPage() (uint64, []byte, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.nextPage >= g.npages {
		return 0, nil, ErrNoMemory
	}
	gfn := g.nextPage
	g.nextPage++
	p, err := g.mem.Page(gfn)
	return gfn, p, err
}

// ErrNoRefs: every grant reference of the table's first frame is in use.
var ErrNoRefs = errors.New("testdev: out of grant references")

// Grant grants domain 0 access to frame gfn, as Linux's
// gnttab_grant_foreign_access: the entry's frame and domid are written
// before its flags (GTF_permit_access, GTF_readonly).
func (g *Guest) Grant(gfn uint64, readonly bool) (uint32, error) {
	g.mu.Lock()
	if len(g.freeRefs) == 0 {
		g.mu.Unlock()
		return 0, ErrNoRefs
	}
	ref := g.freeRefs[len(g.freeRefs)-1]
	g.freeRefs = g.freeRefs[:len(g.freeRefs)-1]
	g.mu.Unlock()
	b, off := g.entry(ref)
	flags := uint32(abi.GTF_permit_access)
	if readonly {
		flags |= gnttab.GTF_readonly
	}
	guestmem.Store32(b, off+4, uint32(gfn))
	guestmem.Store32(b, off, flags|uint32(xenbus.BackendDomID)<<16)
	return ref, nil
}

// ErrGrantBusy: the backend still has the granted page mapped or is
// copying it (GTF_reading/GTF_writing set).
var ErrGrantBusy = errors.New("testdev: grant still in use by the backend")

// EndGrant revokes ref as gnttab_end_foreign_access_ref does (v1): the
// flags are cleared with a compare-and-swap that fails while the backend
// has the entry pinned. On success the reference is free again.
func (g *Guest) EndGrant(ref uint32) error {
	b, off := g.entry(ref)
	for {
		w, _ := guestmem.Load32(b, off)
		if w&(gnttab.GTF_reading|gnttab.GTF_writing) != 0 {
			return fmt.Errorf("%w: ref %d flags %#x", ErrGrantBusy, ref, w&0xffff)
		}
		if ok, _ := guestmem.CAS32(b, off, w, w&0xffff0000); ok {
			break
		}
	}
	g.mu.Lock()
	g.freeRefs = append(g.freeRefs, ref)
	g.mu.Unlock()
	return nil
}

// entry is the v1 grant entry of ref in the table's first frame (the
// guest "maps" it by MFN as a PV guest does after setup_table).
func (g *Guest) entry(ref uint32) ([]byte, uint64) {
	shared, _ := g.gnt.FrameMFNs()
	return g.frames.page(shared[0]), uint64(ref) * gnttab.EntrySizeV1
}

// AllocUnbound allocates a port for domain 0 to bind
// (EVTCHNOP_alloc_unbound with remote_dom 0) and registers it with the
// guest's upcall handler.
func (g *Guest) AllocUnbound() (uint32, error) {
	a := evtchn.AllocUnbound{Dom: abi.DOMID_SELF, RemoteDom: xenbus.BackendDomID}
	if err := g.ev.AllocUnbound(&a); err != nil {
		return 0, fmt.Errorf("testdev: alloc_unbound: %w", err)
	}
	g.mu.Lock()
	g.ports[a.Port] = make(chan struct{}, 1)
	g.mu.Unlock()
	return a.Port, nil
}

// PortEvents delivers, coalesced, the events the guest receives on port.
func (g *Guest) PortEvents(port uint32) <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.ports[port]
}

// Send signals port (EVTCHNOP_send).
func (g *Guest) Send(port uint32) error { return g.ev.Send(port) }

// ClosePort closes port (EVTCHNOP_close).
func (g *Guest) ClosePort(port uint32) error {
	g.mu.Lock()
	delete(g.ports, port)
	g.mu.Unlock()
	return g.ev.Close(port)
}

// upcalls is the guest's event upcall on vCPU 0, 2-level ABI, as Linux's
// xen_evtchn_do_upcall: clear evtchn_upcall_pending, take
// evtchn_pending_sel, and for each selected word handle the pending,
// unmasked ports, clearing each pending bit before dispatching.
func (g *Guest) upcalls() {
	defer g.wg.Done()
	vi := g.shared[:abi.VCPUInfoSize]
	for {
		select {
		case <-g.stop:
			return
		case <-g.kick:
		}
		for {
			guestmem.Store8(vi, abi.VCPUInfoUpcallPending, 0)
			sel, _ := guestmem.And64(vi, abi.VCPUInfoPendingSel, 0)
			if sel == 0 {
				break
			}
			for sel != 0 {
				w := uint64(bits.TrailingZeros64(sel))
				sel &^= 1 << w
				pend, _ := guestmem.Load64(g.shared, abi.SharedInfoEvtchnPending+w*8)
				mask, _ := guestmem.Load64(g.shared, abi.SharedInfoEvtchnMask+w*8)
				for act := pend &^ mask; act != 0; {
					b := uint64(bits.TrailingZeros64(act))
					act &^= 1 << b
					guestmem.And64(g.shared, abi.SharedInfoEvtchnPending+w*8, ^(uint64(1) << b))
					g.dispatch(uint32(w*64 + b))
				}
			}
		}
	}
}

func (g *Guest) dispatch(port uint32) {
	g.mu.Lock()
	c := g.ports[port]
	g.mu.Unlock()
	if c != nil {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

// eventGuest is the evtchn.Guest of the fake guest.
type eventGuest struct{ g *Guest }

func (e eventGuest) SharedInfo() []byte { return e.g.shared }
func (e eventGuest) NumVCPUs() int      { return 1 }
func (e eventGuest) VCPUInfo(v int) []byte {
	if v != 0 {
		return nil
	}
	return e.g.shared[:abi.VCPUInfoSize]
}
func (e eventGuest) Kick(int) {
	select {
	case e.g.kick <- struct{}{}:
	default:
	}
}
func (e eventGuest) Page(gfn uint64) ([]byte, error) { return e.g.mem.Page(gfn) }

// frames supplies grant-table frames outside guest RAM.
type frames struct {
	mu    sync.Mutex
	byMFN map[uint64][]byte
}

func (f *frames) Frame(kind gnttab.FrameKind, i int) (uint64, []byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	mfn := uint64(tableMFN + 0x1000*int(kind) + i)
	p := make([]byte, gnttab.PageSize)
	f.byMFN[mfn] = p
	return mfn, p, nil
}

func (f *frames) page(mfn uint64) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.byMFN[mfn]
}

var le = binary.LittleEndian
