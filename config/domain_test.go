package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
)

func mustParse(t *testing.T, src string) (*Domain, []Warning) {
	t.Helper()
	d, w, err := Parse("t.cfg", []byte(src))
	if err != nil {
		t.Fatalf("Parse(%q): %v", src, err)
	}
	return d, w
}

func warnStrings(ws []Warning) []string {
	var out []string
	for _, w := range ws {
		out = append(out, w.String())
	}
	return out
}

func TestParseDomain(t *testing.T) {
	tests := []struct {
		name  string
		src   string
		check func(t *testing.T, d *Domain)
		warns []string
	}{
		{"defaults", `name = "d"`, func(t *testing.T, d *Domain) {
			eq(t, "Type", d.Type, TypePV)
			eq(t, "Memory", d.Memory, int64(DefaultMemory))
			eq(t, "MaxMem", d.MaxMem, int64(DefaultMemory))
			eq(t, "VCPUs", d.VCPUs, 1)
			eq(t, "MaxVCPUs", d.MaxVCPUs, 1)
			eq(t, "OnPoweroff", d.OnPoweroff, ActionDestroy)
			eq(t, "OnReboot", d.OnReboot, ActionRestart)
			eq(t, "OnWatchdog", d.OnWatchdog, ActionDestroy)
			eq(t, "OnCrash", d.OnCrash, ActionDestroy)
			eq(t, "OnSoftReset", d.OnSoftReset, ActionSoftReset)
			eq(t, "Cmdline", d.Cmdline, "")
			if d.Disks == nil || d.Vifs == nil || d.PCI == nil {
				t.Error("nil device lists")
			}
		}, nil},
		{"maxmem defaults to memory", "memory = 512", func(t *testing.T, d *Domain) {
			eq(t, "MaxMem", d.MaxMem, int64(512))
		}, nil},
		{"memory defaults to maxmem", "maxmem = 256", func(t *testing.T, d *Domain) {
			eq(t, "Memory", d.Memory, int64(256))
		}, nil},
		{"memory and maxmem", "memory = 128\nmaxmem = 0x100", func(t *testing.T, d *Domain) {
			eq(t, "Memory", d.Memory, int64(128))
			eq(t, "MaxMem", d.MaxMem, int64(256))
		}, nil},
		{"quoted number", `memory = "128"; vcpus = '2'`, func(t *testing.T, d *Domain) {
			eq(t, "Memory", d.Memory, int64(128))
			eq(t, "VCPUs", d.VCPUs, 2)
		}, nil},
		{"octal number", "memory = 0200", func(t *testing.T, d *Domain) {
			eq(t, "Memory", d.Memory, int64(128))
		}, nil},
		{"vcpus and maxvcpus", "vcpus = 2\nmaxvcpus = 4", func(t *testing.T, d *Domain) {
			eq(t, "VCPUs", d.VCPUs, 2)
			eq(t, "MaxVCPUs", d.MaxVCPUs, 4)
		}, nil},
		{"maxvcpus defaults to vcpus", "vcpus = 3", func(t *testing.T, d *Domain) {
			eq(t, "MaxVCPUs", d.MaxVCPUs, 3)
		}, nil},
		{"vcpus 0 is 1", "vcpus = 0", func(t *testing.T, d *Domain) {
			eq(t, "VCPUs", d.VCPUs, 1)
		}, []string{`t.cfg:1:9: warning: vcpus: vcpus = 0 means 1, as in xl`}},
		{"cmdline wins", "cmdline = 'console=hvc0'\nroot = '/dev/xvda1'\nextra = 'x'", func(t *testing.T, d *Domain) {
			eq(t, "Cmdline", d.Cmdline, "console=hvc0")
			eq(t, "Root", d.Root, "/dev/xvda1")
			eq(t, "Extra", d.Extra, "x")
		}, []string{`t.cfg:1:11: warning: cmdline: ignoring root= and extra= in favour of cmdline=`}},
		{"root only", "root = '/dev/xvda1 ro'", func(t *testing.T, d *Domain) {
			eq(t, "Cmdline", d.Cmdline, "root=/dev/xvda1 ro")
		}, nil},
		{"extra only", "extra = '-s'", func(t *testing.T, d *Domain) {
			eq(t, "Cmdline", d.Cmdline, "-s")
		}, nil},
		{"root and empty extra", "root = 'xbd0'\nextra = ''", func(t *testing.T, d *Domain) {
			eq(t, "Cmdline", d.Cmdline, "root=xbd0")
		}, nil},
		{"empty root and extra", "root = ''\nextra = 'single'", func(t *testing.T, d *Domain) {
			eq(t, "Cmdline", d.Cmdline, "single")
		}, nil},
		{"extra +=", "extra = 'a'\nextra += ' b'", func(t *testing.T, d *Domain) {
			eq(t, "Extra", d.Extra, "a b")
			eq(t, "Cmdline", d.Cmdline, "a b")
		}, nil},
		{"number as string", "name = 0x1", func(t *testing.T, d *Domain) {
			eq(t, "Name", d.Name, "0x1")
		}, nil},
		{"type pvh", "type = 'pvh'", func(t *testing.T, d *Domain) {
			eq(t, "Type", d.Type, TypePVH)
		}, nil},
		{"type hvm parses", "type = 'hvm'", func(t *testing.T, d *Domain) {
			eq(t, "Type", d.Type, TypeHVM)
		}, nil},
		{"builder hvm", "builder = 'hvm'", func(t *testing.T, d *Domain) {
			eq(t, "Type", d.Type, TypeHVM)
			eq(t, "Builder", d.Builder, "hvm")
		}, nil},
		{"builder generic", "builder = 'generic'\ntype = 'pv'", func(t *testing.T, d *Domain) {
			eq(t, "Type", d.Type, TypePV)
		}, nil},
		{"xm builder linux", "builder = 'linux'", func(t *testing.T, d *Domain) {
			eq(t, "Type", d.Type, TypePV)
		}, []string{`t.cfg:1:11: warning: builder: xm's builder "linux" is taken as "generic" (pv); builder is deprecated, use type = "pv"`}},
		{"actions", "on_poweroff = 'preserve'\non_reboot = 'rename-restart'\non_crash = 'coredump-restart'\non_watchdog = 'coredump-destroy'\non_soft_reset = 'destroy'", func(t *testing.T, d *Domain) {
			eq(t, "OnPoweroff", d.OnPoweroff, ActionPreserve)
			eq(t, "OnReboot", d.OnReboot, ActionRenameRestart)
			eq(t, "OnCrash", d.OnCrash, ActionCoredumpRestart)
			eq(t, "OnWatchdog", d.OnWatchdog, ActionCoredumpDestroy)
			eq(t, "OnSoftReset", d.OnSoftReset, ActionDestroy)
		}, nil},
		{"uuid", "uuid = '6C7BA2D1-2a5b-4c1e-9d3f-0123456789ab'", func(t *testing.T, d *Domain) {
			eq(t, "UUID", d.UUID, "6c7ba2d1-2a5b-4c1e-9d3f-0123456789ab")
		}, nil},
		{"bootloader", "bootloader = 'pygrub'\nbootloader_args = ['-q', '--entry=1']", func(t *testing.T, d *Domain) {
			eq(t, "Bootloader", d.Bootloader, "pygrub")
			eq(t, "BootloaderArgs", strings.Join(d.BootloaderArgs, "|"), "-q|--entry=1")
		}, nil},
		{"bootloader_args string", "bootloader_args = '-q  -v'", func(t *testing.T, d *Domain) {
			eq(t, "BootloaderArgs", strings.Join(d.BootloaderArgs, "|"), "-q|-v")
		}, []string{`t.cfg:1:19: warning: bootloader_args: a string is deprecated, use a list of arguments`}},
		{"disk +=", "disk = ['phy:/a,xvda,w']\ndisk += ['phy:/b,xvdb,r']\n", func(t *testing.T, d *Domain) {
			eq(t, "len(Disks)", len(d.Disks), 2)
			eq(t, "Disks[1].Target", d.Disks[1].Target, "/b")
			eq(t, "Disks[1].Pos", d.Disks[1].Pos.String(), "t.cfg:2:10")
		}, nil},
		{"empty lists", "disk = []\nvif = []\npci = []", func(t *testing.T, d *Domain) {
			eq(t, "len(Disks)", len(d.Disks), 0)
		}, nil},
		{"pci defaults", "pci_permissive = 1\npci_seize = True\npci = ['03:00.0', '04:00.0,permissive=0']", func(t *testing.T, d *Domain) {
			eq(t, "PCI[0].Permissive", d.PCI[0].Options.Permissive, true)
			eq(t, "PCI[0].Seize", d.PCI[0].Options.Seize, true)
			eq(t, "PCI[1].Permissive", d.PCI[1].Options.Permissive, false)
			eq(t, "PCI[1].Seize", d.PCI[1].Options.Seize, true)
		}, nil},
		{"vif devices", "vif = ['', 'bridge=br1,mac=00:16:3e:00:00:01']", func(t *testing.T, d *Domain) {
			eq(t, "len(Vifs)", len(d.Vifs), 2)
			eq(t, "Vifs[1].Bridge", d.Vifs[1].Bridge, "br1")
		}, nil},
		{"unknown keys", "name = 'x'\nautorestart = True\nlocaltime = 1\ncpus = ['0', '1']\n", func(t *testing.T, d *Domain) {
			eq(t, "len(Unknown)", len(d.Unknown), 3)
			eq(t, "Unknown[0]", d.Unknown[0].Key+" "+d.Unknown[0].Value.String(), "autorestart True")
			eq(t, "Unknown[2]", d.Unknown[2].Key+" "+d.Unknown[2].Value.String(), `cpus ["0", "1"]`)
			eq(t, "Unknown[2].Pos", d.Unknown[2].Pos.String(), "t.cfg:4:1")
		}, []string{
			`t.cfg:2:1: warning: autorestart: unknown key, ignored (xenvmm does not use it)`,
			`t.cfg:3:1: warning: localtime: unknown key, ignored (xenvmm does not use it)`,
			`t.cfg:4:1: warning: cpus: unknown key, ignored (xenvmm does not use it)`,
		}},
		{"duplicate", "memory = 64\nname = 'a'\nmemory = 96", func(t *testing.T, d *Domain) {
			eq(t, "Memory", d.Memory, int64(96))
		}, []string{`t.cfg:3:1: warning: memory: set again; the value at line 1 is ignored`}},
		{"nics mismatch", "nics = 2\nvif = ['bridge=b']", func(t *testing.T, d *Domain) {
			eq(t, "Nics", d.Nics, 2)
		}, []string{`t.cfg:1:8: warning: nics: nics = 2 but the vif list has 1 entry; xl ignores nics and so does xenvmm`}},
		{"vif unknown and ignored keys", "vif = ['bridge=b, frob=1, accel=x']", nil, []string{
			`t.cfg:1:19: warning: vif[0]: unknown vif parameter "frob", ignored`,
			`t.cfg:1:27: warning: vif[0]: accel is not used by xenvmm; ignored`,
		}},
		{"multicast mac", "vif = ['mac=01:00:5e:00:00:01']", nil, []string{
			`t.cfg:1:13: warning: vif[0]: mac 01:00:5e:00:00:01 is a multicast address; the guest's NIC needs a unicast one`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, w := mustParse(t, tt.src)
			if tt.check != nil {
				tt.check(t, d)
			}
			if got := warnStrings(w); !reflect.DeepEqual(got, tt.warns) {
				t.Errorf("warnings\n got %q\nwant %q", got, tt.warns)
			}
		})
	}
}

