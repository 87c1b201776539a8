package config

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
)

// GuestType is the domain type of the type= key (and the deprecated
// builder=).
type GuestType string

const (
	TypePV  GuestType = "pv"
	TypePVH GuestType = "pvh"
	TypeHVM GuestType = "hvm" // parses; Validate reports it unsupported
)

// Action is what to do when a domain shuts down, from on_poweroff,
// on_reboot, on_watchdog, on_crash and on_soft_reset (the names of
// action_on_shutdown_names in tools/xl/xl_parse.c).
type Action string

const (
	ActionDestroy         Action = "destroy"
	ActionRestart         Action = "restart"
	ActionRenameRestart   Action = "rename-restart"
	ActionPreserve        Action = "preserve"
	ActionCoredumpDestroy Action = "coredump-destroy"
	ActionCoredumpRestart Action = "coredump-restart"
	ActionSoftReset       Action = "soft-reset"
)

var actions = []Action{ActionDestroy, ActionRestart, ActionRenameRestart, ActionPreserve,
	ActionCoredumpDestroy, ActionCoredumpRestart, ActionSoftReset}

// Defaults that libxl applies when a key is absent.
const (
	// DefaultMemory is libxl's max_memkb default, 32 MiB
	// (libxl__domain_build_info_setdefault); memory defaults to maxmem.
	DefaultMemory = 32
	// MaxMemory and MaxVCPUs bound what Parse accepts; the VMM checks the
	// host's real limits.
	MaxMemory = 1 << 24 // MiB, 16 TiB
	MaxVCPUs  = 4096
)

// Domain is a parsed domain configuration.
type Domain struct {
	File string    `json:"file,omitempty"`
	Name string    `json:"name"`
	UUID string    `json:"uuid,omitempty"`
	Type GuestType `json:"type"`
	// Builder is the deprecated builder= as written ("generic", "hvm", or
	// xm's "linux"); Type already reflects it.
	Builder string `json:"builder,omitempty"`

	Kernel  string `json:"kernel,omitempty"`
	Ramdisk string `json:"ramdisk,omitempty"`
	// Cmdline is the guest command line as xl builds it (parse_cmdline):
	// cmdline= if given, else "root=ROOT EXTRA", leaving out whichever of
	// the two is empty.
	Cmdline        string   `json:"cmdline"`
	Root           string   `json:"root,omitempty"`
	Extra          string   `json:"extra,omitempty"`
	Bootloader     string   `json:"bootloader,omitempty"`
	BootloaderArgs []string `json:"bootloader_args,omitempty"`

	Memory   int64 `json:"memory_mib"` // memory=, MiB
	MaxMem   int64 `json:"maxmem_mib"` // maxmem=, MiB; defaults to Memory
	VCPUs    int   `json:"vcpus"`      // vcpus=, default 1
	MaxVCPUs int   `json:"maxvcpus"`   // maxvcpus=, defaults to VCPUs

	OnPoweroff  Action `json:"on_poweroff"`
	OnReboot    Action `json:"on_reboot"`
	OnWatchdog  Action `json:"on_watchdog"`
	OnCrash     Action `json:"on_crash"`
	OnSoftReset Action `json:"on_soft_reset"`

	// Nics is xm's nics= (number of interfaces); xl ignores it and so does
	// xenvmm: the vif list defines the interfaces. 0 when absent.
	Nics  int      `json:"nics,omitempty"`
	Disks []Disk   `json:"disks"`
	Vifs  []Vif    `json:"vifs"`
	PCI   []PCIDev `json:"pci"`

	// Unknown holds the settings xenvmm does not use, with their effective
	// values and positions, in the order they first appear.
	Unknown []Setting `json:"unknown,omitempty"`

	// Positions maps each key set in the file to the position of its
	// effective value.
	Positions map[string]Pos `json:"-"`
}

// ParseFile reads and parses the configuration file at path.
func ParseFile(path string) (*Domain, []Warning, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("reading domain config: %w", err)
	}
	return Parse(path, src)
}

