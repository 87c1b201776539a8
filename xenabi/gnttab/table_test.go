package gnttab

import (
	"bytes"
	"errors"
	"testing"

	"github.com/xenvmm/xenvmm/xenabi/abi"
	"github.com/xenvmm/xenvmm/xenabi/guestmem"
)

func TestNewConfig(t *testing.T) {
	mem, _ := guestmem.NewSpace(guestmem.FromBytes(0, make([]byte, PageSize)))
	ok := Config{DomID: 1, Frames: newFakeFrames(), Memory: mem}
	tests := []struct {
		name string
		mod  func(*Config)
		ok   bool
	}{
		{"defaults", func(*Config) {}, true},
		{"no frames", func(c *Config) { c.Frames = nil }, false},
		{"no memory", func(c *Config) { c.Memory = nil }, false},
		{"domid 0", func(c *Config) { c.DomID = 0 }, false},
		{"domid self", func(c *Config) { c.DomID = abi.DOMID_SELF }, false},
		{"max frames 1", func(c *Config) { c.MaxFrames = 1 }, true},
		{"max frames negative", func(c *Config) { c.MaxFrames = -1 }, false},
		{"max version 1", func(c *Config) { c.MaxVersion = 1 }, true},
		{"max version 3", func(c *Config) { c.MaxVersion = 3 }, false},
		{"maptrack negative", func(c *Config) { c.MaxMaptrackFrames = -2 }, false},
		{"frame allocation fails", func(c *Config) {
			f := newFakeFrames()
			f.failAt[SharedFrame] = 0
			c.Frames = f
		}, false},
		{"short frame", func(c *Config) {
			f := newFakeFrames()
			f.short = true
			c.Frames = f
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			c.Frames = newFakeFrames()
			tt.mod(&c)
			tab, err := New(c)
			if (err == nil) != tt.ok {
				t.Fatalf("New: err %v, want ok=%v", err, tt.ok)
			}
			if err != nil {
				return
			}
			if tab.Version() != 1 || tab.NrFrames() != InitialFrames || tab.NrEntries() != EntriesPerFrameV1 {
				t.Errorf("new table: v%d, %d frames, %d entries", tab.Version(), tab.NrFrames(), tab.NrEntries())
			}
			if c.MaxFrames == 0 && tab.MaxFrames() != DefaultMaxFrames {
				t.Errorf("MaxFrames %d, want %d", tab.MaxFrames(), DefaultMaxFrames)
			}
		})
	}
}

func TestNewClearsFrames(t *testing.T) {
	e := newEnv(t)
	shared, status := e.tab.FrameMFNs()
	if len(shared) != 1 || shared[0] != tableMFNBase || len(status) != 0 {
		t.Fatalf("FrameMFNs = %#x, %#x", shared, status)
	}
	if !bytes.Equal(e.frames.page(shared[0]), make([]byte, PageSize)) {
		t.Fatal("the first frame was not cleared")
	}
}

func querySize(e *env, dom uint16, fill uint32) (abi.Errno, uint32, uint32, Status) {
	a := make([]byte, QuerySizeSize)
	le.PutUint16(a[querySizeDom:], dom)
	le.PutUint32(a[querySizeNr:], fill)
	le.PutUint32(a[querySizeMax:], fill)
	rc := e.hc(abi.GNTTABOP_query_size, 1, a)
	return rc, le.Uint32(a[querySizeNr:]), le.Uint32(a[querySizeMax:]), Status(int16(le.Uint16(a[querySizeStatus:])))
}

