package loader

import (
	"bytes"
	"debug/elf"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/xenvmm/xenvmm/xenabi/abi"
)

func mustLoad(t *testing.T, spec elfSpec) *Image {
	t.Helper()
	img, err := Load("test-kernel", buildELF(t, spec))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return img
}

func withNotes(s elfSpec, notes ...tNote) elfSpec {
	s.notes = append(append([]tNote(nil), s.notes...), notes...)
	return s
}

func TestLinuxNotes(t *testing.T) {
	spec := withNotes(linuxSpec(),
		xenNote(abi.ElfNoteHypercallPage, n64(linuxText+0x1000)),
		xenNote(abi.ElfNoteInitP2M, n64(0x8000000000)),
		xenNote(abi.ElfNoteHVStartLow, n64(0xffff800000000000)),
		// Linux's FEATURES note is .ascii, without a NUL.
		xenNote(abi.ElfNoteFeatures, []byte("!writable_page_tables|pae_pgdir_above_4gb")),
		xenNote(abi.ElfNoteSupportedFeatures, n32(1<<abi.FeatWritablePageTables|1<<abi.FeatDom0|1<<abi.FeatLinuxRSDPUnrestricted)),
		xenNote(abi.ElfNotePAEMode, str("yes")),
		xenNote(abi.ElfNoteL1MFNValid, append(n64(1), n64(1)...)),
		xenNote(abi.ElfNoteSuspendCancel, n32(1)),
		xenNote(abi.ElfNoteModStartPFN, n32(1)),
		xenNote(abi.ElfNotePhys32Entry, n32(0x1000850)),
		xenNote(abi.ElfNotePhys32Reloc, append(n32(0x200000), n32(0x1000000)...)),
		xenNote(abi.ElfNoteInfo, str("FOO=bar")),
		xenNote(abi.ElfNote(0x99), []byte{1, 2, 3, 4}),
		tNote{name: "GNU", typ: 3, desc: bytes.Repeat([]byte{0xab}, 20)},
	)
	img := mustLoad(t, spec)

	want := &Image{
		Name: "test-kernel", Format: "elf", Class: 64, Machine: elf.EM_X86_64,
		Entry: linuxEntry, VirtBase: linuxVirtBase, PaddrOffset: 0,
		HypercallPage: linuxText + 0x1000, HVStartLow: 0xffff800000000000, InitP2M: 0x8000000000,
		Features: Features{
			Supported: abi.FeatureSet(0).With(abi.FeatWritablePageTables).With(abi.FeatPAEPgdirAbove4GB).With(abi.FeatDom0).With(abi.FeatLinuxRSDPUnrestricted),
			Required:  abi.FeatureSet(0).With(abi.FeatWritablePageTables),
		},
		GuestOS: "linux", GuestVersion: "2.6", XenVersion: "xen-3.0", Loader: "generic",
		PAEMode: PAEExtendedCR3, PAEString: "yes",
		L1MFNValid:    []L1MFNValid{{1, 1}},
		SuspendCancel: true, ModStartPFN: true, PhysEntry: 0x1000850,
		VirtKStart: linuxText, VirtKEnd: linuxText + 0x6000,
		NotesFrom: "PT_NOTE",
	}
	got := *img
	got.Segments, got.Notes = nil, nil
	if !reflect.DeepEqual(&got, want) {
		t.Errorf("image:\n got %+v\nwant %+v", &got, want)
	}

	// Segments are placed at p_paddr + VIRT_BASE - PADDR_OFFSET, the
	// percpu-like one (p_vaddr 0) too.
	wantSegs := []struct {
		vaddr, memsz uint64
		n            int
	}{{linuxText, 0x2000, 0x2000}, {linuxText + 0x2000, 0x3000, 0x800}, {linuxText + 0x5000, 0x1000, 4}}
	if len(img.Segments) != len(wantSegs) {
		t.Fatalf("%d segments, want %d", len(img.Segments), len(wantSegs))
	}
	for i, w := range wantSegs {
		s := img.Segments[i]
		if s.VAddr != w.vaddr || s.MemSize != w.memsz || len(s.Data) != w.n {
			t.Errorf("segment %d = {VAddr %#x MemSize %#x len %#x}, want {%#x %#x %#x}", i, s.VAddr, s.MemSize, len(s.Data), w.vaddr, w.memsz, w.n)
		}
	}
	if img.Segments[2].PVAddr != 0 || !bytes.Equal(img.Segments[2].Data, []byte{1, 2, 3, 4}) {
		t.Errorf("percpu segment = %+v", img.Segments[2])
	}

	// Notes: every note named "Xen", in order, unknown types included;
	// the GNU note is not listed.
	if n := len(img.Notes); n != len(spec.notes)-1 {
		t.Errorf("%d notes listed, want %d", n, len(spec.notes)-1)
	}
	for _, n := range img.Notes {
		switch n.Type {
		case abi.ElfNoteFeatures:
			if n.Str != "!writable_page_tables|pae_pgdir_above_4gb" {
				t.Errorf("FEATURES note string = %q", n.Str)
			}
		case abi.ElfNoteInitP2M:
			if n.Value != 0x8000000000 || len(n.Desc) != 8 {
				t.Errorf("INIT_P2M note = %+v", n)
			}
		case abi.ElfNoteInfo:
			if n.Str != "FOO=bar" {
				t.Errorf("INFO note = %+v", n)
			}
		}
	}
}

