package testdev

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"sync"
	"sync/atomic"

	"github.com/xenvmm/xenvmm/devices/ring"
	"github.com/xenvmm/xenvmm/devices/xenbus"
	"github.com/xenvmm/xenvmm/xenabi/evtchn"
	"github.com/xenvmm/xenvmm/xenabi/gnttab"
)

// The echo protocol: a test-only split device of class "echo". The
// frontend writes "ring-ref" (one page, a ring of 16-byte slots) and
// "event-channel"; each request names a span of a granted page, which
// the backend transforms in place and checksums:
//
//	struct echo_request  { uint64_t id; uint32_t gref; uint16_t offset; uint16_t len; };
//	struct echo_response { uint64_t id; uint32_t crc; int16_t status; uint16_t pad; };
//
// crc is the CRC-32 (IEEE) of the span as the backend read it, and the
// span is then rewritten with Transform. Requests with an odd id are
// served by mapping the grant (GNTTABOP_map_grant_ref), even ones by
// grant copies (GNTTABOP_copy), so both paths run.
const (
	EchoType     = "echo"
	EchoSlotSize = 16

	EchoOK      = 0
	EchoBadSpan = -1 // offset+len beyond the page
	EchoBadGref = -2 // the grant could not be mapped or copied
)

// EchoRequest is struct echo_request.
type EchoRequest struct {
	ID     uint64
	Gref   uint32
	Offset uint16
	Len    uint16
}

// EchoResponse is struct echo_response.
type EchoResponse struct {
	ID     uint64
	CRC    uint32
	Status int16
}

// Put writes r into a ring slot.
func (r EchoRequest) Put(b []byte) {
	le.PutUint64(b[0:], r.ID)
	le.PutUint32(b[8:], r.Gref)
	le.PutUint16(b[12:], r.Offset)
	le.PutUint16(b[14:], r.Len)
}

// GetEchoRequest copies a request out of a ring slot (RING_COPY_REQUEST).
func GetEchoRequest(b []byte) EchoRequest {
	return EchoRequest{ID: le.Uint64(b[0:]), Gref: le.Uint32(b[8:]), Offset: le.Uint16(b[12:]), Len: le.Uint16(b[14:])}
}

// Put writes r into a ring slot.
func (r EchoResponse) Put(b []byte) {
	le.PutUint64(b[0:], r.ID)
	le.PutUint32(b[8:], r.CRC)
	le.PutUint16(b[12:], uint16(r.Status))
	le.PutUint16(b[14:], 0)
}

// GetEchoResponse copies a response out of a ring slot.
func GetEchoResponse(b []byte) EchoResponse {
	return EchoResponse{ID: le.Uint64(b[0:]), CRC: le.Uint32(b[8:]), Status: int16(le.Uint16(b[12:]))}
}

// Transform is what the backend does to each byte of a span: a function
// of the byte, its position and the request id, so that a misplaced,
// stale or duplicated write shows.
func Transform(b []byte, id uint64) {
	for i := range b {
		b[i] = ^b[i] + byte(i) + byte(id)
	}
}

// Echo is the backend of an echo device: an xenbus.Device.
type Echo struct {
	mu   sync.Mutex
	conn *echoConn

	// Counters for tests.
	Connects    atomic.Int64
	Disconnects atomic.Int64
	Served      atomic.Int64
	Closed      atomic.Bool
}

var _ xenbus.Device = (*Echo)(nil)

// Type is "echo".
func (e *Echo) Type() string { return EchoType }

// BackendNodes advertises the protocol.
func (e *Echo) BackendNodes() map[string]string {
	return map[string]string{"feature-echo": "1", "max-len": "4096"}
}

type echoConn struct {
	h      xenbus.Host
	dom    uint16
	ringM  *gnttab.Mapping
	ep     *evtchn.Endpoint
	back   *ring.Back
	stop   chan struct{}
	done   chan struct{}
	served *atomic.Int64
	buf    []byte
	err    atomic.Pointer[error] // set by the worker when the ring breaks
}