func TestQuerySize(t *testing.T) {
	e := newEnv(t, withMaxFrames(32))
	tests := []struct {
		dom      uint16
		status   Status
		nr, max_ uint32
	}{
		{abi.DOMID_SELF, StatusOkay, 1, 32},
		{testDom, StatusOkay, 1, 32},
		{0, StatusPermissionDenied, 0xdead, 0xdead}, // untouched
		{3, StatusBadDomain, 0xdead, 0xdead},
		{abi.DOMID_IO, StatusBadDomain, 0xdead, 0xdead},
	}
	for _, tt := range tests {
		rc, nr, max, st := querySize(e, tt.dom, 0xdead)
		if rc != 0 || st != tt.status || nr != tt.nr || max != tt.max_ {
			t.Errorf("query_size(dom %#x) = rc %v status %v nr %d max %d, want status %v nr %d max %d", tt.dom, rc, st, nr, max, tt.status, tt.nr, tt.max_)
		}
	}
	e.setup(5)
	if _, nr, _, _ := querySize(e, abi.DOMID_SELF, 0); nr != 5 {
		t.Errorf("after setup_table(5) nr_frames = %d", nr)
	}
	// count must be 1; a short argument is a fault.
	a := make([]byte, QuerySizeSize)
	if rc := e.tab.Hypercall(abi.GNTTABOP_query_size, 2, a, nil); rc != abi.EINVAL {
		t.Errorf("count 2: rc %v, want EINVAL", rc)
	}
	if rc := e.tab.Hypercall(abi.GNTTABOP_query_size, 1, a[:10], nil); rc != abi.EFAULT {
		t.Errorf("short args: rc %v, want EFAULT", rc)
	}
}

func TestSetupTable(t *testing.T) {
	tests := []struct {
		name     string
		dom      uint16
		nr       uint32
		list     uint64
		failVA   bool
		failAt   int // shared frames beyond this fail to allocate; 0: none
		rc       abi.Errno
		status   Status
		nrFrames int // table size afterwards
	}{
		{"zero frames", abi.DOMID_SELF, 0, listVA, false, 0, 0, StatusOkay, 1},
		{"one frame", abi.DOMID_SELF, 1, listVA, false, 0, 0, StatusOkay, 1},
		{"grow to 4", testDom, 4, listVA, false, 0, 0, StatusOkay, 4},
		{"grow to max", abi.DOMID_SELF, 16, listVA, false, 0, 0, StatusOkay, 16},
		{"beyond max", abi.DOMID_SELF, 17, listVA, false, 0, 0, StatusGeneralError, 1},
		{"huge", abi.DOMID_SELF, 0xffffffff, 0, false, 0, 0, StatusGeneralError, 1},
		{"dom0", 0, 1, listVA, false, 0, 0, StatusPermissionDenied, 1},
		{"other domain", 9, 1, listVA, false, 0, 0, StatusBadDomain, 1},
		{"frame list in the hypervisor hole", abi.DOMID_SELF, 1, 0xffff800000000000, false, 0, abi.EFAULT, 0, 1},
		{"frame list wraps", abi.DOMID_SELF, 4, 0xfffffffffffffff8, false, 0, abi.EFAULT, 0, 1},
		{"frame list unwritable", abi.DOMID_SELF, 2, listVA, true, 0, 0, StatusBadVirtAddr, 2},
		{"allocation fails", abi.DOMID_SELF, 4, listVA, false, 3, 0, StatusGeneralError, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, withMaxFrames(16))
			if tt.failAt != 0 {
				e.frames.failAt[SharedFrame] = tt.failAt
			}
			e.va.fail = tt.failVA
			a := make([]byte, SetupTableSize)
			le.PutUint16(a[setupDom:], tt.dom)
			le.PutUint32(a[setupNrFrames:], tt.nr)
			le.PutUint64(a[setupFrameList:], tt.list)
			le.PutUint16(a[setupStatus:], 0x5555)
			rc := e.hc(abi.GNTTABOP_setup_table, 1, a)
			if rc != tt.rc {
				t.Fatalf("rc %v, want %v", rc, tt.rc)
			}
			st := Status(int16(le.Uint16(a[setupStatus:])))
			if rc == 0 && st != tt.status {
				t.Fatalf("status %v, want %v", st, tt.status)
			}
			if rc != 0 && st != 0x5555 {
				t.Fatalf("status written (%v) on a failed hypercall", st)
			}
			if got := e.tab.NrFrames(); got != tt.nrFrames {
				t.Fatalf("table has %d frames, want %d", got, tt.nrFrames)
			}
			if st != StatusOkay {
				return
			}
			shared, _ := e.tab.FrameMFNs()
			for i := 0; i < int(tt.nr); i++ {
				if got := e.va.u64(i); got != shared[i] || got != uint64(tableMFNBase+i) {
					t.Errorf("frame_list[%d] = %#x, want %#x", i, got, shared[i])
				}
				if !bytes.Equal(e.frames.page(shared[i]), make([]byte, PageSize)) {
					t.Errorf("frame %d not cleared", i)
				}
			}
			if e.va.u64(int(tt.nr)) != 0 {
				t.Errorf("frame_list written beyond nr_frames")
			}
		})
	}
}

