package netback

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
)

// Header parsing, checksums and TCP segmentation: what netback needs to
// turn netif.h's offload flags into a virtio_net_hdr and back, and to give
// a frontend only what it negotiated. Linux netback does the same with
// skb_checksum_setup (net/core/skbuff.c) and the GSO stack.

// ErrUnparsable: a frame whose headers netback cannot follow to a TCP or
// UDP header, so its checksum cannot be offloaded.
var ErrUnparsable = errors.New("netback: cannot locate the transport header")

// EtherTypes and IP protocol numbers.
const (
	etherTypeIPv4  = 0x0800
	etherTypeIPv6  = 0x86dd
	etherTypeVLAN  = 0x8100
	etherTypeQinQ  = 0x88a8
	ethHeaderLen   = 14
	protoTCP       = 6
	protoUDP       = 17
	tcpCsumOffset  = 16 // offsetof(struct tcphdr, check)
	udpCsumOffset  = 6  // offsetof(struct udphdr, check)
	maxIPv6ExtHdrs = 8
)

// headers says where the layers of an Ethernet frame are.
type headers struct {
	ipv6  bool
	l3    int   // offset of the IP header
	l4    int   // offset of the TCP or UDP header
	proto uint8 // protoTCP or protoUDP
	l4Len int   // bytes of transport header and payload, per the IP header
}

// csumOffset is where the transport checksum sits relative to l4.
func (h headers) csumOffset() int {
	if h.proto == protoTCP {
		return tcpCsumOffset
	}
	return udpCsumOffset
}

