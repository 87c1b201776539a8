package gnttab

import (
	"bytes"
	"testing"

	"github.com/xenvmm/xenvmm/xenabi/abi"
)

// copyArg encodes one struct gnttab_copy.
type copyArg struct {
	name           string
	srcU           uint64
	srcDom, srcOff uint16
	dstU           uint64
	dstDom, dstOff uint16
	n, flags       uint16
	want           Status
}

func encodeCopies(ops []copyArg) []byte {
	a := make([]byte, len(ops)*CopySize)
	for i, op := range ops {
		e := a[i*CopySize:]
		le.PutUint64(e[copySrcU:], op.srcU)
		le.PutUint16(e[copySrcDomID:], op.srcDom)
		le.PutUint16(e[copySrcOffset:], op.srcOff)
		le.PutUint64(e[copyDstU:], op.dstU)
		le.PutUint16(e[copyDstDomID:], op.dstDom)
		le.PutUint16(e[copyDstOffset:], op.dstOff)
		le.PutUint16(e[copyLen:], op.n)
		le.PutUint16(e[copyFlags:], op.flags)
		le.PutUint16(e[copyStatus:], 0x7777)
	}
	return a
}

func copyStatusAt(a []byte, i int) Status { return Status(int16(le.Uint16(a[i*CopySize+copyStatus:]))) }

