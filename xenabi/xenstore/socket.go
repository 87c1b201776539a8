package xenstore

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
)

// DefaultSocketPath returns where a VMM instance called name serves its
// store to host tools: $XDG_RUNTIME_DIR/xenvmm/<name>/xenstored.sock.
// Point libxenstore's clients at it with XENSTORED_PATH (tools/libs/store/xs.c
// and xenstore-common.h read that variable before XENSTORED_RUNDIR).
func DefaultSocketPath(name string) (string, error) {
	dir := os.Getenv("XDG_RUNTIME_DIR")
	if dir == "" {
		return "", errors.New("xenstore: XDG_RUNTIME_DIR is not set")
	}
	if name == "" || name != filepath.Base(name) || name == "." || name == ".." {
		return "", fmt.Errorf("xenstore: bad instance name %q", name)
	}
	return filepath.Join(dir, "xenvmm", name, "xenstored.sock"), nil
}

// SocketServer serves the wire protocol on a Unix socket to host tools
// (xenstore-ls, xenstore-write, python3-pyxs ...) as the privileged domain 0,
// like xenstored's socket. Each connection has its own watches and
// transactions; watch events are pushed as they happen.
type SocketServer struct {
	d    *Daemon
	ln   *net.UnixListener
	path string
	wg   sync.WaitGroup

	// mu guards conns and closed.
	mu     sync.Mutex
	conns  map[*sockConn]struct{}
	closed bool
}

// maxSocketBacklog stops reading a socket client's requests while this many
// replies wait to be written to it.
const maxSocketBacklog = 64

// ListenUnix creates the socket at path (parent directories 0700, socket
// 0600; a stale socket file is replaced) and starts serving it.
func (d *Daemon) ListenUnix(path string) (*SocketServer, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("xenstore: socket directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("xenstore: socket directory: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("xenstore: %s exists and is not a socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("xenstore: removing stale socket: %w", err)
		}
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("xenstore: listen: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("xenstore: socket mode: %w", err)
	}
	s := &SocketServer{d: d, ln: ln, path: path, conns: make(map[*sockConn]struct{})}
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

// Path returns the socket's path.
func (s *SocketServer) Path() string { return s.path }

// Close stops accepting, closes every connection, waits for their runners
// and removes the socket file.
func (s *SocketServer) Close() error {
	s.mu.Lock()
	s.closed = true
	conns := make([]*sockConn, 0, len(s.conns))
	for sc := range s.conns {
		conns = append(conns, sc)
	}
	s.mu.Unlock()
	err := s.ln.Close()
	for _, sc := range conns {
		sc.nc.Close()
	}
	s.wg.Wait()
	return err
}

// acceptLoop is the server's runner.
func (s *SocketServer) acceptLoop() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.AcceptUnix()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.d.log.Error("xenstore: socket accept failed", "path", s.path, "err", err)
			}
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return
		}
		sc := &sockConn{s: s, nc: nc, wake: make(chan struct{}, 1), space: make(chan struct{}, 1), done: make(chan struct{})}
		s.conns[sc] = struct{}{}
		s.mu.Unlock()
		s.d.lock()
		sc.c = s.d.newConn(0, nil, sc)
		s.d.unlock()
		s.wg.Add(2)
		go sc.readLoop()
		go sc.writeLoop()
	}
}

// sockConn is one socket client.
type sockConn struct {
	s     *SocketServer
	nc    *net.UnixConn
	c     *conn         // guarded by Daemon.mu
	wake  chan struct{} // capacity 1: output is queued
	space chan struct{} // capacity 1: the writer drained output
	done  chan struct{} // closed when the connection ends
	once  sync.Once
}

// flush implements transport; Daemon.mu is held.
func (sc *sockConn) flush() {
	select {
	case sc.wake <- struct{}{}:
	default:
	}
}

// shutdown ends the connection once, from either runner.
func (sc *sockConn) shutdown() {
	sc.once.Do(func() {
		close(sc.done)
		sc.nc.Close()
		d := sc.s.d
		d.lock()
		d.removeConn(sc.c)
		d.unlock()
		sc.s.mu.Lock()
		delete(sc.s.conns, sc)
		sc.s.mu.Unlock()
	})
}

// readLoop is the runner feeding the client's requests to the daemon.
func (sc *sockConn) readLoop() {
	defer sc.s.wg.Done()
	defer sc.shutdown()
	d := sc.s.d
	buf := make([]byte, 4096)
	for {
		n, err := sc.nc.Read(buf)
		p := buf[:n]
		for len(p) > 0 {
			d.lock()
			for sc.c.replies >= maxSocketBacklog && !sc.c.closed {
				d.unlock()
				select {
				case <-sc.space:
				case <-sc.done:
					return
				}
				d.lock()
			}
			used, m, perr := sc.c.dec.feed(p)
			p = p[used:]
			if perr != nil {
				d.log.Error("xenstore: socket client protocol error; closing", "conn", sc.c.id, "err", perr)
				d.unlock()
				return
			}
			if m != nil {
				d.process(sc.c, m)
				sc.flush()
			}
			d.unlock()
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				d.log.Error("xenstore: socket read failed", "conn", sc.c.id, "err", err)
			}
			return
		}
	}
}

// writeLoop is the runner writing queued replies and events to the client.
func (sc *sockConn) writeLoop() {
	defer sc.s.wg.Done()
	defer sc.shutdown()
	d := sc.s.d
	for {
		select {
		case <-sc.wake:
		case <-sc.done:
			return
		}
		d.lock()
		var out []byte
		for len(sc.c.out) > 0 {
			out = append(out, sc.c.out[0].data...)
			sc.c.dequeue()
		}
		d.unlock()
		select {
		case sc.space <- struct{}{}:
		default:
		}
		if len(out) == 0 {
			continue
		}
		if _, err := sc.nc.Write(out); err != nil {
			if !errors.Is(err, net.ErrClosed) {
				d.log.Error("xenstore: socket write failed", "conn", sc.c.id, "err", err)
			}
			return
		}
	}
}
