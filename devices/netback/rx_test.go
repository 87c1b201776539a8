package netback

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/xenvmm/xenvmm/devices/tap"
	"github.com/xenvmm/xenvmm/xenabi/guestmem"
)

func TestRxPackets(t *testing.T) {
	tcp4 := ether(etherTypeIPv4, ipv4(protoTCP, tcp(fill(1000, 1), 1, 0x18)))
	udp6 := ether(etherTypeIPv6, ipv6(protoUDP, udp(fill(300, 2))))
	for _, tc := range []struct {
		name     string
		features map[string]string
		hdr      tap.VnetHdr
		frame    []byte
		flags    uint16 // of the first response
		slots    int
		wantCsum bool // the delivered frame must carry a full, valid checksum
	}{
		{name: "small", features: linuxFeatures, frame: ether(0x88b5, fill(50, 1)), slots: 1},
		{name: "exactly a page", features: linuxFeatures, frame: ether(0x88b5, fill(PageSize-14, 1)), slots: 1},
		{name: "jumbo over three slots", features: linuxFeatures, frame: ether(0x88b5, fill(9000, 2)), slots: 3},
		{
			name: "data valid", features: linuxFeatures, hdr: tap.VnetHdr{Flags: tap.VnetFlagDataValid},
			frame: withFullCsum(append([]byte(nil), tcp4...)), flags: RxfDataValidated, slots: 1,
		},
		{
			name: "partial TCPv4 to Linux", features: linuxFeatures,
			hdr:   tap.VnetHdr{Flags: tap.VnetFlagNeedsCsum, CsumStart: 34, CsumOffset: 16},
			frame: withPartialCsum(append([]byte(nil), tcp4...)), flags: RxfCsumBlank | RxfDataValidated, slots: 1,
		},
		{
			name: "partial TCPv4 to NetBSD 5.1 (csum offload assumed)", features: netbsd51Features,
			hdr:   tap.VnetHdr{Flags: tap.VnetFlagNeedsCsum, CsumStart: 34, CsumOffset: 16},
			frame: withPartialCsum(append([]byte(nil), tcp4...)), flags: RxfCsumBlank | RxfDataValidated, slots: 1,
		},
		{
			name: "partial TCPv4 to feature-no-csum-offload", features: map[string]string{"feature-rx-notify": "1", "feature-no-csum-offload": "1"},
			hdr:   tap.VnetHdr{Flags: tap.VnetFlagNeedsCsum, CsumStart: 34, CsumOffset: 16},
			frame: withPartialCsum(append([]byte(nil), tcp4...)), flags: RxfDataValidated, slots: 1, wantCsum: true,
		},
		{
			name: "partial UDPv6 to Linux", features: linuxFeatures,
			hdr:   tap.VnetHdr{Flags: tap.VnetFlagNeedsCsum, CsumStart: 54, CsumOffset: 6},
			frame: withPartialCsum(append([]byte(nil), udp6...)), flags: RxfCsumBlank | RxfDataValidated, slots: 1,
		},
		{
			name: "partial UDPv6 without ipv6 csum offload", features: netbsd51Features,
			hdr:   tap.VnetHdr{Flags: tap.VnetFlagNeedsCsum, CsumStart: 54, CsumOffset: 6},
			frame: withPartialCsum(append([]byte(nil), udp6...)), flags: RxfDataValidated, slots: 1, wantCsum: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nf := newNetfront(t, tc.features)
			v, link := testVif(t, nf, Options{})
			nf.postRx(8)
			link.in <- vnet(tc.hdr, tc.frame)
			p := nf.rxPackets(1)[0]
			if p.flags&^RxfMoreData != tc.flags || p.slots != tc.slots || p.gso != nil {
				t.Errorf("flags %#x slots %d gso %v; want flags %#x, %d slots", p.flags, p.slots, p.gso, tc.flags, tc.slots)
			}
			if tc.wantCsum {
				if err := csumOK(p.data); err != nil {
					t.Errorf("delivered frame: %v", err)
				}
				want := withFullCsum(append([]byte(nil), tc.frame...))
				if !bytes.Equal(p.data, want) {
					t.Errorf("frame differs from the checksummed one")
				}
			} else if !bytes.Equal(p.data, tc.frame) {
				t.Errorf("frame differs:\n got % x\nwant % x", p.data, tc.frame)
			}
			for i, s := range p.status {
				if s <= 0 || (i < len(p.status)-1 && s != PageSize) {
					t.Errorf("slot %d status %d", i, s)
				}
			}
			if st := v.Stats(); st.RxPackets != 1 || st.RxBytes != uint64(len(tc.frame)) {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

// TestRxSameSlot: each response is in its request's slot, the ids echo
// the requests', offsets are 0 (NetBSD's xennet ignores the offset).
func TestRxSameSlot(t *testing.T) {
	nf := newNetfront(t, linuxFeatures)
	_, link := testVif(t, nf, Options{})
	nf.postRx(6)
	link.in <- vnet(tap.VnetHdr{}, ether(0x88b5, fill(9000, 1)))
	link.in <- vnet(tap.VnetHdr{}, ether(0x88b5, fill(100, 2)))
	nf.rxPackets(2)
	page := nf.g.page(nf.rxRef)
	for i := range 4 {
		r := DecodeRxResponse(page[64+8*i:])
		if r.ID != uint16(i) || r.Offset != 0 {
			t.Errorf("slot %d: %+v", i, r)
		}
	}
}

func gsoFrame(v6 bool, payload int) []byte {
	if v6 {
		return withPartialCsum(ether(etherTypeIPv6, ipv6(protoTCP, tcp(fill(payload, 3), 1000, 0x19))))
	}
	return withPartialCsum(ether(etherTypeIPv4, ipv4(protoTCP, tcp(fill(payload, 3), 1000, 0x19))))
}

func TestRxGSO(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		nf := newNetfront(t, linuxFeatures)
		v, link := testVif(t, nf, Options{})
		nf.postRx(64)
		f := gsoFrame(v6, 30000)
		hdr := tap.VnetHdr{Flags: tap.VnetFlagNeedsCsum, GSOType: tap.VnetGSOTCPv4, GSOSize: 1448, HdrLen: 54, CsumStart: 34, CsumOffset: 16}
		typ := uint8(GSOTypeTCPv4)
		if v6 {
			hdr.GSOType, hdr.HdrLen, hdr.CsumStart, typ = tap.VnetGSOTCPv6, 74, 54, GSOTypeTCPv6
		}
		link.in <- vnet(hdr, f)
		p := nf.rxPackets(1)[0]
		if p.flags != RxfCsumBlank|RxfDataValidated|RxfExtraInfo|RxfMoreData {
			t.Errorf("v6=%v: flags %#x", v6, p.flags)
		}
		if p.gso == nil {
			t.Fatalf("v6=%v: no GSO extra info", v6)
		}
		if size, gt, _ := p.gso.GSO(); p.gso.Type != ExtraTypeGSO || size != 1448 || gt != typ {
			t.Errorf("v6=%v: extra %+v", v6, *p.gso)
		}
		if !bytes.Equal(p.data, f) || p.slots != (len(f)+PageSize-1)/PageSize+1 {
			t.Errorf("v6=%v: %d bytes in %d slots", v6, len(p.data), p.slots)
		}
		if st := v.Stats(); st.RxPackets != 1 {
			t.Errorf("stats %+v", st)
		}
	}
}

// TestRxGSOSegmented: a TSO frame for a frontend without GSO (NetBSD) is
// cut into MSS-sized frames with valid checksums.
func TestRxGSOSegmented(t *testing.T) {
	for _, tc := range []struct {
		name     string
		features map[string]string
		v6       bool
	}{
		{"NetBSD 5.1", netbsd51Features, false},
		{"Linux without feature-gso-tcpv6", map[string]string{"feature-rx-notify": "1", "feature-sg": "1", "feature-gso-tcpv4": "1", "feature-ipv6-csum-offload": "1"}, true},
		{"Linux without feature-sg", map[string]string{"feature-rx-notify": "1", "feature-gso-tcpv4": "1"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nf := newNetfront(t, tc.features)
			v, link := testVif(t, nf, Options{})
			nf.postRx(200)
			const payload, mss = 20000, 1448
			f := gsoFrame(tc.v6, payload)
			hdr := tap.VnetHdr{Flags: tap.VnetFlagNeedsCsum, GSOType: tap.VnetGSOTCPv4, GSOSize: mss, HdrLen: 54, CsumStart: 34, CsumOffset: 16}
			hl := 54
			if tc.v6 {
				hdr.GSOType, hdr.HdrLen, hdr.CsumStart, hl = tap.VnetGSOTCPv6, 74, 54, 74
			}
			link.in <- vnet(hdr, f)
			n := (payload + mss - 1) / mss
			pkts := nf.rxPackets(n)
			var data []byte
			for i, p := range pkts {
				if err := csumOK(p.data); err != nil {
					t.Fatalf("segment %d: %v", i, err)
				}
				if p.flags != RxfDataValidated || p.gso != nil {
					t.Errorf("segment %d: flags %#x", i, p.flags)
				}
				h, _ := parseHeaders(p.data)
				if seq := binary.BigEndian.Uint32(p.data[h.l4+4:]); seq != 1000+uint32(len(data)) {
					t.Errorf("segment %d: seq %d", i, seq)
				}
				fl := p.data[h.l4+13]
				if last := i == n-1; (fl&0x09 != 0) != last { // FIN|PSH only on the last
					t.Errorf("segment %d: flags %#x", i, fl)
				}
				data = append(data, p.data[hl:]...)
			}
			if !bytes.Equal(data, f[hl:]) {
				t.Errorf("reassembled payload differs")
			}
			if st := v.Stats(); st.RxPackets != uint64(n) {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

// TestRxNoSG: a frame larger than a page cannot go to a frontend without
// feature-sg; it is dropped and the next one passes.
func TestRxNoSG(t *testing.T) {
	nf := newNetfront(t, netbsd51Features)
	v, link := testVif(t, nf, Options{})
	nf.postRx(4)
	link.in <- vnet(tap.VnetHdr{}, ether(0x88b5, fill(5000, 1)))
	link.in <- vnet(tap.VnetHdr{}, ether(0x88b5, fill(1500, 2)))
	p := nf.rxPackets(1)[0]
	if !bytes.Equal(p.data, ether(0x88b5, fill(1500, 2))) {
		t.Errorf("got %d bytes", len(p.data))
	}
	if st := v.Stats(); st.RxDropped != 1 || st.RxPackets != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestRxWaitsForBuffers: frames arriving before the guest posts buffers
// wait for them, with (kick) and without (poll) feature-rx-notify.
func TestRxWaitsForBuffers(t *testing.T) {
	for _, notify := range []string{"1", ""} {
		nf := newNetfront(t, map[string]string{"feature-rx-notify": notify, "feature-sg": "1"})
		_, link := testVif(t, nf, Options{})
		for i := range 5 {
			link.in <- vnet(tap.VnetHdr{}, ether(0x88b5, fill(5000, byte(i))))
		}
		time.Sleep(30 * time.Millisecond)
		nf.postRx(1) // not enough for one frame
		time.Sleep(30 * time.Millisecond)
		if n, _ := nf.rx.Pending(); n != 0 {
			t.Fatalf("notify=%q: %d responses before a frame's buffers were posted", notify, n)
		}
		nf.postRx(9)
		pkts := nf.rxPackets(5)
		for i, p := range pkts {
			if !bytes.Equal(p.data, ether(0x88b5, fill(5000, byte(i)))) {
				t.Errorf("notify=%q: frame %d differs", notify, i)
			}
		}
	}
}

// TestRxMalformedRequests: a posted buffer with a bad grant, or an id
// still in flight, is answered NETIF_RSP_ERROR; delivery goes on.
func TestRxMalformedRequests(t *testing.T) {
	nf := newNetfront(t, linuxFeatures)
	v, link := testVif(t, nf, Options{})
	post := func(id uint16, ref uint32) {
		RxRequest{ID: id, Gref: ref}.Encode(nf.rx.RequestSlot())
		nf.rxBuf[id] = ref
	}
	ok1, _ := nf.g.grant(false)
	ro, _ := nf.g.grant(true)
	ok2, _ := nf.g.grant(false)
	ok3, _ := nf.g.grant(false)
	ok4, _ := nf.g.grant(false)
	post(1, ok1)
	post(2, 9999) // no such grant
	post(3, ro)   // read-only grant
	post(4, ok2)
	post(4, ok3) // id 4 again while the first is in flight
	post(5, ok4)
	nf.rx.PushRequests()
	nf.kickRx()
	for i := range 5 {
		link.in <- vnet(tap.VnetHdr{}, ether(0x88b5, fill(100, byte(i))))
	}
	pkts := nf.rxPackets(5)
	want := []int16{114, RspError, RspError, 114, RspError}
	for i, p := range pkts {
		if p.status[0] != want[i] {
			t.Errorf("packet %d: status %v, want %d", i, p.status, want[i])
		}
	}
	link.in <- vnet(tap.VnetHdr{}, ether(0x88b5, fill(100, 9)))
	if p := nf.rxPackets(1)[0]; !bytes.Equal(p.data, ether(0x88b5, fill(100, 9))) {
		t.Errorf("last frame differs")
	}
	if st := v.Stats(); st.RxErrors != 3 || st.RxPackets != 3 {
		t.Errorf("stats %+v", st)
	}
}

// TestBrokenRingIsolated: a guest that publishes an impossible req_prod
// on one vif stops that vif's queue; another vif of the same guest keeps
// working, and nothing panics.
func TestBrokenRingIsolated(t *testing.T) {
	bad := newNetfront(t, linuxFeatures)
	good := newNetfront(t, linuxFeatures)
	vbad, badLink := testVif(t, bad, Options{})
	_, goodLink := testVif(t, good, Options{Index: 1})

	// req_prod far beyond what a ring of 256 can hold, on both rings.
	guestmem.Store32(bad.g.page(bad.txRef), 0, 5000)
	guestmem.Store32(bad.g.page(bad.rxRef), 0, 5000)
	bad.kick()
	badLink.in <- vnet(tap.VnetHdr{}, ether(0x88b5, fill(60, 1)))

	good.postRx(4)
	good.sendTx([]txFrag{{data: ether(0x88b5, fill(60, 2)), id: 1}}, nil, true)
	goodLink.in <- vnet(tap.VnetHdr{}, ether(0x88b5, fill(60, 3)))
	good.txResponses(1)
	goodLink.written(t, 1)
	if p := good.rxPackets(1)[0]; !bytes.Equal(p.data, ether(0x88b5, fill(60, 3))) {
		t.Error("good vif's RX frame differs")
	}
	deadline := time.Now().Add(2 * time.Second)
	for vbad.Stats().RxDropped == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if st := vbad.Stats(); st.RxDropped == 0 || st.TxPackets != 0 {
		t.Errorf("broken vif stats %+v", st)
	}
	if err := vbad.Disconnect(); err != nil {
		t.Errorf("Disconnect of the broken vif: %v", err)
	}
}

func TestFlowHash(t *testing.T) {
	a := ether(etherTypeIPv4, ipv4(protoTCP, tcp(fill(10, 1), 1, 0)))
	b := ether(etherTypeIPv4, ipv4(protoTCP, tcp(fill(500, 9), 99, 0)))
	if flowHash(a) != flowHash(b) {
		t.Error("one flow hashed to two values")
	}
	c := append([]byte(nil), a...)
	c[14+20+1]++ // another source port
	if flowHash(a) == flowHash(c) {
		t.Error("two flows hashed alike (unlucky, or ports ignored)")
	}
	if flowHash(ether(0x0806, fill(28, 0))) != 0 || flowHash([]byte{1, 2}) != 0 {
		t.Error("non-IP frames should hash to 0")
	}
}
