package loader

import (
	"bytes"
	"crypto/sha256"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"io"

	"github.com/ulikunitz/xz/lzma"
)

// The .xz container (https://tukaani.org/xz/xz-file-format.txt), read here
// rather than by github.com/ulikunitz/xz because Linux compresses its x86
// kernels with `xz --x86 --lzma2`: a filter chain of the x86 BCJ filter
// and LZMA2, which that package rejects. The LZMA2 data is decoded by
// github.com/ulikunitz/xz/lzma; the BCJ filter is bcjX86Decode.

const (
	xzHeaderLen   = 12
	xzFilterX86   = 0x04
	xzFilterLZMA2 = 0x21
)

// xz check types (stream flags, low nibble) and their sizes.
const (
	xzCheckNone   = 0x0
	xzCheckCRC32  = 0x1
	xzCheckCRC64  = 0x4
	xzCheckSHA256 = 0xa
)

var crc64Table = crc64.MakeTable(crc64.ECMA)

// unxz decodes the first stream of an .xz file: its blocks, up to the
// index. Each block's check is verified. sizeHint bounds the LZMA2
// dictionary (with limit), as the output can never need a larger one.
func unxz(in []byte, sizeHint uint64, limit int64) ([]byte, error) {
	if len(in) < xzHeaderLen || !bytes.HasPrefix(in, []byte{0xfd, '7', 'z', 'X', 'Z', 0}) {
		return nil, malformed("xz: bad stream header")
	}
	flags := in[6:8]
	if crc32.ChecksumIEEE(flags) != le.Uint32(in[8:]) {
		return nil, malformed("xz: stream header CRC mismatch")
	}
	if flags[0] != 0 || flags[1]&0xf0 != 0 {
		return nil, unsupported("xz: unsupported stream flags %#x", flags)
	}
	checkType := flags[1] & 0x0f
	var checkLen int
	var newHash func() hash.Hash
	switch checkType {
	case xzCheckNone:
	case xzCheckCRC32:
		checkLen, newHash = 4, func() hash.Hash { return crc32.NewIEEE() }
	case xzCheckCRC64:
		checkLen, newHash = 8, func() hash.Hash { return crc64.New(crc64Table) }
	case xzCheckSHA256:
		checkLen, newHash = 32, sha256.New
	default:
		return nil, unsupported("xz: unsupported check type %#x", checkType)
	}

	var out []byte
	pos := xzHeaderLen
	for {
		if pos >= len(in) {
			return nil, malformed("xz: truncated before the index")
		}
		if in[pos] == 0 { // index indicator: no more blocks
			return out, nil
		}
		blockStart := len(out)
		var err error
		pos, out, err = xzBlock(in, pos, out, sizeHint, limit)
		if err != nil {
			return nil, err
		}
		// Block padding to a multiple of four, then the check.
		for pos%4 != 0 {
			if pos >= len(in) || in[pos] != 0 {
				return nil, malformed("xz: bad block padding")
			}
			pos++
		}
		if len(in)-pos < checkLen {
			return nil, malformed("xz: truncated block check")
		}
		if newHash != nil {
			h := newHash()
			h.Write(out[blockStart:])
			if !bytes.Equal(sumLE(h, checkType), in[pos:pos+checkLen]) {
				return nil, malformed("xz: block check mismatch (corrupt data)")
			}
		}
		pos += checkLen
	}
}

// sumLE returns the check as stored in .xz: CRC32 and CRC64 little-endian,
// SHA-256 as is.
func sumLE(h hash.Hash, checkType byte) []byte {
	s := h.Sum(nil)
	if checkType == xzCheckCRC32 || checkType == xzCheckCRC64 {
		for i, j := 0, len(s)-1; i < j; i, j = i+1, j-1 {
			s[i], s[j] = s[j], s[i]
		}
	}
	return s
}

