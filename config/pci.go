package config

import (
	"fmt"
	"strconv"
	"strings"
)

// PCIDev is one entry of the pci list: a PCI_SPEC_STRING of
// docs/man/xl-pci-configuration.5.pod, read as xlu_pci_parse_spec_string
// (tools/libs/util/libxlu_pci.c) does.
type PCIDev struct {
	Spec   string `json:"spec"` // as written
	Domain uint16 `json:"domain"`
	Bus    uint8  `json:"bus"`
	Dev    uint8  `json:"dev"`  // 0..0x1f
	Func   uint8  `json:"func"` // 0..7; 0 when AllFuncs
	// AllFuncs is the '*' function: every function of a multi-function
	// device (vfunc_mask = LIBXL_PCI_FUNC_ALL).
	AllFuncs bool `json:"all_funcs,omitempty"`
	// VSlot is the guest slot from "@VSLOT" or vslot= (hex, 0..0x1f),
	// valid when HasVSlot.
	VSlot    uint8 `json:"vslot,omitempty"`
	HasVSlot bool  `json:"has_vslot,omitempty"`
	// Name is name=, an assignable device name used instead of a BDF.
	Name    string     `json:"name,omitempty"`
	Options PCIOptions `json:"options"`
	Pos     Pos        `json:"pos"` // of the spec string
}

// PCIOptions are the per-device flags; their defaults come from the
// top-level pci_permissive, pci_msitranslate, pci_power_mgmt and pci_seize
// keys (all 0 unless set), as in parse_config_data.
type PCIOptions struct {
	Permissive   bool   `json:"permissive"`
	MSITranslate bool   `json:"msitranslate"`
	PowerMgmt    bool   `json:"power_mgmt"`
	Seize        bool   `json:"seize"`
	RDMPolicy    string `json:"rdm_policy,omitempty"` // strict or relaxed; "" for the default
}

// BDF formats the host address as DDDD:BB:DD.F (F is '*' for AllFuncs),
// or returns the name for a device given by name.
func (p *PCIDev) BDF() string {
	if p.Name != "" {
		return p.Name
	}
	f := strconv.Itoa(int(p.Func))
	if p.AllFuncs {
		f = "*"
	}
	return fmt.Sprintf("%04x:%02x:%02x.%s", p.Domain, p.Bus, p.Dev, f)
}

// ParsePCI parses one PCI_SPEC_STRING, "[DDDD:]BB:DD.F[@VSLOT][,KEY=VALUE...]"
// or "KEY=VALUE,..." with bdf= or name=, starting from the option defaults
// in def. Errors are *SpecError pointing into spec.
func ParsePCI(spec string, def PCIOptions) (PCIDev, error) {
	p := PCIDev{Spec: spec, Options: def}
	bdf, name := false, false
	off := 0
	n, bdfErr := p.parseBDF(spec, 0)
	if bdfErr == nil {
		bdf = true
		off = n
		if off < len(spec) && spec[off] == '@' {
			m, err := p.parseVSlot(spec[off+1:], off+1)
			if err != nil {
				return PCIDev{}, err
			}
			off += 1 + m
		}
		switch {
		case off == len(spec):
		case spec[off] == ',':
			off++
		default:
			return PCIDev{}, &SpecError{Offset: off, Msg: fmt.Sprintf("unexpected %q after the device address: expected '@VSLOT' or ',KEY=VALUE'", spec[off:])}
		}
	}
	for off < len(spec) {
		tok := spec[off:]
		next := len(spec)
		if c := strings.IndexByte(tok, ','); c >= 0 {
			tok = tok[:c]
			next = off + c + 1
		}
		eq := strings.IndexByte(tok, '=')
		if eq < 0 {
			if off == 0 {
				return PCIDev{}, bdfErr
			}
			return PCIDev{}, &SpecError{Offset: off, Msg: fmt.Sprintf("expected KEY=VALUE, found %q", tok)}
		}
		key, val := tok[:eq], tok[eq+1:]
		valOff := off + eq + 1
		errorf := func(format string, args ...any) error {
			return &SpecError{Offset: valOff, Msg: fmt.Sprintf(format, args...)}
		}
		switch key {
		case "bdf":
			var q PCIDev
			n, err := q.parseBDF(val, valOff)
			if err != nil {
				return PCIDev{}, err
			}
			if n != len(val) {
				return PCIDev{}, errorf("unexpected %q after the device address in bdf=", val[n:])
			}
			p.Domain, p.Bus, p.Dev, p.Func, p.AllFuncs = q.Domain, q.Bus, q.Dev, q.Func, q.AllFuncs
			bdf = true
		case "vslot":
			n, err := p.parseVSlot(val, valOff)
			if err != nil {
				return PCIDev{}, err
			}
			if n != len(val) {
				return PCIDev{}, errorf("bad vslot %q: expected a hex slot number 0..1f", val)
			}
		case "permissive", "msitranslate", "seize", "power_mgmt":
			b, err := pciBool(val)
			if err != nil {
				return PCIDev{}, errorf("bad %s %q: %v", key, val, err)
			}
			switch key {
			case "permissive":
				p.Options.Permissive = b
			case "msitranslate":
				p.Options.MSITranslate = b
			case "seize":
				p.Options.Seize = b
			case "power_mgmt":
				p.Options.PowerMgmt = b
			}
		case "rdm_policy":
			if val != "strict" && val != "relaxed" {
				return PCIDev{}, errorf("unknown rdm_policy %q: expected strict or relaxed", val)
			}
			p.Options.RDMPolicy = val
		case "name":
			p.Name = val
			name = true
		default:
			return PCIDev{}, &SpecError{Offset: off, Msg: fmt.Sprintf("unknown PCI option %q: expected bdf, vslot, permissive, msitranslate, seize, power_mgmt, rdm_policy or name", key)}
		}
		off = next
	}
	if bdf == name {
		if bdf {
			return PCIDev{}, &SpecError{Offset: 0, Msg: "both a device address and name= given: expected exactly one"}
		}
		return PCIDev{}, &SpecError{Offset: 0, Msg: "no device: expected [DDDD:]BB:DD.F, bdf= or name="}
	}
	return p, nil
}

