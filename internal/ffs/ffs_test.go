package ffs

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/xenvmm/xenvmm/internal/testenv"
)

// makeImage runs Debian's makefs (NetBSD's, ported) on dir, as the NetBSD
// disk test does, and opens the image.
func makeImage(t *testing.T, dir string, opts ...string) (*FS, []byte) {
	t.Helper()
	mk, err := exec.LookPath("makefs")
	if err != nil {
		testenv.Missing(t, "makefs (Debian package makefs)")
	}
	img := filepath.Join(t.TempDir(), "ffs.img")
	args := append([]string{"-t", "ffs", "-o", "version=1"}, opts...)
	args = append(args, img, dir)
	if out, err := exec.Command(mk, args...).CombinedOutput(); err != nil {
		t.Fatalf("makefs %v: %v\n%s", args, err, out)
	}
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	fs, err := Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	return fs, b
}

func TestReadFilesMakefsWrote(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewSource(1))
	files := map[string][]byte{}
	for _, f := range []struct {
		name string
		size int
	}{
		{"empty", 0},
		{"small", 100},
		{"sub/dir/frag", 5000},         // a fragment tail
		{"sub/direct", 12 * 8192},      // exactly the direct blocks
		{"indirect", 128 << 10},        // single indirect
		{"sub/double", 17<<20 + 12345}, // double indirect (bsize 8192: 12 + 2048 blocks single)
	} {
		b := make([]byte, f.size)
		rng.Read(b)
		files["/"+f.name] = b
		p := filepath.Join(dir, f.name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fs, _ := makeImage(t, dir, "-o", "bsize=8192,fsize=1024")
	if fs.BlockSize() != 8192 {
		t.Fatalf("block size %d", fs.BlockSize())
	}
	for name, want := range files {
		got, err := fs.ReadFile(name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes differ from the %d written", name, len(got), len(want))
		}
	}
	ents, err := fs.ReadDir("/sub")
	if err != nil {
		t.Fatal(err)
	}
	names := fmt.Sprint(ents)
	for _, n := range []string{"dir", "direct", "double"} {
		if !bytes.Contains([]byte(names), []byte("{"+n+" ")) {
			t.Errorf("/sub lacks %s: %s", n, names)
		}
	}
	for _, p := range []string{"/missing", "/small/x", "/sub/nope"} {
		if _, err := fs.ReadFile(p); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: %v, want ErrNotFound", p, err)
		}
	}
	if _, err := fs.ReadFile("/sub"); err == nil {
		t.Error("read a directory as a file")
	}
}

// TestCorruptImages: whatever the bytes, the reader returns an error or
// data, never panics or reads outside the image.
func TestCorruptImages(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f"), bytes.Repeat([]byte("x"), 200<<10), 0o644)
	_, img := makeImage(t, dir, "-s", "1m")
	if _, err := Open(bytes.NewReader(make([]byte, 1<<20)), 1<<20); !errors.Is(err, ErrNotFFS) {
		t.Errorf("zeros: %v", err)
	}
	rng := rand.New(rand.NewSource(2))
	for i := 0; i < 300; i++ {
		b := append([]byte(nil), img...)
		for k := 0; k < 1+rng.Intn(64); k++ {
			// Mostly in the metadata: the superblock, the first
			// cylinder group, inodes, the root directory.
			off := 8192 + rng.Intn(min(len(b)-8192, 256<<10))
			b[off] = byte(rng.Intn(256))
		}
		fs, err := Open(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			continue
		}
		fs.ReadFile("/f")
		fs.ReadDir("/")
	}
}