// TestParseDomainErrors checks the full text of semantic errors: the
// position of the value, the key, and what was expected. All of a file's
// errors are reported together.
func TestParseDomainErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"negative memory", "memory = -5", []string{`t.cfg:1:10: memory: -5 is less than 1`}},
		{"zero memory", "memory = 0", []string{`t.cfg:1:10: memory: 0 is less than 1`}},
		{"huge memory", "memory = 0x7fffffffffffffff", []string{`t.cfg:1:10: memory: 9223372036854775807 is larger than 16777216`}},
		{"memory overflow", "memory = 99999999999999999999", []string{`t.cfg:1:10: memory: expected a number: "99999999999999999999" is number out of range`}},
		{"memory not a number", "memory = '128M'", []string{`t.cfg:1:10: memory: expected a number: "128M" is not a number`}},
		{"memory list", "memory = [128]", []string{`t.cfg:1:10: memory: expected a number: expected a number, got a list`}},
		{"memory +=", "memory = 128\nmemory += 1", []string{`t.cfg:2:1: memory: can't use += with numbers`}},
		{"maxmem below memory", "memory = 256\nmaxmem = 128", []string{`t.cfg:2:10: maxmem: maxmem (128 MiB) is less than memory (256 MiB)`}},
		{"negative vcpus", "vcpus = -1", []string{`t.cfg:1:9: vcpus: -1 is less than 0`}},
		{"too many vcpus", "vcpus = 5000", []string{`t.cfg:1:9: vcpus: 5000 is larger than 4096`}},
		{"maxvcpus below vcpus", "vcpus = 4\nmaxvcpus = 2", []string{`t.cfg:2:12: maxvcpus: maxvcpus (2) is less than vcpus (4)`}},
		{"bad action", "on_crash = 'reboot'", []string{`t.cfg:1:12: on_crash: unknown action "reboot": expected one of destroy, restart, rename-restart, preserve, coredump-destroy, coredump-restart, soft-reset`}},
		{"bad type", "type = 'xen'", []string{`t.cfg:1:8: type: unknown type "xen": expected pv, pvh or hvm`}},
		{"bad builder", "builder = 'bsd'", []string{`t.cfg:1:11: builder: unknown builder "bsd": expected generic or hvm (builder is deprecated, use type=)`}},
		{"builder contradicts type", "type = 'pvh'\nbuilder = 'hvm'", []string{`t.cfg:2:11: builder: builder "hvm" contradicts type "pvh"`}},
		{"bad uuid", "uuid = 'abc'", []string{`t.cfg:1:8: uuid: bad uuid "abc": expected 8-4-4-4-12 hex digits like 6c7ba2d1-2a5b-4c1e-9d3f-0123456789ab`}},
		{"name list", "name = ['a']", []string{`t.cfg:1:8: name: expected a string, got a list`}},
		{"kernel bool", "kernel = True", []string{`t.cfg:1:10: kernel: expected a string, got True`}},
		{"disk not a list", "disk = 'phy:/dev/wd0e,0x1,w'", []string{`t.cfg:1:8: disk: expected a list of disk specs like [ '...', '...' ], got a string`}},
		{"disk item list", "disk = [ ['x'] ]", []string{`t.cfg:1:10: disk[0]: expected a disk spec string, got a list`}},
		{"bad vdev", "\n\n\ndisk = [ 'phy:/dev/wd0e,qq,w' ]", []string{
			`t.cfg:4:25: disk[0]: bad vdev "qq": expected a name like xvda/hda1/xbd0 or a number like 0x301`}},
		{"bad vdev after escape", `disk = [ "phy:/dev/w\x64,qq,w" ]`, []string{
			`t.cfg:1:26: disk[0]: bad vdev "qq": expected a name like xvda/hda1/xbd0 or a number like 0x301`}},
		{"bad mode in second disk", "disk = [ 'phy:/a,xvda,w',\n         'phy:/b,xvdb,rx' ]", []string{
			`t.cfg:2:23: disk[1]: unknown access mode "rx": expected r, ro, w or rw`}},
		{"duplicate vdev", "disk = [ 'phy:/a,xvda,w', 'phy:/b,0xca00,w' ]", []string{
			`t.cfg:1:27: disk[1]: vdev 0xca00 is the same device (51712) as disk[0]'s xvda`}},
		{"bad mac", "vif = [ 'mac=aa:bb, bridge=b' ]", []string{
			`t.cfg:1:14: vif[0]: bad mac "aa:bb": expected six hex octets like aa:00:00:50:02:f0`}},
		{"bad pci", "pci = [ '0000:03:00.9' ]", []string{
			`t.cfg:1:10: pci[0]: bad PCI address "0000:03:00.9": function 0x9 is larger than 7`}},
		{"bad pci option", "pci = [ '03:00.0,frob=1' ]", []string{
			`t.cfg:1:18: pci[0]: unknown PCI option "frob": expected bdf, vslot, permissive, msitranslate, seize, power_mgmt, rdm_policy or name`}},
		{"bad pci default", "pci_permissive = 'yes'", []string{
			`t.cfg:1:18: pci_permissive: expected a boolean (0 or 1): "yes" is not a number`}},
		{"several errors", "memory = -1\nvcpus = 'x'\ndisk = ['phy:/a,bad,w', 'phy:/b,xvdb,w', ',,']\non_reboot = 'no'\n", []string{
			`t.cfg:1:10: memory: -1 is less than 1`,
			`t.cfg:2:9: vcpus: expected a number: "x" is not a number`,
			`t.cfg:3:17: disk[0]: bad vdev "bad": expected a name like xvda/hda1/xbd0 or a number like 0x301`,
			`t.cfg:3:45: disk[2]: no vdev specified: expected a virtual device such as xvda, hda1 or 0x301`,
			`t.cfg:4:13: on_reboot: unknown action "no": expected one of destroy, restart, rename-restart, preserve, coredump-destroy, coredump-restart, soft-reset`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, _, err := Parse("t.cfg", []byte(tt.src))
			if err == nil {
				t.Fatalf("Parse(%q) succeeded", tt.src)
			}
			if d == nil {
				t.Errorf("Parse(%q) returned no Domain with a semantic error", tt.src)
			}
			var got []string
			for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
				var ve *ValueError
				if !errors.As(e, &ve) {
					t.Errorf("error %v is a %T, want *ValueError", e, e)
				}
				got = append(got, e.Error())
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse(%q) errors\n got %q\nwant %q", tt.src, got, tt.want)
			}
		})
	}
}