// pciBool reads a BOOLEAN option as xl's atoi does, but insists on a
// number.
func pciBool(s string) (bool, error) {
	n, err := strconv.Atoi(s)
	if err != nil {
		return false, fmt.Errorf("expected 0 or 1")
	}
	return n != 0, nil
}

var errBDF = "expected a PCI address [DDDD:]BB:DD.F (hex, F may be *) like 0000:03:00.0"

// parseBDF is libxlu_pci.c's parse_bdf: it counts the colons in the
// leading run of hex digits and colons to decide whether the domain is
// present, and returns how many bytes of s it used.
func (p *PCIDev) parseBDF(s string, base int) (int, error) {
	bad := func(format string, args ...any) (int, error) {
		return 0, &SpecError{Offset: base, Msg: fmt.Sprintf("bad PCI address %q: ", s) + fmt.Sprintf(format, args...)}
	}
	colons, i := 0, 0
	for i < len(s) && (hexVal(s[i]) >= 0 || s[i] == ':') {
		if s[i] == ':' {
			colons++
		}
		i++
	}
	var fields []uint64
	pos := 0
	field := func() bool {
		start := pos
		for pos < len(s) && hexVal(s[pos]) >= 0 {
			pos++
		}
		if pos == start || pos-start > 8 {
			return false
		}
		v, _ := strconv.ParseUint(s[start:pos], 16, 64)
		fields = append(fields, v)
		return true
	}
	var domain, bus, dev uint64
	switch colons {
	case 1, 2:
		for k := 0; k < colons; k++ {
			if !field() || pos >= len(s) || s[pos] != ':' {
				return bad("%s", errBDF)
			}
			pos++
		}
		if !field() || pos >= len(s) || s[pos] != '.' {
			return bad("%s", errBDF)
		}
		pos++
		if colons == 2 {
			domain, bus, dev = fields[0], fields[1], fields[2]
		} else {
			bus, dev = fields[0], fields[1]
		}
	default:
		return bad("%s", errBDF)
	}
	switch {
	case domain > 0xffff:
		return bad("domain %#x is larger than 0xffff", domain)
	case bus > 0xff:
		return bad("bus %#x is larger than 0xff", bus)
	case dev > 0x1f:
		return bad("device %#x is larger than 0x1f", dev)
	}
	var fn uint64
	all := false
	if pos < len(s) && s[pos] == '*' {
		all = true
		pos++
	} else {
		if !field() {
			return bad("%s", errBDF)
		}
		fn = fields[len(fields)-1]
		if fn > 7 {
			return bad("function %#x is larger than 7", fn)
		}
	}
	p.Domain, p.Bus, p.Dev, p.Func, p.AllFuncs = uint16(domain), uint8(bus), uint8(dev), uint8(fn), all
	return pos, nil
}

// parseVSlot is parse_vslot: a hex slot number no larger than 0x1f.
func (p *PCIDev) parseVSlot(s string, base int) (int, error) {
	n := 0
	for n < len(s) && hexVal(s[n]) >= 0 && n < 8 {
		n++
	}
	v, err := strconv.ParseUint(s[:n], 16, 32)
	if n == 0 || err != nil || v > 0x1f {
		if c := strings.IndexByte(s, ','); c >= 0 {
			s = s[:c]
		}
		return 0, &SpecError{Offset: base, Msg: fmt.Sprintf("bad vslot %q: expected a hex slot number 0..1f", s)}
	}
	p.VSlot, p.HasVSlot = uint8(v), true
	return n, nil
}
