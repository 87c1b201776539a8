package blkback

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// slot builds a request slot by hand: fields at the given offsets.
func slot(size int, fields ...any) []byte {
	b := make([]byte, size)
	for i := 0; i < len(fields); i += 2 {
		off := fields[i].(int)
		switch v := fields[i+1].(type) {
		case uint8:
			b[off] = v
		case uint16:
			binary.LittleEndian.PutUint16(b[off:], v)
		case uint32:
			binary.LittleEndian.PutUint32(b[off:], v)
		case uint64:
			binary.LittleEndian.PutUint64(b[off:], v)
		}
	}
	return b
}

func TestParseRequest(t *testing.T) {
	tests := []struct {
		name string
		p    Protocol
		slot []byte
		want Request
	}{
		{
			name: "x86_64 read, 2 segments",
			p:    ProtocolX86_64,
			slot: slot(112, 0, uint8(OpRead), 1, uint8(2), 2, uint16(0x301), 8, uint64(0xdeadbeef01), 16, uint64(12345),
				24, uint32(77), 28, uint8(1), 29, uint8(7), 32, uint32(78), 36, uint8(0), 37, uint8(3)),
			want: Request{Operation: OpRead, NrSegments: 2, Handle: 0x301, ID: 0xdeadbeef01, Sector: 12345,
				Seg: [11]Segment{{77, 1, 7}, {78, 0, 3}}},
		},
		{
			name: "x86_32 write, 11 segments, last at offset 100",
			p:    ProtocolX86_32,
			slot: slot(108, 0, uint8(OpWrite), 1, uint8(11), 2, uint16(51712), 4, uint64(0x0102030405060708), 12, uint64(1<<40),
				20, uint32(5), 25, uint8(7), 100, uint32(99), 104, uint8(2), 105, uint8(4)),
			want: Request{Operation: OpWrite, NrSegments: 11, Handle: 51712, ID: 0x0102030405060708, Sector: 1 << 40,
				Seg: [11]Segment{0: {5, 0, 7}, 10: {99, 2, 4}}},
		},
		{
			name: "x86_64 nr_segments 255: only 11 read",
			p:    ProtocolX86_64,
			slot: slot(112, 0, uint8(OpWrite), 1, uint8(255), 104, uint32(9)),
			want: Request{Operation: OpWrite, NrSegments: 255, Seg: [11]Segment{10: {9, 0, 0}}},
		},
		{
			name: "x86_64 discard",
			p:    ProtocolX86_64,
			slot: slot(112, 0, uint8(OpDiscard), 1, uint8(DiscardSecure), 2, uint16(3), 8, uint64(42), 16, uint64(2048), 24, uint64(4096)),
			want: Request{Operation: OpDiscard, Flag: DiscardSecure, Handle: 3, ID: 42, Sector: 2048, NrSectors: 4096},
		},
		{
			name: "x86_32 discard",
			p:    ProtocolX86_32,
			slot: slot(108, 0, uint8(OpDiscard), 1, uint8(0), 2, uint16(3), 4, uint64(42), 12, uint64(2048), 20, uint64(4096)),
			want: Request{Operation: OpDiscard, Handle: 3, ID: 42, Sector: 2048, NrSectors: 4096},
		},
		{
			name: "x86_64 indirect",
			p:    ProtocolX86_64,
			slot: slot(112, 0, uint8(OpIndirect), 1, uint8(OpRead), 2, uint16(600), 8, uint64(7), 16, uint64(64), 24, uint16(0xca00),
				28, uint32(1000), 32, uint32(1001), 56, uint32(1007)),
			want: Request{Operation: OpIndirect, IndirectOp: OpRead, NrSegments: 600, ID: 7, Sector: 64, Handle: 0xca00,
				IndirectGrefs: [8]uint32{1000, 1001, 7: 1007}},
		},
		{
			name: "x86_32 indirect",
			p:    ProtocolX86_32,
			slot: slot(108, 0, uint8(OpIndirect), 1, uint8(OpWrite), 2, uint16(12), 4, uint64(7), 12, uint64(64), 20, uint16(0xca00),
				24, uint32(1000), 52, uint32(1007)),
			want: Request{Operation: OpIndirect, IndirectOp: OpWrite, NrSegments: 12, ID: 7, Sector: 64, Handle: 0xca00,
				IndirectGrefs: [8]uint32{1000, 7: 1007}},
		},
		{
			name: "x86_64 flush without segments",
			p:    ProtocolX86_64,
			slot: slot(112, 0, uint8(OpFlushDiskcache), 8, uint64(1)),
			want: Request{Operation: OpFlushDiskcache, ID: 1},
		},
		{
			name: "unknown operation keeps the id",
			p:    ProtocolX86_32,
			slot: slot(108, 0, uint8(200), 4, uint64(0xfeed)),
			want: Request{Operation: 200, ID: 0xfeed},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRequest(tt.p, tt.slot)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
			// Encoding the parse gives the slot back, except for
			// segment entries past the 11th (none here) and bytes
			// the struct does not cover.
			if tt.want.NrSegments <= MaxSegments || tt.want.Operation == OpIndirect {
				enc := make([]byte, len(tt.slot))
				if err := got.Encode(tt.p, enc); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(enc, tt.slot) {
					t.Errorf("Encode(Parse(slot)) = %x\nslot               = %x", enc, tt.slot)
				}
			}
		})
	}
}

