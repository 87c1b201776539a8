package loader

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz"
	"github.com/ulikunitz/xz/lzma"
)

// payloadSHA256 is the SHA-256 of the payload testdata/gen.sh compressed
// (it prints it).
const payloadSHA256 = "f8376cbeda26380adf01f762ed5fc3b032d7b011d63e3d63508ed022d15368d9"

func TestDecompressRealToolOutput(t *testing.T) {
	// Fixtures made by gzip, bzip2, xz (with the x86 BCJ filter, several
	// blocks, each check type), lzma, lz4 -l and zstd: see testdata/gen.sh.
	tests := []struct {
		file string
		comp compression
	}{
		{"payload.gz", compGzip},
		{"payload.bz2", compBzip2},
		{"payload-x86.xz", compXZ},
		{"payload-x86-blocks.xz", compXZ},
		{"payload-sha256.xz", compXZ},
		{"payload.lzma", compLZMA},
		{"payload.lz4", compLZ4},
		{"payload.zst", compZstd},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			in, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			c, ok := detectCompression(in)
			if !ok || c != tt.comp {
				t.Fatalf("detected %q, %v; want %q", c, ok, tt.comp)
			}
			var hint uint64
			if c != compGzip {
				hint = uint64(binary.LittleEndian.Uint32(in[len(in)-4:]))
				in = in[:len(in)-4]
			}
			out, err := decompress(c, in, hint, 1<<20)
			if err != nil {
				t.Fatalf("decompress: %v", err)
			}
			sum := sha256.Sum256(out)
			if got := hex.EncodeToString(sum[:]); got != payloadSHA256 {
				t.Errorf("decompressed %d bytes with SHA-256 %s, want %s", len(out), got, payloadSHA256)
			}
			// The limit is exact: the payload's size passes, one byte less
			// fails cleanly.
			if _, err := decompress(c, in, hint, int64(len(out))); err != nil {
				t.Errorf("with a limit of exactly %d bytes: %v", len(out), err)
			}
			if _, err := decompress(c, in, hint, int64(len(out))-1); !errors.Is(err, ErrTooLarge) {
				t.Errorf("with a limit of %d bytes: %v, want ErrTooLarge", len(out)-1, err)
			}
			// A damaged stream is an error, not a panic or silent garbage.
			bad := bytes.Clone(in)
			for i := len(bad) / 3; i < len(bad)/3+16; i++ {
				bad[i] ^= 0x55
			}
			if out, err := decompress(c, bad, hint, 1<<20); err == nil && bytes.Equal(out, out[:0]) {
				t.Errorf("damaged stream decoded to nothing without error")
			} else if err == nil {
				sum := sha256.Sum256(out)
				if hex.EncodeToString(sum[:]) == payloadSHA256 {
					t.Errorf("damaged stream decoded to the original")
				}
			}
		})
	}
}

func TestXZDamagedChecks(t *testing.T) {
	in, err := os.ReadFile("testdata/payload-x86.xz")
	if err != nil {
		t.Fatal(err)
	}
	in = in[:len(in)-4]
	// Find the block's stored CRC32, which covers the data after the
	// x86 filter is undone.
	end, _, err := xzBlock(in, xzHeaderLen, nil, 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	end = (end + 3) &^ 3
	for _, tt := range []struct {
		off  int
		what string
	}{
		{8, "stream header CRC mismatch"},
		{xzHeaderLen + 1, "block header CRC mismatch"},
		{end, "block check mismatch"},
	} {
		bad := bytes.Clone(in)
		bad[tt.off] ^= 1
		if _, err := unxz(bad, 0, 1<<20); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tt.what) {
			t.Errorf("byte %d flipped: %v, want %q", tt.off, err, tt.what)
		}
	}
	if _, err := unxz(in[:end+2], 0, 1<<20); !errors.Is(err, ErrMalformed) {
		t.Errorf("truncated in the check: %v", err)
	}
}

