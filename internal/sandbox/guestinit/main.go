// Command guestinit is PID 1 of the nested-KVM sandbox: it mounts the
// kernel file systems, loads the KVM modules, runs the sandbox plan's
// commands with their output on the console, prints result markers and
// powers the sandbox off. It is built statically (CGO_ENABLED=0) by the
// host side of package sandbox.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// These must match package sandbox (plan.go); guestinit is a separate
// static binary and does not import the host side.
const (
	planPath      = "/sandbox/plan.json"
	markerReady   = "XENVMM-SANDBOX ready kvm="
	markerCommand = "XENVMM-SANDBOX command "
	markerDone    = "XENVMM-SANDBOX done failures="
	hostRootTag   = "hostroot"
	hostRootPath  = "/host"
	selfRootPath  = "/run/sandbox-root"
)

// hostRootOptions mount the host's root: read-only, and cached loosely
// (the page cache keeps what a program read, so the next program that
// loads the same libraries reads no more over 9p; the host's files do not
// change while a test runs, and what tests write lives in the sandbox's
// own /tmp and /run). msize is the largest the 6.1 virtio transport takes.
const hostRootOptions = "trans=virtio,version=9p2000.L,cache=loose,msize=512000"

// liveDirs are the sandbox's own file systems that hide the host's under
// hostRootPath.
var liveDirs = []string{"/proc", "/sys", "/dev", "/run", "/tmp"}

type plan struct {
	Modules         []string  `json:"modules"`
	Env             []string  `json:"env"`
	Commands        []command `json:"commands"`
	HostRoot        bool      `json:"host_root"`
	HostRootModules []string  `json:"host_root_modules"`
}

type command struct {
	Name string   `json:"name"`
	Argv []string `json:"argv"`
	Dir  string   `json:"dir"`
	Env  []string `json:"env"`
}

func main() {
	failures := run()
	fmt.Printf("\n%s%d\n", markerDone, failures)
	unix.Sync()
	// QEMU runs with -no-reboot: a restart ends it.
	unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	// Not reached; PID 1 must never exit.
	select {}
}

func run() int {
	for _, m := range []struct{ src, dst, typ string }{
		{"proc", "/proc", "proc"},
		{"sysfs", "/sys", "sysfs"},
		{"devtmpfs", "/dev", "devtmpfs"},
		{"tmpfs", "/tmp", "tmpfs"},
		{"tmpfs", "/run", "tmpfs"},
	} {
		os.MkdirAll(m.dst, 0o755)
		if err := unix.Mount(m.src, m.dst, m.typ, 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
			fmt.Printf("guestinit: mount %s: %v\n", m.dst, err)
		}
	}
	os.MkdirAll("/dev/shm", 0o1777)
	unix.Mount("tmpfs", "/dev/shm", "tmpfs", 0, "")
	os.Symlink("/proc/self/fd", "/dev/fd")

	data, err := os.ReadFile(planPath)
	if err != nil {
		fmt.Printf("guestinit: %v\n", err)
		return 1
	}
	var p plan
	if err := json.Unmarshal(data, &p); err != nil {
		fmt.Printf("guestinit: %s: %v\n", planPath, err)
		return 1
	}
	failures := loadModules(p.Modules)
	kvm := 0
	for i := 0; i < 50; i++ { // devtmpfs creates the node asynchronously
		if _, err := os.Stat("/dev/kvm"); err == nil {
			kvm = 1
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if p.HostRoot {
		if err := mountHostRoot(); err != nil {
			fmt.Printf("guestinit: the host's root file system: %v\n", err)
			failures++
		} else {
			p.Env = append(p.Env, "XENVMM_HOST_ROOT="+hostRootPath, "XENVMM_SANDBOX_ROOT="+selfRootPath)
		}
	}
	fmt.Printf("%s%d\n", markerReady, kvm)

	for _, c := range p.Commands {
		code := runCommand(c, p.Env)
		fmt.Printf("\n%s%s exit=%d\n", markerCommand, c.Name, code)
		if code != 0 {
			failures++
		}
	}
	return failures
}

// loadModules loads mods in order and returns the number that failed.
func loadModules(mods []string) int {
	failures := 0
	for _, m := range mods {
		if err := insmod(m); err != nil {
			fmt.Printf("guestinit: insmod %s: %v\n", m, err)
			failures++
		}
	}
	return failures
}

// mountHostRoot mounts the host's root file system, which QEMU exports
// read-only over virtio-9p, at hostRootPath and binds the sandbox's live
// file systems over the host's there (see sandbox.Plan.HostRoot). The
// sandbox's own mounts are made shared first, so that what a test mounts
// later under /tmp or /run appears under hostRootPath too.
func mountHostRoot() error {
	for _, d := range liveDirs {
		if err := unix.Mount("", d, "", unix.MS_SHARED|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("make %s shared: %w", d, err)
		}
	}
	if err := os.MkdirAll(selfRootPath, 0o755); err != nil {
		return err
	}
	// Not recursive: the initramfs's own files, without /proc, /run ...
	if err := unix.Mount("/", selfRootPath, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind / at %s: %w", selfRootPath, err)
	}
	if err := os.MkdirAll(hostRootPath, 0o755); err != nil {
		return err
	}
	var err error
	for i := 0; i < 50; i++ {
		err = unix.Mount(hostRootTag, hostRootPath, "9p", unix.MS_RDONLY, hostRootOptions)
		// ENOENT: no virtio-9p channel with the tag (yet).
		if !errors.Is(err, unix.ENOENT) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("mount 9p %s at %s: %w", hostRootTag, hostRootPath, err)
	}
	for _, d := range liveDirs {
		if err := unix.Mount(d, hostRootPath+d, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s at %s: %w", d, hostRootPath+d, err)
		}
	}
	return nil
}

func insmod(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	err = unix.FinitModule(int(f.Fd()), "", 0)
	if errors.Is(err, unix.EEXIST) {
		return nil
	}
	return err
}

func runCommand(c command, env []string) int {
	if len(c.Argv) == 0 {
		fmt.Printf("guestinit: command %q has no argv\n", c.Name)
		return 127
	}
	cmd := exec.Command(c.Argv[0], c.Argv[1:]...)
	cmd.Dir = c.Dir
	if cmd.Dir == "" {
		cmd.Dir = filepath.Dir(c.Argv[0])
	}
	cmd.Env = append(append(append(os.Environ(), "XENVMM_SANDBOX=1", "HOME=/tmp", "TMPDIR=/tmp", "PATH=/sandbox/bin:/bin:/sbin:/usr/bin:/usr/sbin"), env...), c.Env...)
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stdout
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ee.ExitCode() >= 0 {
				return ee.ExitCode()
			}
			return 128 + int(ee.Sys().(unix.WaitStatus).Signal())
		}
		fmt.Printf("guestinit: %s: %v\n", c.Name, err)
		return 127
	}
	return 0
}
