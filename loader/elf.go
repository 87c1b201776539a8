package loader

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
)

// elfFile is a bounds-checked view of an ELF image held in memory. It reads
// the headers the way Xen's libelf does (elf_init, elf_phdr_by_index,
// elf_shdr_by_index in xen/common/libelf) rather than through debug/elf,
// whose reader is stricter in places libelf is lenient and can panic on
// some malformed inputs; debug/elf lends its constants.
type elfFile struct {
	data    []byte
	is64    bool
	machine elf.Machine
	typ     elf.Type
	entry   uint64
	progs   []elfProg
	sects   []elfSect
	// shstrtab is the section-name string table (e_shstrndx), nil when
	// e_shstrndx names no section.
	shstrtab *elfSect
}

type elfProg struct {
	index  int
	typ    elf.ProgType
	flags  elf.ProgFlag
	off    uint64
	vaddr  uint64
	paddr  uint64
	filesz uint64
	memsz  uint64
	align  uint64
}

type elfSect struct {
	index   int
	nameOff uint32
	typ     elf.SectionType
	flags   uint64
	addr    uint64
	off     uint64
	size    uint64
	link    uint32
	info    uint32
	align   uint64
	entsize uint64
	// raw is the section header as it is in the file (40 or 64 bytes):
	// the BSD symtab copies it.
	raw []byte
}

const (
	ehdr32Size = 52
	ehdr64Size = 64
	phdr32Size = 32
	phdr64Size = 56
	shdr32Size = 40
	shdr64Size = 64
)

var le = binary.LittleEndian

// isELF reports whether data starts with the ELF magic.
func isELF(data []byte) bool { return bytes.HasPrefix(data, []byte(elf.ELFMAG)) }

// inFile reports whether [off, off+size) lies inside a file of length n,
// without overflowing.
func inFile(off, size uint64, n int) bool {
	return off <= uint64(n) && size <= uint64(n)-off
}

// parseELF reads the ELF header, program headers and section headers of
// data. Every offset and size is checked against len(data).
func parseELF(data []byte) (*elfFile, error) {
	if len(data) < elf.EI_NIDENT || !isELF(data) {
		return nil, malformed("not an ELF image")
	}
	f := &elfFile{data: data}
	switch elf.Class(data[elf.EI_CLASS]) {
	case elf.ELFCLASS32:
	case elf.ELFCLASS64:
		f.is64 = true
	default:
		return nil, malformed("ELF class %d is neither ELFCLASS32 nor ELFCLASS64", data[elf.EI_CLASS])
	}
	if elf.Data(data[elf.EI_DATA]) != elf.ELFDATA2LSB {
		return nil, unsupported("ELF data encoding %v: only little-endian x86 kernels are supported", elf.Data(data[elf.EI_DATA]))
	}
	var phoff, shoff uint64
	var phentsize, phnum, shentsize, shnum, shstrndx uint16
	if f.is64 {
		if len(data) < ehdr64Size {
			return nil, malformed("truncated ELF64 header (%d bytes)", len(data))
		}
		f.typ = elf.Type(le.Uint16(data[16:]))
		f.machine = elf.Machine(le.Uint16(data[18:]))
		f.entry = le.Uint64(data[24:])
		phoff = le.Uint64(data[32:])
		shoff = le.Uint64(data[40:])
		phentsize = le.Uint16(data[54:])
		phnum = le.Uint16(data[56:])
		shentsize = le.Uint16(data[58:])
		shnum = le.Uint16(data[60:])
		shstrndx = le.Uint16(data[62:])
	} else {
		if len(data) < ehdr32Size {
			return nil, malformed("truncated ELF32 header (%d bytes)", len(data))
		}
		f.typ = elf.Type(le.Uint16(data[16:]))
		f.machine = elf.Machine(le.Uint16(data[18:]))
		f.entry = uint64(le.Uint32(data[24:]))
		phoff = uint64(le.Uint32(data[28:]))
		shoff = uint64(le.Uint32(data[32:]))
		phentsize = le.Uint16(data[42:])
		phnum = le.Uint16(data[44:])
		shentsize = le.Uint16(data[46:])
		shnum = le.Uint16(data[48:])
		shstrndx = le.Uint16(data[50:])
	}

	phsize, shsize := uint64(phdr32Size), uint64(shdr32Size)
	if f.is64 {
		phsize, shsize = phdr64Size, shdr64Size
	}
	if phnum > 0 {
		if uint64(phentsize) < phsize {
			return nil, malformed("e_phentsize %d is smaller than a program header (%d)", phentsize, phsize)
		}
		// libelf's elf_init: "phdr overflow".
		if !inFile(phoff, uint64(phentsize)*uint64(phnum), len(data)) {
			return nil, malformed("program headers (offset %#x, %d × %d bytes) run past the end of the file (%#x)", phoff, phnum, phentsize, len(data))
		}
	}
	if shnum > 0 {
		if uint64(shentsize) < shsize {
			return nil, malformed("e_shentsize %d is smaller than a section header (%d)", shentsize, shsize)
		}
		// libelf's elf_init: "shdr overflow".
		if !inFile(shoff, uint64(shentsize)*uint64(shnum), len(data)) {
			return nil, malformed("section headers (offset %#x, %d × %d bytes) run past the end of the file (%#x)", shoff, shnum, shentsize, len(data))
		}
	}

	f.progs = make([]elfProg, phnum)
	for i := range f.progs {
		b := data[phoff+uint64(i)*uint64(phentsize):][:phsize]
		p := &f.progs[i]
		p.index = i
		p.typ = elf.ProgType(le.Uint32(b[0:]))
		if f.is64 {
			p.flags = elf.ProgFlag(le.Uint32(b[4:]))
			p.off = le.Uint64(b[8:])
			p.vaddr = le.Uint64(b[16:])
			p.paddr = le.Uint64(b[24:])
			p.filesz = le.Uint64(b[32:])
			p.memsz = le.Uint64(b[40:])
			p.align = le.Uint64(b[48:])
		} else {
			p.off = uint64(le.Uint32(b[4:]))
			p.vaddr = uint64(le.Uint32(b[8:]))
			p.paddr = uint64(le.Uint32(b[12:]))
			p.filesz = uint64(le.Uint32(b[16:]))
			p.memsz = uint64(le.Uint32(b[20:]))
			p.flags = elf.ProgFlag(le.Uint32(b[24:]))
			p.align = uint64(le.Uint32(b[28:]))
		}
	}

	f.sects = make([]elfSect, shnum)
	for i := range f.sects {
		b := data[shoff+uint64(i)*uint64(shentsize):][:shsize]
		s := &f.sects[i]
		s.index = i
		s.raw = b
		s.nameOff = le.Uint32(b[0:])
		s.typ = elf.SectionType(le.Uint32(b[4:]))
		if f.is64 {
			s.flags = le.Uint64(b[8:])
			s.addr = le.Uint64(b[16:])
			s.off = le.Uint64(b[24:])
			s.size = le.Uint64(b[32:])
			s.link = le.Uint32(b[40:])
			s.info = le.Uint32(b[44:])
			s.align = le.Uint64(b[48:])
			s.entsize = le.Uint64(b[56:])
		} else {
			s.flags = uint64(le.Uint32(b[8:]))
			s.addr = uint64(le.Uint32(b[12:]))
			s.off = uint64(le.Uint32(b[16:]))
			s.size = uint64(le.Uint32(b[20:]))
			s.link = le.Uint32(b[24:])
			s.info = le.Uint32(b[28:])
			s.align = uint64(le.Uint32(b[32:]))
			s.entsize = uint64(le.Uint32(b[36:]))
		}
	}
	if int(shstrndx) < len(f.sects) && shstrndx != uint16(elf.SHN_UNDEF) {
		f.shstrtab = &f.sects[shstrndx]
	}
	return f, nil
}

