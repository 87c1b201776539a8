package vmm

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xenvmm/xenvmm/config"
	"github.com/xenvmm/xenvmm/internal/testenv"
	"github.com/xenvmm/xenvmm/internal/testguest"
	"github.com/xenvmm/xenvmm/loader"
	"github.com/xenvmm/xenvmm/xenabi/abi"
)

// linuxInitramfs is testenv.LinuxInitramfs.
func linuxInitramfs(t *testing.T, prog string, modules ...string) []byte {
	t.Helper()
	return testguest.LinuxInitramfs(t, prog, modules...)
}

// bootLinux boots Debian's kernel with the given initramfs and returns how
// it ended and what it printed.
func bootLinux(t *testing.T, ramdisk []byte, memMiB int64, timeout time.Duration) (Exit, *lineRecorder, *Domain, time.Time) {
	return bootLinuxWith(t, ramdisk, memMiB, timeout, "", nil)
}

// bootLinuxWith is bootLinux with extra kernel arguments and disks.
func bootLinuxWith(t *testing.T, ramdisk []byte, memMiB int64, timeout time.Duration, extra string, disks []config.Disk) (Exit, *lineRecorder, *Domain, time.Time) {
	t.Helper()
	d, con := newLinux(t, ramdisk, memMiB, extra, func(o *Options) { o.Disks = disks })
	exit, start := runLinux(t, d, timeout)
	return exit, con, d, start
}

// newLinux builds a domain for Debian's kernel with the given initramfs;
// mod adjusts its options.
func newLinux(t *testing.T, ramdisk []byte, memMiB int64, extra string, mod func(*Options)) (*Domain, *lineRecorder) {
	t.Helper()
	opts, con := linuxOptions(t, ramdisk, memMiB, extra)
	if mod != nil {
		mod(&opts)
	}
	d, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d, con
}

// linuxOptions are the options of a domain running Debian's kernel with
// the given initramfs, its console recorded. The domain's xenstore socket
// is in the test's temporary directory.
func linuxOptions(t *testing.T, ramdisk []byte, memMiB int64, extra string) (Options, *lineRecorder) {
	t.Helper()
	testenv.RequireKVM(t)
	img, err := loader.LoadFile(testenv.DebianVmlinuz(t))
	if err != nil {
		t.Fatal(err)
	}
	con := &lineRecorder{}
	if testing.Verbose() {
		con.echo = os.Stdout
	}
	return Options{
		Name: "linux-test", MemoryMiB: memMiB, Kernel: img, Ramdisk: ramdisk,
		Cmdline: strings.TrimSpace("console=hvc0 rdinit=/init " + extra), Console: con, Log: testLogger(t), Trace: true,
		XenstoreSocket: filepath.Join(t.TempDir(), "xs.sock"),
	}, con
}

// runLinux runs d for at most timeout, then closes it (releasing its
// disks' images and taps for the next boot).
func runLinux(t *testing.T, d *Domain, timeout time.Duration) (Exit, time.Time) {
	t.Helper()
	start := time.Now()
	exit, err := runClose(d, timeout)
	if err != nil {
		t.Fatal(err)
	}
	return exit, start
}

func runClose(d *Domain, timeout time.Duration) (Exit, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	exit, err := d.Run(ctx)
	d.Close()
	return exit, err
}

// TestKVMLinuxBoot boots Debian's unmodified linux-image-amd64 as a PV
// guest to a userspace /init that checks the machine from inside and
// powers off.
func TestKVMLinuxBoot(t *testing.T) {
	exit, con, d, start := bootLinux(t, linuxInitramfs(t, "linuxinit"), 256, 4*time.Minute)
	if exit.Reason != abi.SHUTDOWN_poweroff {
		t.Fatalf("domain ended with %v, want poweroff; console tail:\n%s", exit, con.tail(40))
	}
	must := func(pattern string) []string {
		t.Helper()
		_, m, ok := con.find(regexp.MustCompile(pattern))
		if !ok {
			t.Fatalf("console lacks %q; tail:\n%s", pattern, con.tail(40))
		}
		return m
	}
	must(`Linux version 6\.1\.\S+-amd64`)
	must(`Hypervisor detected: Xen PV`)
	must(`Booting (paravirtualized )?kernel on Xen`)
	must(`xen:events: Using FIFO-based ABI`)
	started, _, _ := con.find(regexp.MustCompile(`XENVMM-GUEST: init started pid=1$`))
	must(`XENVMM-GUEST: uname Linux \S+ 6\.1\.\S+ .* x86_64`)
	must(`XENVMM-GUEST: cpuinfo cpus=1 hypervisor=true`)
	must(`XENVMM-GUEST: hypervisor type=xen`)
	must(`XENVMM-GUEST: tmpfs ok`)
	startLine, sm, _ := con.find(regexp.MustCompile(`XENVMM-GUEST: sleep start wallclock=(\d+)`))
	dm := must(`XENVMM-GUEST: sleep done elapsed_ms=(\d+) wallclock=(\d+)`)
	doneRec, _, _ := con.find(regexp.MustCompile(`XENVMM-GUEST: sleep done`))
	must(`XENVMM-GUEST: poweroff`)

	// The guest's `sleep 5` took 5 s of host time (±10%), and the guest
	// measured the same.
	hostMS := doneRec.at.Sub(startLine.at).Milliseconds()
	guestMS, _ := strconv.ParseInt(dm[1], 10, 64)
	if hostMS < 4500 || hostMS > 5500 {
		t.Errorf("sleep 5 took %d ms of host time, want 5000±10%%", hostMS)
	}
	if guestMS < 4500 || guestMS > 5500 {
		t.Errorf("the guest measured its 5 s sleep as %d ms", guestMS)
	}
	// The guest's wall clock agrees with the host's: the offset is the
	// same before and after the sleep (no drift: the guest clock runs at
	// the host's rate), and smaller than the boot. Linux reads the
	// wallclock once at boot and then counts jiffies until it switches to
	// the xen clocksource (at fs_initcall): under TCG that early boot is
	// slow, and late timer ticks make it lose time — about 1.5 s on an
	// idle 2-core machine, 14 s under heavy load — which Linux never
	// corrects (a domU does not re-read the wallclock).
	var offsets []time.Duration
	for _, c := range []struct {
		at   time.Time
		wall string
	}{{startLine.at, sm[1]}, {doneRec.at, dm[2]}} {
		ns, _ := strconv.ParseInt(c.wall, 10, 64)
		offsets = append(offsets, time.Duration(c.at.UnixNano()-ns))
	}
	if drift := offsets[1] - offsets[0]; drift > 100*time.Millisecond || drift < -100*time.Millisecond {
		t.Errorf("guest wall clock drifted %v against the host's over a 5 s sleep", drift)
	}
	if o, boot := offsets[0], started.at.Sub(start); o > boot || o < -time.Second {
		t.Errorf("guest wall clock is %v off the host's (boot took %v)", o, boot)
	}
	t.Logf("guest wall clock: %v behind the host's before the sleep, %v after", offsets[0].Round(time.Millisecond), offsets[1].Round(time.Millisecond))
	t.Logf("boot to /init: %v of host time; whole run %v; guest sleep 5 s: host %d ms, guest %d ms",
		started.at.Sub(start).Round(time.Millisecond), time.Since(start).Round(time.Millisecond), hostMS, guestMS)
	for i, e := range d.Trace() {
		if i >= 25 {
			break
		}
		t.Logf("hypercall %-24s subop %-3d ×%d", e.Hypercall, e.Subop, e.Count)
	}
}