func TestSetupTableShrinkKeepsFrames(t *testing.T) {
	e := newEnv(t)
	mfns := e.setup(6)
	e.grant(6*EntriesPerFrameV1-1, 0, 5, abi.GTF_permit_access)
	if again := e.setup(2); again[0] != mfns[0] || again[1] != mfns[1] {
		t.Fatalf("setup_table(2) after 6 = %#x, want %#x", again, mfns[:2])
	}
	if e.tab.NrFrames() != 6 {
		t.Fatalf("table shrank to %d frames", e.tab.NrFrames())
	}
	if e.flags(6*EntriesPerFrameV1-1) != abi.GTF_permit_access {
		t.Fatal("entry in frame 5 lost")
	}
	if e.frames.calls != 6 {
		t.Fatalf("%d frame allocations, want 6", e.frames.calls)
	}
}

func TestSetupTableAfterFailedGrowth(t *testing.T) {
	e := newEnv(t)
	e.frames.failAt[SharedFrame] = 3
	a := make([]byte, SetupTableSize)
	le.PutUint16(a[setupDom:], abi.DOMID_SELF)
	le.PutUint32(a[setupNrFrames:], 5)
	le.PutUint64(a[setupFrameList:], listVA)
	if e.hc(abi.GNTTABOP_setup_table, 1, a); Status(int16(le.Uint16(a[setupStatus:]))) != StatusGeneralError {
		t.Fatal("growth past the allocator's limit succeeded")
	}
	delete(e.frames.failAt, SharedFrame)
	// The frames allocated before the failure are reused, not asked for
	// again (fakeFrames panics on a second request).
	if mfns := e.setup(5); len(mfns) != 5 || mfns[4] != tableMFNBase+4 {
		t.Fatalf("frames %#x", mfns)
	}
}

func getVersion(e *env, dom uint16) (abi.Errno, uint32) {
	a := make([]byte, GetVersionSize)
	le.PutUint16(a[gvDom:], dom)
	le.PutUint32(a[gvVersion:], 0xdead)
	rc := e.hc(abi.GNTTABOP_get_version, 1, a)
	return rc, le.Uint32(a[gvVersion:])
}

func statusFrames(e *env, dom uint16, nr uint32, list uint64) (abi.Errno, Status) {
	a := make([]byte, StatusFramesSize)
	le.PutUint32(a[sfNrFrames:], nr)
	le.PutUint16(a[sfDom:], dom)
	le.PutUint64(a[sfFrameList:], list)
	rc := e.hc(abi.GNTTABOP_get_status_frames, 1, a)
	return rc, Status(int16(le.Uint16(a[sfStatus:])))
}

func TestGetVersion(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		dom uint16
		rc  abi.Errno
		v   uint32
	}{
		{abi.DOMID_SELF, 0, 1},
		{testDom, 0, 1},
		{0, abi.EPERM, 0xdead},
		{1, abi.ESRCH, 0xdead},
	}
	for _, tt := range tests {
		if rc, v := getVersion(e, tt.dom); rc != tt.rc || v != tt.v {
			t.Errorf("get_version(%#x) = %v, %d; want %v, %d", tt.dom, rc, v, tt.rc, tt.v)
		}
	}
	if rc, v := e.setVersion(2); rc != 0 || v != 2 {
		t.Fatalf("set_version(2) = %v, %d", rc, v)
	}
	if rc, v := getVersion(e, abi.DOMID_SELF); rc != 0 || v != 2 {
		t.Errorf("get_version after set 2 = %v, %d", rc, v)
	}
}

