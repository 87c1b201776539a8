package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xenvmm/xenvmm/internal/testenv"
	"github.com/xenvmm/xenvmm/internal/testguest"
)

// writePygrubConfig makes an ext4 disk image that carries its own
// kernel (Debian's), initrd and GRUB 2 menu, and a domain config that
// boots it with bootloader = "pygrub" and no kernel= line.
func writePygrubConfig(t *testing.T, initrd []byte) string {
	t.Helper()
	kernel, err := os.ReadFile(testenv.DebianVmlinuz(t))
	if err != nil {
		t.Fatal(err)
	}
	img := testguest.ExtImage(t, "ext4", "96M", map[string][]byte{
		"boot/vmlinuz-6.1-xenvmm":    kernel,
		"boot/initrd.img-6.1-xenvmm": initrd,
		"boot/grub/grub.cfg": []byte(`set default="1"
menuentry 'Debian (not this one)' {
	linux /boot/vmlinuz-missing
}
menuentry 'Debian from its own disk' --class debian {
	insmod ext2
	set root='hd0'
	linux	/boot/vmlinuz-6.1-xenvmm console=hvc0 rdinit=/init
	initrd	/boot/initrd.img-6.1-xenvmm
}
`),
	})
	cfg := `name = "pygrub-test"
bootloader = "pygrub"
memory = 256
disk = [ 'file:` + img + `,xvda,w' ]
extra = "xenvmm.from=pygrub"
`
	p := filepath.Join(t.TempDir(), "pygrub.cfg")
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCheckPygrub: `xenvmm check` on a pygrub domain says what it found
// on the disk and loads that kernel.
func TestCheckPygrub(t *testing.T) {
	cfg := writePygrubConfig(t, []byte("not really an initrd"))
	code, out := runCLI(t, "check", cfg)
	if code != 0 {
		t.Fatalf("check: exit status %d:\n%s", code, out)
	}
	for _, want := range []string{
		`partition 0, /boot/grub/grub.cfg, entry "Debian from its own disk"`,
		"kernel  /boot/vmlinuz-6.1-xenvmm",
		"initrd  /boot/initrd.img-6.1-xenvmm",
		"cmdline console=hvc0 rdinit=/init xenvmm.from=pygrub",
		"disk.img:/boot/vmlinuz-6.1-xenvmm",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
}

// TestCheckPygrubKernel: kernel= of a pygrub domain is a path on the
// guest's disk (xl hands it to pygrub as --kernel), not on the host.
func TestCheckPygrubKernel(t *testing.T) {
	cfg := writePygrubConfig(t, []byte("initrd"))
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, append(b, "kernel = \"/boot/vmlinuz-6.1-xenvmm\"\nbootloader_args = [ \"--args=quiet\" ]\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out := runCLI(t, "check", cfg)
	if code != 0 {
		t.Fatalf("check: exit status %d:\n%s", code, out)
	}
	for _, want := range []string{`entry "kernel /boot/vmlinuz-6.1-xenvmm"`, "initrd  \n", "cmdline quiet xenvmm.from=pygrub"} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
}