func TestGuestCopy(t *testing.T) {
	const self = abi.DOMID_SELF
	const sg, dg = GNTCOPY_source_gref, GNTCOPY_dest_gref
	permitSelf := func(e *env) {
		// Grant ref r grants frame 60+r.
		e.grant(30, testDom, 90, abi.GTF_permit_access)                 // the guest's grant to itself
		e.grant(31, testDom, 91, abi.GTF_permit_access|GTF_readonly)    // read-only
		e.grant(32, 0, 92, abi.GTF_permit_access)                       // a grant to dom0
		e.grant(33, testDom, guestPages+5, abi.GTF_permit_access)       // a bad frame
		e.grant(34, testDom, 94, abi.GTF_permit_access|GTF_sub_page)    // copies ignore sub_page in v1
		e.grant(35, testDom, 95, abi.GTF_permit_access|GTF_PCD|GTF_PAT) // cache bits
	}
	tests := []copyArg{
		{name: "gmfn to gmfn", srcU: 90, srcDom: self, dstU: 100, dstDom: self, n: PageSize, want: StatusOkay},
		{name: "gmfn to gmfn, offsets", srcU: 90, srcDom: self, srcOff: 10, dstU: 100, dstDom: self, dstOff: 4000, n: 96, want: StatusOkay},
		{name: "own gref to gmfn", srcU: 30, srcDom: self, dstU: 100, dstDom: self, n: 512, flags: sg, want: StatusOkay},
		{name: "own gref by domid to gmfn", srcU: 30, srcDom: testDom, dstU: 100, dstDom: self, n: 512, flags: sg, want: StatusOkay},
		{name: "gmfn to own gref", srcU: 90, srcDom: self, dstU: 30, dstDom: self, n: 8, flags: dg, want: StatusOkay},
		{name: "gref to gref", srcU: 31, srcDom: self, dstU: 30, dstDom: self, n: 8, flags: sg | dg, want: StatusOkay},
		{name: "gref to the same gref", srcU: 30, srcDom: self, srcOff: 0, dstU: 30, dstDom: self, dstOff: 100, n: 200, flags: sg | dg, want: StatusOkay},
		{name: "read-only gref as destination", srcU: 90, srcDom: self, dstU: 31, dstDom: self, n: 8, flags: dg, want: StatusGeneralError},
		{name: "grant to dom0 used by the guest", srcU: 32, srcDom: self, dstU: 100, dstDom: self, n: 8, flags: sg, want: StatusGeneralError},
		{name: "gref with a bad frame", srcU: 33, srcDom: self, dstU: 100, dstDom: self, n: 8, flags: sg, want: StatusBadPage},
		{name: "v1 sub_page bit", srcU: 34, srcDom: self, dstU: 100, dstDom: self, n: 8, flags: sg, want: StatusOkay},
		{name: "cache bits", srcU: 35, srcDom: self, dstU: 100, dstDom: self, n: 8, flags: sg, want: StatusOkay},
		{name: "gref beyond the table", srcU: 512, srcDom: self, dstU: 100, dstDom: self, n: 8, flags: sg, want: StatusBadGntref},
		{name: "gref with high bits", srcU: 1<<32 | 30, srcDom: self, dstU: 100, dstDom: self, n: 8, flags: sg, want: StatusOkay},
		{name: "dom0 gref", srcU: 3, srcDom: 0, dstU: 100, dstDom: self, n: 8, flags: sg, want: StatusGeneralError},
		{name: "dom0 gref beyond its table", srcU: 512, srcDom: 0, dstU: 100, dstDom: self, n: 8, flags: sg, want: StatusBadGntref},
		{name: "dom0 gref as destination", srcU: 90, srcDom: self, dstU: 1, dstDom: 0, n: 8, flags: dg, want: StatusGeneralError},
		{name: "gmfn of dom0", srcU: 90, srcDom: 0, dstU: 100, dstDom: self, n: 8, want: StatusPermissionDenied},
		{name: "gmfn by own domid", srcU: 90, srcDom: testDom, dstU: 100, dstDom: self, n: 8, want: StatusPermissionDenied},
		{name: "dest gmfn of another domain", srcU: 90, srcDom: self, dstU: 100, dstDom: 3, n: 8, want: StatusPermissionDenied},
		{name: "gref of an unknown domain", srcU: 30, srcDom: 3, dstU: 100, dstDom: self, n: 8, flags: sg, want: StatusBadDomain},
		{name: "dest gref of an unknown domain", srcU: 90, srcDom: self, dstU: 30, dstDom: 3, n: 8, flags: dg, want: StatusBadDomain},
		{name: "source domain checked first", srcU: 90, srcDom: 3, dstU: 100, dstDom: 4, n: 8, flags: sg, want: StatusBadDomain},
		{name: "bad source gmfn", srcU: guestPages, srcDom: self, dstU: 100, dstDom: self, n: 8, want: StatusBadPage},
		{name: "bad dest gmfn", srcU: 90, srcDom: self, dstU: 1 << 50, dstDom: self, n: 8, want: StatusBadPage},
		{name: "dest gmfn is a page table", srcU: 90, srcDom: self, dstU: 101, dstDom: self, n: 8, want: StatusGeneralError},
		{name: "source gmfn is a page table", srcU: 101, srcDom: self, dstU: 100, dstDom: self, n: 8, want: StatusOkay},
		{name: "source crosses the page", srcU: 90, srcDom: self, srcOff: 4000, dstU: 100, dstDom: self, n: 97, want: StatusBadCopyArg},
		{name: "dest crosses the page", srcU: 90, srcDom: self, dstU: 100, dstDom: self, dstOff: 1, n: PageSize, want: StatusBadCopyArg},
		{name: "huge offsets", srcU: 90, srcDom: self, srcOff: 0xffff, dstU: 100, dstDom: self, dstOff: 0xffff, n: 0xffff, want: StatusBadCopyArg},
		{name: "bad gref before bad range", srcU: 600, srcDom: self, srcOff: 4095, dstU: 100, dstDom: self, n: 8, flags: sg, want: StatusBadGntref},
		{name: "zero length, garbage", srcU: 600, srcDom: 99, dstU: 1 << 60, dstDom: 98, n: 0, flags: sg, want: StatusOkay},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			permitSelf(e)
			e.notWritable[101] = true
			for _, g := range []uint64{90, 91, 92, 94, 95, 100, 101} {
				e.fill(g, byte(g))
			}
			srcGFN, dstGFN := tt.srcU, tt.dstU
			if tt.flags&sg != 0 && tt.srcDom != 0 {
				srcGFN = 60 + uint64(uint32(tt.srcU))
			}
			if tt.flags&dg != 0 && tt.dstDom != 0 {
				dstGFN = 60 + uint64(uint32(tt.dstU))
			}
			var want []byte
			if tt.want == StatusOkay && tt.n != 0 {
				src := append([]byte(nil), e.page(srcGFN)...)
				want = append([]byte(nil), e.page(dstGFN)...)
				copy(want[tt.dstOff:], src[tt.srcOff:int(tt.srcOff)+int(tt.n)])
			}
			var before [][]byte
			for _, g := range []uint64{90, 91, 92, 100, 101} {
				before = append(before, append([]byte(nil), e.page(g)...))
			}
			a := encodeCopies([]copyArg{tt})
			if rc := e.hc(abi.GNTTABOP_copy, 1, a); rc != 0 {
				t.Fatalf("rc %v", rc)
			}
			if got := copyStatusAt(a, 0); got != tt.want {
				t.Fatalf("status %v, want %v", got, tt.want)
			}
			if want != nil && !bytes.Equal(e.page(dstGFN), want) {
				t.Fatal("destination holds the wrong bytes")
			}
			if tt.want != StatusOkay {
				for i, g := range []uint64{90, 91, 92, 100, 101} {
					if !bytes.Equal(e.page(g), before[i]) {
						t.Fatalf("failed copy changed frame %d", g)
					}
				}
			}
			for ref := uint32(30); ref < 36; ref++ {
				if e.busy(ref) != 0 {
					t.Fatalf("ref %d left busy", ref)
				}
			}
			checkPins(t, e.tab)
		})
	}
}

