package netback

import (
	"encoding/binary"
	"errors"

	"github.com/xenvmm/xenvmm/devices/ring"
	"github.com/xenvmm/xenvmm/devices/tap"
)

// features is what the frontend said it can take on its RX ring
// (netif.h: feature-sg, feature-gso-tcpv4/v6, feature-no-csum-offload,
// feature-ipv6-csum-offload).
type features struct {
	sg     bool // multi-slot packets (NETRXF_more_data)
	gso4   bool // XEN_NETIF_GSO_TYPE_TCPV4 extra info
	gso6   bool // XEN_NETIF_GSO_TYPE_TCPV6 extra info
	csum4  bool // NETRXF_csum_blank on IPv4 TCP/UDP
	csum6  bool // NETRXF_csum_blank on IPv6 TCP/UDP
	notify bool // feature-rx-notify: it kicks us when it posts buffers
}

// offload is the tap offload set (TUNSETOFFLOAD) that hands netback only
// frames this frontend can take without work in Go: partial checksums if
// it accepts csum_blank, TSO of the kinds it takes as GSO (which needs
// multi-slot packets too). Frames of other kinds still arriving (a link
// that ignores the setting, IPv6 partial checksums for a frontend that
// only takes IPv4 ones) are completed or segmented in Go.
func (f features) offload() int {
	o := 0
	if f.csum4 || f.csum6 {
		o |= tap.OffloadCsum
		if f.sg && f.gso4 && f.csum4 {
			o |= tap.OffloadTSO4
		}
		if f.sg && f.gso6 && f.csum6 {
			o |= tap.OffloadTSO6
		}
	}
	return o
}

// maxFrame is the largest frame netback moves: a 64 KiB IP packet (a
// GSO frame) behind an Ethernet header with two VLAN tags.
const maxFrame = MaxTxSize + ethHeaderLen + 8

// maxRxSlots is the most RX slots one frame can take: maxFrame spread
// over pages, plus its extra-info slot.
const maxRxSlots = (maxFrame+PageSize-1)/PageSize + 1

// rxEngine is the RX half of a queue (host to guest): it copies each frame
// from the link into the buffers the frontend posted (netif_rx_request,
// rx-copy mode), one page per slot with NETRXF_more_data between them, a
// GSO extra-info slot after the first when the frontend takes GSO, and the
// checksum flags, answering every request in its own slot as netif.h
// requires. Frames the frontend cannot take are segmented or completed
// first. It is used by one goroutine.
type rxEngine struct {
	ring   *ring.Back
	grants GrantCopier
	dom    uint16
	feat   features
	notify func()
	stats  *counters
	warn   func(string, ...any)
	// wait blocks until the frontend may have posted requests (its
	// notification, or a poll interval); false means give up: the queue
	// is shutting down.
	wait func() bool

	held    []RxRequest // consumed, not yet answered: the oldest requests
	ids     idSet
	scratch []byte // segments built by segmentTCP
	pushed  bool
	broken  bool
}

func newRxEngine(r *ring.Back, g GrantCopier, dom uint16, feat features, notify func(), wait func() bool, stats *counters, warn func(string, ...any)) *rxEngine {
	if warn == nil {
		warn = func(string, ...any) {}
	}
	return &rxEngine{
		ring: r, grants: g, dom: dom, feat: feat, notify: notify, wait: wait, stats: stats, warn: warn,
		held:    make([]RxRequest, 0, maxRxSlots),
		scratch: make([]byte, maxFrame),
	}
}

// errStop stops a segmentation that cannot be delivered.
var errStop = errors.New("netback: queue stopping")