// class is 32 or 64.
func (f *elfFile) class() int {
	if f.is64 {
		return 64
	}
	return 32
}

// align is libelf's elf_round_up unit: 8 bytes for ELF64, 4 for ELF32.
func (f *elfFile) align() uint64 {
	if f.is64 {
		return 8
	}
	return 4
}

func (f *elfFile) roundUp(v uint64) uint64 {
	a := f.align() - 1
	return (v + a) &^ a
}

// bytesAt returns data[off:off+size], or false when that range is not
// inside the file.
func (f *elfFile) bytesAt(off, size uint64) ([]byte, bool) {
	if !inFile(off, size, len(f.data)) {
		return nil, false
	}
	return f.data[off : off+size], true
}

// sectionData returns the section's bytes in the file (nil for SHT_NOBITS).
func (f *elfFile) sectionData(s *elfSect) ([]byte, error) {
	if s.typ == elf.SHT_NOBITS {
		return nil, nil
	}
	b, ok := f.bytesAt(s.off, s.size)
	if !ok {
		return nil, malformed("section %d (%q) at offset %#x, size %#x, runs past the end of the file (%#x)", s.index, f.sectionName(s), s.off, s.size, len(f.data))
	}
	return b, nil
}

// sectionName returns the name of s from the section-name string table,
// or "" when it has none or it is out of range.
func (f *elfFile) sectionName(s *elfSect) string {
	if f.shstrtab == nil || f.shstrtab.typ == elf.SHT_NOBITS {
		return ""
	}
	tab, ok := f.bytesAt(f.shstrtab.off, f.shstrtab.size)
	if !ok || uint64(s.nameOff) >= uint64(len(tab)) {
		return ""
	}
	return cstring(tab[s.nameOff:])
}

// sectionByName is libelf's elf_shdr_by_name: the first section, from
// index 1, with that name.
func (f *elfFile) sectionByName(name string) *elfSect {
	for i := 1; i < len(f.sects); i++ {
		if f.sectionName(&f.sects[i]) == name {
			return &f.sects[i]
		}
	}
	return nil
}

// loadable is libelf's elf_phdr_is_loadable: PT_LOAD with any of R, W, X.
func (p *elfProg) loadable() bool {
	return p.typ == elf.PT_LOAD && p.flags&(elf.PF_R|elf.PF_W|elf.PF_X) != 0
}

// cstring returns b up to its first NUL (all of b when there is none).
func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func (f *elfFile) String() string {
	return fmt.Sprintf("ELF%d %v", f.class(), f.machine)
}
