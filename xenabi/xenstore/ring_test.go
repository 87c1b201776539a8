package xenstore

import (
	"encoding/binary"
	"strings"
	"syscall"
	"testing"
)

// fakeGuest plays a guest's xenbus driver on a ring page, written against
// docs/misc/xenstore-ring.txt with plain loads and stores.
type fakeGuest struct {
	t     testing.TB
	page  []byte
	r     *Ring
	kicks int // notifications from the daemon
	dec   decoder
	req   uint32
}

func (g *fakeGuest) idx(off int) uint32 { return binary.LittleEndian.Uint32(g.page[off:]) }
func (g *fakeGuest) setIdx(off int, v uint32) {
	binary.LittleEndian.PutUint32(g.page[off:], v)
}

// newGuest introduces domain domid on a fresh page whose four indices all
// start at start (the spec says guests must not assume zero).
func newGuest(t testing.TB, d *Daemon, domid uint32, start uint32) *fakeGuest {
	t.Helper()
	g := &fakeGuest{t: t, page: make([]byte, 4096)}
	for _, off := range []int{offReqCons, offReqProd, offRspCons, offRspProd} {
		g.setIdx(off, start)
	}
	r, err := d.Introduce(domid, g.page, func() { g.kicks++ })
	if err != nil {
		t.Fatal(err)
	}
	g.r = r
	return g
}

// put copies as much of b into the request ring as fits and returns it.
func (g *fakeGuest) put(b []byte) int {
	cons, prod := g.idx(offReqCons), g.idx(offReqProd)
	n := 0
	for n < len(b) && prod-cons < RingSize {
		g.page[offReq+int(prod%RingSize)] = b[n]
		prod++
		n++
	}
	g.setIdx(offReqProd, prod)
	return n
}

// send writes a whole request and signals the daemon.
func (g *fakeGuest) send(typ MsgType, tx uint32, payload []byte) uint32 {
	g.t.Helper()
	g.req++
	m := Message{Header: Header{Type: typ, ReqID: g.req, TxID: tx}, Payload: payload}
	if n := g.put(m.Encode()); n != HeaderSize+len(payload) {
		g.t.Fatalf("request ring full")
	}
	g.r.HandleEvent()
	return g.req
}

// recv consumes the response ring and returns the complete messages.
func (g *fakeGuest) recv() []Message {
	g.t.Helper()
	var out []Message
	cons, prod := g.idx(offRspCons), g.idx(offRspProd)
	if prod-cons > RingSize {
		g.t.Fatalf("daemon broke the response indices: cons %d prod %d", cons, prod)
	}
	var buf []byte
	for ; cons != prod; cons++ {
		buf = append(buf, g.page[offRsp+int(cons%RingSize)])
	}
	g.setIdx(offRspCons, cons)
	for len(buf) > 0 {
		n, m, err := g.dec.feed(buf)
		if err != nil {
			g.t.Fatal(err)
		}
		buf = buf[n:]
		if m != nil {
			out = append(out, *m)
		}
	}
	return out
}

// call sends a request and returns its reply.
func (g *fakeGuest) call(typ MsgType, payload []byte) Message {
	g.t.Helper()
	id := g.send(typ, 0, payload)
	ms := g.recv()
	for _, m := range ms {
		if m.Type != TypeWatchEvent && m.ReqID == id {
			return m
		}
	}
	g.t.Fatalf("%v: no reply among %d messages", typ, len(ms))
	return Message{}
}

func TestRingBasicAndIndexWraparound(t *testing.T) {
	for _, start := range []uint32{0, 1000, 0xffffff00, 0xfffffff8} {
		d := New(Options{})
		cl := d.NewClient()
		if err := cl.Mkdir("/local/domain/3"); err != nil {
			t.Fatal(err)
		}
		if err := cl.SetPerms("/local/domain/3", Perm{0, AccessNone}, Perm{3, AccessRead}); err != nil {
			t.Fatal(err)
		}
		if err := cl.WriteString("/local/domain/3/name", "g"); err != nil {
			t.Fatal(err)
		}
		g := newGuest(t, d, 3, start)
		if got := g.idx(offServerFeatures); got != SupportedFeatures {
			t.Fatalf("server_features %#x", got)
		}
		// Enough traffic to pass both ring ends several times.
		for i := range 100 {
			r := g.call(TypeRead, args("name"))
			if r.Type != TypeRead || string(r.Payload) != "g" {
				t.Fatalf("start %#x, round %d: %v %q", start, i, r.Type, r.Payload)
			}
		}
		if g.kicks == 0 {
			t.Fatal("the guest was never notified")
		}
		r := g.call(TypeRead, args("/local/domain/0/name"))
		if e, _ := ParseErrno(r.Payload); r.Type != TypeError || e != syscall.EACCES {
			t.Fatalf("dom0 node: %v %q", r.Type, r.Payload)
		}
	}
}

