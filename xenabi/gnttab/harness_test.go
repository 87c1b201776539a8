package gnttab

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/xenvmm/xenvmm/xenabi/abi"
	"github.com/xenvmm/xenvmm/xenabi/guestmem"
)

const (
	testDom      = 7
	guestPages   = 2048       // guest RAM: frames 0..2047
	tableMFNBase = 0x10_0000  // shared frames: tableMFNBase+i
	statusMFN    = 0x20_0000  // status frames: statusMFN+i
	listVA       = 0x4000_000 // where fakeGuestVA lives
)

// fakeFrames hands out table frames and remembers them by MFN, so that
// the fake guest can "map" them the way a PV guest does with mmu_update.
type fakeFrames struct {
	mu     sync.Mutex
	byMFN  map[uint64][]byte
	failAt map[FrameKind]int // Frame(kind, i) fails for i >= failAt[kind]
	calls  int
	short  bool // return a short page
}

func newFakeFrames() *fakeFrames {
	return &fakeFrames{byMFN: map[uint64][]byte{}, failAt: map[FrameKind]int{}}
}

var errNoMem = errors.New("fake: out of frames")

func (f *fakeFrames) Frame(kind FrameKind, i int) (uint64, []byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if n, ok := f.failAt[kind]; ok && i >= n {
		return 0, nil, errNoMem
	}
	mfn := uint64(tableMFNBase + i)
	if kind == StatusFrame {
		mfn = uint64(statusMFN + i)
	}
	if _, ok := f.byMFN[mfn]; ok {
		panic(fmt.Sprintf("frame %v %d asked for twice", kind, i))
	}
	p := make([]byte, PageSize)
	for j := range p {
		p[j] = 0xa5 // the table must clear it
	}
	if f.short {
		p = p[:100]
	}
	f.byMFN[mfn] = p
	return mfn, p, nil
}

func (f *fakeFrames) page(mfn uint64) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.byMFN[mfn]
}

// fakeVA is guest-virtual memory for frame lists: a window at listVA.
type fakeVA struct {
	mu   sync.Mutex
	buf  []byte
	fail bool
}

func (v *fakeVA) CopyToGuest(va uint64, b []byte) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.fail || va < listVA || va-listVA+uint64(len(b)) > uint64(len(v.buf)) {
		return guestmem.ErrFault
	}
	copy(v.buf[va-listVA:], b)
	return nil
}

func (v *fakeVA) u64(i int) uint64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return binary.LittleEndian.Uint64(v.buf[i*8:])
}

// fakeMapper is a HostMapper that records its calls.
type fakeMapper struct {
	mu       sync.Mutex
	created  map[uint64]uint64 // addr -> mfn
	replaced []uint64          // newAddr of each replace
	fail     Status
}

func (m *fakeMapper) CreateGrantMapping(addr, mfn uint64, flags uint32) Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != 0 {
		return m.fail
	}
	if m.created == nil {
		m.created = map[uint64]uint64{}
	}
	m.created[addr] = mfn
	return StatusOkay
}

func (m *fakeMapper) ReplaceGrantMapping(addr, mfn, newAddr uint64, flags uint32) Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.created[addr] != mfn {
		return StatusGeneralError
	}
	delete(m.created, addr)
	m.replaced = append(m.replaced, newAddr)
	return StatusOkay
}

// env is a table with a fake guest around it.
type env struct {
	t      *testing.T
	tab    *Table
	frames *fakeFrames
	mem    *guestmem.Space
	va     *fakeVA
	mapper *fakeMapper
	// notWritable frames refuse writable references.
	notWritable map[uint64]bool
	ramFirst    int
	ramPages    int
}

type envOpt func(*Config, *env)

func withMaxFrames(n int) envOpt      { return func(c *Config, _ *env) { c.MaxFrames = n } }
func withMaxVersion(n int) envOpt     { return func(c *Config, _ *env) { c.MaxVersion = n } }
func withMaptrackFrames(n int) envOpt { return func(c *Config, _ *env) { c.MaxMaptrackFrames = n } }
func withMapper() envOpt {
	return func(c *Config, e *env) { e.mapper = &fakeMapper{}; c.HostMapper = e.mapper }
}

