package loader

import (
	"debug/elf"
	"strconv"
	"strings"

	"github.com/xenvmm/xenvmm/xenabi/abi"
)

// unset is libelf's UNSET_ADDR: a parameter no note or __xen_guest key set.
const unset = ^uint64(0)

// maxNotes is libelf's ELF_MAX_TOTAL_NOTE_COUNT: note scanning stops
// after this many notes of any owner.
const maxNotes = 65536

// PAEMode is what a 32-bit kernel says about PAE: libelf's enum
// xen_pae_type, set from XEN_ELFNOTE_PAE_MODE or the __xen_guest PAE key.
type PAEMode uint8

const (
	PAENo          PAEMode = iota // XEN_PAE_NO: no PAE (or not said)
	PAEYes                        // XEN_PAE_YES: __xen_guest PAE=yes
	PAEExtendedCR3                // XEN_PAE_EXTCR3: note "yes", or PAE=yes[extended-cr3]
	PAEBimodal                    // XEN_PAE_BIMODAL: note containing "bimodal"
)

func (m PAEMode) String() string {
	switch m {
	case PAENo:
		return "no"
	case PAEYes:
		return "yes"
	case PAEExtendedCR3:
		return "yes[extended-cr3]"
	case PAEBimodal:
		return "bimodal"
	}
	return "PAEMode(" + strconv.Itoa(int(m)) + ")"
}

// Features are the Xen features a kernel declares (XEN_ELFNOTE_FEATURES,
// XEN_ELFNOTE_SUPPORTED_FEATURES or the __xen_guest FEATURES key): those
// it can use, and those it cannot run without (a subset of Supported).
type Features struct {
	Supported abi.FeatureSet
	Required  abi.FeatureSet
}

// Note is one Xen ELF note as found in the image, for display.
type Note struct {
	Type abi.ElfNote
	// Desc is the raw descriptor.
	Desc []byte
	// Value is the descriptor read as a number (for numeric notes of 1,
	// 2, 4 or 8 bytes; 0 otherwise).
	Value uint64
	// Str is the descriptor read as a string (for string notes).
	Str string
}

// L1MFNValid is one mask/value pair of XEN_ELFNOTE_L1_MFN_VALID: a
// non-present L1 entry e carries a valid MFN when e&Mask == Value.
type L1MFNValid struct{ Mask, Value uint64 }

// xenParms is the subset of libelf's struct elf_dom_parms xenvmm uses,
// filled by parseXen as elf_xen_parse does.
type xenParms struct {
	virtBase, virtEntry, virtHypercall uint64
	hvStartLow, p2mBase, paddrOffset   uint64
	physEntry                          uint64 // UNSET_ADDR32 widened to unset
	physReloc                          bool
	physAlign, physMin, physMax        uint32

	loader, guestOS, guestVer, xenVer, paeStr string
	pae                                       PAEMode
	bsdSymtab                                 bool
	features                                  Features
	suspendCancel, unmappedInitrd             bool
	l1MFNValid                                []L1MFNValid

	// seen records which note types were present.
	seen map[abi.ElfNote]bool
	// xenNotes counts the notes named "Xen" in the region used.
	xenNotes int
	// noteStart is libelf's elf_note_start != 0: some note region was
	// scanned (and __xen_guest was not used). It decides the
	// PADDR_OFFSET default.
	noteStart bool
	// notesFrom says where the notes came from: "PT_NOTE", "SHT_NOTE".
	notesFrom string
	// guestInfo is the __xen_guest string when that section is used.
	guestInfo    string
	hasGuestInfo bool
	notes        []Note
}

func newParms() *xenParms {
	return &xenParms{
		virtBase:      unset,
		virtEntry:     unset,
		virtHypercall: unset,
		hvStartLow:    unset,
		p2mBase:       unset,
		paddrOffset:   unset,
		physEntry:     unset,
		physAlign:     ^uint32(0),
		physMax:       1<<32 - 1, // ARCH_PHYS_MAX_DEFAULT on x86: GB(4) - 1
		seen:          map[abi.ElfNote]bool{},
	}
}