// Connect maps the ring, binds the event channel and starts the worker.
func (e *Echo) Connect(ctx context.Context, fe *xenbus.Frontend) error {
	e.Connects.Add(1)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.conn != nil {
		return errors.New("echo: already connected")
	}
	c := &echoConn{h: fe.Host(), dom: fe.DomID(), stop: make(chan struct{}), done: make(chan struct{}), served: &e.Served, buf: make([]byte, gnttab.PageSize)}
	e.conn = c // Disconnect undoes whatever is set below
	m, err := fe.MapGrant("ring-ref", false)
	if err != nil {
		return err
	}
	c.ringM = m
	if c.back, err = ring.NewBack(m.Bytes(), EchoSlotSize); err != nil {
		return err
	}
	if c.ep, err = fe.BindEvent("event-channel", nil); err != nil {
		return err
	}
	go c.work()
	return nil
}

// Disconnect stops the worker, closes the channel and unmaps the ring.
func (e *Echo) Disconnect() error {
	e.Disconnects.Add(1)
	e.mu.Lock()
	c := e.conn
	e.conn = nil
	e.mu.Unlock()
	if c == nil {
		return nil
	}
	var errs []error
	if c.back != nil && c.ep != nil {
		close(c.stop)
		<-c.done
	}
	if c.ep != nil {
		errs = append(errs, c.ep.Close())
	}
	if c.ringM != nil {
		errs = append(errs, c.ringM.Unmap())
	}
	return errors.Join(errs...)
}

// Close records that the device left the bus.
func (e *Echo) Close() error {
	e.Closed.Store(true)
	return nil
}

// Err is the worker's last fatal error (a broken ring), if any.
func (e *Echo) Err() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.conn == nil {
		return nil
	}
	if p := e.conn.err.Load(); p != nil {
		return *p
	}
	return nil
}

// work is the ring loop of blkback's xen_blkif_schedule in miniature.
func (c *echoConn) work() {
	defer close(c.done)
	for {
		for {
			req, ok := c.back.NextRequest()
			if !ok {
				break
			}
			r := GetEchoRequest(req)
			rsp := c.serve(r)
			rsp.Put(c.back.ResponseSlot())
			c.served.Add(1)
		}
		if c.back.PushResponses() {
			_ = c.ep.Notify()
		}
		if err := c.back.Err(); err != nil {
			c.err.Store(&err)
			<-c.stop
			return
		}
		if c.back.FinalCheckForRequests() {
			continue
		}
		select {
		case <-c.ep.C():
		case <-c.stop:
			return
		}
	}
}

func (c *echoConn) serve(r EchoRequest) EchoResponse {
	rsp := EchoResponse{ID: r.ID}
	if int(r.Offset)+int(r.Len) > gnttab.PageSize {
		rsp.Status = EchoBadSpan
		return rsp
	}
	if r.ID&1 == 1 {
		m, err := c.h.Grants().MapGrant(c.dom, r.Gref, false)
		if err != nil {
			rsp.Status = EchoBadGref
			return rsp
		}
		span := m.Bytes()[r.Offset : int(r.Offset)+int(r.Len)]
		rsp.CRC = crc32.ChecksumIEEE(span)
		Transform(span, r.ID)
		if err := m.Unmap(); err != nil {
			rsp.Status = EchoBadGref
		}
		return rsp
	}
	b := c.buf[:r.Len]
	if err := c.h.Grants().CopyFromGrant(c.dom, r.Gref, int(r.Offset), b); err != nil {
		rsp.Status = EchoBadGref
		return rsp
	}
	rsp.CRC = crc32.ChecksumIEEE(b)
	Transform(b, r.ID)
	if err := c.h.Grants().CopyToGrant(c.dom, r.Gref, int(r.Offset), b); err != nil {
		rsp.Status = EchoBadGref
	}
	return rsp
}

func (r EchoResponse) String() string {
	return fmt.Sprintf("echo rsp id %d crc %#x status %d", r.ID, r.CRC, r.Status)
}