func TestRingMessageSplitAcrossKicks(t *testing.T) {
	d := New(Options{})
	g := newGuest(t, d, 3, 1020) // the message also wraps the ring end
	m := Message{Header: Header{Type: TypeGetDomainPath, ReqID: 77}, Payload: args("3")}
	b := m.Encode()
	for i := range b {
		g.put(b[i : i+1])
		g.r.HandleEvent()
		if i < len(b)-1 {
			if ms := g.recv(); len(ms) != 0 {
				t.Fatalf("reply after %d bytes", i+1)
			}
			if g.idx(offReqCons) != g.idx(offReqProd) {
				t.Fatal("partial message not consumed from the ring")
			}
		}
	}
	ms := g.recv()
	if len(ms) != 1 || ms[0].ReqID != 77 || string(ms[0].Payload) != "/local/domain/3\x00" {
		t.Fatalf("reply %+v", ms)
	}
}

func TestRingGarbageIndices(t *testing.T) {
	for _, tc := range []struct {
		name   string
		break_ func(g *fakeGuest)
		code   uint32
	}{
		{"req prod far ahead", func(g *fakeGuest) { g.setIdx(offReqProd, g.idx(offReqCons)+RingSize+1) }, ErrorRingIdx},
		{"req cons ahead of prod", func(g *fakeGuest) { g.setIdx(offReqCons, g.idx(offReqProd)+1) }, ErrorRingIdx},
		{"rsp indices", func(g *fakeGuest) {
			g.setIdx(offRspCons, 5000)
			g.setIdx(offRspProd, 1)
			g.put((&Message{Header: Header{Type: TypeRead}, Payload: args("/")}).Encode())
		}, ErrorRingIdx},
		{"payload too long", func(g *fakeGuest) {
			h := make([]byte, HeaderSize)
			Header{Type: TypeWrite, Len: PayloadMax + 1}.Put(h)
			g.put(h)
		}, ErrorProto},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := New(Options{})
			g := newGuest(t, d, 3, 0)
			g.call(TypeWatch, args("/", "w")) // state to be dropped
			tc.break_(g)
			g.r.HandleEvent()
			if got := g.idx(offError); got != tc.code {
				t.Fatalf("error field %d, want %d", got, tc.code)
			}
			// Stopped: nothing more is served or sent.
			before := g.kicks
			cl := d.NewClient()
			if err := cl.WriteString("/x", "1"); err != nil {
				t.Fatal(err)
			}
			g.r.HandleEvent()
			if g.kicks != before {
				t.Fatal("a stopped connection was notified")
			}
			// Reconnection brings it back, empty.
			g.setIdx(offConnection, StateReconnect)
			g.r.HandleEvent()
			if g.idx(offConnection) != StateConnected || g.idx(offError) != ErrorNone {
				t.Fatalf("after reconnect: connection %d error %d", g.idx(offConnection), g.idx(offError))
			}
			for _, off := range []int{offReqCons, offReqProd, offRspCons, offRspProd} {
				if g.idx(off) != 0 {
					t.Fatalf("index at %d not reset", off)
				}
			}
			g.dec.reset()
			r := g.call(TypeGetDomainPath, args("3"))
			if string(r.Payload) != "/local/domain/3\x00" {
				t.Fatalf("after reconnect: %q", r.Payload)
			}
			if err := cl.WriteString("/y", "1"); err != nil {
				t.Fatal(err)
			}
			if ms := g.recv(); len(ms) != 0 {
				t.Fatalf("watch survived the reconnection: %v", ms)
			}
		})
	}
}