// parseXen finds the Xen notes or the __xen_guest string in f as
// elf_xen_parse (libelf-dominfo.c) does: notes in PT_NOTE segments first;
// if those hold no Xen note, SHT_NOTE sections; if those hold none either,
// the legacy __xen_guest section.
func parseXen(f *elfFile) (*xenParms, error) {
	x := newParms()
	total := 0
	for i := range f.progs {
		p := &f.progs[i]
		if p.typ != elf.PT_NOTE {
			continue
		}
		// "Some versions of binutils do not correctly set p_offset for
		// note segments."
		if p.off == 0 {
			continue
		}
		if err := x.parseNotes(f, p.off, p.filesz, &total, "PT_NOTE"); err != nil {
			return nil, err
		}
	}
	if x.xenNotes == 0 {
		for i := 1; i < len(f.sects); i++ {
			s := &f.sects[i]
			if s.typ != elf.SHT_NOTE {
				continue
			}
			if err := x.parseNotes(f, s.off, s.size, &total, "SHT_NOTE"); err != nil {
				return nil, err
			}
		}
	}
	if x.xenNotes == 0 {
		if s := f.sectionByName("__xen_guest"); s != nil {
			// libelf reads the string up to its NUL from the section's
			// start; this stops at the section's end (or the file's).
			var str string
			if n := uint64(len(f.data)); s.typ != elf.SHT_NOBITS && s.off < n {
				str = cstring(f.data[s.off : s.off+min(s.size, n-s.off)])
			}
			x.hasGuestInfo = true
			x.guestInfo = str
			x.noteStart = false
			x.parseGuestInfo(str)
		}
	}
	return x, nil
}

// parseNotes walks the notes in the file range [off, off+size), as
// elf_xen_parse_notes does, and applies those named "Xen".
func (x *xenParms) parseNotes(f *elfFile, off, size uint64, total *int, from string) error {
	x.noteStart = true
	n := uint64(len(f.data))
	end := off + size
	if end < off || end > n {
		end = n
	}
	found := 0
	for off < end {
		if *total >= maxNotes {
			break
		}
		*total++
		if end-off < 12 {
			break
		}
		namesz := uint64(le.Uint32(f.data[off:]))
		descsz := uint64(le.Uint32(f.data[off+4:]))
		typ := le.Uint32(f.data[off+8:])
		nameOff := off + 12
		descOff := nameOff + (namesz+3)&^3
		next := descOff + (descsz+3)&^3
		if !inFile(nameOff, namesz, len(f.data)) || !inFile(descOff, descsz, len(f.data)) {
			break
		}
		if cstring(f.data[nameOff:nameOff+namesz]) == abi.ElfNoteOwner {
			// String descriptors are read up to their NUL; Linux's
			// FEATURES note is .ascii without one, ended by the padding.
			padded := min((descsz+3)&^3, n-descOff)
			if err := x.applyNote(abi.ElfNote(typ), f.data[descOff:descOff+descsz], f.data[descOff:descOff+padded]); err != nil {
				return err
			}
			found++
		}
		if next <= off {
			break
		}
		off = next
	}
	if found > 0 && x.notesFrom == "" {
		x.notesFrom = from
	}
	x.xenNotes += found
	return nil
}

// noteNumeric is elf_note_numeric: the descriptor as a little-endian
// number when it is 1, 2, 4 or 8 bytes long, else 0.
func noteNumeric(desc []byte) uint64 {
	switch len(desc) {
	case 1:
		return uint64(desc[0])
	case 2:
		return uint64(le.Uint16(desc))
	case 4:
		return uint64(le.Uint32(desc))
	case 8:
		return le.Uint64(desc)
	}
	return 0
}

// noteArray is elf_note_numeric_array: element idx of a descriptor made
// of unit-byte numbers, 0 when the descriptor is not a whole number of
// units or too short.
func noteArray(desc []byte, unit, idx int) uint64 {
	if len(desc)%unit != 0 || idx >= len(desc)/unit {
		return 0
	}
	return noteNumeric(desc[idx*unit : (idx+1)*unit])
}

