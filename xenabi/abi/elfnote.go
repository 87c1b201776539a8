// Package abi holds constants and types of Xen's public ABI, as defined by
// the headers under xen/include/public (the specification xenvmm
// implements). Each file names the header it mirrors.
package abi

import "fmt"

// ElfNoteOwner is the name (n_name) that Xen's ELF notes carry:
// "The notes should live in a PT_NOTE segment and have "Xen" in the name
// field" (xen/include/public/elfnote.h).
const ElfNoteOwner = "Xen"

// ElfNote is the type (n_type) of an ELF note owned by "Xen":
// XEN_ELFNOTE_* in xen/include/public/elfnote.h.
type ElfNote uint32

// The Xen ELF note types of xen/include/public/elfnote.h. Numeric notes are
// 4 or 8 bytes wide depending on descsz; string notes are NUL-terminated
// ASCII. The LEGACY column of the header names the __xen_guest key that a
// note replaces.
const (
	ElfNoteInfo              ElfNote = 0  // XEN_ELFNOTE_INFO: NAME=VALUE pair (string)
	ElfNoteEntry             ElfNote = 1  // XEN_ELFNOTE_ENTRY: entry point VA (numeric); legacy VIRT_ENTRY
	ElfNoteHypercallPage     ElfNote = 2  // XEN_ELFNOTE_HYPERCALL_PAGE: hypercall page VA (numeric); legacy HYPERCALL_PAGE (a page number)
	ElfNoteVirtBase          ElfNote = 3  // XEN_ELFNOTE_VIRT_BASE: where the image is mapped (numeric); legacy VIRT_BASE
	ElfNotePaddrOffset       ElfNote = 4  // XEN_ELFNOTE_PADDR_OFFSET: offset of p_paddr from the pseudo-physical address (numeric); legacy ELF_PADDR_OFFSET
	ElfNoteXenVersion        ElfNote = 5  // XEN_ELFNOTE_XEN_VERSION: Xen version the guest works with (string); legacy XEN_VER
	ElfNoteGuestOS           ElfNote = 6  // XEN_ELFNOTE_GUEST_OS: guest OS name (string); legacy GUEST_OS
	ElfNoteGuestVersion      ElfNote = 7  // XEN_ELFNOTE_GUEST_VERSION: guest OS version (string); legacy GUEST_VER
	ElfNoteLoader            ElfNote = 8  // XEN_ELFNOTE_LOADER: loader type (string); legacy LOADER
	ElfNotePAEMode           ElfNote = 9  // XEN_ELFNOTE_PAE_MODE: "yes", "no" or "bimodal" (string, x86/32); legacy PAE
	ElfNoteFeatures          ElfNote = 10 // XEN_ELFNOTE_FEATURES: '|'-separated XENFEAT names, '!' = required (string); legacy FEATURES
	ElfNoteBSDSymtab         ElfNote = 11 // XEN_ELFNOTE_BSD_SYMTAB: "yes" to have the symbol table loaded (string); legacy BSD_SYMTAB
	ElfNoteHVStartLow        ElfNote = 12 // XEN_ELFNOTE_HV_START_LOW: lowest start of the hypervisor hole (numeric)
	ElfNoteL1MFNValid        ElfNote = 13 // XEN_ELFNOTE_L1_MFN_VALID: maddr_t mask/value pairs (numeric list)
	ElfNoteSuspendCancel     ElfNote = 14 // XEN_ELFNOTE_SUSPEND_CANCEL: cooperative suspend cancellation (numeric)
	ElfNoteInitP2M           ElfNote = 15 // XEN_ELFNOTE_INIT_P2M: VA of the initial P2M list (numeric, x86-64)
	ElfNoteModStartPFN       ElfNote = 16 // XEN_ELFNOTE_MOD_START_PFN: initrd may be passed unmapped (numeric)
	ElfNoteSupportedFeatures ElfNote = 17 // XEN_ELFNOTE_SUPPORTED_FEATURES: supported-feature bitmap (numeric)
	ElfNotePhys32Entry       ElfNote = 18 // XEN_ELFNOTE_PHYS32_ENTRY: 32-bit physical entry for PVH (numeric)
	ElfNotePhys32Reloc       ElfNote = 19 // XEN_ELFNOTE_PHYS32_RELOC: PVH relocation constraints (up to three 32-bit values)

	// ElfNoteMax is XEN_ELFNOTE_MAX, the highest note type defined.
	ElfNoteMax = ElfNotePhys32Reloc

	ElfNoteCrashInfo             ElfNote = 0x1000001 // XEN_ELFNOTE_CRASH_INFO (kexec crash notes)
	ElfNoteCrashRegs             ElfNote = 0x1000002 // XEN_ELFNOTE_CRASH_REGS
	ElfNoteDumpcoreNone          ElfNote = 0x2000000 // XEN_ELFNOTE_DUMPCORE_NONE (xm dump-core files)
	ElfNoteDumpcoreHeader        ElfNote = 0x2000001 // XEN_ELFNOTE_DUMPCORE_HEADER
	ElfNoteDumpcoreXenVersion    ElfNote = 0x2000002 // XEN_ELFNOTE_DUMPCORE_XEN_VERSION
	ElfNoteDumpcoreFormatVersion ElfNote = 0x2000003 // XEN_ELFNOTE_DUMPCORE_FORMAT_VERSION
)