func TestParseRequestShortSlot(t *testing.T) {
	for _, p := range []Protocol{ProtocolX86_64, ProtocolX86_32} {
		if _, err := ParseRequest(p, make([]byte, p.SlotSize()-1)); !errors.Is(err, ErrShortSlot) {
			t.Errorf("%v: short slot: %v", p, err)
		}
		var r Request
		if err := r.Encode(p, make([]byte, p.SlotSize()-1)); !errors.Is(err, ErrShortSlot) {
			t.Errorf("%v: encode into short slot: %v", p, err)
		}
		if err := PutResponse(p, make([]byte, 11), Response{}); !errors.Is(err, ErrShortSlot) {
			t.Errorf("%v: short response slot: %v", p, err)
		}
	}
}

func TestResponseLayout(t *testing.T) {
	tests := []struct {
		p    Protocol
		rsp  Response
		want []byte
	}{
		{ProtocolX86_64, Response{ID: 0x0807060504030201, Operation: OpWrite, Status: RspError},
			[]byte{1, 2, 3, 4, 5, 6, 7, 8, 1, 0, 0xff, 0xff, 0, 0, 0, 0}},
		{ProtocolX86_32, Response{ID: 0x0807060504030201, Operation: OpDiscard, Status: RspEOPNOTSUPP},
			[]byte{1, 2, 3, 4, 5, 6, 7, 8, 5, 0, 0xfe, 0xff}},
		{ProtocolX86_32, Response{ID: 9, Operation: OpRead, Status: RspOkay},
			[]byte{9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
	}
	for _, tt := range tests {
		// The slot is dirty: padding must be cleared, bytes beyond
		// the response untouched.
		b := bytes.Repeat([]byte{0xaa}, tt.p.SlotSize())
		if err := PutResponse(tt.p, b, tt.rsp); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b[:len(tt.want)], tt.want) {
			t.Errorf("%v %+v: %x, want %x", tt.p, tt.rsp, b[:len(tt.want)], tt.want)
		}
		if b[len(tt.want)] != 0xaa {
			t.Errorf("%v: wrote past the response", tt.p)
		}
		got, err := ParseResponse(tt.p, b)
		if err != nil || got != tt.rsp {
			t.Errorf("ParseResponse = %+v, %v", got, err)
		}
	}
}

func TestParseProtocol(t *testing.T) {
	for in, want := range map[string]Protocol{"": ProtocolX86_64, "x86_64-abi": ProtocolX86_64, "x86_32-abi": ProtocolX86_32} {
		got, err := ParseProtocol(in)
		if err != nil || got != want {
			t.Errorf("ParseProtocol(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"arm-abi", "x86_64", "X86_32-ABI"} {
		if _, err := ParseProtocol(in); err == nil {
			t.Errorf("ParseProtocol(%q) accepted", in)
		}
	}
}

func TestSegment(t *testing.T) {
	tests := []struct {
		s        Segment
		valid    bool
		off, len int
	}{
		{Segment{1, 0, 7}, true, 0, 4096},
		{Segment{1, 3, 3}, true, 1536, 512},
		{Segment{1, 7, 7}, true, 3584, 512},
		{Segment{1, 4, 3}, false, 0, 0},
		{Segment{1, 0, 8}, false, 0, 0},
		{Segment{1, 255, 255}, false, 0, 0},
	}
	for _, tt := range tests {
		if tt.s.Valid() != tt.valid {
			t.Errorf("%+v Valid = %v", tt.s, !tt.valid)
		}
		if tt.valid && (tt.s.Offset() != tt.off || tt.s.Len() != tt.len) {
			t.Errorf("%+v: offset %d len %d", tt.s, tt.s.Offset(), tt.s.Len())
		}
	}
}

// FuzzParseRequest: any slot parses without panicking, in both layouts;
// re-encoding the parse and parsing again is stable; the id is always
// where the layout puts it.
func FuzzParseRequest(f *testing.F) {
	f.Add([]byte{OpRead, 1, 0, 0, 0, 0, 0, 0, 1}, false)
	f.Add([]byte{OpIndirect, OpWrite, 0xff, 0xff}, true)
	f.Add([]byte{OpDiscard, 1}, false)
	f.Add(bytes.Repeat([]byte{0xff}, 112), true)
	f.Fuzz(func(t *testing.T, b []byte, x86_32 bool) {
		p := ProtocolX86_64
		if x86_32 {
			p = ProtocolX86_32
		}
		s := make([]byte, p.SlotSize())
		copy(s, b)
		r, err := ParseRequest(p, s)
		if err != nil {
			t.Fatal(err)
		}
		if want := binary.LittleEndian.Uint64(s[p.layout().reqID:]); r.ID != want {
			t.Fatalf("id %#x, slot has %#x", r.ID, want)
		}
		enc := make([]byte, p.SlotSize())
		if err := r.Encode(p, enc); err != nil {
			t.Fatal(err)
		}
		r2, err := ParseRequest(p, enc)
		if err != nil {
			t.Fatal(err)
		}
		if r2 != r {
			t.Fatalf("re-parse %+v\n      != %+v", r2, r)
		}
	})
}
