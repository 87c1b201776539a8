package bootloader

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xenvmm/xenvmm/config"
	"github.com/xenvmm/xenvmm/internal/testguest"
)

// debianGrubCfg is the shape of the grub.cfg Debian 12's update-grub
// writes (abridged): functions, if-blocks, a first menuentry and a
// submenu of more.
const debianGrubCfg = `
if [ -s $prefix/grubenv ]; then
  set have_grubenv=true
  load_env
fi
if [ "${next_entry}" ] ; then
   set default="${next_entry}"
   set next_entry=
   save_env next_entry
   set boot_once=true
else
   set default="0"
fi
function load_video {
  if [ x$feature_all_video_module = xy ]; then
    insmod all_video
  fi
}
### BEGIN /etc/grub.d/10_linux ###
menuentry 'Debian GNU/Linux' --class debian --class gnu-linux --class gnu --class os $menuentry_id_option 'gnulinux-simple-1234' {
	load_video
	insmod gzio
	if [ x$grub_platform = xxen ]; then insmod xzio; insmod lzopio; fi
	insmod part_msdos
	insmod ext2
	set root='hd0,msdos1'
	if [ x$feature_platform_search_hint = xy ]; then
	  search --no-floppy --fs-uuid --set=root --hint-bios=hd0,msdos1 1234
	else
	  search --no-floppy --fs-uuid --set=root 1234
	fi
	echo	'Loading Linux 6.1.0-50-amd64 ...'
	linux	/boot/vmlinuz-6.1.0-50-amd64 root=UUID=1234 ro  quiet
	echo	'Loading initial ramdisk ...'
	initrd	/boot/initrd.img-6.1.0-50-amd64
}
submenu 'Advanced options for Debian GNU/Linux' $menuentry_id_option 'gnulinux-advanced-1234' {
	menuentry 'Debian GNU/Linux, with Linux 6.1.0-50-amd64' --class debian $menuentry_id_option 'gnulinux-6.1.0-50-amd64-advanced-1234' {
		linux	/boot/vmlinuz-6.1.0-50-amd64 root=UUID=1234 ro  quiet
		initrd	/boot/initrd.img-6.1.0-50-amd64
	}
	menuentry 'Debian GNU/Linux, with Linux 6.1.0-50-amd64 (recovery mode)' --class debian $menuentry_id_option 'gnulinux-6.1.0-50-amd64-recovery-1234' {
		linux	/boot/vmlinuz-6.1.0-50-amd64 root=UUID=1234 ro single
		initrd	/boot/initrd.img-6.1.0-50-amd64
	}
}
### END /etc/grub.d/10_linux ###
`

func TestParseGrubCfg(t *testing.T) {
	for _, c := range []struct {
		name, def string
		want      Entry
	}{
		{"default 0", `set default="0"`, Entry{Title: "Debian GNU/Linux", Kernel: "/boot/vmlinuz-6.1.0-50-amd64", Initrd: "/boot/initrd.img-6.1.0-50-amd64", Args: "root=UUID=1234 ro quiet"}},
		{"submenu entry", `set default="1>1"`, Entry{Title: "Debian GNU/Linux, with Linux 6.1.0-50-amd64 (recovery mode)", Kernel: "/boot/vmlinuz-6.1.0-50-amd64", Initrd: "/boot/initrd.img-6.1.0-50-amd64", Args: "root=UUID=1234 ro single"}},
		{"by title", `set default='Advanced options for Debian GNU/Linux>Debian GNU/Linux, with Linux 6.1.0-50-amd64'`, Entry{Title: "Debian GNU/Linux, with Linux 6.1.0-50-amd64", Kernel: "/boot/vmlinuz-6.1.0-50-amd64", Initrd: "/boot/initrd.img-6.1.0-50-amd64", Args: "root=UUID=1234 ro quiet"}},
		{"saved", `set default=saved`, Entry{Title: "Debian GNU/Linux", Kernel: "/boot/vmlinuz-6.1.0-50-amd64", Initrd: "/boot/initrd.img-6.1.0-50-amd64", Args: "root=UUID=1234 ro quiet"}},
		{"out of range", `set default=7`, Entry{Title: "Debian GNU/Linux", Kernel: "/boot/vmlinuz-6.1.0-50-amd64", Initrd: "/boot/initrd.img-6.1.0-50-amd64", Args: "root=UUID=1234 ro quiet"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, err := ParseGrubCfg(debianGrubCfg + c.def + "\n")
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Entries) != 3 {
				t.Fatalf("%d entries: %+v", len(m.Entries), m.Entries)
			}
			if got := m.Entries[m.Default]; got != c.want {
				t.Errorf("default entry %+v\nwant %+v", got, c.want)
			}
		})
	}
	if _, err := ParseGrubCfg("set default=0\n"); err == nil {
		t.Error("a grub.cfg without entries parsed")
	}
}

