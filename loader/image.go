package loader

import (
	"debug/elf"
	"math/bits"
	"strings"

	"github.com/xenvmm/xenvmm/xenabi/abi"
)

// Format says how the kernel was packaged: "elf" for a plain ELF,
// "gzip+elf" (and likewise "xz+elf", ...) for a compressed ELF,
// "bzImage+xz" (and "bzImage+gzip", ...) for a Linux bzImage with that
// payload compression, "gzip+bzImage+xz" for a compressed bzImage. The
// innermost image is always an ELF.
type Format string

// Segment is one loadable program header (PT_LOAD with any of R, W, X)
// placed where Xen's domain builder places it.
type Segment struct {
	// VAddr is the destination virtual address: p_paddr + (VirtBase -
	// PaddrOffset), as elf_load_binary copies it (p_vaddr is not used: a
	// Linux percpu segment has p_vaddr 0).
	VAddr uint64
	// PAddr and PVAddr are p_paddr and p_vaddr as the ELF has them.
	PAddr, PVAddr uint64
	// Data is the segment's bytes in the file (p_filesz of them); it
	// aliases the decompressed image. Bytes past len(Data) up to MemSize
	// are zero.
	Data []byte
	// MemSize is p_memsz.
	MemSize uint64
	// Flags are p_flags.
	Flags elf.ProgFlag
}

// Image is a Xen PV kernel, read and laid out as Xen's libelf and libxc
// (xg_dom_elfloader.c) would: the parameters of struct elf_dom_parms and
// the segments to copy.
type Image struct {
	// Name is the path (or name) the image was loaded from.
	Name   string
	Format Format
	// Class is 32 or 64; Machine is EM_386 or EM_X86_64.
	Class   int
	Machine elf.Machine

	// Entry is the virtual entry point (XEN_ELFNOTE_ENTRY, VIRT_ENTRY, or
	// e_entry).
	Entry uint64
	// VirtBase is where the kernel's address space starts
	// (XEN_ELFNOTE_VIRT_BASE / VIRT_BASE; 0 when unset). Page frame n of
	// the initial domain memory is mapped at VirtBase + n*4096.
	VirtBase uint64
	// PaddrOffset is XEN_ELFNOTE_PADDR_OFFSET / ELF_PADDR_OFFSET, with
	// libelf's default: 0 for ELF notes, VirtBase for __xen_guest.
	PaddrOffset uint64
	// HypercallPage is the virtual address of the hypercall page the
	// builder must fill (legacy: HYPERCALL_PAGE page number, relative to
	// VirtBase); 0 when the kernel has none.
	HypercallPage uint64
	// HVStartLow is XEN_ELFNOTE_HV_START_LOW, 0 when absent.
	HVStartLow uint64
	// InitP2M is XEN_ELFNOTE_INIT_P2M, the virtual address where the
	// kernel wants the initial P2M list mapped; 0 when absent (the
	// builder then places it after the kernel).
	InitP2M uint64
	// Features are the supported and required Xen features.
	Features Features

	GuestOS, GuestVersion, XenVersion, Loader string
	// PAEMode is the PAE declaration (matters for 32-bit kernels only);
	// PAEString is its text as found.
	PAEMode   PAEMode
	PAEString string
	// BSDSymtab is set when the kernel asks for its symbol table
	// (XEN_ELFNOTE_BSD_SYMTAB "yes", or a BSD_SYMTAB key).
	BSDSymtab bool
	// L1MFNValid is XEN_ELFNOTE_L1_MFN_VALID.
	L1MFNValid []L1MFNValid
	// SuspendCancel is XEN_ELFNOTE_SUSPEND_CANCEL != 0.
	SuspendCancel bool
	// ModStartPFN is XEN_ELFNOTE_MOD_START_PFN != 0: the initrd may be
	// passed unmapped, by PFN.
	ModStartPFN bool
	// PhysEntry is XEN_ELFNOTE_PHYS32_ENTRY (the PVH entry), 0 when absent.
	PhysEntry uint32

	// VirtKStart and VirtKEnd bound the kernel's initial image:
	// [lowest p_paddr, highest p_paddr+p_memsz) + (VirtBase -
	// PaddrOffset), VirtKEnd extended past the BSD symbol table when
	// there is one. The builder places what follows (start info, page
	// tables, ...) from VirtKEnd rounded up to a page.
	VirtKStart, VirtKEnd uint64
	Segments             []Segment

	// Symtab is the BSD symbol-table blob (see bsdSymtab) to copy at
	// SymtabVAddr, or nil.
	Symtab      []byte
	SymtabVAddr uint64

	// Legacy is set when the parameters came from the __xen_guest
	// section (GuestInfo holds it); otherwise NotesFrom says whether the
	// Xen notes were found in "PT_NOTE" segments or "SHT_NOTE" sections.
	Legacy    bool
	GuestInfo string
	NotesFrom string
	// Notes lists the Xen notes found, in file order.
	Notes []Note
}

