package netback

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/xenvmm/xenvmm/devices/ring"
	"github.com/xenvmm/xenvmm/devices/tap"
)

// MaxTxSlots is the most data slots netback accepts in one packet. Linux
// netfront sends at most XEN_NETIF_NR_SLOTS_MIN (18); NetBSD the same.
// Longer more_data chains are answered NETIF_RSP_ERROR.
const MaxTxSlots = 64

// MaxTxExtras bounds a chain of extra-info slots (there are
// XEN_NETIF_EXTRA_TYPE_MAX-1 types).
const MaxTxExtras = ExtraTypeMax - 1

// txArenaSize is the TX batch buffer: frames (header and data) are
// gathered here and written to the link when it fills or the ring is
// empty. Four maximal packets.
const txArenaSize = 4 * (tap.VnetHdrLen + MaxTxSize + 1)

// txEngine is the TX half of a queue (guest to host): it reads packets
// off the TX ring (netif_tx_request fragments and netif_extra_info
// slots), copies them out of the guest's grants into one buffer each,
// translates NETTXF_csum_blank and GSO extra info into a virtio_net_hdr,
// answers each slot, and writes the frames to the link in batches. It is
// used by one goroutine.
type txEngine struct {
	ring   *ring.Back
	grants GrantCopier
	dom    uint16
	link   Link
	notify func()
	stats  *counters
	warn   func(msg string, args ...any)

	arena  []byte
	used   int
	frames [][]byte
	ids    idSet
	slots  []txSlot // the slots of the packet being read
	frags  []TxRequest
	pushed bool // responses written since the last push
	broken bool
}

// txSlot is one consumed slot: a data request (answered with its id) or
// an extra-info slot (answered NETIF_RSP_NULL).
type txSlot struct {
	id    uint16
	extra bool
}

func newTxEngine(r *ring.Back, g GrantCopier, dom uint16, link Link, notify func(), stats *counters, warn func(string, ...any)) *txEngine {
	if warn == nil {
		warn = func(string, ...any) {}
	}
	return &txEngine{
		ring: r, grants: g, dom: dom, link: link, notify: notify, stats: stats, warn: warn,
		arena:  make([]byte, txArenaSize),
		frames: make([][]byte, 0, 64),
		slots:  make([]txSlot, 0, MaxTxSlots+MaxTxExtras+1),
		frags:  make([]TxRequest, 0, MaxTxSlots),
	}
}

// work handles every packet the frontend has produced, then flushes. It
// returns false once the ring is broken (a req_prod no frontend can
// publish): the queue stops taking requests until it is reconnected.
func (e *txEngine) work() bool {
	if e.broken {
		return false
	}
	for {
		n, err := e.ring.Pending()
		if err != nil {
			e.broken = true
			e.warn("netback: TX ring broken; queue stopped", "err", err)
			break
		}
		if n == 0 {
			break
		}
		e.packet()
	}
	e.flush()
	return !e.broken
}

// malformedf answers the slots read so far with NETIF_RSP_ERROR.
func (e *txEngine) malformedf(format string, args ...any) {
	e.stats.txErrors.Add(1)
	e.warn("netback: malformed TX request", "why", fmt.Sprintf(format, args...))
	e.respond(RspError)
}