// xzBlock decodes the block whose header starts at in[pos], appending
// its data to out; it returns the position just past the compressed data.
func xzBlock(in []byte, pos int, out []byte, sizeHint uint64, limit int64) (int, []byte, error) {
	hdrLen := (int(in[pos]) + 1) * 4
	if len(in)-pos < hdrLen {
		return 0, nil, malformed("xz: truncated block header")
	}
	hdr := in[pos : pos+hdrLen]
	if crc32.ChecksumIEEE(hdr[:hdrLen-4]) != le.Uint32(hdr[hdrLen-4:]) {
		return 0, nil, malformed("xz: block header CRC mismatch")
	}
	body := hdr[:hdrLen-4]
	flags := body[1]
	if flags&0x3c != 0 {
		return 0, nil, unsupported("xz: unsupported block flags %#x", flags)
	}
	p := 2
	var err error
	compSize, uncompSize := int64(-1), int64(-1)
	if flags&0x40 != 0 {
		var v uint64
		if v, p, err = xzVarint(body, p); err != nil {
			return 0, nil, err
		}
		compSize = int64(min(v, 1<<62))
	}
	if flags&0x80 != 0 {
		var v uint64
		if v, p, err = xzVarint(body, p); err != nil {
			return 0, nil, err
		}
		uncompSize = int64(min(v, 1<<62))
	}
	nFilters := int(flags&3) + 1
	x86 := false
	var x86Start uint32
	var dictProp byte
	for i := 0; i < nFilters; i++ {
		var id, propLen uint64
		if id, p, err = xzVarint(body, p); err != nil {
			return 0, nil, err
		}
		if propLen, p, err = xzVarint(body, p); err != nil {
			return 0, nil, err
		}
		if propLen > uint64(len(body)-p) {
			return 0, nil, malformed("xz: filter properties run past the block header")
		}
		props := body[p : p+int(propLen)]
		p += int(propLen)
		last := i == nFilters-1
		switch {
		case id == xzFilterLZMA2 && last && len(props) == 1:
			dictProp = props[0]
		case id == xzFilterX86 && !last && !x86 && (len(props) == 0 || len(props) == 4):
			x86 = true
			if len(props) == 4 {
				x86Start = le.Uint32(props)
			}
		default:
			return 0, nil, unsupported("xz: unsupported filter chain (filter %#x at position %d of %d); only [x86 BCJ,] LZMA2 is supported", id, i+1, nFilters)
		}
	}
	for _, b := range body[p:] {
		if b != 0 {
			return 0, nil, malformed("xz: non-zero block header padding")
		}
	}
	if dictProp > 40 {
		return 0, nil, malformed("xz: bad LZMA2 dictionary size %d", dictProp)
	}
	dict := uint64(1<<32 - 1)
	if dictProp < 40 {
		dict = uint64(2|dictProp&1) << (dictProp/2 + 11)
	}
	bound := uint64(limit)
	if uncompSize >= 0 {
		bound = min(bound, uint64(uncompSize))
	} else if sizeHint > 0 {
		bound = min(bound, sizeHint)
	}
	dict = max(min(dict, bound, 1<<31-1), lzma.MinDictCap)

	pos += hdrLen
	data := in[pos:]
	if compSize >= 0 {
		if compSize > int64(len(data)) {
			return 0, nil, malformed("xz: block's compressed size runs past the end")
		}
		data = data[:compSize]
	}
	br := bytes.NewReader(data)
	zr, err := lzma.Reader2Config{DictCap: int(dict)}.NewReader2(br)
	if err != nil {
		return 0, nil, malformed("xz: %v", err)
	}
	start := len(out)
	room := limit - int64(start)
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(zr, room+1))
	if err != nil {
		return 0, nil, malformed("xz: %v", err)
	}
	if n > room {
		return 0, nil, tooLarge(compXZ, limit)
	}
	if uncompSize >= 0 && n != uncompSize {
		return 0, nil, malformed("xz: block decoded to %d bytes, header says %d", n, uncompSize)
	}
	used := len(data) - br.Len()
	if compSize >= 0 && int64(used) != compSize {
		return 0, nil, malformed("xz: block used %d compressed bytes, header says %d", used, compSize)
	}
	out = append(out, buf.Bytes()...)
	if x86 {
		bcjX86Decode(out[start:], x86Start)
	}
	return pos + used, out, nil
}

// xzVarint reads a multibyte integer of the .xz format (7 bits a byte,
// least significant first, at most 9 bytes).
func xzVarint(b []byte, p int) (uint64, int, error) {
	var v uint64
	for i := 0; i < 9; i++ {
		if p >= len(b) {
			return 0, 0, malformed("xz: truncated integer in block header")
		}
		c := b[p]
		p++
		v |= uint64(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			if i > 0 && c == 0 {
				return 0, 0, malformed("xz: non-minimal integer in block header")
			}
			return v, p, nil
		}
	}
	return 0, 0, malformed("xz: integer in block header too long")
}

// bcjX86Decode undoes the x86 branch/call/jump filter in place over a
// whole block (buf holds the block's data, which started at stream offset
// start). The encoder turned the relative 32-bit targets of E8 (CALL) and
// E9 (JMP) instructions into absolute ones to help compression; decoding
// turns them back. The scan state (which of the previous three bytes were
// E8/E9 opcodes) follows the reference filter of the LZMA SDK and
// xz-embedded, of which this is an independent rendering.
func bcjX86Decode(buf []byte, start uint32) {
	// allowed[m] and bitNum[m] for the mask m of recent E8/E9 bytes.
	allowed := [8]bool{true, true, true, false, true, false, false, false}
	bitNum := [8]uint32{0, 1, 2, 2, 3, 3, 3, 3}
	msByte := func(b byte) bool { return b == 0x00 || b == 0xff }

	if len(buf) <= 4 {
		return
	}
	limit := len(buf) - 4
	prevPos := -1
	var prevMask uint32
	for i := 0; i < limit; i++ {
		if buf[i]&0xfe != 0xe8 {
			continue
		}
		d := i - prevPos
		if d > 3 {
			prevMask = 0
		} else {
			prevMask = (prevMask << (d - 1)) & 7
			if prevMask != 0 {
				b := buf[i+4-int(bitNum[prevMask])]
				if !allowed[prevMask] || msByte(b) {
					prevPos = i
					prevMask = (prevMask << 1) | 1
					continue
				}
			}
		}
		prevPos = i
		if !msByte(buf[i+4]) {
			prevMask = (prevMask << 1) | 1
			continue
		}
		src := le.Uint32(buf[i+1:])
		var dest uint32
		for {
			dest = src - (start + uint32(i) + 5)
			if prevMask == 0 {
				break
			}
			j := bitNum[prevMask] * 8
			if !msByte(byte(dest >> (24 - j))) {
				break
			}
			src = dest ^ (1<<(32-j) - 1)
		}
		dest &= 0x01ffffff
		dest |= -(dest & 0x01000000)
		le.PutUint32(buf[i+1:], dest)
		i += 4
	}
}