// Parse parses a domain configuration; filename is used in positions.
//
// A malformed file returns a nil Domain and a *SyntaxError. Otherwise the
// Domain is returned with the warnings, and, if any value was bad, an
// error joining one *ValueError per bad value (the Domain then holds what
// could be read). Paths are not looked at: see CheckHost and Validate.
func Parse(filename string, src []byte) (*Domain, []Warning, error) {
	ss, err := ParseSettings(filename, src)
	if err != nil {
		return nil, nil, err
	}
	b := &builder{file: filename, ss: ss, d: &Domain{
		File:      filename,
		Type:      TypePV,
		Disks:     []Disk{},
		Vifs:      []Vif{},
		PCI:       []PCIDev{},
		Positions: map[string]Pos{},
	}}
	b.build()
	// Report in file order.
	sort.SliceStable(b.errs, func(i, j int) bool {
		return posLess(b.errs[i].Pos, b.errs[j].Pos)
	})
	sort.SliceStable(b.warns, func(i, j int) bool { return posLess(b.warns[i].Pos, b.warns[j].Pos) })
	errs := make([]error, len(b.errs))
	for i, e := range b.errs {
		errs[i] = e
	}
	return b.d, b.warns, errors.Join(errs...)
}

func posLess(a, b Pos) bool {
	if a.Line != b.Line {
		return a.Line < b.Line
	}
	return a.Col < b.Col
}

type builder struct {
	file  string
	ss    Settings
	d     *Domain
	warns []Warning
	errs  []*ValueError
}

func (b *builder) errorf(pos Pos, key, format string, args ...any) {
	b.errs = append(b.errs, &ValueError{Pos: pos, Key: key, Msg: fmt.Sprintf(format, args...)})
}

func (b *builder) warnf(pos Pos, key, format string, args ...any) {
	b.warns = append(b.warns, Warning{Pos: pos, Key: key, Msg: fmt.Sprintf(format, args...)})
}

// knownKeys are the keys Parse interprets; every other key ends up in
// Domain.Unknown.
var knownKeys = map[string]bool{
	"name": true, "uuid": true, "type": true, "builder": true,
	"kernel": true, "ramdisk": true, "cmdline": true, "root": true, "extra": true,
	"bootloader": true, "bootloader_args": true,
	"memory": true, "maxmem": true, "vcpus": true, "maxvcpus": true,
	"on_poweroff": true, "on_reboot": true, "on_watchdog": true, "on_crash": true, "on_soft_reset": true,
	"nics": true, "disk": true, "vif": true, "pci": true,
	"pci_permissive": true, "pci_msitranslate": true, "pci_power_mgmt": true, "pci_seize": true,
}

