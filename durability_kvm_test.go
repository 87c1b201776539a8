package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/urfave/cli/v3"
	"github.com/xenvmm/xenvmm/internal/testenv"
	"github.com/xenvmm/xenvmm/internal/testguest"
)

// TestMain lets a test run this binary as the xenvmm command
// ($XENVMM_TEST_AS_XENVMM=1), for tests that need xenvmm in a process of
// its own (to kill it).
func TestMain(m *testing.M) {
	if os.Getenv("XENVMM_TEST_AS_XENVMM") == "1" {
		err := newApp(os.Stdout, os.Stderr).Run(context.Background(), append([]string{"xenvmm"}, os.Args[1:]...))
		var ec cli.ExitCoder
		switch {
		case err == nil:
			os.Exit(0)
		case errors.As(err, &ec):
			fmt.Fprintln(os.Stderr, "xenvmm:", err)
			os.Exit(ec.ExitCode())
		default:
			fmt.Fprintln(os.Stderr, "xenvmm:", err)
			os.Exit(1)
		}
	}
	os.Exit(m.Run())
}

// TestKVMKill9AfterFsync: the guest writes 16 MiB to its disk and fsyncs;
// the moment it says fsync returned, xenvmm gets SIGKILL. Every byte the
// guest wrote is in the image: blkback answers a flush only after
// fdatasync, so nothing the guest was told is durable lives only in
// xenvmm's memory.
func TestKVMKill9AfterFsync(t *testing.T) {
	testenv.RequireKVM(t)
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 64<<20); err != nil {
		t.Fatal(err)
	}
	rd := filepath.Join(dir, "initrd.gz")
	if err := os.WriteFile(rd, testguest.LinuxInitramfs(t, "blkcheck", "xen_blkfront"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "kill9.cfg")
	if err := os.WriteFile(cfg, []byte(`name = "kill9"
kernel = "`+testenv.DebianVmlinuz(t)+`"
ramdisk = "`+rd+`"
memory = 256
disk = [ 'file:`+img+`,xvda,w' ]
extra = "console=hvc0 rdinit=/init xenvmm.blk=raw-fsync-hang"
`), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "run", "--timeout", "5m", cfg)
	cmd.Env = append(os.Environ(), "XENVMM_TEST_AS_XENVMM=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var console []string
	killed := false
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		console = append(console, sc.Text())
		if strings.Contains(sc.Text(), "XENVMM-GUEST: fsync returned") {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
			break
		}
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		t.Fatal("xenvmm did not end within a minute of SIGKILL")
	}
	tail := console
	if len(tail) > 30 {
		tail = tail[len(tail)-30:]
	}
	if !killed {
		t.Fatalf("the guest never said fsync returned (xenvmm: %v); console tail:\n%s\nstderr:\n%s", err, strings.Join(tail, "\n"), stderr.String())
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("xenvmm ended with %v, want killed by SIGKILL", err)
	}
	got, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	want := testguest.BlockPattern(16 << 20)
	if !bytes.Equal(got[:len(want)], want) {
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("after kill -9 the image differs from what the guest fsynced at byte %#x (block %d)", i, i/4096)
			}
		}
	}
}
