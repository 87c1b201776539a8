package hostcheck

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xenvmm/xenvmm/internal/testenv"
)

// TestHostPath checks the mapping from the test's paths to the host
// program's inside the sandbox's layout, and that it is the identity on
// the host.
func TestHostPath(t *testing.T) {
	t.Setenv("XENVMM_HOST_ROOT", "")
	for _, p := range []string{"/tmp/x", "/sandbox/src/a", "rel"} {
		if got := testenv.HostPath(p); got != p {
			t.Errorf("on the host HostPath(%q) = %q, want it unchanged", p, got)
		}
	}

	t.Setenv("XENVMM_HOST_ROOT", "/host")
	t.Setenv("XENVMM_SANDBOX_ROOT", "/run/sandbox-root")
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ in, want string }{
		{"/tmp/TestX/001/sock", "/tmp/TestX/001/sock"},
		{"/tmp", "/tmp"},
		{"/run/xenstored/socket", "/run/xenstored/socket"},
		{"/dev/net/tun", "/dev/net/tun"},
		{"/proc/self/status", "/proc/self/status"},
		{"/sys/hypervisor", "/sys/hypervisor"},
		{"/host/usr/bin/python3", "/usr/bin/python3"},
		{"/host", "/"},
		{"/hostile", "/run/sandbox-root/hostile"},
		{"/tmpfoo", "/run/sandbox-root/tmpfoo"},
		{"/sandbox/guests/netbsd", "/run/sandbox-root/sandbox/guests/netbsd"},
		{"/sandbox/src/vmm/../vmm/testdata/x", "/run/sandbox-root/sandbox/src/vmm/testdata/x"},
		{"/", "/run/sandbox-root"},
		{"testdata/f", filepath.Join("/run/sandbox-root", wd, "testdata/f")},
	}
	if strings.HasPrefix(wd, "/tmp/") {
		tests[len(tests)-1].want = filepath.Join(wd, "testdata/f")
	}
	for _, tt := range tests {
		if got := testenv.HostPath(tt.in); got != tt.want {
			t.Errorf("HostPath(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// recTB records what testenv.Missing does instead of stopping the test.
type recTB struct {
	testing.TB
	msg string
}

func (r *recTB) Helper()                          {}
func (r *recTB) Skipf(format string, args ...any) { r.msg = "skip" }
func (r *recTB) Fatalf(format string, args ...any) {
	r.msg = "fatal"
}

// TestHostCommandLookup builds a fake host root and checks that
// HostCommand finds programs there as a chroot would: Debian's absolute
// /etc/alternatives links resolved inside the root, never on the test's
// own file system, and non-executables refused.
func TestHostCommandLookup(t *testing.T) {
	root := t.TempDir()
	mk := func(p string, mode os.FileMode) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	link := func(p, target string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(root, p)); err != nil {
			t.Fatal(err)
		}
	}
	mk("opt/tool/bin/tool", 0o755)
	link("etc/alternatives/tool", "/opt/tool/bin/tool")
	link("usr/bin/tool", "/etc/alternatives/tool")
	mk("usr/sbin/admin", 0o755)
	mk("usr/bin/admin", 0o755)
	mk("usr/bin/plain", 0o644)
	// Absolute links to programs that exist on the test's own file
	// system but not in the root.
	link("usr/bin/escape", "/bin/sh")
	link("usr/bin/escape2", "../../../../../../../../bin/sh")

	t.Setenv("XENVMM_HOST_ROOT", root)
	t.Setenv("XENVMM_SANDBOX", "")
	for _, tt := range []struct{ name, want string }{
		{"tool", "/usr/bin/tool"},
		{"admin", "/usr/sbin/admin"}, // /usr/sbin comes first
		{"/usr/bin/admin", "/usr/bin/admin"},
		{"/opt/tool/bin/tool", "/opt/tool/bin/tool"},
		{"plain", ""},
		{"escape", ""},
		{"escape2", ""},
		{"nonexistent", ""},
	} {
		rec := &recTB{TB: t}
		cmd := testenv.HostCommand(rec, tt.name, "arg")
		if tt.want == "" {
			if cmd != nil || rec.msg == "" {
				t.Errorf("HostCommand(%q) = %v (Missing: %q), want it missing", tt.name, cmd, rec.msg)
			}
			continue
		}
		if cmd == nil {
			t.Errorf("HostCommand(%q) is missing, want %s", tt.name, tt.want)
			continue
		}
		if cmd.Path != tt.want || cmd.SysProcAttr == nil || cmd.SysProcAttr.Chroot != root {
			t.Errorf("HostCommand(%q): path %q, chroot %+v; want %q in %s", tt.name, cmd.Path, cmd.SysProcAttr, tt.want, root)
		}
		if len(cmd.Args) != 2 || cmd.Args[1] != "arg" {
			t.Errorf("HostCommand(%q): args %q", tt.name, cmd.Args)
		}
	}
}

// TestHostCommandOnHost runs a host program directly outside the sandbox.
func TestHostCommandOnHost(t *testing.T) {
	if testenv.InSandbox() {
		t.Skip("outside the sandbox only")
	}
	t.Setenv("XENVMM_HOST_ROOT", "")
	cmd := testenv.HostCommand(t, "sh", "-c", "echo $0", "hello")
	if cmd.SysProcAttr != nil {
		t.Errorf("on the host HostCommand chroots: %+v", cmd.SysProcAttr)
	}
	if cmd.Path != "/usr/bin/sh" && cmd.Path != "/bin/sh" {
		t.Errorf("HostCommand(sh).Path = %q, want /usr/bin/sh or /bin/sh (Debian's system directories first)", cmd.Path)
	}
	out, err := cmd.Output()
	if err != nil || string(out) != "hello\n" {
		t.Errorf("sh printed %q, %v", out, err)
	}
}