func TestNumericNoteWidths(t *testing.T) {
	// elf_note_numeric: 1, 2, 4 or 8 bytes; any other width reads as 0.
	tests := []struct {
		desc []byte
		want uint64
	}{
		{[]byte{0x34}, 0x34},
		{[]byte{0x34, 0x12}, 0x1234},
		{n32(0x81000000), 0x81000000},
		{n64(0xffffffff81000000), 0xffffffff81000000},
		{[]byte{1, 2, 3}, 0},
		{append(n64(5), 0), 0},
	}
	for _, tt := range tests {
		if got := noteNumeric(tt.desc); got != tt.want {
			t.Errorf("noteNumeric(% x) = %#x, want %#x", tt.desc, got, tt.want)
		}
	}
	// A 4-byte HV_START_LOW note in a kernel.
	img := mustLoad(t, withNotes(linuxSpec(), xenNote(abi.ElfNoteHVStartLow, n32(0xf5800000))))
	if img.HVStartLow != 0xf5800000 {
		t.Errorf("HVStartLow = %#x", img.HVStartLow)
	}
}

func TestNoteSources(t *testing.T) {
	tests := []struct {
		name      string
		mod       func(*elfSpec)
		notesFrom string
		legacy    bool
		paddrOff  uint64
	}{
		{"PT_NOTE segment", func(s *elfSpec) { s.notesInPhdr = true }, "PT_NOTE", false, 0},
		{"SHT_NOTE section only", func(s *elfSpec) { s.notesInSection = true }, "SHT_NOTE", false, 0},
		{"PT_NOTE with p_offset 0 falls back to sections", func(s *elfSpec) { s.notePhdrOffsetZero = true }, "SHT_NOTE", false, 0},
		{"notes win over __xen_guest", func(s *elfSpec) {
			s.guestInfo = "GUEST_OS=NetBSD,XEN_VER=xen-3.0,VIRT_BASE=0x1000,VIRT_ENTRY=0x5"
		}, "PT_NOTE", false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := linuxSpec()
			tt.mod(&s)
			img := mustLoad(t, s)
			if img.NotesFrom != tt.notesFrom || img.Legacy != tt.legacy || img.PaddrOffset != tt.paddrOff {
				t.Errorf("NotesFrom %q Legacy %v PaddrOffset %#x; want %q %v %#x", img.NotesFrom, img.Legacy, img.PaddrOffset, tt.notesFrom, tt.legacy, tt.paddrOff)
			}
			if img.GuestOS != "linux" || img.Entry != linuxEntry || img.VirtBase != linuxVirtBase {
				t.Errorf("GuestOS %q Entry %#x VirtBase %#x: the notes were not used", img.GuestOS, img.Entry, img.VirtBase)
			}
		})
	}
}

