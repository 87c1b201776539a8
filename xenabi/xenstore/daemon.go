package xenstore

import (
	"log/slog"
	"strconv"
	"sync"
	"syscall"
)

// Options configures a Daemon.
type Options struct {
	// Logger receives errors and notable events (protocol violations,
	// dropped watch events). Nil discards them.
	Logger *slog.Logger
	// Quota holds the default per-domain limits; the zero value means
	// DefaultQuota().
	Quota *Quota
	// MaxPendingEvents caps the watch events queued for one privileged
	// connection (socket clients); 0 means 65536.
	MaxPendingEvents int
	// MapRing, if set, lets a wire INTRODUCE from a host tool connect a
	// domain: it returns the domain's ring page and the function that
	// notifies the domain's event channel. Without it INTRODUCE of an
	// unknown domain fails with EINVAL; domains are then introduced through
	// Daemon.Introduce.
	MapRing func(domid uint32, gfn uint64, port uint32) (page []byte, notify func(), err error)
}

// Daemon is an in-process xenstored. Its core is a state machine driven
// by the transports (Ring, the socket server, Client); it starts no
// goroutines itself.
type Daemon struct {
	log      *slog.Logger
	mapRing  func(domid uint32, gfn uint64, port uint32) ([]byte, func(), error)
	eventCap int

	// mu guards every field below and everything reachable from them: the
	// tree, connections with their watches, transactions and output queues,
	// and domain records.
	mu      sync.Mutex
	store   *store
	quota   Quota              // defaults for domains created from now on
	domains map[uint32]*domain // by domid
	conns   []*conn            // watch events reach connections in this order
	lastID  uint64             // last connection id handed out
	// kicks are the rings whose guests must be notified once mu is
	// released (see Ring.kick).
	kicks []*Ring
}

// domain is xenstored's struct domain: a guest known to the daemon.
type domain struct {
	id         uint32
	introduced bool
	shutdown   bool // @releaseDomain already sent for a shutdown
	features   uint32
	quota      Quota
	conn       *conn // the ring connection, when introduced
	ring       *Ring
	target     int // SET_TARGET: domid whose permissions this one shares, or -1
}