// Statuses are per element; a failing element does not stop the batch.
func TestGuestCopyBatch(t *testing.T) {
	e := newEnv(t)
	e.grant(30, testDom, 90, abi.GTF_permit_access)
	e.fill(90, 1)
	ops := []copyArg{
		{srcU: 30, srcDom: abi.DOMID_SELF, dstU: 100, dstDom: abi.DOMID_SELF, n: 100, flags: GNTCOPY_source_gref, want: StatusOkay},
		{srcU: 31, srcDom: abi.DOMID_SELF, dstU: 100, dstDom: abi.DOMID_SELF, n: 100, flags: GNTCOPY_source_gref, want: StatusGeneralError},
		{srcU: 90, srcDom: abi.DOMID_SELF, dstU: 101, dstDom: abi.DOMID_SELF, srcOff: 4000, n: 100, want: StatusBadCopyArg},
		{srcU: 90, srcDom: abi.DOMID_SELF, dstU: 102, dstDom: abi.DOMID_SELF, n: 0, want: StatusOkay},
		{srcU: 90, srcDom: abi.DOMID_SELF, dstU: 103, dstDom: abi.DOMID_SELF, n: 10, want: StatusOkay},
	}
	a := encodeCopies(ops)
	if rc := e.hc(abi.GNTTABOP_copy, uint64(len(ops)), a); rc != 0 {
		t.Fatal(rc)
	}
	for i, op := range ops {
		if got := copyStatusAt(a, i); got != op.want {
			t.Errorf("element %d: %v, want %v", i, got, op.want)
		}
	}
	if !bytes.Equal(e.page(100)[:100], e.page(90)[:100]) || !bytes.Equal(e.page(103)[:10], e.page(90)[:10]) {
		t.Error("copies not done")
	}
	// Only the status field is an output: the rest is as the guest wrote.
	b := encodeCopies(ops)
	for i := range ops {
		copy(b[i*CopySize+copyStatus:], a[i*CopySize+copyStatus:i*CopySize+copyStatus+2])
	}
	if !bytes.Equal(a, b) {
		t.Error("copy wrote beyond the status fields")
	}
}