func TestCentOSStylePaddrOffsetEqualsVirtBase(t *testing.T) {
	// Classic XenLinux 2.6.18: notes and __xen_guest, PADDR_OFFSET =
	// VIRT_BASE, p_paddr = p_vaddr; one segment (vsyscall) has a p_vaddr
	// far from its p_paddr.
	const base = 0xffffffff80000000
	s := elfSpec{
		entry: 0xffffffff80200000,
		segs: []tSeg{
			{typ: elf.PT_LOAD, flags: elf.PF_R | elf.PF_X, vaddr: base + 0x200000, paddr: base + 0x200000, data: make([]byte, 0x1000), memsz: 0x1000},
			{typ: elf.PT_LOAD, flags: elf.PF_R | elf.PF_W | elf.PF_X, vaddr: 0xffffffffff600000, paddr: base + 0x201000, data: make([]byte, 0xc08), memsz: 0xc08},
		},
		notes: []tNote{
			xenNote(abi.ElfNoteGuestOS, str("linux")),
			xenNote(abi.ElfNoteXenVersion, str("xen-3.0")),
			xenNote(abi.ElfNoteVirtBase, n64(base)),
			xenNote(abi.ElfNotePaddrOffset, n64(base)),
			xenNote(abi.ElfNoteEntry, n64(base+0x200000)),
			xenNote(abi.ElfNoteHypercallPage, n64(base+0x206000)),
			xenNote(abi.ElfNoteFeatures, str("writable_page_tables|writable_descriptor_tables|auto_translated_physmap|pae_pgdir_above_4gb|supervisor_mode_kernel")),
		},
		guestInfo: "GUEST_OS=linux,XEN_VER=xen-3.0,VIRT_BASE=0xFFFFFFFF80000000,ELF_PADDR_OFFSET=0xFFFFFFFF80000000,VIRT_ENTRY=0xFFFFFFFF80200000,HYPERCALL_PAGE=0x999",
	}
	img := mustLoad(t, s)
	if img.PaddrOffset != base || img.VirtBase != base || img.VirtOffset() != 0 {
		t.Errorf("VirtBase %#x PaddrOffset %#x", img.VirtBase, img.PaddrOffset)
	}
	if img.HypercallPage != base+0x206000 {
		t.Errorf("HypercallPage %#x: the notes, not __xen_guest, must be used", img.HypercallPage)
	}
	if img.Segments[1].VAddr != base+0x201000 {
		t.Errorf("vsyscall segment at %#x, want p_paddr %#x", img.Segments[1].VAddr, uint64(base+0x201000))
	}
	if img.VirtKStart != base+0x200000 || img.VirtKEnd != base+0x201c08 {
		t.Errorf("kernel %#x-%#x", img.VirtKStart, img.VirtKEnd)
	}
	if img.Features.Supported != 0x1f || img.Features.Required != 0 {
		t.Errorf("features %+v", img.Features)
	}
}

