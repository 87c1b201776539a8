package vmm

import (
	"bytes"
	"os"
	"testing"
	"time"

	"github.com/xenvmm/xenvmm/config"
	"github.com/xenvmm/xenvmm/internal/initramfs"
	"github.com/xenvmm/xenvmm/internal/testenv"
	"github.com/xenvmm/xenvmm/internal/testguest"
)

// Old PV kernels that real users still run: they boot through kernel
// init to the point where they look for a root file system and, given
// no disk, panic there; the test ends the domain then (2.6.32 predates
// Linux's Xen panic notifier and spins after a panic, as it does on
// Xen).

// TestKVMLinux2632 boots Debian 6's 2.6.32 Xen flavour (pvops, bzImage,
// uses the hypercall page).
func TestKVMLinux2632(t *testing.T) {
	start := time.Now()
	g := startRealGuest(t, "vmlinuz-2.6.32-5-xen-amd64", 128, "console=hvc0 root=/dev/xvda1", 10*time.Minute, nil)
	s := g.scr
	s.expect(t, `Linux version 2\.6\.32-5-xen-amd64`, 5*time.Minute)
	s.expect(t, `Booting paravirtualized kernel on Xen`, time.Minute)
	s.expect(t, `Xen version: 4\.`, time.Minute)
	s.expect(t, `No filesystem could mount root`, 5*time.Minute)
	s.expect(t, `Kernel panic - not syncing: VFS: Unable to mount root fs`, 5*time.Minute)
	t.Logf("Linux 2.6.32: root-mount panic after %v", time.Since(start).Round(time.Second))
	g.logTrace(t)
}

// TestKVMLinuxCentOS5 boots CentOS 5's 2.6.18-274.el5xen installer kernel:
// classic XenLinux ("2.6.18-xen", gzip'd ELF with __xen_guest and
// notes, PADDR_OFFSET = VIRT_BASE), which uses the older hypercalls.
func TestKVMLinuxCentOS5(t *testing.T) {
	start := time.Now()
	g := startRealGuest(t, "vmlinuz-centos5-xen-install", 256, "console=xvc0 root=/dev/xvda1", 10*time.Minute, nil)
	s := g.scr
	s.expect(t, `Linux version 2\.6\.18-\S+el5xen`, 5*time.Minute)
	s.expect(t, `Xen reported: \d+\.\d+ MHz processor`, 5*time.Minute)
	s.expect(t, `Kernel panic - not syncing: VFS: Unable to mount root fs`, 8*time.Minute)
	t.Logf("CentOS 5: root-mount panic after %v", time.Since(start).Round(time.Second))
	g.logTrace(t)
}

// TestKVMPVGrubPrompt boots PV-GRUB (GRUB 0.97 on Mini-OS) with no disk:
// Mini-OS starts its xenbus and frontends, and GRUB, finding no menu.lst,
// prints its banner and command-line notice.
func TestKVMPVGrubPrompt(t *testing.T) {
	g := startRealGuest(t, "pv-grub-x86_64.gz", 32, "", 5*time.Minute, nil)
	s := g.scr
	s.expect(t, `Initialising xenbus`, 3*time.Minute)
	s.expect(t, `GNU GRUB  version 0\.97`, 3*time.Minute)
	s.expect(t, `Minimal BASH-like line editing is supported`, time.Minute)
	g.logTrace(t)
}

// TestKVMPVGrubFromDisk: PV-GRUB as the domain's kernel, as Xen users
// boot a disk image that carries its own kernel: it reads menu.lst from
// an ext2 image on xvda through its blkfront (against xenvmm's
// blkback), loads the kernel and initrd named there, with the arguments
// given there, and starts them in the same domain. The kernel is Debian
// 6's 2.6.32 (gzip'd bzImage: PV-GRUB's 2010 libxc cannot unpack the XZ
// payload of today's kernels); it boots to its root-mount panic.
func TestKVMPVGrubFromDisk(t *testing.T) {
	kernel, err := os.ReadFile(testenv.Guest(t, "vmlinuz-2.6.32-5-xen-amd64"))
	if err != nil {
		t.Fatal(err)
	}
	// An initramfs with one file and no /init: 2.6.32 unpacks it (which
	// shows PV-GRUB loaded it) and goes on to mount a root device.
	var rd initramfs.Builder
	if err := rd.AddBytes("xenvmm-initrd", bytes.Repeat([]byte("xenvmm initrd\n"), 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	initrd, err := rd.Bytes(true)
	if err != nil {
		t.Fatal(err)
	}
	img := testguest.ExtImage(t, "ext2", "32M", map[string][]byte{
		"boot/vmlinuz":    kernel,
		"boot/initrd.img": initrd,
		"boot/grub/menu.lst": []byte(`default 0
timeout 0
title Debian 6 PV from the disk image
	root (hd0)
	kernel /boot/vmlinuz console=hvc0 root=/dev/xvda1 xenvmm.from=disk
	initrd /boot/initrd.img
`),
	})
	start := time.Now()
	g := startRealGuest(t, "pv-grub-x86_64.gz", 256, "(hd0)/boot/grub/menu.lst", 8*time.Minute, func(o *Options) {
		o.Disks = []config.Disk{parseDisk(t, "file:"+img+",xvda,w")}
	})
	s := g.scr
	s.expect(t, `GNU GRUB  version 0\.97`, 3*time.Minute)
	s.expect(t, `kernel /boot/vmlinuz console=hvc0 root=/dev/xvda1 xenvmm\.from=disk`, 2*time.Minute)
	s.expect(t, `Linux version 2\.6\.32-5-xen-amd64`, 3*time.Minute)
	s.expect(t, `Kernel command line: .*xenvmm\.from=disk`, time.Minute)
	s.expect(t, `Unpacking initramfs`, 2*time.Minute)
	s.expect(t, `Freeing initrd memory: \d+k freed`, 2*time.Minute)
	s.expect(t, `Kernel panic - not syncing: VFS: Unable to mount root fs`, 3*time.Minute)
	t.Logf("PV-GRUB → Linux 2.6.32 from the disk image → its root-mount panic in %v", time.Since(start).Round(time.Second))
	g.logTrace(t)
}