func TestSyntaxErrorHasNoDomain(t *testing.T) {
	d, w, err := Parse("bad.cfg", []byte("name = 'x'\nmemory = 128M\n"))
	var se *SyntaxError
	if !errors.As(err, &se) || d != nil || w != nil {
		t.Fatalf("Parse = %v, %v, %v; want nil, nil, *SyntaxError", d, w, err)
	}
	if got, want := err.Error(), `bad.cfg:2:13: unexpected "M": keys are lower case (a-z, 0-9, '.', '_') and string values must be quoted`; got != want {
		t.Errorf("Error() = %q\nwant %q", got, want)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		src  string
		want []string
		is   []error
	}{
		{"name = 'a'\nkernel = '/k'", nil, nil},
		{"kernel = '/k'", []string{`t.cfg: name: missing: xl requires a domain name`}, []error{ErrRequired}},
		{"name = 'a'", []string{`t.cfg: kernel: missing: xenvmm boots the kernel= image directly`}, []error{ErrRequired}},
		{"name = 'a'\nkernel = '/k'\ntype = 'hvm'", []string{`t.cfg:3:8: type: HVM guests are not supported by xenvmm (only pv and pvh)`}, []error{ErrUnsupported}},
		{"name = 'a'\nkernel = '/k'\nbuilder = 'hvm'", []string{`t.cfg:3:11: builder: HVM guests are not supported by xenvmm (only pv and pvh)`}, []error{ErrUnsupported}},
		{"name = 'a'\nbootloader = 'pygrub'", nil, nil},
		{"name = 'a'\nbootloader = '/usr/lib/xen-4.17/bin/pygrub'", nil, nil},
		{"name = 'a'\nbootloader = '/usr/bin/grub-xen'", []string{`t.cfg:2:14: bootloader: bootloader "/usr/bin/grub-xen" is not supported by xenvmm: use bootloader = "pygrub" (done by xenvmm itself) or give kernel= (and ramdisk=)`}, []error{ErrUnsupported}},
		{"name = 'a'\nkernel = '/k'\nextra = '" + strings.Repeat("x", 1024) + "'", []string{`t.cfg:3:9: extra: the command line is 1024 bytes; a guest gets at most 1023 (MAX_GUEST_CMDLINE, with its NUL)`}, nil},
	}
	for _, tt := range tests {
		d, _ := mustParse(t, tt.src)
		err := d.Validate()
		var got []string
		if err != nil {
			for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
				got = append(got, e.Error())
			}
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Validate(%.40q)\n got %q\nwant %q", tt.src, got, tt.want)
		}
		for _, target := range tt.is {
			if !errors.Is(err, target) {
				t.Errorf("Validate(%.40q): errors.Is(%v) = false", tt.src, target)
			}
		}
	}
	// Exactly 1023 bytes fit.
	d, _ := mustParse(t, "name = 'a'\nkernel = '/k'\nextra = '"+strings.Repeat("x", 1023)+"'")
	if err := d.Validate(); err != nil {
		t.Errorf("1023-byte command line: %v", err)
	}
}