// deliver gives one frame from the link (virtio_net_hdr, then the
// Ethernet frame) to the guest, waiting for posted buffers as needed.
// It returns false only when the queue is shutting down; frames that
// cannot be delivered are counted and dropped.
func (e *rxEngine) deliver(b []byte) bool {
	if e.broken {
		e.stats.rxDropped.Add(1)
		return true
	}
	hdr, err := tap.DecodeVnetHdr(b)
	f := b[min(len(b), tap.VnetHdrLen):]
	if err != nil || len(f) < ethHeaderLen {
		e.stats.rxDropped.Add(1)
		return true
	}
	if gt := hdr.GSOType &^ tap.VnetGSOECN; gt != tap.VnetGSONone {
		var typ uint8
		var ok bool
		switch gt {
		case tap.VnetGSOTCPv4:
			typ, ok = GSOTypeTCPv4, e.feat.gso4 && e.feat.csum4
		case tap.VnetGSOTCPv6:
			typ, ok = GSOTypeTCPv6, e.feat.gso6 && e.feat.csum6
		default:
			// UFO/USO are never enabled on the tap (features.offload).
			e.stats.rxDropped.Add(1)
			e.warn("netback: dropped a UDP GSO frame", "gso_type", hdr.GSOType)
			return true
		}
		if ok && e.feat.sg && hdr.Flags&tap.VnetFlagNeedsCsum != 0 && hdr.GSOSize > 0 && e.partialOK(f, hdr) {
			return e.put(f, RxfCsumBlank|RxfDataValidated, typ, hdr.GSOSize)
		}
		// The frontend cannot take it whole: segment it here, with
		// complete checksums, as the host stack would for a device
		// without TSO.
		err := segmentTCP(f, int(hdr.GSOSize), e.scratch, func(s []byte) error {
			if !e.put(s, RxfDataValidated, 0, 0) {
				return errStop
			}
			return nil
		})
		if errors.Is(err, errStop) {
			return false
		}
		if err != nil {
			e.stats.rxDropped.Add(1)
			e.warn("netback: cannot segment a GSO frame", "err", err)
		}
		return true
	}
	var flags uint16
	switch {
	case hdr.Flags&tap.VnetFlagNeedsCsum != 0:
		if e.partialOK(f, hdr) {
			flags = RxfCsumBlank | RxfDataValidated
			break
		}
		if err := completeCsum(f, int(hdr.CsumStart), int(hdr.CsumOffset)); err != nil {
			e.stats.rxDropped.Add(1)
			return true
		}
		flags = RxfDataValidated
	case hdr.Flags&tap.VnetFlagDataValid != 0:
		flags = RxfDataValidated
	}
	return e.put(f, flags, 0, 0)
}

// partialOK says whether a frame with a partial checksum may go to the
// frontend as NETRXF_csum_blank: the frontend takes those for this IP
// version, and the checksum is a TCP or UDP one where the frontend will
// look for it (netfront's checksum_setup and NetBSD's
// xennet_checksum_fill parse the headers themselves).
func (e *rxEngine) partialOK(f []byte, hdr tap.VnetHdr) bool {
	if !e.feat.csum4 && !e.feat.csum6 {
		return false
	}
	h, err := parseHeaders(f)
	if err != nil || h.l4 != int(hdr.CsumStart) || h.csumOffset() != int(hdr.CsumOffset) {
		return false
	}
	if h.ipv6 {
		return e.feat.csum6
	}
	return e.feat.csum4
}

// put copies frame f into the next posted buffers and answers them:
// the first slot carries flags (and NETRXF_extra_info when gsoType is
// set, followed by the GSO extra-info slot), every slot but the last
// NETRXF_more_data. Each slot's response takes the place of its request,
// as netif.h requires of backends ("responses always appear in the same
// ring slot as their corresponding request").
func (e *rxEngine) put(f []byte, flags uint16, gsoType uint8, gsoSize uint16) bool {
	need := max(1, (len(f)+PageSize-1)/PageSize)
	if need > 1 && !e.feat.sg {
		e.stats.rxDropped.Add(1)
		return true
	}
	if gsoType != 0 {
		need++
	}
	if need > maxRxSlots {
		e.stats.rxDropped.Add(1)
		return true
	}
	if !e.acquire(need) {
		return e.broken // broken: drop and carry on; otherwise stopping
	}
	reqs := e.held[:need]
	defer func() { e.held = e.held[:copy(e.held, e.held[need:])] }()
	for i, r := range reqs {
		if e.ids.has(r.ID) || dupRxID(reqs[:i], r.ID) {
			e.stats.rxErrors.Add(1)
			e.warn("netback: RX request id reused while in flight", "id", r.ID)
			for _, r := range reqs {
				e.respond(RxResponse{ID: r.ID, Status: RspError})
			}
			return true
		}
	}
	off, failed := 0, false
	for k, r := range reqs {
		if gsoType != 0 && k == 1 {
			slot := e.ring.ResponseSlot()
			if slot == nil {
				e.broken = true
				return true
			}
			GSOExtra(gsoSize, gsoType, 0).Encode(slot)
			e.pushed = true
			continue
		}
		n := min(PageSize, len(f)-off)
		rsp := RxResponse{ID: r.ID, Status: int16(n)}
		if err := e.grants.CopyToGrant(e.dom, r.Gref, 0, f[off:off+n]); err != nil {
			rsp.Status = RspError
			if !failed {
				e.warn("netback: RX copy into the guest failed", "gref", r.Gref, "err", err)
			}
			failed = true
		}
		off += n
		if k == 0 {
			rsp.Flags = flags
			if gsoType != 0 {
				rsp.Flags |= RxfExtraInfo
			}
		}
		if off < len(f) {
			rsp.Flags |= RxfMoreData
		}
		e.respond(rsp)
	}
	if failed {
		e.stats.rxErrors.Add(1)
	} else {
		e.stats.rxPackets.Add(1)
		e.stats.rxBytes.Add(uint64(len(f)))
	}
	return true
}

