// Command linuxinit is the /init of the initramfs that xenvmm's Linux
// boot tests give Debian's kernel: it checks the machine it runs on from
// inside the guest and reports on the console in lines starting with
// "XENVMM-GUEST:", then powers the domain off.
package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/xenvmm/xenvmm/internal/guestxenbus"
	"golang.org/x/sys/unix"
)

func say(format string, args ...any) {
	fmt.Printf("XENVMM-GUEST: "+format+"\n", args...)
}

func fail(format string, args ...any) {
	say("FAIL "+format, args...)
	poweroff()
}

func poweroff() {
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	select {}
}

func main() {
	// Run as /sbin/poweroff or /sbin/reboot: Linux's orderly_poweroff
	// and orderly_reboot, called when the toolstack writes
	// control/shutdown, run these programs (with no stdout: write to the
	// console itself).
	switch filepath.Base(os.Args[0]) {
	case "poweroff", "reboot":
		if con, err := os.OpenFile("/dev/console", os.O_WRONLY, 0); err == nil {
			fmt.Fprintf(con, "XENVMM-GUEST: %s requested by the kernel (/sbin/%s)\n", filepath.Base(os.Args[0]), filepath.Base(os.Args[0]))
			con.Close()
		}
		unix.Sync()
		if filepath.Base(os.Args[0]) == "reboot" {
			unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
		}
		unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
		os.Exit(1)
	}
	say("init started pid=%d", os.Getpid())
	for _, m := range []struct{ src, dst, typ string }{
		{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}, {"tmpfs", "/tmp", "tmpfs"},
	} {
		os.MkdirAll(m.dst, 0o755)
		if err := unix.Mount(m.src, m.dst, m.typ, 0, ""); err != nil {
			fail("mount %s: %v", m.dst, err)
		}
	}

	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		fail("uname: %v", err)
	}
	str := func(b []byte) string { return string(bytes.TrimRight(b, "\x00")) }
	say("uname %s %s %s %s %s", str(u.Sysname[:]), str(u.Nodename[:]), str(u.Release[:]), str(u.Version[:]), str(u.Machine[:]))

	cpuinfo, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		fail("cpuinfo: %v", err)
	}
	cpus, hv := 0, false
	for _, l := range strings.Split(string(cpuinfo), "\n") {
		if strings.HasPrefix(l, "processor") {
			cpus++
		}
		if strings.HasPrefix(l, "flags") && strings.Contains(l, " hypervisor") {
			hv = true
		}
	}
	say("cpuinfo cpus=%d hypervisor=%v", cpus, hv)
	if xen, err := os.ReadFile("/sys/hypervisor/type"); err == nil {
		say("hypervisor type=%s", strings.TrimSpace(string(xen)))
	}

	// tmpfs: write and read back 4 MiB.
	data := make([]byte, 4<<20)
	rand.Read(data)
	sum := sha256.Sum256(data)
	if err := os.WriteFile("/tmp/blob", data, 0o644); err != nil {
		fail("write: %v", err)
	}
	back, err := os.ReadFile("/tmp/blob")
	if err != nil {
		fail("read: %v", err)
	}
	if sha256.Sum256(back) != sum {
		fail("tmpfs read back a different 4 MiB")
	}
	say("tmpfs ok sha256=%x", sum[:8])

	// xenvmm.action=crash|reboot on the kernel command line ends the
	// domain that way instead of with a poweroff (for xenvmm's on_* tests).
	cmdline, _ := os.ReadFile("/proc/cmdline")
	for _, f := range strings.Fields(string(cmdline)) {
		switch f {
		case "xenvmm.action=crash":
			say("crashing the kernel")
			os.WriteFile("/proc/sysrq-trigger", []byte("c"), 0)
			fail("sysrq crash did not crash")
		case "xenvmm.action=serve":
			serve()
		case "xenvmm.action=reboot":
			say("rebooting")
			unix.Sync()
			unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
			select {}
		}
	}

	// Time: the guest's view of a 5-second sleep, and its wall clock.
	say("sleep start wallclock=%d", time.Now().UnixNano())
	t0 := time.Now()
	time.Sleep(5 * time.Second)
	el := time.Since(t0)
	say("sleep done elapsed_ms=%d wallclock=%d", el.Milliseconds(), time.Now().UnixNano())
	say("poweroff")
	poweroff()
}

// serve (xenvmm.action=serve) keeps the domain running for tests that
// drive it from the host: it writes data/xenvmm-ready, answers
// data/xenvmm-go=V by writing data/xenvmm-test=guest-saw-V, and leaves
// through the kernel's own shutdown paths: control/shutdown=poweroff runs
// /sbin/poweroff and =reboot /sbin/reboot (both this program); a kernel
// that answers reboot with ctrl_alt_del sends init SIGINT instead.
func serve() {
	os.MkdirAll("/dev", 0o755)
	if err := unix.Mount("devtmpfs", "/dev", "devtmpfs", 0, ""); err != nil && err != unix.EBUSY {
		fail("mount /dev: %v", err)
	}
	os.MkdirAll("/sbin", 0o755)
	for _, name := range []string{"/sbin/poweroff", "/sbin/reboot"} {
		if err := os.Symlink("/init", name); err != nil {
			fail("symlink %s: %v", name, err)
		}
	}
	// As an init does: ctrl-alt-del (the kernel's answer to
	// control/shutdown = reboot) becomes SIGINT to init instead of an
	// immediate restart.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, unix.SIGINT, unix.SIGTERM)
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF); err != nil {
		fail("reboot(CAD_OFF): %v", err)
	}
	xs, err := guestxenbus.Open()
	if err != nil {
		fail("xenbus: %v", err)
	}
	if err := xs.Write("data/xenvmm-ready", "1"); err != nil {
		fail("xenstore write data/xenvmm-ready: %v", err)
	}
	say("serving")
	answered := false
	tick := time.NewTicker(100 * time.Millisecond)
	for {
		select {
		case s := <-sig:
			say("%v from the kernel: rebooting", s)
			unix.Sync()
			unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
			select {}
		case <-tick.C:
			if answered {
				continue
			}
			if v, err := xs.Read("data/xenvmm-go"); err == nil {
				if err := xs.Write("data/xenvmm-test", "guest-saw-"+v); err != nil {
					fail("xenstore write data/xenvmm-test: %v", err)
				}
				say("wrote data/xenvmm-test=guest-saw-%s", v)
				answered = true
			}
		}
	}
}
