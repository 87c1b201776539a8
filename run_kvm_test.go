package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v3"
	"github.com/xenvmm/xenvmm/internal/initramfs"
	"github.com/xenvmm/xenvmm/internal/testenv"
)

// writeLinuxConfig writes an initramfs with testdata/guestprogs/linuxinit
// as /init and a domain config booting Debian's kernel with it.
func writeLinuxConfig(t *testing.T, extra string) string {
	t.Helper()
	dir := t.TempDir()
	rdPath := filepath.Join(dir, "initrd.gz")
	if err := os.WriteFile(rdPath, linuxInitrd(t), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := `name = "cli-test"
kernel = "` + testenv.DebianVmlinuz(t) + `"
ramdisk = "` + rdPath + `"
memory = 256
` + extra + "\n"
	p := filepath.Join(dir, "linux.cfg")
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// linuxInitrd is a gzip'd initramfs with testdata/guestprogs/linuxinit
// as /init.
func linuxInitrd(t *testing.T) []byte {
	t.Helper()
	var b initramfs.Builder
	for _, err := range []error{
		b.AddFile("init", testenv.GuestProg(t, "linuxinit")),
		b.AddCharDev("dev/console", 0o600, 5, 1),
		b.AddDir("proc", 0o755), b.AddDir("sys", 0o755), b.AddDir("tmp", 0o1777),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	rd, err := b.Bytes(true)
	if err != nil {
		t.Fatal(err)
	}
	return rd
}

// runCLI runs `xenvmm ARGS...` in-process and returns its exit status
// (as main would exit) and stdout.
func runCLI(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := newApp(&out, &errOut).Run(context.Background(), append([]string{"xenvmm"}, args...))
	t.Logf("xenvmm %s: err=%v; stderr:\n%s", strings.Join(args, " "), err, lastLines(errOut.String(), 15))
	code := 0
	if err != nil {
		code = 1
		var ec cli.ExitCoder
		if errors.As(err, &ec) {
			code = ec.ExitCode()
		}
	}
	return code, out.String()
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// TestKVMRunPoweroff: `xenvmm run` boots Debian's Linux to its /init,
// which powers off: exit status 0.
func TestKVMRunPoweroff(t *testing.T) {
	testenv.RequireKVM(t)
	cfg := writeLinuxConfig(t, `extra = "console=hvc0 rdinit=/init"`)
	code, out := runCLI(t, "run", "--timeout", "5m", cfg)
	if code != 0 {
		t.Fatalf("exit status %d, want 0; console tail:\n%s", code, lastLines(out, 30))
	}
	for _, want := range []string{"Booting kernel on Xen", "XENVMM-GUEST: init started", "XENVMM-GUEST: poweroff"} {
		if !strings.Contains(out, want) {
			t.Errorf("console lacks %q", want)
		}
	}
}

// TestKVMRunCrash: a guest kernel crash with on_crash="destroy" ends
// xenvmm with status 3 and the reason.
func TestKVMRunCrash(t *testing.T) {
	testenv.RequireKVM(t)
	cfg := writeLinuxConfig(t, `extra = "console=hvc0 rdinit=/init xenvmm.action=crash"
on_crash = "destroy"`)
	code, out := runCLI(t, "run", "--timeout", "5m", cfg)
	if code != 3 {
		t.Fatalf("exit status %d, want 3 (crash); console tail:\n%s", code, lastLines(out, 30))
	}
	if !strings.Contains(out, "Kernel panic") {
		t.Errorf("console shows no kernel panic:\n%s", lastLines(out, 20))
	}
}

// TestKVMRunReboot: a guest reboot with on_reboot="restart" builds and
// boots the domain again (the second boot reboots too, and so on, until
// the timeout); with on_reboot="destroy" xenvmm exits with status 2.
// One boot to /init takes 20–45 s in the sandbox, so the timeout leaves
// room for the first boot, its reboot and the second kernel's start.
func TestKVMRunReboot(t *testing.T) {
	testenv.RequireKVM(t)
	cfg := writeLinuxConfig(t, `extra = "console=hvc0 rdinit=/init xenvmm.action=reboot"
on_reboot = "restart"`)
	code, out := runCLI(t, "run", "--timeout", "100s", cfg)
	reboots, boots := strings.Count(out, "XENVMM-GUEST: rebooting"), strings.Count(out, "Linux version 6.")
	if reboots < 1 || boots < 2 {
		t.Fatalf("%d reboots and %d kernel starts before the timeout, want at least 1 and 2 (restart on reboot); exit %d; console tail:\n%s", reboots, boots, code, lastLines(out, 20))
	}
	if code != 4 {
		t.Errorf("exit status %d after the timeout, want 4", code)
	}
	cfg = writeLinuxConfig(t, `extra = "console=hvc0 rdinit=/init xenvmm.action=reboot"
on_reboot = "destroy"`)
	if code, out := runCLI(t, "run", "--timeout", "5m", cfg); code != 2 {
		t.Fatalf("on_reboot=destroy: exit status %d, want 2; console tail:\n%s", code, lastLines(out, 20))
	}
}