// A grant pinned by a backend mapping cannot be pinned by the guest
// itself (the active entry belongs to domain 0 until unmapped).
func TestGuestCopyOfEntryPinnedForDom0(t *testing.T) {
	e := newEnv(t)
	e.grant(30, 0, 90, abi.GTF_permit_access)
	m, err := e.tab.MapGrant(testDom, 30, true)
	if err != nil {
		t.Fatal(err)
	}
	// The guest re-targets the entry to itself while it is pinned.
	e.grant(30, testDom, 90, abi.GTF_permit_access)
	a := encodeCopies([]copyArg{{srcU: 30, srcDom: abi.DOMID_SELF, dstU: 100, dstDom: abi.DOMID_SELF, n: 8, flags: GNTCOPY_source_gref}})
	e.hc(abi.GNTTABOP_copy, 1, a)
	if got := copyStatusAt(a, 0); got != StatusGeneralError {
		t.Fatalf("status %v", got)
	}
	m.Unmap()
	e.hc(abi.GNTTABOP_copy, 1, a)
	if got := copyStatusAt(a, 0); got != StatusOkay {
		t.Fatalf("after unmap: status %v", got)
	}
}

func TestGuestCopyV2(t *testing.T) {
	e := newEnv(t)
	e.setVersion(2)
	e.grantSub(40, testDom, 90, 200, 100, 0)
	e.grantTrans(41, testDom, 0, 2)
	e.fill(90, 4)
	ops := []copyArg{
		{srcU: 40, srcDom: abi.DOMID_SELF, srcOff: 200, dstU: 100, dstDom: abi.DOMID_SELF, n: 100, flags: GNTCOPY_source_gref, want: StatusOkay},
		{srcU: 40, srcDom: abi.DOMID_SELF, srcOff: 199, dstU: 100, dstDom: abi.DOMID_SELF, n: 10, flags: GNTCOPY_source_gref, want: StatusGeneralError},
		{srcU: 90, srcDom: abi.DOMID_SELF, dstU: 40, dstDom: abi.DOMID_SELF, dstOff: 250, n: 50, flags: GNTCOPY_dest_gref, want: StatusOkay},
		{srcU: 41, srcDom: abi.DOMID_SELF, dstU: 100, dstDom: abi.DOMID_SELF, n: 10, flags: GNTCOPY_source_gref, want: StatusGeneralError},
		{srcU: 256, srcDom: abi.DOMID_SELF, dstU: 100, dstDom: abi.DOMID_SELF, n: 10, flags: GNTCOPY_source_gref, want: StatusBadGntref},
	}
	a := encodeCopies(ops)
	if rc := e.hc(abi.GNTTABOP_copy, uint64(len(ops)), a); rc != 0 {
		t.Fatal(rc)
	}
	for i, op := range ops {
		if got := copyStatusAt(a, i); got != op.want {
			t.Errorf("element %d: %v, want %v", i, got, op.want)
		}
	}
	if e.tab.nrV2Ops.Load() != 0 {
		t.Error("nr_v2_ops left raised")
	}
	checkPins(t, e.tab)
}

// mapArg is one struct gnttab_map_grant_ref.
type mapArg struct {
	hostAddr uint64
	flags    uint32
	ref      uint32
	dom      uint16
}

func guestMap(e *env, ops ...mapArg) []byte {
	a := make([]byte, len(ops)*MapGrantRefSize)
	for i, op := range ops {
		b := a[i*MapGrantRefSize:]
		le.PutUint64(b[mapHostAddr:], op.hostAddr)
		le.PutUint32(b[mapFlags:], op.flags)
		le.PutUint32(b[mapRef:], op.ref)
		le.PutUint16(b[mapDom:], op.dom)
		le.PutUint32(b[mapHandle:], 0xeeee)
		le.PutUint64(b[mapDevBusAddr:], 0xbbbb)
	}
	if rc := e.hc(abi.GNTTABOP_map_grant_ref, uint64(len(ops)), a); rc != 0 {
		e.t.Fatalf("map_grant_ref rc %v", rc)
	}
	return a
}

