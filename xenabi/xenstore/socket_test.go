package xenstore

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// sockClient speaks the wire protocol over a socket, as libxenstore does.
type sockClient struct {
	t      testing.TB
	nc     net.Conn
	req    uint32
	events []Message // watch events received while waiting for a reply
}

func dialSock(t testing.TB, path string) *sockClient {
	t.Helper()
	nc, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &sockClient{t: t, nc: nc}
}

func (s *sockClient) send(typ MsgType, tx uint32, payload []byte) uint32 {
	s.t.Helper()
	s.req++
	m := Message{Header: Header{Type: typ, ReqID: s.req, TxID: tx}, Payload: payload}
	if _, err := s.nc.Write(m.Encode()); err != nil {
		s.t.Fatal(err)
	}
	return s.req
}

func (s *sockClient) next() Message {
	s.t.Helper()
	s.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	hb := make([]byte, HeaderSize)
	if _, err := io.ReadFull(s.nc, hb); err != nil {
		s.t.Fatal(err)
	}
	h, _ := ParseHeader(hb)
	p := make([]byte, h.Len)
	if _, err := io.ReadFull(s.nc, p); err != nil {
		s.t.Fatal(err)
	}
	return Message{Header: h, Payload: p}
}

func (s *sockClient) call(typ MsgType, tx uint32, payload []byte) Message {
	s.t.Helper()
	id := s.send(typ, tx, payload)
	m := s.next()
	for m.Type == TypeWatchEvent {
		s.events = append(s.events, m)
		m = s.next()
	}
	if m.ReqID != id || m.TxID != tx || (m.Type != typ && m.Type != TypeError) {
		s.t.Fatalf("%v: reply %+v", typ, m.Header)
	}
	return m
}

func TestSocketServer(t *testing.T) {
	d := New(Options{})
	path := filepath.Join(t.TempDir(), "xenvmm", "vm1", "xenstored.sock")
	srv, err := d.ListenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	fi, err := os.Stat(path)
	if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v %v", fi.Mode(), err)
	}
	if di, err := os.Stat(filepath.Dir(path)); err != nil || di.Mode().Perm() != 0o700 {
		t.Fatalf("directory mode %v %v", di.Mode(), err)
	}

	a := dialSock(t, path)
	b := dialSock(t, path)
	if r := a.call(TypeWrite, 0, append(args("/s/x"), "1"...)); string(r.Payload) != "OK\x00" {
		t.Fatalf("write %q", r.Payload)
	}
	if r := b.call(TypeRead, 0, args("/s/x")); string(r.Payload) != "1" {
		t.Fatalf("read %q", r.Payload)
	}
	// Socket clients are privileged.
	if r := b.call(TypeRead, 0, args("/local/domain/0/name")); string(r.Payload) != "Domain-0" {
		t.Fatalf("read %q", r.Payload)
	}
	// Watch on a, change from b: the event is pushed to a unasked.
	if r := a.call(TypeWatch, 0, args("/s", "tok")); r.Type != TypeWatch {
		t.Fatalf("watch %q", r.Payload)
	}
	if ev := a.next(); ev.Type != TypeWatchEvent || string(ev.Payload) != "/s\x00tok\x00" {
		t.Fatalf("initial event %+v %q", ev.Header, ev.Payload)
	}
	b.call(TypeWrite, 0, append(args("/s/y"), "2"...))
	if ev := a.next(); ev.Type != TypeWatchEvent || string(ev.Payload) != "/s/y\x00tok\x00" {
		t.Fatalf("event %+v %q", ev.Header, ev.Payload)
	}
	// Transactions belong to their connection.
	r := a.call(TypeTransactionStart, 0, args(""))
	tx := uint32(atoi(string(r.Payload)))
	if r := b.call(TypeRead, tx, args("/s/x")); r.Type != TypeError || string(r.Payload) != "ENOENT\x00" {
		t.Fatalf("foreign tx: %+v %q", r.Header, r.Payload)
	}
	a.call(TypeWrite, tx, append(args("/s/x"), "tx"...))
	if r := a.call(TypeTransactionEnd, tx, args("T")); string(r.Payload) != "OK\x00" {
		t.Fatalf("commit %q", r.Payload)
	}
	// As in xenstored, the commit's events precede its reply.
	if len(a.events) != 1 || string(a.events[0].Payload) != "/s/x\x00tok\x00" {
		t.Fatalf("commit events %v", a.events)
	}
	// Pipelined requests are answered in order.
	for i := range 50 {
		b.send(TypeRead, 0, args("/s/x"))
		_ = i
	}
	for i := range 50 {
		if m := b.next(); m.ReqID != b.req-49+uint32(i) || string(m.Payload) != "tx" {
			t.Fatalf("pipelined reply %d: %+v %q", i, m.Header, m.Payload)
		}
	}
	// Closing a connection drops its watches.
	a.nc.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		d.lock()
		n := len(d.conns)
		d.unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections after a client left", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A protocol violation closes the offender only.
	c := dialSock(t, path)
	h := make([]byte, HeaderSize)
	Header{Type: TypeRead, Len: PayloadMax + 1}.Put(h)
	c.nc.Write(h)
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.nc.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("oversized message: read %v, want EOF", err)
	}
	if r := b.call(TypeRead, 0, args("/s/y")); string(r.Payload) != "2" {
		t.Fatalf("other client after violation: %q", r.Payload)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err == nil {
		// net.UnixListener.Close unlinks the socket it created.
		t.Fatal("socket file left behind")
	}
}

func TestSocketReplacesStaleSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.sock")
	d := New(Options{})
	s1, err := d.ListenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	// Leave the file behind as a crashed VMM would.
	s1.ln.SetUnlinkOnClose(false)
	s1.Close()
	s2, err := d.ListenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	s2.Close()
	if err := os.WriteFile(filepath.Join(dir, "f"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ListenUnix(filepath.Join(dir, "f")); err == nil {
		t.Fatal("replaced a regular file")
	}
}

func TestDefaultSocketPath(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", "/run/user/1000")
	p, err := DefaultSocketPath("vm1")
	if err != nil || p != "/run/user/1000/xenvmm/vm1/xenstored.sock" {
		t.Fatalf("%q %v", p, err)
	}
	for _, bad := range []string{"", "a/b", "..", "."} {
		if _, err := DefaultSocketPath(bad); err == nil {
			t.Errorf("name %q accepted", bad)
		}
	}
	t.Setenv("XDG_RUNTIME_DIR", "")
	if _, err := DefaultSocketPath("vm1"); err == nil {
		t.Fatal("no XDG_RUNTIME_DIR accepted")
	}
}
