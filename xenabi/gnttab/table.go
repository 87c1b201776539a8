package gnttab

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/xenvmm/xenvmm/xenabi/abi"
)

// FrameKind says which of the table's frames Frames.Frame is asked for.
type FrameKind int

const (
	// SharedFrame is a frame of grant entries (struct grant_entry_v1 or
	// union grant_entry_v2), returned by GNTTABOP_setup_table.
	SharedFrame FrameKind = iota
	// StatusFrame is a v2 status frame (grant_status_t), returned by
	// GNTTABOP_get_status_frames.
	StatusFrame
)

func (k FrameKind) String() string {
	if k == StatusFrame {
		return "status"
	}
	return "shared"
}

// Frames supplies the pages that make up the grant table, the way Xen
// takes them from its xenheap (alloc_xenheap_page +
// share_xen_page_with_guest in gnttab_grow_table and
// gnttab_populate_status_frames).
//
// Frame returns frame i of the given kind: its machine frame number (the
// number the guest maps it by with mmu_update, and that setup_table and
// get_status_frames report) and its 4096-byte page. The table calls Frame
// once per (kind, i), in increasing i, the first time it grows to that
// frame, and keeps the page for its lifetime; it zeroes the page itself.
// An error fails the growth (GNTST_general_error, or -ENOMEM for
// set_version), as an allocation failure does in Xen.
type Frames interface {
	Frame(kind FrameKind, i int) (mfn uint64, page []byte, err error)
}

// GuestMemory gives the table the guest's own frames. Page returns the
// 4096-byte page of guest frame gfn (with xenvmm's identity P2M, gfn is
// also the MFN), aliasing guest memory, or an error for a frame the guest
// does not own (Xen's get_paged_frame failing: GNTST_bad_page).
// *guestmem.Space implements it.
type GuestMemory interface {
	Page(gfn uint64) ([]byte, error)
}

// HostMapper installs and removes the guest page-table entries of
// GNTTABOP_map_grant_ref with GNTMAP_host_map: the PV MMU's
// create_grant_pv_mapping and replace_grant_pv_mapping
// (xen/arch/x86/pv/grant_table.c). addr is a guest-virtual address, or with
// GNTMAP_contains_pte in flags the machine address of the L1 entry;
// newAddr is non-zero only for GNTTABOP_unmap_and_replace. They return a
// GNTST_* status. They are called with the grant entry locked and must not
// call back into the Table.
type HostMapper interface {
	CreateGrantMapping(addr, mfn uint64, flags uint32) Status
	ReplaceGrantMapping(addr, mfn, newAddr uint64, flags uint32) Status
}

// Config configures a Table.
type Config struct {
	// DomID is the guest's domain id (1..DOMID_FIRST_RESERVED-1). The
	// backends are domain 0.
	DomID uint16
	// MaxFrames is max_grant_frames; 0 means DefaultMaxFrames (64).
	MaxFrames int
	// MaxMaptrackFrames bounds the handles of the guest's own
	// GNTTABOP_map_grant_ref (256 per frame); 0 means
	// DefaultMaxMaptrackFrames.
	MaxMaptrackFrames int
	// MaxVersion is the highest grant-table version the guest may select
	// (Xen's max_grant_version); 0 means 2.
	MaxVersion int
	// Frames supplies the table's frames; required.
	Frames Frames
	// Memory gives the guest's frames; required.
	Memory GuestMemory
	// Writable, if set, says whether guest frame gfn may take a writable
	// reference: false for frames the PV MMU holds as page tables or
	// descriptor tables (Xen's get_page_type(PGT_writable_page) failing).
	// Writable maps and copies into such a frame fail with
	// GNTST_general_error. Nil allows every frame.
	Writable func(gfn uint64) bool
	// HostMapper, if set, installs GNTMAP_host_map mappings for the
	// guest's own map_grant_ref; with none, those fail with
	// GNTST_general_error.
	HostMapper HostMapper
}

// frame is one page of the table with its machine frame number.
type frame struct {
	mfn  uint64
	page []byte
}