func TestLegacyGuestInfo(t *testing.T) {
	tests := []struct {
		name      string
		info      string
		virtBase  uint64
		paddrOff  uint64
		entry     uint64
		hypercall uint64
		symtab    bool
		pae       PAEMode
		features  Features
	}{
		{
			name:     "NetBSD",
			info:     netbsdGuestInfo,
			virtBase: 0xffffffff80000000, paddrOff: 0xffffffff80000000, entry: 0xffffffff80100000,
			hypercall: 0xffffffff80101000, symtab: true,
		},
		{
			name:     "ELF_PADDR_OFFSET defaults to VIRT_BASE",
			info:     "GUEST_OS=NetBSD,LOADER=generic,XEN_VER=xen-3.0,VIRT_BASE=0xffffffff80000000,HYPERCALL_PAGE=0x101",
			virtBase: 0xffffffff80000000, paddrOff: 0xffffffff80000000, entry: 0xffffffff80100000,
			hypercall: 0xffffffff80101000,
		},
		{
			name:     "BSD_SYMTAB counts by presence",
			info:     "LOADER=generic,XEN_VER=xen-3.0,VIRT_BASE=0xffffffff80000000,BSD_SYMTAB=no,PAE=yes[extended-cr3]",
			virtBase: 0xffffffff80000000, paddrOff: 0xffffffff80000000, entry: 0xffffffff80100000,
			symtab: true, pae: PAEExtendedCR3,
		},
		{
			name:     "PAE=yes, FEATURES, decimal and octal numbers",
			info:     "LOADER=generic,XEN_VER=xen-3.0,VIRT_BASE=18446744071562067968,VIRT_ENTRY=01777777777760004000000,PAE=yes,FEATURES=writable_page_tables|!pae_pgdir_above_4gb|bogus",
			virtBase: 0xffffffff80000000, paddrOff: 0xffffffff80000000, entry: 0xffffffff80100000,
			pae:      PAEYes,
			features: Features{Supported: 1<<abi.FeatWritablePageTables | 1<<abi.FeatPAEPgdirAbove4GB, Required: 1 << abi.FeatPAEPgdirAbove4GB},
		},
		{
			name:     "unknown required feature stops the parse, as libelf",
			info:     "LOADER=generic,XEN_VER=xen-3.0,VIRT_BASE=0xffffffff80000000,FEATURES=!nonexistent,HYPERCALL_PAGE=0x101",
			virtBase: 0xffffffff80000000, paddrOff: 0xffffffff80000000, entry: 0xffffffff80100000,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := legacySpec(tt.info)
			s.symbols = []string{"start", "xpq_queue_machphys_update"}
			img := mustLoad(t, s)
			if !img.Legacy || img.GuestInfo != tt.info || img.NotesFrom != "" {
				t.Errorf("Legacy %v GuestInfo %q NotesFrom %q", img.Legacy, img.GuestInfo, img.NotesFrom)
			}
			if img.VirtBase != tt.virtBase || img.PaddrOffset != tt.paddrOff || img.Entry != tt.entry || img.HypercallPage != tt.hypercall {
				t.Errorf("VirtBase %#x PaddrOffset %#x Entry %#x HypercallPage %#x; want %#x %#x %#x %#x",
					img.VirtBase, img.PaddrOffset, img.Entry, img.HypercallPage, tt.virtBase, tt.paddrOff, tt.entry, tt.hypercall)
			}
			if img.BSDSymtab != tt.symtab || (img.Symtab != nil) != tt.symtab {
				t.Errorf("BSDSymtab %v, Symtab %d bytes; want %v", img.BSDSymtab, len(img.Symtab), tt.symtab)
			}
			if img.PAEMode != tt.pae || img.Features != tt.features {
				t.Errorf("PAE %v features %+v; want %v %+v", img.PAEMode, img.Features, tt.pae, tt.features)
			}
			if img.Segments[0].VAddr != 0xffffffff80100000 {
				t.Errorf("segment 0 at %#x", img.Segments[0].VAddr)
			}
		})
	}
}

func TestHypercallPageWithoutVirtBase(t *testing.T) {
	// Mini-OS style: VIRT_BASE=0, so the page number is the address.
	s := legacySpec("")
	s.entry = 0
	s.segs = []tSeg{{typ: elf.PT_LOAD, flags: elf.PF_R | elf.PF_X | elf.PF_W, data: make([]byte, 0x4000), memsz: 0x4000}}
	for _, info := range []string{
		"GUEST_OS=Mini-OS,XEN_VER=xen-3.0,VIRT_BASE=0x0,ELF_PADDR_OFFSET=0x0,HYPERCALL_PAGE=0x2,LOADER=generic",
		"GUEST_OS=Mini-OS,XEN_VER=xen-3.0,HYPERCALL_PAGE=0x2,LOADER=generic",
	} {
		s.guestInfo = info
		img := mustLoad(t, s)
		if img.HypercallPage != 0x2000 || img.VirtBase != 0 || img.Entry != 0 {
			t.Errorf("%q: HypercallPage %#x VirtBase %#x Entry %#x", info, img.HypercallPage, img.VirtBase, img.Entry)
		}
	}
}