func gzipBytes(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func lz4Legacy(t testing.TB, b []byte) []byte {
	out := binary.LittleEndian.AppendUint32(nil, lz4LegacyMagic)
	for len(b) > 0 {
		n := min(len(b), lz4LegacyChunk)
		dst := make([]byte, lz4.CompressBlockBound(n))
		m, err := lz4.CompressBlock(b[:n], dst, nil)
		if err != nil || m == 0 {
			t.Fatalf("lz4: %d, %v", m, err)
		}
		out = binary.LittleEndian.AppendUint32(out, uint32(m))
		out = append(out, dst[:m]...)
		b = b[n:]
	}
	return out
}

// compressWith compresses b as Linux does a bzImage payload (with the size
// appended, except for gzip).
func compressWith(t testing.TB, c compression, b []byte) []byte {
	t.Helper()
	var out []byte
	switch c {
	case compGzip:
		return gzipBytes(t, b)
	case compZstd:
		enc, err := zstd.NewWriter(nil)
		if err != nil {
			t.Fatal(err)
		}
		out = enc.EncodeAll(b, nil)
	case compLZ4:
		out = lz4Legacy(t, b)
	case compLZMA:
		var buf bytes.Buffer
		w, err := lzma.WriterConfig{EOSMarker: true}.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(b)
		w.Close()
		out = buf.Bytes()
	case compXZ:
		var buf bytes.Buffer
		w, err := xz.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(b)
		w.Close()
		out = buf.Bytes()
	default:
		t.Fatalf("no compressor for %s", c)
	}
	return binary.LittleEndian.AppendUint32(out, uint32(len(b)))
}

// makeBzImage wraps payload in a minimal bzImage: boot sector and one
// setup sector, the "HdrS" header of protocol version, and the payload
// 0x100 bytes into the protected-mode code.
func makeBzImage(payload []byte, version uint16) []byte {
	const setupSects = 1
	pm := (setupSects + 1) * 512
	b := make([]byte, pm+0x100, pm+0x100+len(payload)+0x200)
	b[0] = 'M'
	b[1] = 'Z'
	b[bzSetupSects] = setupSects
	copy(b[bzHeaderMagic:], "HdrS")
	binary.LittleEndian.PutUint16(b[bzVersion:], version)
	binary.LittleEndian.PutUint32(b[bzPayloadOffset:], 0x100)
	binary.LittleEndian.PutUint32(b[bzPayloadLength:], uint32(len(payload)))
	b = append(b, payload...)
	return append(b, make([]byte, 0x200)...) // the decompressor's tail code
}

func TestBzImage(t *testing.T) {
	kernel := buildELF(t, linuxSpec())
	for _, c := range []compression{compGzip, compXZ, compLZMA, compLZ4, compZstd} {
		t.Run(string(c), func(t *testing.T) {
			img, err := Load("vmlinuz", makeBzImage(compressWith(t, c, kernel), 0x020f))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if img.Format != Format("bzImage+"+string(c)) || img.Entry != linuxEntry || len(img.Segments) != 3 {
				t.Errorf("format %q entry %#x segments %d", img.Format, img.Entry, len(img.Segments))
			}
		})
	}
}

func TestCompressedELF(t *testing.T) {
	kernel := buildELF(t, legacySpec(netbsdGuestInfo))
	tests := []struct {
		data   []byte
		format Format
	}{
		{kernel, "elf"},
		{gzipBytes(t, kernel), "gzip+elf"},
		{compressWith(t, compXZ, kernel)[:len(compressWith(t, compXZ, kernel))-4], "xz+elf"},
		{gzipBytes(t, makeBzImage(compressWith(t, compZstd, buildELF(t, linuxSpec())), 0x0208)), "gzip+bzImage+zstd"},
	}
	for _, tt := range tests {
		img, err := Load("k", tt.data)
		if err != nil {
			t.Errorf("%s: %v", tt.format, err)
			continue
		}
		if img.Format != tt.format {
			t.Errorf("format %q, want %q", img.Format, tt.format)
		}
	}
	// Only one level of compression is unwrapped, as libxc does.
	if _, err := Load("k", gzipBytes(t, gzipBytes(t, kernel))); !errors.Is(err, ErrMalformed) {
		t.Errorf("gzip of gzip: %v", err)
	}
}

func TestBzImageErrors(t *testing.T) {
	kernel := buildELF(t, linuxSpec())
	gz := compressWith(t, compGzip, kernel)
	short := makeBzImage(gz, 0x020f)
	binary.LittleEndian.PutUint32(short[bzPayloadLength:], uint32(len(short)))
	far := makeBzImage(gz, 0x020f)
	binary.LittleEndian.PutUint32(far[bzPayloadOffset:], 0xfffffff0)
	plain := buildELF(t, func() elfSpec { s := linuxSpec(); s.notes = nil; return s }())

	tests := []struct {
		name string
		data []byte
		want error
		text string
	}{
		{"protocol 2.07", makeBzImage(gz, 0x0207), ErrUnsupported, "older than 2.08"},
		{"payload past the end", short, ErrMalformed, "runs past the end"},
		{"payload offset past the end", far, ErrMalformed, "past the end"},
		{"unknown compression", makeBzImage([]byte("PLAINTEXT-PAYLOAD"), 0x020f), ErrUnsupported, "unknown payload compression"},
		{"LZO", makeBzImage([]byte{0x89, 'L', 'Z', 'O', 0, 0xd, 0xa, 0x1a, 0xa, 0, 0, 0, 0}, 0x020f), ErrUnsupported, "LZO"},
		{"payload not ELF", makeBzImage(compressWith(t, compGzip, []byte("hello")), 0x020f), ErrMalformed, "not an ELF"},
		{"truncated gzip", makeBzImage(gz[:len(gz)/2], 0x020f), ErrMalformed, "gzip"},
		{"truncated setup header", makeBzImage(gz, 0x020f)[:0x210], ErrMalformed, "truncated setup header"},
		{"bzImage without Xen support", makeBzImage(compressWith(t, compZstd, plain), 0x020f), ErrNotPV, "CONFIG_XEN_PV=y"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load("/boot/vmlinuz-x", tt.data)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.text) || !strings.HasPrefix(err.Error(), "loader: /boot/vmlinuz-x: ") {
				t.Errorf("error %v, want %v saying %q", err, tt.want, tt.text)
			}
		})
	}
}

