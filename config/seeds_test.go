package config

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/configs/golden")

const seedDir = "../testdata/configs/seeds"

// parseSeed parses a seed config under its base name, so positions read
// "nbsd.cfg:46:10".
func parseSeed(t *testing.T, name string) (*Domain, []Warning) {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(seedDir, name))
	if err != nil {
		t.Fatal(err)
	}
	d, warns, err := Parse(name, src)
	if err != nil {
		t.Fatalf("Parse(%s): %v", name, err)
	}
	return d, warns
}

// TestSeeds checks the typed result of every seed config, field by field
// for what matters, and in full against the golden files.
func TestSeeds(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(seedDir, "*.cfg"))
	if err != nil || len(files) != 8 {
		t.Fatalf("want the 8 seed configs in %s, got %v (%v)", seedDir, files, err)
	}
	checks := map[string]func(t *testing.T, d *Domain){
		"nbsd.cfg": func(t *testing.T, d *Domain) {
			eq(t, "Name", d.Name, "nbsd")
			eq(t, "Kernel", d.Kernel, "/home/bouyer/netbsd-XEN3_DOMU")
			eq(t, "Memory", d.Memory, int64(128))
			eq(t, "MaxMem", d.MaxMem, int64(128))
			eq(t, "VCPUs", d.VCPUs, 1)
			eq(t, "MaxVCPUs", d.MaxVCPUs, 1)
			eq(t, "Nics", d.Nics, 1)
			eq(t, "Root", d.Root, "xbd0")
			eq(t, "Extra", d.Extra, "")
			eq(t, "Cmdline", d.Cmdline, "root=xbd0")
			eq(t, "len(Vifs)", len(d.Vifs), 1)
			eq(t, "Vifs[0].MAC", d.Vifs[0].MAC, "aa:00:00:50:02:f0")
			eq(t, "Vifs[0].Bridge", d.Vifs[0].Bridge, "bridge0")
			eq(t, "len(Disks)", len(d.Disks), 1)
			disk := d.Disks[0]
			eq(t, "Disks[0].Target", disk.Target, "/dev/wd0e")
			eq(t, "Disks[0].Prefix", disk.Prefix, "phy")
			eq(t, "Disks[0].VDev", disk.VDev, "0x1")
			eq(t, "Disks[0].VDevNumber", disk.VDevNumber, 1)
			eq(t, "Disks[0].ReadOnly", disk.ReadOnly, false)
			eq(t, "Disks[0].CDROM", disk.CDROM, false)
			eq(t, "Disks[0].Pos", disk.Pos.String(), "nbsd.cfg:46:10")
			eq(t, "OnPoweroff", d.OnPoweroff, ActionDestroy)
			eq(t, "OnReboot", d.OnReboot, ActionRestart)
			eq(t, "OnCrash", d.OnCrash, ActionDestroy)
			eq(t, "Type", d.Type, TypePV)
			eq(t, "len(Unknown)", len(d.Unknown), 0)
		},
		"nbsd-cdrom.cfg": func(t *testing.T, d *Domain) {
			eq(t, "len(Disks)", len(d.Disks), 2)
			eq(t, "Disks[0].VDevNumber", d.Disks[0].VDevNumber, 1)
			eq(t, "Disks[0].ReadOnly", d.Disks[0].ReadOnly, false)
			eq(t, "Disks[1].Target", d.Disks[1].Target, "/dev/cd0a")
			eq(t, "Disks[1].VDevNumber", d.Disks[1].VDevNumber, 2)
			eq(t, "Disks[1].ReadOnly", d.Disks[1].ReadOnly, true)
			eq(t, "Disks[1].CDROM", d.Disks[1].CDROM, false)
		},
		"linux-hda.cfg": func(t *testing.T, d *Domain) {
			eq(t, "Cmdline", d.Cmdline, "root=/dev/hda1 ro xencons=tty1")
			eq(t, "Root", d.Root, "/dev/hda1 ro")
			eq(t, "Extra", d.Extra, "xencons=tty1")
			eq(t, "Disks[0].VDev", d.Disks[0].VDev, "0x300")
			eq(t, "Disks[0].VDevNumber", d.Disks[0].VDevNumber, 0x300)
			eq(t, "Name", d.Name, "")
			eq(t, "Memory", d.Memory, int64(DefaultMemory))
		},
		"solaris-install.cfg": func(t *testing.T, d *Domain) {
			eq(t, "Name", d.Name, "solaris")
			eq(t, "Memory", d.Memory, int64(640))
			eq(t, "Kernel", d.Kernel, "/root/solaris/unix")
			eq(t, "Ramdisk", d.Ramdisk, "/root/solaris/x86.microroot")
			eq(t, "Cmdline", d.Cmdline, "/platform/i86xpv/kernel/amd64/unix - nowin -B install_media=cdrom")
			eq(t, "len(Disks)", len(d.Disks), 2)
			eq(t, "Disks[0].Target", d.Disks[0].Target, "/dev/wd0k")
			eq(t, "Disks[0].VDevNumber", d.Disks[0].VDevNumber, 0)
			eq(t, "Disks[0].ReadOnly", d.Disks[0].ReadOnly, false)
			eq(t, "Disks[1].Target", d.Disks[1].Target, "/dev/vnd0d")
			eq(t, "Disks[1].VDev", d.Disks[1].VDev, "6")
			eq(t, "Disks[1].VDevNumber", d.Disks[1].VDevNumber, 6)
			eq(t, "Disks[1].CDROM", d.Disks[1].CDROM, true)
			eq(t, "Disks[1].ReadOnly", d.Disks[1].ReadOnly, true)
			eq(t, "Disks[1].Pos", d.Disks[1].Pos.String(), "solaris-install.cfg:4:11")
			eq(t, "Vifs[0].Bridge", d.Vifs[0].Bridge, "bridge0")
			eq(t, "Vifs[0].MAC", d.Vifs[0].MAC, "")
		},
		"solaris.cfg": func(t *testing.T, d *Domain) {
			want := `/platform/i86xpv/kernel/amd64/unix -B zfs-bootfs=rpool/43,bootpath="/xpvd/xdf@0:a"`
			eq(t, "Extra", d.Extra, want)
			eq(t, "Cmdline", d.Cmdline, want)
			eq(t, "len(Disks)", len(d.Disks), 1)
		},
		"pci.cfg": func(t *testing.T, d *Domain) {
			eq(t, "len(PCI)", len(d.PCI), 2)
			eq(t, "PCI[0]", d.PCI[0].BDF(), "0000:00:06.0")
			eq(t, "PCI[1]", d.PCI[1].BDF(), "0000:00:0a.0")
			eq(t, "PCI[1].Dev", d.PCI[1].Dev, uint8(0xa))
		},
		"debian-2.6.18.cfg": func(t *testing.T, d *Domain) {
			eq(t, "Name", d.Name, "debian")
			eq(t, "Memory", d.Memory, int64(156))
			eq(t, "Kernel", d.Kernel, "/vmlinuz-2.6.18-xen")
			eq(t, "Ramdisk", d.Ramdisk, "/initrd.img-2.6.30")
			eq(t, "Disks[0].VDev", d.Disks[0].VDev, "xvda")
			eq(t, "Disks[0].VDevNumber", d.Disks[0].VDevNumber, 202<<8)
			eq(t, "Cmdline", d.Cmdline, "")
		},
		"debian-pci.cfg": func(t *testing.T, d *Domain) {
			eq(t, "len(PCI)", len(d.PCI), 1)
			p := d.PCI[0]
			eq(t, "PCI[0]", p.BDF(), "0000:03:00.0")
			eq(t, "PCI[0].Bus", p.Bus, uint8(3))
			eq(t, "PCI[0].HasVSlot", p.HasVSlot, false)
			eq(t, "Root", d.Root, "/dev/xvda")
			eq(t, "Extra", d.Extra, "1") // the commented #extra is ignored
			eq(t, "Cmdline", d.Cmdline, "root=/dev/xvda 1")
			eq(t, "Vifs[0].Bridge", d.Vifs[0].Bridge, "bridge0")
			eq(t, "Positions[extra]", d.Positions["extra"].String(), "debian-pci.cfg:10:9")
		},
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			d, warns := parseSeed(t, name)
			if len(warns) != 0 {
				t.Errorf("warnings: %v", warns)
			}
			check, ok := checks[name]
			if !ok {
				t.Fatalf("no checks for seed %s", name)
			}
			check(t, d)
			js, err := json.MarshalIndent(d, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			golden(t, strings.TrimSuffix(name, ".cfg")+".json", append(js, '\n'))
			var desc bytes.Buffer
			if err := d.Describe(&desc); err != nil {
				t.Fatal(err)
			}
			golden(t, strings.TrimSuffix(name, ".cfg")+".txt", desc.Bytes())
		})
	}
}

