package testguest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/xenvmm/xenvmm/internal/testenv"
)

// ExtImage writes files (path in the file system → contents) into a
// directory tree and makes an ext2/3/4 image of size (mke2fs's syntax,
// "32M") from it with the host's mke2fs -d, inside the sandbox too
// (testenv.HostCommand). It returns the image's path, in t.TempDir().
func ExtImage(t testing.TB, fsType, size string, files map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	for name, b := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(dir, "disk.img")
	mk := testenv.HostCommand(t, "mke2fs", "-q", "-F", "-t", fsType, "-d", testenv.HostPath(root), testenv.HostPath(img), size)
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("mke2fs -t %s: %v\n%s", fsType, err, out)
	}
	return img
}