// Table is the grant table of one guest domain: the shared entry frames
// (and v2 status frames) that the guest writes, Xen's per-entry active
// state (struct active_grant_entry) that pins entries while they are
// mapped or copied, and the guest's own maptrack handles.
//
// It is safe for concurrent use: the guest's hypercalls (from any vCPU)
// and the backends' maps and copies (from any goroutine) may run at once.
type Table struct {
	domid      uint16
	maxFrames  int
	maxVersion int
	frames     Frames
	mem        GuestMemory
	writable   func(gfn uint64) bool
	hostMapper HostMapper

	// mu is Xen's per-table rwlock (gt->lock): taken for writing to grow
	// the table, change its version or swap entries; for reading by every
	// operation that looks up entries. Pin counts change only with mu held
	// for reading and the entry's own lock held.
	mu sync.RWMutex
	// version is gt_version: 1 or 2.
	version int
	// nrShared is nr_grant_frames; allShared holds every shared frame ever
	// allocated (a prefix of nrShared of them is in use).
	nrShared  int
	allShared []frame
	// nrStatus is nr_status_frames (0 in v1); allStatus as allShared.
	nrStatus  int
	allStatus []frame
	// active holds one chunk of EntriesPerFrameV1 active entries per
	// shared frame allocated, enough for either version.
	active []*[EntriesPerFrameV1]active
	// nrV2Ops counts pinned sub-page grants (gt->nr_v2_ops), which block
	// a switch back to v1.
	nrV2Ops atomic.Int32

	mt maptrack
}

// New creates the grant table of a guest: version 1, with InitialFrames
// frames (grant_table_init).
func New(cfg Config) (*Table, error) {
	if cfg.Frames == nil || cfg.Memory == nil {
		return nil, errors.New("gnttab: Config needs Frames and Memory")
	}
	if cfg.DomID == 0 || cfg.DomID >= abi.DOMID_FIRST_RESERVED {
		return nil, fmt.Errorf("gnttab: guest domid %d: want 1..%d", cfg.DomID, abi.DOMID_FIRST_RESERVED-1)
	}
	t := &Table{
		domid:      cfg.DomID,
		maxFrames:  cfg.MaxFrames,
		maxVersion: cfg.MaxVersion,
		frames:     cfg.Frames,
		mem:        cfg.Memory,
		writable:   cfg.Writable,
		hostMapper: cfg.HostMapper,
		version:    1,
	}
	if t.maxFrames == 0 {
		t.maxFrames = DefaultMaxFrames
	}
	if t.maxVersion == 0 {
		t.maxVersion = 2
	}
	// grant_table_init: max_grant_frames < INITIAL_NR_GRANT_FRAMES is
	// -EINVAL. The upper bound keeps grant references within uint32.
	if t.maxFrames < InitialFrames || t.maxFrames > 1<<20 {
		return nil, fmt.Errorf("gnttab: max frames %d: want %d..%d", t.maxFrames, InitialFrames, 1<<20)
	}
	if t.maxVersion != 1 && t.maxVersion != 2 {
		return nil, fmt.Errorf("gnttab: max version %d: want 1 or 2", t.maxVersion)
	}
	mtFrames := cfg.MaxMaptrackFrames
	if mtFrames == 0 {
		mtFrames = DefaultMaxMaptrackFrames
	}
	if mtFrames < 0 || mtFrames > 1<<16 {
		return nil, fmt.Errorf("gnttab: max maptrack frames %d: want 1..%d", mtFrames, 1<<16)
	}
	t.mt.limit = mtFrames * maptrackPerFrame
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.grow(0); err != nil {
		return nil, err
	}
	return t, nil
}

// DomID is the guest's domain id.
func (t *Table) DomID() uint16 { return t.domid }

// MaxFrames is max_grant_frames.
func (t *Table) MaxFrames() int { return t.maxFrames }

// Version is the grant-table version in effect (1 or 2).
func (t *Table) Version() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.version
}

// NrFrames is the number of shared frames in use (nr_grant_frames).
func (t *Table) NrFrames() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.nrShared
}

// NrEntries is the number of grant references currently valid
// (nr_grant_entries).
func (t *Table) NrEntries() uint32 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.nrEntries()
}

// FrameMFNs returns the machine frame numbers of the shared frames and
// of the v2 status frames in use: the VMM-owned frames that the guest may
// map (writable) with mmu_update, as Xen shares them with the guest.
func (t *Table) FrameMFNs() (shared, status []uint64) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	for _, f := range t.allShared[:t.nrShared] {
		shared = append(shared, f.mfn)
	}
	for _, f := range t.allStatus[:t.nrStatus] {
		status = append(status, f.mfn)
	}
	return shared, status
}

// Seed writes a GTF_permit_access v1 entry for domain backend to access
// guest frame gfn, as the toolstack seeds GNTTAB_RESERVED_CONSOLE and
// GNTTAB_RESERVED_XENSTORE before the guest starts (xc_dom_gnttab_seed,
// gnttab_seed_entry). ref must be below GNTTAB_NR_RESERVED_ENTRIES and the
// table at version 1.
func (t *Table) Seed(ref uint32, backend uint16, gfn uint32) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.version != 1 || ref >= GNTTAB_NR_RESERVED_ENTRIES {
		return fmt.Errorf("gnttab: seed ref %d in a v%d table: want a reserved entry of a v1 table", ref, t.version)
	}
	b, off := t.entry(ref)
	store32(b, off+entV1Frame, gfn)
	store32(b, off, uint32(abi.GTF_permit_access)|uint32(backend)<<16)
	return nil
}