func dupRxID(reqs []RxRequest, id uint16) bool {
	for _, r := range reqs {
		if r.ID == id {
			return true
		}
	}
	return false
}

// respond writes r in the next response slot.
func (e *rxEngine) respond(r RxResponse) {
	slot := e.ring.ResponseSlot()
	if slot == nil {
		e.broken = true
		return
	}
	r.Encode(slot)
	e.ids.add(r.ID)
	e.pushed = true
}

// acquire consumes requests until need are held. With none posted it
// publishes what it has answered (the frontend may be waiting for those
// to post more), asks to be notified (req_event) and waits. It returns
// false when waiting was given up or the ring is broken (then e.broken).
func (e *rxEngine) acquire(need int) bool {
	for len(e.held) < need {
		if s, ok := e.ring.NextRequest(); ok {
			e.held = append(e.held, DecodeRxRequest(s))
			continue
		}
		if err := e.ring.Err(); err != nil {
			e.fail(err)
			return false
		}
		e.flush()
		if e.ring.FinalCheckForRequests() {
			continue
		}
		if err := e.ring.Err(); err != nil {
			e.fail(err)
			return false
		}
		if !e.wait() {
			return false
		}
	}
	return true
}

func (e *rxEngine) fail(err error) {
	e.broken = true
	e.stats.rxDropped.Add(1)
	e.warn("netback: RX ring broken; queue stopped", "err", err)
}

// flush publishes the responses written and notifies the frontend if it
// asked to be.
func (e *rxEngine) flush() {
	if !e.pushed {
		return
	}
	if e.ring.PushResponses() {
		e.notify()
	}
	e.ids.reset()
	e.pushed = false
}

// flowHash spreads frames over queues by flow: the IP addresses and, for
// TCP and UDP, the ports (FNV-1a); 0 for anything else. Frames of one flow
// stay on one queue, in order.
func flowHash(f []byte) uint32 {
	h := uint32(2166136261)
	add := func(b []byte) {
		for _, c := range b {
			h = (h ^ uint32(c)) * 16777619
		}
	}
	if len(f) < ethHeaderLen {
		return 0
	}
	off := 12
	et := binary.BigEndian.Uint16(f[off:])
	if et == etherTypeVLAN && len(f) >= 18 {
		off += 4
		et = binary.BigEndian.Uint16(f[off:])
	}
	ip := f[off+2:]
	var proto uint8
	var l4 []byte
	switch {
	case et == etherTypeIPv4 && len(ip) >= 20:
		add(ip[12:20])
		ihl := int(ip[0]&0x0f) * 4
		proto = ip[9]
		if binary.BigEndian.Uint16(ip[6:])&0x3fff == 0 && len(ip) >= ihl+4 {
			l4 = ip[ihl:]
		}
	case et == etherTypeIPv6 && len(ip) >= 44:
		add(ip[8:40])
		proto, l4 = ip[6], ip[40:]
	default:
		return 0
	}
	if (proto == protoTCP || proto == protoUDP) && len(l4) >= 4 {
		add(l4[:4])
	}
	return h
}
