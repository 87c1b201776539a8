package blkback

import (
	"debug/elf"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xenvmm/xenvmm/internal/testenv"
)

// layoutChecks are the blkif.h numbers this package relies on, per
// protocol, with the C expression that gives each. The values in the
// layouts table were printed by compiling these expressions against
// blkif.h with gcc -m64 (x86_64-abi) and -m32 (x86_32-abi).
func layoutChecks(p Protocol) []struct {
	expr string
	got  int
} {
	l := p.layout()
	return []struct {
		expr string
		got  int
	}{
		{"sizeof(union blkif_sring_entry)", l.slot},
		{"__CONST_RING_SIZE(blkif, 4096)", 32},
		{"sizeof(struct blkif_request_segment)", SegmentSize},
		{"offsetof(struct blkif_request_segment, first_sect)", 4},
		{"offsetof(struct blkif_request_segment, last_sect)", 5},
		{"offsetof(struct blkif_request, nr_segments)", 1},
		{"offsetof(struct blkif_request, handle)", 2},
		{"offsetof(struct blkif_request, id)", l.reqID},
		{"offsetof(struct blkif_request, sector_number)", l.reqSector},
		{"offsetof(struct blkif_request, seg)", l.reqSeg},
		{"sizeof(struct blkif_request)", l.reqSize},
		{"offsetof(struct blkif_request_discard, flag)", 1},
		{"offsetof(struct blkif_request_discard, handle)", 2},
		{"offsetof(struct blkif_request_discard, id)", l.discID},
		{"offsetof(struct blkif_request_discard, sector_number)", l.discSector},
		{"offsetof(struct blkif_request_discard, nr_sectors)", l.discNrSectors},
		{"sizeof(struct blkif_request_discard)", l.discSize},
		{"offsetof(struct blkif_request_indirect, indirect_op)", 1},
		{"offsetof(struct blkif_request_indirect, nr_segments)", l.indNrSegs},
		{"offsetof(struct blkif_request_indirect, id)", l.indID},
		{"offsetof(struct blkif_request_indirect, sector_number)", l.indSector},
		{"offsetof(struct blkif_request_indirect, handle)", l.indHandle},
		{"offsetof(struct blkif_request_indirect, indirect_grefs)", l.indGrefs},
		{"sizeof(struct blkif_request_indirect)", l.indSize},
		{"offsetof(struct blkif_response, operation)", l.rspOp},
		{"offsetof(struct blkif_response, status)", l.rspStatus},
		{"sizeof(struct blkif_response)", l.rspSize},
		{"BLKIF_OP_READ", OpRead},
		{"BLKIF_OP_WRITE", OpWrite},
		{"BLKIF_OP_WRITE_BARRIER", OpWriteBarrier},
		{"BLKIF_OP_FLUSH_DISKCACHE", OpFlushDiskcache},
		{"BLKIF_OP_RESERVED_1", OpReserved1},
		{"BLKIF_OP_DISCARD", OpDiscard},
		{"BLKIF_OP_INDIRECT", OpIndirect},
		{"BLKIF_MAX_SEGMENTS_PER_REQUEST", MaxSegments},
		{"BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST", MaxIndirectPages},
		{"BLKIF_DISCARD_SECURE", DiscardSecure},
		{"BLKIF_RSP_OKAY + 16", RspOkay + 16},
		{"BLKIF_RSP_ERROR + 16", RspError + 16},
		{"BLKIF_RSP_EOPNOTSUPP + 16", RspEOPNOTSUPP + 16},
		{"VDISK_CDROM", VDiskCDROM},
		{"VDISK_REMOVABLE", VDiskRemovable},
		{"VDISK_READONLY", VDiskReadOnly},
	}
}

