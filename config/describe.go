package config

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// MaxCmdline is the size of start_info.cmd_line including its NUL,
// MAX_GUEST_CMDLINE in xen/include/public/xen.h.
const MaxCmdline = 1024

// Validate reports what stops xenvmm from running the domain even though
// the file is valid for xl: an HVM guest, a bootloader (xenvmm boots
// kernel= directly), a missing name or kernel, a command line that does
// not fit start_info. It returns nil or *ValueErrors joined; they wrap
// ErrUnsupported or ErrRequired where that applies.
func (d *Domain) Validate() error {
	var errs []error
	add := func(key string, cause error, format string, args ...any) {
		p, ok := d.Positions[key]
		if !ok {
			p = Pos{File: d.File}
		}
		errs = append(errs, &ValueError{Pos: p, Key: key, Msg: fmt.Sprintf(format, args...), Err: cause})
	}
	if d.Name == "" {
		add("name", ErrRequired, "missing: xl requires a domain name")
	}
	if d.Type == TypeHVM {
		key := "type"
		if _, ok := d.Positions["type"]; !ok {
			key = "builder"
		}
		add(key, ErrUnsupported, "HVM guests are not supported by xenvmm (only pv and pvh)")
	}
	if d.Bootloader != "" && !d.Pygrub() {
		add("bootloader", ErrUnsupported, "bootloader %q is not supported by xenvmm: use bootloader = \"pygrub\" (done by xenvmm itself) or give kernel= (and ramdisk=)", d.Bootloader)
	} else if d.Bootloader == "" && d.Kernel == "" {
		add("kernel", ErrRequired, "missing: xenvmm boots the kernel= image directly")
	}
	if len(d.Cmdline) >= MaxCmdline {
		key := "cmdline"
		if _, ok := d.Positions[key]; !ok {
			key = "extra"
		}
		add(key, nil, "the command line is %d bytes; a guest gets at most %d (MAX_GUEST_CMDLINE, with its NUL)", len(d.Cmdline), MaxCmdline-1)
	}
	return errors.Join(errs...)
}