func TestLegacyNoteSegmentWithoutXenNotes(t *testing.T) {
	// A PT_NOTE segment of other owners does not stop __xen_guest from
	// being used, nor change the legacy PADDR_OFFSET default.
	s := legacySpec("GUEST_OS=NetBSD,LOADER=generic,XEN_VER=xen-3.0,VIRT_BASE=0xffffffff80000000")
	s.notes = []tNote{{name: "NetBSD", typ: 1, desc: n32(501000000)}}
	img := mustLoad(t, s)
	if !img.Legacy || img.PaddrOffset != 0xffffffff80000000 {
		t.Errorf("Legacy %v PaddrOffset %#x", img.Legacy, img.PaddrOffset)
	}
}

func TestErrors(t *testing.T) {
	plain := linuxSpec()
	plain.notes = nil
	gnuOnly := linuxSpec()
	gnuOnly.notes = []tNote{{name: "GNU", typ: 3, desc: make([]byte, 20)}}

	pvh := linuxSpec()
	pvh.notes = []tNote{
		xenNote(abi.ElfNoteGuestOS, str("linux")),
		xenNote(abi.ElfNoteXenVersion, str("xen-3.0")),
		xenNote(abi.ElfNoteLoader, str("generic")),
		xenNote(abi.ElfNotePhys32Entry, n32(0x1000850)),
	}
	delNote := func(s elfSpec, typ abi.ElfNote) elfSpec {
		var out []tNote
		for _, n := range s.notes {
			if n.typ != uint32(typ) {
				out = append(out, n)
			}
		}
		s.notes = out
		return s
	}
	setNote := func(s elfSpec, n tNote) elfSpec {
		return withNotes(delNote(s, abi.ElfNote(n.typ)), n)
	}
	i386 := linuxSpec()
	i386.is32 = true
	i386.notes = []tNote{
		xenNote(abi.ElfNoteGuestOS, str("linux")),
		xenNote(abi.ElfNoteXenVersion, str("xen-3.0")),
		xenNote(abi.ElfNoteVirtBase, n32(0xc0000000)),
		xenNote(abi.ElfNoteEntry, n32(0xc1000100)),
	}
	for i := range i386.segs {
		if i386.segs[i].vaddr != 0 {
			i386.segs[i].vaddr = i386.segs[i].vaddr - linuxText + 0xc1000000
		}
	}
	arm := linuxSpec()
	arm.machine = elf.EM_AARCH64

	tests := []struct {
		name string
		data []byte
		want error
		text string
	}{
		{"plain ELF", buildELF(t, plain), ErrNotPV, "loader: k: this kernel has no Xen PV support (no XEN_ELFNOTE_ENTRY note or __xen_guest section); build it with CONFIG_XEN_PV=y"},
		{"only non-Xen notes", buildELF(t, gnuOnly), ErrNotPV, "no XEN_ELFNOTE_ENTRY note"},
		{"PVH only", buildELF(t, pvh), ErrNotPV, "PHYS32_ENTRY"},
		{"32-bit non-PAE", buildELF(t, i386), ErrUnsupported, "32-bit non-PAE"},
		{"aarch64", buildELF(t, arm), ErrUnsupported, "only x86_64 and i386"},
		{"dom0 only", buildELF(t, withNotes(linuxSpec(), xenNote(abi.ElfNoteFeatures, str("!dom0")))), ErrUnsupported, "unprivileged"},
		{"unknown required feature", buildELF(t, withNotes(linuxSpec(), xenNote(abi.ElfNoteFeatures, str("writable_page_tables|!warp_drive")))), ErrUnsupported, `"warp_drive"`},
		{"not generic, not linux", buildELF(t, setNote(delNote(linuxSpec(), abi.ElfNoteLoader), xenNote(abi.ElfNoteGuestOS, str("Plan9")))), ErrUnsupported, "generic loader or Linux"},
		{"no XEN_VERSION", buildELF(t, delNote(linuxSpec(), abi.ElfNoteXenVersion)), ErrUnsupported, "Xen v3.0"},
		{"PADDR_OFFSET without VIRT_BASE", buildELF(t, withNotes(delNote(linuxSpec(), abi.ElfNoteVirtBase), xenNote(abi.ElfNotePaddrOffset, n64(0)))), ErrMalformed, "VIRT_BASE unset"},
		{"entry below the kernel", buildELF(t, setNote(linuxSpec(), xenNote(abi.ElfNoteEntry, n64(linuxText-1)))), ErrMalformed, "out of bounds"},
		{"entry above the kernel", buildELF(t, setNote(linuxSpec(), xenNote(abi.ElfNoteEntry, n64(linuxText+0x6001)))), ErrMalformed, "out of bounds"},
		{"VIRT_BASE above the kernel", buildELF(t, setNote(setNote(linuxSpec(), xenNote(abi.ElfNoteVirtBase, n64(linuxText+0x1000))), xenNote(abi.ElfNotePaddrOffset, n64(0x1000)))), ErrMalformed, "out of bounds"},
		{"INIT_P2M inside the kernel", buildELF(t, withNotes(linuxSpec(), xenNote(abi.ElfNoteInitP2M, n64(linuxText+0x3000)))), ErrMalformed, "P->M"},
		{"empty", nil, ErrMalformed, "not a kernel image"},
		{"text file", []byte("#!/bin/sh\necho hi\n"), ErrMalformed, "not a kernel image"},
		{"truncated ELF header", buildELF(t, linuxSpec())[:40], ErrMalformed, "truncated ELF64 header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img, err := Load("k", tt.data)
			if err == nil {
				t.Fatalf("Load succeeded: %+v", img)
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("error %q is not %v", err, tt.want)
			}
			var le *Error
			if !errors.As(err, &le) || le.Path != "k" {
				t.Errorf("error %q is not an *Error with the path", err)
			}
			if !strings.Contains(err.Error(), tt.text) {
				t.Errorf("error %q does not say %q", err, tt.text)
			}
		})
	}
}

