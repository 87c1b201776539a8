package gnttab

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/xenvmm/xenvmm/xenabi/abi"
	"github.com/xenvmm/xenvmm/xenabi/guestmem"
)

func TestMapGrant(t *testing.T) {
	type grantFn func(e *env)
	permit := uint16(abi.GTF_permit_access)
	tests := []struct {
		name     string
		v        uint32
		prep     grantFn
		dom      uint16
		ref      uint32
		readonly bool
		want     Status
	}{
		{"v1 writable", 1, func(e *env) { e.grant(5, 0, 40, permit) }, testDom, 5, false, StatusOkay},
		{"v1 read-only", 1, func(e *env) { e.grant(5, 0, 40, permit) }, testDom, 5, true, StatusOkay},
		{"v1 read-only grant, read-only map", 1, func(e *env) { e.grant(5, 0, 40, permit|GTF_readonly) }, testDom, 5, true, StatusOkay},
		{"v1 read-only grant, writable map", 1, func(e *env) { e.grant(5, 0, 40, permit|GTF_readonly) }, testDom, 5, false, StatusGeneralError},
		{"v1 granted to another domain", 1, func(e *env) { e.grant(5, 3, 40, permit) }, testDom, 5, true, StatusGeneralError},
		{"v1 granted to the guest itself", 1, func(e *env) { e.grant(5, testDom, 40, permit) }, testDom, 5, true, StatusGeneralError},
		{"v1 invalid entry", 1, func(e *env) { e.grant(5, 0, 40, abi.GTF_invalid) }, testDom, 5, true, StatusGeneralError},
		{"v1 accept_transfer entry", 1, func(e *env) { e.grant(5, 0, 40, abi.GTF_accept_transfer) }, testDom, 5, true, StatusGeneralError},
		{"v1 sub_page bit", 1, func(e *env) { e.grant(5, 0, 40, permit|GTF_sub_page) }, testDom, 5, true, StatusGeneralError},
		{"v1 cache flags are fine", 1, func(e *env) { e.grant(5, 0, 40, permit|GTF_PAT|GTF_PCD) }, testDom, 5, false, StatusOkay},
		{"v1 last ref", 1, func(e *env) { e.grant(511, 0, 40, permit) }, testDom, 511, false, StatusOkay},
		{"v1 ref beyond the table", 1, nil, testDom, 512, false, StatusBadGntref},
		{"v1 huge ref", 1, nil, testDom, 0xffffffff, false, StatusBadGntref},
		{"wrong granting domain", 1, func(e *env) { e.grant(5, 0, 40, permit) }, 3, 5, false, StatusBadDomain},
		{"domain 0", 1, func(e *env) { e.grant(5, 0, 40, permit) }, 0, 5, false, StatusBadDomain},
		{"frame outside guest memory", 1, func(e *env) { e.grant(5, 0, guestPages, permit) }, testDom, 5, true, StatusBadPage},
		{"frame is a page table", 1, func(e *env) { e.grant(5, 0, 40, permit); e.notWritable[40] = true }, testDom, 5, false, StatusGeneralError},
		{"page table mapped read-only", 1, func(e *env) { e.grant(5, 0, 40, permit); e.notWritable[40] = true }, testDom, 5, true, StatusOkay},
		{"v2 writable", 2, func(e *env) { e.grant(5, 0, 40, permit) }, testDom, 5, false, StatusOkay},
		{"v2 64-bit frame outside memory", 2, func(e *env) { e.grant(5, 0, 1<<40, permit) }, testDom, 5, false, StatusBadPage},
		{"v2 read-only grant, writable map", 2, func(e *env) { e.grant(5, 0, 40, permit|GTF_readonly) }, testDom, 5, false, StatusGeneralError},
		{"v2 read-only grant, read-only map", 2, func(e *env) { e.grant(5, 0, 40, permit|GTF_readonly) }, testDom, 5, true, StatusOkay},
		{"v2 wrong domain", 2, func(e *env) { e.grant(5, 4, 40, permit) }, testDom, 5, true, StatusGeneralError},
		{"v2 sub-page grant", 2, func(e *env) { e.grantSub(5, 0, 40, 0, PageSize, 0) }, testDom, 5, true, StatusGeneralError},
		{"v2 transitive grant", 2, func(e *env) { e.grantTrans(5, 0, testDom, 6) }, testDom, 5, true, StatusGeneralError},
		{"v2 ref beyond the table", 2, nil, testDom, 256, true, StatusBadGntref},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			if rc, _ := e.setVersion(tt.v); rc != 0 {
				t.Fatal(rc)
			}
			e.fill(40, 9)
			if tt.prep != nil {
				tt.prep(e)
			}
			var before uint16
			if tt.ref < e.tab.NrEntries() {
				before = e.flags(tt.ref)
			}
			m, err := e.tab.MapGrant(tt.dom, tt.ref, tt.readonly)
			wantStatus(t, "MapGrant", err, tt.want)
			if err != nil {
				var oe *OpError
				if !errors.As(err, &oe) || oe.Dom != tt.dom || oe.Ref != tt.ref || oe.Op != "map" {
					t.Fatalf("error %#v", err)
				}
				if m != nil {
					t.Fatal("mapping returned with an error")
				}
				if tt.ref < e.tab.NrEntries() && e.flags(tt.ref) != before {
					t.Fatalf("failed map changed the entry: %#x -> %#x", before, e.flags(tt.ref))
				}
				checkPins(t, e.tab)
				return
			}
			wantBusy := uint16(GTF_reading)
			if !tt.readonly {
				wantBusy |= GTF_writing
			}
			if got := e.busy(tt.ref); got != wantBusy {
				t.Fatalf("mapped entry busy bits %#x, want %#x", got, wantBusy)
			}
			if m.Ref() != tt.ref || m.ReadOnly() != tt.readonly || m.GFN() != 40 {
				t.Fatalf("mapping ref %d ro %v gfn %d", m.Ref(), m.ReadOnly(), m.GFN())
			}
			// The mapping aliases the guest page, both ways.
			if !bytes.Equal(m.Bytes(), e.page(40)) || len(m.Bytes()) != PageSize || cap(m.Bytes()) != PageSize {
				t.Fatal("mapping does not show the granted page")
			}
			e.page(40)[100] = 0x77
			if m.Bytes()[100] != 0x77 {
				t.Fatal("guest write not visible through the mapping")
			}
			checkPins(t, e.tab)
			if err := m.Unmap(); err != nil {
				t.Fatal(err)
			}
			if e.busy(tt.ref) != 0 {
				t.Fatalf("busy bits %#x after unmap", e.busy(tt.ref))
			}
			if m.Bytes() != nil {
				t.Fatal("Bytes after Unmap")
			}
			if err := m.Unmap(); !errors.Is(err, ErrUnmapped) {
				t.Fatalf("second Unmap: %v", err)
			}
			checkPins(t, e.tab)
		})
	}
}

