package netback

import (
	"bytes"
	"testing"

	"github.com/xenvmm/xenvmm/devices/ring"
	"github.com/xenvmm/xenvmm/devices/tap"
	"github.com/xenvmm/xenvmm/xenabi/guestmem"
)

// fuzzGrants grants refs 8..15, read-only for odd ones, each page
// holding a valid TCP/IPv4 frame so that fuzzed requests sometimes build
// real packets.
func fuzzGrants() *fakeGrants {
	g := newFakeGrants()
	f := withPartialCsum(ether(etherTypeIPv4, ipv4(protoTCP, tcp(fill(2000, 1), 1, 0x10))))
	for i := range 8 {
		_, p := g.grant(i%2 == 1)
		copy(p, f)
	}
	return g
}

// FuzzTxRing runs the TX engine over a ring whose slots and req_prod come
// from the fuzzer: whatever the guest writes, netback must not panic,
// must answer every slot it consumed (or stop on a broken ring), and may
// write only well-formed frames.
func FuzzTxRing(f *testing.F) {
	seed := func(reqs ...[]byte) []byte {
		var b []byte
		for _, r := range reqs {
			b = append(b, r...)
		}
		return b
	}
	req := func(r TxRequest) []byte { b := make([]byte, TxSlotSize); r.Encode(b); return b }
	extra := func(x ExtraInfo) []byte { b := make([]byte, TxSlotSize); x.Encode(b); return b }
	f.Add(uint16(1), seed(req(TxRequest{Gref: 8, Size: 60})))
	f.Add(uint16(3), seed(req(TxRequest{Gref: 8, Size: 2054, Flags: TxfMoreData | TxfCsumBlank, ID: 1}), req(TxRequest{Gref: 9, Size: 1000, Flags: TxfMoreData, ID: 2}), req(TxRequest{Gref: 10, Size: 54, Offset: 4000, ID: 3})))
	f.Add(uint16(2), seed(req(TxRequest{Gref: 8, Size: 2054, Flags: TxfExtraInfo | TxfCsumBlank, ID: 1}), extra(GSOExtra(1000, GSOTypeTCPv4, 0))))
	f.Add(uint16(2), seed(req(TxRequest{Gref: 8, Size: 2054, Flags: TxfExtraInfo, ID: 1}), extra(ExtraInfo{Type: ExtraTypeMcastAdd, Flags: ExtraFlagMore})))
	f.Add(uint16(300), seed(req(TxRequest{Gref: 8, Size: 60, Flags: TxfMoreData})))
	f.Fuzz(func(t *testing.T, prod uint16, slots []byte) {
		g := fuzzGrants()
		page := make([]byte, PageSize)
		front, err := ring.NewFront(page, TxSlotSize)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for len(slots) > 0 && n < int(front.Size()) {
			s := front.RequestSlot()
			copy(s, slots)
			slots = slots[min(len(slots), TxSlotSize):]
			n++
		}
		front.PushRequests()
		guestmem.Store32(page, 0, uint32(prod)) // req_prod as the guest wrote it
		back, err := ring.NewBack(page, TxSlotSize)
		if err != nil {
			t.Fatal(err)
		}
		link := newFakeLink()
		var st counters
		e := newTxEngine(back, g, testDom, link, func() {}, &st, nil)
		ok := e.work()
		if ok != (back.Err() == nil) {
			t.Fatalf("work() = %v with ring error %v", ok, back.Err())
		}
		if ok && (back.Unanswered() != 0 || back.ReqCons() != uint32(prod)) {
			t.Fatalf("consumed %d of %d, %d unanswered", back.ReqCons(), prod, back.Unanswered())
		}
		if got := uint64(len(link.out)); got != st.txPackets.Load() {
			t.Fatalf("%d frames written, %d counted", got, st.txPackets.Load())
		}
		for _, fr := range link.out {
			h, err := tap.DecodeVnetHdr(fr)
			if err != nil || len(fr) < tap.VnetHdrLen+ethHeaderLen || len(fr) > tap.VnetHdrLen+MaxTxSize {
				t.Fatalf("frame of %d bytes, header %v", len(fr), err)
			}
			if h.Flags&tap.VnetFlagNeedsCsum != 0 && int(h.CsumStart)+int(h.CsumOffset)+2 > len(fr)-tap.VnetHdrLen {
				t.Fatalf("checksum at %d+%d in a %d-byte frame", h.CsumStart, h.CsumOffset, len(fr)-tap.VnetHdrLen)
			}
			if h.GSOType != tap.VnetGSONone && (h.GSOSize == 0 || int(h.HdrLen) > len(fr)-tap.VnetHdrLen) {
				t.Fatalf("GSO header %+v", h)
			}
		}
		// Every response carries a legal status.
		for i := uint32(0); ok && i < back.RspProdPvt(); i++ {
			r := DecodeTxResponse(page[ring.HeaderSize+int(i%front.Size())*TxSlotSize:])
			if r.Status != RspOkay && r.Status != RspError && r.Status != RspNull {
				t.Fatalf("response %d status %d", i, r.Status)
			}
		}
	})
}

