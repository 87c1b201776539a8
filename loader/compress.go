package loader

import (
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz/lzma"
)

// compression names a compressed-data format, detected by its magic as
// Xen's xc_dom_probe_bzimage_kernel does.
type compression string

const (
	compGzip  compression = "gzip"
	compBzip2 compression = "bzip2"
	compXZ    compression = "xz"
	compLZMA  compression = "lzma"
	compLZ4   compression = "lz4"
	compZstd  compression = "zstd"
	compLZO   compression = "lzo"
)

var magics = []struct {
	magic []byte
	comp  compression
}{
	{[]byte{0x1f, 0x8b}, compGzip},
	{[]byte("BZh"), compBzip2},
	{[]byte{0xfd, '7', 'z', 'X', 'Z', 0x00}, compXZ},
	{[]byte{0x28, 0xb5, 0x2f, 0xfd}, compZstd},
	{[]byte{0x5d, 0x00}, compLZMA},
	{[]byte{0x89, 'L', 'Z', 'O'}, compLZO},
	// LZ4's legacy frame (lz4 -l), which Linux uses; magic 0x184C2102.
	{[]byte{0x02, 0x21, 0x4c, 0x18}, compLZ4},
}

func detectCompression(b []byte) (compression, bool) {
	for _, m := range magics {
		if bytes.HasPrefix(b, m.magic) {
			return m.comp, true
		}
	}
	return "", false
}

// decompress expands in, which is in format c, refusing to produce more
// than limit bytes. sizeHint, when not 0, is the expected size (Linux
// appends it to bzImage payloads); it only bounds dictionaries and
// preallocation.
func decompress(c compression, in []byte, sizeHint uint64, limit int64) (out []byte, err error) {
	defer func() {
		// The decoders are not expected to panic; a damaged stream must
		// not take the caller down with it if one does.
		if r := recover(); r != nil {
			out, err = nil, malformed("%s: decoder failed on a damaged stream: %v", c, r)
		}
	}()
	switch c {
	case compGzip:
		return gunzip(in, limit)
	case compBzip2:
		return readAllLimited(bzip2.NewReader(bytes.NewReader(in)), c, limit, sizeHint, len(in))
	case compXZ:
		return unxz(in, sizeHint, limit)
	case compLZMA:
		return unlzma(in, sizeHint, limit)
	case compLZ4:
		return unlz4Legacy(in, limit)
	case compZstd:
		return unzstd(in, sizeHint, limit)
	case compLZO:
		return nil, unsupported("LZO-compressed kernels are not supported (rebuild with CONFIG_KERNEL_XZ, GZIP or ZSTD)")
	}
	return nil, unsupported("unknown compression %q", c)
}

// readAllLimited reads r to its end, failing with ErrTooLarge past limit
// bytes.
func readAllLimited(r io.Reader, c compression, limit int64, sizeHint uint64, inLen int) ([]byte, error) {
	var buf bytes.Buffer
	// Preallocate for the expected size, but never trust a hint far
	// beyond what the input could plausibly expand to.
	if sizeHint > 0 && sizeHint <= uint64(limit) && sizeHint <= 64*uint64(inLen)+(1<<20) {
		buf.Grow(int(sizeHint))
	}
	n, err := io.Copy(&buf, io.LimitReader(r, limit+1))
	if errors.Is(err, zstd.ErrDecoderSizeExceeded) {
		return nil, tooLarge(c, limit)
	}
	if err != nil {
		return nil, malformed("%s: %v", c, err)
	}
	if n > limit {
		return nil, tooLarge(c, limit)
	}
	return buf.Bytes(), nil
}

func tooLarge(c compression, limit int64) error {
	return &reason{fmt.Sprintf("%s: %s (%d MiB)", c, ErrTooLarge, limit>>20), ErrTooLarge}
}