// VirtOffset is VirtBase - PaddrOffset, what libelf adds to p_paddr.
func (img *Image) VirtOffset() uint64 { return img.VirtBase - img.PaddrOffset }

// fromELF checks that f is a Xen PV kernel and lays it out.
func fromELF(name string, format Format, f *elfFile) (*Image, error) {
	switch {
	case f.machine == elf.EM_X86_64 && f.is64, f.machine == elf.EM_386 && !f.is64:
	case f.machine == elf.EM_X86_64 || f.machine == elf.EM_386:
		return nil, malformed("ELF class %d does not match machine %v", f.class(), f.machine)
	default:
		return nil, unsupported("machine %v: only x86_64 and i386 Xen PV kernels are supported", f.machine)
	}
	x, err := parseXen(f)
	if err != nil {
		return nil, err
	}
	if err := x.check(); err != nil {
		return nil, err
	}
	img := &Image{
		Name:          name,
		Format:        format,
		Class:         f.class(),
		Machine:       f.machine,
		GuestOS:       x.guestOS,
		GuestVersion:  x.guestVer,
		XenVersion:    x.xenVer,
		Loader:        x.loader,
		PAEMode:       x.pae,
		PAEString:     x.paeStr,
		BSDSymtab:     x.bsdSymtab,
		Features:      x.features,
		L1MFNValid:    x.l1MFNValid,
		SuspendCancel: x.suspendCancel,
		ModStartPFN:   x.unmappedInitrd,
		Legacy:        x.hasGuestInfo,
		GuestInfo:     x.guestInfo,
		NotesFrom:     x.notesFrom,
		Notes:         x.notes,
	}
	if x.physEntry != unset {
		img.PhysEntry = uint32(x.physEntry)
	}
	if x.hvStartLow != unset {
		img.HVStartLow = x.hvStartLow
	}
	if err := img.layout(f, x); err != nil {
		return nil, err
	}

	// xc_dom_parse_elf_kernel and xc_dom_guest_type.
	if x.features.Required.Has(abi.FeatDom0) {
		return nil, unsupported("the kernel requires XENFEAT_dom0: it does not support unprivileged (DomU) operation")
	}
	if !f.is64 && x.pae == PAENo {
		return nil, unsupported("32-bit kernel without PAE (no PAE_MODE note or PAE key): 32-bit non-PAE Xen PV guests are not supported")
	}
	return img, nil
}

// check is elf_xen_note_check for a PV guest, plus the PVH-only case.
func (x *xenParms) check() error {
	if x.xenNotes == 0 && !x.hasGuestInfo {
		return notPV("no XEN_ELFNOTE_ENTRY note or __xen_guest section")
	}
	// A kernel with only the PVH entry point: libelf would start it at
	// e_entry, which is not a PV entry.
	if !x.hasGuestInfo && !x.seen[abi.ElfNoteEntry] && x.seen[abi.ElfNotePhys32Entry] {
		return notPV("it has a PVH entry point (XEN_ELFNOTE_PHYS32_ENTRY) but no XEN_ELFNOTE_ENTRY note")
	}
	if !strings.HasPrefix(x.loader, "generic") && !strings.HasPrefix(x.guestOS, "linux") {
		return unsupported("Xen loads only images built for the generic loader or Linux (LOADER is %q, GUEST_OS is %q)", x.loader, x.guestOS)
	}
	if !strings.HasPrefix(x.xenVer, "xen-3.0") {
		return unsupported("Xen loads only images built for Xen v3.0 (XEN_VERSION is %q, want \"xen-3.0\")", x.xenVer)
	}
	return nil
}