// FuzzRxRing delivers a fuzzed frame (with a fuzzed virtio_net_hdr) into
// RX requests the fuzzer wrote: no panic, responses only in consumed
// slots with sane statuses, and a frame delivered whole is the frame
// sent (or its checksummed or segmented form).
func FuzzRxRing(f *testing.F) {
	hdr := func(h tap.VnetHdr) []byte { b := make([]byte, tap.VnetHdrLen); h.Encode(b); return b }
	reqs := func(n int) []byte {
		b := make([]byte, 0, n*RxSlotSize)
		for i := range n {
			s := make([]byte, RxSlotSize)
			RxRequest{ID: uint16(i), Gref: uint32(8 + i%8)}.Encode(s)
			b = append(b, s...)
		}
		return b
	}
	gso := withPartialCsum(ether(etherTypeIPv4, ipv4(protoTCP, tcp(fill(9000, 1), 1, 0x10))))
	f.Add(uint8(0x1f), reqs(4), append(hdr(tap.VnetHdr{}), ether(0x88b5, fill(100, 1))...))
	f.Add(uint8(0x1f), reqs(8), append(hdr(tap.VnetHdr{Flags: 1, GSOType: tap.VnetGSOTCPv4, GSOSize: 1448, HdrLen: 54, CsumStart: 34, CsumOffset: 16}), gso...))
	f.Add(uint8(0x00), reqs(8), append(hdr(tap.VnetHdr{Flags: 1, GSOType: tap.VnetGSOTCPv4, GSOSize: 100, HdrLen: 54, CsumStart: 34, CsumOffset: 16}), gso...))
	f.Add(uint8(0x01), reqs(3), append(hdr(tap.VnetHdr{Flags: 1, CsumStart: 34, CsumOffset: 16}), gso[:200]...))
	f.Add(uint8(0x1f), []byte{1, 0, 0, 0, 0xff, 0xff, 0, 0}, append(hdr(tap.VnetHdr{}), ether(0x88b5, fill(100, 1))...))
	f.Fuzz(func(t *testing.T, feat uint8, slots []byte, frame []byte) {
		g := newFakeGrants()
		for i := range 8 {
			g.grant(i == 5)
		}
		page := make([]byte, PageSize)
		front, err := ring.NewFront(page, RxSlotSize)
		if err != nil {
			t.Fatal(err)
		}
		for len(slots) > 0 && !front.Full() {
			copy(front.RequestSlot(), slots)
			slots = slots[min(len(slots), RxSlotSize):]
		}
		front.PushRequests()
		back, err := ring.NewBack(page, RxSlotSize)
		if err != nil {
			t.Fatal(err)
		}
		fs := features{sg: feat&1 != 0, gso4: feat&2 != 0, gso6: feat&4 != 0, csum4: feat&8 != 0, csum6: feat&16 != 0}
		var st counters
		snapshot := append([]byte(nil), page...) // the requests, before responses overwrite them
		e := newRxEngine(back, g, testDom, fs, func() {}, func() bool { return false }, &st, nil)
		e.deliver(append([]byte(nil), frame...))
		e.flush()
		if back.RspProdPvt() > back.ReqCons() {
			t.Fatalf("%d responses for %d requests", back.RspProdPvt(), back.ReqCons())
		}
		// Read the responses as a frontend would.
		var data []byte
		extra, plain := false, true
		for i := uint32(0); i < back.RspProdPvt(); i++ {
			off := ring.HeaderSize + int(i%front.Size())*RxSlotSize
			if extra {
				extra = DecodeExtraInfo(page[off:]).Flags&ExtraFlagMore != 0
				plain = false
				continue
			}
			r := DecodeRxResponse(page[off:])
			if r.Status > PageSize || r.Offset != 0 {
				t.Fatalf("response %d: %+v", i, r)
			}
			if r.Flags&RxfExtraInfo != 0 {
				extra = true
			}
			if r.Status > 0 {
				req := DecodeRxRequest(snapshot[off:])
				data = append(data, g.page(req.Gref)[:r.Status]...)
			}
		}
		h, herr := tap.DecodeVnetHdr(frame)
		if herr == nil && h == (tap.VnetHdr{}) && plain && st.rxPackets.Load() == 1 && st.rxErrors.Load() == 0 {
			if !bytes.Equal(data, frame[tap.VnetHdrLen:]) {
				t.Fatalf("delivered %d bytes differ from the %d-byte frame", len(data), len(frame)-tap.VnetHdrLen)
			}
		}
	})
}

