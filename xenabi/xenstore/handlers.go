package xenstore

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"syscall"
)

// handler serves one request. It returns the reply payload, or an errno;
// after, if set, runs once the reply is queued (WATCH's first event).
type handler func(d *Daemon, c *conn, tx *txn, m *Message) (reply []byte, after func(), err error)

const (
	flagNoTx = 1 << iota // the tx_id is ignored (WATCH, UNWATCH)
	flagPriv             // privileged connections only
)

type handlerEntry struct {
	fn    handler
	flags int
}

// handlers is xenstored's wire_funcs table. Types missing from it (and
// WATCH_EVENT, ERROR, RESTRICT) are answered with ENOSYS, as
// docs/misc/xenstore.txt requires for unsupported types.
var handlers = [TypeCount]handlerEntry{
	TypeControl:            {hControl, flagPriv},
	TypeDirectory:          {hDirectory, 0},
	TypeRead:               {hRead, 0},
	TypeGetPerms:           {hGetPerms, 0},
	TypeWatch:              {hWatch, flagNoTx},
	TypeUnwatch:            {hUnwatch, flagNoTx},
	TypeTransactionStart:   {hTxStart, 0},
	TypeTransactionEnd:     {hTxEnd, 0},
	TypeIntroduce:          {hIntroduce, flagPriv},
	TypeRelease:            {hRelease, flagPriv},
	TypeGetDomainPath:      {hGetDomainPath, 0},
	TypeWrite:              {hWrite, 0},
	TypeMkdir:              {hMkdir, 0},
	TypeRm:                 {hRm, 0},
	TypeSetPerms:           {hSetPerms, 0},
	TypeIsDomainIntroduced: {hIsDomainIntroduced, flagPriv},
	TypeResume:             {hResume, flagPriv},
	TypeSetTarget:          {hSetTarget, flagPriv},
	TypeResetWatches:       {hResetWatches, 0},
	TypeDirectoryPart:      {hDirectoryPart, 0},
	TypeGetFeature:         {hGetFeature, 0},
	TypeSetFeature:         {hSetFeature, flagPriv},
	TypeGetQuota:           {hGetQuota, flagPriv},
	TypeSetQuota:           {hSetQuota, flagPriv},
}

// process serves one request from c and queues its reply; mu is held.
func (d *Daemon) process(c *conn, m *Message) {
	var e handlerEntry
	if m.Type < TypeCount {
		e = handlers[m.Type]
	}
	if e.fn == nil {
		c.replyErr(m.Header, syscall.ENOSYS)
		return
	}
	if e.flags&flagPriv != 0 && !c.priv {
		c.replyErr(m.Header, syscall.EACCES)
		return
	}
	var tx *txn
	if e.flags&flagNoTx == 0 && m.TxID != 0 {
		if tx = c.txs[m.TxID]; tx == nil {
			c.replyErr(m.Header, syscall.ENOENT)
			return
		}
	}
	reply, after, err := e.fn(d, c, tx, m)
	if err != nil {
		errno, ok := err.(syscall.Errno)
		if !ok {
			d.log.Error("xenstore: request failed", "type", m.Type, "domid", c.domid, "err", err)
			errno = syscall.EIO
		}
		c.replyErr(m.Header, errno)
		return
	}
	c.reply(m.Header, m.Type, reply)
	if after != nil {
		after()
	}
}

// okReply is the payload of a plain acknowledgement.
var okReply = []byte("OK\x00")

// strings splits a payload into its NUL-terminated strings; bytes after
// the last NUL are ignored (xenstored's get_strings).
func nulStrings(p []byte) []string {
	var out []string
	for {
		i := bytes.IndexByte(p, 0)
		if i < 0 {
			return out
		}
		out = append(out, string(p[:i]))
		p = p[i+1:]
	}
}

// onearg returns the payload's only argument: it must hold exactly one NUL,
// at the end (xenstored's onearg).
func onearg(p []byte) (string, error) {
	if len(p) == 0 || bytes.IndexByte(p, 0) != len(p)-1 {
		return "", syscall.EINVAL
	}
	return string(p[:len(p)-1]), nil
}

