// Package loader reads Xen PV guest kernels the way Xen's own tools do and
// lays them out for xenvmm's domain builder.
//
// It accepts a plain ELF (ELF64 x86_64 or ELF32 i386 PAE), a compressed
// ELF (gzip, as NetBSD ships netbsd-XEN3_DOMU.gz; also xz, bzip2, lzma,
// lz4, zstd) and a Linux bzImage, whose payload (boot protocol 2.08+:
// payload_offset, payload_length) is an ELF compressed with gzip, bzip2,
// lzma, xz (with the x86 BCJ filter, as Debian builds it), lz4 (legacy
// frame) or zstd. Decompressed data is capped at MaxSize.
//
// The Xen parameters come, as in elf_xen_parse, from the XEN_ELFNOTE_*
// notes (owner "Xen") of PT_NOTE segments, else of SHT_NOTE sections,
// else from the legacy __xen_guest string section. Addresses are computed
// as elf_xen_addr_calc_check does: VIRT_BASE defaults to 0, PADDR_OFFSET
// to 0 with notes and to VIRT_BASE with __xen_guest, ENTRY to e_entry;
// segments go to p_paddr + VIRT_BASE - PADDR_OFFSET (never p_vaddr); a
// legacy HYPERCALL_PAGE is a page number relative to VIRT_BASE. For
// BSD_SYMTAB kernels the symbol table blob of elf_load_bsdsyms is built
// and the kernel's end extended past it.
//
// A kernel without PV support (no Xen notes and no __xen_guest, or only
// the PVH entry note) fails with an error wrapping ErrNotPV; Xen's other
// refusals (32-bit non-PAE, dom0-only, unknown required features, wrong
// LOADER/GUEST_OS/XEN_VERSION) wrap ErrUnsupported, damaged images
// ErrMalformed. Every offset and size is bounds-checked; no input panics.
//
// Sources (the specification, read but not copied):
//   - xen/include/public/elfnote.h: the note types, their encodings, and
//     the legacy __xen_guest keys they replace
//   - xen/include/public/features.h: XENFEAT_* names for FEATURES
//   - xen/common/libelf/libelf-dominfo.c: elf_xen_parse_note,
//     elf_xen_parse_guest_info, elf_xen_note_check,
//     elf_xen_addr_calc_check, elf_xen_parse
//   - xen/common/libelf/libelf-loader.c: elf_parse_binary,
//     elf_load_binary, elf_parse_bsdsyms, elf_load_bsdsyms
//   - xen/common/libelf/libelf-tools.c: note walking, numeric notes
//   - tools/libs/guest/xg_dom_elfloader.c: the dom0-only and PAE checks
//   - tools/libs/guest/xg_dom_bzimageloader.c and xen/common/unlz4.c:
//     the bzImage setup header and payload formats
//   - the .xz file format (tukaani.org) and the x86 BCJ filter of the LZMA
//     SDK, for xz.go
package loader