// FuzzFrame checks header parsing, checksum completion and TCP
// segmentation on arbitrary frames: no panics, and every segment of a
// frame that segments is a valid TCP packet carrying its share of the
// payload.
func FuzzFrame(f *testing.F) {
	f.Add(ether(etherTypeIPv4, ipv4(protoTCP, tcp(fill(3000, 1), 1, 0x19))), uint16(1000), uint16(34), uint16(16))
	f.Add(ether(etherTypeIPv6, ipv6(protoTCP, tcp(fill(3000, 1), 1, 0x19))), uint16(536), uint16(54), uint16(16))
	f.Add(ether(etherTypeIPv6, ipv6(protoUDP, udp(fill(30, 1)))), uint16(0), uint16(54), uint16(6))
	f.Add(ether(0x0806, fill(28, 1)), uint16(1), uint16(0xffff), uint16(0xffff))
	f.Fuzz(func(t *testing.T, fr []byte, mss, start, off uint16) {
		h, err := parseHeaders(fr)
		if err == nil && (h.l4+h.l4Len > len(fr) || h.l4 < ethHeaderLen) {
			t.Fatalf("headers %+v outside a %d-byte frame", h, len(fr))
		}
		c := append([]byte(nil), fr...)
		_ = completeCsum(c, int(start), int(off))
		var payload []byte
		var hl int
		if err == nil && h.proto == protoTCP {
			hl = h.l4 + h.tcpHeaderLen(fr)
		}
		serr := segmentTCP(fr, int(mss), make([]byte, maxFrame), func(s []byte) error {
			if err := csumOK(s); err != nil {
				t.Fatalf("segment: %v", err)
			}
			if len(s)-hl > int(mss) {
				t.Fatalf("segment carries %d > mss %d", len(s)-hl, mss)
			}
			payload = append(payload, s[hl:]...)
			return nil
		})
		if serr == nil && !bytes.Equal(payload, fr[hl:h.l4+h.l4Len]) {
			t.Fatalf("segments carry %d bytes, frame %d", len(payload), h.l4+h.l4Len-hl)
		}
	})
}