func eq[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %#v, want %#v", what, got, want)
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("../testdata/configs/golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// TestSeedsCheckHost checks that the seeds' foreign paths come out of
// CheckHostFS as errors naming the key and the value, against an empty
// host.
func TestSeedsCheckHost(t *testing.T) {
	d, _ := parseSeed(t, "nbsd.cfg")
	err := d.CheckHostFS(fstest.MapFS{})
	want := []string{
		`nbsd.cfg:5:10: kernel: kernel "/home/bouyer/netbsd-XEN3_DOMU" does not exist on this host`,
		`nbsd.cfg:46:10: disk[0]: target "/dev/wd0e" does not exist on this host`,
		`nbsd.cfg:29:9: vif[0]: bridge "bridge0" (/sys/class/net/bridge0) does not exist on this host`,
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Errorf("CheckHostFS:\n got %v\nwant %s", err, strings.Join(want, "\n"))
	}
}

// TestExamples parses the hand-written configs in testdata/configs/examples
// and compares the typed result, the summary and the warnings with the
// golden files.
func TestExamples(t *testing.T) {
	files, err := filepath.Glob("../testdata/configs/examples/*.cfg")
	if err != nil || len(files) == 0 {
		t.Fatalf("no example configs: %v", err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			d, warns, err := Parse(name, src)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			base := "example-" + strings.TrimSuffix(name, ".cfg")
			js, err := json.MarshalIndent(d, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			golden(t, base+".json", append(js, '\n'))
			var out bytes.Buffer
			if err := d.Describe(&out); err != nil {
				t.Fatal(err)
			}
			out.WriteString("--- warnings\n")
			for _, w := range warns {
				out.WriteString(w.String() + "\n")
			}
			golden(t, base+".txt", out.Bytes())
		})
	}
}

// TestSeedTypo breaks the vdev in nbsd.cfg and checks the error the user
// sees, as the package doc shows it.
func TestSeedTypo(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(seedDir, "nbsd.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Replace(src, []byte("disk = [ 'phy:/dev/wd0e,0x1,w' ]"), []byte("disk = [ 'phy:/dev/wd0e,qq,w' ]"), 1)
	if bytes.Equal(bad, src) {
		t.Fatal("disk line not found")
	}
	_, _, err = Parse("nbsd.cfg", bad)
	want := `nbsd.cfg:46:25: disk[0]: bad vdev "qq": expected a name like xvda/hda1/xbd0 or a number like 0x301`
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}
