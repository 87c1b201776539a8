package xenstore

import (
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// nopTransport keeps output queued for the test to collect.
type nopTransport struct{}

func (nopTransport) flush() {}

// tconn drives one wire connection of a daemon synchronously, without
// goroutines: requests go straight into Daemon.process.
type tconn struct {
	t      testing.TB
	d      *Daemon
	c      *conn
	req    uint32
	events []WatchEvent
}

// wireConn opens a wire connection for domid: 0 is privileged; any other
// domid gets a domain record (and so its quota) as a guest ring would.
func wireConn(t testing.TB, d *Daemon, domid uint32) *tconn {
	t.Helper()
	d.lock()
	defer d.unlock()
	var dom *domain
	if domid != 0 {
		var err error
		if dom, err = d.domainRecord(domid); err != nil {
			t.Fatal(err)
		}
	}
	return &tconn{t: t, d: d, c: d.newConn(domid, dom, nopTransport{})}
}

// args builds a payload of NUL-terminated strings.
func args(ss ...string) []byte {
	var b []byte
	for _, s := range ss {
		b = append(append(b, s...), 0)
	}
	return b
}

// feed pushes raw bytes through the connection's decoder and returns the
// replies produced (events are collected in tc.events). A protocol error
// is returned as err.
func (tc *tconn) feed(b []byte) (replies []Message, err error) {
	tc.d.lock()
	for len(b) > 0 {
		used, m, ferr := tc.c.dec.feed(b)
		b = b[used:]
		if ferr != nil {
			err = ferr
			break
		}
		if m != nil {
			tc.d.process(tc.c, m)
		}
	}
	tc.d.unlock()
	return tc.collect(), err
}

// collect drains queued output of the connection.
func (tc *tconn) collect() []Message {
	tc.t.Helper()
	tc.d.lock()
	defer tc.d.unlock()
	var replies []Message
	for len(tc.c.out) > 0 {
		data := tc.c.out[0].data
		tc.c.dequeue()
		h, err := ParseHeader(data)
		if err != nil || int(h.Len) != len(data)-HeaderSize {
			tc.t.Fatalf("bad queued message %q", data)
		}
		m := Message{Header: h, Payload: data[HeaderSize:]}
		if h.Type == TypeWatchEvent {
			s := nulStrings(m.Payload)
			if len(s) != 2 || h.ReqID != 0 || h.TxID != 0 {
				tc.t.Fatalf("bad watch event %+v %q", h, m.Payload)
			}
			tc.events = append(tc.events, WatchEvent{Path: s[0], Token: s[1]})
			continue
		}
		replies = append(replies, m)
	}
	return replies
}

// call sends one request and returns its reply, checking that the reply
// echoes req_id and tx_id.
func (tc *tconn) call(typ MsgType, tx uint32, payload []byte) Message {
	tc.t.Helper()
	tc.req++
	m := Message{Header: Header{Type: typ, ReqID: tc.req, TxID: tx}, Payload: payload}
	rs, err := tc.feed(m.Encode())
	if err != nil {
		tc.t.Fatalf("%v: %v", typ, err)
	}
	if len(rs) != 1 {
		tc.t.Fatalf("%v: got %d replies, want 1", typ, len(rs))
	}
	r := rs[0]
	if r.ReqID != tc.req || r.TxID != tx {
		tc.t.Fatalf("%v: reply echoes req %d tx %d, want %d %d", typ, r.ReqID, r.TxID, tc.req, tx)
	}
	if r.Type != typ && r.Type != TypeError {
		tc.t.Fatalf("%v: reply type %v", typ, r.Type)
	}
	return r
}

// ok sends a request that must succeed and returns the reply payload.
func (tc *tconn) ok(typ MsgType, tx uint32, payload []byte) []byte {
	tc.t.Helper()
	r := tc.call(typ, tx, payload)
	if r.Type == TypeError {
		tc.t.Fatalf("%v %q: error %q", typ, payload, r.Payload)
	}
	return r.Payload
}

// fail sends a request that must fail and returns the errno.
func (tc *tconn) fail(typ MsgType, tx uint32, payload []byte) syscall.Errno {
	tc.t.Helper()
	r := tc.call(typ, tx, payload)
	if r.Type != TypeError {
		tc.t.Fatalf("%v %q: succeeded with %q, want an error", typ, payload, r.Payload)
	}
	if r.Payload[len(r.Payload)-1] != 0 {
		tc.t.Fatalf("%v: error payload %q not NUL-terminated", typ, r.Payload)
	}
	e, ok := ParseErrno(r.Payload)
	if !ok {
		tc.t.Fatalf("%v: unknown error %q", typ, r.Payload)
	}
	return e
}

func (tc *tconn) wantErr(want syscall.Errno, typ MsgType, tx uint32, payload []byte) {
	tc.t.Helper()
	if got := tc.fail(typ, tx, payload); got != want {
		tc.t.Fatalf("%v %q: got %v, want %v", typ, payload, ErrnoName(got), ErrnoName(want))
	}
}

func (tc *tconn) write(path, value string) {
	tc.t.Helper()
	tc.ok(TypeWrite, 0, append(args(path), value...))
}

func (tc *tconn) read(path string) string {
	tc.t.Helper()
	return string(tc.ok(TypeRead, 0, args(path)))
}

func (tc *tconn) setPerms(path string, perms ...string) {
	tc.t.Helper()
	tc.ok(TypeSetPerms, 0, args(append([]string{path}, perms...)...))
}

func (tc *tconn) getPerms(path string) string {
	tc.t.Helper()
	return strings.Join(nulStrings(tc.ok(TypeGetPerms, 0, args(path))), ",")
}

func (tc *tconn) watch(path, token string) {
	tc.t.Helper()
	tc.ok(TypeWatch, 0, args(path, token))
}

// takeEvents returns and clears the events received so far.
func (tc *tconn) takeEvents() []WatchEvent {
	tc.collect()
	ev := tc.events
	tc.events = nil
	return ev
}

func evs(pairs ...string) []WatchEvent {
	var out []WatchEvent
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, WatchEvent{Path: pairs[i], Token: pairs[i+1]})
	}
	return out
}

func sameEvents(a, b []WatchEvent) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func (tc *tconn) wantEvents(want ...WatchEvent) {
	tc.t.Helper()
	if got := tc.takeEvents(); !sameEvents(got, want) {
		tc.t.Fatalf("events %v, want %v", got, want)
	}
}

// guestSetup gives domain domid a home as xl does: /local/domain/<id>
// owned by dom0 and readable by the guest, data/ owned by the guest.
func guestSetup(t testing.TB, d *Daemon, domid uint32) (dom0, guest *tconn) {
	t.Helper()
	dom0 = wireConn(t, d, 0)
	guest = wireConn(t, d, domid)
	home := DomainPath(domid)
	dom0.write(home, "")
	dom0.setPerms(home, "n0", "r"+itoa(domid))
	dom0.write(home+"/data", "")
	dom0.setPerms(home+"/data", "n"+itoa(domid))
	dom0.write(home+"/name", "guest")
	return dom0, guest
}

func itoa(v uint32) string { return strconv.FormatUint(uint64(v), 10) }

func checkStore(t testing.TB, d *Daemon) {
	t.Helper()
	if err := d.CheckStore(); err != nil {
		t.Fatal(err)
	}
}
