package netback

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/xenvmm/xenvmm/devices/tap"
)

func ptr[T any](v T) *T { return &v }

// split cuts f into fragments at the given sizes (the rest is the last).
func split(f []byte, sizes ...int) []txFrag {
	var out []txFrag
	for _, n := range sizes {
		out = append(out, txFrag{data: f[:n]})
		f = f[n:]
	}
	return append(out, txFrag{data: f})
}

func csumBlank(frags []txFrag) []txFrag {
	frags[0].flags |= TxfCsumBlank
	return frags
}

func withIDs(frags []txFrag, first uint16) []txFrag {
	for i := range frags {
		frags[i].id = first + uint16(i)
	}
	return frags
}

func TestTxPackets(t *testing.T) {
	tcp4 := ether(etherTypeIPv4, ipv4(protoTCP, tcp(fill(1000, 1), 1, 0x18)))
	udp6 := ether(etherTypeIPv6, ipv6(protoUDP, udp(fill(300, 2))))
	big := ether(etherTypeIPv4, ipv4(protoTCP, tcp(fill(20000, 3), 77, 0x10)))
	vlan := append(append(append([]byte(nil), tcp4[:12]...), 0x81, 0x00, 0x00, 0x05), tcp4[12:]...)
	for _, tc := range []struct {
		name   string
		frags  []txFrag
		extras []ExtraInfo
		frame  []byte
		hdr    tap.VnetHdr
		check  func(t *testing.T, f []byte)
	}{
		{
			name:  "one slot",
			frags: []txFrag{{data: ether(0x88b5, fill(46, 9)), id: 3}},
			frame: ether(0x88b5, fill(46, 9)),
		},
		{
			name:  "one slot at an offset",
			frags: []txFrag{{data: ether(0x88b5, fill(100, 9)), offset: 4000 - 114, id: 3}},
			frame: ether(0x88b5, fill(100, 9)),
		},
		{
			name:  "three slots",
			frags: withIDs(split(ether(0x88b5, fill(3000, 4)), 1000, 1500), 10),
			frame: ether(0x88b5, fill(3000, 4)),
		},
		{
			name:  "zero-length middle fragment",
			frags: withIDs(split(ether(0x88b5, fill(600, 4)), 100, 0), 20),
			frame: ether(0x88b5, fill(600, 4)),
		},
		{
			name:  "TCPv4 csum_blank",
			frags: []txFrag{{data: withPartialCsum(append([]byte(nil), tcp4...)), flags: TxfCsumBlank | TxfDataValidated, id: 1}},
			frame: withPartialCsum(append([]byte(nil), tcp4...)),
			hdr:   tap.VnetHdr{Flags: tap.VnetFlagNeedsCsum, CsumStart: 34, CsumOffset: 16},
		},
		{
			name:  "UDPv6 csum_blank over two slots",
			frags: csumBlank(withIDs(split(withPartialCsum(append([]byte(nil), udp6...)), 30), 5)),
			frame: withPartialCsum(append([]byte(nil), udp6...)),
			hdr:   tap.VnetHdr{Flags: tap.VnetFlagNeedsCsum, CsumStart: 54, CsumOffset: 6},
		},
		{
			name:  "VLAN-tagged csum_blank",
			frags: []txFrag{{data: vlan, flags: TxfCsumBlank, id: 1}},
			frame: vlan,
			hdr:   tap.VnetHdr{Flags: tap.VnetFlagNeedsCsum, CsumStart: 38, CsumOffset: 16},
		},
		{
			name:   "TCPv4 GSO",
			frags:  withIDs(split(withPartialCsum(append([]byte(nil), big...)), 54, 4096, 4096, 4096, 4096), 100),
			extras: []ExtraInfo{GSOExtra(1448, GSOTypeTCPv4, 0)},
			frame:  withPartialCsum(append([]byte(nil), big...)),
			hdr:    tap.VnetHdr{Flags: tap.VnetFlagNeedsCsum, GSOType: tap.VnetGSOTCPv4, GSOSize: 1448, HdrLen: 54, CsumStart: 34, CsumOffset: 16},
		},
		{
			// A GSO frame without csum_blank gets its pseudo-header
			// checksum put in (Linux netback's checksum_setup).
			name:   "TCPv6 GSO without csum_blank",
			frags:  withIDs(split(ether(etherTypeIPv6, ipv6(protoTCP, tcp(fill(9000, 5), 9, 0x10))), 4000, 4000), 200),
			extras: []ExtraInfo{GSOExtra(1400, GSOTypeTCPv6, 0)},
			frame:  withPartialCsum(ether(etherTypeIPv6, ipv6(protoTCP, tcp(fill(9000, 5), 9, 0x10)))),
			hdr:    tap.VnetHdr{Flags: tap.VnetFlagNeedsCsum, GSOType: tap.VnetGSOTCPv6, GSOSize: 1400, HdrLen: 74, CsumStart: 54, CsumOffset: 16},
		},
		{
			// Extra types netback does not use (hash) are skipped.
			name:   "GSO and hash extras",
			frags:  []txFrag{{data: withPartialCsum(append([]byte(nil), tcp4...)), flags: TxfCsumBlank, id: 1}},
			extras: []ExtraInfo{{Type: ExtraTypeHash}, GSOExtra(500, GSOTypeTCPv4, 0)},
			frame:  withPartialCsum(append([]byte(nil), tcp4...)),
			hdr:    tap.VnetHdr{Flags: tap.VnetFlagNeedsCsum, GSOType: tap.VnetGSOTCPv4, GSOSize: 500, HdrLen: 54, CsumStart: 34, CsumOffset: 16},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nf := newNetfront(t, linuxFeatures)
			v, link := testVif(t, nf, Options{})
			nf.sendTx(tc.frags, tc.extras, true)
			out := link.written(t, 1)[0]
			hdr, err := tap.DecodeVnetHdr(out)
			if err != nil || hdr != tc.hdr {
				t.Errorf("virtio_net_hdr %+v (%v), want %+v", hdr, err, tc.hdr)
			}
			if !bytes.Equal(out[tap.VnetHdrLen:], tc.frame) {
				t.Errorf("frame differs:\n got % x\nwant % x", out[tap.VnetHdrLen:], tc.frame)
			}
			rsp := nf.txResponses(len(tc.frags) + len(tc.extras))
			var want []TxResponse
			for i, f := range tc.frags {
				want = append(want, TxResponse{ID: f.id})
				if i == 0 {
					for range tc.extras {
						want = append(want, TxResponse{Status: RspNull})
					}
				}
			}
			if !equalTx(rsp, want) {
				t.Errorf("responses %v, want %v", rsp, want)
			}
			st := v.Stats()
			if st.TxPackets != 1 || st.TxBytes != uint64(len(tc.frame)) || st.TxErrors != 0 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

func equalTx(a, b []TxResponse) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestTxMalformed sends one bad packet between two good ones: the bad one
// is answered NETIF_RSP_ERROR (NETIF_RSP_NULL for its extra slots) and
// not transmitted; the good ones pass.
func TestTxMalformed(t *testing.T) {
	good := func(id uint16) []txFrag { return []txFrag{{data: ether(0x88b5, fill(60, byte(id))), id: id}} }
	arp := ether(0x0806, fill(28, 1))
	udp4 := ether(etherTypeIPv4, ipv4(protoUDP, udp(fill(100, 1))))
	frag4 := ether(etherTypeIPv4, ipv4(protoUDP, udp(fill(100, 1))))
	frag4[14+6] = 0x20 // more fragments
	for _, tc := range []struct {
		name    string
		frags   []txFrag
		extras  []ExtraInfo
		slots   int // slots the bad packet takes (responses expected)
		nullFor int // how many of them are extra-info slots
		push    bool
	}{
		{name: "unknown grant", frags: []txFrag{{data: fill(60, 1), id: 50, gref: ptr(uint32(9999))}}, slots: 1},
		{name: "bad grant in the second slot", frags: []txFrag{{data: fill(60, 1), id: 50}, {data: fill(60, 1), id: 51, gref: ptr(uint32(9999))}}, slots: 2},
		{name: "offset+size beyond the page", frags: []txFrag{{data: fill(200, 1), offset: 3950, id: 50}}, slots: 1},
		{name: "fragment crosses the page", frags: []txFrag{{data: fill(60, 1), id: 50}, {data: fill(100, 1), offset: 4000, id: 51}}, slots: 2},
		{name: "fragments larger than the packet", frags: []txFrag{{data: fill(60, 1), id: 50, size: ptr(100)}, {data: fill(200, 1), id: 51}}, slots: 2},
		{name: "runt", frags: []txFrag{{data: fill(10, 1), id: 50}}, slots: 1},
		{name: "zero size", frags: []txFrag{{data: nil, id: 50}}, slots: 1},
		{name: "id repeated in the packet", frags: []txFrag{{data: fill(60, 1), id: 50}, {data: fill(60, 1), id: 50}}, slots: 2},
		{name: "id of the good packet before it", frags: []txFrag{{data: fill(60, 1), id: 1}}, slots: 1},
		{name: "extra type 0", frags: []txFrag{{data: fill(60, 1), id: 50}}, extras: []ExtraInfo{{Type: ExtraTypeNone}}, slots: 2, nullFor: 1},
		{name: "extra type beyond max", frags: []txFrag{{data: fill(60, 1), id: 50}}, extras: []ExtraInfo{{Type: 9}}, slots: 2, nullFor: 1},
		{name: "GSO size 0", frags: []txFrag{{data: udp4, id: 50, flags: TxfCsumBlank}}, extras: []ExtraInfo{GSOExtra(0, GSOTypeTCPv4, 0)}, slots: 2, nullFor: 1},
		{name: "GSO type 3", frags: []txFrag{{data: udp4, id: 50, flags: TxfCsumBlank}}, extras: []ExtraInfo{GSOExtra(1000, 3, 0)}, slots: 2, nullFor: 1},
		{name: "TCPv4 GSO on UDP", frags: []txFrag{{data: udp4, id: 50, flags: TxfCsumBlank}}, extras: []ExtraInfo{GSOExtra(1000, GSOTypeTCPv4, 0)}, slots: 2, nullFor: 1},
		{name: "TCPv6 GSO on IPv4", frags: []txFrag{{data: ether(etherTypeIPv4, ipv4(protoTCP, tcp(fill(100, 1), 0, 0))), id: 50}}, extras: []ExtraInfo{GSOExtra(1000, GSOTypeTCPv6, 0)}, slots: 2, nullFor: 1},
		{name: "csum_blank on ARP", frags: []txFrag{{data: arp, id: 50, flags: TxfCsumBlank}}, slots: 1},
		{name: "csum_blank on a fragment", frags: []txFrag{{data: frag4, id: 50, flags: TxfCsumBlank}}, slots: 1},
		{name: "five extras", frags: []txFrag{{data: fill(60, 1), id: 50}}, extras: []ExtraInfo{{Type: ExtraTypeHash}, {Type: ExtraTypeHash}, {Type: ExtraTypeHash}, {Type: ExtraTypeHash}, {Type: ExtraTypeHash}}, slots: 5, nullFor: 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nf := newNetfront(t, linuxFeatures)
			v, link := testVif(t, nf, Options{})
			nf.sendTx(good(1), nil, false)
			nf.sendTx(tc.frags, tc.extras, false)
			// The five-extras case reads four extras, then treats the
			// fifth as the start of the next packet: a zero-size
			// request with id 0 (its bytes), itself malformed.
			extraBad := 0
			if tc.name == "five extras" {
				extraBad = 1
			}
			nf.sendTx(good(2), nil, true)
			rsp := nf.txResponses(1 + tc.slots + extraBad + 1)
			if rsp[0] != (TxResponse{ID: 1}) || rsp[len(rsp)-1] != (TxResponse{ID: 2}) {
				t.Errorf("good packets answered %v, %v", rsp[0], rsp[len(rsp)-1])
			}
			nulls := 0
			for _, r := range rsp[1 : len(rsp)-1] {
				switch r.Status {
				case RspNull:
					nulls++
				case RspError:
				default:
					t.Errorf("bad packet's slot answered %v", r)
				}
			}
			if nulls != tc.nullFor {
				t.Errorf("%d NETIF_RSP_NULL responses, want %d: %v", nulls, tc.nullFor, rsp)
			}
			out := link.written(t, 2)
			if len(out) != 2 || !bytes.Equal(out[0][tap.VnetHdrLen:], good(1)[0].data) || !bytes.Equal(out[1][tap.VnetHdrLen:], good(2)[0].data) {
				t.Errorf("link got %d frames, want the two good ones", len(out))
			}
			if st := v.Stats(); st.TxPackets != 2 || st.TxErrors != uint64(1+extraBad) {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

// TestTxRunawayChain: more_data chains longer than MaxTxSlots, or running
// past req_prod, are refused slot by slot without stalling the ring.
func TestTxRunawayChain(t *testing.T) {
	nf := newNetfront(t, linuxFeatures)
	v, link := testVif(t, nf, Options{})
	// 130 slots all with more_data: two chains of MaxTxSlots, then one
	// that runs into req_prod.
	for i := range 130 {
		ref, _ := nf.g.grant(true)
		TxRequest{Gref: ref, Flags: TxfMoreData, ID: uint16(i), Size: 100}.Encode(nf.tx.RequestSlot())
	}
	nf.pushTx()
	rsp := nf.txResponses(130)
	for i, r := range rsp {
		if r.Status != RspError || r.ID != uint16(i) {
			t.Fatalf("response %d = %v, want error for id %d", i, r, i)
		}
	}
	if st := v.Stats(); st.TxErrors != 3 {
		t.Errorf("TxErrors = %d, want 3", st.TxErrors)
	}
	// The ring still works.
	nf.sendTx([]txFrag{{data: ether(0x88b5, fill(60, 1)), id: 7}}, nil, true)
	if r := nf.txResponses(1); r[0] != (TxResponse{ID: 7}) {
		t.Errorf("next packet answered %v", r)
	}
	link.written(t, 1)
}

// TestTxMulticastExtra: a multicast filter update is answered OKAY and
// not transmitted.
func TestTxMulticastExtra(t *testing.T) {
	nf := newNetfront(t, linuxFeatures)
	_, link := testVif(t, nf, Options{})
	x := ExtraInfo{Type: ExtraTypeMcastAdd}
	copy(x.Data[:], []byte{0x01, 0x00, 0x5e, 0, 0, 1})
	nf.sendTx([]txFrag{{data: fill(20, 0), id: 4}}, []ExtraInfo{x}, true)
	if r := nf.txResponses(2); r[0] != (TxResponse{ID: 4}) || r[1].Status != RspNull {
		t.Errorf("responses %v", r)
	}
	nf.sendTx([]txFrag{{data: ether(0x88b5, fill(60, 1)), id: 5}}, nil, true)
	nf.txResponses(1)
	if n := len(link.written(t, 1)); n != 1 {
		t.Errorf("%d frames written, want only the packet", n)
	}
}

// TestTxBatching: many packets per notification are written in batches,
// in order, and every response is there.
func TestTxBatching(t *testing.T) {
	nf := newNetfront(t, linuxFeatures)
	_, link := testVif(t, nf, Options{})
	const n = 1000
	sent := 0
	var got []TxResponse
	for sent < n {
		for sent < n && nf.tx.Free() > 0 {
			f := ether(0x88b5, fill(100+sent%1000, byte(sent)))
			binary.BigEndian.PutUint32(f[14:], uint32(sent))
			nf.sendTx([]txFrag{{data: f, id: uint16(sent % 256)}}, nil, false)
			sent++
		}
		nf.pushTx()
		got = append(got, nf.txResponses(int(nf.tx.Outstanding()))...)
	}
	if len(got) != n {
		t.Fatalf("%d responses", len(got))
	}
	out := link.written(t, n)
	for i, f := range out {
		if binary.BigEndian.Uint32(f[tap.VnetHdrLen+14:]) != uint32(i) || len(f) != tap.VnetHdrLen+14+100+i%1000 {
			t.Fatalf("frame %d out of order or wrong size", i)
		}
	}
}

// TestTxLinkRefuses: a frame the link refuses is counted; the rest of
// the batch goes out.
func TestTxLinkRefuses(t *testing.T) {
	nf := newNetfront(t, linuxFeatures)
	v, link := testVif(t, nf, Options{})
	link.failAt = 2
	for i := range 3 {
		nf.sendTx([]txFrag{{data: ether(0x88b5, fill(60, byte(i))), id: uint16(i)}}, nil, false)
	}
	nf.pushTx()
	nf.txResponses(3)
	out := link.written(t, 2)
	if len(out) != 2 || out[1][tap.VnetHdrLen+14] != fill(60, 2)[0] {
		t.Errorf("written %d frames", len(out))
	}
	if st := v.Stats(); st.TxDropped != 1 || st.TxPackets != 3 {
		t.Errorf("stats %+v", st)
	}
}
