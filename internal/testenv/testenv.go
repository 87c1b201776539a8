// Package testenv finds the external inputs that xenvmm's tests need (real
// guest kernels, Debian's kernel fetched by scripts/setup.sh, /dev/kvm) and
// decides what a test does when one is missing: it skips on a developer's
// machine, and fails when CI=true or XENVMM_REQUIRE_ALL=1, so that CI never
// silently skips a test.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"testing"
)

// Strict reports whether missing test inputs must fail the test rather
// than skip it.
func Strict() bool {
	return os.Getenv("CI") == "true" || os.Getenv("XENVMM_REQUIRE_ALL") == "1"
}

// Missing skips t (or fails it in strict mode) because what names is absent.
func Missing(t testing.TB, what string) {
	t.Helper()
	if Strict() {
		t.Fatalf("%s is missing (CI=true or XENVMM_REQUIRE_ALL=1: not skipping; run scripts/setup.sh)", what)
	}
	t.Skipf("%s is missing; run scripts/setup.sh (or scripts/test.sh) to get it", what)
}

// CacheDir is where scripts/setup.sh keeps downloads:
// $XENVMM_CACHE, else $XDG_CACHE_HOME/xenvmm, else ~/.cache/xenvmm.
func CacheDir() string {
	if d := os.Getenv("XENVMM_CACHE"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "xenvmm")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "xenvmm-cache")
	}
	return filepath.Join(home, ".cache", "xenvmm")
}

// RepoRoot returns the root of the xenvmm checkout (the directory holding
// go.mod), or $XENVMM_REPO where set (inside the sandbox, where the source
// tree is not present but each package's testdata is).
func RepoRoot() string {
	if d := os.Getenv("XENVMM_REPO"); d != "" {
		return d
	}
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "."
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// DebianVmlinuz returns the path of Debian's linux-image-amd64 vmlinuz
// (a bzImage with an XZ payload and CONFIG_XEN_PV=y) unpacked by
// scripts/setup.sh, or skips/fails t when it is absent. $XENVMM_LINUX
// overrides the path.
func DebianVmlinuz(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("XENVMM_LINUX"); p != "" {
		return p
	}
	matches, _ := filepath.Glob(filepath.Join(CacheDir(), "kernel", "boot", "vmlinuz-*"))
	if len(matches) == 0 {
		Missing(t, "Debian's linux-image-amd64 vmlinuz (under "+filepath.Join(CacheDir(), "kernel", "boot")+")")
		return ""
	}
	sort.Strings(matches)
	return matches[len(matches)-1]
}

// GuestsDir is the directory of real Xen PV guest kernels: $XENVMM_GUESTS,
// else ../shared/guests beside the checkout.
func GuestsDir() string {
	if d := os.Getenv("XENVMM_GUESTS"); d != "" {
		return d
	}
	return filepath.Join(RepoRoot(), "..", "shared", "guests")
}

// Guest returns the path of the named real guest kernel in GuestsDir,
// or skips/fails t when it is absent.
func Guest(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(GuestsDir(), name)
	if _, err := os.Stat(p); err != nil {
		Missing(t, "guest kernel "+p)
		return ""
	}
	return p
}

// InSandbox reports whether the test runs inside the nested-KVM sandbox
// (the sandbox's init sets XENVMM_SANDBOX=1).
func InSandbox() bool { return os.Getenv("XENVMM_SANDBOX") == "1" }

// RequireKVM decides where KVM tests run. Inside the sandbox a missing
// /dev/kvm fails the test. Outside it, KVM tests run only when
// XENVMM_HOST_KVM=1 and /dev/kvm exists, and skip otherwise: the
// project's test command runs them inside the nested-KVM sandbox, whose
// CPU (QEMU's emulated AMD SVM) is the same on every machine. (Some hosts
// expose a /dev/kvm whose nested virtualization does not follow the
// architecture — seen on this project's development VMs, where SYSCALL
// from CPL3 arrived at LSTAR still at CPL3 — so the host's /dev/kvm is
// opt-in.)
func RequireKVM(t testing.TB) {
	t.Helper()
	_, err := os.Stat("/dev/kvm")
	switch {
	case InSandbox() && err != nil:
		t.Fatal("/dev/kvm is missing inside the sandbox: kvm_amd did not load")
	case InSandbox():
		return
	case os.Getenv("XENVMM_HOST_KVM") == "1" && err == nil:
		return
	case os.Getenv("XENVMM_HOST_KVM") == "1":
		t.Fatalf("XENVMM_HOST_KVM=1 but /dev/kvm is unusable: %v", err)
	}
	t.Skip("KVM test: runs inside the nested-KVM sandbox (scripts/test.sh), or here with XENVMM_HOST_KVM=1")
}

// GuestProgsDir is where the Go programs that run inside guests live
// (each a main package under testdata/guestprogs/NAME).
func GuestProgsDir() string { return filepath.Join(RepoRoot(), "testdata", "guestprogs") }

// GuestProg returns a static binary of testdata/guestprogs/NAME: the one
// the sandbox runner built (under $XENVMM_GUESTBIN), or one built now
// with the Go toolchain.
func GuestProg(t testing.TB, name string) string {
	t.Helper()
	if d := os.Getenv("XENVMM_GUESTBIN"); d != "" {
		p := filepath.Join(d, name)
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("guest program %s was not built for the sandbox: %v", name, err)
		}
		return p
	}
	out := filepath.Join(t.TempDir(), name)
	cmd := exec.Command("go", "build", "-o", out, "./testdata/guestprogs/"+name)
	cmd.Dir = RepoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building guest program %s: %v\n%s", name, err, b)
	}
	return out
}