// withRAM sets the guest's RAM: frames [first, first+pages).
func withRAM(first, pages int) envOpt {
	return func(_ *Config, e *env) { e.ramFirst, e.ramPages = first, pages }
}

func newEnv(t *testing.T, opts ...envOpt) *env {
	t.Helper()
	e := &env{t: t, frames: newFakeFrames(), va: &fakeVA{buf: make([]byte, 1<<16)}, notWritable: map[uint64]bool{}, ramPages: guestPages}
	cfg := Config{DomID: testDom, Frames: e.frames}
	cfg.Writable = func(gfn uint64) bool { return !e.notWritable[gfn] }
	for _, o := range opts {
		o(&cfg, e)
	}
	space, err := guestmem.NewSpace(guestmem.FromBytes(uint64(e.ramFirst)*PageSize, make([]byte, e.ramPages*PageSize)))
	if err != nil {
		t.Fatal(err)
	}
	e.mem = space
	cfg.Memory = space
	e.tab, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// hc issues a hypercall the way the dispatcher does: ArgBytes decides how
// much of args is passed.
func (e *env) hc(cmd, count uint64, args []byte) abi.Errno {
	e.t.Helper()
	n := ArgBytes(cmd, count)
	if n > uint64(len(args)) {
		n = uint64(len(args))
	}
	return e.tab.Hypercall(cmd, count, args[:n], e.va)
}

// setup grows the table to n frames with GNTTABOP_setup_table and
// returns the frame MFNs.
func (e *env) setup(n int) []uint64 {
	e.t.Helper()
	a := make([]byte, SetupTableSize)
	le.PutUint16(a[setupDom:], abi.DOMID_SELF)
	le.PutUint32(a[setupNrFrames:], uint32(n))
	le.PutUint64(a[setupFrameList:], listVA)
	if rc := e.hc(abi.GNTTABOP_setup_table, 1, a); rc != 0 {
		e.t.Fatalf("setup_table(%d): rc %v", n, rc)
	}
	if st := Status(int16(le.Uint16(a[setupStatus:]))); st != StatusOkay {
		e.t.Fatalf("setup_table(%d): status %v", n, st)
	}
	var mfns []uint64
	for i := 0; i < n; i++ {
		mfns = append(mfns, e.va.u64(i))
	}
	return mfns
}

// setVersion switches versions through the hypercall.
func (e *env) setVersion(v uint32) (abi.Errno, uint32) {
	a := make([]byte, SetVersionSize)
	le.PutUint32(a, v)
	rc := e.hc(abi.GNTTABOP_set_version, 1, a)
	return rc, le.Uint32(a)
}

// The fake guest's view of its grant table, through the frames it
// "mapped" by MFN.

func (e *env) sharedPage(ref uint32) ([]byte, uint64) {
	shared, _ := e.tab.FrameMFNs()
	per, size := uint32(EntriesPerFrameV1), uint64(EntrySizeV1)
	if e.tab.Version() == 2 {
		per, size = EntriesPerFrameV2, EntrySizeV2
	}
	if int(ref/per) >= len(shared) {
		e.t.Fatalf("ref %d beyond the table's %d frames", ref, len(shared))
	}
	return e.frames.page(shared[ref/per]), uint64(ref%per) * size
}

func (e *env) statusPage(ref uint32) ([]byte, uint64) {
	_, status := e.tab.FrameMFNs()
	return e.frames.page(status[ref/StatusPerFrame]), uint64(ref%StatusPerFrame) * 2
}

// grant writes an entry as Linux's gnttab_grant_foreign_access does:
// domid and frame first, then the flags.
func (e *env) grant(ref uint32, domid uint16, gfn uint64, flags uint16) {
	b, off := e.sharedPage(ref)
	if e.tab.Version() == 1 {
		guestmem.Store32(b, off+entV1Frame, uint32(gfn))
	} else {
		guestmem.Store64(b, off+entV2Frame, gfn)
	}
	guestmem.Store32(b, off, uint32(flags)|uint32(domid)<<16)
}

// grantSub writes a v2 sub-page grant.
func (e *env) grantSub(ref uint32, domid uint16, gfn uint64, off0, length uint16, flags uint16) {
	b, off := e.sharedPage(ref)
	guestmem.Store64(b, off+entV2Frame, gfn)
	guestmem.Store32(b, off+entV2PageOff, uint32(off0)|uint32(length)<<16)
	guestmem.Store32(b, off, uint32(flags|abi.GTF_permit_access|GTF_sub_page)|uint32(domid)<<16)
}

// grantTrans writes a v2 transitive grant.
func (e *env) grantTrans(ref uint32, domid, transDom uint16, transRef uint32) {
	b, off := e.sharedPage(ref)
	guestmem.Store32(b, off+entV2TransDo, uint32(transDom))
	guestmem.Store32(b, off+entV2TransRf, transRef)
	guestmem.Store32(b, off, uint32(abi.GTF_transitive)|uint32(domid)<<16)
}

// flags returns the entry's flags; in v2, or-ed with its status.
func (e *env) flags(ref uint32) uint16 {
	b, off := e.sharedPage(ref)
	w, _ := guestmem.Load32(b, off)
	f := uint16(w)
	if e.tab.Version() == 2 {
		sb, soff := e.statusPage(ref)
		s, _ := guestmem.Load32(sb, soff&^3)
		f |= uint16(s >> ((soff & 3) * 8))
	}
	return f
}

// busy is flags & (GTF_reading|GTF_writing).
func (e *env) busy(ref uint32) uint16 { return e.flags(ref) & (GTF_reading | GTF_writing) }

// endAccess is the guest's gnttab_end_foreign_access_ref: v1 clears the
// flags with cmpxchg unless the entry is in use; v2 clears hdr.flags and
// then reads the status. It reports whether the grant was ended.
func (e *env) endAccess(ref uint32) bool {
	b, off := e.sharedPage(ref)
	if e.tab.Version() == 1 {
		for {
			w, _ := guestmem.Load32(b, off)
			if uint16(w)&(GTF_reading|GTF_writing) != 0 {
				return false
			}
			if ok, _ := guestmem.CAS32(b, off, w, w&0xffff0000); ok {
				return true
			}
		}
	}
	for {
		w, _ := guestmem.Load32(b, off)
		if ok, _ := guestmem.CAS32(b, off, w, w&0xffff0000); ok {
			break
		}
	}
	sb, soff := e.statusPage(ref)
	s, _ := guestmem.Load32(sb, soff&^3)
	return uint16(s>>((soff&3)*8))&(GTF_reading|GTF_writing) == 0
}

// page returns guest frame gfn.
func (e *env) page(gfn uint64) []byte {
	p, err := e.mem.Page(gfn)
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

// fill writes a pattern derived from seed into guest frame gfn.
func (e *env) fill(gfn uint64, seed byte) {
	p := e.page(gfn)
	for i := range p {
		p[i] = seed + byte(i*7)
	}
}

// checkPins verifies the invariant between pins and status bits for
// every entry: GTF_reading iff pinned, GTF_writing iff pinned writable.
func checkPins(t testing.TB, tab *Table) {
	t.Helper()
	tab.mu.RLock()
	defer tab.mu.RUnlock()
	for ref := uint32(0); ref < tab.nrEntries(); ref++ {
		act := tab.act(ref)
		act.mu.Lock()
		pin := act.pin
		act.mu.Unlock()
		st := tab.status(ref)
		bits := uint8(load16(st)) & (GTF_reading | GTF_writing)
		want := uint8(0)
		if pin != 0 {
			want |= GTF_reading
		}
		if pin&(pinHstwMask|pinDevwMask) != 0 {
			want |= GTF_writing
		}
		if bits != want {
			t.Fatalf("ref %d: pin %#08x but status bits %#x, want %#x", ref, pin, bits, want)
		}
	}
}

// statusOf extracts a Status from an error for comparisons.
func wantStatus(t *testing.T, what string, err error, want Status) {
	t.Helper()
	if got := StatusOf(err); got != want {
		t.Fatalf("%s: got %v (%v), want %v", what, got, err, want)
	}
	if want != StatusOkay && !errors.Is(err, want) {
		t.Fatalf("%s: errors.Is(%v, %v) is false", what, err, want)
	}
}