func TestELF32PAE(t *testing.T) {
	s := linuxSpec()
	s.is32 = true
	s.segs = []tSeg{{typ: elf.PT_LOAD, flags: elf.PF_R | elf.PF_X, vaddr: 0xc0100000, paddr: 0x100000, data: make([]byte, 0x1000), memsz: 0x2000}}
	for _, tt := range []struct {
		mode string
		want PAEMode
	}{{"yes", PAEExtendedCR3}, {"bimodal", PAEBimodal}, {"yes,bimodal", PAEBimodal}} {
		s.notes = []tNote{
			xenNote(abi.ElfNoteGuestOS, str("linux")),
			xenNote(abi.ElfNoteXenVersion, str("xen-3.0")),
			xenNote(abi.ElfNoteVirtBase, n32(0xc0000000)),
			xenNote(abi.ElfNoteEntry, n32(0xc0100000)),
			xenNote(abi.ElfNoteHypercallPage, n32(0xc0101000)),
			xenNote(abi.ElfNotePAEMode, str(tt.mode)),
		}
		img := mustLoad(t, s)
		if img.Class != 32 || img.Machine != elf.EM_386 || img.PAEMode != tt.want {
			t.Errorf("PAE_MODE %q: class %d machine %v PAE %v", tt.mode, img.Class, img.Machine, img.PAEMode)
		}
		if img.VirtKStart != 0xc0100000 || img.VirtKEnd != 0xc0102000 || img.HypercallPage != 0xc0101000 {
			t.Errorf("kernel %#x-%#x hypercall %#x", img.VirtKStart, img.VirtKEnd, img.HypercallPage)
		}
	}
}

