package initramfs

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/u-root/u-root/pkg/cpio"
)

func TestArchiveRoundTrip(t *testing.T) {
	dir := t.TempDir()
	host := filepath.Join(dir, "prog")
	if err := os.WriteFile(host, []byte("#!/bin/true\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var b Builder
	for _, err := range []error{
		b.AddBytes("etc/motd", []byte("hello"), 0o644),
		b.AddFile("bin/deep/prog", host),
		b.AddCharDev("dev/console", 0o600, 5, 1),
		b.AddDir("tmp", 0o1777),
		b.AddSymlink("init", "bin/deep/prog"),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	data, err := b.Bytes(false)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(data)))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]cpio.Record{}
	var order []string
	for _, r := range recs {
		seen[r.Name] = r
		order = append(order, r.Name)
	}
	for _, want := range []string{"bin", "bin/deep", "bin/deep/prog", "dev", "dev/console", "etc", "etc/motd", "tmp", "init"} {
		if _, ok := seen[want]; !ok {
			t.Errorf("archive lacks %q (has %v)", want, order)
		}
	}
	idx := func(n string) int {
		for i, o := range order {
			if o == n {
				return i
			}
		}
		return -1
	}
	if idx("bin/deep") > idx("bin/deep/prog") || idx("bin") > idx("bin/deep") {
		t.Errorf("parents must precede children: %v", order)
	}
	got, _ := io.ReadAll(io.NewSectionReader(seen["bin/deep/prog"], 0, int64(seen["bin/deep/prog"].FileSize)))
	if string(got) != "#!/bin/true\n" || seen["bin/deep/prog"].Mode&0o777 != 0o755 {
		t.Errorf("prog = %q mode %o", got, seen["bin/deep/prog"].Mode)
	}
	if c := seen["dev/console"]; c.Mode&cpio.S_IFMT != cpio.S_IFCHR || c.Rmajor != 5 || c.Rminor != 1 {
		t.Errorf("dev/console = %+v", c.Info)
	}
	if seen["tmp"].Mode&0o7777 != 0o1777 {
		t.Errorf("tmp mode = %o", seen["tmp"].Mode)
	}
}

func TestRejectsDuplicatesAndEscapes(t *testing.T) {
	var b Builder
	if err := b.AddBytes("a", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := b.AddBytes("/a", nil, 0o644); err == nil {
		t.Error("duplicate path accepted")
	}
	if err := b.AddBytes("../x", nil, 0o644); err == nil {
		t.Error("path escaping the root accepted")
	}
}

func TestGzip(t *testing.T) {
	var b Builder
	if err := b.AddBytes("x", bytes.Repeat([]byte("x"), 1<<16), 0o644); err != nil {
		t.Fatal(err)
	}
	data, err := b.Bytes(true)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) < 2 || data[0] != 0x1f || data[1] != 0x8b || len(data) > 1<<14 {
		t.Fatalf("not a compact gzip stream: %d bytes", len(data))
	}
}