func mapResult(a []byte, i int) (Status, uint32, uint64) {
	b := a[i*MapGrantRefSize:]
	return Status(int16(le.Uint16(b[mapStatus:]))), le.Uint32(b[mapHandle:]), le.Uint64(b[mapDevBusAddr:])
}

func guestUnmap(e *env, hostAddr, devBusAddr uint64, handle uint32) Status {
	a := make([]byte, UnmapGrantRefSize)
	le.PutUint64(a[unmapHostAddr:], hostAddr)
	le.PutUint64(a[unmapDevBusAddr:], devBusAddr)
	le.PutUint32(a[unmapHandle:], handle)
	if rc := e.hc(abi.GNTTABOP_unmap_grant_ref, 1, a); rc != 0 {
		e.t.Fatalf("unmap_grant_ref rc %v", rc)
	}
	return Status(int16(le.Uint16(a[unmapStatus:])))
}

func TestGuestMap(t *testing.T) {
	const host, dev, ro = GNTMAP_host_map, GNTMAP_device_map, GNTMAP_readonly
	tests := []struct {
		name   string
		mapper bool
		op     mapArg
		want   Status
		busy   uint16
	}{
		{"device map", false, mapArg{0, dev, 30, testDom}, StatusOkay, GTF_reading | GTF_writing},
		{"device map read-only", false, mapArg{0, dev | ro, 30, testDom}, StatusOkay, GTF_reading},
		{"host map without a PV MMU", false, mapArg{0x1000, host, 30, testDom}, StatusGeneralError, 0},
		{"host map", true, mapArg{0x1000, host, 30, testDom}, StatusOkay, GTF_reading | GTF_writing},
		{"host and device map", true, mapArg{0x1000, host | dev | ro, 30, testDom}, StatusOkay, GTF_reading},
		{"no map kind", false, mapArg{0, ro, 30, testDom}, StatusBadGntref, 0},
		{"DOMID_SELF is not a domain here", false, mapArg{0, dev, 30, abi.DOMID_SELF}, StatusBadDomain, 0},
		{"unknown domain", false, mapArg{0, dev, 30, 2}, StatusBadDomain, 0},
		{"dom0's grant", false, mapArg{0, dev, 30, 0}, StatusGeneralError, 0},
		{"dom0's grant beyond its table", false, mapArg{0, dev, 512, 0}, StatusBadGntref, 0},
		{"ref beyond the table", false, mapArg{0, dev, 512, testDom}, StatusBadGntref, 0},
		{"grant to dom0", false, mapArg{0, dev, 32, testDom}, StatusGeneralError, 0},
		{"read-only grant mapped writable", false, mapArg{0, dev, 31, testDom}, StatusGeneralError, 0},
		{"read-only grant mapped read-only", false, mapArg{0, dev | ro, 31, testDom}, StatusOkay, GTF_reading},
		{"page table mapped writable", false, mapArg{0, dev, 33, testDom}, StatusGeneralError, 0},
		{"page table mapped read-only", false, mapArg{0, dev | ro, 33, testDom}, StatusOkay, GTF_reading},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts []envOpt
			if tt.mapper {
				opts = append(opts, withMapper())
			}
			e := newEnv(t, opts...)
			e.grant(30, testDom, 90, abi.GTF_permit_access)
			e.grant(31, testDom, 91, abi.GTF_permit_access|GTF_readonly)
			e.grant(32, 0, 92, abi.GTF_permit_access)
			e.grant(33, testDom, 93, abi.GTF_permit_access)
			e.notWritable[93] = true
			a := guestMap(e, tt.op)
			st, h, bus := mapResult(a, 0)
			if st != tt.want {
				t.Fatalf("status %v, want %v", st, tt.want)
			}
			ref := tt.op.ref
			if ref < e.tab.NrEntries() && e.busy(ref) != tt.busy {
				t.Fatalf("busy %#x, want %#x", e.busy(ref), tt.busy)
			}
			if st != StatusOkay {
				if h != 0xeeee || bus != 0xbbbb {
					t.Fatal("failed map wrote handle or dev_bus_addr")
				}
				if e.tab.GuestMaps() != 0 {
					t.Fatal("failed map kept a handle")
				}
				checkPins(t, e.tab)
				return
			}
			gfn := map[uint32]uint64{30: 90, 31: 91, 33: 93}[ref]
			if bus != gfn<<12 {
				t.Fatalf("dev_bus_addr %#x, want %#x", bus, gfn<<12)
			}
			if tt.op.flags&host != 0 && e.mapper.created[tt.op.hostAddr] != gfn {
				t.Fatalf("PV MMU not asked to map %#x at %#x: %v", gfn, tt.op.hostAddr, e.mapper.created)
			}
			if e.tab.GuestMaps() != 1 {
				t.Fatalf("%d handles in use", e.tab.GuestMaps())
			}
			checkPins(t, e.tab)
			if got := guestUnmap(e, tt.op.hostAddr, bus, h); got != StatusOkay {
				t.Fatalf("unmap: %v", got)
			}
			if e.busy(ref) != 0 || e.tab.GuestMaps() != 0 {
				t.Fatalf("after unmap: busy %#x, %d handles", e.busy(ref), e.tab.GuestMaps())
			}
			if got := guestUnmap(e, tt.op.hostAddr, bus, h); got != StatusBadHandle {
				t.Fatalf("second unmap: %v", got)
			}
			checkPins(t, e.tab)
		})
	}
}