func cstr(s string) []byte { return append([]byte(s), 0) }

func hRead(d *Daemon, c *conn, tx *txn, m *Message) ([]byte, func(), error) {
	p, err := onearg(m.Payload)
	if err != nil {
		return nil, nil, err
	}
	v, err := d.opRead(c, tx, p)
	return v, nil, err
}

func hWrite(d *Daemon, c *conn, tx *txn, m *Message) ([]byte, func(), error) {
	i := bytes.IndexByte(m.Payload, 0)
	if i < 0 {
		return nil, nil, syscall.EINVAL
	}
	return okReply, nil, d.opWrite(c, tx, string(m.Payload[:i]), m.Payload[i+1:])
}

func hMkdir(d *Daemon, c *conn, tx *txn, m *Message) ([]byte, func(), error) {
	p, err := onearg(m.Payload)
	if err != nil {
		return nil, nil, err
	}
	return okReply, nil, d.opMkdir(c, tx, p)
}

func hRm(d *Daemon, c *conn, tx *txn, m *Message) ([]byte, func(), error) {
	p, err := onearg(m.Payload)
	if err != nil {
		return nil, nil, err
	}
	return okReply, nil, d.opRm(c, tx, p)
}

func joinNul(ss []string) []byte {
	var b []byte
	for _, s := range ss {
		b = append(append(b, s...), 0)
	}
	return b
}

func hDirectory(d *Daemon, c *conn, tx *txn, m *Message) ([]byte, func(), error) {
	p, err := onearg(m.Payload)
	if err != nil {
		return nil, nil, err
	}
	ch, _, err := d.opDirectory(c, tx, p)
	if err != nil {
		return nil, nil, err
	}
	return joinNul(ch), nil, nil
}

// hDirectoryPart answers <path>|<offset>| with <gencnt>|<children from
// offset>, and a final empty string once the list is complete, cutting the
// list to fit XENSTORE_PAYLOAD_MAX as xenstored's send_directory_part.
func hDirectoryPart(d *Daemon, c *conn, tx *txn, m *Message) ([]byte, func(), error) {
	if bytes.Count(m.Payload, []byte{0}) != 2 {
		return nil, nil, syscall.EINVAL
	}
	args := nulStrings(m.Payload)
	ch, gen, err := d.opDirectory(c, tx, args[0])
	if err != nil {
		return nil, nil, err
	}
	all := joinNul(ch)
	off := atoi(args[1])
	g := cstr(strconv.FormatUint(gen, 10))
	if off < 0 || off >= len(all) {
		return append(g, 0), nil, nil
	}
	maxlen := PayloadMax - len(g) - 1
	n := 0
	for off+n < len(all) {
		e := bytes.IndexByte(all[off+n:], 0)
		if n+e >= maxlen {
			break
		}
		n += e + 1
	}
	out := append(g, all[off:off+n]...)
	if off+n == len(all) {
		out = append(out, 0)
	}
	return out, nil, nil
}

func hGetPerms(d *Daemon, c *conn, tx *txn, m *Message) ([]byte, func(), error) {
	p, err := onearg(m.Payload)
	if err != nil {
		return nil, nil, err
	}
	perms, err := d.opGetPerms(c, tx, p)
	if err != nil {
		return nil, nil, err
	}
	var b []byte
	for _, x := range perms {
		b = append(append(b, x.String()...), 0)
	}
	return b, nil, nil
}

func hSetPerms(d *Daemon, c *conn, tx *txn, m *Message) ([]byte, func(), error) {
	args := nulStrings(m.Payload)
	if len(args) < 2 {
		return nil, nil, syscall.EINVAL
	}
	if q := c.quota(); q != nil && exceeds(q.Permissions, len(args)-1) {
		return nil, nil, syscall.ENOSPC
	}
	perms, err := ParsePerms(args[1:]...)
	if err != nil {
		return nil, nil, syscall.EINVAL
	}
	return okReply, nil, d.opSetPerms(c, tx, args[0], perms)
}

