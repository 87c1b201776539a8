package vmm

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/xenvmm/xenvmm/config"
	"github.com/xenvmm/xenvmm/devices/tap/taptest"
	"github.com/xenvmm/xenvmm/internal/ffs"
	"github.com/xenvmm/xenvmm/internal/testenv"
	"github.com/xenvmm/xenvmm/loader"
	"github.com/xenvmm/xenvmm/xenabi/abi"
)

// realGuest is a domain running one of the real PV kernels in
// ../shared/guests (testenv.GuestsDir) with an interactive console.
type realGuest struct {
	d    *Domain
	scr  *screen
	done chan struct{} // closed when Run has returned exit and err
	exit Exit
	err  error
}

// startRealGuest builds and starts a domain for the named guest kernel;
// mod adjusts its options. The domain is stopped when the test ends.
func startRealGuest(t *testing.T, kernel string, memMiB int64, cmdline string, timeout time.Duration, mod func(*Options)) *realGuest {
	t.Helper()
	testenv.RequireKVM(t)
	img, err := loader.LoadFile(testenv.Guest(t, kernel))
	if err != nil {
		t.Fatal(err)
	}
	var echo io.Writer
	if testing.Verbose() {
		echo = os.Stdout
	}
	scr := newScreen(echo)
	opts := Options{
		Name: "guest-test", MemoryMiB: memMiB, Kernel: img, Cmdline: cmdline,
		Console: scr, ConsoleIn: scr.Input(), Log: testLogger(t), Trace: true,
		XenstoreSocket: filepath.Join(t.TempDir(), "xs.sock"),
	}
	if mod != nil {
		mod(&opts)
	}
	// Taps are created in a network namespace of the test's own.
	var ns *taptest.Netns
	if len(opts.Vifs) > 0 {
		taptest.Require(t)
		ns = taptest.New(t)
	}
	var d *Domain
	build := func() (err error) {
		d, err = New(opts)
		return err
	}
	if ns != nil {
		err = ns.Do(build)
	} else {
		err = build()
	}
	if err != nil {
		t.Fatal(err)
	}
	g := &realGuest{d: d, scr: scr, done: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	go func() {
		g.exit, g.err = d.Run(ctx)
		close(g.done)
	}()
	t.Cleanup(func() {
		cancel()
		scr.close()
		select {
		case <-g.done:
			if t.Failed() && g.err == nil {
				// A hung guest: where each vCPU was (Run's stall report).
				t.Logf("domain ended: %v", g.exit)
				g.logTrace(t)
			}
		case <-time.After(30 * time.Second):
		}
		if ns != nil {
			ns.Do(d.Close)
		} else {
			d.Close()
		}
		scr.endLine()
	})
	return g
}

// wait waits for the domain to end.
func (g *realGuest) wait(t *testing.T, timeout time.Duration) Exit {
	t.Helper()
	select {
	case <-g.done:
		if g.err != nil {
			t.Fatalf("domain: %v", g.err)
		}
		return g.exit
	case <-time.After(timeout):
		t.Fatalf("the domain did not end within %v; console:\n%s", timeout, g.scr.tail(30))
	}
	return Exit{}
}

// logTrace logs the hypercalls the guest made (for the closing notes:
// which parts of the Xen ABI each guest uses).
func (g *realGuest) logTrace(t *testing.T) {
	for _, e := range g.d.Trace() {
		t.Logf("hypercall %-30s subop %-3d ×%d", e.Hypercall, e.Subop, e.Count)
	}
}

// TestKVMNetBSDInstall boots NetBSD 5.1's INSTALL_XEN3_DOMU (the
// installer's miniroot is in the kernel) with no disk, as a user who
// downloaded it would: the banner, the Xen devices attach, sysinst draws
// its first screen; the test answers it through the console, leaves the
// installer for its shell and halts NetBSD, which powers the domain off.
func TestKVMNetBSDInstall(t *testing.T) {
	start := time.Now()
	g := startRealGuest(t, "netbsd-5.1-amd64-INSTALL_XEN3_DOMU.gz", 128, "", 20*time.Minute, func(o *Options) {
		o.Vifs = []config.Vif{parseVif(t, "mac=00:16:3e:51:00:01")}
	})
	s := g.scr
	s.expect(t, `Copyright \(c\) 1996, .*\n.*\n +The NetBSD Foundation, Inc\.  All rights reserved\.`, 5*time.Minute)
	s.expect(t, `NetBSD 5\.1 \(INSTALL_XEN3_DOMU\)`, time.Minute)
	s.expect(t, `hypervisor0 at mainbus0: Xen version 4\.`, time.Minute)
	s.expect(t, `xenbus0 at hypervisor0`, time.Minute)
	s.expect(t, `xencons0 at hypervisor0`, time.Minute)
	s.expect(t, `xennet0 at xenbus0 id 0: Xen Virtual Network Interface`, time.Minute)
	s.expect(t, `xennet0: MAC address 00:16:3e:51:00:01`, time.Minute)
	s.expect(t, `root on md0a`, 5*time.Minute)
	booted := time.Since(start)
	s.expect(t, `Welcome to sysinst, the NetBSD-5\.1 system installation tool`, 10*time.Minute)
	s.expect(t, `a: Installation messages in English`, 2*time.Minute)
	first := time.Since(start)
	t.Logf("NetBSD: root mounted after %v, sysinst's first screen after %v", booted.Round(time.Second), first.Round(time.Second))
	// Choose English: sysinst draws its main menu.
	s.send(t, "a\r")
	s.expect(t, `NetBSD-5\.1 Install System`, 2*time.Minute)
	s.expect(t, `x: Exit Install System`, time.Minute)
	// "Exit Install System": sysinst ends, the miniroot's shell prompt
	// comes.
	s.send(t, "x\r")
	s.expect(t, `# $`, 2*time.Minute)
	s.send(t, "echo xenvmm-$((6*7))\n")
	s.expect(t, `xenvmm-42`, time.Minute)
	s.send(t, "halt -p\n")
	e := g.wait(t, 5*time.Minute)
	if e.Reason != abi.SHUTDOWN_poweroff {
		t.Fatalf("domain ended with %v, want poweroff; console:\n%s", e, s.tail(30))
	}
	t.Logf("NetBSD installer: halted after %v", time.Since(start).Round(time.Second))
	g.logTrace(t)
}

// TestKVMNetBSDRootPrompt boots NetBSD 5.1's XEN3_DOMU (the seeds'
// kernel) with no disk: it finds no root device and asks for one on the
// console. The test enters ddb from that prompt; the backtrace names
// the kernel's functions, which it can only do with the symbol table
// that xenvmm's builder loaded after the kernel (BSD_SYMTAB=yes in
// __xen_guest). ddb's "reboot 0x808" (RB_HALT|RB_POWERDOWN) then powers
// the domain off.
func TestKVMNetBSDRootPrompt(t *testing.T) {
	start := time.Now()
	g := startRealGuest(t, "netbsd-5.1-amd64-XEN3_DOMU.gz", 128, "", 15*time.Minute, func(o *Options) {
		o.Vifs = []config.Vif{parseVif(t, "mac=00:16:3e:51:00:02")}
	})
	s := g.scr
	s.expect(t, `Loaded initial symtab at 0x[0-9a-f]+, strtab at 0x[0-9a-f]+, # entries (\d+)`, 5*time.Minute)
	s.expect(t, `NetBSD 5\.1 \(XEN3_DOMU\)`, time.Minute)
	s.expect(t, `hypervisor0 at mainbus0: Xen version 4\.`, time.Minute)
	s.expect(t, `xennet0 at xenbus0 id 0: Xen Virtual Network Interface`, time.Minute)
	s.expect(t, `xennet0: MAC address 00:16:3e:51:00:02`, time.Minute)
	s.expect(t, `root device: $`, 10*time.Minute)
	t.Logf("NetBSD XEN3_DOMU: root device prompt after %v", time.Since(start).Round(time.Second))
	s.send(t, "ddb\r")
	s.expect(t, `Stopped in pid 0\.1 \(system\) at +netbsd:breakpoint\+0x[0-9a-f]+`, time.Minute)
	s.expect(t, `db> $`, time.Minute)
	s.send(t, "bt\r")
	// The frames of the prompt itself: ddb's entry, the root-device
	// question in setroot(), the kernel's main().
	bt := s.expect(t, `(?s)(breakpoint\(\) at netbsd:breakpoint.*?)db> $`, time.Minute)[1]
	for _, fn := range []string{"setroot", "main"} {
		if !regexp.MustCompile(`(?m)^` + fn + `\(\) at netbsd:` + fn + `\+0x[0-9a-f]+$`).MatchString(bt) {
			t.Errorf("ddb backtrace lacks the symbol %s():\n%s", fn, bt)
		}
	}
	t.Logf("ddb backtrace:\n%s", bt)
	s.send(t, "reboot 0x808\r")
	e := g.wait(t, 2*time.Minute)
	if e.Reason != abi.SHUTDOWN_poweroff {
		t.Fatalf("domain ended with %v, want poweroff; console:\n%s", e, s.tail(30))
	}
	g.logTrace(t)
}

// netbsdInitCFlags build testdata/netbsdinit/init.c: a static NetBSD/amd64
// ELF with no libc, its NetBSD ident note the only note, and two PT_LOAD
// segments (text, data): NetBSD 5's exec_elf loads no more than two, and
// binutils' default -z separate-code makes four (exec then fails with
// ENOEXEC).
var netbsdInitCFlags = []string{
	"-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror",
	"-ffreestanding", "-nostdlib", "-static", "-fno-pic", "-fno-pie", "-no-pie",
	"-fno-stack-protector", "-fno-asynchronous-unwind-tables", "-fcf-protection=none",
	"-mgeneral-regs-only", "-Wl,--build-id=none", "-Wl,-z,noexecstack", "-Wl,-z,noseparate-code",
}

// netbsdRootImage builds the NetBSD init with the host's gcc and makes
// an FFS (UFS1) image with Debian's makefs holding /sbin/init,
// /dev/console (char 0,0, as NetBSD/amd64's MAKEDEV makes it) and
// /xenvmm/token with the given text.
func netbsdRootImage(t *testing.T, token string) string {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	for _, d := range []string{"sbin", "dev", "xenvmm"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	src, err := filepath.Abs(filepath.Join("testdata", "netbsdinit", "init.c"))
	if err != nil {
		t.Fatal(err)
	}
	args := append(append([]string{}, netbsdInitCFlags...), "-o", testenv.HostPath(filepath.Join(root, "sbin", "init")), testenv.HostPath(src))
	if out, err := testenv.HostCommand(t, "gcc", args...).CombinedOutput(); err != nil {
		t.Fatalf("gcc %v: %v\n%s", args, err, out)
	}
	if err := os.WriteFile(filepath.Join(root, "xenvmm", "token"), []byte(token+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := filepath.Join(dir, "spec")
	if err := os.WriteFile(spec, []byte(`/set uid=0 gid=0
. type=dir mode=0755
./dev type=dir mode=0755
./dev/console type=char mode=0600 device=0
./sbin type=dir mode=0755
./sbin/init type=file mode=0555
./xenvmm type=dir mode=0755
./xenvmm/token type=file mode=0644
`), 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "netbsd-root.img")
	margs := []string{"-t", "ffs", "-o", "version=1", "-s", "16m", "-F", testenv.HostPath(spec), testenv.HostPath(img), testenv.HostPath(root)}
	if out, err := testenv.HostCommand(t, "makefs", margs...).CombinedOutput(); err != nil {
		t.Fatalf("makefs %v: %v\n%s", margs, err, out)
	}
	return img
}

// TestKVMNetBSDDiskRoot boots NetBSD 5.1's XEN3_DOMU as the seeds do,
// with root = "xbd0" on disk = [ 'file:IMG,0x1,w' ], an FFS image made by
// makefs: NetBSD's xbd finds the disk through blkback, mounts it as
// root and runs the test's /sbin/init, which reads a token the host
// wrote, remounts / read-write, writes a file, fsyncs and halts. The
// host then finds the file, every byte, in the image.
func TestKVMNetBSDDiskRoot(t *testing.T) {
	token := fmt.Sprintf("xenvmm-%d", time.Now().UnixNano())
	img := netbsdRootImage(t, token)
	start := time.Now()
	g := startRealGuest(t, "netbsd-5.1-amd64-XEN3_DOMU.gz", 128, "root=xbd0", 15*time.Minute, func(o *Options) {
		o.Disks = []config.Disk{parseDisk(t, "file:"+img+",0x1,w")}
	})
	s := g.scr
	s.expect(t, `NetBSD 5\.1 \(XEN3_DOMU\)`, 5*time.Minute)
	s.expect(t, `xbd0 at xenbus0 id 1: Xen Virtual Block Device Interface`, 5*time.Minute)
	s.expect(t, `boot device: xbd0\n`, 2*time.Minute)
	s.expect(t, `root on xbd0a`, 5*time.Minute)
	s.expect(t, `XENVMM-NETBSD: init started pid=1\n`, 5*time.Minute)
	s.expect(t, `XENVMM-NETBSD: token `+token+`\n`, time.Minute)
	s.expect(t, `XENVMM-NETBSD: root read-write\n`, time.Minute)
	s.expect(t, `XENVMM-NETBSD: wrote bytes=131072\n`, 2*time.Minute)
	e := g.wait(t, 2*time.Minute)
	if e.Reason != abi.SHUTDOWN_poweroff {
		t.Fatalf("domain ended with %v, want poweroff; console:\n%s", e, s.tail(30))
	}
	t.Logf("NetBSD on xbd0: init ran and halted after %v", time.Since(start).Round(time.Second))

	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	fs, err := ffs.Open(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	got, err := fs.ReadFile("/xenvmm/written")
	if err != nil {
		t.Fatalf("the file NetBSD wrote: %v", err)
	}
	if want := netbsdPattern(256); !bytes.Equal(got, want) {
		t.Fatalf("/xenvmm/written in the image: %d bytes, want %d; first difference at %d", len(got), len(want), firstDiff(got, want))
	}
	t.Logf("the image holds NetBSD's /xenvmm/written, all %d bytes", len(got))
	g.logTrace(t)
}

// netbsdPattern is what testdata/netbsdinit/init.c writes: blocks of 512
// bytes, block i filled with "xenvmm netbsd block %08d\n" repeated.
func netbsdPattern(blocks int) []byte {
	var out []byte
	for i := 0; i < blocks; i++ {
		line := fmt.Sprintf("xenvmm netbsd block %08d\n", i)
		for k := 0; k < 512; k++ {
			out = append(out, line[k%len(line)])
		}
	}
	return out
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
