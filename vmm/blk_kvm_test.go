package vmm

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xenvmm/xenvmm/config"
	"github.com/xenvmm/xenvmm/internal/testenv"
	"github.com/xenvmm/xenvmm/internal/testguest"
	"github.com/xenvmm/xenvmm/xenabi/abi"
)

// blkPattern is testenv.BlockPattern.
func blkPattern(n int) []byte { return testguest.BlockPattern(n) }

func parseDisk(t *testing.T, spec string) config.Disk {
	t.Helper()
	d, err := config.ParseDisk(spec)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestKVMBlkRawWriteRead: Linux's xen-blkfront against blkback on a file
// image: the guest writes 16 MiB to /dev/xvda and syncs; the host finds
// every byte in the image; a second boot reads them back; a read-only disk
// refuses writes and stays unchanged.
func TestKVMBlkRawWriteRead(t *testing.T) {
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 64<<20); err != nil {
		t.Fatal(err)
	}
	rd := linuxInitramfs(t, "blkcheck", "xen_blkfront")
	want := blkPattern(16 << 20)
	wantSum := fmt.Sprintf("%x", sha256.Sum256(want))

	// Boot 1: write.
	exit, con, _, _ := bootLinuxWith(t, rd, 256, 5*time.Minute, "xenvmm.blk=raw-write", []config.Disk{parseDisk(t, "file:"+img+",xvda,w")})
	if exit.Reason != abi.SHUTDOWN_poweroff {
		t.Fatalf("write boot ended with %v; console tail:\n%s", exit, con.tail(30))
	}
	if _, m, ok := con.find(regexp.MustCompile(`XENVMM-GUEST: wrote 16 MiB in (\S+) sha256=([0-9a-f]+)`)); !ok || m[2] != wantSum {
		t.Fatalf("guest did not write the pattern (%v); console tail:\n%s", m, con.tail(30))
	} else {
		t.Logf("guest wrote 16 MiB through blkback in %s", m[1])
	}
	if _, m, ok := con.find(regexp.MustCompile(`XENVMM-GUEST: xvda sectors=(\d+) ro=0`)); !ok || m[1] != "131072" {
		t.Fatalf("xvda size %v, want 131072 sectors", m)
	}
	got, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[:len(want)], want) {
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("image differs from what the guest wrote at byte %#x", i)
			}
		}
	}

	// Boot 2: read back.
	exit, con, _, _ = bootLinuxWith(t, rd, 256, 5*time.Minute, "xenvmm.blk=raw-read", []config.Disk{parseDisk(t, "file:"+img+",xvda,w")})
	if _, m, ok := con.find(regexp.MustCompile(`XENVMM-GUEST: read 16 MiB in (\S+) sha256=([0-9a-f]+)`)); !ok || m[2] != wantSum || exit.Reason != abi.SHUTDOWN_poweroff {
		t.Fatalf("read boot: %v, %v; console tail:\n%s", exit, m, con.tail(30))
	} else {
		t.Logf("guest read 16 MiB through blkback in %s", m[1])
	}

	// Boot 3: the same image read-only.
	exit, con, _, _ = bootLinuxWith(t, rd, 256, 5*time.Minute, "xenvmm.blk=ro-write", []config.Disk{parseDisk(t, "file:"+img+",xvda,r")})
	if _, m, ok := con.find(regexp.MustCompile(`XENVMM-GUEST: write to a read-only disk: (.+)`)); !ok || m[1] == "<nil>" || exit.Reason != abi.SHUTDOWN_poweroff {
		t.Fatalf("read-only boot: %v, %v; console tail:\n%s", exit, m, con.tail(30))
	} else {
		t.Logf("writing to the read-only disk: %s", m[1])
	}
	if _, _, ok := con.find(regexp.MustCompile(`XENVMM-GUEST: xvda sectors=\d+ ro=1`)); !ok {
		t.Errorf("the guest does not see xvda read-only")
	}
	after, _ := os.ReadFile(img)
	if !bytes.Equal(after, got) {
		t.Fatal("the read-only disk's image changed")
	}
}

