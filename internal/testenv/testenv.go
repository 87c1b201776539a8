// Package testenv finds the external inputs that xenvmm's tests need (real
// guest kernels, Debian's kernel fetched by scripts/setup.sh, /dev/kvm) and
// decides what a test does when one is missing: it skips on a developer's
// machine, and fails when CI=true or XENVMM_REQUIRE_ALL=1, so that CI never
// silently skips a test.
package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
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

// hostPATH is where HostCommand looks for the host's programs, the same
// in and out of the sandbox: Debian's system directories first, so that a
// user's PATH (pyenv, a virtualenv) does not decide which python3 runs.
const hostPATH = "/usr/sbin:/usr/bin:/sbin:/bin:/usr/local/sbin:/usr/local/bin"

// hostLiveDirs are the sandbox's own file systems that the sandbox binds
// over the host's inside its host root (sandbox.Plan.HostRoot), so that
// their paths are the same for the test and for the host's programs.
var hostLiveDirs = []string{"/proc", "/sys", "/dev", "/run", "/tmp"}

// HostCommand returns a command that runs the host's program name (a
// bare name, looked up in /usr/sbin, /usr/bin, /sbin, /bin, /usr/local;
// or an absolute path on the host) with args: directly on the host, and
// inside the nested-KVM sandbox chrooted into the host's root file system
// that the sandbox mounts read-only at $XENVMM_HOST_ROOT, where it sees
// the sandbox's own /proc, /sys, /dev, /run and /tmp (sockets a test
// serves under /run, files it writes under t.TempDir()). Paths handed to
// the program (in args, Dir or Env) must go through HostPath; the
// command's Dir starts as HostPath of the test's working directory. A
// missing program, or a sandbox started without the host root, is
// Missing (a failure in CI).
func HostCommand(t testing.TB, name string, args ...string) *exec.Cmd {
	t.Helper()
	root := os.Getenv("XENVMM_HOST_ROOT")
	if InSandbox() && root == "" {
		Missing(t, "the host's root file system inside the sandbox (xenvmm-sandbox --host-root)")
		return nil
	}
	path, err := lookHostProgram(root, name)
	if err != nil {
		Missing(t, "host program "+name+" ("+err.Error()+")")
		return nil
	}
	cmd := exec.Command(path, args...)
	if root != "" {
		cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
		cmd.Env = append(os.Environ(), "PATH="+hostPATH)
		if wd, err := os.Getwd(); err == nil {
			cmd.Dir = HostPath(wd)
		} else {
			cmd.Dir = "/"
		}
	}
	return cmd
}

// HostPath returns the path under which a program started by HostCommand
// finds the file that the test calls p. On the host that is p itself.
// Inside the sandbox, paths under /tmp, /run, /dev, /proc and /sys stay
// the same (the sandbox binds its own over the host's), paths under the
// host root ($XENVMM_HOST_ROOT/usr/...) lose that prefix, and the
// sandbox's other files (its initramfs: test binaries, testdata, guest
// kernels under /sandbox) are reached through $XENVMM_SANDBOX_ROOT, where
// the sandbox binds its root under /run.
func HostPath(p string) string {
	root := os.Getenv("XENVMM_HOST_ROOT")
	if root == "" {
		return p
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	if rel, ok := pathUnder(abs, root); ok {
		return filepath.Join("/", rel)
	}
	for _, d := range hostLiveDirs {
		if _, ok := pathUnder(abs, d); ok {
			return abs
		}
	}
	if self := os.Getenv("XENVMM_SANDBOX_ROOT"); self != "" {
		return filepath.Join(self, abs)
	}
	return abs
}

// pathUnder reports whether the clean absolute path p is dir or lies
// below it, and returns the rest.
func pathUnder(p, dir string) (string, bool) {
	if p == dir {
		return ".", true
	}
	rest, ok := strings.CutPrefix(p, strings.TrimSuffix(dir, "/")+"/")
	return rest, ok
}

// lookHostProgram finds name as a chroot into root ("" for the host's
// own root, searched directly) would: in hostPATH unless it holds a
// slash, with symbolic links (Debian's /etc/alternatives are absolute
// ones) resolved inside root (openat2's RESOLVE_IN_ROOT). It returns the
// path to execute inside root.
func lookHostProgram(root, name string) (string, error) {
	var cands []string
	switch {
	case filepath.IsAbs(name):
		cands = []string{name}
	case strings.Contains(name, "/"):
		cands = []string{HostPath(name)}
	default:
		for _, d := range filepath.SplitList(hostPATH) {
			cands = append(cands, filepath.Join(d, name))
		}
	}
	if root == "" {
		for _, c := range cands {
			if st, err := os.Stat(c); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
				return c, nil
			}
		}
		if len(cands) == 1 {
			return "", fmt.Errorf("%s: not an executable file", cands[0])
		}
		return "", fmt.Errorf("not found in %s", hostPATH)
	}
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("open %s: %w", root, err)
	}
	defer unix.Close(rfd)
	var last error
	for _, c := range cands {
		fd, err := unix.Openat2(rfd, strings.TrimPrefix(c, "/"), &unix.OpenHow{
			Flags:   unix.O_PATH | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_IN_ROOT,
		})
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			continue
		}
		if err != nil {
			last = fmt.Errorf("%s: %w", c, err)
			continue
		}
		var st unix.Stat_t
		err = unix.Fstat(fd, &st)
		unix.Close(fd)
		switch {
		case err != nil:
			last = fmt.Errorf("%s: %w", c, err)
		case st.Mode&unix.S_IFMT != unix.S_IFREG || st.Mode&0o111 == 0:
			last = fmt.Errorf("%s: not an executable file", c)
		default:
			return c, nil
		}
	}
	switch {
	case last != nil:
		return "", last
	case len(cands) > 1:
		return "", fmt.Errorf("not found in %s", hostPATH)
	}
	return "", fmt.Errorf("%s: %w", cands[0], unix.ENOENT)
}

// DebianModulesDir returns the lib/modules/<version> directory of Debian's
// kernel (its xen-blkfront, xen-netfront, ext4... modules for guests):
// $XENVMM_LINUX_MODULES inside the sandbox, else the one scripts/setup.sh
// unpacked.
func DebianModulesDir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("XENVMM_LINUX_MODULES"); d != "" {
		return d
	}
	dirs, _ := filepath.Glob(filepath.Join(CacheDir(), "kernel", "lib", "modules", "*"))
	if len(dirs) == 0 {
		Missing(t, "Debian's kernel modules (under "+filepath.Join(CacheDir(), "kernel", "lib", "modules")+")")
		return ""
	}
	sort.Strings(dirs)
	return dirs[len(dirs)-1]
}

// GuestModules are the modules of Debian's kernel that xenvmm's guest
// tests load (with their dependencies); the sandbox runner copies them in.
var GuestModules = []string{"xen_blkfront", "xen_netfront", "ext4", "crc32c_generic"}