func TestSetVersion(t *testing.T) {
	tests := []struct {
		name       string
		maxVersion int
		prep       func(e *env)
		v          uint32
		rc         abi.Errno
		after      uint32
	}{
		{"same version", 0, nil, 1, 0, 1},
		{"to 2", 0, nil, 2, 0, 2},
		{"version 0", 0, nil, 0, abi.EINVAL, 1},
		{"version 3", 0, nil, 3, abi.EINVAL, 1},
		{"v2 not allowed", 1, nil, 2, abi.ENOSYS, 1},
		{"v2 not allowed, v1 asked", 1, nil, 1, 0, 1},
		{"in use", 0, func(e *env) {
			e.grant(10, 0, 5, abi.GTF_permit_access)
			if _, err := e.tab.MapGrant(testDom, 10, true); err != nil {
				e.t.Fatal(err)
			}
		}, 2, abi.EBUSY, 1},
		{"in use in a late frame", 0, func(e *env) {
			e.setup(3)
			e.grant(1500, 0, 5, abi.GTF_permit_access)
			if _, err := e.tab.MapGrant(testDom, 1500, false); err != nil {
				e.t.Fatal(err)
			}
		}, 2, abi.EBUSY, 1},
		{"reserved entry in use", 0, func(e *env) {
			e.grant(GNTTAB_RESERVED_XENSTORE, 0, 5, abi.GTF_permit_access)
			if _, err := e.tab.MapGrant(testDom, GNTTAB_RESERVED_XENSTORE, false); err != nil {
				e.t.Fatal(err)
			}
		}, 2, 0, 2},
		{"status frames unavailable", 0, func(e *env) { e.frames.failAt[StatusFrame] = 0 }, 2, abi.ENOMEM, 1},
		{"back to 1", 0, func(e *env) { e.setVersion(2) }, 1, 0, 1},
		{"back to 1, reserved frame beyond 32 bits", 0, func(e *env) {
			e.setVersion(2)
			e.grant(3, 0, 1<<32, abi.GTF_permit_access)
		}, 1, abi.ERANGE, 2},
		{"back to 1, reserved transitive", 0, func(e *env) {
			e.setVersion(2)
			e.grantTrans(4, 0, 0, 1)
		}, 1, abi.ERANGE, 2},
		{"back to 1, late frame beyond 32 bits", 0, func(e *env) {
			e.setVersion(2)
			e.grant(8, 0, 1<<32, abi.GTF_permit_access)
		}, 1, 0, 1},
		{"back to 1, sub-page copy in progress", 0, func(e *env) {
			e.setVersion(2)
			e.grantSub(2, 0, 5, 0, 100, 0)
			if _, s, why := e.tab.acquireForCopy(0, 2, true); s != StatusOkay {
				e.t.Fatal(s, why)
			}
		}, 1, abi.EAGAIN, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, withMaxVersion(tt.maxVersion))
			if tt.prep != nil {
				tt.prep(e)
			}
			rc, v := e.setVersion(tt.v)
			if rc != tt.rc || v != tt.after {
				t.Fatalf("set_version(%d) = %v, version %d; want %v, %d", tt.v, rc, v, tt.rc, tt.after)
			}
			if got := e.tab.Version(); uint32(got) != tt.after {
				t.Fatalf("Version() = %d", got)
			}
		})
	}
}

