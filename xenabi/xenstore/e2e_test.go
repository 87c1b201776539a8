package xenstore

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xenvmm/xenvmm/internal/testenv"
)

// startSocket serves a daemon holding a populated domU on a socket in a
// short temporary directory (sun_path is limited to 108 bytes) and returns
// the environment for libxenstore's clients: XENSTORED_PATH, which
// tools/include/xen-tools/xenstore-common.h (xenstore_daemon_path) and
// pyxs's connection.py both read before XENSTORED_RUNDIR.
func startSocket(t *testing.T) (*Daemon, []string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "xs")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	d := New(Options{})
	cl := d.NewClient()
	if err := cl.PopulateDomU(DomU{Domid: 3, Name: "guest", UUID: "00000000-0000-0000-0000-000000000003",
		MaxMemKiB: 65536, TargetMemKiB: 65536, VCPUs: 1, Kernel: "/k"}); err != nil {
		t.Fatal(err)
	}
	srv, err := d.ListenUnix(filepath.Join(dir, "xenvmm", "t", "xenstored.sock"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	env := append(os.Environ(), "XENSTORED_PATH="+srv.Path(), "XENSTORED_RUNDIR="+filepath.Join(dir, "nonexistent"))
	return d, env
}

func run(t *testing.T, env []string, name string, argv ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, argv...)
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %v: %v\nstdout: %s\nstderr: %s", name, argv, err, out.String(), errb.String())
	}
	return out.String()
}

func TestXenstoreUtils(t *testing.T) {
	for _, tool := range []string{"xenstore-ls", "xenstore-read", "xenstore-write", "xenstore-rm",
		"xenstore-list", "xenstore-chmod", "xenstore-exists", "xenstore-watch"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Missing(t, "Debian's xenstore-utils ("+tool+")")
		}
	}
	d, env := startSocket(t)
	run(t, env, "xenstore-write", "/e2e/a", "hello", "/e2e/b/c", "world")
	if got := run(t, env, "xenstore-read", "/e2e/a", "/e2e/b/c"); got != "hello\nworld\n" {
		t.Fatalf("xenstore-read: %q", got)
	}
	if got := run(t, env, "xenstore-list", "/e2e"); got != "a\nb\n" {
		t.Fatalf("xenstore-list: %q", got)
	}
	run(t, env, "xenstore-chmod", "/e2e/a", "n0", "r3")
	got := run(t, env, "xenstore-ls", "-s", "-p", "/e2e")
	lines := strings.Split(got, "\n")
	if len(lines) < 3 || !strings.HasPrefix(lines[0], `a = "hello"`) || !strings.HasSuffix(lines[0], "(n0,r3)") ||
		!strings.HasPrefix(lines[1], "b = \"\"") || !strings.HasPrefix(lines[2], ` c = "world"`) {
		t.Fatalf("xenstore-ls -s -p:\n%s", got)
	}
	// The whole tree, including the populated guest.
	all := run(t, env, "xenstore-ls", "-f")
	for _, want := range []string{`/local/domain/0/name = "Domain-0"`, `/local/domain/3/name = "guest"`,
		`/local/domain/3/console/limit = "1048576"`, `/e2e/b/c = "world"`} {
		if !strings.Contains(all, want) {
			t.Fatalf("xenstore-ls -f lacks %q:\n%s", want, all)
		}
	}
	// A directory longer than one payload goes through DIRECTORY_PART.
	cl := d.NewClient()
	var names []string
	for i := range 300 {
		n := strings.Repeat("n", 20) + itoa(uint32(i))
		names = append(names, n)
		if err := cl.WriteString("/many/"+n, ""); err != nil {
			t.Fatal(err)
		}
	}
	if got := run(t, env, "xenstore-list", "/many"); got != strings.Join(names, "\n")+"\n" {
		t.Fatalf("xenstore-list of 300 children: %d lines", strings.Count(got, "\n"))
	}
	run(t, env, "xenstore-exists", "/e2e/a")
	run(t, env, "xenstore-rm", "/e2e/b")
	cmd := exec.Command("xenstore-exists", "/e2e/b")
	cmd.Env = env
	if err := cmd.Run(); err == nil {
		t.Fatal("xenstore-exists found a removed node")
	}
	// xenstore-watch gets the initial event and a change made meanwhile.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w := exec.CommandContext(ctx, "xenstore-watch", "-n", "2", "/e2e/a")
	w.Env = env
	var wout bytes.Buffer
	w.Stdout = &wout
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		d.lock()
		watches := 0
		for _, c := range d.conns {
			watches += len(c.watches)
		}
		d.unlock()
		if watches > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("xenstore-watch never set its watch")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := cl.WriteString("/e2e/a", "changed"); err != nil {
		t.Fatal(err)
	}
	if err := w.Wait(); err != nil {
		t.Fatalf("xenstore-watch: %v", err)
	}
	if got := wout.String(); got != "/e2e/a\n/e2e/a\n" {
		t.Fatalf("xenstore-watch printed %q", got)
	}
}

const pyxsScript = `
import sys
from pyxs import Client, PyXSError
import errno

with Client() as c:
    c.write(b"/py/x", b"1")
    assert c.read(b"/py/x") == b"1", c.read(b"/py/x")
    c.mkdir(b"/py/d")
    assert sorted(c.list(b"/py")) == [b"d", b"x"], c.list(b"/py")
    c.set_perms(b"/py/x", [b"n0", b"r3"])
    assert c.get_perms(b"/py/x") == [b"n0", b"r3"], c.get_perms(b"/py/x")
    assert c.get_domain_path(3) == b"/local/domain/3"
    assert c.exists(b"/local/domain/3/name")
    try:
        c.read(b"/py/none")
        raise SystemExit("read of a missing node succeeded")
    except PyXSError as e:
        assert e.args[0] == errno.ENOENT, e
    c.transaction()
    c.write(b"/py/tx", b"in")
    assert c.commit()
    assert c.read(b"/py/tx") == b"in"
    c.delete(b"/py/d")
    assert not c.exists(b"/py/d")
    m = c.monitor()
    m.watch(b"/py/x", b"tok")
    events = m.wait()
    first = next(events)
    assert first == (b"/py/x", b"tok"), first
    c.write(b"/py/x", b"2")
    second = next(events)
    assert second == (b"/py/x", b"tok"), second
    m.unwatch(b"/py/x", b"tok")
print("pyxs ok")
`

func TestPyxs(t *testing.T) {
	// Debian's interpreter first: a python3 earlier in PATH (pyenv,
	// venvs) does not see Debian's dist-packages.
	py := ""
	for _, cand := range []string{"/usr/bin/python3", "python3"} {
		if p, err := exec.LookPath(cand); err == nil && exec.Command(p, "-c", "import pyxs").Run() == nil {
			py = p
			break
		}
	}
	if py == "" {
		testenv.Missing(t, "Debian's python3-pyxs")
	}
	_, env := startSocket(t)
	if got := run(t, env, py, "-c", pyxsScript); got != "pyxs ok\n" {
		t.Fatalf("pyxs: %q", got)
	}
}