// applyNote is elf_xen_parse_note for one note named "Xen".
func (x *xenParms) applyNote(typ abi.ElfNote, desc, padded []byte) error {
	note := Note{Type: typ, Desc: desc}
	var str string
	var val uint64
	switch typ.Kind() {
	case abi.ElfNoteString:
		str = cstring(padded)
		note.Str = str
	case abi.ElfNoteNumeric:
		val = noteNumeric(desc)
		note.Value = val
	}
	x.notes = append(x.notes, note)
	// libelf has no table entry for XEN_ELFNOTE_INFO and ignores types it
	// does not know.
	if typ == abi.ElfNoteInfo || typ > abi.ElfNoteMax {
		return nil
	}
	x.seen[typ] = true
	switch typ {
	case abi.ElfNoteLoader:
		x.loader = str
	case abi.ElfNoteGuestOS:
		x.guestOS = str
	case abi.ElfNoteGuestVersion:
		x.guestVer = str
	case abi.ElfNoteXenVersion:
		x.xenVer = str
	case abi.ElfNotePAEMode:
		x.paeStr = str
		if str == "yes" {
			x.pae = PAEExtendedCR3
		}
		if strings.Contains(str, "bimodal") {
			x.pae = PAEBimodal
		}
	case abi.ElfNoteBSDSymtab:
		if str == "yes" {
			x.bsdSymtab = true
		}
	case abi.ElfNoteVirtBase:
		x.virtBase = val
	case abi.ElfNoteEntry:
		x.virtEntry = val
	case abi.ElfNoteInitP2M:
		x.p2mBase = val
	case abi.ElfNoteModStartPFN:
		x.unmappedInitrd = val != 0
	case abi.ElfNotePaddrOffset:
		x.paddrOffset = val
	case abi.ElfNoteHypercallPage:
		x.virtHypercall = val
	case abi.ElfNoteHVStartLow:
		x.hvStartLow = val
	case abi.ElfNoteSuspendCancel:
		x.suspendCancel = val != 0
	case abi.ElfNoteFeatures:
		if err := parseFeatures(str, &x.features); err != nil {
			return err
		}
	case abi.ElfNoteSupportedFeatures:
		x.features.Supported |= abi.FeatureSet(noteArray(desc, 4, 0))
	case abi.ElfNotePhys32Entry:
		x.physEntry = uint64(uint32(val))
	case abi.ElfNotePhys32Reloc:
		x.physReloc = true
		if len(desc) >= 4 {
			x.physAlign = uint32(noteArray(desc, 4, 0))
		}
		if len(desc) >= 8 {
			x.physMin = uint32(noteArray(desc, 4, 1))
		}
		if len(desc) >= 12 {
			x.physMax = uint32(noteArray(desc, 4, 2))
		}
	case abi.ElfNoteL1MFNValid:
		x.l1MFNValid = parseL1MFNValid(desc)
	}
	return nil
}

// parseL1MFNValid reads the maddr_t mask/value pairs of
// XEN_ELFNOTE_L1_MFN_VALID: 8-byte numbers (x86-64 and PAE), or 4-byte
// ones when the descriptor is not a whole number of 16-byte pairs.
func parseL1MFNValid(desc []byte) []L1MFNValid {
	unit := 8
	if len(desc)%16 != 0 {
		unit = 4
	}
	var out []L1MFNValid
	for i := 0; i+2*unit <= len(desc); i += 2 * unit {
		out = append(out, L1MFNValid{
			Mask:  noteNumeric(desc[i : i+unit]),
			Value: noteNumeric(desc[i+unit : i+2*unit]),
		})
	}
	return out
}