func TestGuestUnmap(t *testing.T) {
	e := newEnv(t, withMapper())
	e.grant(30, testDom, 90, abi.GTF_permit_access)
	a := guestMap(e, mapArg{0x5000, GNTMAP_host_map | GNTMAP_device_map, 30, testDom})
	st, h, bus := mapResult(a, 0)
	if st != StatusOkay {
		t.Fatal(st)
	}
	steps := []struct {
		name       string
		host, dev  uint64
		handle     uint32
		want       Status
		busy       uint16
		mapped     int
		hostMapped bool
	}{
		{"unknown handle", 0x5000, bus, h + 1, StatusBadHandle, GTF_reading | GTF_writing, 1, true},
		{"huge handle", 0x5000, bus, 0xffffffff, StatusBadHandle, GTF_reading | GTF_writing, 1, true},
		{"wrong bus address", 0x5000, bus + 0x1000, h, StatusBadDevAddr, GTF_reading | GTF_writing, 1, true},
		{"wrong host address", 0x6000, 0, h, StatusGeneralError, GTF_reading | GTF_writing, 1, true},
		{"nothing to unmap", 0, 0, h, StatusOkay, GTF_reading | GTF_writing, 1, true},
		{"device part", 0, bus, h, StatusOkay, GTF_reading | GTF_writing, 1, true},
		{"device part again", 0, bus, h, StatusOkay, GTF_reading | GTF_writing, 1, true},
		{"host part", 0x5000, 0, h, StatusOkay, 0, 0, false},
		{"handle gone", 0x5000, bus, h, StatusBadHandle, 0, 0, false},
	}
	for _, s := range steps {
		if got := guestUnmap(e, s.host, s.dev, s.handle); got != s.want {
			t.Fatalf("%s: %v, want %v", s.name, got, s.want)
		}
		if e.busy(30) != s.busy || e.tab.GuestMaps() != s.mapped || (len(e.mapper.created) == 1) != s.hostMapped {
			t.Fatalf("%s: busy %#x, %d handles, host mappings %v", s.name, e.busy(30), e.tab.GuestMaps(), e.mapper.created)
		}
		checkPins(t, e.tab)
	}
}

