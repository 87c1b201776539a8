package blkback

import (
	"encoding/binary"
	"errors"
	"fmt"
)

var le = binary.LittleEndian

// ErrShortSlot: a slot shorter than the protocol's request or response.
var ErrShortSlot = errors.New("blkback: ring slot too short")

// Segment mirrors struct blkif_request_segment (blkif.h): one granted
// page and the 512-byte sectors of it to transfer, first_sect to
// last_sect inclusive.
type Segment struct {
	Gref      uint32 // grant_ref_t gref
	FirstSect uint8  // first_sect
	LastSect  uint8  // last_sect
}

// Valid reports whether the sectors lie in the page in order, the check
// xen-blkback makes: first_sect <= last_sect < PAGE_SIZE/512.
func (s Segment) Valid() bool { return s.FirstSect <= s.LastSect && s.LastSect < sectorsPerPage }

// Offset is the segment's byte offset in its page.
func (s Segment) Offset() int { return int(s.FirstSect) << SectorShift }

// Len is the segment's length in bytes (of a Valid segment).
func (s Segment) Len() int { return (int(s.LastSect) - int(s.FirstSect) + 1) << SectorShift }

func getSegment(b []byte) Segment {
	return Segment{Gref: le.Uint32(b), FirstSect: b[4], LastSect: b[5]}
}

func putSegment(b []byte, s Segment) {
	le.PutUint32(b, s.Gref)
	b[4], b[5], b[6], b[7] = s.FirstSect, s.LastSect, 0, 0
}

// Request is one request slot, decoded: the union of struct
// blkif_request, struct blkif_request_discard and struct
// blkif_request_indirect (blkif.h), selected by Operation. Only the
// fields of that struct are set.
type Request struct {
	Operation uint8  // BLKIF_OP_*
	Handle    uint16 // blkif_vdev_t handle (xen-blkback ignores it, as does this backend)
	ID        uint64 // echoed in the response
	Sector    uint64 // sector_number, in 512-byte units

	// NrSegments is nr_segments: a uint8 in blkif_request, a uint16 in
	// blkif_request_indirect. It is what the guest wrote, unchecked.
	NrSegments uint16
	// Seg holds blkif_request.seg[0:min(NrSegments, 11)] of a direct
	// request.
	Seg [MaxSegments]Segment

	// Flag (BLKIF_DISCARD_SECURE) and NrSectors are
	// blkif_request_discard's.
	Flag      uint8
	NrSectors uint64

	// IndirectOp and IndirectGrefs are blkif_request_indirect's: the
	// operation (BLKIF_OP_READ or WRITE) and the pages holding its
	// segments.
	IndirectOp    uint8
	IndirectGrefs [MaxIndirectPages]uint32
}

// DataOp is the operation that moves data: IndirectOp for
// BLKIF_OP_INDIRECT, else Operation. It is also what the response's
// operation field carries, as xen-blkback answers an indirect request
// with its indirect_op and xen-blkfront checks that.
func (r *Request) DataOp() uint8 {
	if r.Operation == OpIndirect {
		return r.IndirectOp
	}
	return r.Operation
}

// ParseRequest decodes the request in slot, in protocol p's layout. It
// reads each byte of the slot at most once, so a guest rewriting the
// slot meanwhile cannot make the fields disagree (RING_COPY_REQUEST); it
// checks nothing beyond the slot's length.
func ParseRequest(p Protocol, slot []byte) (Request, error) {
	l := p.layout()
	var r Request
	if len(slot) < l.slot {
		return r, fmt.Errorf("%w: %d bytes, want %d", ErrShortSlot, len(slot), l.slot)
	}
	var b [112]byte // a private copy: one read of guest memory
	copy(b[:], slot[:l.slot])
	r.Operation = b[0]
	switch r.Operation {
	case OpDiscard:
		r.Flag = b[1]
		r.Handle = le.Uint16(b[2:])
		r.ID = le.Uint64(b[l.discID:])
		r.Sector = le.Uint64(b[l.discSector:])
		r.NrSectors = le.Uint64(b[l.discNrSectors:])
	case OpIndirect:
		r.IndirectOp = b[1]
		r.NrSegments = le.Uint16(b[l.indNrSegs:])
		r.ID = le.Uint64(b[l.indID:])
		r.Sector = le.Uint64(b[l.indSector:])
		r.Handle = le.Uint16(b[l.indHandle:])
		for i := range r.IndirectGrefs {
			r.IndirectGrefs[i] = le.Uint32(b[l.indGrefs+4*i:])
		}
	default:
		r.NrSegments = uint16(b[1])
		r.Handle = le.Uint16(b[2:])
		r.ID = le.Uint64(b[l.reqID:])
		r.Sector = le.Uint64(b[l.reqSector:])
		n := min(int(r.NrSegments), MaxSegments)
		for i := 0; i < n; i++ {
			r.Seg[i] = getSegment(b[l.reqSeg+SegmentSize*i:])
		}
	}
	return r, nil
}

