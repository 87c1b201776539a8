package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Disk is one entry of the disk list: a DISK_SPEC_STRING of
// docs/man/xl-disk-configuration.5.pod.in, parsed into the fields of
// libxl_device_disk that matter to xenvmm.
type Disk struct {
	Spec   string `json:"spec"`   // the spec string as written
	Target string `json:"target"` // pdev_path; "" for an empty cdrom drive
	// Format is raw (the default), qcow, qcow2, vhd, qed, or empty (an
	// empty cdrom drive).
	Format string `json:"format"`
	// BackendType is backendtype=: phy, tap, qdisk or standalone; "" lets
	// the toolstack choose.
	BackendType string `json:"backendtype,omitempty"`
	// Prefix is the deprecated xm prefixes of the legacy form, joined by
	// ':' as written ("phy", "file", "tap:aio", "tap:qcow2"). libxl strips
	// and ignores them, except that raw:, qcow:, qcow2: and vhd: set Format
	// and iscsi:, nbd:, enbd: and drbd: set Script.
	Prefix string `json:"prefix,omitempty"`
	VDev   string `json:"vdev"` // as written: xvda, hda1, 0x301, 6, xbd0
	// VDevNumber is the virtual-device number the guest sees, from
	// VDevNumber(VDev).
	VDevNumber    int    `json:"vdev_number"`
	ReadOnly      bool   `json:"readonly"`
	CDROM         bool   `json:"cdrom,omitempty"`
	Script        string `json:"script,omitempty"`        // block script; Target is then its argument, not a path
	Backend       string `json:"backend,omitempty"`       // backend domain name
	Specification string `json:"specification,omitempty"` // xen (default) or virtio
	DirectIOSafe  bool   `json:"direct_io_safe,omitempty"`
	Discard       *bool  `json:"discard,omitempty"`     // discard / no-discard; nil: default (on)
	Trusted       *bool  `json:"trusted,omitempty"`     // trusted / untrusted; nil: default (trusted)
	GrantUsage    *bool  `json:"grant_usage,omitempty"` // grant_usage=1/0 (virtio only)
	// Colo holds the COLO parameters (colo, no-colo, colo-host, colo-port,
	// colo-export, active-disk, hidden-disk) by name; xenvmm does not use
	// them.
	Colo map[string]string `json:"colo,omitempty"`
	Pos  Pos               `json:"pos"` // of the spec string
}

// Mode returns "ro" or "rw".
func (d *Disk) Mode() string {
	if d.ReadOnly {
		return "ro"
	}
	return "rw"
}

// HostPath returns the host file a disk's target names, or "" when the
// target is not a path: an empty cdrom, or a target interpreted by a block
// script. A target that does not start with '/' is under /dev, as
// xl-disk-configuration(5) says ("wd0e" is /dev/wd0e).
func (d *Disk) HostPath() string {
	if d.Target == "" || d.Script != "" {
		return ""
	}
	if d.Target[0] != '/' {
		return "/dev/" + d.Target
	}
	return d.Target
}

var diskFormats = []string{"raw", "qcow", "qcow2", "vhd", "empty", "qed"}

// diskParser holds the state of libxlu_disk_l.l's DiskParseContext.
type diskParser struct {
	spec string
	d    Disk

	targetSet, vdevSet, formatSet, accessSet bool
	hadDeprPrefix                            bool
	vdevOff                                  int
	prefixes                                 []string
}

func (p *diskParser) errorf(off int, format string, args ...any) error {
	return &SpecError{Offset: off, Msg: fmt.Sprintf(format, args...)}
}

// ParseDisk parses one DISK_SPEC_STRING: the key=value form
// ("format=raw, vdev=hda, access=rw, target=/dev/vg/guest") and the
// positional forms, new ("TARGET,FORMAT,VDEV,ACCESS") and deprecated
// ("[PREFIX:]TARGET,VDEV[:cdrom],MODE", e.g. "phy:/dev/wd0e,0x1,w" or
// "tap:aio:/x.img,xvda,w"), with the rules and precedences of
// tools/libs/util/libxlu_disk_l.l and the defaults of xlu_disk_parse.
// Errors are *SpecError pointing into spec.
//
// As an extension, trailing blanks before a ',' are ignored (libxl keeps
// them, which makes "w " an unknown access mode). "target=" still takes
// the rest of the string verbatim.
func ParseDisk(spec string) (Disk, error) {
	p := &diskParser{spec: spec}
	p.d.Spec = spec
	s := spec
	i := 0
	for i < len(s) {
		if c := s[i]; c == ' ' || c == '\t' || c == '\n' {
			i++
			continue
		}
		rest := s[i:]
		// "target=.*" eats the rest of the string, minus one trailing ','.
		if strings.HasPrefix(rest, "target=") {
			v := strings.TrimSuffix(rest[len("target="):], ",")
			if err := p.saveTarget(v, i+len("target=")); err != nil {
				return Disk{}, err
			}
			break
		}
		if n, err := p.prefix(rest, i); err != nil {
			return Disk{}, err
		} else if n > 0 {
			i += n
			continue
		}
		end := strings.IndexByte(rest, ',')
		next := i + end + 1
		if end < 0 {
			end, next = len(rest), len(s)
		}
		tok := strings.TrimRight(rest[:end], " \t\n")
		var err error
		if eq := strings.IndexByte(tok, '='); eq >= 0 {
			err = p.keyword(tok[:eq], tok[eq+1:], i, i+eq+1)
		} else if !p.flag(tok) {
			err = p.positional(tok, i)
		}
		if err != nil {
			return Disk{}, err
		}
		i = next
	}
	return p.finish()
}

