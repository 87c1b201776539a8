package abi

import "testing"

func TestElfNoteNumbers(t *testing.T) {
	// Values from xen/include/public/elfnote.h.
	tests := []struct {
		n    ElfNote
		want uint32
		str  string
		kind ElfNoteKind
	}{
		{ElfNoteInfo, 0, "XEN_ELFNOTE_INFO", ElfNoteString},
		{ElfNoteEntry, 1, "XEN_ELFNOTE_ENTRY", ElfNoteNumeric},
		{ElfNoteHypercallPage, 2, "XEN_ELFNOTE_HYPERCALL_PAGE", ElfNoteNumeric},
		{ElfNoteVirtBase, 3, "XEN_ELFNOTE_VIRT_BASE", ElfNoteNumeric},
		{ElfNotePaddrOffset, 4, "XEN_ELFNOTE_PADDR_OFFSET", ElfNoteNumeric},
		{ElfNoteXenVersion, 5, "XEN_ELFNOTE_XEN_VERSION", ElfNoteString},
		{ElfNoteGuestOS, 6, "XEN_ELFNOTE_GUEST_OS", ElfNoteString},
		{ElfNoteGuestVersion, 7, "XEN_ELFNOTE_GUEST_VERSION", ElfNoteString},
		{ElfNoteLoader, 8, "XEN_ELFNOTE_LOADER", ElfNoteString},
		{ElfNotePAEMode, 9, "XEN_ELFNOTE_PAE_MODE", ElfNoteString},
		{ElfNoteFeatures, 10, "XEN_ELFNOTE_FEATURES", ElfNoteString},
		{ElfNoteBSDSymtab, 11, "XEN_ELFNOTE_BSD_SYMTAB", ElfNoteString},
		{ElfNoteHVStartLow, 12, "XEN_ELFNOTE_HV_START_LOW", ElfNoteNumeric},
		{ElfNoteL1MFNValid, 13, "XEN_ELFNOTE_L1_MFN_VALID", ElfNoteOpaque},
		{ElfNoteSuspendCancel, 14, "XEN_ELFNOTE_SUSPEND_CANCEL", ElfNoteNumeric},
		{ElfNoteInitP2M, 15, "XEN_ELFNOTE_INIT_P2M", ElfNoteNumeric},
		{ElfNoteModStartPFN, 16, "XEN_ELFNOTE_MOD_START_PFN", ElfNoteNumeric},
		{ElfNoteSupportedFeatures, 17, "XEN_ELFNOTE_SUPPORTED_FEATURES", ElfNoteNumeric},
		{ElfNotePhys32Entry, 18, "XEN_ELFNOTE_PHYS32_ENTRY", ElfNoteNumeric},
		{ElfNotePhys32Reloc, 19, "XEN_ELFNOTE_PHYS32_RELOC", ElfNoteOpaque},
		{ElfNoteCrashInfo, 0x1000001, "XEN_ELFNOTE_CRASH_INFO", ElfNoteOpaque},
		{ElfNoteCrashRegs, 0x1000002, "XEN_ELFNOTE_CRASH_REGS", ElfNoteOpaque},
		{ElfNoteDumpcoreNone, 0x2000000, "XEN_ELFNOTE_DUMPCORE_NONE", ElfNoteOpaque},
		{ElfNoteDumpcoreHeader, 0x2000001, "XEN_ELFNOTE_DUMPCORE_HEADER", ElfNoteOpaque},
		{ElfNoteDumpcoreXenVersion, 0x2000002, "XEN_ELFNOTE_DUMPCORE_XEN_VERSION", ElfNoteOpaque},
		{ElfNoteDumpcoreFormatVersion, 0x2000003, "XEN_ELFNOTE_DUMPCORE_FORMAT_VERSION", ElfNoteOpaque},
		{ElfNote(20), 20, "XEN_ELFNOTE(0x14)", ElfNoteOpaque},
	}
	for _, tt := range tests {
		if uint32(tt.n) != tt.want {
			t.Errorf("%s = %d, want %d", tt.str, uint32(tt.n), tt.want)
		}
		if got := tt.n.String(); got != tt.str {
			t.Errorf("ElfNote(%d).String() = %q, want %q", tt.want, got, tt.str)
		}
		if got := tt.n.Kind(); got != tt.kind {
			t.Errorf("%s.Kind() = %d, want %d", tt.str, got, tt.kind)
		}
	}
	if ElfNoteMax != 19 {
		t.Errorf("ElfNoteMax = %d, want 19", ElfNoteMax)
	}
}
