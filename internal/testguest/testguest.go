// Package testguest builds what the project's Linux guest tests boot: an
// initramfs with one of testdata/guestprogs as /init and Debian's kernel
// modules, and the disk pattern the guests write.
package testguest

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/xenvmm/xenvmm/internal/initramfs"
	"github.com/xenvmm/xenvmm/internal/sandbox"
	"github.com/xenvmm/xenvmm/internal/testenv"
)

// LinuxInitramfs returns a gzip'd initramfs for Debian's kernel whose /init
// is testdata/guestprogs/PROG, with the given modules of Debian's kernel
// (and their dependencies) under /lib/modules and listed in load order in
// /modules.list.
func LinuxInitramfs(t testing.TB, prog string, modules ...string) []byte {
	t.Helper()
	var b initramfs.Builder
	for _, err := range []error{
		b.AddFile("init", testenv.GuestProg(t, prog)),
		b.AddCharDev("dev/console", 0o600, 5, 1),
		b.AddDir("proc", 0o755), b.AddDir("sys", 0o755), b.AddDir("tmp", 0o1777), b.AddDir("dev", 0o755),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(modules) > 0 {
		files, err := sandbox.ResolveModules(testenv.DebianModulesDir(t), modules)
		if err != nil {
			t.Fatal(err)
		}
		var list strings.Builder
		for _, f := range files {
			inside := "lib/modules/" + filepath.Base(f)
			if err := b.AddFile(inside, f); err != nil {
				t.Fatal(err)
			}
			list.WriteString("/" + inside + "\n")
		}
		if err := b.AddBytes("modules.list", []byte(list.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, err := b.Bytes(true)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// BlockPattern is the n bytes that testdata/guestprogs/blkcheck writes to
// a disk: each 4 KiB block holds its index and offsets, so that a block in
// the wrong place is found as well as a corrupted one.
func BlockPattern(n int) []byte {
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
