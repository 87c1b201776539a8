package tap

import (
	"encoding/binary"
	"errors"
)

// VnetHdrLen is sizeof(struct virtio_net_hdr): the header a tap opened
// with IFF_VNET_HDR puts before every frame (TUNSETVNETHDRSZ's default).
const VnetHdrLen = 10

// VnetHdr mirrors struct virtio_net_hdr (include/uapi/linux/virtio_net.h),
// in the tap's native (little-endian on x86) byte order:
//
//	struct virtio_net_hdr {
//	    __u8 flags;         // VIRTIO_NET_HDR_F_*
//	    __u8 gso_type;      // VIRTIO_NET_HDR_GSO_*
//	    __virtio16 hdr_len;     // Ethernet + IP + TCP/UDP header bytes
//	    __virtio16 gso_size;    // bytes of payload per segment
//	    __virtio16 csum_start;  // where to start checksumming
//	    __virtio16 csum_offset; // where after csum_start to store it
//	};
type VnetHdr struct {
	Flags      uint8
	GSOType    uint8
	HdrLen     uint16
	GSOSize    uint16
	CsumStart  uint16
	CsumOffset uint16
}

// VnetHdr flags and GSO types (include/uapi/linux/virtio_net.h).
const (
	// VnetFlagNeedsCsum (VIRTIO_NET_HDR_F_NEEDS_CSUM): the checksum at
	// CsumStart+CsumOffset holds only the pseudo-header sum; the rest is
	// to be computed from CsumStart to the end of the frame
	// (CHECKSUM_PARTIAL).
	VnetFlagNeedsCsum = 1
	// VnetFlagDataValid (VIRTIO_NET_HDR_F_DATA_VALID): the checksums were
	// verified (CHECKSUM_UNNECESSARY); only on frames read from the tap.
	VnetFlagDataValid = 2

	VnetGSONone  = 0    // VIRTIO_NET_HDR_GSO_NONE
	VnetGSOTCPv4 = 1    // VIRTIO_NET_HDR_GSO_TCPV4
	VnetGSOUDP   = 3    // VIRTIO_NET_HDR_GSO_UDP (UFO)
	VnetGSOTCPv6 = 4    // VIRTIO_NET_HDR_GSO_TCPV6
	VnetGSOUDPL4 = 5    // VIRTIO_NET_HDR_GSO_UDP_L4 (USO)
	VnetGSOECN   = 0x80 // VIRTIO_NET_HDR_GSO_ECN: TCP with ECN (CWR) set
)

// Offload flags for Tap.SetOffload (TUN_F_*, include/uapi/linux/if_tun.h):
// which partial frames the kernel may hand to us.
const (
	OffloadCsum   = 0x01 // TUN_F_CSUM: frames with VnetFlagNeedsCsum
	OffloadTSO4   = 0x02 // TUN_F_TSO4: TCPv4 GSO frames (needs OffloadCsum)
	OffloadTSO6   = 0x04 // TUN_F_TSO6: TCPv6 GSO frames (needs OffloadCsum)
	OffloadTSOECN = 0x08 // TUN_F_TSO_ECN: TSO frames with VnetGSOECN
	OffloadUFO    = 0x10 // TUN_F_UFO
	OffloadUSO4   = 0x20 // TUN_F_USO4
	OffloadUSO6   = 0x40 // TUN_F_USO6
)

// ErrShortFrame: a buffer too short for a virtio_net_hdr.
var ErrShortFrame = errors.New("tap: frame shorter than its virtio_net_hdr")

// DecodeVnetHdr reads the header at the start of b.
func DecodeVnetHdr(b []byte) (VnetHdr, error) {
	if len(b) < VnetHdrLen {
		return VnetHdr{}, ErrShortFrame
	}
	return VnetHdr{
		Flags:      b[0],
		GSOType:    b[1],
		HdrLen:     binary.LittleEndian.Uint16(b[2:]),
		GSOSize:    binary.LittleEndian.Uint16(b[4:]),
		CsumStart:  binary.LittleEndian.Uint16(b[6:]),
		CsumOffset: binary.LittleEndian.Uint16(b[8:]),
	}, nil
}

// Encode writes h into b[:VnetHdrLen]; b must be at least that long.
func (h VnetHdr) Encode(b []byte) {
	_ = b[VnetHdrLen-1]
	b[0] = h.Flags
	b[1] = h.GSOType
	binary.LittleEndian.PutUint16(b[2:], h.HdrLen)
	binary.LittleEndian.PutUint16(b[4:], h.GSOSize)
	binary.LittleEndian.PutUint16(b[6:], h.CsumStart)
	binary.LittleEndian.PutUint16(b[8:], h.CsumOffset)
}