// parseFeatures is elf_xen_parse_features: a '|'-separated list of
// XENFEAT names, '!' marking a required feature (which is supported too).
// Unknown supported names are ignored; an unknown required one is an
// error. Names are those of features.h (libelf knows only a subset; a
// kernel naming one it lacks loads here and fails there).
func parseFeatures(s string, fs *Features) error {
	for _, tok := range strings.Split(s, "|") {
		if tok == "" {
			continue
		}
		name, required := strings.CutPrefix(tok, "!")
		f, ok := abi.FeatureByName(name)
		if !ok {
			if required {
				return unsupported("the kernel requires Xen feature %q, which Xen does not define (features.h)", name)
			}
			continue
		}
		fs.Supported = fs.Supported.With(f)
		if required {
			fs.Required = fs.Required.With(f)
		}
	}
	return nil
}

// parseGuestInfo is elf_xen_parse_guest_info: the legacy __xen_guest
// string "KEY=VALUE,KEY=VALUE,...". Like libelf, names are cut at 31
// bytes and values at 127, and a FEATURES value requiring an unknown
// feature stops the parse without failing it (elf_xen_parse ignores the
// result).
func (x *xenParms) parseGuestInfo(s string) {
	at := func(h int) byte {
		if h < len(s) {
			return s[h]
		}
		return 0
	}
	h := 0
	for at(h) != 0 {
		var name, value []byte
		for n := 0; ; n, h = n+1, h+1 {
			if n >= 31 {
				break
			}
			c := at(h)
			if c == 0 {
				break
			}
			if c == ',' {
				h++
				break
			}
			if c == '=' {
				h++
				for v := 0; ; v, h = v+1, h+1 {
					if v >= 127 {
						break
					}
					c := at(h)
					if c == 0 {
						break
					}
					if c == ',' {
						h++
						break
					}
					value = append(value, c)
				}
				break
			}
			name = append(name, c)
		}
		val := string(value)
		switch string(name) {
		case "LOADER":
			x.loader = val
		case "GUEST_OS":
			x.guestOS = val
		case "GUEST_VER":
			x.guestVer = val
		case "XEN_VER":
			x.xenVer = val
		case "PAE":
			x.paeStr = val
			if val == "yes[extended-cr3]" {
				x.pae = PAEExtendedCR3
			} else if strings.HasPrefix(val, "yes") {
				x.pae = PAEYes
			}
		case "BSD_SYMTAB":
			// The legacy key counts by its presence, whatever its value.
			x.bsdSymtab = true
		case "VIRT_BASE":
			x.virtBase = strtoull(val)
		case "VIRT_ENTRY":
			x.virtEntry = strtoull(val)
		case "ELF_PADDR_OFFSET":
			x.paddrOffset = strtoull(val)
		case "HYPERCALL_PAGE":
			// A page number, relative to VIRT_BASE (below).
			x.virtHypercall = strtoull(val) << 12
		case "FEATURES":
			if parseFeatures(val, &x.features) != nil {
				goto done
			}
		}
	}
done:
	if x.virtBase != unset && x.virtHypercall != unset {
		x.virtHypercall += x.virtBase
	}
}

// strtoull is C's strtoull(s, NULL, 0): leading space, an optional sign,
// then hex after 0x, octal after 0, else decimal, up to the first
// character that is not a digit; 0 when there is none; ULLONG_MAX on
// overflow.
func strtoull(s string) uint64 {
	i := 0
	for i < len(s) && (s[i] == ' ' || (s[i] >= '\t' && s[i] <= '\r')) {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	base := uint64(10)
	if i < len(s) && s[i] == '0' {
		base = 8
		if i+2 < len(s) && (s[i+1] == 'x' || s[i+1] == 'X') && digitVal(s[i+2]) < 16 {
			base = 16
			i += 2
		}
	}
	var v uint64
	overflow := false
	for ; i < len(s); i++ {
		d := digitVal(s[i])
		if d >= base {
			break
		}
		if v > (^uint64(0)-d)/base {
			overflow = true
		}
		v = v*base + d
	}
	if overflow {
		return ^uint64(0)
	}
	if neg {
		v = -v
	}
	return v
}

func digitVal(c byte) uint64 {
	switch {
	case c >= '0' && c <= '9':
		return uint64(c - '0')
	case c >= 'a' && c <= 'z':
		return uint64(c-'a') + 10
	case c >= 'A' && c <= 'Z':
		return uint64(c-'A') + 10
	}
	return 99
}
