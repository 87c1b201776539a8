package loader

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"testing"

	"github.com/xenvmm/xenvmm/xenabi/abi"
)

// This file builds small ELF kernels for the tests: chosen program
// headers, Xen notes in a PT_NOTE segment and/or a SHT_NOTE section, a
// __xen_guest section, a symbol table.

type tNote struct {
	name string
	typ  uint32
	desc []byte
}

type tSeg struct {
	typ          elf.ProgType
	flags        elf.ProgFlag
	vaddr, paddr uint64
	data         []byte
	memsz        uint64
	// off, when not 0, overrides the file offset written to p_offset.
	off uint64
}

type elfSpec struct {
	is32    bool
	machine elf.Machine // default EM_X86_64 / EM_386
	entry   uint64
	segs    []tSeg
	notes   []tNote
	// notesInPhdr puts the notes in a PT_NOTE segment; notesInSection in
	// a SHT_NOTE section ".note.Xen". Neither set means both.
	notesInPhdr, notesInSection bool
	// notePhdrOffsetZero writes p_offset = 0 for the PT_NOTE segment.
	notePhdrOffsetZero bool
	guestInfo          string // a __xen_guest section when not ""
	symbols            []string
}

func xenNote(typ abi.ElfNote, desc []byte) tNote {
	return tNote{name: "Xen", typ: uint32(typ), desc: desc}
}

func n64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }
func n32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
func str(s string) []byte { return append([]byte(s), 0) }

func pad4(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func encodeNotes(notes []tNote) []byte {
	var b []byte
	for _, n := range notes {
		name := str(n.name)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(name)))
		b = binary.LittleEndian.AppendUint32(b, uint32(len(n.desc)))
		b = binary.LittleEndian.AppendUint32(b, n.typ)
		b = pad4(append(b, name...))
		b = pad4(append(b, n.desc...))
	}
	return b
}