func TestCheckHostFS(t *testing.T) {
	host := fstest.MapFS{
		"boot/vmlinuz":                   {Data: []byte("kernel")},
		"boot/initrd":                    {Data: []byte("initrd")},
		"boot":                           {Mode: fs.ModeDir},
		"dev/xvdisk":                     {Mode: fs.ModeDevice},
		"dev/wd0e":                       {Mode: fs.ModeDevice},
		"srv/img.raw":                    {Data: []byte{}},
		"sys/class/net/br0/bridge/stp":   {Data: []byte("0")},
		"sys/class/net/eth0/address":     {Data: []byte("x")},
		"usr/lib/xen/bin/pygrub":         {Data: []byte("#!")},
		"home/user/relative/kernel-file": {Data: []byte("k")},
	}
	good := `name = 'g'
kernel = '/boot/vmlinuz'
ramdisk = "/boot/initrd"
disk = [ 'phy:/dev/xvdisk,xvda,w', 'phy:wd0e,xvdb,w', 'file:/srv/img.raw,xvdc,r', ',hdc:cdrom,r', 'iscsi:iqn.x:y,xvdd,w' ]
vif = [ 'bridge=br0', 'mac=00:16:3e:00:00:01' ]
`
	d, _ := mustParse(t, good)
	if err := d.CheckHostFS(host); err != nil {
		t.Errorf("CheckHostFS(good) = %v", err)
	}
	bad := `name = 'b'
kernel = '/boot'
ramdisk = "/boot/missing"
bootloader = '/usr/lib/xen/bin/pygrub-missing'
disk = [ 'phy:/dev/wd0f,xvda,w', 'phy:boot,xvdb,w', 'file:/srv,xvdc,w' ]
vif = [ 'bridge=eth0', 'bridge=br9', 'bridge=../../x' ]
`
	d, _ = mustParse(t, bad)
	err := d.CheckHostFS(host)
	want := []string{
		`t.cfg:2:10: kernel: kernel "/boot": is a directory`,
		`t.cfg:3:11: ramdisk: ramdisk "/boot/missing" does not exist on this host`,
		`t.cfg:4:14: bootloader: bootloader "/usr/lib/xen/bin/pygrub-missing" does not exist on this host`,
		`t.cfg:5:10: disk[0]: target "/dev/wd0f" does not exist on this host`,
		`t.cfg:5:34: disk[1]: target "boot" (/dev/boot) does not exist on this host`,
		`t.cfg:5:53: disk[2]: target "/srv": is a directory`,
		`t.cfg:6:9: vif[0]: bridge "eth0" (/sys/class/net/eth0): is not a bridge`,
		`t.cfg:6:24: vif[1]: bridge "br9" (/sys/class/net/br9) does not exist on this host`,
		`t.cfg:6:38: vif[2]: bridge "../../x" (/sys/class/net/../../x): is not a valid interface name`,
	}
	var got []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var he *HostError
		if !errors.As(e, &he) {
			t.Errorf("%v is a %T, want *HostError", e, e)
		}
		got = append(got, e.Error())
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("CheckHostFS(bad)\n got %q\nwant %q", got, want)
	}
	if !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, ErrIsDirectory) || !errors.Is(err, ErrNotBridge) {
		t.Errorf("errors.Is fails on %v", err)
	}
	// Relative kernel paths are relative to the root of fsys.
	d, _ = mustParse(t, "kernel = 'home/user/relative/kernel-file'")
	if err := d.CheckHostFS(host); err != nil {
		t.Errorf("relative kernel: %v", err)
	}
}