// packet reads, checks, copies and answers one packet starting at
// req_cons.
func (e *txEngine) packet() {
	e.slots, e.frags = e.slots[:0], e.frags[:0]
	peek := func(i int) ([]byte, bool) { return e.ring.PeekRequest(uint32(i)) }
	s, ok := peek(0)
	if !ok { // work saw it pending; only a broken ring takes it back
		e.broken = true
		return
	}
	first := DecodeTxRequest(s)
	e.slots = append(e.slots, txSlot{id: first.ID})
	e.frags = append(e.frags, first)

	// Extra-info slots follow the first request (netif.h "Guest
	// transmit"); only GSO and multicast are understood.
	var gso ExtraInfo
	hasGSO, mcast := false, false
	bad := ""
	if first.Flags&TxfExtraInfo != 0 {
		for more := true; more; {
			s, ok := peek(len(e.slots))
			if !ok {
				e.consume()
				e.malformedf("extra info missing after slot %d", len(e.slots)-1)
				return
			}
			if len(e.slots) > MaxTxExtras {
				e.consume()
				e.malformedf("more than %d extra info slots", MaxTxExtras)
				return
			}
			x := DecodeExtraInfo(s)
			e.slots = append(e.slots, txSlot{extra: true})
			more = x.Flags&ExtraFlagMore != 0
			switch x.Type {
			case ExtraTypeGSO:
				gso, hasGSO = x, true
			case ExtraTypeMcastAdd, ExtraTypeMcastDel:
				mcast = true
			case ExtraTypeHash:
			default:
				bad = fmt.Sprintf("extra info type %d", x.Type)
			}
		}
	}
	for prev := first; prev.Flags&TxfMoreData != 0; {
		if len(e.frags) >= MaxTxSlots {
			e.consume()
			e.malformedf("more_data chain longer than %d slots", MaxTxSlots)
			return
		}
		s, ok := peek(len(e.slots))
		if !ok {
			e.consume()
			e.malformedf("more_data chain of %d slots runs past req_prod", len(e.frags))
			return
		}
		prev = DecodeTxRequest(s)
		e.slots = append(e.slots, txSlot{id: prev.ID})
		e.frags = append(e.frags, prev)
	}
	e.consume()
	if e.broken {
		return
	}
	if bad != "" {
		e.malformedf("%s", bad)
		return
	}
	if mcast {
		// A multicast filter update (XEN_NETIF_EXTRA_TYPE_MCAST_*) is
		// not a packet. netback floods multicast and does not offer
		// feature-multicast-control, so there is no filter to update.
		e.respond(RspOkay)
		return
	}

	// The first request's size is the packet's; the first fragment is
	// what the others leave of it.
	total, rest := int(first.Size), 0
	for i, f := range e.frags {
		if i > 0 {
			rest += int(f.Size)
		}
	}
	if rest > total {
		e.malformedf("fragments hold %d bytes, more than the packet's %d", rest, total)
		return
	}
	if total < ethHeaderLen {
		e.malformedf("packet of %d bytes", total)
		return
	}
	for i, f := range e.frags {
		size := int(f.Size)
		if i == 0 {
			size = total - rest
		}
		if int(f.Offset)+size > PageSize {
			e.malformedf("slot %d: offset %d + size %d crosses the page", i, f.Offset, size)
			return
		}
		if e.ids.has(f.ID) || dupID(e.frags[:i], f.ID) {
			e.malformedf("id %d reused while in flight", f.ID)
			return
		}
	}
	if hasGSO {
		size, typ, _ := gso.GSO()
		if size == 0 || (typ != GSOTypeTCPv4 && typ != GSOTypeTCPv6) {
			e.malformedf("GSO size %d type %d", size, typ)
			return
		}
	}

	if e.used+tap.VnetHdrLen+total > len(e.arena) {
		e.flush()
	}
	frame := e.arena[e.used : e.used+tap.VnetHdrLen+total]
	pos := tap.VnetHdrLen
	for i, f := range e.frags {
		size := int(f.Size)
		if i == 0 {
			size = total - rest
		}
		if err := e.grants.CopyFromGrant(e.dom, f.Gref, int(f.Offset), frame[pos:pos+size]); err != nil {
			e.malformedf("slot %d: %v", i, err)
			return
		}
		pos += size
	}
	var hdr tap.VnetHdr
	if first.Flags&TxfCsumBlank != 0 || hasGSO {
		if err := txOffload(frame[tap.VnetHdrLen:], first.Flags, hasGSO, gso, &hdr); err != nil {
			e.malformedf("%v", err)
			return
		}
	}
	hdr.Encode(frame)
	e.frames = append(e.frames, frame)
	e.used += len(frame)
	e.stats.txPackets.Add(1)
	e.stats.txBytes.Add(uint64(total))
	e.respond(RspOkay)
}

