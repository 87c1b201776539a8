package xenstore

import (
	"fmt"
	"syscall"
)

// Ring is a guest's connection to the daemon over the shared page
// struct xenstore_domain_interface (xs_wire.h, docs/misc/xenstore-ring.txt):
// requests arrive in req[], replies and watch events leave through rsp[],
// each a byte stream indexed by free-running 32-bit counters.
//
// The page is a view of guest memory that the guest may change at any time:
// indices are loaded once per step and checked (prod - cons must not exceed
// RingSize), bytes are copied out before they are parsed, and a violation
// stops the connection with the error field set (XENSTORE_ERROR_*) instead
// of touching memory out of bounds. A stopped connection recovers through
// the reconnection protocol (XENSTORE_SERVER_FEATURE_RECONNECTION).
type Ring struct {
	d      *Daemon
	dom    *domain
	page   []byte
	words  ringWords
	notify func() // kicks the guest's event channel

	// c and kickQueued are guarded by Daemon.mu.
	c          *conn
	kickQueued bool
}

// kick queues a notification of the guest for when Daemon.mu is released.
func (r *Ring) kick() {
	if !r.kickQueued {
		r.kickQueued = true
		r.d.kicks = append(r.d.kicks, r)
	}
}

// Introduce connects a guest domain: page is its xenstore ring page (at
// least the 2080 bytes of struct xenstore_domain_interface, 4-byte aligned),
// notify signals its event channel. notify may be called from any goroutine
// the daemon runs on, but never with the daemon's lock held; it must not
// block for long. Introduce advertises the server features in the page and
// fires @introduceDomain. The caller calls HandleEvent whenever the guest
// signals the event channel.
func (d *Daemon) Introduce(domid uint32, page []byte, notify func()) (*Ring, error) {
	d.lock()
	defer d.unlock()
	return d.introduce(domid, page, notify)
}

func (d *Daemon) introduce(domid uint32, page []byte, notify func()) (*Ring, error) {
	if domid == 0 || domid >= DomidSelf {
		return nil, fmt.Errorf("xenstore: introduce domain %d: %w", domid, syscall.EINVAL)
	}
	words, err := newRingWords(page)
	if err != nil {
		return nil, fmt.Errorf("xenstore: introduce domain %d: %w", domid, err)
	}
	dom, err := d.domainRecord(domid)
	if err != nil {
		return nil, err
	}
	if dom.introduced {
		return nil, fmt.Errorf("xenstore: introduce domain %d: %w", domid, syscall.EEXIST)
	}
	if notify == nil {
		notify = func() {}
	}
	r := &Ring{d: d, dom: dom, page: page, words: words, notify: notify}
	r.c = d.newConn(domid, dom, r)
	dom.introduced = true
	dom.shutdown = false
	dom.conn = r.c
	dom.ring = r
	r.words.store(offServerFeatures, dom.features)
	d.fireSpecial(IntroduceDomainPath, domid)
	return r, nil
}

// domainRecord returns the record for domid, creating it with the current
// default quota and all features. Reserved domids are ENOENT.
func (d *Daemon) domainRecord(domid uint32) (*domain, error) {
	if dom := d.domains[domid]; dom != nil {
		return dom, nil
	}
	if domid >= DomidSelf {
		return nil, syscall.ENOENT
	}
	dom := &domain{id: domid, features: SupportedFeatures, quota: d.quota, target: -1}
	d.domains[domid] = dom
	return dom, nil
}

// Release disconnects a domain (RELEASE): its watches and transactions go,
// the nodes it owns are deleted and its permission entries dropped from the
// others (xenstored's domain_tree_remove), and @releaseDomain fires.
func (d *Daemon) Release(domid uint32) error {
	d.lock()
	defer d.unlock()
	dom := d.domains[domid]
	if dom == nil || !dom.introduced {
		return fmt.Errorf("xenstore: release domain %d: %w", domid, syscall.ENOENT)
	}
	d.release(dom)
	return nil
}

func (d *Daemon) release(dom *domain) {
	d.removeConn(dom.conn)
	dom.conn = nil
	dom.ring = nil
	dom.introduced = false
	d.removeDomainNodes(dom.id)
	for _, o := range d.domains {
		if o.target == int(dom.id) {
			o.target = -1
		}
	}
	delete(d.domains, dom.id)
	d.fireSpecial(ReleaseDomainPath, dom.id)
}

// removeDomainNodes deletes the subtrees owned by domid and removes its
// other permission entries, so that a later domain reusing the id inherits
// nothing.
func (d *Daemon) removeDomainNodes(domid uint32) {
	s := d.store
	var walk func(p string)
	walk = func(p string) {
		n := s.get(p)
		if n == nil {
			return
		}
		if p != "/" && p[0] != '@' && n.owner() == domid {
			if err := d.rmTree(nil, nil, p); err != nil {
				d.log.Error("xenstore: removing node of released domain", "path", p, "domid", domid, "err", err)
			}
			return
		}
		keep := n.perms[:1:1]
		for _, x := range n.perms[1:] {
			if x.Domid != domid {
				keep = append(keep, x)
			}
		}
		if len(keep) != len(n.perms) {
			nn := n.clone()
			nn.perms = keep
			s.put(p, nn)
		}
		for _, ch := range append([]string(nil), n.children...) {
			walk(childPath(p, ch))
		}
	}
	walk("/")
	walk(IntroduceDomainPath)
	walk(ReleaseDomainPath)
}