// Encode writes r into slot in protocol p's layout, zeroing the rest of
// the slot: what a frontend does (the test frontend, and the fuzzer's
// seeds). A direct request writes Seg[:min(NrSegments, 11)].
func (r *Request) Encode(p Protocol, slot []byte) error {
	l := p.layout()
	if len(slot) < l.slot {
		return fmt.Errorf("%w: %d bytes, want %d", ErrShortSlot, len(slot), l.slot)
	}
	b := slot[:l.slot]
	clear(b)
	b[0] = r.Operation
	switch r.Operation {
	case OpDiscard:
		b[1] = r.Flag
		le.PutUint16(b[2:], r.Handle)
		le.PutUint64(b[l.discID:], r.ID)
		le.PutUint64(b[l.discSector:], r.Sector)
		le.PutUint64(b[l.discNrSectors:], r.NrSectors)
	case OpIndirect:
		b[1] = r.IndirectOp
		le.PutUint16(b[l.indNrSegs:], r.NrSegments)
		le.PutUint64(b[l.indID:], r.ID)
		le.PutUint64(b[l.indSector:], r.Sector)
		le.PutUint16(b[l.indHandle:], r.Handle)
		for i, g := range r.IndirectGrefs {
			le.PutUint32(b[l.indGrefs+4*i:], g)
		}
	default:
		b[1] = uint8(r.NrSegments)
		le.PutUint16(b[2:], r.Handle)
		le.PutUint64(b[l.reqID:], r.ID)
		le.PutUint64(b[l.reqSector:], r.Sector)
		n := min(int(r.NrSegments), MaxSegments)
		for i := 0; i < n; i++ {
			putSegment(b[l.reqSeg+SegmentSize*i:], r.Seg[i])
		}
	}
	return nil
}

// ParseSegments decodes the blkif_request_segment array of an indirect
// request's pages, concatenated in b, into dst (len(dst) entries).
func ParseSegments(b []byte, dst []Segment) error {
	if len(b) < len(dst)*SegmentSize {
		return fmt.Errorf("blkback: %d indirect segments in %d bytes", len(dst), len(b))
	}
	for i := range dst {
		dst[i] = getSegment(b[i*SegmentSize:])
	}
	return nil
}

// PutSegments encodes segs into b (the frontend side of ParseSegments).
func PutSegments(b []byte, segs []Segment) {
	for i, s := range segs {
		putSegment(b[i*SegmentSize:], s)
	}
}

// Response mirrors struct blkif_response (blkif.h).
type Response struct {
	ID        uint64 // copied from the request
	Operation uint8  // copied from the request (indirect_op for BLKIF_OP_INDIRECT)
	Status    int16  // BLKIF_RSP_*
}

// PutResponse writes rsp into slot in protocol p's layout. The padding
// bytes are zeroed, so nothing from the backend leaks into the ring.
func PutResponse(p Protocol, slot []byte, rsp Response) error {
	l := p.layout()
	if len(slot) < l.rspSize {
		return fmt.Errorf("%w: %d bytes, want %d", ErrShortSlot, len(slot), l.rspSize)
	}
	var b [16]byte
	le.PutUint64(b[0:], rsp.ID)
	b[l.rspOp] = rsp.Operation
	le.PutUint16(b[l.rspStatus:], uint16(rsp.Status))
	copy(slot, b[:l.rspSize])
	return nil
}

// ParseResponse decodes a response slot (the frontend side).
func ParseResponse(p Protocol, slot []byte) (Response, error) {
	l := p.layout()
	if len(slot) < l.rspSize {
		return Response{}, fmt.Errorf("%w: %d bytes, want %d", ErrShortSlot, len(slot), l.rspSize)
	}
	var b [16]byte
	copy(b[:], slot[:l.rspSize])
	return Response{
		ID:        le.Uint64(b[0:]),
		Operation: b[l.rspOp],
		Status:    int16(le.Uint16(b[l.rspStatus:])),
	}, nil
}