func TestParseMenuLst(t *testing.T) {
	m, err := ParseMenuLst(`# menu.lst from a Xen-era domU
default		1
timeout		5

title		Debian GNU/Linux, kernel 2.6.32-5-xen-amd64
root		(hd0,0)
kernel		/boot/vmlinuz-2.6.32-5-xen-amd64 root=/dev/xvda2 ro console=hvc0
initrd		/boot/initrd.img-2.6.32-5-xen-amd64

title=CentOS (2.6.18-274.el5xen)
	root (hd0,0)
	kernel (hd0,0)/vmlinuz-2.6.18-274.el5xen ro root=/dev/VolGroup00/LogVol00
	initrd /initrd-2.6.18-274.el5xen.img
`)
	if err != nil {
		t.Fatal(err)
	}
	want := Entry{Title: "CentOS (2.6.18-274.el5xen)", Kernel: "/vmlinuz-2.6.18-274.el5xen", Initrd: "/initrd-2.6.18-274.el5xen.img", Args: "ro root=/dev/VolGroup00/LogVol00"}
	if len(m.Entries) != 2 || m.Entries[m.Default] != want {
		t.Fatalf("%+v (default %d)", m.Entries, m.Default)
	}
	if _, err := ParseMenuLst("kernel /x\n"); err == nil {
		t.Error("kernel before title parsed")
	}
}