// gunzip reads one gzip member, as Xen's xc_dom_try_gunzip does; bytes
// after it are ignored.
func gunzip(in []byte, limit int64) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(in))
	if err != nil {
		return nil, malformed("gzip: %v", err)
	}
	zr.Multistream(false)
	var hint uint64
	if len(in) >= 4 {
		hint = uint64(le.Uint32(in[len(in)-4:])) // ISIZE
	}
	return readAllLimited(zr, compGzip, limit, hint, len(in))
}

// lzmaHeaderLen is the .lzma ("LZMA alone") header: properties byte,
// 32-bit dictionary size, 64-bit uncompressed size (all ones: unknown).
const lzmaHeaderLen = 13

// unlzma decodes a .lzma stream. The dictionary is never larger than the
// output can be (the header's uncompressed size, else sizeHint, else
// limit), so a damaged header cannot make it allocate gigabytes.
func unlzma(in []byte, sizeHint uint64, limit int64) ([]byte, error) {
	if len(in) < lzmaHeaderLen {
		return nil, malformed("lzma: truncated header")
	}
	hdr := bytes.Clone(in[:lzmaHeaderLen])
	dict := uint64(le.Uint32(hdr[1:]))
	bound := uint64(limit)
	if size := le.Uint64(hdr[5:]); size != ^uint64(0) {
		if size > uint64(limit) {
			return nil, tooLarge(compLZMA, limit)
		}
		bound = size
	} else if sizeHint > 0 && sizeHint < bound {
		bound = sizeHint
	}
	dict = max(min(dict, bound), lzma.MinDictCap)
	le.PutUint32(hdr[1:], uint32(min(dict, 1<<31-1)))
	zr, err := lzma.ReaderConfig{DictCap: 1<<31 - 1}.NewReader(io.MultiReader(bytes.NewReader(hdr), bytes.NewReader(in[lzmaHeaderLen:])))
	if err != nil {
		return nil, malformed("lzma: %v", err)
	}
	return readAllLimited(zr, compLZMA, limit, sizeHint, len(in))
}

// lz4 legacy frame, as Linux's lz4 -l and Xen's unlz4 (xen/common/unlz4.c)
// read it: the magic, then blocks, each a 32-bit little-endian compressed
// length and an LZ4 block of at most 8 MiB uncompressed; the magic may
// recur (concatenated frames).
const (
	lz4LegacyMagic = 0x184c2102
	lz4LegacyChunk = 8 << 20
)

func unlz4Legacy(in []byte, limit int64) ([]byte, error) {
	if len(in) < 4 || le.Uint32(in) != lz4LegacyMagic {
		return nil, malformed("lz4: not a legacy LZ4 frame")
	}
	var out []byte
	chunk := make([]byte, lz4LegacyChunk)
	maxCompressed := lz4.CompressBlockBound(lz4LegacyChunk)
	for p := 4; len(in)-p >= 4; {
		n := le.Uint32(in[p:])
		p += 4
		if n == lz4LegacyMagic {
			continue
		}
		if n == 0 {
			break
		}
		if uint64(n) > uint64(maxCompressed) || uint64(n) > uint64(len(in)-p) {
			return nil, malformed("lz4: block of %d bytes at offset %d does not fit", n, p-4)
		}
		m, err := lz4.UncompressBlock(in[p:p+int(n)], chunk)
		if err != nil {
			return nil, malformed("lz4: block at offset %d: %v", p-4, err)
		}
		if int64(len(out))+int64(m) > limit {
			return nil, tooLarge(compLZ4, limit)
		}
		out = append(out, chunk[:m]...)
		p += int(n)
	}
	return out, nil
}

func unzstd(in []byte, sizeHint uint64, limit int64) ([]byte, error) {
	zr, err := zstd.NewReader(bytes.NewReader(in),
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxMemory(uint64(limit)),
		zstd.WithDecoderMaxWindow(uint64(min(limit, 1<<30))))
	if err != nil {
		return nil, malformed("zstd: %v", err)
	}
	defer zr.Close()
	return readAllLimited(zr, compZstd, limit, sizeHint, len(in))
}
