// Command blkcheck is the /init of xenvmm's disk tests: it loads the
// modules listed in /modules.list (xen-blkfront, ext4, ...), waits for
// /dev/xvda, does what xenvmm.blk= on the kernel command line says, reports
// on the console in "XENVMM-GUEST:" lines and powers off.
//
//	xenvmm.blk=raw-write  write the test pattern to the first 16 MiB, fsync
//	xenvmm.blk=raw-read   read the first 16 MiB back
//	xenvmm.blk=ro-write   try to write to a read-only disk
//	xenvmm.blk=raw-fsync-hang  raw-write, say that fsync returned, then
//	                      hang (the host kills xenvmm then)
//	xenvmm.blk=ext4-write mount the root= device (ext4), write 64 MiB of
//	                      the pattern to /xenvmm-data, fsync, unmount
//	xenvmm.blk=ext4-read  mount it read-only and read /xenvmm-data back
//	xenvmm.blk=ext4-ro    mount a read-only disk and try to create a file
package main

import (
	"bufio"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const size = 16 << 20

func say(format string, args ...any) { fmt.Printf("XENVMM-GUEST: "+format+"\n", args...) }

func poweroff() {
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	select {}
}

func fail(format string, args ...any) {
	say("FAIL "+format, args...)
	poweroff()
}

// Pattern is block i's 4 KiB: its index and a counter, so that a
// misplaced block is detected as well as a corrupted one.
func pattern(buf []byte) {
	for blk := 0; blk < len(buf)/4096; blk++ {
		b := buf[blk*4096 : (blk+1)*4096]
		for j := 0; j < 4096; j += 8 {
			v := uint64(blk)<<32 | uint64(j)
			for k := 0; k < 8; k++ {
				b[j+k] = byte(v >> (8 * k))
			}
		}
	}
}

func main() {
	for _, m := range []struct{ src, dst, typ string }{
		{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}, {"devtmpfs", "/dev", "devtmpfs"},
	} {
		os.MkdirAll(m.dst, 0o755)
		if err := unix.Mount(m.src, m.dst, m.typ, 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
			fail("mount %s: %v", m.dst, err)
		}
	}
	if f, err := os.Open("/modules.list"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			p := strings.TrimSpace(sc.Text())
			if p == "" {
				continue
			}
			m, err := os.Open(p)
			if err != nil {
				fail("%v", err)
			}
			if err := unix.FinitModule(int(m.Fd()), "", 0); err != nil && !errors.Is(err, unix.EEXIST) {
				fail("insmod %s: %v", p, err)
			}
			m.Close()
		}
		f.Close()
	}
	var dev *os.File
	mode, root := "", "/dev/xvda"
	cmdline, _ := os.ReadFile("/proc/cmdline")
	for _, f := range strings.Fields(string(cmdline)) {
		if v, ok := strings.CutPrefix(f, "xenvmm.blk="); ok {
			mode = v
		}
		if v, ok := strings.CutPrefix(f, "root="); ok {
			root = v
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat("/dev/xvda"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			fail("no /dev/xvda after 60 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	sectors, _ := os.ReadFile("/sys/block/xvda/size")
	ro, _ := os.ReadFile("/sys/block/xvda/ro")
	say("xvda sectors=%s ro=%s", strings.TrimSpace(string(sectors)), strings.TrimSpace(string(ro)))
	buf := make([]byte, size)
	switch mode {
	case "raw-write", "raw-fsync-hang":
		pattern(buf)
		var err error
		if dev, err = os.OpenFile("/dev/xvda", os.O_RDWR, 0); err != nil {
			fail("open: %v", err)
		}
		start := time.Now()
		if _, err := dev.WriteAt(buf, 0); err != nil {
			fail("write: %v", err)
		}
		if err := dev.Sync(); err != nil {
			fail("fsync: %v", err)
		}
		say("wrote %d MiB in %v sha256=%x", size>>20, time.Since(start).Round(time.Millisecond), sha256.Sum256(buf))
		if mode == "raw-fsync-hang" {
			say("fsync returned; hanging")
			select {}
		}
	case "raw-read":
		var err error
		if dev, err = os.Open("/dev/xvda"); err != nil {
			fail("open: %v", err)
		}
		start := time.Now()
		if _, err := dev.ReadAt(buf, 0); err != nil {
			fail("read: %v", err)
		}
		say("read %d MiB in %v sha256=%x", size>>20, time.Since(start).Round(time.Millisecond), sha256.Sum256(buf))
	case "ro-write":
		f, err := os.OpenFile("/dev/xvda", os.O_RDWR, 0)
		if err == nil {
			_, err = f.WriteAt([]byte("must not land"), 0)
			if err == nil {
				err = f.Sync()
			}
		}
		say("write to a read-only disk: %v", err)
	case "ext4-write", "ext4-read", "ext4-ro":
		ext4(mode, root)
	default:
		fail("unknown xenvmm.blk=%q", mode)
	}
	say("poweroff")
	poweroff()
}

// ext4Size is how much ext4-write puts in /xenvmm-data.
const ext4Size = 64 << 20

// ext4 mounts the root device as ext4 at /mnt and does what mode says.
func ext4(mode, root string) {
	os.MkdirAll("/mnt", 0o755)
	var flags uintptr
	if mode != "ext4-write" {
		flags = unix.MS_RDONLY
	}
	if err := unix.Mount(root, "/mnt", "ext4", flags, ""); err != nil {
		fail("mount %s (ext4): %v", root, err)
	}
	say("mounted %s (ext4) at /mnt", root)
	buf := make([]byte, ext4Size)
	switch mode {
	case "ext4-write":
		pattern(buf)
		f, err := os.OpenFile("/mnt/xenvmm-data", os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			fail("create /mnt/xenvmm-data: %v", err)
		}
		start := time.Now()
		if _, err := f.Write(buf); err != nil {
			fail("write: %v", err)
		}
		if err := f.Sync(); err != nil {
			fail("fsync: %v", err)
		}
		el := time.Since(start)
		f.Close()
		say("ext4 wrote %d MiB in %v (%.1f MB/s) sha256=%x", ext4Size>>20, el.Round(time.Millisecond), float64(ext4Size)/el.Seconds()/1e6, sha256.Sum256(buf))
	case "ext4-read":
		// Drop the page cache so the read goes through blkback.
		os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0)
		start := time.Now()
		f, err := os.Open("/mnt/xenvmm-data")
		if err != nil {
			fail("open /mnt/xenvmm-data: %v", err)
		}
		n, err := io.ReadFull(f, buf)
		if err != nil {
			fail("read: %d bytes, %v", n, err)
		}
		el := time.Since(start)
		f.Close()
		say("ext4 read %d MiB in %v (%.1f MB/s) sha256=%x", ext4Size>>20, el.Round(time.Millisecond), float64(ext4Size)/el.Seconds()/1e6, sha256.Sum256(buf))
	case "ext4-ro":
		_, err := os.Create("/mnt/must-not-exist")
		say("create on the read-only disk: %v", err)
	}
	if err := unix.Unmount("/mnt", 0); err != nil {
		fail("umount /mnt: %v", err)
	}
	say("unmounted /mnt")
}