// prefix handles the deprecated "PREFIX:" forms at the start of rest and
// returns how many bytes it consumed (0 if rest does not start with one).
func (p *diskParser) prefix(rest string, off int) (int, error) {
	n := 0
	if n < len(rest) && isLower(rest[n]) {
		n++
		for n < len(rest) && (isLower(rest[n]) || isDigit(rest[n])) {
			n++
		}
	}
	if n == 0 || n >= len(rest) || rest[n] != ':' {
		return 0, nil
	}
	name := rest[:n]
	switch name {
	case "raw", "qcow", "qcow2", "vhd":
		if err := p.setFormat(name, off); err != nil {
			return 0, err
		}
	case "iscsi", "nbd", "enbd", "drbd":
		if err := p.saveString(&p.d.Script, "script", "block-"+name, off); err != nil {
			return 0, err
		}
	case "tapdisk", "tap", "tap2", "aio", "ioemu", "file", "phy":
	default:
		// "[a-z][a-z0-9]*:/([^a-z0-9].*)?": an unknown prefix unless
		// what follows the colon is a letter or digit ("hdc:cdrom").
		if n+1 < len(rest) && (isLower(rest[n+1]) || isDigit(rest[n+1])) {
			return 0, nil
		}
		return 0, p.errorf(off, "unknown deprecated disk prefix %q: expected phy:, file:, tap:, tap2:, tapdisk:, aio:, ioemu:, raw:, qcow:, qcow2:, vhd:, iscsi:, nbd:, enbd: or drbd: (use target= for a target containing ':')", name+":")
	}
	p.hadDeprPrefix = true
	p.prefixes = append(p.prefixes, name)
	return n + 1, nil
}

// flag handles the bare keywords; it reports whether tok was one.
func (p *diskParser) flag(tok string) bool {
	t, f := true, false
	switch tok {
	case "cdrom":
		p.d.CDROM = true
	case "direct-io-safe":
		p.d.DirectIOSafe = true
	case "discard":
		p.d.Discard = &t
	case "no-discard":
		p.d.Discard = &f
	case "trusted":
		p.d.Trusted = &t
	case "untrusted":
		p.d.Trusted = &f
	case "colo", "no-colo":
		p.colo("colo", strconv.FormatBool(tok == "colo"))
	default:
		return false
	}
	return true
}

func (p *diskParser) colo(k, v string) {
	if p.d.Colo == nil {
		p.d.Colo = map[string]string{}
	}
	p.d.Colo[k] = v
}

func (p *diskParser) keyword(key, val string, off, valOff int) error {
	switch key {
	case "format":
		return p.setFormat(val, valOff)
	case "devtype":
		switch val {
		case "cdrom":
			p.d.CDROM = true
		case "disk":
			p.d.CDROM = false
		default:
			return p.errorf(valOff, "unknown devtype %q: expected cdrom or disk", val)
		}
	case "access":
		return p.setAccess(val, valOff)
	case "backend":
		return p.saveString(&p.d.Backend, "backend", val, valOff)
	case "backendtype":
		switch val {
		case "phy", "tap", "qdisk", "standalone":
		default:
			return p.errorf(valOff, "unknown backendtype %q: expected phy, tap, qdisk or standalone", val)
		}
		if p.d.BackendType != "" && p.d.BackendType != val {
			return p.errorf(off, "backendtype respecified: %q after %q", val, p.d.BackendType)
		}
		p.d.BackendType = val
	case "specification":
		switch val {
		case "xen", "virtio":
		default:
			return p.errorf(valOff, "unknown specification %q: expected xen or virtio", val)
		}
		if p.d.Specification != "" && p.d.Specification != val {
			return p.errorf(off, "specification respecified: %q after %q", val, p.d.Specification)
		}
		p.d.Specification = val
	case "vdev":
		if err := p.saveString(&p.d.VDev, "vdev", val, valOff); err != nil {
			return err
		}
		p.vdevSet, p.vdevOff = true, valOff
	case "script":
		return p.saveString(&p.d.Script, "script", val, valOff)
	case "grant_usage":
		switch val {
		case "1", "0":
			b := val == "1"
			p.d.GrantUsage = &b
		default:
			return p.errorf(valOff, "unknown grant_usage %q: expected 1 or 0", val)
		}
	case "colo-port":
		if n, err := strconv.Atoi(val); err != nil || n == 0 {
			return p.errorf(valOff, "unknown value for colo-port %q: expected a port number", val)
		}
		p.colo(key, val)
	case "colo-host", "colo-export", "active-disk", "hidden-disk":
		if p.d.Colo[key] != "" {
			return p.errorf(off, "%s respecified", key)
		}
		p.colo(key, val)
	default:
		return p.errorf(off, "unknown disk parameter %q: expected one of format, vdev, access, devtype, backend, backendtype, script, specification or target (use target=, last, for a target containing '=' or ',')", key+"=")
	}
	return nil
}