// Describe writes a human-readable summary of d, as `xenvmm check`
// prints it.
func (d *Domain) Describe(w io.Writer) error {
	var b strings.Builder
	line := func(label, format string, args ...any) {
		if label != "" {
			label += ":"
		}
		fmt.Fprintf(&b, "%-14s %s\n", label, fmt.Sprintf(format, args...))
	}
	orNone := func(s string) string {
		if s == "" {
			return "(none)"
		}
		return s
	}
	name := d.Name
	if name == "" {
		name = "(missing)"
	}
	line("name", "%s", name)
	t := string(d.Type)
	if d.Builder != "" {
		t += fmt.Sprintf(" (builder %q)", d.Builder)
	}
	line("type", "%s", t)
	if d.UUID != "" {
		line("uuid", "%s", d.UUID)
	}
	dflt := func(key, note string) string {
		if _, ok := d.Positions[key]; ok {
			return ""
		}
		return " (" + note + ")"
	}
	line("memory", "%d MiB%s", d.Memory, dflt("memory", "default"))
	line("maxmem", "%d MiB%s", d.MaxMem, dflt("maxmem", "= memory"))
	line("vcpus", "%d%s", d.VCPUs, dflt("vcpus", "default"))
	line("maxvcpus", "%d%s", d.MaxVCPUs, dflt("maxvcpus", "= vcpus"))
	if d.Bootloader != "" {
		line("bootloader", "%s %s", d.Bootloader, strings.Join(d.BootloaderArgs, " "))
	}
	line("kernel", "%s", orNone(d.Kernel))
	line("ramdisk", "%s", orNone(d.Ramdisk))
	line("cmdline", "%s", strconv.Quote(d.Cmdline))
	if d.Root != "" || d.Extra != "" {
		line("", "(from root %s and extra %s)", strconv.Quote(d.Root), strconv.Quote(d.Extra))
	}
	line("on_poweroff", "%s", d.OnPoweroff)
	line("on_reboot", "%s", d.OnReboot)
	line("on_watchdog", "%s", d.OnWatchdog)
	line("on_crash", "%s", d.OnCrash)
	line("on_soft_reset", "%s", d.OnSoftReset)
	if len(d.Disks) == 0 {
		line("disks", "(none)")
	}
	for i, k := range d.Disks {
		target := k.Target
		if target == "" {
			target = "(empty)"
		}
		if hp := k.HostPath(); hp != "" && hp != target {
			target += " = " + hp
		}
		desc := fmt.Sprintf("%s as %s (device %#x = %d), %s, %s", target, k.VDev, k.VDevNumber, k.VDevNumber, k.Mode(), k.Format)
		if k.CDROM {
			desc += ", cdrom"
		}
		if k.Prefix != "" {
			desc += ", prefix " + k.Prefix + ":"
		}
		if k.BackendType != "" {
			desc += ", backendtype " + k.BackendType
		}
		if k.Script != "" {
			desc += ", script " + k.Script
		}
		line(fmt.Sprintf("disk[%d]", i), "%s", desc)
	}
	if len(d.Vifs) == 0 {
		line("vifs", "(none)")
	}
	for i, v := range d.Vifs {
		var parts []string
		mac := v.MAC
		if mac == "" {
			mac = "(random)"
		}
		parts = append(parts, "mac "+mac)
		bridge := v.Bridge
		if bridge == "" {
			bridge = "(default)"
		}
		parts = append(parts, "bridge "+bridge)
		for _, kv := range [][2]string{{"ip", v.IP}, {"script", v.Script}, {"vifname", v.VifName}, {"model", v.Model}, {"type", v.Type}, {"backend", v.Backend}, {"gatewaydev", v.GatewayDev}, {"rate", v.Rate}, {"vlan", v.VLAN}} {
			if kv[1] != "" {
				parts = append(parts, kv[0]+" "+kv[1])
			}
		}
		if v.MTU != 0 {
			parts = append(parts, fmt.Sprintf("mtu %d", v.MTU))
		}
		for _, o := range v.Other {
			parts = append(parts, fmt.Sprintf("%s=%s (ignored)", o.Key, o.Value))
		}
		line(fmt.Sprintf("vif[%d]", i), "%s", strings.Join(parts, ", "))
	}
	if d.Nics != 0 {
		line("nics", "%d (xm setting, ignored)", d.Nics)
	}
	for i, p := range d.PCI {
		desc := p.BDF()
		if p.HasVSlot {
			desc += fmt.Sprintf(" at guest slot %#x", p.VSlot)
		}
		var opts []string
		for _, o := range []struct {
			name string
			on   bool
		}{{"permissive", p.Options.Permissive}, {"msitranslate", p.Options.MSITranslate}, {"power_mgmt", p.Options.PowerMgmt}, {"seize", p.Options.Seize}} {
			if o.on {
				opts = append(opts, o.name)
			}
		}
		if p.Options.RDMPolicy != "" {
			opts = append(opts, "rdm_policy "+p.Options.RDMPolicy)
		}
		if len(opts) > 0 {
			desc += ", " + strings.Join(opts, ", ")
		}
		line(fmt.Sprintf("pci[%d]", i), "%s", desc)
	}
	for _, u := range d.Unknown {
		line("unknown", "%s %s %s (line %d, ignored)", u.Key, u.Op, u.Value, u.Pos.Line)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Pygrub reports whether the domain boots with pygrub (bootloader =
// "pygrub", or a path to it, as xl configs name it): xenvmm then reads
// the kernel, initrd and arguments from the first disk's GRUB menu
// itself, with no pygrub on the host.
func (d *Domain) Pygrub() bool {
	return d.Bootloader == "pygrub" || strings.HasSuffix(d.Bootloader, "/pygrub")
}