func TestSetVersionPreservesReserved(t *testing.T) {
	e := newEnv(t)
	e.setup(2)
	for ref := uint32(0); ref < 12; ref++ {
		e.grant(ref, 0, uint64(100+ref), abi.GTF_permit_access|GTF_readonly)
	}
	e.grant(600, 0, 99, abi.GTF_permit_access)
	m, err := e.tab.MapGrant(testDom, GNTTAB_RESERVED_CONSOLE, true)
	if err != nil {
		t.Fatal(err)
	}
	check := func(v int) {
		t.Helper()
		if e.tab.Version() != v {
			t.Fatalf("version %d, want %d", e.tab.Version(), v)
		}
		for ref := uint32(0); ref < 12; ref++ {
			b, off := e.sharedPage(ref)
			w, _ := guestmem.Load32(b, off)
			var frame uint64
			if v == 1 {
				f, _ := guestmem.Load32(b, off+entV1Frame)
				frame = uint64(f)
			} else {
				frame, _ = guestmem.Load64(b, off+entV2Frame)
			}
			flags := uint16(w) &^ (GTF_reading | GTF_writing)
			if ref < GNTTAB_NR_RESERVED_ENTRIES {
				if flags != abi.GTF_permit_access|GTF_readonly || uint16(w>>16) != 0 || frame != uint64(100+ref) {
					t.Errorf("v%d ref %d: flags %#x dom %d frame %d", v, ref, flags, w>>16, frame)
				}
			} else if w != 0 || frame != 0 {
				t.Errorf("v%d ref %d not cleared: %#x frame %d", v, ref, w, frame)
			}
		}
		if got := e.busy(GNTTAB_RESERVED_CONSOLE); got != GTF_reading {
			t.Errorf("v%d: mapped console entry busy bits %#x, want GTF_reading", v, got)
		}
		checkPins(t, e.tab)
	}
	if rc, _ := e.setVersion(2); rc != 0 {
		t.Fatal(rc)
	}
	if _, status := e.tab.FrameMFNs(); len(status) != 1 {
		t.Fatalf("%d status frames for 2 grant frames, want 1", len(status))
	}
	// In v2 the status bits live in the status frame, not in hdr.flags.
	b, off := e.sharedPage(GNTTAB_RESERVED_CONSOLE)
	if w, _ := guestmem.Load32(b, off); uint16(w)&GTF_reading != 0 {
		t.Error("v2 hdr.flags carries GTF_reading")
	}
	check(2)
	if rc, _ := e.setVersion(1); rc != 0 {
		t.Fatal(rc)
	}
	check(1)
	if _, status := e.tab.FrameMFNs(); len(status) != 0 {
		t.Fatalf("v1 table reports %d status frames", len(status))
	}
	if err := m.Unmap(); err != nil {
		t.Fatal(err)
	}
	if e.busy(GNTTAB_RESERVED_CONSOLE) != 0 {
		t.Error("busy after unmap")
	}
	// Back to v2: the status frame is reused, cleared.
	if rc, _ := e.setVersion(2); rc != 0 {
		t.Fatal(rc)
	}
	if e.frames.calls != 3 {
		t.Errorf("%d frame allocations, want 3 (2 shared, 1 status)", e.frames.calls)
	}
	checkPins(t, e.tab)
}

func TestGetStatusFrames(t *testing.T) {
	e := newEnv(t)
	if rc, st := statusFrames(e, abi.DOMID_SELF, 0, listVA); rc != 0 || st != StatusOkay {
		t.Fatalf("v1, 0 frames: %v %v", rc, st)
	}
	if rc, st := statusFrames(e, abi.DOMID_SELF, 1, listVA); rc != 0 || st != StatusGeneralError {
		t.Fatalf("v1, 1 frame: %v %v", rc, st)
	}
	e.setVersion(2)
	e.setup(17) // 17*256 entries need 3 status frames
	tests := []struct {
		dom    uint16
		nr     uint32
		list   uint64
		fail   bool
		rc     abi.Errno
		status Status
	}{
		{abi.DOMID_SELF, 3, listVA, false, 0, StatusOkay},
		{testDom, 1, listVA, false, 0, StatusOkay},
		{abi.DOMID_SELF, 4, listVA, false, 0, StatusGeneralError},
		{0, 1, listVA, false, 0, StatusPermissionDenied},
		{2, 1, listVA, false, 0, StatusBadDomain},
		{abi.DOMID_SELF, 1, 0xffff800000001000, false, abi.EFAULT, 0},
		{abi.DOMID_SELF, 2, listVA, true, 0, StatusBadVirtAddr},
	}
	for _, tt := range tests {
		e.va.fail = tt.fail
		rc, st := statusFrames(e, tt.dom, tt.nr, tt.list)
		if rc != tt.rc || (rc == 0 && st != tt.status) {
			t.Errorf("get_status_frames(dom %#x, %d) = %v %v, want %v %v", tt.dom, tt.nr, rc, st, tt.rc, tt.status)
		}
	}
	e.va.fail = false
	statusFrames(e, abi.DOMID_SELF, 3, listVA)
	for i := 0; i < 3; i++ {
		if got := e.va.u64(i); got != uint64(statusMFN+i) {
			t.Errorf("status frame %d = %#x", i, got)
		}
	}
	a := make([]byte, StatusFramesSize)
	if rc := e.tab.Hypercall(abi.GNTTABOP_get_status_frames, 0, a, e.va); rc != abi.EINVAL {
		t.Errorf("count 0: %v", rc)
	}
}