// txOffload fills hdr for a frame the guest sent with a blank checksum or
// GSO extra info: VIRTIO_NET_HDR_F_NEEDS_CSUM with the transport header's
// place, and for GSO the type, segment size and header length. A GSO
// frame without NETTXF_csum_blank gets its pseudo-header checksum
// recomputed, as Linux netback's checksum_setup does for such peers.
func txOffload(f []byte, flags uint16, hasGSO bool, gso ExtraInfo, hdr *tap.VnetHdr) error {
	h, err := parseHeaders(f)
	if err != nil {
		return err
	}
	hdr.Flags = tap.VnetFlagNeedsCsum
	hdr.CsumStart = uint16(h.l4)
	hdr.CsumOffset = uint16(h.csumOffset())
	if !hasGSO {
		return nil
	}
	size, typ, _ := gso.GSO()
	if h.proto != protoTCP || h.ipv6 != (typ == GSOTypeTCPv6) {
		return fmt.Errorf("GSO type %d on a frame that is not TCP over IPv%d", typ, map[bool]int{false: 4, true: 6}[typ == GSOTypeTCPv6])
	}
	if flags&TxfCsumBlank == 0 {
		h.setPartialCsum(f)
	}
	hdr.GSOType = tap.VnetGSOTCPv4
	if typ == GSOTypeTCPv6 {
		hdr.GSOType = tap.VnetGSOTCPv6
	}
	hdr.GSOSize = size
	hdr.HdrLen = uint16(h.l4 + h.tcpHeaderLen(f))
	return nil
}

func dupID(frags []TxRequest, id uint16) bool {
	for _, f := range frags {
		if f.ID == id {
			return true
		}
	}
	return false
}

// consume takes the slots read for this packet off the ring. If the
// ring broke meanwhile (PeekRequest re-reads req_prod), it consumes
// nothing and the engine stops.
func (e *txEngine) consume() {
	if !e.ring.SkipRequests(uint32(len(e.slots))) {
		e.broken = true
		e.slots = e.slots[:0]
	}
}

// respond writes a response for every slot of the packet: status for the
// data slots, NETIF_RSP_NULL for extra-info slots (Linux's
// make_tx_response).
func (e *txEngine) respond(status int16) {
	for _, s := range e.slots {
		r := TxResponse{ID: s.id, Status: status}
		if s.extra {
			r = TxResponse{Status: RspNull}
		} else {
			e.ids.add(s.id)
		}
		slot := e.ring.ResponseSlot()
		if slot == nil { // cannot happen: every slot was consumed
			e.broken = true
			return
		}
		r.Encode(slot)
	}
	e.pushed = true
}

// flush publishes the responses (notifying the frontend if it asked) and
// writes the gathered frames to the link.
func (e *txEngine) flush() {
	if e.pushed {
		if e.ring.PushResponses() {
			e.notify()
		}
		e.ids.reset()
		e.pushed = false
	}
	for i := 0; i < len(e.frames); {
		n, err := e.link.WriteBatch(e.frames[i:])
		i += n
		if err == nil {
			continue
		}
		if errors.Is(err, tap.ErrClosed) {
			e.stats.txDropped.Add(uint64(len(e.frames) - i))
			break
		}
		e.stats.txDropped.Add(1)
		e.warn("netback: link refused a frame", "err", err)
		i++
	}
	e.frames = e.frames[:0]
	e.used = 0
}

// rateLimitedWarn logs at most limit warnings through log.
func rateLimitedWarn(log *slog.Logger, limit int) func(string, ...any) {
	n := 0
	return func(msg string, args ...any) {
		if n < limit {
			n++
			if n == limit {
				args = append(args, "note", "further warnings of this queue suppressed")
			}
			log.Warn(msg, args...)
		}
	}
}
