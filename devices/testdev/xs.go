package testdev

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/xenvmm/xenvmm/xenabi/evtchn"
	"github.com/xenvmm/xenvmm/xenabi/guestmem"
	"github.com/xenvmm/xenvmm/xenabi/xenstore"
)

// struct xenstore_domain_interface (xen/include/public/io/xs_wire.h).
const (
	xsReq     = 0
	xsRsp     = xenstore.RingSize
	xsReqCons = 2 * xenstore.RingSize
	xsReqProd = xsReqCons + 4
	xsRspCons = xsReqCons + 8
	xsRspProd = xsReqCons + 12
)

// XSTimeout bounds how long an XS request waits for its reply.
const XSTimeout = 10 * time.Second

// XS is the guest's xenstore connection, as the guest kernel's xenbus
// driver (Linux drivers/xen/xenbus/xenbus_comms.c, xenbus_xs.c) runs it:
// requests and replies over the xenstore ring page, an event channel to
// domain 0 in both directions. Its requests carry the guest's domain id,
// so the daemon checks the guest's permissions. Safe for concurrent use.
type XS struct {
	g    *Guest
	page []byte
	port uint32
	ep   *evtchn.Endpoint
	ring atomic.Pointer[xenstore.Ring]

	wmu   sync.Mutex // serialises writes to the request ring
	reqID atomic.Uint32

	mu      sync.Mutex
	pending map[uint32]chan xenstore.Message
	watches map[string]*XSWatch
	rbuf    []byte

	done chan struct{}
	wg   sync.WaitGroup
}

// newXS connects the guest to the daemon: domain 0's end of the xenstore
// event channel is bound to port (as xenstored binds the port the
// toolstack allocated), the ring page introduced, and a reader started.
func newXS(g *Guest, page []byte, port uint32) (*XS, error) {
	x := &XS{g: g, page: page, port: port, pending: map[uint32]chan xenstore.Message{}, watches: map[string]*XSWatch{}, done: make(chan struct{})}
	ep, err := g.ev.BindBackend(port, func(_ *evtchn.Endpoint, ev evtchn.EndpointEvent) {
		if r := x.ring.Load(); r != nil && ev == evtchn.EndpointNotifiedEvent {
			r.HandleEvent()
		}
	})
	if err != nil {
		return nil, fmt.Errorf("testdev: bind xenstore port: %w", err)
	}
	x.ep = ep
	r, err := g.xsd.Introduce(uint32(g.domid), page, func() { _ = ep.Notify() })
	if err != nil {
		ep.Close()
		return nil, err
	}
	x.ring.Store(r)
	x.wg.Add(1)
	go x.reader()
	return x, nil
}

func (x *XS) close() {
	close(x.done)
	x.wg.Wait()
	x.ep.Close()
}

// reader consumes the response ring whenever the daemon signals.
func (x *XS) reader() {
	defer x.wg.Done()
	evs := x.g.PortEvents(x.port)
	for {
		select {
		case <-x.done:
			return
		case <-evs:
		}
		for x.drain() {
		}
	}
}

// drain copies out what the response ring holds, tells the daemon there
// is room again, and dispatches complete messages.
func (x *XS) drain() bool {
	cons, _ := guestmem.Load32(x.page, xsRspCons)
	prod, _ := guestmem.Load32(x.page, xsRspProd)
	n := prod - cons
	if n == 0 || n > xenstore.RingSize {
		return false
	}
	var chunk []byte
	for i := uint32(0); i < n; i++ {
		chunk = append(chunk, x.page[xsRsp+(cons+i)%xenstore.RingSize])
	}
	guestmem.Store32(x.page, xsRspCons, prod)
	_ = x.g.Send(x.port)

	x.mu.Lock()
	x.rbuf = append(x.rbuf, chunk...)
	var msgs []xenstore.Message
	for len(x.rbuf) >= xenstore.HeaderSize {
		h, _ := xenstore.ParseHeader(x.rbuf)
		if uint32(len(x.rbuf)-xenstore.HeaderSize) < h.Len {
			break
		}
		p := append([]byte(nil), x.rbuf[xenstore.HeaderSize:xenstore.HeaderSize+int(h.Len)]...)
		x.rbuf = x.rbuf[xenstore.HeaderSize+int(h.Len):]
		msgs = append(msgs, xenstore.Message{Header: h, Payload: p})
	}
	for _, m := range msgs {
		if m.Type == xenstore.TypeWatchEvent {
			f := strings.Split(string(m.Payload), "\x00")
			if len(f) >= 2 {
				if w := x.watches[f[1]]; w != nil {
					w.push(f[0])
				}
			}
			continue
		}
		if c := x.pending[m.ReqID]; c != nil {
			delete(x.pending, m.ReqID)
			c <- m
		}
	}
	x.mu.Unlock()
	return true
}

// ErrXSTimeout: the daemon did not answer in XSTimeout.
var ErrXSTimeout = errors.New("testdev: xenstore request timed out")