func TestGuestUnmapAndReplace(t *testing.T) {
	e := newEnv(t, withMapper())
	e.grant(30, testDom, 90, abi.GTF_permit_access)
	_, h, _ := mapResult(guestMap(e, mapArg{0x5000, GNTMAP_host_map, 30, testDom}), 0)
	a := make([]byte, UnmapReplaceSize)
	le.PutUint64(a[urHostAddr:], 0x5000)
	le.PutUint64(a[urNewAddr:], 0x9000)
	le.PutUint32(a[urHandle:], h)
	if rc := e.hc(abi.GNTTABOP_unmap_and_replace, 1, a); rc != 0 {
		t.Fatal(rc)
	}
	if st := Status(int16(le.Uint16(a[urStatus:]))); st != StatusOkay {
		t.Fatal(st)
	}
	if len(e.mapper.replaced) != 1 || e.mapper.replaced[0] != 0x9000 || e.busy(30) != 0 || e.tab.GuestMaps() != 0 {
		t.Fatalf("replace: %v, busy %#x", e.mapper.replaced, e.busy(30))
	}
}

func TestGuestMapPVMMUFailure(t *testing.T) {
	e := newEnv(t, withMapper())
	e.mapper.fail = StatusBadVirtAddr
	e.grant(30, testDom, 90, abi.GTF_permit_access)
	st, _, _ := mapResult(guestMap(e, mapArg{0x5000, GNTMAP_host_map, 30, testDom}), 0)
	if st != StatusBadVirtAddr || e.busy(30) != 0 || e.tab.GuestMaps() != 0 {
		t.Fatalf("status %v busy %#x handles %d", st, e.busy(30), e.tab.GuestMaps())
	}
}

func TestGuestMapHandlesRunOut(t *testing.T) {
	e := newEnv(t, withMaptrackFrames(1))
	ops := make([]mapArg, maptrackPerFrame+1)
	for i := range ops {
		// Spread the maps over 100 entries: one entry's pin counter
		// would overflow at 128 maps first.
		ref := uint32(30 + i%100)
		e.grant(ref, testDom, 90, abi.GTF_permit_access|GTF_readonly)
		ops[i] = mapArg{0, GNTMAP_device_map | GNTMAP_readonly, ref, testDom}
	}
	a := guestMap(e, ops...)
	handles := map[uint32]bool{}
	for i := range ops {
		st, h, _ := mapResult(a, i)
		want := StatusOkay
		if i == maptrackPerFrame {
			want = StatusNoSpace
		}
		if st != want {
			t.Fatalf("map %d: %v, want %v", i, st, want)
		}
		if st == StatusOkay {
			if handles[h] {
				t.Fatalf("handle %d handed out twice", h)
			}
			handles[h] = true
		}
	}
	// Freeing one handle makes room for one more map.
	if st := guestUnmap(e, 0, 90<<12, 0); st != StatusOkay {
		t.Fatal(st)
	}
	if st, _, _ := mapResult(guestMap(e, ops[0]), 0); st != StatusOkay {
		t.Fatalf("map after a free: %v", st)
	}
	checkPins(t, e.tab)
}

func TestGuestAndBackendShareEntry(t *testing.T) {
	e := newEnv(t)
	e.grant(30, testDom, 90, abi.GTF_permit_access)
	a := guestMap(e, mapArg{0, GNTMAP_device_map | GNTMAP_readonly, 30, testDom})
	if st, _, _ := mapResult(a, 0); st != StatusOkay {
		t.Fatal(st)
	}
	// Pinned for the guest: domain 0 cannot map it even if the guest
	// re-targets the entry.
	e.grant(30, 0, 90, abi.GTF_permit_access)
	_, err := e.tab.MapGrant(testDom, 30, true)
	wantStatus(t, "backend map of an entry pinned for the guest", err, StatusGeneralError)
}