func hWatch(d *Daemon, c *conn, _ *txn, m *Message) ([]byte, func(), error) {
	args := nulStrings(m.Payload)
	depth := -1
	switch {
	case len(args) == 3 && c.features()&FeatureWatchDepth != 0:
		if depth = atoi(args[2]); depth < 0 {
			return nil, nil, syscall.EINVAL
		}
	case len(args) != 2:
		return nil, nil, syscall.EINVAL
	}
	w, err := d.opWatch(c, args[0], args[1], depth, nil)
	if err != nil {
		return nil, nil, err
	}
	// The watch fires once straight away, after the acknowledgement.
	return okReply, func() { d.deliver(w, w.path) }, nil
}

func hUnwatch(d *Daemon, c *conn, _ *txn, m *Message) ([]byte, func(), error) {
	args := nulStrings(m.Payload)
	if len(args) != 2 {
		return nil, nil, syscall.EINVAL
	}
	return okReply, nil, d.opUnwatch(c, args[0], args[1])
}

func hResetWatches(d *Daemon, c *conn, _ *txn, _ *Message) ([]byte, func(), error) {
	d.opResetWatches(c)
	return okReply, nil, nil
}

func hTxStart(d *Daemon, c *conn, tx *txn, _ *Message) ([]byte, func(), error) {
	if tx != nil {
		return nil, nil, syscall.EBUSY // no nested transactions
	}
	id, err := d.opTxStart(c)
	if err != nil {
		return nil, nil, err
	}
	return cstr(strconv.FormatUint(uint64(id), 10)), nil, nil
}

func hTxEnd(d *Daemon, c *conn, tx *txn, m *Message) ([]byte, func(), error) {
	arg, err := onearg(m.Payload)
	if err != nil || (arg != "T" && arg != "F") {
		return nil, nil, syscall.EINVAL
	}
	return okReply, nil, d.opTxEnd(c, tx, arg == "T")
}

func hGetDomainPath(d *Daemon, c *conn, _ *txn, m *Message) ([]byte, func(), error) {
	arg, err := onearg(m.Payload)
	if err != nil {
		return nil, nil, err
	}
	id, good := parseDomid(arg)
	if !good {
		return nil, nil, syscall.EINVAL
	}
	return cstr(DomainPath(id)), nil, nil
}

func hIsDomainIntroduced(d *Daemon, c *conn, _ *txn, m *Message) ([]byte, func(), error) {
	arg, err := onearg(m.Payload)
	if err != nil {
		return nil, nil, err
	}
	id, good := parseDomid(arg)
	if !good {
		return nil, nil, syscall.EINVAL
	}
	if id == DomidSelf || (d.domains[id] != nil && d.domains[id].introduced) {
		return cstr("T"), nil, nil
	}
	return cstr("F"), nil, nil
}

// hIntroduce serves INTRODUCE <domid>|<gfn>|<evtchn>|. For a domain already
// introduced it resets the connection as xenstored does on resume; a new
// domain needs Options.MapRing to reach its ring page.
func hIntroduce(d *Daemon, c *conn, _ *txn, m *Message) ([]byte, func(), error) {
	args := nulStrings(m.Payload)
	if len(args) < 3 {
		return nil, nil, syscall.EINVAL
	}
	id, good := parseDomid(args[0])
	if !good || id == 0 || id >= DomidSelf {
		return nil, nil, syscall.EINVAL
	}
	gfn, err := strconv.ParseInt(args[1], 10, 64)
	port := atoi(args[2])
	if err != nil || port <= 0 {
		return nil, nil, syscall.EINVAL
	}
	if dom := d.domains[id]; dom != nil && dom.introduced {
		d.resetConn(dom.conn)
		dom.ring.reintroduce()
		return okReply, nil, nil
	}
	if d.mapRing == nil {
		return nil, nil, syscall.EINVAL
	}
	page, notify, err := d.mapRing(id, uint64(gfn), uint32(port))
	if err != nil {
		d.log.Error("xenstore: INTRODUCE: mapping the ring failed", "domid", id, "gfn", gfn, "err", err)
		return nil, nil, syscall.EINVAL
	}
	if _, err := d.introduce(id, page, notify); err != nil {
		return nil, nil, err
	}
	return okReply, nil, nil
}