func TestMappingReadWriteAt(t *testing.T) {
	e := newEnv(t)
	e.fill(40, 1)
	e.grant(5, 0, 40, abi.GTF_permit_access)
	rw, err := e.tab.MapGrant(testDom, 5, false)
	if err != nil {
		t.Fatal(err)
	}
	ro, err := e.tab.MapGrant(testDom, 5, true)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := rw.WriteAt([]byte("hello"), PageSize-5); n != 5 || err != nil {
		t.Fatalf("WriteAt at the end: %d %v", n, err)
	}
	if !bytes.Equal(e.page(40)[PageSize-5:], []byte("hello")) {
		t.Fatal("WriteAt did not reach the guest page")
	}
	buf := make([]byte, 8)
	if n, err := ro.ReadAt(buf, PageSize-5); n != 5 || err != io.EOF || string(buf[:5]) != "hello" {
		t.Fatalf("ReadAt across the end: %d %v %q", n, err, buf)
	}
	if n, err := ro.ReadAt(buf, 0); n != 8 || err != nil || !bytes.Equal(buf, e.page(40)[:8]) {
		t.Fatalf("ReadAt: %d %v", n, err)
	}
	for _, tt := range []struct {
		off int64
		n   int
	}{{PageSize - 4, 5}, {-1, 1}, {PageSize + 1, 0}, {1 << 62, 1}} {
		if _, err := rw.WriteAt(make([]byte, tt.n), tt.off); !errors.Is(err, StatusBadCopyArg) {
			t.Errorf("WriteAt(%d bytes at %d): %v", tt.n, tt.off, err)
		}
	}
	if _, err := ro.ReadAt(buf, -3); !errors.Is(err, StatusBadCopyArg) {
		t.Errorf("ReadAt(-3): %v", err)
	}
	if _, err := ro.WriteAt([]byte("x"), 0); !errors.Is(err, ErrReadOnly) {
		t.Errorf("WriteAt on a read-only mapping: %v", err)
	}
	ro.Unmap()
	rw.Unmap()
	if _, err := ro.ReadAt(buf, 0); !errors.Is(err, ErrUnmapped) {
		t.Errorf("ReadAt after Unmap: %v", err)
	}
	if _, err := rw.WriteAt(buf, 0); !errors.Is(err, ErrUnmapped) {
		t.Errorf("WriteAt after Unmap: %v", err)
	}
}

