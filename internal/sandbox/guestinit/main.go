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
)

type plan struct {
	Modules  []string  `json:"modules"`
	Env      []string  `json:"env"`
	Commands []command `json:"commands"`
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
	failures := 0
	for _, m := range p.Modules {
		if err := insmod(m); err != nil {
			fmt.Printf("guestinit: insmod %s: %v\n", m, err)
			failures++
		}
	}
	kvm := 0
	for i := 0; i < 50; i++ { // devtmpfs creates the node asynchronously
		if _, err := os.Stat("/dev/kvm"); err == nil {
			kvm = 1
			break
		}
		time.Sleep(20 * time.Millisecond)
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