// introducedArg parses the single domid argument of RELEASE and RESUME; the
// privileged domain is refused (xenstored's onearg_domain).
func (d *Daemon) introducedArg(m *Message) (*domain, error) {
	arg, err := onearg(m.Payload)
	if err != nil {
		return nil, err
	}
	id, good := parseDomid(arg)
	if !good || id == 0 {
		return nil, syscall.EINVAL
	}
	dom := d.domains[id]
	if dom == nil || !dom.introduced {
		return nil, syscall.ENOENT
	}
	return dom, nil
}

func hRelease(d *Daemon, c *conn, _ *txn, m *Message) ([]byte, func(), error) {
	dom, err := d.introducedArg(m)
	if err != nil {
		return nil, nil, err
	}
	d.release(dom)
	return okReply, nil, nil
}

func hResume(d *Daemon, c *conn, _ *txn, m *Message) ([]byte, func(), error) {
	dom, err := d.introducedArg(m)
	if err != nil {
		return nil, nil, err
	}
	dom.shutdown = false
	return okReply, nil, nil
}

func hSetTarget(d *Daemon, c *conn, _ *txn, m *Message) ([]byte, func(), error) {
	args := nulStrings(m.Payload)
	if len(args) < 2 {
		return nil, nil, syscall.EINVAL
	}
	id, ok1 := parseDomid(args[0])
	tid, ok2 := parseDomid(args[1])
	if !ok1 || !ok2 {
		return nil, nil, syscall.EINVAL
	}
	dom, tdom := d.domains[id], d.domains[tid]
	if dom == nil || !dom.introduced || tdom == nil || !tdom.introduced {
		return nil, nil, syscall.ENOENT
	}
	dom.target = int(tid)
	return okReply, nil, nil
}

func hGetFeature(d *Daemon, c *conn, _ *txn, m *Message) ([]byte, func(), error) {
	args := nulStrings(m.Payload)
	var f uint32
	switch len(args) {
	case 0:
		f = c.features()
	case 1:
		if !c.priv {
			return nil, nil, syscall.EACCES
		}
		id, good := parseDomid(args[0])
		if !good {
			return nil, nil, syscall.EINVAL
		}
		dom, err := d.domainRecord(id)
		if err != nil {
			return nil, nil, err
		}
		f = dom.features
	default:
		return nil, nil, syscall.EINVAL
	}
	return cstr(strconv.FormatUint(uint64(f), 10)), nil, nil
}

func hSetFeature(d *Daemon, c *conn, _ *txn, m *Message) ([]byte, func(), error) {
	args := nulStrings(m.Payload)
	if len(args) != 2 {
		return nil, nil, syscall.EINVAL
	}
	id, good := parseDomid(args[0])
	if !good {
		return nil, nil, syscall.EINVAL
	}
	dom, err := d.domainRecord(id)
	if err != nil {
		return nil, nil, err
	}
	if dom.introduced {
		return nil, nil, syscall.EBUSY
	}
	f := uint32(atoi(args[1]))
	if f&^SupportedFeatures != 0 {
		return nil, nil, syscall.EINVAL
	}
	dom.features = f
	return okReply, nil, nil
}

// quotaTarget resolves the optional domid of GET_QUOTA/SET_QUOTA: the
// global defaults without one, else that domain's own limits.
func (d *Daemon) quotaTarget(args []string, withDomid bool) (*Quota, []string, error) {
	if !withDomid {
		return &d.quota, args, nil
	}
	id, good := parseDomid(args[0])
	if !good {
		return nil, nil, syscall.EINVAL
	}
	dom, err := d.domainRecord(id)
	if err != nil {
		return nil, nil, err
	}
	return &dom.quota, args[1:], nil
}

func hGetQuota(d *Daemon, c *conn, _ *txn, m *Message) ([]byte, func(), error) {
	args := nulStrings(m.Payload)
	if len(args) > 2 {
		return nil, nil, syscall.EINVAL
	}
	if len(args) == 0 {
		return cstr(quotaNames()), nil, nil
	}
	q, rest, err := d.quotaTarget(args, len(args) == 2)
	if err != nil {
		return nil, nil, err
	}
	v, found := q.Get(rest[0])
	if !found {
		return nil, nil, syscall.EINVAL
	}
	return cstr(strconv.Itoa(v)), nil, nil
}