// parseHeaders follows an Ethernet frame (with up to two 802.1Q/802.1ad
// tags) through IPv4 or IPv6 (and its extension headers) to a TCP or UDP
// header, as skb_checksum_setup does. Fragments, other protocols and
// truncated headers are ErrUnparsable.
func parseHeaders(f []byte) (headers, error) {
	var h headers
	fail := func(why string) (headers, error) {
		return headers{}, fmt.Errorf("%w: %s", ErrUnparsable, why)
	}
	if len(f) < ethHeaderLen {
		return fail("short Ethernet header")
	}
	off := 12
	et := binary.BigEndian.Uint16(f[off:])
	for tags := 0; (et == etherTypeVLAN || et == etherTypeQinQ) && tags < 2; tags++ {
		off += 4
		if len(f) < off+2 {
			return fail("short VLAN tag")
		}
		et = binary.BigEndian.Uint16(f[off:])
	}
	h.l3 = off + 2
	ip := f[h.l3:]
	switch et {
	case etherTypeIPv4:
		if len(ip) < 20 || ip[0]>>4 != 4 {
			return fail("short or bad IPv4 header")
		}
		ihl := int(ip[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(ip[2:]))
		if ihl < 20 || len(ip) < ihl || total < ihl || total > len(ip) {
			return fail("bad IPv4 lengths")
		}
		if binary.BigEndian.Uint16(ip[6:])&0x3fff != 0 {
			return fail("IPv4 fragment")
		}
		h.proto, h.l4, h.l4Len = ip[9], h.l3+ihl, total-ihl
	case etherTypeIPv6:
		if len(ip) < 40 || ip[0]>>4 != 6 {
			return fail("short or bad IPv6 header")
		}
		plen := int(binary.BigEndian.Uint16(ip[4:]))
		if 40+plen > len(ip) {
			return fail("bad IPv6 payload length")
		}
		h.ipv6 = true
		next, off := ip[6], 40
		for range maxIPv6ExtHdrs {
			var n int
			switch next {
			case 0, 43, 60: // hop-by-hop, routing, destination options
				if off+8 > 40+plen {
					return fail("short IPv6 extension header")
				}
				n = (int(ip[off+1]) + 1) * 8
			case 44: // fragment
				if off+8 > 40+plen {
					return fail("short IPv6 fragment header")
				}
				if binary.BigEndian.Uint16(ip[off+2:])&0xfff9 != 0 {
					return fail("IPv6 fragment")
				}
				n = 8
			case 51: // authentication header
				if off+8 > 40+plen {
					return fail("short IPv6 AH")
				}
				n = (int(ip[off+1]) + 2) * 4
			default:
				n = 0
			}
			if n == 0 {
				break
			}
			next = ip[off]
			off += n
		}
		if off > 40+plen {
			return fail("IPv6 extension headers beyond the payload")
		}
		h.proto, h.l4, h.l4Len = next, h.l3+off, 40+plen-off
	default:
		return fail(fmt.Sprintf("EtherType %#04x", et))
	}
	switch h.proto {
	case protoTCP:
		if h.l4Len < 20 || int(f[h.l4+12]>>4)*4 < 20 || int(f[h.l4+12]>>4)*4 > h.l4Len {
			return fail("short TCP header")
		}
	case protoUDP:
		if h.l4Len < 8 {
			return fail("short UDP header")
		}
	default:
		return fail(fmt.Sprintf("IP protocol %d", h.proto))
	}
	return h, nil
}

// tcpHeaderLen is the TCP header's length in bytes (data offset).
func (h headers) tcpHeaderLen(f []byte) int { return int(f[h.l4+12]>>4) * 4 }

// csumAdd adds b to the ones'-complement accumulator acc as a sequence
// of big-endian 16-bit words (an odd last byte is padded with zero).
// Summing 64-bit words with end-around carry and folding at the end is
// the same sum (RFC 1071, "parallel summation").
func csumAdd(acc uint64, b []byte) uint64 {
	var c uint64
	for len(b) >= 32 {
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b), c)
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b[8:]), c)
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b[16:]), c)
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b[24:]), c)
		b = b[32:]
	}
	for len(b) >= 8 {
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b), c)
		b = b[8:]
	}
	acc, c = bits.Add64(acc, 0, c)
	acc += c
	var tail uint64
	switch len(b) {
	case 7:
		tail = uint64(b[6]) << 8
		fallthrough
	case 6:
		tail |= uint64(binary.BigEndian.Uint16(b[4:])) << 16
		fallthrough
	case 4:
		tail |= uint64(binary.BigEndian.Uint32(b)) << 32
	case 5:
		tail = uint64(binary.BigEndian.Uint32(b))<<32 | uint64(b[4])<<24
	case 3:
		tail = uint64(binary.BigEndian.Uint16(b))<<48 | uint64(b[2])<<40
	case 2:
		tail = uint64(binary.BigEndian.Uint16(b)) << 48
	case 1:
		tail = uint64(b[0]) << 56
	}
	acc, c = bits.Add64(acc, tail, 0)
	return acc + c
}

// csumFold folds the accumulator to 16 bits (not complemented).
func csumFold(acc uint64) uint16 {
	acc = (acc >> 32) + (acc & 0xffffffff)
	acc = (acc >> 32) + (acc & 0xffffffff)
	acc = (acc >> 16) + (acc & 0xffff)
	acc = (acc >> 16) + (acc & 0xffff)
	acc = (acc >> 16) + (acc & 0xffff)
	return uint16(acc)
}

// pseudoHeader is the sum of the TCP/UDP pseudo-header of f for a
// transport length of l4Len (RFC 793/768, RFC 8200 section 8.1).
func (h headers) pseudoHeader(f []byte, l4Len int) uint64 {
	var acc uint64
	if h.ipv6 {
		acc = csumAdd(0, f[h.l3+8:h.l3+40])
	} else {
		acc = csumAdd(0, f[h.l3+12:h.l3+20])
	}
	return csumAddWord(acc, uint64(h.proto)+uint64(l4Len))
}

// csumAddWord adds v to the accumulator with end-around carry.
func csumAddWord(acc, v uint64) uint64 {
	acc, c := bits.Add64(acc, v, 0)
	return acc + c
}