// New creates a daemon with the initial tree xenstored builds
// (setup_structure): "/", /tool/xenstored, the special nodes, and
// /local/domain/0 for the privileged domain.
func New(opts Options) *Daemon {
	d := &Daemon{
		log:      opts.Logger,
		mapRing:  opts.MapRing,
		eventCap: opts.MaxPendingEvents,
		store:    newStore(),
		quota:    DefaultQuota(),
		domains:  make(map[uint32]*domain),
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if opts.Quota != nil {
		d.quota = *opts.Quota
	}
	if d.eventCap == 0 {
		d.eventCap = 65536
	}
	s := d.store
	dom0 := []Perm{{Domid: 0, Access: AccessNone}}
	s.put("/", &node{perms: dom0, children: []string{"tool", "local"}})
	s.put("/tool", &node{perms: dom0, children: []string{"xenstored"}})
	s.put("/tool/xenstored", &node{perms: dom0})
	s.put("/local", &node{perms: dom0, children: []string{"domain"}})
	s.put("/local/domain", &node{perms: dom0, children: []string{"0"}})
	s.put("/local/domain/0", &node{perms: dom0, children: []string{"name", "domid"}})
	s.put("/local/domain/0/name", &node{perms: dom0, value: []byte("Domain-0")})
	s.put("/local/domain/0/domid", &node{perms: dom0, value: []byte("0")})
	s.put(IntroduceDomainPath, &node{perms: dom0})
	s.put(ReleaseDomainPath, &node{perms: []Perm{{0, AccessNone}, {DomidAny, AccessRead}}})
	return d
}

// lock and unlock bracket every entry into the core; unlock runs the event
// channel notifications queued while mu was held.
func (d *Daemon) lock() { d.mu.Lock() }

func (d *Daemon) unlock() {
	k := d.kicks
	d.kicks = nil
	for _, r := range k {
		r.kickQueued = false
	}
	d.mu.Unlock()
	for _, r := range k {
		r.notify()
	}
}

// CheckStore verifies the tree's invariants (CONTROL check).
func (d *Daemon) CheckStore() error {
	d.lock()
	defer d.unlock()
	return d.store.check()
}

// transport is how a connection's queued output leaves the daemon.
type transport interface {
	// flush is called with Daemon.mu held after output was queued.
	flush()
}

// outMsg is one queued message for a wire connection.
type outMsg struct {
	data  []byte
	sent  int  // bytes already written (ring connections write in pieces)
	event bool // a watch event, not a reply
}

// conn is one client connection: a guest ring, a socket, or the VMM's own
// Client. Its fields are guarded by Daemon.mu.
type conn struct {
	id    uint64
	domid uint32
	priv  bool
	home  string  // base of relative paths
	dom   *domain // the guest behind a ring connection, else nil

	watches  []*watch
	txs      map[uint32]*txn
	nextTxID uint32

	dec     decoder
	out     []outMsg
	replies int // replies in out: the "outstanding" quota
	events  int // watch events in out
	dropped bool
	tr      transport // nil for Client connections
	ignored bool      // stopped after a protocol error
	closed  bool
}

func (c *conn) subject() subject {
	s := subject{domid: c.domid, target: -1, priv: c.priv}
	if c.dom != nil {
		s.target = c.dom.target
	}
	return s
}

// features returns the server features available to c.
func (c *conn) features() uint32 {
	if c.dom != nil {
		return c.dom.features
	}
	return SupportedFeatures
}

// quota returns the limits that apply to c (nil: unlimited).
func (c *conn) quota() *Quota {
	if c.priv || c.dom == nil {
		return nil
	}
	return &c.dom.quota
}

// newConn registers a connection for domid; mu must be held.
func (d *Daemon) newConn(domid uint32, dom *domain, tr transport) *conn {
	d.lastID++
	c := &conn{
		id:    d.lastID,
		domid: domid,
		priv:  domid == 0,
		home:  DomainPath(domid),
		dom:   dom,
		txs:   make(map[uint32]*txn),
		tr:    tr,
	}
	d.conns = append(d.conns, c)
	return c
}

// resetConn drops a connection's watches, transactions and queued I/O
// (xenstored's domain_conn_reset / ignore_connection).
func (d *Daemon) resetConn(c *conn) {
	d.opResetWatches(c)
	c.dec.reset()
	c.out = nil
	c.replies = 0
	c.events = 0
	c.dropped = false
}

// removeConn unregisters a connection; mu must be held.
func (d *Daemon) removeConn(c *conn) {
	if c.closed {
		return
	}
	d.resetConn(c)
	c.closed = true
	for i, x := range d.conns {
		if x == c {
			d.conns = append(d.conns[:i], d.conns[i+1:]...)
			break
		}
	}
}

// queue appends a message for a wire connection.
func (c *conn) queue(data []byte, event bool) {
	c.out = append(c.out, outMsg{data: data, event: event})
	if event {
		c.events++
	} else {
		c.replies++
	}
}

// dequeue drops the first queued message once fully written.
func (c *conn) dequeue() {
	if c.out[0].event {
		c.events--
	} else {
		c.replies--
	}
	c.out[0] = outMsg{}
	c.out = c.out[1:]
	if len(c.out) == 0 {
		c.out = nil
		c.dropped = false
	}
}

// reply queues a reply echoing h's req_id and tx_id.
func (c *conn) reply(h Header, t MsgType, payload []byte) {
	if len(payload) > PayloadMax {
		c.replyErr(h, syscall.E2BIG)
		return
	}
	m := Message{Header: Header{Type: t, ReqID: h.ReqID, TxID: h.TxID}, Payload: payload}
	c.queue(m.Encode(), false)
}

// replyErr queues an ERROR reply carrying the errno's name.
func (c *conn) replyErr(h Header, e syscall.Errno) {
	c.reply(h, TypeError, append([]byte(ErrnoName(e)), 0))
}

// watch is one registered watch (xenstored's struct watch).
type watch struct {
	c      *conn
	path   string // canonical: absolute or special
	token  string
	prefix int // bytes stripped from event paths (relative watches)
	depth  int // -1: unlimited
	local  *Watch
}

// deliver sends one event for w.
func (d *Daemon) deliver(w *watch, path string) {
	p := path[w.prefix:]
	if w.local != nil {
		w.local.push(WatchEvent{Path: p, Token: w.token})
		return
	}
	c := w.c
	if c.tr == nil || c.ignored || c.closed {
		return
	}
	payload := make([]byte, 0, len(p)+len(w.token)+2)
	payload = append(append(append(append(payload, p...), 0), w.token...), 0)
	if len(payload) > PayloadMax {
		return // xenstored does not send over-long events either
	}
	m := Message{Header: Header{Type: TypeWatchEvent}, Payload: payload}
	data := m.Encode()
	if p[0] != '@' {
		// Drop an event identical to one still waiting unsent, as
		// xenstored's send_event does.
		for _, o := range c.out {
			if o.event && o.sent == 0 && string(o.data) == string(data) {
				return
			}
		}
	}
	limit := d.eventCap
	if q := c.quota(); q != nil {
		limit = q.WatchEvents
	}
	if limit > 0 && c.events >= limit {
		if !c.dropped {
			d.log.Error("xenstore: watch event queue full, dropping events",
				"domid", c.domid, "conn", c.id, "queued", c.events)
			c.dropped = true
		}
		return
	}
	c.queue(data, true)
	c.tr.flush()
}

// watchPermitted reports whether c may see an event on path: privileged
// connections always; others when they can read the node (with its old or
// current permissions) or its parent (xenstored's watch_permitted).
func (d *Daemon) watchPermitted(c *conn, path string, old []Perm) bool {
	s := c.subject()
	if s.priv {
		return true
	}
	if old != nil && permFor(s, old)&AccessRead != 0 {
		return true
	}
	n := d.store.get(path)
	if n == nil {
		return false
	}
	if permFor(s, n.perms)&AccessRead != 0 {
		return true
	}
	if p := d.store.get(parentPath(path)); p != nil && permFor(s, p.perms)&AccessRead != 0 {
		return true
	}
	return false
}

// fire sends the watch events for a change of path made outside a
// transaction (xenstored's fire_watches). old holds the node's permissions
// before the change when they matter (deletion, SET_PERMS).
func (d *Daemon) fire(path string, m matchMode, old []Perm) {
	for _, c := range d.conns {
		if c.ignored || len(c.watches) == 0 || !d.watchPermitted(c, path, old) {
			continue
		}
		for _, w := range c.watches {
			var hit bool
			switch m {
			case matchSubtree:
				hit = isChild(path, w.path, w.depth)
			case matchExact:
				hit = path == w.path
			case matchDepth:
				hit = path == w.path || (w.depth > 0 && isChild(path, w.path, w.depth))
			case matchNoDepth:
				hit = path == w.path && w.depth < 0
			}
			if hit {
				d.deliver(w, path)
			}
		}
	}
}

// fireSpecial fires @introduceDomain or @releaseDomain for domid, both in
// the plain form and as <special>/<domid> (xenstored's fire_special_watches).
func (d *Daemon) fireSpecial(name string, domid uint32) {
	d.fire(name, matchNoDepth, nil)
	d.fire(name+"/"+strconv.FormatUint(uint64(domid), 10), matchDepth, d.store.get(name).perms)
}

// changed records a change of path by c: inside a transaction it is queued
// for commit, otherwise watches fire now.
func (d *Daemon) changed(tx *txn, path string, m matchMode, old []Perm) {
	if tx != nil {
		tx.queueEvent(path, m)
		return
	}
	d.fire(path, m, old)
}
