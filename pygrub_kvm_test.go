package main

import (
	"strings"
	"testing"

	"github.com/xenvmm/xenvmm/internal/testenv"
)

// TestKVMRunPygrub: bootloader = "pygrub" with no kernel= line: xenvmm
// reads the GRUB 2 menu on the domain's ext4 disk, boots the kernel and
// initrd of its default entry with the entry's arguments and the
// config's extra=, and the guest runs to its poweroff.
func TestKVMRunPygrub(t *testing.T) {
	testenv.RequireKVM(t)
	cfg := writePygrubConfig(t, linuxInitrd(t))
	code, out := runCLI(t, "run", "--timeout", "5m", cfg)
	if code != 0 {
		t.Fatalf("exit status %d, want 0; console tail:\n%s", code, lastLines(out, 30))
	}
	for _, want := range []string{
		"Kernel command line: console=hvc0 rdinit=/init xenvmm.from=pygrub",
		"XENVMM-GUEST: init started",
		"XENVMM-GUEST: poweroff",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("console lacks %q; tail:\n%s", want, lastLines(out, 20))
		}
	}
}