// setPartialCsum stores the pseudo-header sum in the transport checksum
// field, what a CHECKSUM_PARTIAL (NETTXF_csum_blank,
// VIRTIO_NET_HDR_F_NEEDS_CSUM) frame carries there: skb_checksum_setup
// with recalculate set.
func (h headers) setPartialCsum(f []byte) {
	binary.BigEndian.PutUint16(f[h.l4+h.csumOffset():], csumFold(h.pseudoHeader(f, h.l4Len)))
}

// completeCsum turns a partial checksum into the full one: it sums
// f[start:] (whose field at start+off holds the pseudo-header sum) and
// stores the complement at start+off, as skb_checksum_help does. A UDP
// checksum that comes out zero is sent as 0xffff.
func completeCsum(f []byte, start, off int) error {
	if start < 0 || off < 0 || start+off+2 > len(f) {
		return fmt.Errorf("netback: checksum at %d+%d outside a %d-byte frame", start, off, len(f))
	}
	c := ^csumFold(csumAdd(0, f[start:]))
	if c == 0 && off == udpCsumOffset {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(f[start+off:], c)
	return nil
}

// segmentTCP splits the TCP GSO frame f into frames carrying at most mss
// bytes of payload each, with their own IP lengths, IPv4 ids and header
// checksums, sequence numbers, flags (FIN and PSH only on the last, CWR
// only on the first) and complete TCP checksums: what tcp_gso_segment and
// inet_gso_segment do for a device without TSO. Each segment is built in
// scratch and passed to emit, which must not keep it.
func segmentTCP(f []byte, mss int, scratch []byte, emit func([]byte) error) error {
	h, err := parseHeaders(f)
	if err != nil {
		return err
	}
	if h.proto != protoTCP {
		return fmt.Errorf("%w: GSO frame is not TCP", ErrUnparsable)
	}
	if mss <= 0 {
		return fmt.Errorf("netback: GSO size %d", mss)
	}
	hl := h.l4 + h.tcpHeaderLen(f)
	payload := f[hl : h.l4+h.l4Len]
	seq := binary.BigEndian.Uint32(f[h.l4+4:])
	flags := f[h.l4+13]
	var id uint16
	if !h.ipv6 {
		id = binary.BigEndian.Uint16(f[h.l3+4:])
	}
	for i, off := 0, 0; i == 0 || off < len(payload); i++ {
		n := min(mss, len(payload)-off)
		if hl+n > len(scratch) {
			return fmt.Errorf("netback: segment of %d bytes exceeds the %d-byte scratch buffer", hl+n, len(scratch))
		}
		s := scratch[:hl+n]
		copy(s, f[:hl])
		copy(s[hl:], payload[off:off+n])
		last := off+n >= len(payload)
		if h.ipv6 {
			binary.BigEndian.PutUint16(s[h.l3+4:], uint16(hl-h.l3-40+n))
		} else {
			binary.BigEndian.PutUint16(s[h.l3+2:], uint16(hl-h.l3+n))
			binary.BigEndian.PutUint16(s[h.l3+4:], id+uint16(i))
			binary.BigEndian.PutUint16(s[h.l3+10:], 0)
			ihl := int(s[h.l3]&0x0f) * 4
			binary.BigEndian.PutUint16(s[h.l3+10:], ^csumFold(csumAdd(0, s[h.l3:h.l3+ihl])))
		}
		binary.BigEndian.PutUint32(s[h.l4+4:], seq+uint32(off))
		fl := flags
		if !last {
			fl &^= 0x01 | 0x08 // FIN, PSH
		}
		if i > 0 {
			fl &^= 0x80 // CWR
		}
		s[h.l4+13] = fl
		binary.BigEndian.PutUint16(s[h.l4+tcpCsumOffset:], 0)
		tl := hl - h.l4 + n
		binary.BigEndian.PutUint16(s[h.l4+tcpCsumOffset:], ^csumFold(csumAdd(h.pseudoHeader(s, tl), s[h.l4:])))
		if err := emit(s); err != nil {
			return err
		}
		off += n
	}
	return nil
}