// saveString is libxlu's savestring: a string parameter may be given once,
// though an empty value may be overwritten.
func (p *diskParser) saveString(dst *string, what, val string, off int) error {
	if *dst != "" {
		return p.errorf(off, "%s respecified: %q after %q", what, val, *dst)
	}
	*dst = val
	return nil
}

func (p *diskParser) saveTarget(val string, off int) error {
	if err := p.saveString(&p.d.Target, "target", val, off); err != nil {
		return err
	}
	p.targetSet = true
	return nil
}

func (p *diskParser) setFormat(val string, off int) error {
	f := val
	if f == "" {
		f = "raw"
	}
	known := false
	for _, k := range diskFormats {
		known = known || k == f
	}
	if !known {
		return p.errorf(off, "unknown disk format %q: expected raw, qcow, qcow2, vhd or qed", val)
	}
	if p.formatSet && p.d.Format != f {
		return p.errorf(off, "format respecified: %q after %q", f, p.d.Format)
	}
	p.d.Format, p.formatSet = f, true
	return nil
}

func (p *diskParser) setAccess(val string, off int) error {
	switch val {
	case "r", "ro":
		p.d.ReadOnly = true
	case "w", "rw", "":
		p.d.ReadOnly = false
	case "w!", "r!", "!":
		return p.errorf(off, "unknown access mode %q: expected r, ro, w or rw (xm's \"!\" forced sharing is not supported by xl)", val)
	default:
		return p.errorf(off, "unknown access mode %q: expected r, ro, w or rw", val)
	}
	return nil
}

// vdevAndDevtype handles a positional "VDEV:cdrom" or "VDEV:disk"; it
// reports false when tok has no colon.
func (p *diskParser) vdevAndDevtype(tok string, off int) (bool, error) {
	c := strings.LastIndexByte(tok, ':')
	if c < 0 {
		return false, nil
	}
	if err := p.saveString(&p.d.VDev, "vdev", tok[:c], off); err != nil {
		return true, err
	}
	p.vdevSet, p.vdevOff = true, off
	switch tok[c+1:] {
	case "cdrom":
		p.d.CDROM = true
	case "disk":
		p.d.CDROM = false
	default:
		return true, p.errorf(off+c+1, "unknown device type %q after vdev: expected cdrom or disk", tok[c+1:])
	}
	return true, nil
}

// positional assigns a parameter without '=' to the next unset one of
// target, format (only without a deprecated prefix), vdev and access.
func (p *diskParser) positional(tok string, off int) error {
	switch {
	case !p.targetSet:
		return p.saveTarget(tok, off)
	case !p.hadDeprPrefix && !p.formatSet:
		if p.d.Target == "" {
			// ",hdc:cdrom,r": xend's empty cdrom drive.
			if ok, err := p.vdevAndDevtype(tok, off); ok || err != nil {
				if err == nil {
					p.d.Format, p.formatSet = "empty", true
				}
				return err
			}
		}
		if err := p.setFormat(tok, off); err != nil {
			var se *SpecError
			if errors.As(err, &se) {
				se.Msg += " (without a prefix such as phy:, the second field is the format: write TARGET,,VDEV,MODE or phy:TARGET,VDEV,MODE)"
			}
			return err
		}
		return nil
	case !p.vdevSet:
		if ok, err := p.vdevAndDevtype(tok, off); ok || err != nil {
			return err
		}
		if err := p.saveString(&p.d.VDev, "vdev", tok, off); err != nil {
			return err
		}
		p.vdevSet, p.vdevOff = true, off
		return nil
	case !p.accessSet:
		p.accessSet = true
		return p.setAccess(tok, off)
	}
	return p.errorf(off, "too many positional parameters at %q: expected TARGET,FORMAT,VDEV,ACCESS at most", tok)
}

// finish applies xlu_disk_parse's defaults and checks.
func (p *diskParser) finish() (Disk, error) {
	d := p.d
	d.Prefix = strings.Join(p.prefixes, ":")
	if !p.formatSet {
		d.Format = "raw"
	}
	if d.CDROM {
		d.ReadOnly = true
		if d.Target == "" {
			d.Format = "empty"
		}
	}
	if d.VDev == "" {
		return Disk{}, p.errorf(len(p.spec), "no vdev specified: expected a virtual device such as xvda, hda1 or 0x301")
	}
	if d.Target == "" && !d.CDROM {
		// xlu_disk_parse lets an empty target through to libxl, which
		// then fails; only a cdrom drive may be empty.
		return Disk{}, p.errorf(0, "no target specified (and the device is not a removable cdrom)")
	}
	n, err := VDevNumber(d.VDev)
	if err != nil {
		return Disk{}, &SpecError{Offset: p.vdevOff, Msg: err.Error()}
	}
	d.VDevNumber = n
	return d, nil
}