// request sends one message and waits for its reply; an XS_ERROR reply
// becomes a *xenstore.OpError.
func (x *XS) request(t xenstore.MsgType, path string, args ...string) (xenstore.Message, error) {
	var payload []byte
	for _, a := range args {
		payload = append(append(payload, a...), 0)
	}
	if t == xenstore.TypeWrite && len(args) == 2 {
		payload = payload[:len(payload)-1] // the value is not NUL-terminated
	}
	id := x.reqID.Add(1)
	c := make(chan xenstore.Message, 1)
	x.mu.Lock()
	x.pending[id] = c
	x.mu.Unlock()
	msg := xenstore.Message{Header: xenstore.Header{Type: t, ReqID: id}, Payload: payload}.Encode()
	if err := x.send(msg); err != nil {
		return xenstore.Message{}, err
	}
	select {
	case m := <-c:
		if m.Type == xenstore.TypeError {
			e, ok := xenstore.ParseErrno(m.Payload)
			if !ok {
				e = syscall.EIO
			}
			return m, &xenstore.OpError{Op: strings.ToLower(t.String()), Path: path, Err: e}
		}
		return m, nil
	case <-time.After(XSTimeout):
		return xenstore.Message{}, fmt.Errorf("%w: %v %s", ErrXSTimeout, t, path)
	case <-x.done:
		return xenstore.Message{}, errors.New("testdev: guest closed")
	}
}

// send writes msg into the request ring, waiting for room as needed, and
// signals the daemon.
func (x *XS) send(msg []byte) error {
	x.wmu.Lock()
	defer x.wmu.Unlock()
	deadline := time.Now().Add(XSTimeout)
	for len(msg) > 0 {
		cons, _ := guestmem.Load32(x.page, xsReqCons)
		prod, _ := guestmem.Load32(x.page, xsReqProd)
		space := xenstore.RingSize - (prod - cons)
		if space > xenstore.RingSize {
			return errors.New("testdev: xenstore request ring corrupt")
		}
		n := min(int(space), len(msg))
		for i := 0; i < n; i++ {
			x.page[xsReq+(prod+uint32(i))%xenstore.RingSize] = msg[i]
		}
		guestmem.Store32(x.page, xsReqProd, prod+uint32(n))
		msg = msg[n:]
		if err := x.g.Send(x.port); err != nil {
			return err
		}
		if len(msg) > 0 && n == 0 {
			if time.Now().After(deadline) {
				return ErrXSTimeout
			}
			time.Sleep(time.Millisecond)
		}
	}
	return nil
}

// Read returns the value at path.
func (x *XS) Read(path string) (string, error) {
	m, err := x.request(xenstore.TypeRead, path, path)
	return string(m.Payload), err
}

// Write stores value at path.
func (x *XS) Write(path, value string) error {
	_, err := x.request(xenstore.TypeWrite, path, path, value)
	return err
}

// Mkdir creates path.
func (x *XS) Mkdir(path string) error {
	_, err := x.request(xenstore.TypeMkdir, path, path)
	return err
}

// Rm removes path and its subtree.
func (x *XS) Rm(path string) error {
	_, err := x.request(xenstore.TypeRm, path, path)
	return err
}

// Directory lists path's children.
func (x *XS) Directory(path string) ([]string, error) {
	m, err := x.request(xenstore.TypeDirectory, path, path)
	if err != nil {
		return nil, err
	}
	s := strings.TrimSuffix(string(m.Payload), "\x00")
	if s == "" {
		return nil, nil
	}
	return strings.Split(s, "\x00"), nil
}

// GetPerms returns path's permissions.
func (x *XS) GetPerms(path string) ([]xenstore.Perm, error) {
	m, err := x.request(xenstore.TypeGetPerms, path, path)
	if err != nil {
		return nil, err
	}
	return xenstore.ParsePerms(strings.Split(strings.TrimSuffix(string(m.Payload), "\x00"), "\x00")...)
}

// XSWatch is a watch of the guest. Events queue without bound.
type XSWatch struct {
	x     *XS
	token string
	mu    sync.Mutex
	q     []string
	wake  chan struct{}
}

func (w *XSWatch) push(path string) {
	w.mu.Lock()
	w.q = append(w.q, path)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Next returns the next event's path, waiting at most timeout.
func (w *XSWatch) Next(timeout time.Duration) (string, bool) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		w.mu.Lock()
		if len(w.q) > 0 {
			p := w.q[0]
			w.q = w.q[1:]
			w.mu.Unlock()
			return p, true
		}
		w.mu.Unlock()
		select {
		case <-w.wake:
		case <-t.C:
			return "", false
		}
	}
}

// Watch sets a watch (XS_WATCH) with a unique token; its first event is
// the one every watch fires when set.
func (x *XS) Watch(path, token string) (*XSWatch, error) {
	w := &XSWatch{x: x, token: token, wake: make(chan struct{}, 1)}
	x.mu.Lock()
	if x.watches[token] != nil {
		x.mu.Unlock()
		return nil, fmt.Errorf("testdev: watch token %q in use", token)
	}
	x.watches[token] = w
	x.mu.Unlock()
	if _, err := x.request(xenstore.TypeWatch, path, path, token); err != nil {
		x.mu.Lock()
		delete(x.watches, token)
		x.mu.Unlock()
		return nil, err
	}
	return w, nil
}

// Unwatch removes the watch set with path and token.
func (x *XS) Unwatch(path string, w *XSWatch) error {
	_, err := x.request(xenstore.TypeUnwatch, path, path, w.token)
	x.mu.Lock()
	delete(x.watches, w.token)
	x.mu.Unlock()
	return err
}
