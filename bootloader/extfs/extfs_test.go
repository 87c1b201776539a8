package extfs

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xenvmm/xenvmm/internal/testenv"
)

// tree writes a directory tree that exercises the reader: small and
// large files (direct, indirect, double-indirect blocks or several
// extents), fast and slow symlinks, a directory large enough to be
// hashed (htree), a sparse file.
func tree(t *testing.T) (string, map[string][]byte) {
	dir := t.TempDir()
	rng := rand.New(rand.NewSource(1))
	files := map[string][]byte{}
	add := func(name string, size int) {
		b := make([]byte, size)
		rng.Read(b)
		files["/"+name] = b
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	add("empty", 0)
	add("boot/grub/menu.lst", 300)
	add("boot/vmlinuz-6.1.0-x", 5<<20+777) // double-indirect with 1 KiB blocks
	add("boot/initrd.img-6.1.0-x", 300<<10)
	for i := 0; i < 300; i++ {
		add(fmt.Sprintf("many/file-with-a-long-name-%04d", i), 10)
	}
	os.Symlink("boot/vmlinuz-6.1.0-x", filepath.Join(dir, "vmlinuz"))
	long := "boot/" + strings.Repeat("../boot/", 10) + "initrd.img-6.1.0-x" // > 60 bytes: a slow symlink
	os.Symlink(long, filepath.Join(dir, "initrd.img"))
	files["/vmlinuz"] = files["/boot/vmlinuz-6.1.0-x"]
	files["/initrd.img"] = files["/boot/initrd.img-6.1.0-x"]
	// A sparse file: 1 MiB hole, then data.
	f, _ := os.Create(filepath.Join(dir, "sparse"))
	f.WriteAt([]byte("after the hole"), 1<<20)
	f.Close()
	files["/sparse"] = append(make([]byte, 1<<20), "after the hole"...)
	return dir, files
}

func mkfs(t *testing.T, dir string, args ...string) []byte {
	return mkfsSize(t, dir, "64M", args...)
}

func mkfsSize(t *testing.T, dir, size string, args ...string) []byte {
	t.Helper()
	mk, err := exec.LookPath("mke2fs")
	if err != nil {
		testenv.Missing(t, "mke2fs (e2fsprogs)")
	}
	img := filepath.Join(t.TempDir(), "fs.img")
	args = append(append([]string{"-q", "-F"}, args...), "-d", dir, img, size)
	if out, err := exec.Command(mk, args...).CombinedOutput(); err != nil {
		t.Fatalf("mke2fs %v: %v\n%s", args, err, out)
	}
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestReadWhatMke2fsWrote(t *testing.T) {
	dir, files := tree(t)
	for _, c := range []struct {
		name string
		args []string
	}{
		{"ext2 1k", []string{"-t", "ext2", "-b", "1024"}},
		{"ext2 4k", []string{"-t", "ext2", "-b", "4096"}},
		{"ext3", []string{"-t", "ext3"}},
		{"ext4", []string{"-t", "ext4"}},
		{"ext4 64bit metadata_csum 1k", []string{"-t", "ext4", "-b", "1024", "-O", "64bit,metadata_csum"}},
		{"ext4 meta_bg", []string{"-t", "ext4", "-O", "meta_bg,^resize_inode"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			img := mkfs(t, dir, c.args...)
			fs, err := Open(bytes.NewReader(img), int64(len(img)))
			if err != nil {
				t.Fatal(err)
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
			ents, err := fs.ReadDir("/many")
			if err != nil || len(ents) != 302 { // with . and ..
				t.Errorf("/many: %d entries, %v", len(ents), err)
			}
			if _, err := fs.ReadFile("/boot/nope"); !errors.Is(err, ErrNotFound) {
				t.Errorf("missing file: %v", err)
			}
			if _, err := fs.ReadFile("/boot"); err == nil {
				t.Error("read a directory as a file")
			}
		})
	}
}

func TestSymlinkLoop(t *testing.T) {
	dir := t.TempDir()
	os.Symlink("b", filepath.Join(dir, "a"))
	os.Symlink("a", filepath.Join(dir, "b"))
	img := mkfs(t, dir, "-t", "ext4")
	fs, err := Open(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fs.ReadFile("/a"); err == nil || !strings.Contains(err.Error(), "symbolic links") {
		t.Fatalf("loop: %v", err)
	}
}

func TestNotExt(t *testing.T) {
	for _, b := range [][]byte{nil, make([]byte, 4096), bytes.Repeat([]byte{0xff}, 1<<16)} {
		if _, err := Open(bytes.NewReader(b), int64(len(b))); err == nil {
			t.Errorf("%d bytes: opened", len(b))
		}
	}
}

// TestCorruptImages: random damage to the metadata gives errors, never
// a panic, a read outside the image or an endless loop.
func TestCorruptImages(t *testing.T) {
	dir, _ := tree(t)
	for _, typ := range []string{"ext2", "ext4"} {
		img := mkfsSize(t, dir, "12M", "-t", typ, "-b", "1024")
		rng := rand.New(rand.NewSource(3))
		for i := 0; i < 150; i++ {
			b := append([]byte(nil), img...)
			for k := 0; k < 1+rng.Intn(32); k++ {
				b[1024+rng.Intn(512<<10)] = byte(rng.Intn(256))
			}
			fs, err := Open(bytes.NewReader(b), int64(len(b)))
			if err != nil {
				continue
			}
			fs.ReadFile("/vmlinuz")
			fs.ReadFile("/boot/grub/menu.lst")
			fs.ReadDir("/many")
		}
	}
}
