package blkback

import "fmt"

// Request operations (BLKIF_OP_*, xen/include/public/io/blkif.h).
const (
	OpRead           = 0 // BLKIF_OP_READ
	OpWrite          = 1 // BLKIF_OP_WRITE
	OpWriteBarrier   = 2 // BLKIF_OP_WRITE_BARRIER
	OpFlushDiskcache = 3 // BLKIF_OP_FLUSH_DISKCACHE
	OpReserved1      = 4 // BLKIF_OP_RESERVED_1 (SLES device-specific packets)
	OpDiscard        = 5 // BLKIF_OP_DISCARD
	OpIndirect       = 6 // BLKIF_OP_INDIRECT
)

// Response statuses (BLKIF_RSP_*, blkif.h).
const (
	RspOkay        = 0  // BLKIF_RSP_OKAY
	RspError       = -1 // BLKIF_RSP_ERROR: the operation failed (-EIO)
	RspEOPNOTSUPP  = -2 // BLKIF_RSP_EOPNOTSUPP: operation not supported
	DiscardSecure  = 1  // BLKIF_DISCARD_SECURE, blkif_request_discard.flag
	SectorShift    = 9  // ring sector units are 512 bytes whatever sector-size says
	SectorSize     = 1 << SectorShift
	PageSize       = 4096 // XEN_PAGE_SIZE
	sectorsPerPage = PageSize / SectorSize
)

// Limits (blkif.h).
const (
	// MaxSegments is BLKIF_MAX_SEGMENTS_PER_REQUEST: segments in a direct
	// request.
	MaxSegments = 11
	// MaxIndirectPages is BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST.
	MaxIndirectPages = 8
	// SegmentSize is sizeof(struct blkif_request_segment), the same in
	// both layouts.
	SegmentSize = 8
	// SegsPerIndirectPage is PAGE_SIZE / sizeof(struct
	// blkif_request_segment): the segments one indirect page holds.
	SegsPerIndirectPage = PageSize / SegmentSize
	// MaxIndirectSegments is the most segments an indirect request can
	// describe (8 pages of 512); a backend advertises at most this in
	// feature-max-indirect-segments.
	MaxIndirectSegments = MaxIndirectPages * SegsPerIndirectPage
)

// VDISK_* bits of the backend's "info" node (blkif.h).
const (
	VDiskCDROM     = 0x1 // VDISK_CDROM
	VDiskRemovable = 0x2 // VDISK_REMOVABLE
	VDiskReadOnly  = 0x4 // VDISK_READONLY
)

// Protocol is the ring ABI a frontend uses, from its "protocol" node
// (XEN_IO_PROTO_ABI_*, xen/include/public/io/protocols.h). The structs
// are the same C declarations compiled for x86_64 or i386: on i386 a
// uint64_t is only 4-byte aligned, so every field after the first
// uint64_t moves and the request and response slots shrink. A PV guest's
// kernel picks its own; a 32-bit guest on a 64-bit backend writes
// "x86_32-abi".
type Protocol int

const (
	// ProtocolX86_64 is "x86_64-abi", the native layout, also what a
	// missing protocol node means (XEN_IO_PROTO_ABI_NATIVE).
	ProtocolX86_64 Protocol = iota
	// ProtocolX86_32 is "x86_32-abi".
	ProtocolX86_32
)

// ParseProtocol maps a "protocol" node to a Protocol; "" is the native
// x86_64 layout.
func ParseProtocol(s string) (Protocol, error) {
	switch s {
	case "", "x86_64-abi":
		return ProtocolX86_64, nil
	case "x86_32-abi":
		return ProtocolX86_32, nil
	}
	return 0, fmt.Errorf("blkback: unsupported ring protocol %q: want x86_64-abi or x86_32-abi", s)
}

func (p Protocol) String() string {
	switch p {
	case ProtocolX86_64:
		return "x86_64-abi"
	case ProtocolX86_32:
		return "x86_32-abi"
	}
	return fmt.Sprintf("Protocol(%d)", int(p))
}

// layout holds the offsets of the blkif.h structs in one ABI. The names
// are the C fields; the values were printed by a C program compiled
// against blkif.h with -m64 and -m32 (see layout_test.go, which checks
// them again where a compiler is available).
type layout struct {
	slot int // sizeof(union blkif_sring_entry)

	// struct blkif_request (also the common prefix operation,
	// nr_segments/flag/indirect_op, handle of the others).
	reqID, reqSector, reqSeg, reqSize int
	// struct blkif_request_discard.
	discID, discSector, discNrSectors, discSize int
	// struct blkif_request_indirect.
	indNrSegs, indID, indSector, indHandle, indGrefs, indSize int
	// struct blkif_response.
	rspOp, rspStatus, rspSize int
}

var layouts = [...]layout{
	ProtocolX86_64: {
		slot:  112,
		reqID: 8, reqSector: 16, reqSeg: 24, reqSize: 112,
		discID: 8, discSector: 16, discNrSectors: 24, discSize: 32,
		indNrSegs: 2, indID: 8, indSector: 16, indHandle: 24, indGrefs: 28, indSize: 64,
		rspOp: 8, rspStatus: 10, rspSize: 16,
	},
	ProtocolX86_32: {
		slot:  108,
		reqID: 4, reqSector: 12, reqSeg: 20, reqSize: 108,
		discID: 4, discSector: 12, discNrSectors: 20, discSize: 28,
		indNrSegs: 2, indID: 4, indSector: 12, indHandle: 20, indGrefs: 24, indSize: 64,
		rspOp: 8, rspStatus: 10, rspSize: 12,
	},
}

func (p Protocol) layout() *layout {
	if p < 0 || int(p) >= len(layouts) {
		return &layouts[ProtocolX86_64]
	}
	return &layouts[p]
}

// SlotSize is sizeof(union blkif_sring_entry) in the protocol's layout:
// the slot size to give ring.NewBack.
func (p Protocol) SlotSize() int { return p.layout().slot }
