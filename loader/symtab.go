package loader

import "debug/elf"

// bsdSymtabHeader is the size of libelf's struct elf_sym_header (packed):
// a 4-byte size word, then room for an ELF header (the 64-byte union of
// Elf32_Ehdr and Elf64_Ehdr) and three section headers (64-byte unions).
const (
	symHdrEhdrSlot = 64
	symHdrShdrSlot = 64
	bsdSymSections = 3 // ELF_BSDSYM_SECTIONS: undefined, SYMTAB, STRTAB
	symHdrSize     = 4 + symHdrEhdrSlot + bsdSymSections*symHdrShdrSlot
)

// bsdSymtab is the symbol table blob Xen's domain builder loads after a
// BSD_SYMTAB=yes kernel (elf_parse_bsdsyms and elf_load_bsdsyms in
// xen/common/libelf/libelf-loader.c), for a blob starting at a suitably
// aligned address:
//
//	+0      uint32 size: bytes from +4 to the end of the string table
//	+4      ELF header, a copy of the kernel's with e_phoff, e_phentsize,
//	        e_phnum, e_shstrndx = 0, e_shoff = 64, e_shnum = 3,
//	        e_ehsize and e_shentsize = this class's sizes, e_version = 1
//	+68     section headers: [0] zero, [1] the SYMTAB header with sh_offset
//	        (relative to +4) and sh_link = 2, [2] the STRTAB header with
//	        sh_offset (relative to +4)
//	+264    (+260 for ELF32; sizeof the packed header, rounded up to 8 or 4)
//	        the symbol table, then, rounded up, the string table
//
// reserve is the space elf_parse_bsdsyms sets aside (bsd_symtab_pend -
// bsd_symtab_pstart). For ELF64 it equals the blob's length rounded up;
// for ELF32 libelf counts 68 bytes fewer than it writes.
//
// ok is false when the kernel has no usable symbol table (libelf then
// loads none): no SHT_SYMTAB section with a valid sh_link, or a link to a
// section that is not SHT_STRTAB.
func bsdSymtab(f *elfFile) (blob []byte, reserve uint64, ok bool, err error) {
	// elf_init: the first SHT_SYMTAB from index 1; a bad link ends the search.
	var sym, str *elfSect
	for i := 1; i < len(f.sects); i++ {
		s := &f.sects[i]
		if s.typ != elf.SHT_SYMTAB {
			continue
		}
		if s.link == uint32(elf.SHN_UNDEF) || uint64(s.link) >= uint64(len(f.sects)) {
			break
		}
		sym, str = s, &f.sects[s.link]
		break
	}
	if sym == nil || str.typ != elf.SHT_STRTAB {
		return nil, 0, false, nil
	}
	symData, err := f.sectionData(sym)
	if err != nil {
		return nil, 0, false, err
	}
	strData, err := f.sectionData(str)
	if err != nil {
		return nil, 0, false, err
	}

	ehdrSize, shdrSize := uint64(ehdr32Size), uint64(shdr32Size)
	if f.is64 {
		ehdrSize, shdrSize = ehdr64Size, shdr64Size
	}

	// elf_parse_bsdsyms's sum, size word counted twice as libelf does.
	reserve = f.roundUp(4 + (4 + symHdrEhdrSlot) + bsdSymSections*shdrSize)
	reserve = f.roundUp(reserve + sym.size)
	reserve = f.roundUp(reserve + str.size)

	// elf_load_bsdsyms's layout.
	symOff := f.roundUp(symHdrSize)
	strOff := f.roundUp(symOff + uint64(len(symData)))
	end := strOff + uint64(len(strData))
	blob = make([]byte, end)
	le.PutUint32(blob[0:], uint32(end-4))

	eh := blob[4 : 4+ehdrSize]
	copy(eh, f.data[:ehdrSize])
	le.PutUint32(eh[20:], uint32(elf.EV_CURRENT))
	if f.is64 {
		le.PutUint64(eh[32:], 0)              // e_phoff
		le.PutUint64(eh[40:], symHdrEhdrSlot) // e_shoff
		le.PutUint16(eh[52:], uint16(ehdrSize))
		le.PutUint16(eh[54:], 0) // e_phentsize
		le.PutUint16(eh[56:], 0) // e_phnum
		le.PutUint16(eh[58:], uint16(shdrSize))
		le.PutUint16(eh[60:], bsdSymSections)
		le.PutUint16(eh[62:], 0) // e_shstrndx
	} else {
		le.PutUint32(eh[28:], 0)              // e_phoff
		le.PutUint32(eh[32:], symHdrEhdrSlot) // e_shoff
		le.PutUint16(eh[40:], uint16(ehdrSize))
		le.PutUint16(eh[42:], 0) // e_phentsize
		le.PutUint16(eh[44:], 0) // e_phnum
		le.PutUint16(eh[46:], uint16(shdrSize))
		le.PutUint16(eh[48:], bsdSymSections)
		le.PutUint16(eh[50:], 0) // e_shstrndx
	}

	shdrs := blob[4+symHdrEhdrSlot:]
	symSh := shdrs[1*shdrSize : 2*shdrSize]
	strSh := shdrs[2*shdrSize : 3*shdrSize]
	copy(symSh, sym.raw)
	copy(strSh, str.raw)
	// sh_offset is relative to the ELF header at +4.
	if f.is64 {
		le.PutUint64(symSh[24:], symOff-4)
		le.PutUint32(symSh[40:], 2) // sh_link: STRTAB_INDEX
		le.PutUint64(strSh[24:], strOff-4)
	} else {
		le.PutUint32(symSh[16:], uint32(symOff-4))
		le.PutUint32(symSh[24:], 2)
		le.PutUint32(strSh[16:], uint32(strOff-4))
	}
	copy(blob[symOff:], symData)
	copy(blob[strOff:], strData)
	return blob, reserve, true, nil
}
