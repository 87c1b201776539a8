package vmm

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/xenvmm/xenvmm/config"
	"github.com/xenvmm/xenvmm/xenabi/abi"
)

// blkPattern is what testdata/guestprogs/blkcheck writes: each 4 KiB block
// holds its index and offsets.
func blkPattern(n int) []byte {
	buf := make([]byte, n)
	for blk := 0; blk < n/4096; blk++ {
		for j := 0; j < 4096; j += 8 {
			v := uint64(blk)<<32 | uint64(j)
			for k := 0; k < 8; k++ {
				buf[blk*4096+j+k] = byte(v >> (8 * k))
			}
		}
	}
	return buf
}

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
