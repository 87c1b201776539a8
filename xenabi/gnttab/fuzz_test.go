package gnttab

import (
	"encoding/binary"
	"testing"

	"github.com/xenvmm/xenvmm/xenabi/abi"
)

// fuzzMapper accepts every host mapping but the one at address 0.
type fuzzMapper struct{}

func (fuzzMapper) CreateGrantMapping(addr, mfn uint64, flags uint32) Status {
	if addr == 0 {
		return StatusGeneralError
	}
	return StatusOkay
}

func (fuzzMapper) ReplaceGrantMapping(addr, mfn, newAddr uint64, flags uint32) Status {
	return StatusOkay
}

// fuzzOps are the operations of a fuzz program; each reads its operands
// from the input.
const (
	fopHypercall    = iota // cmd byte, count byte, then ArgBytes of args
	fopRawCall             // cmd u64, count u64, args len byte, args
	fopGuestWrite          // ref u16, flags u16, domid u16, frame u64, page_off/length u32
	fopBackendMap          // ref u16, readonly byte
	fopBackendUnmap        // index byte
	fopBackendCopy         // ref u16, off u16, len u16, to byte
	fopCount
)

// errnos the grant-table hypercall may return.
var fuzzErrnos = map[abi.Errno]bool{0: true, abi.EINVAL: true, abi.EFAULT: true, abi.ENOSYS: true, abi.EOPNOTSUPP: true,
	abi.EPERM: true, abi.ESRCH: true, abi.EBUSY: true, abi.EAGAIN: true, abi.ERANGE: true, abi.ENOMEM: true}

// statusOffsets locates the status field of each array op's element.
var statusOffsets = map[uint32]int{
	abi.GNTTABOP_map_grant_ref:     mapStatus,
	abi.GNTTABOP_unmap_grant_ref:   unmapStatus,
	abi.GNTTABOP_unmap_and_replace: urStatus,
	abi.GNTTABOP_copy:              copyStatus,
	abi.GNTTABOP_swap_grant_ref:    swapStatus,
	abi.GNTTABOP_setup_table:       setupStatus,
	abi.GNTTABOP_query_size:        querySizeStatus,
	abi.GNTTABOP_get_status_frames: sfStatus,
}

type fuzzReader struct{ b []byte }

func (r *fuzzReader) bytes(n int) []byte {
	out := make([]byte, n)
	copy(out, r.b)
	if n > len(r.b) {
		n = len(r.b)
	}
	r.b = r.b[n:]
	return out
}
func (r *fuzzReader) u8() uint8   { return r.bytes(1)[0] }
func (r *fuzzReader) u16() uint16 { return binary.LittleEndian.Uint16(r.bytes(2)) }
func (r *fuzzReader) u32() uint32 { return binary.LittleEndian.Uint32(r.bytes(4)) }
func (r *fuzzReader) u64() uint64 { return binary.LittleEndian.Uint64(r.bytes(8)) }

