package loader

import (
	"bytes"
	"debug/elf"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/xenvmm/xenvmm/xenabi/abi"
)

// fuzzLimit caps decompression in the fuzzers, so that a bomb costs
// little time and memory.
const fuzzLimit = 1 << 20

func fuzzSeeds(f *testing.F) {
	f.Helper()
	linux := buildELF(f, linuxSpec())
	netbsd := func() elfSpec {
		s := legacySpec(netbsdGuestInfo)
		s.symbols = []string{"start", "hypercall_page"}
		return s
	}()
	i386 := linuxSpec()
	i386.is32 = true
	i386.segs = []tSeg{{typ: elf.PT_LOAD, flags: elf.PF_R | elf.PF_X, vaddr: 0xc0100000, paddr: 0x100000, data: make([]byte, 64), memsz: 0x2000}}
	i386.notes = []tNote{
		xenNote(abi.ElfNoteGuestOS, str("linux")),
		xenNote(abi.ElfNoteXenVersion, str("xen-3.0")),
		xenNote(abi.ElfNoteVirtBase, n32(0xc0000000)),
		xenNote(abi.ElfNoteEntry, n32(0xc0100000)),
		xenNote(abi.ElfNotePAEMode, str("yes")),
		xenNote(abi.ElfNoteFeatures, str("!writable_page_tables|pae_pgdir_above_4gb")),
		xenNote(abi.ElfNoteSupportedFeatures, n32(0x801)),
		xenNote(abi.ElfNoteL1MFNValid, append(n64(1), n64(1)...)),
		xenNote(abi.ElfNotePhys32Reloc, append(n32(0x200000), n32(0x1000000)...)),
	}
	i386.symbols = []string{"a"}
	sectOnly := linuxSpec()
	sectOnly.notesInSection = true

	f.Add(linux)
	f.Add(buildELF(f, netbsd))
	f.Add(buildELF(f, i386))
	f.Add(buildELF(f, sectOnly))
	f.Add(gzipBytes(f, buildELF(f, netbsd)))
	for _, c := range []compression{compGzip, compXZ, compLZMA, compLZ4, compZstd} {
		f.Add(makeBzImage(compressWith(f, c, linux), 0x020f))
	}
	// The real-tool fixtures, as bzImage payloads (not ELF inside: the
	// decoders run, then the load fails).
	files, _ := filepath.Glob("testdata/payload*")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(makeBzImage(b, 0x020f))
		}
	}
	f.Add([]byte{})
	f.Add([]byte("\x7fELF\x02\x01\x01"))
}

func FuzzLoad(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := load("fuzz", data, fuzzLimit)
		if err != nil {
			var le *Error
			if !errors.As(err, &le) {
				t.Fatalf("error %v is not an *Error", err)
			}
			if !errors.Is(err, ErrNotPV) && !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			return
		}
		// What Load accepts satisfies elf_xen_addr_calc_check.
		if img.VirtKStart > img.VirtKEnd || img.Entry < img.VirtKStart || img.Entry > img.VirtKEnd || img.VirtBase > img.VirtKStart {
			t.Fatalf("accepted an image out of bounds: %+v", img)
		}
		for _, s := range img.Segments {
			if uint64(len(s.Data)) > s.MemSize || s.VAddr < img.VirtKStart || s.VAddr-img.VirtKStart > img.VirtKEnd-img.VirtKStart {
				t.Fatalf("segment %+v outside the kernel %#x-%#x", s, img.VirtKStart, img.VirtKEnd)
			}
		}
		if img.Symtab != nil && (img.SymtabVAddr < img.VirtKStart || uint64(len(img.Symtab)) > img.VirtKEnd-img.SymtabVAddr) {
			t.Fatalf("symtab %#x+%#x outside the kernel end %#x", img.SymtabVAddr, len(img.Symtab), img.VirtKEnd)
		}
		if err := img.Describe(io.Discard); err != nil {
			t.Fatal(err)
		}
	})
}

func FuzzXZ(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.xz")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b[:len(b)-4])
		}
	}
	f.Add(compressWith(f, compXZ, bytes.Repeat([]byte{0xe8, 0, 0, 0, 0}, 100)))
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := unxz(data, 0, fuzzLimit)
		if err == nil && len(out) > fuzzLimit {
			t.Fatalf("%d bytes out, past the limit", len(out))
		}
	})
}

func FuzzGuestInfo(f *testing.F) {
	f.Add(netbsdGuestInfo)
	f.Add("GUEST_OS=Mini-OS,XEN_VER=xen-3.0,VIRT_BASE=0x0,ELF_PADDR_OFFSET=0x0,HYPERCALL_PAGE=0x2,PAE=yes[extended-cr3],LOADER=generic")
	f.Add("FEATURES=!writable_page_tables|pae_pgdir_above_4gb,=,,=x")
	f.Fuzz(func(t *testing.T, s string) {
		x := newParms()
		x.parseGuestInfo(s)
		if x.features.Required&^x.features.Supported != 0 {
			t.Fatalf("required features %v not all supported %v", x.features.Required, x.features.Supported)
		}
	})
}
