package netback

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"
)

// refSum is RFC 1071's checksum loop, 16 bits at a time.
func refSum(b []byte) uint16 {
	var s uint32
	for len(b) >= 2 {
		s += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

func TestCsumAdd(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := range 200 {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		if got, want := csumFold(csumAdd(0, b)), refSum(b); got != want {
			t.Fatalf("len %d: %#x, want %#x", n, got, want)
		}
		// All ones (the carry path).
		for i := range b {
			b[i] = 0xff
		}
		if got, want := csumFold(csumAdd(0, b)), refSum(b); got != want {
			t.Fatalf("len %d of 0xff: %#x, want %#x", n, got, want)
		}
	}
	// Carries accumulate across calls and words.
	if got := csumFold(csumAddWord(csumAdd(0, bytes.Repeat([]byte{0xff}, 64)), 0xffffffffffffffff)); got != 0xffff {
		t.Errorf("carry chain: %#x", got)
	}
}

func TestParseHeaders(t *testing.T) {
	tcp4 := ether(etherTypeIPv4, ipv4(protoTCP, tcp(fill(10, 1), 1, 0)))
	ext := func(next uint8, hdrs ...[]byte) []byte {
		var out []byte
		for _, h := range hdrs {
			out = append(out, h...)
		}
		return out
	}
	hopByHop := func(next uint8) []byte { return []byte{next, 0, 1, 4, 0, 0, 0, 0} }
	frag6 := func(next uint8, off uint16) []byte {
		b := []byte{next, 0, 0, 0, 0, 0, 0, 1}
		binary.BigEndian.PutUint16(b[2:], off)
		return b
	}
	v6ext := func(first uint8, hdrs []byte, l4 []byte) []byte {
		p := ipv6(first, append(append([]byte(nil), hdrs...), l4...))
		return ether(etherTypeIPv6, p)
	}
	short := append([]byte(nil), tcp4[:40]...)
	badIHL := append([]byte(nil), tcp4...)
	badIHL[14] = 0x44
	frag := append([]byte(nil), tcp4...)
	frag[14+7] = 1 // fragment offset 8
	qinq := append(append(append([]byte(nil), tcp4[:12]...), 0x88, 0xa8, 0, 1, 0x81, 0x00, 0, 2), tcp4[12:]...)
	for _, tc := range []struct {
		name  string
		f     []byte
		l4    int
		proto uint8
		v6    bool
		err   bool
	}{
		{name: "TCPv4", f: tcp4, l4: 34, proto: protoTCP},
		{name: "UDPv4 with options", f: func() []byte {
			p := ipv4(protoUDP, udp(fill(5, 1)))
			p = append(append(append([]byte(nil), p[:20]...), 1, 1, 1, 0), p[20:]...)
			p[0] = 0x46
			binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
			return ether(etherTypeIPv4, p)
		}(), l4: 38, proto: protoUDP},
		{name: "QinQ", f: qinq, l4: 42, proto: protoTCP},
		{name: "TCPv6", f: ether(etherTypeIPv6, ipv6(protoTCP, tcp(nil, 1, 0))), l4: 54, proto: protoTCP, v6: true},
		{name: "IPv6 hop-by-hop then UDP", f: v6ext(0, hopByHop(protoUDP), udp(fill(3, 1))), l4: 62, proto: protoUDP, v6: true},
		{name: "IPv6 atomic fragment", f: v6ext(44, ext(0, frag6(protoTCP, 0)), tcp(nil, 0, 0)), l4: 62, proto: protoTCP, v6: true},
		{name: "IPv6 fragment", f: v6ext(44, frag6(protoTCP, 8), tcp(nil, 0, 0)), err: true},
		{name: "IPv6 ICMP", f: ether(etherTypeIPv6, ipv6(58, fill(8, 0))), err: true},
		{name: "IPv6 extension beyond the payload", f: v6ext(0, []byte{protoTCP, 200, 0, 0, 0, 0, 0, 0}, tcp(nil, 0, 0)), err: true},
		{name: "truncated", f: short, err: true},
		{name: "bad IHL", f: badIHL, err: true},
		{name: "IPv4 fragment", f: frag, err: true},
		{name: "ARP", f: ether(0x0806, fill(28, 0)), err: true},
		{name: "runt", f: tcp4[:13], err: true},
		{name: "TCP data offset too big", f: func() []byte {
			f := append([]byte(nil), tcp4...)
			f[34+12] = 0xf0
			return f
		}(), err: true},
	} {
		h, err := parseHeaders(tc.f)
		if tc.err {
			if !errors.Is(err, ErrUnparsable) {
				t.Errorf("%s: %+v, %v; want ErrUnparsable", tc.name, h, err)
			}
			continue
		}
		if err != nil || h.l4 != tc.l4 || h.proto != tc.proto || h.ipv6 != tc.v6 {
			t.Errorf("%s: %+v, %v; want l4 %d proto %d v6 %v", tc.name, h, err, tc.l4, tc.proto, tc.v6)
		}
	}
}

func TestCompleteCsum(t *testing.T) {
	for _, f := range [][]byte{
		ether(etherTypeIPv4, ipv4(protoTCP, tcp(fill(999, 1), 5, 0x10))),
		ether(etherTypeIPv6, ipv6(protoUDP, udp(fill(77, 2)))),
	} {
		p := withPartialCsum(f)
		h, _ := parseHeaders(p)
		if err := completeCsum(p, h.l4, h.csumOffset()); err != nil {
			t.Fatal(err)
		}
		if err := csumOK(p); err != nil {
			t.Error(err)
		}
	}
	if err := completeCsum(make([]byte, 20), 10, 9); err == nil {
		t.Error("checksum beyond the frame accepted")
	}
	// A UDP checksum of zero is sent as 0xffff.
	f := make([]byte, 8)
	binary.BigEndian.PutUint16(f[0:], 0xffff)
	if err := completeCsum(f, 0, 6); err != nil || binary.BigEndian.Uint16(f[6:]) != 0xffff {
		t.Errorf("zero UDP checksum: % x", f)
	}
}

func TestSegmentTCP(t *testing.T) {
	for _, tc := range []struct {
		name    string
		f       []byte
		mss     int
		n       int
		wantErr bool
	}{
		{"IPv4", ether(etherTypeIPv4, ipv4(protoTCP, tcp(fill(10000, 1), 0xfffff000, 0x99))), 1448, 7, false},
		{"IPv6", ether(etherTypeIPv6, ipv6(protoTCP, tcp(fill(3000, 1), 7, 0x18))), 1000, 3, false},
		{"payload of one segment", ether(etherTypeIPv4, ipv4(protoTCP, tcp(fill(100, 1), 7, 0x18))), 1000, 1, false},
		{"no payload", ether(etherTypeIPv4, ipv4(protoTCP, tcp(nil, 7, 0x11))), 1000, 1, false},
		{"UDP", ether(etherTypeIPv4, ipv4(protoUDP, udp(fill(3000, 1)))), 1000, 0, true},
		{"mss 0", ether(etherTypeIPv4, ipv4(protoTCP, tcp(fill(100, 1), 7, 0))), 0, 0, true},
	} {
		var segs [][]byte
		err := segmentTCP(tc.f, tc.mss, make([]byte, maxFrame), func(s []byte) error {
			segs = append(segs, append([]byte(nil), s...))
			return nil
		})
		if tc.wantErr {
			if err == nil {
				t.Errorf("%s: no error", tc.name)
			}
			continue
		}
		if err != nil || len(segs) != tc.n {
			t.Fatalf("%s: %d segments, %v; want %d", tc.name, len(segs), err, tc.n)
		}
		h, _ := parseHeaders(tc.f)
		hl := h.l4 + h.tcpHeaderLen(tc.f)
		seq0 := binary.BigEndian.Uint32(tc.f[h.l4+4:])
		var payload []byte
		for i, s := range segs {
			if err := csumOK(s); err != nil {
				t.Errorf("%s: segment %d: %v", tc.name, i, err)
			}
			if len(s)-hl > tc.mss {
				t.Errorf("%s: segment %d carries %d bytes", tc.name, i, len(s)-hl)
			}
			if seq := binary.BigEndian.Uint32(s[h.l4+4:]); seq != seq0+uint32(len(payload)) {
				t.Errorf("%s: segment %d seq %#x", tc.name, i, seq)
			}
			fl, orig := s[h.l4+13], tc.f[h.l4+13]
			want := orig
			if i < len(segs)-1 {
				want &^= 0x09
			}
			if i > 0 {
				want &^= 0x80
			}
			if fl != want {
				t.Errorf("%s: segment %d flags %#x, want %#x", tc.name, i, fl, want)
			}
			if !h.ipv6 && binary.BigEndian.Uint16(s[h.l3+4:]) != 0x1234+uint16(i) {
				t.Errorf("%s: segment %d IP id %#x", tc.name, i, binary.BigEndian.Uint16(s[h.l3+4:]))
			}
			payload = append(payload, s[hl:]...)
		}
		if !bytes.Equal(payload, tc.f[hl:]) {
			t.Errorf("%s: payload differs", tc.name)
		}
	}
	// A scratch buffer too small is an error, not a panic.
	f := ether(etherTypeIPv4, ipv4(protoTCP, tcp(fill(3000, 1), 7, 0)))
	if err := segmentTCP(f, 2000, make([]byte, 100), func([]byte) error { return nil }); err == nil {
		t.Error("small scratch accepted")
	}
}

func TestWireLayouts(t *testing.T) {
	b := make([]byte, 12)
	r := TxRequest{Gref: 0x01020304, Offset: 0x0506, Flags: 0x0708, ID: 0x090a, Size: 0x0b0c}
	r.Encode(b)
	if !bytes.Equal(b, []byte{4, 3, 2, 1, 6, 5, 8, 7, 0xa, 9, 0xc, 0xb}) || DecodeTxRequest(b) != r {
		t.Errorf("netif_tx_request: % x", b)
	}
	TxResponse{ID: 0x0102, Status: RspError}.Encode(b)
	if !bytes.Equal(b[:4], []byte{2, 1, 0xff, 0xff}) || DecodeTxResponse(b) != (TxResponse{ID: 0x0102, Status: -1}) {
		t.Errorf("netif_tx_response: % x", b[:4])
	}
	RxRequest{ID: 0x0102, Gref: 0x03040506}.Encode(b)
	if !bytes.Equal(b[:8], []byte{2, 1, 0, 0, 6, 5, 4, 3}) || DecodeRxRequest(b) != (RxRequest{ID: 0x0102, Gref: 0x03040506}) {
		t.Errorf("netif_rx_request: % x", b[:8])
	}
	rr := RxResponse{ID: 1, Offset: 2, Flags: RxfMoreData, Status: -2}
	rr.Encode(b)
	if !bytes.Equal(b[:8], []byte{1, 0, 2, 0, 4, 0, 0xfe, 0xff}) || DecodeRxResponse(b) != rr {
		t.Errorf("netif_rx_response: % x", b[:8])
	}
	x := GSOExtra(1448, GSOTypeTCPv6, ExtraFlagMore)
	x.Encode(b)
	if !bytes.Equal(b[:8], []byte{1, 1, 0xa8, 0x05, 2, 0, 0, 0}) {
		t.Errorf("netif_extra_info: % x", b[:8])
	}
	if size, typ, feat := DecodeExtraInfo(b).GSO(); size != 1448 || typ != GSOTypeTCPv6 || feat != 0 {
		t.Errorf("GSO() = %d %d %d", size, typ, feat)
	}
	m := ExtraInfo{Type: ExtraTypeMcastAdd, Data: [6]byte{1, 0, 0x5e, 0, 0, 1}}
	if DecodeExtraInfo(func() []byte { m.Encode(b); return b }()).Mcast() != m.Data {
		t.Error("mcast address")
	}
}