func hSetQuota(d *Daemon, c *conn, _ *txn, m *Message) ([]byte, func(), error) {
	args := nulStrings(m.Payload)
	if len(args) < 2 || len(args) > 3 {
		return nil, nil, syscall.EINVAL
	}
	q, rest, err := d.quotaTarget(args, len(args) == 3)
	if err != nil {
		return nil, nil, err
	}
	v, err := strconv.Atoi(rest[1])
	if err != nil || q.Set(rest[0], v) != nil {
		return nil, nil, syscall.EINVAL
	}
	return okReply, nil, nil
}

// controlCommands lists CONTROL's sub-commands and their parameters.
var controlCommands = [...]struct{ name, pars string }{
	{"check", ""},
	{"help", ""},
	{"print", "<string>"},
	{"quota", "[set <name> <val>|<domid>]"},
}

// hControl serves CONTROL (alias DEBUG): check, help, print and quota as
// xenstored's control.c; anything else is EINVAL.
func hControl(d *Daemon, c *conn, _ *txn, m *Message) ([]byte, func(), error) {
	args := nulStrings(m.Payload)
	if len(args) == 0 {
		return nil, nil, syscall.EINVAL
	}
	cmd, par := args[0], args[1:]
	switch cmd {
	case "check":
		if len(par) != 0 {
			return nil, nil, syscall.EINVAL
		}
		if err := d.store.check(); err != nil {
			d.log.Error("xenstore: store check failed", "err", err)
			return nil, nil, syscall.EIO
		}
		return okReply, nil, nil
	case "help":
		if len(par) != 0 {
			return nil, nil, syscall.EINVAL
		}
		var b strings.Builder
		for _, x := range controlCommands {
			fmt.Fprintf(&b, "%-15s %s\n", x.name, x.pars)
		}
		return cstr(b.String()), nil, nil
	case "print":
		if len(par) != 1 {
			return nil, nil, syscall.EINVAL
		}
		d.log.Info("xenstore: control print", "msg", par[0])
		return okReply, nil, nil
	case "quota":
		return d.controlQuota(par)
	}
	return nil, nil, syscall.EINVAL
}

func (d *Daemon) controlQuota(par []string) ([]byte, func(), error) {
	var b strings.Builder
	switch {
	case len(par) == 0:
		b.WriteString("Quota settings:\n")
		for _, f := range quotaFields {
			fmt.Fprintf(&b, "%-17s: %8d %s\n", f.name, *f.ptr(&d.quota), f.descr)
		}
	case par[0] == "set":
		if len(par) != 3 {
			return nil, nil, syscall.EINVAL
		}
		v := atoi(par[2])
		if v < 1 {
			return nil, nil, syscall.EINVAL
		}
		if err := d.quota.Set(par[1], v); err != nil {
			return nil, nil, syscall.EINVAL
		}
		return okReply, nil, nil
	case len(par) == 1:
		id, good := parseDomid(par[0])
		if !good {
			return nil, nil, syscall.EINVAL
		}
		dom := d.domains[id]
		if dom == nil {
			return nil, nil, syscall.ENOENT
		}
		use := d.usage(dom)
		fmt.Fprintf(&b, "Domain %d:\n", id)
		for _, f := range quotaFields {
			fmt.Fprintf(&b, "%-17s: %8d (quota %8d)\n", f.name, *f.ptr(&use), *f.ptr(&dom.quota))
		}
	default:
		return nil, nil, syscall.EINVAL
	}
	return cstr(b.String()), nil, nil
}

// usage reports a domain's current consumption in Quota's shape.
func (d *Daemon) usage(dom *domain) Quota {
	u := Quota{Nodes: d.store.owned[dom.id]}
	if c := dom.conn; c != nil {
		u.Watches = len(c.watches)
		u.Transactions = len(c.txs)
		u.Outstanding = c.replies
		u.WatchEvents = c.events
	}
	return u
}