// FuzzHypercall runs programs of guest hypercalls, guest writes to its
// grant entries, and backend maps, unmaps and copies. Invariants: nothing
// panics; the hypercall returns 0 or one of Xen's errnos; every status
// written is a GNTST_* code; after every step an entry shows GTF_reading
// exactly when pinned and GTF_writing exactly when pinned writable (the
// fuzzed guest, like a correct one, never writes those Xen-owned bits);
// and once everything is unmapped no pin, handle or sub-page count is
// left.
func FuzzHypercall(f *testing.F) {
	seed := func(parts ...[]byte) []byte {
		var out []byte
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	le16 := func(v uint16) []byte { return binary.LittleEndian.AppendUint16(nil, v) }
	le32 := func(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
	le64 := func(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }
	grantOp := func(ref, flags, dom uint16, frame uint64) []byte {
		return seed([]byte{fopGuestWrite}, le16(ref), le16(flags), le16(dom), le64(frame), le32(0x00400010))
	}
	setup := seed([]byte{fopHypercall, abi.GNTTABOP_setup_table, 1}, le16(abi.DOMID_SELF), le16(0), le32(3), le16(0), make([]byte, 6), le64(listVA))
	mapOp := seed([]byte{fopHypercall, abi.GNTTABOP_map_grant_ref, 1}, le64(0x1000), le32(GNTMAP_host_map|GNTMAP_device_map), le32(9), le16(testDom), make([]byte, 14))
	copyOp := seed([]byte{fopHypercall, abi.GNTTABOP_copy, 1}, le64(9), le16(abi.DOMID_SELF), le16(0), make([]byte, 4), le64(20), le16(abi.DOMID_SELF), le16(0), make([]byte, 4), le16(100), le16(GNTCOPY_source_gref), make([]byte, 4))
	setV2 := seed([]byte{fopHypercall, abi.GNTTABOP_set_version, 0}, le32(2))
	f.Add(setup)
	f.Add(seed(grantOp(9, abi.GTF_permit_access, testDom, 10), mapOp, mapOp, copyOp))
	f.Add(seed(grantOp(9, abi.GTF_permit_access, 0, 10), []byte{fopBackendMap}, le16(9), []byte{0}, []byte{fopBackendCopy}, le16(9), le16(10), le16(20), []byte{1}, []byte{fopBackendUnmap, 0}))
	f.Add(seed(setV2, grantOp(3, abi.GTF_permit_access|GTF_sub_page, testDom, 10), copyOp, grantOp(4, abi.GTF_transitive, testDom, 0), setup))
	f.Add(seed(setV2, grantOp(2, abi.GTF_permit_access, 0, 11), []byte{fopBackendMap}, le16(2), []byte{1}, []byte{fopHypercall, abi.GNTTABOP_set_version, 0}, le32(1)))
	f.Add(seed([]byte{fopRawCall}, le64(abi.GNTTABOP_copy|1<<12), le64(1), []byte{40}, make([]byte, 40)))
	f.Add(seed(setV2, []byte{fopHypercall, abi.GNTTABOP_query_size, 1}, le16(abi.DOMID_SELF), make([]byte, 14),
		[]byte{fopHypercall, abi.GNTTABOP_get_version, 1}, le16(abi.DOMID_SELF), make([]byte, 6),
		[]byte{fopHypercall, abi.GNTTABOP_get_status_frames, 1}, le32(1), le16(abi.DOMID_SELF), le16(0), le64(listVA)))
	f.Add(seed([]byte{fopHypercall, abi.GNTTABOP_swap_grant_ref, 2}, le32(1), le32(2), le32(0), le32(3), le32(3), le32(0)))

	f.Fuzz(func(t *testing.T, data []byte) {
		// As on Xen, frame 0 is not the guest's: a device mapping of it
		// could not be unmapped (dev_bus_addr 0 means "no device part").
		e := newEnv(t, withRAM(1, 64), withMaxFrames(4), withMaptrackFrames(1), func(c *Config, _ *env) { c.HostMapper = fuzzMapper{} })
		e.notWritable[13] = true
		r := &fuzzReader{data}
		var maps []*Mapping
		for steps := 0; len(r.b) > 0 && steps < 64; steps++ {
			switch r.u8() % fopCount {
			case fopHypercall:
				cmd, count := uint64(r.u8()%16), uint64(r.u8()%8)
				args := r.bytes(int(ArgBytes(cmd, count)))
				fuzzCall(t, e, cmd, count, args)
			case fopRawCall:
				cmd, count := r.u64(), r.u64()
				args := r.bytes(int(r.u8()))
				if rc := e.tab.Hypercall(cmd, count, args, e.va); !fuzzErrnos[rc] {
					t.Fatalf("raw hypercall(%#x, %#x) = %v", cmd, count, rc)
				}
			case fopGuestWrite:
				fuzzGuestWrite(e, r)
			case fopBackendMap:
				ref, ro := uint32(r.u16()), r.u8()&1 == 1
				m, err := e.tab.MapGrant(testDom, ref, ro)
				if err == nil {
					maps = append(maps, m)
				} else if StatusOf(err) == StatusOkay {
					t.Fatalf("map error without a status: %v", err)
				}
			case fopBackendUnmap:
				if len(maps) > 0 {
					i := int(r.u8()) % len(maps)
					if err := maps[i].Unmap(); err != nil {
						t.Fatal(err)
					}
					maps = append(maps[:i], maps[i+1:]...)
				}
			case fopBackendCopy:
				ref, off, n, to := uint32(r.u16()), int(r.u16()), int(r.u16()%(2*PageSize)), r.u8()&1 == 1
				buf := make([]byte, n)
				var err error
				if to {
					err = e.tab.CopyToGrant(testDom, ref, off, buf)
				} else {
					err = e.tab.CopyFromGrant(testDom, ref, off, buf)
				}
				if err != nil && StatusOf(err) == StatusOkay {
					t.Fatalf("copy error without a status: %v", err)
				}
			}
			checkPins(t, e.tab)
		}
		// Unmap everything: the backends' mappings and the guest's handles.
		for _, m := range maps {
			if err := m.Unmap(); err != nil {
				t.Fatal(err)
			}
		}
		e.tab.mt.mu.Lock()
		n := len(e.tab.mt.ents)
		e.tab.mt.mu.Unlock()
		for h := 0; h < n; h++ {
			me, _ := e.tab.mt.lookup(uint32(h))
			if me.flags == 0 {
				continue
			}
			e.tab.mu.RLock()
			gfn := e.tab.act(me.ref).gfn
			e.tab.mu.RUnlock()
			if st := guestUnmap(e, 1, gfn<<12, uint32(h)); st != StatusOkay {
				t.Fatalf("unmap of handle %d: %v", h, st)
			}
		}
		if e.tab.GuestMaps() != 0 {
			t.Fatalf("%d handles left", e.tab.GuestMaps())
		}
		checkPins(t, e.tab)
		e.tab.mu.RLock()
		defer e.tab.mu.RUnlock()
		for _, chunk := range e.tab.active {
			for i := range chunk {
				if chunk[i].pin != 0 {
					t.Fatalf("entry %d still pinned: %#x", i, chunk[i].pin)
				}
			}
		}
		if e.tab.nrV2Ops.Load() != 0 {
			t.Fatalf("nr_v2_ops = %d", e.tab.nrV2Ops.Load())
		}
	})
}

// fuzzCall issues one decoded hypercall and checks what it wrote back.
func fuzzCall(t *testing.T, e *env, cmd, count uint64, args []byte) {
	orig := append([]byte(nil), args...)
	rc := e.tab.Hypercall(cmd, count, args, e.va)
	if !fuzzErrnos[rc] {
		t.Fatalf("hypercall(%d, %d) = %v", cmd, count, rc)
	}
	op := uint32(cmd)
	off, ok := statusOffsets[op]
	if !ok || rc != 0 {
		return
	}
	size := argSizes[op]
	for i := 0; i+size <= len(args); i += size {
		st := int16(binary.LittleEndian.Uint16(args[i+off:]))
		if st > 0 || st < abi.GNTST_no_space {
			t.Fatalf("op %d element %d: status %d", op, i/size, st)
		}
		// Fields the op does not write are left as the guest wrote them.
		if op == abi.GNTTABOP_copy || op == abi.GNTTABOP_swap_grant_ref {
			for j := i; j < i+size; j++ {
				if (j < i+off || j >= i+off+2) && args[j] != orig[j] {
					t.Fatalf("op %d wrote byte %d outside the status", op, j-i)
				}
			}
		}
	}
}

// fuzzGuestWrite writes a grant entry as a guest that follows
// grant_table.h's rules would: never the status bits that belong to Xen,
// and not at all while the entry is in use.
func fuzzGuestWrite(e *env, r *fuzzReader) {
	ref, flags, dom, frame, sub := uint32(r.u16()), r.u16(), r.u16(), r.u64(), r.u32()
	ref %= e.tab.NrEntries()
	if e.busy(ref) != 0 {
		return
	}
	flags &^= GTF_reading | GTF_writing
	frame %= 80 // mostly guest RAM (64 pages), sometimes not
	if dom%4 == 0 {
		dom = 0
	} else if dom%4 == 1 {
		dom = testDom
	}
	b, off := e.sharedPage(ref)
	if e.tab.Version() == 1 {
		store32(b, off+entV1Frame, uint32(frame))
	} else {
		store64(b, off+entV2Frame, frame)
		store32(b, off+entV2PageOff, sub)
	}
	store32(b, off, uint32(flags)|uint32(dom)<<16)
}