// KnownKeys returns the keys Parse interprets, sorted.
func KnownKeys() []string {
	keys := make([]string, 0, len(knownKeys))
	for k := range knownKeys {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (b *builder) build() {
	d := b.d
	// Duplicate assignments: the last one wins, as in xl.
	lastAssign := map[string]Setting{}
	for _, s := range b.ss {
		if s.Op != OpAssign {
			continue
		}
		if prev, ok := lastAssign[s.Key]; ok {
			b.warnf(s.Pos, s.Key, "set again; the value at line %d is ignored", prev.Pos.Line)
		}
		lastAssign[s.Key] = s
	}
	for _, key := range b.ss.Keys() {
		s, _ := b.ss.Lookup(key)
		d.Positions[key] = s.Value.Pos
		if !knownKeys[key] {
			d.Unknown = append(d.Unknown, s)
			b.warnf(s.Pos, key, "unknown key, ignored (xenvmm does not use it)")
		}
	}
	b.str("name", &d.Name)
	b.uuid()
	b.guestType()
	b.str("kernel", &d.Kernel)
	b.str("ramdisk", &d.Ramdisk)
	b.str("root", &d.Root)
	b.str("extra", &d.Extra)
	b.cmdline()
	b.str("bootloader", &d.Bootloader)
	b.bootloaderArgs()
	b.memory()
	b.vcpus()
	b.action("on_poweroff", &d.OnPoweroff, ActionDestroy)
	b.action("on_reboot", &d.OnReboot, ActionRestart)
	b.action("on_watchdog", &d.OnWatchdog, ActionDestroy)
	b.action("on_crash", &d.OnCrash, ActionDestroy)
	b.action("on_soft_reset", &d.OnSoftReset, ActionSoftReset)
	b.disks()
	b.vifs()
	b.pci()
	if s, ok := b.lookup("nics"); ok {
		if n, ok := b.int(s, 0, 1024); ok {
			d.Nics = int(n)
			if d.Nics != len(d.Vifs) {
				b.warnf(s.Value.Pos, "nics", "nics = %d but the vif list has %d entr%s; xl ignores nics and so does xenvmm", d.Nics, len(d.Vifs), plural(len(d.Vifs), "y", "ies"))
			}
		}
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// lookup returns the effective setting of key, if set.
func (b *builder) lookup(key string) (Setting, bool) { return b.ss.Lookup(key) }

// atom checks that s is a single value and returns its text, as
// xlu_cfg_get_string does (numbers are strings too).
func (b *builder) atom(s Setting) (string, bool) {
	switch s.Value.Kind {
	case KindString, KindNumber:
		return s.Value.Text, true
	case KindList:
		b.errorf(s.Value.Pos, s.Key, "expected a string, got a list")
	default:
		b.errorf(s.Value.Pos, s.Key, "expected a string, got %s", s.Value.Text)
	}
	return "", false
}

// str reads a string key into dst, if set.
func (b *builder) str(key string, dst *string) {
	if s, ok := b.lookup(key); ok {
		if v, ok := b.atom(s); ok {
			*dst = v
		}
	}
}

// int reads a number key as xlu_cfg_get_bounded_long does.
func (b *builder) int(s Setting, min, max int64) (int64, bool) {
	if s.Op == OpAppend {
		b.errorf(s.Pos, s.Key, "can't use += with numbers")
		return 0, false
	}
	n, err := s.Value.Int()
	if err != nil {
		b.errorf(s.Value.Pos, s.Key, "expected a number: %v", err)
		return 0, false
	}
	if n < min {
		b.errorf(s.Value.Pos, s.Key, "%d is less than %d", n, min)
		return 0, false
	}
	if n > max {
		b.errorf(s.Value.Pos, s.Key, "%d is larger than %d", n, max)
		return 0, false
	}
	return n, true
}

func (b *builder) bool(s Setting) (bool, bool) {
	if s.Op == OpAppend {
		b.errorf(s.Pos, s.Key, "can't use += with numbers")
		return false, false
	}
	v, err := s.Value.Bool()
	if err != nil {
		b.errorf(s.Value.Pos, s.Key, "expected a boolean (0 or 1): %v", err)
		return false, false
	}
	return v, true
}

// action reads an on_* key into dst, or sets xl's default.
func (b *builder) action(key string, dst *Action, def Action) {
	*dst = def
	s, ok := b.lookup(key)
	if !ok {
		return
	}
	v, ok := b.atom(s)
	if !ok {
		return
	}
	for _, a := range actions {
		if string(a) == v {
			*dst = a
			return
		}
	}
	names := make([]string, len(actions))
	for i, a := range actions {
		names[i] = string(a)
	}
	b.errorf(s.Value.Pos, s.Key, "unknown action %q: expected one of %s", v, strings.Join(names, ", "))
}

// uuid checks the 8-4-4-4-12 form libxl_uuid_from_string reads.
func (b *builder) uuid() {
	s, ok := b.lookup("uuid")
	if !ok {
		return
	}
	v, ok := b.atom(s)
	if !ok {
		return
	}
	if !isUUID(v) {
		b.errorf(s.Value.Pos, s.Key, "bad uuid %q: expected 8-4-4-4-12 hex digits like 6c7ba2d1-2a5b-4c1e-9d3f-0123456789ab", v)
		return
	}
	b.d.UUID = strings.ToLower(v)
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch i {
		case 8, 13, 18, 23:
			if s[i] != '-' {
				return false
			}
		default:
			if hexVal(s[i]) < 0 {
				return false
			}
		}
	}
	return true
}

func (b *builder) bootloaderArgs() {
	s, ok := b.lookup("bootloader_args")
	if !ok {
		return
	}
	switch s.Value.Kind {
	case KindList:
		for i, v := range s.Value.List {
			if v.Kind == KindList {
				b.errorf(v.Pos, fmt.Sprintf("%s[%d]", s.Key, i), "expected a string, got a list")
				continue
			}
			b.d.BootloaderArgs = append(b.d.BootloaderArgs, v.Text)
		}
	default:
		if v, ok := b.atom(s); ok {
			b.warnf(s.Value.Pos, s.Key, "a string is deprecated, use a list of arguments")
			b.d.BootloaderArgs = strings.Fields(v)
		}
	}
}

// guestType reads type= and the deprecated builder= as parse_config_data.
func (b *builder) guestType() {
	d := b.d
	var typ GuestType
	ts, haveType := b.lookup("type")
	if haveType {
		if v, ok := b.atom(ts); ok {
			switch GuestType(v) {
			case TypePV, TypePVH, TypeHVM:
				typ = GuestType(v)
			default:
				b.errorf(ts.Value.Pos, "type", "unknown type %q: expected pv, pvh or hvm", v)
			}
		}
	}
	if bs, ok := b.lookup("builder"); ok {
		if v, ok := b.atom(bs); ok {
			d.Builder = v
			var bt GuestType
			switch v {
			case "generic":
				bt = TypePV
			case "linux":
				bt = TypePV
				b.warnf(bs.Value.Pos, "builder", `xm's builder "linux" is taken as "generic" (pv); builder is deprecated, use type = "pv"`)
			case "hvm":
				bt = TypeHVM
			default:
				b.errorf(bs.Value.Pos, "builder", "unknown builder %q: expected generic or hvm (builder is deprecated, use type=)", v)
			}
			if bt != "" && typ != "" && bt != typ {
				b.errorf(bs.Value.Pos, "builder", "builder %q contradicts type %q", v, typ)
			} else if bt != "" {
				typ = bt
			}
		}
	}
	if typ != "" {
		d.Type = typ
	}
}

// cmdline builds the command line as parse_cmdline in xl_parse.c does.
func (b *builder) cmdline() {
	d := b.d
	if s, ok := b.lookup("cmdline"); ok {
		if v, ok := b.atom(s); ok {
			d.Cmdline = v
		}
		if _, r := b.lookup("root"); r {
			b.warnf(s.Value.Pos, "cmdline", "ignoring root= and extra= in favour of cmdline=")
		} else if _, e := b.lookup("extra"); e {
			b.warnf(s.Value.Pos, "cmdline", "ignoring root= and extra= in favour of cmdline=")
		}
		return
	}
	var parts []string
	if strings.TrimSpace(d.Root) != "" {
		parts = append(parts, "root="+d.Root)
	}
	if strings.TrimSpace(d.Extra) != "" {
		parts = append(parts, d.Extra)
	}
	d.Cmdline = strings.Join(parts, " ")
}

func (b *builder) memory() {
	d := b.d
	if s, ok := b.lookup("memory"); ok {
		if n, ok := b.int(s, 1, MaxMemory); ok {
			d.Memory = n
		}
	}
	if s, ok := b.lookup("maxmem"); ok {
		if n, ok := b.int(s, 1, MaxMemory); ok {
			d.MaxMem = n
			if d.Memory > n {
				b.errorf(s.Value.Pos, "maxmem", "maxmem (%d MiB) is less than memory (%d MiB)", n, d.Memory)
			}
		}
	}
	switch {
	case d.Memory == 0 && d.MaxMem == 0:
		d.Memory, d.MaxMem = DefaultMemory, DefaultMemory
	case d.Memory == 0:
		d.Memory = d.MaxMem
	case d.MaxMem == 0:
		d.MaxMem = d.Memory
	}
}

func (b *builder) vcpus() {
	d := b.d
	d.VCPUs = 1
	if s, ok := b.lookup("vcpus"); ok {
		if n, ok := b.int(s, 0, MaxVCPUs); ok {
			if n == 0 {
				b.warnf(s.Value.Pos, "vcpus", "vcpus = 0 means 1, as in xl")
				n = 1
			}
			d.VCPUs = int(n)
		}
	}
	d.MaxVCPUs = d.VCPUs
	if s, ok := b.lookup("maxvcpus"); ok {
		if n, ok := b.int(s, 0, MaxVCPUs); ok && n != 0 {
			if int(n) < d.VCPUs {
				b.errorf(s.Value.Pos, "maxvcpus", "maxvcpus (%d) is less than vcpus (%d)", n, d.VCPUs)
			} else {
				d.MaxVCPUs = int(n)
			}
		}
	}
}

// specList checks that s is a list of strings and calls f for each item.
func (b *builder) specList(s Setting, what string, f func(i int, v Value)) {
	if s.Value.Kind != KindList {
		b.errorf(s.Value.Pos, s.Key, "expected a list of %s specs like [ '...', '...' ], got a %s", what, s.Value.Kind)
		return
	}
	for i, v := range s.Value.List {
		if v.Kind != KindString && v.Kind != KindNumber {
			b.errorf(v.Pos, fmt.Sprintf("%s[%d]", s.Key, i), "expected a %s spec string, got a %s", what, v.Kind)
			continue
		}
		f(i, v)
	}
}

// specError turns a *SpecError from a spec parser into a *ValueError at
// the right place in the file.
func (b *builder) specError(key string, v Value, err error) {
	var se *SpecError
	if errors.As(err, &se) {
		b.errs = append(b.errs, &ValueError{Pos: v.PosAt(se.Offset), Key: key, Msg: se.Msg, Err: err})
		return
	}
	b.errs = append(b.errs, &ValueError{Pos: v.Pos, Key: key, Msg: err.Error(), Err: err})
}

func (b *builder) disks() {
	s, ok := b.lookup("disk")
	if !ok {
		return
	}
	b.specList(s, "disk", func(i int, v Value) {
		key := fmt.Sprintf("disk[%d]", i)
		d, err := ParseDisk(v.Text)
		if err != nil {
			b.specError(key, v, err)
			return
		}
		d.Pos = v.Pos
		for j, o := range b.d.Disks {
			if o.VDevNumber == d.VDevNumber {
				b.errorf(v.Pos, key, "vdev %s is the same device (%d) as disk[%d]'s %s", d.VDev, d.VDevNumber, j, o.VDev)
				return
			}
		}
		b.d.Disks = append(b.d.Disks, d)
	})
}

func (b *builder) vifs() {
	s, ok := b.lookup("vif")
	if !ok {
		return
	}
	b.specList(s, "vif", func(i int, v Value) {
		key := fmt.Sprintf("vif[%d]", i)
		vif, err := ParseVif(v.Text)
		if err != nil {
			b.specError(key, v, err)
			return
		}
		vif.Pos = v.Pos
		if hw := vif.HardwareAddr(); hw != nil && hw[0]&1 != 0 {
			b.warnf(v.PosAt(strings.Index(v.Text, "mac=")+4), key, "mac %s is a multicast address; the guest's NIC needs a unicast one", vif.MAC)
		}
		for _, o := range vif.Other {
			if o.Known {
				b.warnf(v.PosAt(o.Offset), key, "%s is not used by xenvmm; ignored", o.Key)
			} else {
				b.warnf(v.PosAt(o.Offset), key, "unknown vif parameter %q, ignored", o.Key)
			}
		}
		b.d.Vifs = append(b.d.Vifs, vif)
	})
}

func (b *builder) pci() {
	var def PCIOptions
	for _, o := range []struct {
		key string
		dst *bool
	}{
		{"pci_permissive", &def.Permissive},
		{"pci_msitranslate", &def.MSITranslate},
		{"pci_power_mgmt", &def.PowerMgmt},
		{"pci_seize", &def.Seize},
	} {
		if s, ok := b.lookup(o.key); ok {
			if v, ok := b.bool(s); ok {
				*o.dst = v
			}
		}
	}
	s, ok := b.lookup("pci")
	if !ok {
		return
	}
	b.specList(s, "pci", func(i int, v Value) {
		key := fmt.Sprintf("pci[%d]", i)
		p, err := ParsePCI(v.Text, def)
		if err != nil {
			b.specError(key, v, err)
			return
		}
		p.Pos = v.Pos
		b.d.PCI = append(b.d.PCI, p)
	})
}