// DomainShutdown reports that a guest has shut down or crashed: the first
// report after INTRODUCE or RESUME fires @releaseDomain, as xenstored does
// on VIRQ_DOM_EXC. The domain stays introduced.
func (d *Daemon) DomainShutdown(domid uint32) {
	d.lock()
	defer d.unlock()
	dom := d.domains[domid]
	if dom == nil || !dom.introduced || dom.shutdown {
		return
	}
	dom.shutdown = true
	d.fireSpecial(ReleaseDomainPath, domid)
}

// IsIntroduced reports whether domid is connected (IS_DOMAIN_INTRODUCED).
func (d *Daemon) IsIntroduced(domid uint32) bool {
	d.lock()
	defer d.unlock()
	dom := d.domains[domid]
	return dom != nil && dom.introduced
}

// HandleEvent processes the ring after the guest signalled its event
// channel: it serves complete requests, writes pending replies and watch
// events as space allows, and notifies the guest when it consumed or
// produced anything. It is safe to call at any time and from any goroutine.
func (r *Ring) HandleEvent() {
	r.d.lock()
	defer r.d.unlock()
	r.service()
}

// Kick polls the ring as if the guest had signalled: the VMM calls it when
// it has reason to think the ring moved without an event (after restoring
// a guest, from a timer). It is HandleEvent by another name.
func (r *Ring) Kick() { r.HandleEvent() }

// Domid returns the guest's domain id.
func (r *Ring) Domid() uint32 { return r.dom.id }

// service does one round of ring work; Daemon.mu is held.
func (r *Ring) service() {
	c := r.c
	if c.closed {
		return
	}
	kick := false
	if r.words.load(offConnection) == StateReconnect {
		r.reconnect()
		return
	}
	if c.ignored {
		return
	}
	kick = r.write() || kick
	var buf [RingSize]byte
	for !c.ignored && !c.closed {
		if q := c.quota(); q != nil && q.Outstanding > 0 && c.replies >= q.Outstanding {
			break // the guest must drain replies first
		}
		cons := r.words.load(offReqCons)
		prod := r.words.load(offReqProd)
		avail := prod - cons
		if avail > RingSize {
			r.fail(ErrorRingIdx, "request ring indices inconsistent", cons, prod)
			break
		}
		if avail == 0 {
			break
		}
		off := cons % RingSize
		n := min(avail, RingSize-off)
		copy(buf[:n], r.page[offReq+off:offReq+off+n])
		used, m, err := c.dec.feed(buf[:n])
		r.words.store(offReqCons, cons+uint32(used))
		kick = true
		if err != nil {
			r.fail(ErrorProto, err.Error(), cons, prod)
			break
		}
		if m != nil {
			r.d.process(c, m)
			r.write()
		}
	}
	if r.write() || kick {
		r.kick()
	}
}

// flush implements transport: output queued by another connection's
// request (a watch event) goes out at once.
func (r *Ring) flush() {
	if r.c.ignored || r.c.closed {
		return
	}
	if r.words.load(offConnection) == StateReconnect {
		return
	}
	if r.write() {
		r.kick()
	}
}

// write copies queued output into the response ring as far as it fits and
// reports whether it produced anything.
func (r *Ring) write() bool {
	c := r.c
	wrote := false
	for len(c.out) > 0 && !c.ignored {
		cons := r.words.load(offRspCons)
		prod := r.words.load(offRspProd)
		used := prod - cons
		if used > RingSize {
			r.fail(ErrorRingIdx, "response ring indices inconsistent", cons, prod)
			return wrote
		}
		space := RingSize - used
		if space == 0 {
			return wrote
		}
		m := &c.out[0]
		off := prod % RingSize
		n := min(space, RingSize-off, uint32(len(m.data)-m.sent))
		copy(r.page[offRsp+off:offRsp+off+n], m.data[m.sent:m.sent+int(n)])
		r.words.store(offRspProd, prod+n)
		wrote = true
		m.sent += int(n)
		if m.sent == len(m.data) {
			c.dequeue()
		}
	}
	return wrote
}

// fail stops serving the guest after a protocol violation, as xenstored's
// ignore_connection: the error field tells the guest why, and its watches,
// transactions and queued data are dropped.
func (r *Ring) fail(code uint32, why string, cons, prod uint32) {
	r.d.log.Error("xenstore: guest ring protocol error; connection stopped",
		"domid", r.dom.id, "reason", why, "cons", cons, "prod", prod)
	if r.dom.features&FeatureError != 0 {
		r.words.store(offError, code)
	}
	r.d.resetConn(r.c)
	r.c.ignored = true
}

// reconnect serves the guest's reconnection request: drop all state of the
// connection, empty both rings, clear the error and report "connected"
// (docs/misc/xenstore-ring.txt "The ring reconnection feature").
func (r *Ring) reconnect() {
	r.d.resetConn(r.c)
	r.c.ignored = false
	r.clearRings()
	r.words.store(offConnection, StateConnected)
	r.kick()
}

// clearRings zeroes the indices and fills both queues with 0xff (an
// invalid message type), as oxenstored does.
func (r *Ring) clearRings() {
	r.words.store(offReqCons, 0)
	r.words.store(offReqProd, 0)
	r.words.store(offRspCons, 0)
	r.words.store(offRspProd, 0)
	for i := range 2 * RingSize {
		r.page[i] = 0xff
	}
	r.words.store(offError, ErrorNone)
}

// reintroduce serves INTRODUCE of a connected domain (resume): indices are
// reset, and a pending reconnection request is completed.
func (r *Ring) reintroduce() {
	r.c.ignored = false
	r.words.store(offReqCons, 0)
	r.words.store(offReqProd, 0)
	r.words.store(offRspCons, 0)
	r.words.store(offRspProd, 0)
	if r.words.load(offConnection) == StateReconnect {
		r.words.store(offConnection, StateConnected)
	}
	r.kick()
}
