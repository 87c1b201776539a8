package loader

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"testing"
)

func TestBSDSymtabBlob(t *testing.T) {
	syms := []string{"start", "xpq_queue_machphys_update", "hypercall_page"}
	for _, is32 := range []bool{false, true} {
		s := legacySpec("GUEST_OS=NetBSD,XEN_VER=xen-3.0,LOADER=generic,VIRT_BASE=0xc0000000,VIRT_ENTRY=0xc0100000,BSD_SYMTAB=yes,PAE=yes[extended-cr3]")
		s.is32 = is32
		s.entry = 0xc0100000
		s.segs = []tSeg{
			{typ: elf.PT_LOAD, flags: elf.PF_R | elf.PF_X, vaddr: 0xc0100000, paddr: 0xc0100000, data: make([]byte, 0x1000), memsz: 0x1000},
			// Ends at an address that is not 8-aligned.
			{typ: elf.PT_LOAD, flags: elf.PF_R | elf.PF_W, vaddr: 0xc0101000, paddr: 0xc0101000, data: []byte{1}, memsz: 0x123},
		}
		s.symbols = syms
		img := mustLoad(t, s)
		align := uint64(8)
		shdrSize := uint64(64)
		if is32 {
			align, shdrSize = 4, 40
		}
		pend := uint64(0xc0101123)
		start := (pend + align - 1) &^ (align - 1)
		if img.SymtabVAddr != start {
			t.Errorf("ELF%d: symtab at %#x, want %#x (p_end rounded up to %d)", img.Class, img.SymtabVAddr, start, align)
		}
		blob := img.Symtab
		if got := binary.LittleEndian.Uint32(blob); uint64(got) != uint64(len(blob))-4 {
			t.Errorf("ELF%d: size word %d, blob %d bytes", img.Class, got, len(blob))
		}
		// libelf's reservation: 4 + 68 + 3 shdrs, symtab, strtab, each
		// rounded up.
		symsz := uint64(len(syms)+1) * 24
		strsz := uint64(1)
		for _, n := range syms {
			strsz += uint64(len(n) + 1)
		}
		if is32 {
			symsz = uint64(len(syms)+1) * 16
		}
		ru := func(v uint64) uint64 { return (v + align - 1) &^ (align - 1) }
		reserve := ru(ru(ru(72+3*shdrSize)+symsz) + strsz)
		wantEnd := start + max(reserve, ru(uint64(len(blob))))
		if img.VirtKEnd != wantEnd {
			t.Errorf("ELF%d: kernel end %#x, want %#x", img.Class, img.VirtKEnd, wantEnd)
		}
		if img.VirtKEnd < img.SymtabVAddr+uint64(len(blob)) {
			t.Errorf("ELF%d: kernel end %#x is before the blob's end %#x", img.Class, img.VirtKEnd, img.SymtabVAddr+uint64(len(blob)))
		}
		// Where libelf puts the symbol table: after the packed header
		// (260 bytes), rounded up.
		wantSymOff := ru(260)
		f, err := elf.NewFile(bytes.NewReader(blob[4:]))
		if err != nil {
			t.Fatalf("ELF%d: the blob after its size word is not an ELF debug/elf reads: %v", img.Class, err)
		}
		if len(f.Sections) != 3 || f.Sections[1].Type != elf.SHT_SYMTAB || f.Sections[2].Type != elf.SHT_STRTAB || f.Sections[1].Link != 2 {
			t.Fatalf("ELF%d: sections %+v", img.Class, f.Sections)
		}
		if off := f.Sections[1].Offset + 4; off != wantSymOff {
			t.Errorf("ELF%d: symtab at blob offset %d, want %d", img.Class, off, wantSymOff)
		}
		if f.Class == elf.ELFCLASS32 != is32 || len(f.Progs) != 0 {
			t.Errorf("ELF%d: class %v, %d program headers", img.Class, f.Class, len(f.Progs))
		}
		got, err := f.Symbols()
		if err != nil || len(got) != len(syms) {
			t.Fatalf("ELF%d: symbols %v, %v", img.Class, got, err)
		}
		for i, sym := range got {
			if sym.Name != syms[i] {
				t.Errorf("ELF%d: symbol %d = %q, want %q", img.Class, i, sym.Name, syms[i])
			}
		}
		// e_ehsize and e_shentsize describe this class.
		eh := blob[4:]
		if is32 {
			if binary.LittleEndian.Uint16(eh[40:]) != 52 || binary.LittleEndian.Uint16(eh[46:]) != 40 || binary.LittleEndian.Uint32(eh[32:]) != 64 {
				t.Errorf("ELF32 header sizes wrong: % x", eh[:52])
			}
		} else if binary.LittleEndian.Uint16(eh[52:]) != 64 || binary.LittleEndian.Uint16(eh[58:]) != 64 || binary.LittleEndian.Uint64(eh[40:]) != 64 {
			t.Errorf("ELF64 header sizes wrong: % x", eh[:64])
		}
	}
}

func TestBSDSymtabAbsent(t *testing.T) {
	// BSD_SYMTAB requested but the kernel is stripped: libelf loads no
	// table and leaves the kernel's end alone.
	img := mustLoad(t, legacySpec(netbsdGuestInfo))
	if !img.BSDSymtab || img.Symtab != nil || img.VirtKEnd != 0xffffffff80104ffd {
		t.Errorf("BSDSymtab %v Symtab %d bytes VirtKEnd %#x", img.BSDSymtab, len(img.Symtab), img.VirtKEnd)
	}
	// Not requested: none built even though the kernel has symbols.
	s := legacySpec("GUEST_OS=NetBSD,XEN_VER=xen-3.0,LOADER=generic,VIRT_BASE=0xffffffff80000000")
	s.symbols = []string{"start"}
	if img := mustLoad(t, s); img.Symtab != nil {
		t.Errorf("symtab built without BSD_SYMTAB")
	}
}