// nrEntries is nr_grant_entries; mu held.
func (t *Table) nrEntries() uint32 {
	if t.version == 2 {
		return uint32(t.nrShared * EntriesPerFrameV2)
	}
	return uint32(t.nrShared * EntriesPerFrameV1)
}

// entry returns the frame and byte offset of shared entry ref (its
// grant_entry_header_t); ref < nrEntries, mu held.
func (t *Table) entry(ref uint32) ([]byte, uint64) {
	if t.version == 2 {
		return t.allShared[ref/EntriesPerFrameV2].page, uint64(ref%EntriesPerFrameV2) * EntrySizeV2
	}
	return t.allShared[ref/EntriesPerFrameV1].page, uint64(ref%EntriesPerFrameV1) * EntrySizeV1
}

// statusWord locates the 16-bit word holding GTF_reading/GTF_writing for
// ref: the entry's flags in v1, its grant_status_t in v2. ok is false in
// v2 for a ref beyond the table (after a version change shrank it); mu
// held.
type statusWord struct {
	b   []byte
	off uint64
	ok  bool
}

func (t *Table) status(ref uint32) statusWord {
	if ref >= t.nrEntries() {
		return statusWord{}
	}
	if t.version == 1 {
		b, off := t.entry(ref)
		return statusWord{b, off + entV1Flags, true}
	}
	return statusWord{t.allStatus[ref/StatusPerFrame].page, uint64(ref%StatusPerFrame) * 2, true}
}

// clear atomically clears mask (GTF_reading|GTF_writing, which live in the
// low byte) in the status word: gnttab_clear_flags.
func (s statusWord) clear(mask uint8) {
	if s.ok && mask != 0 {
		and8(s.b, s.off, ^mask)
	}
}

// set atomically sets mask in the status word (v2's *status |= ...).
func (s statusWord) set(mask uint8) {
	if s.ok {
		or8(s.b, s.off, mask)
	}
}

// act returns the active entry of ref; ref < nrEntries, mu held.
func (t *Table) act(ref uint32) *active {
	return &t.active[ref/EntriesPerFrameV1][ref%EntriesPerFrameV1]
}

// statusFramesFor is grant_to_status_frames.
func statusFramesFor(grantFrames int) int {
	return (grantFrames*EntriesPerFrameV2 + StatusPerFrame - 1) / StatusPerFrame
}

// grow is gnttab_grow_table: the table gets n frames (at least
// InitialFrames), with status frames in v2. mu held for writing; n is
// within maxFrames.
func (t *Table) grow(n int) error {
	if n < InitialFrames {
		n = InitialFrames
	}
	for len(t.active) < n {
		t.active = append(t.active, new([EntriesPerFrameV1]active))
	}
	for i := t.nrShared; i < n; i++ {
		if err := t.alloc(SharedFrame, &t.allShared, i); err != nil {
			return err
		}
	}
	if t.version == 2 {
		if err := t.populateStatus(n); err != nil {
			return err
		}
	}
	for _, f := range t.allShared[t.nrShared:n] {
		clear(f.page)
	}
	t.nrShared = n
	return nil
}

// populateStatus is gnttab_populate_status_frames for n grant frames.
func (t *Table) populateStatus(n int) error {
	want := statusFramesFor(n)
	for i := t.nrStatus; i < want; i++ {
		if err := t.alloc(StatusFrame, &t.allStatus, i); err != nil {
			return err
		}
	}
	for _, f := range t.allStatus[t.nrStatus:want] {
		clear(f.page)
	}
	t.nrStatus = want
	return nil
}

// alloc makes sure (*all)[i] exists, asking Frames for it.
func (t *Table) alloc(kind FrameKind, all *[]frame, i int) error {
	if i < len(*all) {
		return nil
	}
	mfn, page, err := t.frames.Frame(kind, i)
	if err != nil {
		return fmt.Errorf("gnttab: %s frame %d: %w", kind, i, err)
	}
	if len(page) != PageSize {
		return fmt.Errorf("gnttab: %s frame %d is %d bytes, want %d", kind, i, len(page), PageSize)
	}
	*all = append(*all, frame{mfn, page[:PageSize:PageSize]})
	return nil
}

// guestPage returns the page of guest frame gfn: get_paged_frame.
func (t *Table) guestPage(gfn uint64) ([]byte, Status) {
	p, err := t.mem.Page(gfn)
	if err != nil || len(p) < PageSize {
		return nil, StatusBadPage
	}
	return p[:PageSize:PageSize], StatusOkay
}

// canWrite is get_page_type(page, PGT_writable_page).
func (t *Table) canWrite(gfn uint64) bool {
	return t.writable == nil || t.writable(gfn)
}