// buildELF writes the ELF image spec describes.
func buildELF(t testing.TB, spec elfSpec) []byte {
	t.Helper()
	is64 := !spec.is32
	machine := spec.machine
	if machine == 0 {
		machine = elf.EM_X86_64
		if !is64 {
			machine = elf.EM_386
		}
	}
	ehsize, phentsize, shentsize := 64, 56, 64
	if !is64 {
		ehsize, phentsize, shentsize = 52, 32, 40
	}
	inPhdr, inSect := spec.notesInPhdr, spec.notesInSection
	if !inPhdr && !inSect {
		inPhdr, inSect = true, true
	}
	noteBytes := encodeNotes(spec.notes)
	hasNotes := len(spec.notes) > 0

	type prog struct {
		tSeg
		fileOff uint64
	}
	progs := make([]prog, 0, len(spec.segs)+1)
	for _, s := range spec.segs {
		progs = append(progs, prog{tSeg: s})
	}
	noteProg := -1
	if hasNotes && inPhdr {
		noteProg = len(progs)
		progs = append(progs, prog{tSeg: tSeg{typ: elf.PT_NOTE, flags: elf.PF_R, data: noteBytes, memsz: uint64(len(noteBytes))}})
	}

	var out bytes.Buffer
	out.Write(make([]byte, ehsize+phentsize*len(progs)))
	place := func(b []byte, align int) uint64 {
		for out.Len()%align != 0 {
			out.WriteByte(0)
		}
		off := uint64(out.Len())
		out.Write(b)
		return off
	}
	for i := range progs {
		progs[i].fileOff = place(progs[i].data, 16)
	}

	// Sections.
	type sect struct {
		name    string
		typ     elf.SectionType
		off     uint64
		size    uint64
		link    uint32
		entsize uint64
		align   uint64
	}
	sects := []sect{{}}
	var shstr []byte = []byte{0}
	nameOff := func(n string) uint32 {
		off := uint32(len(shstr))
		shstr = append(shstr, str(n)...)
		return off
	}
	names := []uint32{0}
	add := func(s sect) int {
		sects = append(sects, s)
		names = append(names, nameOff(s.name))
		return len(sects) - 1
	}
	if hasNotes && inSect {
		off := place(noteBytes, 4)
		if noteProg >= 0 {
			// Share the bytes with the PT_NOTE segment as a linker would.
			off = progs[noteProg].fileOff
		}
		add(sect{name: ".note.Xen", typ: elf.SHT_NOTE, off: off, size: uint64(len(noteBytes)), align: 4})
	}
	if spec.guestInfo != "" {
		b := str(spec.guestInfo)
		add(sect{name: "__xen_guest", typ: elf.SHT_PROGBITS, off: place(b, 1), size: uint64(len(b)), align: 1})
	}
	if spec.symbols != nil {
		strtab := []byte{0}
		var symtab []byte
		symsz := 24
		if !is64 {
			symsz = 16
		}
		symtab = append(symtab, make([]byte, symsz)...) // STN_UNDEF
		for i, name := range spec.symbols {
			off := uint32(len(strtab))
			strtab = append(strtab, str(name)...)
			info := byte(elf.STB_GLOBAL)<<4 | byte(elf.STT_FUNC)
			value := 0xffffffff81000000 + uint64(i)*16
			if is64 {
				symtab = binary.LittleEndian.AppendUint32(symtab, off)
				symtab = append(symtab, info, 0)
				symtab = binary.LittleEndian.AppendUint16(symtab, 1)
				symtab = binary.LittleEndian.AppendUint64(symtab, value)
				symtab = binary.LittleEndian.AppendUint64(symtab, 16)
			} else {
				symtab = binary.LittleEndian.AppendUint32(symtab, off)
				symtab = binary.LittleEndian.AppendUint32(symtab, uint32(value))
				symtab = binary.LittleEndian.AppendUint32(symtab, 16)
				symtab = append(symtab, info, 0)
				symtab = binary.LittleEndian.AppendUint16(symtab, 1)
			}
		}
		symIdx := add(sect{name: ".symtab", typ: elf.SHT_SYMTAB, off: place(symtab, 8), size: uint64(len(symtab)), entsize: uint64(symsz), align: 8})
		strIdx := add(sect{name: ".strtab", typ: elf.SHT_STRTAB, off: place(strtab, 1), size: uint64(len(strtab)), align: 1})
		sects[symIdx].link = uint32(strIdx)
	}
	shstrIdx := len(sects)
	names = append(names, nameOff(".shstrtab"))
	sects = append(sects, sect{name: ".shstrtab", typ: elf.SHT_STRTAB, size: 0, align: 1})
	sects[shstrIdx].off = place(shstr, 1)
	sects[shstrIdx].size = uint64(len(shstr))

	shoff := place(nil, 8)
	for i, s := range sects {
		var h []byte
		if is64 {
			h = binary.LittleEndian.AppendUint32(h, names[i])
			h = binary.LittleEndian.AppendUint32(h, uint32(s.typ))
			h = binary.LittleEndian.AppendUint64(h, 0) // flags
			h = binary.LittleEndian.AppendUint64(h, 0) // addr
			h = binary.LittleEndian.AppendUint64(h, s.off)
			h = binary.LittleEndian.AppendUint64(h, s.size)
			h = binary.LittleEndian.AppendUint32(h, s.link)
			h = binary.LittleEndian.AppendUint32(h, 0) // info
			h = binary.LittleEndian.AppendUint64(h, s.align)
			h = binary.LittleEndian.AppendUint64(h, s.entsize)
		} else {
			h = binary.LittleEndian.AppendUint32(h, names[i])
			h = binary.LittleEndian.AppendUint32(h, uint32(s.typ))
			h = binary.LittleEndian.AppendUint32(h, 0)
			h = binary.LittleEndian.AppendUint32(h, 0)
			h = binary.LittleEndian.AppendUint32(h, uint32(s.off))
			h = binary.LittleEndian.AppendUint32(h, uint32(s.size))
			h = binary.LittleEndian.AppendUint32(h, s.link)
			h = binary.LittleEndian.AppendUint32(h, 0)
			h = binary.LittleEndian.AppendUint32(h, uint32(s.align))
			h = binary.LittleEndian.AppendUint32(h, uint32(s.entsize))
		}
		out.Write(h)
	}

	b := out.Bytes()
	// ELF header.
	copy(b, elf.ELFMAG)
	if is64 {
		b[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	} else {
		b[elf.EI_CLASS] = byte(elf.ELFCLASS32)
	}
	b[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	b[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	le := binary.LittleEndian
	le.PutUint16(b[16:], uint16(elf.ET_EXEC))
	le.PutUint16(b[18:], uint16(machine))
	le.PutUint32(b[20:], uint32(elf.EV_CURRENT))
	if is64 {
		le.PutUint64(b[24:], spec.entry)
		le.PutUint64(b[32:], uint64(ehsize))
		le.PutUint64(b[40:], shoff)
		le.PutUint16(b[52:], uint16(ehsize))
		le.PutUint16(b[54:], uint16(phentsize))
		le.PutUint16(b[56:], uint16(len(progs)))
		le.PutUint16(b[58:], uint16(shentsize))
		le.PutUint16(b[60:], uint16(len(sects)))
		le.PutUint16(b[62:], uint16(shstrIdx))
	} else {
		le.PutUint32(b[24:], uint32(spec.entry))
		le.PutUint32(b[28:], uint32(ehsize))
		le.PutUint32(b[32:], uint32(shoff))
		le.PutUint16(b[40:], uint16(ehsize))
		le.PutUint16(b[42:], uint16(phentsize))
		le.PutUint16(b[44:], uint16(len(progs)))
		le.PutUint16(b[46:], uint16(shentsize))
		le.PutUint16(b[48:], uint16(len(sects)))
		le.PutUint16(b[50:], uint16(shstrIdx))
	}
	for i, p := range progs {
		h := b[ehsize+i*phentsize:]
		off := p.fileOff
		if p.off != 0 {
			off = p.off
		}
		if i == noteProg && spec.notePhdrOffsetZero {
			off = 0
		}
		if is64 {
			le.PutUint32(h[0:], uint32(p.typ))
			le.PutUint32(h[4:], uint32(p.flags))
			le.PutUint64(h[8:], off)
			le.PutUint64(h[16:], p.vaddr)
			le.PutUint64(h[24:], p.paddr)
			le.PutUint64(h[32:], uint64(len(p.data)))
			le.PutUint64(h[40:], p.memsz)
			le.PutUint64(h[48:], 0x1000)
		} else {
			le.PutUint32(h[0:], uint32(p.typ))
			le.PutUint32(h[4:], uint32(off))
			le.PutUint32(h[8:], uint32(p.vaddr))
			le.PutUint32(h[12:], uint32(p.paddr))
			le.PutUint32(h[16:], uint32(len(p.data)))
			le.PutUint32(h[20:], uint32(p.memsz))
			le.PutUint32(h[24:], uint32(p.flags))
			le.PutUint32(h[28:], 0x1000)
		}
	}
	return b
}

// Kernel layouts used by the tests.
const (
	linuxVirtBase = 0xffffffff80000000
	linuxText     = 0xffffffff81000000
	linuxEntry    = 0xffffffff81000100
)

// linuxSpec is a modern pvops-Linux-like kernel: notes only, p_paddr =
// p_vaddr - 0xffffffff80000000, PADDR_OFFSET 0 by default.
func linuxSpec() elfSpec {
	text := bytes.Repeat([]byte{0x90}, 0x2000)
	data := bytes.Repeat([]byte{0xaa}, 0x800)
	return elfSpec{
		entry: 0x1000100,
		segs: []tSeg{
			{typ: elf.PT_LOAD, flags: elf.PF_R | elf.PF_X, vaddr: linuxText, paddr: 0x1000000, data: text, memsz: 0x2000},
			{typ: elf.PT_LOAD, flags: elf.PF_R | elf.PF_W, vaddr: linuxText + 0x2000, paddr: 0x1002000, data: data, memsz: 0x3000},
			// A percpu-like segment: p_vaddr 0, placed by p_paddr.
			{typ: elf.PT_LOAD, flags: elf.PF_R | elf.PF_W, vaddr: 0, paddr: 0x1005000, data: []byte{1, 2, 3, 4}, memsz: 0x1000},
			{typ: elf.PT_GNU_STACK, flags: elf.PF_R | elf.PF_W},
		},
		notes: []tNote{
			xenNote(abi.ElfNoteGuestOS, str("linux")),
			xenNote(abi.ElfNoteGuestVersion, str("2.6")),
			xenNote(abi.ElfNoteXenVersion, str("xen-3.0")),
			xenNote(abi.ElfNoteVirtBase, n64(linuxVirtBase)),
			xenNote(abi.ElfNoteEntry, n64(linuxEntry)),
			xenNote(abi.ElfNoteLoader, str("generic")),
		},
	}
}

// legacySpec is a NetBSD-like kernel: __xen_guest only, p_paddr =
// p_vaddr.
func legacySpec(guestInfo string) elfSpec {
	return elfSpec{
		entry: 0xffffffff80100000,
		segs: []tSeg{
			{typ: elf.PT_LOAD, flags: elf.PF_R | elf.PF_X, vaddr: 0xffffffff80100000, paddr: 0xffffffff80100000, data: bytes.Repeat([]byte{0xcc}, 0x3000), memsz: 0x3000},
			{typ: elf.PT_LOAD, flags: elf.PF_R | elf.PF_W, vaddr: 0xffffffff80103000, paddr: 0xffffffff80103000, data: []byte{5, 6, 7}, memsz: 0x1ffd},
		},
		guestInfo: guestInfo,
	}
}

const netbsdGuestInfo = "GUEST_OS=NetBSD,GUEST_VER=4.99,XEN_VER=xen-3.0,LOADER=generic,VIRT_BASE=0xffffffff80000000,ELF_PADDR_OFFSET=0xffffffff80000000,VIRT_ENTRY=0xffffffff80100000,HYPERCALL_PAGE=0x00000101,BSD_SYMTAB=yes"

func TestBuildELFIsValid(t *testing.T) {
	// The builder's output must be an ELF debug/elf accepts, so that the
	// tests exercise real layouts.
	for _, spec := range []elfSpec{linuxSpec(), legacySpec(netbsdGuestInfo), func() elfSpec {
		s := linuxSpec()
		s.is32 = true
		s.symbols = []string{"a", "b"}
		return s
	}()} {
		b := buildELF(t, spec)
		f, err := elf.NewFile(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("debug/elf rejects the generated ELF: %v", err)
		}
		if len(f.Progs) < len(spec.segs) {
			t.Errorf("%d program headers, want at least %d", len(f.Progs), len(spec.segs))
		}
		if spec.symbols != nil {
			syms, err := f.Symbols()
			if err != nil || len(syms) != len(spec.symbols) {
				t.Errorf("symbols = %v, %v", syms, err)
			}
		}
	}
}