func TestRingReconnectDropsState(t *testing.T) {
	d := New(Options{})
	cl := d.NewClient()
	g := newGuest(t, d, 3, 0)
	g.call(TypeWatch, args("/", "w"))
	g.recv()
	id := g.call(TypeTransactionStart, args(""))
	// A partial request is pending when the guest asks to reconnect.
	g.put([]byte{2, 0, 0})
	g.r.HandleEvent()
	g.setIdx(offConnection, StateReconnect)
	k := g.kicks
	g.r.HandleEvent()
	if g.idx(offConnection) != StateConnected || g.kicks != k+1 {
		t.Fatalf("reconnect not completed: connection %d, kicks %d", g.idx(offConnection), g.kicks-k)
	}
	if err := cl.WriteString("/z", "1"); err != nil {
		t.Fatal(err)
	}
	if ms := g.recv(); len(ms) != 0 {
		t.Fatalf("messages after reconnect: %v", ms)
	}
	g.dec.reset()
	txid := string(id.Payload[:len(id.Payload)-1])
	g.req++
	m := Message{Header: Header{Type: TypeRead, ReqID: g.req, TxID: uint32(atoi(txid))}, Payload: args("/z")}
	g.put(m.Encode())
	g.r.HandleEvent()
	ms := g.recv()
	if len(ms) != 1 || string(ms[0].Payload) != "ENOENT\x00" {
		t.Fatalf("transaction survived the reconnection: %+v", ms)
	}
}

func TestRingWatchEventsPushed(t *testing.T) {
	d := New(Options{})
	cl := d.NewClient()
	if err := cl.WriteString("/local/domain/3/data", ""); err != nil {
		t.Fatal(err)
	}
	if err := cl.SetPerms("/local/domain/3/data", Perm{3, AccessNone}); err != nil {
		t.Fatal(err)
	}
	g := newGuest(t, d, 3, 0)
	g.send(TypeWatch, 0, args("data", "tok"))
	ms := g.recv()
	if len(ms) != 2 || ms[0].Type != TypeWatch || ms[1].Type != TypeWatchEvent ||
		string(ms[1].Payload) != "data\x00tok\x00" {
		t.Fatalf("want the ack, then the initial event: %+v", ms)
	}
	k := g.kicks
	if err := cl.WriteString("/local/domain/3/data/x", "1"); err != nil {
		t.Fatal(err)
	}
	if g.kicks != k+1 {
		t.Fatalf("guest notified %d times for one event", g.kicks-k)
	}
	ms = g.recv()
	if len(ms) != 1 || ms[0].Type != TypeWatchEvent || string(ms[0].Payload) != "data/x\x00tok\x00" {
		t.Fatalf("event %+v", ms)
	}
}

func TestRingResponseBackpressure(t *testing.T) {
	d := New(Options{})
	cl := d.NewClient()
	val := strings.Repeat("v", 900)
	if err := cl.WriteString("/local/domain/3/big", val); err != nil {
		t.Fatal(err)
	}
	if err := cl.SetPerms("/local/domain/3/big", Perm{3, AccessNone}); err != nil {
		t.Fatal(err)
	}
	g := newGuest(t, d, 3, 0)
	// 40 requests, replies not read: the daemon stops taking requests once
	// "outstanding" (20) replies wait for room.
	req := (&Message{Header: Header{Type: TypeRead}, Payload: args("big")}).Encode()
	for i := range 40 {
		binary.LittleEndian.PutUint32(req[4:], uint32(i+1))
		if g.put(req) != len(req) {
			t.Fatal("request ring full")
		}
	}
	g.r.HandleEvent()
	consumed := int(g.idx(offReqCons)) / len(req)
	if consumed != 21 {
		t.Fatalf("daemon consumed %d requests with the replies unread, want 21", consumed)
	}
	var got []uint32
	for round := 0; len(got) < 40; round++ {
		if round > 200 {
			t.Fatalf("stuck after %d replies", len(got))
		}
		for _, m := range g.recv() {
			if string(m.Payload) != val {
				t.Fatalf("reply %d: %d bytes", m.ReqID, len(m.Payload))
			}
			got = append(got, m.ReqID)
		}
		g.r.HandleEvent() // the guest signals after consuming
	}
	for i, id := range got {
		if id != uint32(i+1) {
			t.Fatalf("reply %d has req_id %d", i, id)
		}
	}
}

func TestIntroduceErrors(t *testing.T) {
	d := New(Options{})
	if _, err := d.Introduce(0, make([]byte, 4096), nil); err == nil {
		t.Fatal("introduced domain 0")
	}
	if _, err := d.Introduce(3, make([]byte, 100), nil); err == nil {
		t.Fatal("short page accepted")
	}
	if _, err := d.Introduce(3, make([]byte, 4097)[1:], nil); err == nil {
		t.Fatal("misaligned page accepted")
	}
	if _, err := d.Introduce(3, make([]byte, 4096), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Introduce(3, make([]byte, 4096), nil); err == nil {
		t.Fatal("introduced twice")
	}
	if !d.IsIntroduced(3) || d.IsIntroduced(4) {
		t.Fatal("IsIntroduced")
	}
	if err := d.Release(4); err == nil {
		t.Fatal("released an unknown domain")
	}
}
