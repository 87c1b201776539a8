package hostcheck

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xenvmm/xenvmm/internal/testenv"
)

// run runs cmd and returns its combined output; a non-zero exit is an
// error unless allowExit.
func run(t *testing.T, cmd *exec.Cmd, allowExit bool) string {
	t.Helper()
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !(allowExit && errors.As(err, &ee)) {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, out)
	}
	return string(out)
}

type match int

const (
	equal match = iota
	prefix
	contains
)

func (m match) ok(out, want string) bool {
	switch m {
	case prefix:
		return strings.HasPrefix(out, want)
	case contains:
		return strings.Contains(out, want)
	}
	return out == want
}

func (m match) String() string { return [...]string{"equal", "start with", "contain"}[m] }

// TestKVMSandboxHostTools runs the host's programs from the sandbox and
// checks that they are the host's (Debian's xenstore-utils, python3 with
// python3-pyxs) and that they see the sandbox's kernel, the files the
// test writes, and the sandbox's own files (its initramfs).
func TestKVMSandboxHostTools(t *testing.T) {
	testenv.RequireKVM(t)

	data := make([]byte, 4096)
	rand.Read(data)
	file := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	exeData, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	exeSum := sha256.Sum256(exeData)
	osrelease, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		t.Fatal(err)
	}

	sum := hex.EncodeToString(exeSum[:])
	tests := []struct {
		name      string
		argv      []string
		allowExit bool // the program exits non-zero (usage)
		how       match
		want      []string
	}{
		{"xenstore-ls usage", []string{"xenstore-ls", "--help"}, true, contains, []string{"Usage:", "xenstore-ls"}},
		{"xenstore-write usage", []string{"xenstore-write"}, true, contains, []string{"Usage:", "xenstore-write"}},
		// Debian's python3-pyxs, not a user's pyenv or virtualenv.
		{"python3-pyxs", []string{"python3", "-c", "import pyxs; print(pyxs.__file__)"}, false, prefix, []string{"/usr/lib/python3/dist-packages/pyxs/"}},
		// The sandbox's /proc, not the host's: the kernels differ.
		{"sandbox kernel", []string{"cat", "/proc/sys/kernel/osrelease"}, false, equal, []string{string(osrelease)}},
		// A file the test wrote under /tmp.
		{"test's file", []string{"cat", testenv.HostPath(file)}, false, equal, []string{string(data)}},
		// The test binary itself, in the sandbox's initramfs.
		{"sandbox's own file", []string{"sha256sum", testenv.HostPath(exe)}, false, prefix, []string{sum + " "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := testenv.HostCommand(t, tt.argv[0], tt.argv[1:]...)
			start := time.Now()
			out := run(t, cmd, tt.allowExit)
			t.Logf("%v: %v", tt.argv, time.Since(start))
			for _, w := range tt.want {
				if !tt.how.ok(out, w) {
					t.Errorf("%v printed %q, want it to %s %q", tt.argv, out, tt.how, w)
				}
			}
		})
	}
}

// TestKVMSandboxHostSocket serves a Unix socket under /run from the test
// and talks to it from the host's python3: the host program reaches the
// sandbox's sockets, and the server sees the host program as its peer.
func TestKVMSandboxHostSocket(t *testing.T) {
	testenv.RequireKVM(t)

	dir, err := os.MkdirTemp("/run", "xenvmm-hostcheck-")
	if err != nil {
		if testenv.InSandbox() {
			t.Fatal(err)
		}
		dir = t.TempDir() // the host's /run is not writable
	} else {
		t.Cleanup(func() { os.RemoveAll(dir) })
	}
	sock := filepath.Join(dir, "sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	type served struct {
		line string
		pid  int32
		err  error
	}
	done := make(chan served, 1)
	go func() {
		var s served
		defer func() { done <- s }()
		c, err := l.AcceptUnix()
		if err != nil {
			s.err = err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Minute))
		raw, err := c.SyscallConn()
		if err != nil {
			s.err = err
			return
		}
		raw.Control(func(fd uintptr) {
			var cred *unix.Ucred
			cred, s.err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
			if cred != nil {
				s.pid = cred.Pid
			}
		})
		if s.err != nil {
			return
		}
		s.line, s.err = bufio.NewReader(c).ReadString('\n')
		if s.err != nil {
			return
		}
		_, s.err = fmt.Fprintf(c, "pong %s", s.line)
	}()

	script := `
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall(b"ping from python\n")
buf = b""
while not buf.endswith(b"\n"):
    b = s.recv(100)
    if not b:
        break
    buf += b
sys.stdout.write(buf.decode())
`
	cmd := testenv.HostCommand(t, "python3", "-c", script, testenv.HostPath(sock))
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	werr := cmd.Wait()
	l.Close()
	s := <-done
	if werr != nil {
		t.Fatalf("python3: %v\n%s", werr, out.String())
	}
	if s.err != nil {
		t.Fatalf("server: %v", s.err)
	}
	if s.line != "ping from python\n" {
		t.Errorf("server read %q, want %q", s.line, "ping from python\n")
	}
	if got, want := out.String(), "pong ping from python\n"; got != want {
		t.Errorf("python3 printed %q, want %q", got, want)
	}
	if int(s.pid) != pid {
		t.Errorf("peer of the socket is pid %d, want python3's %d", s.pid, pid)
	}
}

// TestKVMSandboxHostMounts mounts a tmpfs under the test's temporary
// directory after the sandbox started and reads a file in it with the
// host's cat: the sandbox's mounts propagate into the host root.
func TestKVMSandboxHostMounts(t *testing.T) {
	testenv.RequireKVM(t)
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root (the sandbox runs tests as root)")
	}
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	want := fmt.Sprintf("on the test's tmpfs %d\n", time.Now().UnixNano())
	if err := os.WriteFile(filepath.Join(mnt, "f"), []byte(want), 0o644); err != nil {
		t.Fatal(err)
	}
	out := run(t, testenv.HostCommand(t, "cat", testenv.HostPath(filepath.Join(mnt, "f"))), false)
	if out != want {
		t.Errorf("host cat printed %q, want %q", out, want)
	}
}