// TestLayoutNumbers pins the layouts to the numbers gcc printed for
// blkif.h, so a change to the table cannot go unnoticed where no
// compiler is at hand.
func TestLayoutNumbers(t *testing.T) {
	want := map[Protocol][]int{
		ProtocolX86_64: {112, 8, 16, 24, 112, 8, 16, 24, 32, 2, 8, 16, 24, 28, 64, 8, 10, 16},
		ProtocolX86_32: {108, 4, 12, 20, 108, 4, 12, 20, 28, 2, 4, 12, 20, 24, 64, 8, 10, 12},
	}
	for p, w := range want {
		l := p.layout()
		got := []int{l.slot, l.reqID, l.reqSector, l.reqSeg, l.reqSize, l.discID, l.discSector, l.discNrSectors, l.discSize,
			l.indNrSegs, l.indID, l.indSector, l.indHandle, l.indGrefs, l.indSize, l.rspOp, l.rspStatus, l.rspSize}
		if fmt.Sprint(got) != fmt.Sprint(w) {
			t.Errorf("%v layout %v, want %v", p, got, w)
		}
		if got := p.SlotSize(); got != w[0] {
			t.Errorf("%v SlotSize %d", p, got)
		}
	}
}

// TestLayoutAgainstHeader compiles the expressions of layoutChecks
// against Xen's blkif.h for x86_64 (gcc -m64) and i386 (gcc -m32, which
// is what a 32-bit guest's "x86_32-abi" structs are), as data in an
// object file, and compares them with this package's numbers. It needs
// gcc and the headers ($XENVMM_XEN_PUBLIC, else ../ref/xen/include/public
// beside the checkout); without them it skips. Only compiling is needed,
// not linking, so no 32-bit C library is required.
func TestLayoutAgainstHeader(t *testing.T) {
	dir := os.Getenv("XENVMM_XEN_PUBLIC")
	if dir == "" {
		dir = filepath.Join(testenv.RepoRoot(), "..", "ref", "xen", "include", "public")
	}
	header := filepath.Join(dir, "io", "blkif.h")
	if _, err := os.Stat(header); err != nil {
		t.Skipf("Xen's public headers not found (%v); set XENVMM_XEN_PUBLIC", err)
	}
	cc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("no gcc")
	}
	for _, tc := range []struct {
		p    Protocol
		flag string
	}{{ProtocolX86_64, "-m64"}, {ProtocolX86_32, "-m32"}} {
		t.Run(tc.p.String(), func(t *testing.T) {
			checks := layoutChecks(tc.p)
			var src strings.Builder
			fmt.Fprintf(&src, "#include <stddef.h>\n#include <stdint.h>\n#define __XEN_INTERFACE_VERSION__ 0x00040e00\n#include %q\nunsigned int blkback_vals[] = {\n", header)
			for _, c := range checks {
				fmt.Fprintf(&src, "\t(unsigned int)(%s),\n", c.expr)
			}
			src.WriteString("};\n")
			tmp := t.TempDir()
			cfile, obj := filepath.Join(tmp, "layout.c"), filepath.Join(tmp, "layout.o")
			if err := os.WriteFile(cfile, []byte(src.String()), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(cc, tc.flag, "-ffreestanding", "-c", "-o", obj, cfile).CombinedOutput(); err != nil {
				t.Skipf("gcc %s cannot compile here: %v\n%s", tc.flag, err, out)
			}
			vals := readObjectArray(t, obj, "blkback_vals", len(checks))
			for i, c := range checks {
				if vals[i] != uint32(c.got) {
					t.Errorf("%s = %d in C, %d here", c.expr, vals[i], c.got)
				}
			}
		})
	}
}

// readObjectArray reads n little-endian uint32s of the initialised
// array sym from an ELF object file.
func readObjectArray(t *testing.T, path, sym string, n int) []uint32 {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range syms {
		if s.Name != sym {
			continue
		}
		sec := f.Sections[s.Section]
		data, err := sec.Data()
		if err != nil {
			t.Fatal(err)
		}
		if s.Value+uint64(4*n) > uint64(len(data)) {
			t.Fatalf("%s: %d bytes at %d in a %d-byte section", sym, 4*n, s.Value, len(data))
		}
		out := make([]uint32, n)
		for i := range out {
			out[i] = binary.LittleEndian.Uint32(data[s.Value+uint64(4*i):])
		}
		return out
	}
	t.Fatalf("%s not in %s", sym, path)
	return nil
}