// TestCheckHost runs the real host check on files made for the test.
func TestCheckHost(t *testing.T) {
	dir := t.TempDir()
	kernel := filepath.Join(dir, "vmlinuz")
	if err := os.WriteFile(kernel, []byte("k"), 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	src := "kernel = '" + kernel + "'\nramdisk = '" + filepath.Join(dir, "none") + "'\n" +
		"disk = [ 'file:" + img + ",xvda,w', 'phy:null,xvdb,r', 'phy:xenvmm-no-such-dev,xvdc,r' ]\n" +
		"vif = [ 'bridge=xenvmm-nobr0' ]\n"
	d, _ := mustParse(t, src)
	err := d.CheckHost()
	want := []string{
		`t.cfg:2:11: ramdisk: ramdisk "` + filepath.Join(dir, "none") + `" does not exist on this host`,
		`t.cfg:3:` + strconv.Itoa(10+len("'file:"+img+",xvda,w', 'phy:null,xvdb,r', ")) + `: disk[2]: target "xenvmm-no-such-dev" (/dev/xenvmm-no-such-dev) does not exist on this host`,
		`t.cfg:4:9: vif[0]: bridge "xenvmm-nobr0" (/sys/class/net/xenvmm-nobr0) does not exist on this host`,
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Errorf("CheckHost:\n got %v\nwant %s", err, strings.Join(want, "\n"))
	}
}

func TestKnownKeys(t *testing.T) {
	keys := KnownKeys()
	if len(keys) != len(knownKeys) || keys[0] != "bootloader" {
		t.Errorf("KnownKeys() = %v", keys)
	}
	// Every known key is really interpreted: a value of the wrong shape
	// is an error that names it.
	for _, k := range keys {
		_, _, err := Parse("t.cfg", []byte(k+" = [[]]\n"))
		if err == nil || !strings.Contains(err.Error(), " "+k) {
			t.Errorf("%s = [[]]: error %v does not name the key", k, err)
		}
	}
}

func TestParseFile(t *testing.T) {
	path := filepath.Join(seedDir, "nbsd.cfg")
	d, _, err := ParseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "File", d.File, path)
	eq(t, "Disks[0].Pos", d.Disks[0].Pos.String(), path+":46:10")
	_, _, err = ParseFile(filepath.Join(t.TempDir(), "missing.cfg"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ParseFile(missing) = %v, want fs.ErrNotExist", err)
	}
}