func TestSeed(t *testing.T) {
	e := newEnv(t)
	if err := e.tab.Seed(GNTTAB_RESERVED_XENSTORE, 0, 77); err != nil {
		t.Fatal(err)
	}
	e.fill(77, 3)
	m, err := e.tab.MapGrant(testDom, GNTTAB_RESERVED_XENSTORE, false)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m.Bytes(), e.page(77)) {
		t.Fatal("seeded grant maps the wrong page")
	}
	m.Unmap()
	if err := e.tab.Seed(8, 0, 1); err == nil {
		t.Error("seeding a non-reserved entry succeeded")
	}
	e.setVersion(2)
	if err := e.tab.Seed(0, 0, 1); err == nil {
		t.Error("seeding a v2 table succeeded")
	}
}

func TestSwapGrantRef(t *testing.T) {
	for _, v := range []uint32{1, 2} {
		e := newEnv(t)
		e.setVersion(v)
		e.grant(20, 0, 5, abi.GTF_permit_access)
		e.grant(21, 0, 6, abi.GTF_permit_access|GTF_readonly)
		e.grant(22, 0, 7, abi.GTF_permit_access)
		m, err := e.tab.MapGrant(testDom, 22, true)
		if err != nil {
			t.Fatal(err)
		}
		swap := func(a, b uint32) Status {
			args := make([]byte, SwapGrantRefSize)
			le.PutUint32(args[swapRefA:], a)
			le.PutUint32(args[swapRefB:], b)
			if rc := e.hc(abi.GNTTABOP_swap_grant_ref, 1, args); rc != 0 {
				t.Fatal(rc)
			}
			return Status(int16(le.Uint16(args[swapStatus:])))
		}
		n := e.tab.NrEntries()
		tests := []struct {
			a, b uint32
			want Status
		}{
			{20, 21, StatusOkay},
			{20, 20, StatusOkay},
			{20, n, StatusBadGntref},
			{n, 20, StatusBadGntref},
			{20, 22, StatusEagain},
			{22, 21, StatusEagain},
		}
		for _, tt := range tests {
			if got := swap(tt.a, tt.b); got != tt.want {
				t.Errorf("v%d swap(%d, %d) = %v, want %v", v, tt.a, tt.b, got, tt.want)
			}
		}
		if e.flags(20) != abi.GTF_permit_access|GTF_readonly || e.flags(21) != abi.GTF_permit_access {
			t.Errorf("v%d: entries not swapped: %#x %#x", v, e.flags(20), e.flags(21))
		}
		m2, err := e.tab.MapGrant(testDom, 21, false)
		if err != nil || m2.GFN() != 5 {
			t.Fatalf("v%d: map of swapped entry: %v", v, err)
		}
		m2.Unmap()
		m.Unmap()
	}
}