// Pins count: GTF_writing goes with the last writable mapping,
// GTF_reading with the last mapping of any kind.
func TestMapGrantPinCounting(t *testing.T) {
	for _, v := range []uint32{1, 2} {
		e := newEnv(t)
		e.setVersion(v)
		e.grant(9, 0, 50, abi.GTF_permit_access)
		r1, _ := e.tab.MapGrant(testDom, 9, true)
		w1, _ := e.tab.MapGrant(testDom, 9, false)
		r2, _ := e.tab.MapGrant(testDom, 9, true)
		w2, err := e.tab.MapGrant(testDom, 9, false)
		if err != nil {
			t.Fatal(err)
		}
		steps := []struct {
			m    *Mapping
			busy uint16
		}{
			{w1, GTF_reading | GTF_writing},
			{r1, GTF_reading | GTF_writing},
			{w2, GTF_reading},
			{r2, 0},
		}
		for i, s := range steps {
			if got := e.busy(9); i == 0 && got != GTF_reading|GTF_writing {
				t.Fatalf("v%d: four mappings: busy %#x", v, got)
			}
			s.m.Unmap()
			if got := e.busy(9); got != s.busy {
				t.Fatalf("v%d: after unmap %d: busy %#x, want %#x", v, i, got, s.busy)
			}
			checkPins(t, e.tab)
		}
	}
}

// Xen's pin counters are 8 bits wide and refuse to reach 128 + 1.
func TestMapGrantPinOverflow(t *testing.T) {
	e := newEnv(t)
	e.grant(9, 0, 50, abi.GTF_permit_access)
	var ms []*Mapping
	for i := 0; i < 128; i++ {
		m, err := e.tab.MapGrant(testDom, 9, true)
		if err != nil {
			t.Fatalf("map %d: %v", i, err)
		}
		ms = append(ms, m)
	}
	_, err := e.tab.MapGrant(testDom, 9, true)
	wantStatus(t, "129th read-only map", err, StatusGeneralError)
	// The writable counter is separate.
	w, err := e.tab.MapGrant(testDom, 9, false)
	wantStatus(t, "writable map", err, StatusOkay)
	w.Unmap()
	for _, m := range ms {
		m.Unmap()
	}
	checkPins(t, e.tab)
}

// The guest revokes a grant before the backend maps it: the map fails.
// While mapped, the guest's end_foreign_access sees the entry busy; a
// guest that clears the entry anyway does not break the mapping.
func TestRevocation(t *testing.T) {
	for _, v := range []uint32{1, 2} {
		e := newEnv(t)
		e.setVersion(v)
		e.fill(60, 5)
		e.grant(12, 0, 60, abi.GTF_permit_access)
		if !e.endAccess(12) {
			t.Fatalf("v%d: unused grant could not be ended", v)
		}
		_, err := e.tab.MapGrant(testDom, 12, true)
		wantStatus(t, "map of a revoked grant", err, StatusGeneralError)
		err = e.tab.CopyFromGrant(testDom, 12, 0, make([]byte, 10))
		wantStatus(t, "copy from a revoked grant", err, StatusGeneralError)

		e.grant(12, 0, 60, abi.GTF_permit_access)
		m, err := e.tab.MapGrant(testDom, 12, false)
		if err != nil {
			t.Fatal(err)
		}
		if v == 1 {
			if e.endAccess(12) {
				t.Fatal("v1: end_foreign_access succeeded on a mapped grant")
			}
			if e.flags(12)&abi.GTF_permit_access == 0 {
				t.Fatal("v1: refused revocation cleared the entry")
			}
			// A misbehaving guest clears the entry with a plain store.
			b, off := e.sharedPage(12)
			guestmem.Store32(b, off, 0)
		} else if e.endAccess(12) {
			// v2 revocation clears hdr.flags first, then sees the status.
			t.Fatal("v2: end_foreign_access reported success on a mapped grant")
		}
		// The mapping stays valid until unmapped...
		if _, err := m.WriteAt([]byte("still"), 0); err != nil || string(e.page(60)[:5]) != "still" {
			t.Fatalf("v%d: mapping after revocation: %v", v, err)
		}
		// ... and a further map of the still-pinned entry is honoured
		// from the active entry, as Xen does.
		m2, err := e.tab.MapGrant(testDom, 12, true)
		if err != nil {
			t.Fatalf("v%d: second map of a pinned, revoked entry: %v", v, err)
		}
		m2.Unmap()
		m.Unmap()
		if e.busy(12) != 0 {
			t.Fatalf("v%d: busy after unmap", v)
		}
		// Now unpinned, the revoked entry refuses maps.
		_, err = e.tab.MapGrant(testDom, 12, true)
		wantStatus(t, "map after unmap of a revoked grant", err, StatusGeneralError)
		checkPins(t, e.tab)
	}
}