func TestSegmentChecks(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*elfSpec)
		text string
	}{
		{"filesz > memsz", func(s *elfSpec) { s.segs[0].memsz = 0x10 }, "p_filesz"},
		{"file bytes past the end", func(s *elfSpec) { s.segs[0].off = 1 << 40 }, "past the end"},
		{"no loadable segment", func(s *elfSpec) { s.segs = s.segs[3:] }, "no loadable"},
		{"paddr overflow", func(s *elfSpec) { s.segs[1].paddr = ^uint64(0) - 0x10 }, "overflows"},
		{"copies far more than the extent", func(s *elfSpec) {
			for i := 0; i < 6; i++ {
				s.segs = append(s.segs, s.segs[0])
			}
		}, "twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := linuxSpec()
			tt.mod(&s)
			_, err := Load("k", buildELF(t, s))
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tt.text) {
				t.Errorf("error %v, want ErrMalformed saying %q", err, tt.text)
			}
		})
	}
	// A segment without R, W or X is not loaded (elf_phdr_is_loadable).
	s := linuxSpec()
	s.segs = append(s.segs, tSeg{typ: elf.PT_LOAD, vaddr: 0x1234, paddr: 0x7000000, data: []byte{1}, memsz: 1})
	if img := mustLoad(t, s); len(img.Segments) != 3 || img.VirtKEnd != linuxText+0x6000 {
		t.Errorf("%d segments, kernel end %#x", len(img.Segments), img.VirtKEnd)
	}
}

func TestStrtoull(t *testing.T) {
	tests := []struct {
		in   string
		want uint64
	}{
		{"0xffffffff80000000", 0xffffffff80000000},
		{"0XFFFFFFFF80000000", 0xffffffff80000000},
		{"0x00000101", 0x101},
		{"101", 101},
		{"0101", 0101},
		{"  +42junk", 42},
		{"-1", ^uint64(0)},
		{"0x", 0},
		{"0xg", 0},
		{"", 0},
		{"junk", 0},
		{"99999999999999999999999", ^uint64(0)},
		{"0x1ffffffffffffffff", ^uint64(0)},
	}
	for _, tt := range tests {
		if got := strtoull(tt.in); got != tt.want {
			t.Errorf("strtoull(%q) = %#x, want %#x", tt.in, got, tt.want)
		}
	}
}

func TestParseGuestInfoLimits(t *testing.T) {
	// libelf cuts names at 31 bytes and values at 127; the rest of an
	// over-long value is read as the next name.
	long := strings.Repeat("A", 40)
	x := newParms()
	x.parseGuestInfo(long + "=1,GUEST_OS=" + strings.Repeat("v", 130) + ",LOADER=generic,,=x,XEN_VER")
	if x.loader != "generic" {
		t.Errorf("loader %q", x.loader)
	}
	if x.guestOS != strings.Repeat("v", 127) {
		t.Errorf("guest os %d bytes, want 127", len(x.guestOS))
	}
	if x.xenVer != "" {
		t.Errorf("xen ver %q", x.xenVer)
	}
}

func TestParseFeatures(t *testing.T) {
	tests := []struct {
		in      string
		want    Features
		wantErr bool
	}{
		{"", Features{}, false},
		{"writable_page_tables", Features{Supported: 1}, false},
		{"!writable_page_tables|pae_pgdir_above_4gb", Features{Supported: 0x11, Required: 0x1}, false},
		{"|writable_descriptor_tables||", Features{Supported: 0x2}, false},
		{"hvm_safe_pvclock|nope", Features{Supported: 1 << 9}, false},
		{"!nope", Features{}, true},
		{"!", Features{}, true},
	}
	for _, tt := range tests {
		var got Features
		err := parseFeatures(tt.in, &got)
		if (err != nil) != tt.wantErr || (err == nil && got != tt.want) {
			t.Errorf("parseFeatures(%q) = %+v, %v; want %+v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestDescribe(t *testing.T) {
	s := legacySpec(netbsdGuestInfo)
	s.symbols = []string{"start"}
	img := mustLoad(t, s)
	var b strings.Builder
	if err := img.Describe(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"format:          elf\n",
		"class:           ELF64 x86_64\n",
		"entry:           0xffffffff80100000\n",
		"virt_base:       0xffffffff80000000\n",
		"paddr_offset:    0xffffffff80000000\n",
		"hypercall page:  0xffffffff80101000\n",
		"guest os:        NetBSD 4.99\n",
		"features:        supported none\n",
		"bsd symtab:",
		"  0xffffffff80100000 filesz    0x3000 memsz    0x3000",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("Describe output lacks %q:\n%s", want, b.String())
		}
	}
}