// TestKVMBlkExt4: the disk test of xl users. The test makes an ext4 image
// with Debian's mke2fs; Linux boots with disk = [ 'file:IMG,xvda,w' ] and
// root=/dev/xvda, its /init mounts the root device, writes 64 MiB of the
// pattern to a file, fsyncs and powers off; the host dumps the file from
// the image with debugfs and checks every byte; a second boot reads it
// back through blkback; a third boot with the disk read-only ('r') gets
// EROFS creating a file, and the image stays byte for byte the same.
func TestKVMBlkExt4(t *testing.T) {
	const size = 64 << 20
	img := filepath.Join(t.TempDir(), "ext4.img")
	mkfs := testenv.HostCommand(t, "mke2fs", "-q", "-F", "-t", "ext4", "-L", "xenvmm", testenv.HostPath(img), "160M")
	if out, err := mkfs.CombinedOutput(); err != nil {
		t.Fatalf("mke2fs: %v\n%s", err, out)
	}
	rd := linuxInitramfs(t, "blkcheck", "xen_blkfront", "crc32c_generic", "ext4")
	want := blkPattern(size)
	wantSum := fmt.Sprintf("%x", sha256.Sum256(want))
	disk := func(mode string) []config.Disk { return []config.Disk{parseDisk(t, "file:"+img+",xvda,"+mode)} }

	// Boot 1: write through ext4.
	exit, con, _, _ := bootLinuxWith(t, rd, 384, 5*time.Minute, "root=/dev/xvda xenvmm.blk=ext4-write", disk("w"))
	_, m, ok := con.find(regexp.MustCompile(`XENVMM-GUEST: ext4 wrote 64 MiB in (\S+) \((\S+) MB/s\) sha256=([0-9a-f]+)`))
	if exit.Reason != abi.SHUTDOWN_poweroff || !ok || m[3] != wantSum {
		t.Fatalf("write boot: %v, %v; console tail:\n%s", exit, m, con.tail(30))
	}
	t.Logf("BENCH blk: guest wrote 64 MiB to ext4 on xvda (fsync included) in %s, %s MB/s", m[1], m[2])
	wrote := m[2]
	if _, _, ok := con.find(regexp.MustCompile(`XENVMM-GUEST: unmounted /mnt`)); !ok {
		t.Fatalf("the guest did not unmount cleanly; console tail:\n%s", con.tail(30))
	}
	out := filepath.Join(t.TempDir(), "dumped")
	dump := testenv.HostCommand(t, "debugfs", "-R", "dump /xenvmm-data "+testenv.HostPath(out), testenv.HostPath(img))
	if o, err := dump.CombinedOutput(); err != nil {
		t.Fatalf("debugfs dump: %v\n%s", err, o)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != size {
		t.Fatalf("debugfs found /xenvmm-data of %d bytes, want %d", len(got), size)
	}
	if !bytes.Equal(got, want) {
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("the file in the image differs from what the guest wrote at byte %#x (block %d)", i, i/4096)
			}
		}
	}

	// Boot 2: read it back.
	exit, con, _, _ = bootLinuxWith(t, rd, 384, 5*time.Minute, "root=/dev/xvda xenvmm.blk=ext4-read", disk("w"))
	_, m, ok = con.find(regexp.MustCompile(`XENVMM-GUEST: ext4 read 64 MiB in (\S+) \((\S+) MB/s\) sha256=([0-9a-f]+)`))
	if exit.Reason != abi.SHUTDOWN_poweroff || !ok || m[3] != wantSum {
		t.Fatalf("read boot: %v, %v; console tail:\n%s", exit, m, con.tail(30))
	}
	if _, _, ok := con.find(regexp.MustCompile(`XENVMM-GUEST: unmounted /mnt`)); !ok {
		t.Errorf("read boot: the guest could not unmount; console tail:\n%s", con.tail(10))
	}
	t.Logf("BENCH blk: guest read 64 MiB from ext4 on xvda (page cache dropped) in %s, %s MB/s", m[1], m[2])
	hostW, hostR := hostFileMBps(t, filepath.Join(filepath.Dir(img), "host-baseline"), size)
	guestW, _ := strconv.ParseFloat(wrote, 64)
	guestR, _ := strconv.ParseFloat(m[2], 64)
	t.Logf("BENCH blk: sequential write guest %.1f MB/s, host %.1f MB/s, ratio %.3f; sequential read guest %.1f MB/s, host %.1f MB/s, ratio %.3f",
		guestW, hostW, guestW/hostW, guestR, hostR, guestR/hostR)

	// Boot 3: read-only disk.
	before, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	exit, con, _, _ = bootLinuxWith(t, rd, 384, 5*time.Minute, "root=/dev/xvda xenvmm.blk=ext4-ro", disk("r"))
	_, m, ok = con.find(regexp.MustCompile(`XENVMM-GUEST: create on the read-only disk: (.+)`))
	if exit.Reason != abi.SHUTDOWN_poweroff || !ok || !strings.Contains(m[1], "read-only file system") {
		t.Fatalf("read-only boot: %v, %v (want EROFS); console tail:\n%s", exit, m, con.tail(30))
	}
	after, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Fatal("the read-only disk's image changed")
	}
}

// hostFileMBps is the baseline for the guest's figures: the host writes n
// bytes to a file beside the image and fsyncs, then reads them back with
// the page cache dropped (where it may drop it), in MB/s.
func hostFileMBps(t *testing.T, path string, n int) (write, read float64) {
	t.Helper()
	buf := testguest.BlockPattern(n)
	start := time.Now()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(path)
	if _, err := f.Write(buf); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	write = float64(n) / time.Since(start).Seconds() / 1e6
	os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0)
	start = time.Now()
	back, err := os.ReadFile(path)
	if err != nil || len(back) != n {
		t.Fatalf("reading the baseline file back: %d bytes, %v", len(back), err)
	}
	read = float64(n) / time.Since(start).Seconds() / 1e6
	return write, read
}