// A read-only pin does not stop the guest from making the grant read-only
// (it may; GTF_writing is clear), and a later writable map then fails.
func TestReadonlyToggle(t *testing.T) {
	e := newEnv(t)
	e.grant(3, 0, 70, abi.GTF_permit_access)
	m, err := e.tab.MapGrant(testDom, 3, true)
	if err != nil {
		t.Fatal(err)
	}
	b, off := e.sharedPage(3)
	guestmem.Or8(b, off, GTF_readonly)
	_, err = e.tab.MapGrant(testDom, 3, false)
	wantStatus(t, "writable map after the guest set GTF_readonly", err, StatusGeneralError)
	if e.busy(3) != GTF_reading {
		t.Fatalf("busy %#x", e.busy(3))
	}
	m.Unmap()
	checkPins(t, e.tab)
}

func TestBackendCopy(t *testing.T) {
	permit := uint16(abi.GTF_permit_access)
	tests := []struct {
		name string
		v    uint32
		prep func(e *env)
		dom  uint16
		ref  uint32
		off  int
		n    int
		to   bool
		want Status
	}{
		{"from, whole page", 1, func(e *env) { e.grant(4, 0, 80, permit) }, testDom, 4, 0, PageSize, false, StatusOkay},
		{"to, whole page", 1, func(e *env) { e.grant(4, 0, 80, permit) }, testDom, 4, 0, PageSize, true, StatusOkay},
		{"from, middle", 1, func(e *env) { e.grant(4, 0, 80, permit) }, testDom, 4, 1000, 200, false, StatusOkay},
		{"to, tail", 1, func(e *env) { e.grant(4, 0, 80, permit) }, testDom, 4, PageSize - 1, 1, true, StatusOkay},
		{"from, read-only grant", 1, func(e *env) { e.grant(4, 0, 80, permit|GTF_readonly) }, testDom, 4, 0, 10, false, StatusOkay},
		{"to, read-only grant", 1, func(e *env) { e.grant(4, 0, 80, permit|GTF_readonly) }, testDom, 4, 0, 10, true, StatusGeneralError},
		{"to, page table", 1, func(e *env) { e.grant(4, 0, 80, permit); e.notWritable[80] = true }, testDom, 4, 0, 10, true, StatusGeneralError},
		{"from, page table", 1, func(e *env) { e.grant(4, 0, 80, permit); e.notWritable[80] = true }, testDom, 4, 0, 10, false, StatusOkay},
		{"beyond the page", 1, func(e *env) { e.grant(4, 0, 80, permit) }, testDom, 4, PageSize - 10, 11, false, StatusBadCopyArg},
		{"longer than a page", 1, func(e *env) { e.grant(4, 0, 80, permit) }, testDom, 4, 0, PageSize + 1, true, StatusBadCopyArg},
		{"negative offset", 1, func(e *env) { e.grant(4, 0, 80, permit) }, testDom, 4, -1, 1, false, StatusBadCopyArg},
		{"offset past the page", 1, func(e *env) { e.grant(4, 0, 80, permit) }, testDom, 4, PageSize + 5, 1, false, StatusBadCopyArg},
		{"bad ref before bad range", 1, nil, testDom, 600, PageSize, 10, false, StatusBadGntref},
		{"zero length, bad ref", 1, nil, testDom, 600, 0, 0, false, StatusOkay},
		{"wrong domain", 1, func(e *env) { e.grant(4, 0, 80, permit) }, 2, 4, 0, 10, false, StatusBadDomain},
		{"granted elsewhere", 1, func(e *env) { e.grant(4, 1, 80, permit) }, testDom, 4, 0, 10, false, StatusGeneralError},
		{"bad frame", 1, func(e *env) { e.grant(4, 0, 1<<31, permit) }, testDom, 4, 0, 10, false, StatusBadPage},
		{"v2 full page", 2, func(e *env) { e.grant(4, 0, 80, permit) }, testDom, 4, 0, PageSize, true, StatusOkay},
		{"v2 sub-page inside", 2, func(e *env) { e.grantSub(4, 0, 80, 100, 50, 0) }, testDom, 4, 100, 50, false, StatusOkay},
		{"v2 sub-page inside, to", 2, func(e *env) { e.grantSub(4, 0, 80, 100, 50, 0) }, testDom, 4, 120, 30, true, StatusOkay},
		{"v2 sub-page before", 2, func(e *env) { e.grantSub(4, 0, 80, 100, 50, 0) }, testDom, 4, 99, 10, false, StatusGeneralError},
		{"v2 sub-page after", 2, func(e *env) { e.grantSub(4, 0, 80, 100, 50, 0) }, testDom, 4, 140, 11, false, StatusGeneralError},
		{"v2 sub-page, page bound first", 2, func(e *env) { e.grantSub(4, 0, 80, 100, 50, 0) }, testDom, 4, 4090, 10, false, StatusBadCopyArg},
		{"v2 sub-page read-only, to", 2, func(e *env) { e.grantSub(4, 0, 80, 0, 50, GTF_readonly) }, testDom, 4, 0, 10, true, StatusGeneralError},
		{"v2 transitive to the guest itself", 2, func(e *env) { e.grantTrans(4, 0, testDom, 5) }, testDom, 4, 0, 10, false, StatusGeneralError},
		{"v2 transitive to dom0", 2, func(e *env) { e.grantTrans(4, 0, 0, 5) }, testDom, 4, 0, 10, false, StatusGeneralError},
		{"v2 transitive to dom0, bad ref", 2, func(e *env) { e.grantTrans(4, 0, 0, 5000) }, testDom, 4, 0, 10, false, StatusBadGntref},
		{"v2 transitive to another domain", 2, func(e *env) { e.grantTrans(4, 0, 3, 5) }, testDom, 4, 0, 10, false, StatusGeneralError},
		{"v2 transitive for another domain", 2, func(e *env) { e.grantTrans(4, 3, 0, 5) }, testDom, 4, 0, 10, false, StatusGeneralError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.setVersion(tt.v)
			e.fill(80, 0x33)
			if tt.prep != nil {
				tt.prep(e)
			}
			orig := append([]byte(nil), e.page(80)...)
			buf := make([]byte, max(tt.n, 0))
			for i := range buf {
				buf[i] = byte(i*3 + 1)
			}
			var err error
			if tt.to {
				err = e.tab.CopyToGrant(tt.dom, tt.ref, tt.off, buf)
			} else {
				err = e.tab.CopyFromGrant(tt.dom, tt.ref, tt.off, buf)
			}
			wantStatus(t, "copy", err, tt.want)
			switch {
			case err != nil || tt.n == 0:
				if !bytes.Equal(e.page(80), orig) {
					t.Fatal("failed copy changed the page")
				}
			case tt.to:
				want := append([]byte(nil), orig...)
				copy(want[tt.off:], buf)
				if !bytes.Equal(e.page(80), want) {
					t.Fatal("CopyToGrant wrote the wrong bytes")
				}
			default:
				if !bytes.Equal(buf, orig[tt.off:tt.off+tt.n]) {
					t.Fatal("CopyFromGrant read the wrong bytes")
				}
			}
			if tt.ref < e.tab.NrEntries() && e.busy(tt.ref) != 0 {
				t.Fatalf("busy bits %#x left after the copy", e.busy(tt.ref))
			}
			checkPins(t, e.tab)
			if e.tab.nrV2Ops.Load() != 0 {
				t.Fatal("nr_v2_ops left raised")
			}
		})
	}
}

// A copy while a mapping pins the entry for the backend reuses the pin,
// but does not widen a read-only grant.
func TestCopyWhileMapped(t *testing.T) {
	e := newEnv(t)
	e.grant(4, 0, 80, abi.GTF_permit_access|GTF_readonly)
	m, err := e.tab.MapGrant(testDom, 4, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.tab.CopyFromGrant(testDom, 4, 0, make([]byte, 64)); err != nil {
		t.Fatal(err)
	}
	err = e.tab.CopyToGrant(testDom, 4, 0, make([]byte, 64))
	wantStatus(t, "copy to a read-only grant that is mapped", err, StatusGeneralError)
	if e.busy(4) != GTF_reading {
		t.Fatalf("busy %#x", e.busy(4))
	}
	m.Unmap()
	checkPins(t, e.tab)
}
