package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xenvmm/xenvmm/internal/testenv"
	"github.com/xenvmm/xenvmm/vmm"
)

// guestPath returns the xenstore path of the guest domain served on sock
// and the value of its node rel, or "" while the socket, the domain or
// the node is not there.
func guestPath(sock, rel string) (string, string) {
	c, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		return "", ""
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	x := &xsConn{c: c}
	dir, err := x.call(xsDirectory, []byte("/local/domain\x00"))
	if err != nil {
		return "", ""
	}
	for _, d := range strings.Split(strings.TrimRight(string(dir), "\x00"), "\x00") {
		if d == "" || d == "0" {
			continue
		}
		p := "/local/domain/" + d
		v, err := x.call(xsRead, []byte(p+"/"+rel+"\x00"))
		if err != nil {
			return p, ""
		}
		return p, string(v)
	}
	return "", ""
}

// waitNode waits until the guest's node rel reads want.
func waitNode(t *testing.T, sock, rel, want string, done <-chan struct{}) string {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			t.Fatalf("the domain ended while the test waited for %s = %q", rel, want)
		default:
		}
		if p, v := guestPath(sock, rel); v == want {
			return p
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("no %s = %q in the guest's xenstore after 3 minutes", rel, want)
	return ""
}

// pyxsGuestScript, run with the guest's domain path, watches the node the
// guest writes, asks the guest to write it, and sees the watch fire with
// the guest's value; then two overlapping transactions on one node: the
// first commit wins, the second gets EAGAIN.
const pyxsGuestScript = `
import signal, sys
from pyxs import Client
signal.alarm(120)
dp = sys.argv[1].encode()
node = dp + b"/data/xenvmm-test"
with Client() as c:
    m = c.monitor()
    m.watch(node, b"tok")
    events = m.wait()
    assert next(events) == (node, b"tok")
    c.write(dp + b"/data/xenvmm-go", b"42")
    while True:
        ev = next(events)
        assert ev == (node, b"tok"), ev
        if c.exists(node) and c.read(node) == b"guest-saw-42":
            break
    print("watch fired: guest wrote", c.read(node).decode())
    with Client() as c2:
        c.transaction()
        c2.transaction()
        c.read(dp + b"/data/xenvmm-go")
        c2.read(dp + b"/data/xenvmm-go")
        c.write(dp + b"/data/xenvmm-go", b"first")
        c2.write(dp + b"/data/xenvmm-go", b"second")
        assert c.commit() is True
        assert c2.commit() is False, "the second overlapping transaction committed"
    assert c.read(dp + b"/data/xenvmm-go") == b"first"
    print("transactions: second got EAGAIN")
`

// TestKVMControlPlaneLinux drives a running Linux PV guest from the host
// as xl users do: Debian's xenstore-ls lists its tree through xenvmm's
// socket, a python3-pyxs watch fires when the guest writes a node,
// overlapping transactions conflict, `xenvmm shutdown -R` makes the guest
// reboot itself (xenvmm rebuilds it, on_reboot = "restart"), and `xenvmm
// shutdown` powers it off through its own /sbin/poweroff.
func TestKVMControlPlaneLinux(t *testing.T) {
	testenv.RequireKVM(t)
	lsCmd := testenv.HostCommand(t, "xenstore-ls")
	pyCmd := testenv.HostCommand(t, "python3", "-c", "import pyxs")
	if out, err := pyCmd.CombinedOutput(); err != nil {
		testenv.Missing(t, "Debian's python3-pyxs ("+strings.TrimSpace(string(out))+")")
	}
	cfg := writeLinuxConfig(t, `extra = "console=hvc0 rdinit=/init xenvmm.action=serve"
on_reboot = "restart"`)
	sock := vmm.XenstoreSocketPath("cli-test")
	xsEnv := append(os.Environ(), "XENSTORED_PATH="+testenv.HostPath(sock))

	type result struct {
		code int
		out  string
	}
	ended := make(chan struct{})
	res := make(chan result, 1)
	go func() {
		code, out := runCLI(t, "run", "--timeout", "6m", cfg)
		close(ended)
		res <- result{code, out}
	}()
	dp := waitNode(t, sock, "data/xenvmm-ready", "1", ended)

	// Debian's xenstore-ls, through the socket.
	lsCmd.Args = append(lsCmd.Args, "-s", dp)
	lsCmd.Env = xsEnv
	out, err := lsCmd.CombinedOutput()
	if err != nil {
		t.Fatalf("xenstore-ls -s %s: %v\n%s", dp, err, out)
	}
	for _, want := range []string{`name = "cli-test"`, `xenvmm-ready = "1"`, "memory", "control", "console"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("xenstore-ls -s %s lacks %q:\n%s", dp, want, out)
		}
	}

	// python3-pyxs: a watch the guest's write fires; transactions.
	script := filepath.Join(t.TempDir(), "xs.py")
	if err := os.WriteFile(script, []byte(pyxsGuestScript), 0o644); err != nil {
		t.Fatal(err)
	}
	py := testenv.HostCommand(t, "python3", testenv.HostPath(script), dp)
	py.Env = xsEnv
	out, err = py.CombinedOutput()
	t.Logf("pyxs:\n%s", out)
	if err != nil {
		t.Fatalf("pyxs against the running guest: %v", err)
	}

	// xenvmm shutdown -R: the guest reboots itself; xenvmm rebuilds it.
	if code, out := runCLI(t, "shutdown", "-R", "cli-test"); code != 0 {
		t.Fatalf("xenvmm shutdown -R: exit %d: %s", code, out)
	}
	// The rebuilt domain has a fresh xenstore: no data/xenvmm-go yet.
	deadline := time.Now().Add(3 * time.Minute)
	for {
		if p, v := guestPath(sock, "data/xenvmm-ready"); v == "1" {
			if _, g := guestPath(sock, "data/xenvmm-go"); g == "" {
				dp = p
				break
			}
		}
		select {
		case <-ended:
			t.Fatal("the domain ended after shutdown -R instead of rebooting (on_reboot = restart)")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the guest did not come back within 3 minutes after shutdown -R")
		}
		time.Sleep(200 * time.Millisecond)
	}

	// xenvmm shutdown: the guest powers itself off.
	if code, out := runCLI(t, "shutdown", "cli-test"); code != 0 {
		t.Fatalf("xenvmm shutdown: exit %d: %s", code, out)
	}
	r := <-res
	if r.code != 0 {
		t.Fatalf("xenvmm run: exit %d after shutdown, want 0 (poweroff); console tail:\n%s", r.code, lastLines(r.out, 30))
	}
	for want, n := range map[string]int{
		"XENVMM-GUEST: serving": 2,
		"XENVMM-GUEST: reboot requested by the kernel (/sbin/reboot)":     1,
		"XENVMM-GUEST: poweroff requested by the kernel (/sbin/poweroff)": 1,
		"XENVMM-GUEST: wrote data/xenvmm-test=guest-saw-42":               1,
	} {
		if got := strings.Count(r.out, want); got != n {
			t.Errorf("console shows %q %d times, want %d", want, got, n)
		}
	}
	if t.Failed() {
		t.Logf("console tail:\n%s", lastLines(r.out, 40))
	}
}