// ElfNoteKind says how a note's descriptor is to be read.
type ElfNoteKind uint8

const (
	// ElfNoteOpaque descriptors have their own layout (a list, or
	// nothing Xen's domain builder reads).
	ElfNoteOpaque ElfNoteKind = iota
	// ElfNoteNumeric descriptors are one little-endian integer of
	// 1, 2, 4 or 8 bytes.
	ElfNoteNumeric
	// ElfNoteString descriptors are NUL-terminated ASCII.
	ElfNoteString
)

type elfNoteInfo struct {
	name string
	kind ElfNoteKind
}

var elfNotes = [...]elfNoteInfo{
	ElfNoteInfo:              {"INFO", ElfNoteString},
	ElfNoteEntry:             {"ENTRY", ElfNoteNumeric},
	ElfNoteHypercallPage:     {"HYPERCALL_PAGE", ElfNoteNumeric},
	ElfNoteVirtBase:          {"VIRT_BASE", ElfNoteNumeric},
	ElfNotePaddrOffset:       {"PADDR_OFFSET", ElfNoteNumeric},
	ElfNoteXenVersion:        {"XEN_VERSION", ElfNoteString},
	ElfNoteGuestOS:           {"GUEST_OS", ElfNoteString},
	ElfNoteGuestVersion:      {"GUEST_VERSION", ElfNoteString},
	ElfNoteLoader:            {"LOADER", ElfNoteString},
	ElfNotePAEMode:           {"PAE_MODE", ElfNoteString},
	ElfNoteFeatures:          {"FEATURES", ElfNoteString},
	ElfNoteBSDSymtab:         {"BSD_SYMTAB", ElfNoteString},
	ElfNoteHVStartLow:        {"HV_START_LOW", ElfNoteNumeric},
	ElfNoteL1MFNValid:        {"L1_MFN_VALID", ElfNoteOpaque},
	ElfNoteSuspendCancel:     {"SUSPEND_CANCEL", ElfNoteNumeric},
	ElfNoteInitP2M:           {"INIT_P2M", ElfNoteNumeric},
	ElfNoteModStartPFN:       {"MOD_START_PFN", ElfNoteNumeric},
	ElfNoteSupportedFeatures: {"SUPPORTED_FEATURES", ElfNoteNumeric},
	ElfNotePhys32Entry:       {"PHYS32_ENTRY", ElfNoteNumeric},
	ElfNotePhys32Reloc:       {"PHYS32_RELOC", ElfNoteOpaque},
}

// Name returns the note's name without the XEN_ELFNOTE_ prefix
// ("ENTRY"), or "" for a type elfnote.h does not define.
func (n ElfNote) Name() string {
	if int(n) < len(elfNotes) {
		return elfNotes[n].name
	}
	switch n {
	case ElfNoteCrashInfo:
		return "CRASH_INFO"
	case ElfNoteCrashRegs:
		return "CRASH_REGS"
	case ElfNoteDumpcoreNone:
		return "DUMPCORE_NONE"
	case ElfNoteDumpcoreHeader:
		return "DUMPCORE_HEADER"
	case ElfNoteDumpcoreXenVersion:
		return "DUMPCORE_XEN_VERSION"
	case ElfNoteDumpcoreFormatVersion:
		return "DUMPCORE_FORMAT_VERSION"
	}
	return ""
}

// Kind says how the descriptor of a note of this type is read. Types
// outside 0..ElfNoteMax are ElfNoteOpaque.
func (n ElfNote) Kind() ElfNoteKind {
	if int(n) < len(elfNotes) {
		return elfNotes[n].kind
	}
	return ElfNoteOpaque
}

// String returns the C name, "XEN_ELFNOTE_ENTRY", or "XEN_ELFNOTE(0x…)"
// for an undefined type.
func (n ElfNote) String() string {
	if s := n.Name(); s != "" {
		return "XEN_ELFNOTE_" + s
	}
	return fmt.Sprintf("XEN_ELFNOTE(%#x)", uint32(n))
}