func TestHypercallDecoding(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name       string
		cmd, count uint64
		args       int
		rc         abi.Errno
	}{
		{"transfer", abi.GNTTABOP_transfer, 1, TransferSize, abi.EOPNOTSUPP},
		{"transfer short", abi.GNTTABOP_transfer, 2, TransferSize, abi.EFAULT},
		{"dump_table", abi.GNTTABOP_dump_table, 1, DumpTableSize, abi.ENOSYS},
		{"cache_flush", abi.GNTTABOP_cache_flush, 1, CacheFlushSize, abi.ENOSYS},
		{"cache_flush with opaque bits", abi.GNTTABOP_cache_flush | 5<<12, 1, CacheFlushSize, abi.ENOSYS},
		{"unknown", 13, 1, 64, abi.ENOSYS},
		{"opaque bits", abi.GNTTABOP_copy | 1<<12, 1, CopySize, abi.EINVAL},
		{"negative count", abi.GNTTABOP_copy, 0x80000000, 0, abi.EINVAL},
		{"count is 32-bit", abi.GNTTABOP_copy, 1 << 32, 0, 0},
		{"cmd is 32-bit", abi.GNTTABOP_query_size | 1<<32, 1, QuerySizeSize, 0},
		{"zero maps", abi.GNTTABOP_map_grant_ref, 0, 0, 0},
		{"map short", abi.GNTTABOP_map_grant_ref, 3, 2 * MapGrantRefSize, abi.EFAULT},
		{"set_version ignores count", abi.GNTTABOP_set_version, 7, SetVersionSize, abi.EINVAL},
		{"set_version short", abi.GNTTABOP_set_version, 1, 2, abi.EFAULT},
		{"setup_table count 0", abi.GNTTABOP_setup_table, 0, SetupTableSize, abi.EINVAL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if rc := e.tab.Hypercall(tt.cmd, tt.count, make([]byte, tt.args), e.va); rc != tt.rc {
				t.Fatalf("rc %v, want %v", rc, tt.rc)
			}
		})
	}
}

func TestArgBytes(t *testing.T) {
	tests := []struct {
		cmd, count uint64
		want       uint64
	}{
		{abi.GNTTABOP_map_grant_ref, 3, 3 * MapGrantRefSize},
		{abi.GNTTABOP_unmap_grant_ref, 2, 2 * UnmapGrantRefSize},
		{abi.GNTTABOP_unmap_and_replace, 2, 2 * UnmapReplaceSize},
		{abi.GNTTABOP_copy, 10, 10 * CopySize},
		{abi.GNTTABOP_transfer, 1, TransferSize},
		{abi.GNTTABOP_swap_grant_ref, 4, 4 * SwapGrantRefSize},
		{abi.GNTTABOP_setup_table, 1, SetupTableSize},
		{abi.GNTTABOP_setup_table, 2, 0},
		{abi.GNTTABOP_query_size, 1, QuerySizeSize},
		{abi.GNTTABOP_get_status_frames, 1, StatusFramesSize},
		{abi.GNTTABOP_set_version, 0, SetVersionSize},
		{abi.GNTTABOP_get_version, 9, GetVersionSize},
		{abi.GNTTABOP_dump_table, 1, 0},
		{abi.GNTTABOP_cache_flush, 1, 0},
		{99, 1, 0},
		{abi.GNTTABOP_copy | 1<<12, 1, 0},
		{abi.GNTTABOP_copy, 0xffffffff, 0},
		{abi.GNTTABOP_copy, 0x7fffffff, 0x7fffffff * CopySize},
	}
	for _, tt := range tests {
		if got := ArgBytes(tt.cmd, tt.count); got != tt.want {
			t.Errorf("ArgBytes(%#x, %d) = %d, want %d", tt.cmd, tt.count, got, tt.want)
		}
	}
}

func TestStatusErrors(t *testing.T) {
	if StatusBadCopyArg.Error() != "gnttab: copy arguments cross page boundary" {
		t.Errorf("%q", StatusBadCopyArg.Error())
	}
	if Status(-40).Error() != "gnttab: status -40" {
		t.Errorf("%q", Status(-40).Error())
	}
	err := error(&OpError{Op: "map", Dom: 7, Ref: 3, Status: StatusBadGntref, Reason: "why"})
	if !errors.Is(err, StatusBadGntref) || errors.Is(err, StatusGeneralError) {
		t.Error("errors.Is on OpError")
	}
	if StatusOf(nil) != StatusOkay || StatusOf(errors.New("x")) != StatusGeneralError || StatusOf(err) != StatusBadGntref {
		t.Error("StatusOf")
	}
	if err.Error() != "gnttab: map grant d7 ref 0x3: invalid grant reference (why)" {
		t.Errorf("%q", err.Error())
	}
}