func TestParseArgs(t *testing.T) {
	o, err := ParseArgs([]string{"-q", "--entry=1", "--args", "console=hvc0"})
	if err != nil || o.Entry != "1" || o.Args != "console=hvc0" {
		t.Fatalf("%+v %v", o, err)
	}
	for _, bad := range [][]string{{"-i"}, {"--output=/tmp/x"}, {"--kernel"}} {
		if _, err := ParseArgs(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// fsImage is an 8 MiB ext image (testguest.ExtImage) holding files.
func fsImage(t *testing.T, typ string, files map[string]string) []byte {
	t.Helper()
	bs := make(map[string][]byte, len(files))
	for name, body := range files {
		bs[name] = []byte(body)
	}
	b, err := os.ReadFile(testguest.ExtImage(t, typ, "8M", bs))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// withMBR puts fs at 1 MiB behind a DOS partition table (partition 2,
// partition 1 a small non-ext one), as a partitioned disk image is laid
// out.
func withMBR(fs []byte) []byte {
	const start = 1 << 20
	disk := make([]byte, start+len(fs))
	copy(disk[start:], fs)
	le := binary.LittleEndian
	p1 := disk[446:]
	p1[4] = 0x82 // Linux swap, 512 KiB at 512 KiB... not a file system
	le.PutUint32(p1[8:], 1024)
	le.PutUint32(p1[12:], 1024)
	p2 := disk[446+16:]
	p2[4] = 0x83
	le.PutUint32(p2[8:], start/512)
	le.PutUint32(p2[12:], uint32(len(fs)/512))
	disk[510], disk[511] = 0x55, 0xAA
	return disk
}

// withGPT puts fs at 1 MiB as the first GPT partition.
func withGPT(fs []byte) []byte {
	const start = 1 << 20
	disk := make([]byte, start+len(fs)+33*512)
	copy(disk[start:], fs)
	le := binary.LittleEndian
	disk[446+4] = 0xEE
	le.PutUint32(disk[446+8:], 1)
	le.PutUint32(disk[446+12:], 0xFFFFFFFF)
	disk[510], disk[511] = 0x55, 0xAA
	h := disk[512:]
	copy(h, "EFI PART")
	le.PutUint64(h[72:], 2)   // entries at LBA 2
	le.PutUint32(h[80:], 128) // entries
	le.PutUint32(h[84:], 128) // entry size
	e := disk[1024:]
	copy(e, bytes.Repeat([]byte{0xAF}, 16)) // a type GUID
	le.PutUint64(e[32:], start/512)
	le.PutUint64(e[40:], uint64(start+len(fs))/512-1)
	return disk
}

func TestPygrub(t *testing.T) {
	cfg := `set default="1"
menuentry 'first' {
	linux /boot/vmlinuz-a root=/dev/xvda1
	initrd /boot/initrd-a
}
menuentry 'second' {
	linux /boot/vmlinuz-b root=/dev/xvda1 ro
	initrd /boot/initrd-b
}
`
	files := map[string]string{
		"boot/grub/grub.cfg": cfg,
		"boot/vmlinuz-a":     "kernel A", "boot/initrd-a": "initrd A",
		"boot/vmlinuz-b": "kernel B", "boot/initrd-b": "initrd B",
	}
	// A separate /boot partition: the same menu, paths without /boot.
	bootPart := map[string]string{
		"grub/menu.lst": "default 0\ntitle x\nkernel /boot/vmlinuz-c console=hvc0\ninitrd /boot/initrd-c\n",
		"vmlinuz-c":     "kernel C", "initrd-c": "initrd C",
	}
	for _, c := range []struct {
		name     string
		disk     []byte
		args     []string
		part     int
		kernel   string
		initrd   string
		cmdline  string
		menuPath string
	}{
		{"whole disk ext4", fsImage(t, "ext4", files), nil, 0, "kernel B", "initrd B", "root=/dev/xvda1 ro extra=1", "/boot/grub/grub.cfg"},
		{"MBR ext3", withMBR(fsImage(t, "ext3", files)), nil, 2, "kernel B", "initrd B", "root=/dev/xvda1 ro extra=1", "/boot/grub/grub.cfg"},
		{"GPT ext2", withGPT(fsImage(t, "ext2", files)), nil, 1, "kernel B", "initrd B", "root=/dev/xvda1 ro extra=1", "/boot/grub/grub.cfg"},
		{"--entry", fsImage(t, "ext4", files), []string{"--entry=0", "--args=quiet"}, 0, "kernel A", "initrd A", "root=/dev/xvda1 quiet extra=1", "/boot/grub/grub.cfg"},
		{"--kernel", fsImage(t, "ext4", files), []string{"--kernel=/boot/vmlinuz-a", "--args", "console=hvc0"}, 0, "kernel A", "", "console=hvc0 extra=1", ""},
		{"separate /boot", fsImage(t, "ext2", bootPart), nil, 0, "kernel C", "initrd C", "console=hvc0 extra=1", "/grub/menu.lst"},
	} {
		t.Run(c.name, func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "disk.img")
			if err := os.WriteFile(img, c.disk, 0o644); err != nil {
				t.Fatal(err)
			}
			d, err := config.ParseDisk("file:" + img + ",xvda,w")
			if err != nil {
				t.Fatal(err)
			}
			o, err := ParseArgs(c.args)
			if err != nil {
				t.Fatal(err)
			}
			ch, err := Pygrub([]config.Disk{d}, o)
			if err != nil {
				t.Fatal(err)
			}
			if string(ch.Kernel) != c.kernel || string(ch.Ramdisk) != c.initrd || ch.Cmdline("extra=1") != c.cmdline || ch.Partition != c.part || ch.MenuPath != c.menuPath {
				t.Fatalf("got kernel %q initrd %q cmdline %q partition %d menu %q", ch.Kernel, ch.Ramdisk, ch.Cmdline("extra=1"), ch.Partition, ch.MenuPath)
			}
		})
	}
}

func TestPygrubErrors(t *testing.T) {
	dir := t.TempDir()
	noMenu := filepath.Join(dir, "nomenu.img")
	os.WriteFile(noMenu, fsImage(t, "ext4", map[string]string{"etc/x": "y"}), 0o644)
	badKernel := filepath.Join(dir, "badkernel.img")
	os.WriteFile(badKernel, fsImage(t, "ext4", map[string]string{"boot/grub/menu.lst": "title x\nkernel /boot/missing\n"}), 0o644)
	notFS := filepath.Join(dir, "zeros.img")
	os.WriteFile(notFS, make([]byte, 1<<20), 0o644)
	for _, c := range []struct {
		img, want string
	}{
		{noMenu, "no GRUB menu"},
		{badKernel, "kernel: /boot/missing"},
		{notFS, "not an ext2/3/4 file system"},
		{filepath.Join(dir, "absent.img"), "no such file"},
	} {
		d, _ := config.ParseDisk("file:" + c.img + ",xvda,w")
		_, err := Pygrub([]config.Disk{d}, Options{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", filepath.Base(c.img), err, c.want)
		}
	}
	if _, err := Pygrub(nil, Options{}); err == nil {
		t.Error("no disk: no error")
	}
}