// layout is elf_parse_binary, elf_xen_addr_calc_check (PV) and the
// placement of elf_load_binary and elf_load_bsdsyms.
func (img *Image) layout(f *elfFile, x *xenParms) error {
	// elf_parse_binary: the physical extent of the loadable segments.
	pstart, pend := unset, uint64(0)
	var loadable []*elfProg
	for i := range f.progs {
		p := &f.progs[i]
		if !p.loadable() {
			continue
		}
		hi, carry := bits.Add64(p.paddr, p.memsz, 0)
		if carry != 0 {
			return malformed("program header %d: p_paddr %#x + p_memsz %#x overflows", p.index, p.paddr, p.memsz)
		}
		pstart = min(pstart, p.paddr)
		pend = max(pend, hi)
		loadable = append(loadable, p)
	}
	if len(loadable) == 0 {
		return malformed("no loadable (PT_LOAD) segments")
	}

	// elf_xen_addr_calc_check.
	if x.paddrOffset != unset && x.virtBase == unset {
		return malformed("ELF_PADDR_OFFSET set, VIRT_BASE unset")
	}
	if x.virtBase == unset {
		x.virtBase = 0
	}
	if x.paddrOffset == unset {
		// Legacy __xen_guest kernels put VIRT_BASE into p_paddr; with
		// notes the default is 0.
		if x.noteStart {
			x.paddrOffset = 0
		} else {
			x.paddrOffset = x.virtBase
		}
	}
	virtOffset := x.virtBase - x.paddrOffset
	img.VirtBase = x.virtBase
	img.PaddrOffset = x.paddrOffset
	img.VirtKStart = pstart + virtOffset
	img.VirtKEnd = pend + virtOffset
	if x.virtEntry == unset {
		x.virtEntry = f.entry
	}
	img.Entry = x.virtEntry

	if x.bsdSymtab {
		blob, reserve, ok, err := bsdSymtab(f)
		if err != nil {
			return err
		}
		if ok {
			symStart := f.roundUp(pend)
			img.Symtab = blob
			img.SymtabVAddr = symStart + virtOffset
			// libelf's extent, or the blob's own when larger (ELF32).
			img.VirtKEnd = symStart + max(reserve, f.roundUp(uint64(len(blob)))) + virtOffset
		}
	}

	if img.VirtKStart > img.VirtKEnd ||
		img.Entry < img.VirtKStart || img.Entry > img.VirtKEnd ||
		img.VirtBase > img.VirtKStart {
		return malformed("ELF start or entries are out of bounds (virt_base %#x, kernel %#x-%#x, entry %#x)",
			img.VirtBase, img.VirtKStart, img.VirtKEnd, img.Entry)
	}
	if x.p2mBase != unset {
		if x.p2mBase >= img.VirtKStart && x.p2mBase < img.VirtKEnd {
			return malformed("P->M table base %#x is inside the kernel (%#x-%#x)", x.p2mBase, img.VirtKStart, img.VirtKEnd)
		}
		img.InitP2M = x.p2mBase
	}
	if x.virtHypercall != unset {
		img.HypercallPage = x.virtHypercall
	}

	// elf_load_binary: refuse segments that would copy the image over
	// and over (more than twice the kernel's extent in all).
	span := img.VirtKEnd - img.VirtKStart
	if span <= ^uint64(0)-4095 {
		span = (span + 4095) &^ 4095
	}
	allow, carry := bits.Add64(span, span, 0)
	if carry != 0 {
		allow = ^uint64(0)
	}
	var total uint64
	for _, p := range loadable {
		if p.filesz > p.memsz {
			return malformed("program header %d: p_filesz %#x > p_memsz %#x", p.index, p.filesz, p.memsz)
		}
		data, ok := f.bytesAt(p.off, p.filesz)
		if !ok {
			return malformed("program header %d: file bytes %#x+%#x run past the end of the file (%#x)", p.index, p.off, p.filesz, len(f.data))
		}
		if p.memsz > allow-total {
			return malformed("program segments total to more than twice the kernel's extent")
		}
		total += p.memsz
		img.Segments = append(img.Segments, Segment{
			VAddr:   p.paddr + virtOffset,
			PAddr:   p.paddr,
			PVAddr:  p.vaddr,
			Data:    data,
			MemSize: p.memsz,
			Flags:   p.flags,
		})
	}
	return nil
}