func TestDecompressionLimit(t *testing.T) {
	// A small bomb: 8 MiB of zeros, loaded with a 1 MiB limit, in every
	// format with a Go encoder, must fail with ErrTooLarge.
	zeros := make([]byte, 8<<20)
	for _, c := range []compression{compGzip, compXZ, compLZMA, compLZ4, compZstd} {
		data := makeBzImage(compressWith(t, c, zeros), 0x020f)
		if _, err := load("bomb", data, 1<<20); !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: %v, want ErrTooLarge", c, err)
		}
	}
	if _, err := load("bomb.gz", gzipBytes(t, zeros), 1<<20); !errors.Is(err, ErrTooLarge) {
		t.Errorf("gzip file: %v, want ErrTooLarge", err)
	}
}

func TestLZ4LegacyFraming(t *testing.T) {
	data := bytes.Repeat([]byte("xenvmm loader "), 1000)
	frame := lz4Legacy(t, data)
	// The magic may recur between blocks (concatenated frames), and a
	// zero length ends the data.
	two := append(bytes.Clone(frame), frame...)
	two = binary.LittleEndian.AppendUint32(two, 0)
	two = append(two, "trailing junk"...)
	out, err := unlz4Legacy(two, 1<<20)
	if err != nil || !bytes.Equal(out, append(bytes.Clone(data), data...)) {
		t.Errorf("concatenated frames: %d bytes, %v", len(out), err)
	}
	bad := bytes.Clone(frame)
	binary.LittleEndian.PutUint32(bad[4:], 1<<30)
	if _, err := unlz4Legacy(bad, 1<<20); !errors.Is(err, ErrMalformed) {
		t.Errorf("oversized block: %v", err)
	}
}

func TestXZVarint(t *testing.T) {
	tests := []struct {
		in   []byte
		want uint64
		ok   bool
	}{
		{[]byte{0x00}, 0, true},
		{[]byte{0x7f}, 0x7f, true},
		{[]byte{0x80, 0x01}, 0x80, true},
		{[]byte{0xff, 0xff, 0x03}, 0xffff, true},
		{[]byte{0x80, 0x00}, 0, false},
		{[]byte{0x80}, 0, false},
		{bytes.Repeat([]byte{0x80}, 10), 0, false},
	}
	for _, tt := range tests {
		v, _, err := xzVarint(tt.in, 0)
		if (err == nil) != tt.ok || (tt.ok && v != tt.want) {
			t.Errorf("xzVarint(% x) = %#x, %v", tt.in, v, err)
		}
	}
}
