package netback

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/xenvmm/xenvmm/config"
	"github.com/xenvmm/xenvmm/devices/ring"
	"github.com/xenvmm/xenvmm/devices/tap"
)

// Defaults and tuning.
const (
	// DefaultMaxQueues is what multi-queue-max-queues offers when
	// Options.MaxQueues is 0. Each queue is a TX and an RX ring with
	// their own goroutines; all share the vif's tap.
	DefaultMaxQueues = 4
	// DefaultMTU is the MTU of the tap and of the frontend (netif.h:
	// "If this node is absent the frontend should assume an MTU value of
	// 1500 octets").
	DefaultMTU = 1500

	rxBufSize      = tap.VnetHdrLen + maxFrame
	rxBatch        = 16 // frames per ReadBatch
	rxQueueDepth   = 16 // frames waiting for one queue's RX goroutine
	rxPoolSize     = 64 // frame buffers per vif, allocated on demand
	rxFlushEvery   = 32 // publish RX responses at least this often
	rxPollInterval = 10 * time.Millisecond
	warnLimit      = 10 // malformed-request warnings logged per queue
)

// Sentinel errors.
var (
	// ErrClosed: the vif was closed.
	ErrClosed = errors.New("netback: vif closed")
	// ErrNoRxCopy: the frontend did not write request-rx-copy = 1.
	// netback has only the copying receive path ("page flipping" is long
	// gone from Linux's netback too).
	ErrNoRxCopy = errors.New("netback: frontend does not request rx-copy; page flipping is not supported")
	// ErrFrontend: the frontend's xenstore nodes are missing, malformed
	// or inconsistent.
	ErrFrontend = errors.New("netback: bad frontend configuration")
	// ErrConnected: Connect without a Disconnect after the last one.
	ErrConnected = errors.New("netback: already connected")
)

// Options are what New needs beside the vif's configuration.
type Options struct {
	// DomID is the guest's domain id (names the tap: vif<domid>.<devid>).
	DomID uint16
	// Index is the vif's position in the domain's vif list: its devid
	// unless the spec has devid=.
	Index int
	// DomainName is the guest's name (the xend hotplug convention's
	// domain=).
	DomainName string
	// MaxQueues is multi-queue-max-queues; 0 means DefaultMaxQueues.
	MaxQueues int
	// Link, when set, is the host side to use instead of a tap created
	// from the configuration (tests; a tap set up by the caller). The vif
	// owns it and closes it in Close. No hotplug script runs for it.
	Link Link
	// ScriptDir is where a script= without '/' is found
	// (tap.DefaultScriptDir when empty).
	ScriptDir string
	// ScriptConvention is how script= is called; the zero value is the
	// xend convention of the seed configurations (tap.ConventionXend).
	ScriptConvention tap.Convention
	// ScriptEnv adds environment variables for the script.
	ScriptEnv []string
	// ScriptTimeout bounds each run (tap.DefaultScriptTimeout when 0).
	ScriptTimeout time.Duration
	// Log receives warnings (malformed requests, rate-limited) and
	// lifecycle messages; nil discards them.
	Log *slog.Logger
	// Rand is the source of a MAC address when the spec has none
	// (crypto/rand when nil).
	Rand io.Reader
}

// Vif is one network interface of the guest: the netback device for
// xenbus (Type "vif"), and its host side, a tap. It implements the xenbus
// framework's Device and io.Closer.
type Vif struct {
	spec     config.Vif
	domid    uint16
	devid    int
	name     string
	mac      net.HardwareAddr // the guest's
	mtu      int
	maxQ     int
	link     Link
	hotplug  *tap.Hotplug
	log      *slog.Logger
	stats    counters
	pool     *bufPool
	closeC   chan struct{}
	readDone chan struct{}

	mu      sync.Mutex
	conn    *conn // the running connection
	pending *conn // a Connect in progress or failed, for Disconnect
	closed  bool
}

// New sets up vif v of guest o.DomID: it picks the guest's MAC (mac=, or
// 00:16:3e with three random bytes as xl does), creates the tap
// (vifname= or vif<domid>.<devid>; MAC tap.HostMAC of mac=, or
// fe:ff:ff:ff:ff:ff; MTU mtu= or 1500; a port of bridge= when given; up,
// with its carrier off until a frontend connects), runs script= "up" when
// given, and starts reading frames. The guest
// connects later through the xenbus Bus (Connect). Keys it does not
// implement (rate=, backend= other than domain 0, accel, COLO) are
// refused or logged.
func New(v config.Vif, o Options) (*Vif, error) {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	devid := o.Index
	if v.DevID != nil {
		devid = *v.DevID
	}
	if devid < 0 {
		return nil, fmt.Errorf("netback: vif devid %d", devid)
	}
	if v.Backend != "" && v.Backend != "0" && v.Backend != "Domain-0" {
		return nil, fmt.Errorf("netback: vif %d: backend=%s: driver domains are not supported; xenvmm is domain 0", devid, v.Backend)
	}
	maxQ := o.MaxQueues
	if maxQ == 0 {
		maxQ = DefaultMaxQueues
	}
	if maxQ < 1 {
		return nil, fmt.Errorf("netback: MaxQueues %d", maxQ)
	}
	vif := &Vif{
		spec: v, domid: o.DomID, devid: devid, mtu: v.MTU, maxQ: maxQ,
		pool:     newBufPool(rxPoolSize, rxBufSize),
		closeC:   make(chan struct{}),
		readDone: make(chan struct{}),
	}
	if vif.mtu == 0 {
		vif.mtu = DefaultMTU
	}
	guestMACGiven := v.MAC != ""
	if guestMACGiven {
		vif.mac = v.HardwareAddr()
		if vif.mac == nil {
			return nil, fmt.Errorf("netback: vif %d: bad mac %q", devid, v.MAC)
		}
		if vif.mac[0]&1 != 0 {
			return nil, fmt.Errorf("netback: vif %d: mac %s is a multicast address", devid, vif.mac)
		}
	} else {
		r := o.Rand
		if r == nil {
			r = rand.Reader
		}
		var b [3]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, fmt.Errorf("netback: vif %d: random MAC: %w", devid, err)
		}
		// libxl__device_nic_setdefault: Xen's OUI, top bit of the
		// fourth octet clear.
		vif.mac = net.HardwareAddr{0x00, 0x16, 0x3e, b[0] & 0x7f, b[1], b[2]}
	}
	vif.name = v.VifName
	if vif.name == "" {
		vif.name = tap.DefaultName(o.DomID, devid)
	}
	if err := tap.ValidName(vif.name); err != nil {
		return nil, fmt.Errorf("netback: vif %d: %w", devid, err)
	}
	vif.log = log.With("vif", vif.name)
	if v.Rate != "" {
		vif.log.Warn("netback: rate= is not implemented; the vif is not rate-limited", "rate", v.Rate)
	}
	for _, opt := range v.Other {
		vif.log.Warn("netback: vif option ignored", "key", opt.Key, "value", opt.Value)
	}

	vif.link = o.Link
	if vif.link == nil {
		var hostMAC net.HardwareAddr
		if guestMACGiven {
			hostMAC = tap.HostMAC(vif.mac)
		} else {
			hostMAC = tap.HostMAC(nil)
		}
		t, err := tap.Create(tap.Config{Name: vif.name, MAC: hostMAC, MTU: vif.mtu, Bridge: v.Bridge})
		if err != nil {
			return nil, fmt.Errorf("netback: vif %d: %w", devid, err)
		}
		vif.link = t
		if v.Script != "" {
			vif.hotplug = &tap.Hotplug{
				Script: v.Script, Dir: o.ScriptDir, Convention: o.ScriptConvention, Timeout: o.ScriptTimeout,
				Domain: o.DomainName, DomID: o.DomID, DevID: devid, VifName: vif.name,
				MAC: vif.mac.String(), Bridge: v.Bridge, IP: v.IP, GatewayDev: v.GatewayDev,
				Env: o.ScriptEnv,
			}
			if err := vif.hotplug.Run(context.Background(), tap.Up); err != nil {
				t.Close()
				return nil, fmt.Errorf("netback: vif %d: %w", devid, err)
			}
		}
	}
	if err := setCarrier(vif.link, false); err != nil {
		vif.log.Warn("netback: cannot turn the link's carrier off", "err", err)
	}
	go vif.readLoop()
	vif.log.Debug("netback: vif ready", "mac", vif.mac, "bridge", v.Bridge, "mtu", vif.mtu)
	return vif, nil
}

// Type is the xenstore device class, "vif".
func (v *Vif) Type() string { return "vif" }

// DevID is the vif's device id.
func (v *Vif) DevID() int { return v.devid }

// Name is the host interface's name.
func (v *Vif) Name() string { return v.name }

// MAC is the guest's MAC address.
func (v *Vif) MAC() net.HardwareAddr { return append(net.HardwareAddr(nil), v.mac...) }

// Stats returns the vif's counters.
func (v *Vif) Stats() Stats { return v.stats.snapshot() }

// BackendNodes are the backend directory's nodes: what libxl writes for
// a vif (handle, mac, bridge, script, ip, gatewaydev, vifname, mtu,
// type) and what Linux's netback announces (netback_probe and
// xen_net_read_mac's counterparts): feature-sg, feature-gso-tcpv4/v6,
// feature-ipv6-csum-offload, feature-rx-copy = 1 and feature-rx-flip = 0
// (NetBSD's xennet requires rx-copy), feature-split-event-channels,
// multi-queue-max-queues; and hotplug-status = connected, since the host
// side is ready before the device is announced. Not offered:
// feature-multicast-control, feature-ctrl-ring (hashing), rate limiting.
// (feature-rx-notify is the frontend's key.)
func (v *Vif) BackendNodes() map[string]string {
	n := map[string]string{
		"handle":                       strconv.Itoa(v.devid),
		"mac":                          v.mac.String(),
		"type":                         "vif",
		"mtu":                          strconv.Itoa(v.mtu),
		"feature-sg":                   "1",
		"feature-gso-tcpv4":            "1",
		"feature-gso-tcpv6":            "1",
		"feature-ipv6-csum-offload":    "1",
		"feature-rx-copy":              "1",
		"feature-rx-flip":              "0",
		"feature-split-event-channels": "1",
		"multi-queue-max-queues":       strconv.Itoa(v.maxQ),
		"hotplug-status":               "connected",
	}
	for k, val := range map[string]string{"bridge": v.spec.Bridge, "script": v.spec.Script, "ip": v.spec.IP, "gatewaydev": v.spec.GatewayDev, "vifname": v.spec.VifName} {
		if val != "" {
			n[k] = val
		}
	}
	return n
}

// FrontendNodes are the frontend directory's guest-owned nodes libxl
// writes for a vif: handle and mac (which both Linux's netfront and
// NetBSD's xennet read from their own directory).
func (v *Vif) FrontendNodes() map[string]string {
	return map[string]string{"handle": strconv.Itoa(v.devid), "mac": v.mac.String()}
}

// ReadOnlyFrontendNodes are the frontend nodes the guest may read but not
// change: mtu (netif.h "MTU") and trusted (netif.h: "0" tells the
// frontend not to trust the backend).
func (v *Vif) ReadOnlyFrontendNodes() map[string]string {
	trusted := "1"
	if v.spec.Trusted != nil && !*v.spec.Trusted {
		trusted = "0"
	}
	return map[string]string{"mtu": strconv.Itoa(v.mtu), "trusted": trusted}
}

// frontendPort is what connecting needs from the frontend: its nodes,
// its rings and event channels, and the grant copies. xenbusPort adapts
// the xenbus framework's Frontend to it.
type frontendPort interface {
	DomID() uint16
	// Read returns a frontend node; fs.ErrNotExist when it is missing.
	Read(node string) (string, error)
	// MapRing maps, writable, the grant whose reference node holds.
	MapRing(node string) (page []byte, unmap func() error, err error)
	// BindEvent binds domain 0's end of the guest port node holds;
	// kick runs for every notification the guest sends on it.
	BindEvent(node string, kick func()) (eventPort, error)
	Grants() GrantCopier
}

// eventPort is domain 0's end of an event channel (*evtchn.Endpoint).
type eventPort interface {
	Notify() error
	Close() error
}

// conn is one connection with the frontend.
type conn struct {
	feat    features
	queues  []*queue
	done    chan struct{}
	wg      sync.WaitGroup // the queues' goroutines
	users   sync.WaitGroup // readLoop dispatching into the queues
	cleanup []func() error // undone in reverse by Disconnect
}

// queue is a pair of rings with their event channel(s) (netif.h
// "Multiple transmit and receive queues").
type queue struct {
	tx     *txEngine
	rx     *rxEngine
	txKick chan struct{}
	rxKick chan struct{}
	rxIn   chan *rxBuf
}

// frontend node helpers.

func readOpt(fp frontendPort, node string) (string, bool, error) {
	s, err := fp.Read(node)
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("netback: read %s: %w", node, err)
	}
	return strings.TrimSpace(s), true, nil
}

// readFlag reads a feature-* node as xenbus_read_unsigned does: absent or
// malformed means def.
func readFlag(fp frontendPort, node string, def bool) (bool, error) {
	s, ok, err := readOpt(fp, node)
	if err != nil || !ok {
		return def, err
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return def, nil
	}
	return n != 0, nil
}

// connect negotiates with the frontend as Linux's netback connect() and
// connect_data_rings() do: request-rx-copy must be 1; the features it
// takes on RX; multi-queue-num-queues queues, each with tx-ring-ref,
// rx-ring-ref and event-channel or event-channel-tx/-rx (under queue-N/
// when there are several); then it sets the tap's offloads to match and
// starts the queues.
func (v *Vif) connect(_ context.Context, fp frontendPort) error {
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		return ErrClosed
	}
	if v.conn != nil || v.pending != nil {
		v.mu.Unlock()
		return ErrConnected
	}
	c := &conn{done: make(chan struct{})}
	v.pending = c
	v.mu.Unlock()

	s, ok, err := readOpt(fp, "request-rx-copy")
	if err != nil {
		return err
	}
	if n, perr := strconv.ParseUint(s, 10, 32); !ok || perr != nil || n == 0 {
		return ErrNoRxCopy
	}
	f := &c.feat
	for _, x := range []struct {
		node string
		def  bool
		p    *bool
	}{
		{"feature-rx-notify", false, &f.notify},
		{"feature-sg", false, &f.sg},
		{"feature-gso-tcpv4", false, &f.gso4},
		{"feature-gso-tcpv6", false, &f.gso6},
		{"feature-ipv6-csum-offload", false, &f.csum6},
	} {
		if *x.p, err = readFlag(fp, x.node, x.def); err != nil {
			return err
		}
	}
	noCsum, err := readFlag(fp, "feature-no-csum-offload", false)
	if err != nil {
		return err
	}
	f.csum4 = !noCsum

	nq := 1
	if s, ok, err := readOpt(fp, "multi-queue-num-queues"); err != nil {
		return err
	} else if ok {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > v.maxQ {
			return fmt.Errorf("%w: multi-queue-num-queues = %q (1..%d allowed)", ErrFrontend, s, v.maxQ)
		}
		nq = n
	}
	for i := range nq {
		prefix := ""
		if nq > 1 {
			prefix = fmt.Sprintf("queue-%d/", i)
		}
		q, err := v.connectQueue(c, fp, prefix)
		if err != nil {
			return err
		}
		c.queues = append(c.queues, q)
	}
	if err := v.link.SetOffload(f.offload()); err != nil {
		v.log.Warn("netback: cannot set the link's offloads; segmenting and checksumming in Go", "err", err)
	}
	for _, q := range c.queues {
		c.wg.Add(2)
		go v.txLoop(c, q)
		go v.rxLoop(c, q)
	}
	v.mu.Lock()
	v.conn, v.pending = c, nil
	v.mu.Unlock()
	if err := setCarrier(v.link, true); err != nil {
		v.log.Warn("netback: cannot turn the link's carrier on", "err", err)
	}
	v.log.Info("netback: connected", "queues", nq, "sg", f.sg, "gso4", f.gso4, "gso6", f.gso6,
		"csum4", f.csum4, "csum6", f.csum6, "rx-notify", f.notify)
	return nil
}

// connectQueue maps one queue's rings and binds its event channel(s).
func (v *Vif) connectQueue(c *conn, fp frontendPort, prefix string) (*queue, error) {
	q := &queue{
		txKick: make(chan struct{}, 1),
		rxKick: make(chan struct{}, 1),
		rxIn:   make(chan *rxBuf, rxQueueDepth),
	}
	mapRing := func(node string, slot int) (*ring.Back, error) {
		page, unmap, err := fp.MapRing(prefix + node)
		if err != nil {
			return nil, fmt.Errorf("netback: map %s%s: %w", prefix, node, err)
		}
		c.cleanup = append(c.cleanup, unmap)
		r, err := ring.NewBack(page, slot)
		if err != nil {
			return nil, fmt.Errorf("netback: %s%s: %w", prefix, node, err)
		}
		return r, nil
	}
	txRing, err := mapRing("tx-ring-ref", TxSlotSize)
	if err != nil {
		return nil, err
	}
	rxRing, err := mapRing("rx-ring-ref", RxSlotSize)
	if err != nil {
		return nil, err
	}
	bind := func(node string, kick func()) (eventPort, error) {
		ep, err := fp.BindEvent(prefix+node, kick)
		if err != nil {
			return nil, fmt.Errorf("netback: bind %s%s: %w", prefix, node, err)
		}
		c.cleanup = append(c.cleanup, ep.Close)
		return ep, nil
	}
	var txEv, rxEv eventPort
	if _, ok, err := readOpt(fp, prefix+"event-channel"); err != nil {
		return nil, err
	} else if ok {
		ev, err := bind("event-channel", func() { signal(q.txKick); signal(q.rxKick) })
		if err != nil {
			return nil, err
		}
		txEv, rxEv = ev, ev
	} else {
		if txEv, err = bind("event-channel-tx", func() { signal(q.txKick) }); err != nil {
			return nil, err
		}
		if rxEv, err = bind("event-channel-rx", func() { signal(q.rxKick) }); err != nil {
			return nil, err
		}
	}
	dom, grants := fp.DomID(), fp.Grants()
	q.tx = newTxEngine(txRing, grants, dom, v.link, func() { _ = txEv.Notify() }, &v.stats, rateLimitedWarn(v.log, warnLimit))
	wait := func() bool {
		if c.feat.notify {
			select {
			case <-q.rxKick:
				return true
			case <-c.done:
				return false
			}
		}
		// No feature-rx-notify: the frontend will not kick us when it
		// posts buffers, so look again now and then.
		t := time.NewTimer(rxPollInterval)
		defer t.Stop()
		select {
		case <-q.rxKick:
		case <-t.C:
		case <-c.done:
			return false
		}
		return true
	}
	q.rx = newRxEngine(rxRing, grants, dom, c.feat, func() { _ = rxEv.Notify() }, wait, &v.stats, rateLimitedWarn(v.log, warnLimit))
	return q, nil
}

// txLoop runs a queue's TX engine: a batch of work per notification,
// with req_event re-armed before sleeping (RING_FINAL_CHECK_FOR_REQUESTS).
func (v *Vif) txLoop(c *conn, q *queue) {
	defer c.wg.Done()
	for {
		for {
			if !q.tx.work() {
				<-c.done // broken ring: idle until disconnected
				return
			}
			if !q.tx.ring.FinalCheckForRequests() {
				break
			}
		}
		select {
		case <-q.txKick:
		case <-c.done:
			return
		}
	}
}

// rxLoop runs a queue's RX engine over the frames readLoop hands it,
// publishing responses when it runs out of frames (and every
// rxFlushEvery frames).
func (v *Vif) rxLoop(c *conn, q *queue) {
	defer c.wg.Done()
	n := 0
	for {
		var b *rxBuf
		select {
		case b = <-q.rxIn:
		case <-c.done:
			return
		}
		ok := q.rx.deliver(b.data[:b.n])
		v.pool.put(b)
		if !ok {
			return
		}
		n++
		if len(q.rxIn) == 0 || n%rxFlushEvery == 0 {
			q.rx.flush()
		}
	}
}

// readLoop reads frames from the link for the vif's whole life and hands
// them to the connected queues (by flow), or drops them when no frontend
// is connected.
func (v *Vif) readLoop() {
	defer close(v.readDone)
	bufs := make([]*rxBuf, rxBatch)
	raw := make([][]byte, rxBatch)
	sizes := make([]int, rxBatch)
	warn := rateLimitedWarn(v.log, warnLimit)
	for {
		n := v.pool.getBatch(bufs, v.closeC)
		if n == 0 {
			return
		}
		for i := range n {
			raw[i] = bufs[i].data
		}
		m, err := v.link.ReadBatch(raw[:n], sizes[:n])
		for i := range m {
			bufs[i].n = sizes[i]
		}
		if m > 0 {
			v.dispatch(bufs[:m])
		}
		for _, b := range bufs[m:n] {
			v.pool.put(b)
		}
		if err != nil {
			select {
			case <-v.closeC:
				return
			default:
			}
			if errors.Is(err, tap.ErrClosed) {
				return
			}
			warn("netback: reading from the link", "err", err)
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func (v *Vif) dispatch(bufs []*rxBuf) {
	v.mu.Lock()
	c := v.conn
	if c != nil {
		c.users.Add(1)
	}
	v.mu.Unlock()
	if c == nil {
		v.stats.rxDropped.Add(uint64(len(bufs)))
		for _, b := range bufs {
			v.pool.put(b)
		}
		return
	}
	defer c.users.Done()
	for _, b := range bufs {
		q := c.queues[0]
		if len(c.queues) > 1 {
			q = c.queues[flowHash(b.data[tap.VnetHdrLen:b.n])%uint32(len(c.queues))]
		}
		select {
		case q.rxIn <- b:
		case <-c.done:
			v.stats.rxDropped.Add(1)
			v.pool.put(b)
		}
	}
}

// Disconnect ends the connection: it stops the queues' goroutines,
// unmaps the rings, closes the event channels and turns the link's
// offloads and carrier off. Frames from the host are dropped until the next Connect.
func (v *Vif) Disconnect() error {
	v.mu.Lock()
	c := v.conn
	if c == nil {
		c = v.pending
	}
	v.conn, v.pending = nil, nil
	v.mu.Unlock()
	if c == nil {
		return nil
	}
	close(c.done)
	c.users.Wait()
	c.wg.Wait()
	for _, q := range c.queues {
		for len(q.rxIn) > 0 {
			v.pool.put(<-q.rxIn)
		}
	}
	var errs []error
	for i := len(c.cleanup) - 1; i >= 0; i-- {
		if err := c.cleanup[i](); err != nil {
			errs = append(errs, err)
		}
	}
	if err := v.link.SetOffload(0); err != nil && !errors.Is(err, tap.ErrClosed) {
		v.log.Debug("netback: resetting offloads", "err", err)
	}
	if err := setCarrier(v.link, false); err != nil && !errors.Is(err, tap.ErrClosed) {
		v.log.Debug("netback: carrier off", "err", err)
	}
	v.log.Info("netback: disconnected")
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("netback: disconnect: %w", err)
	}
	return nil
}

// Close disconnects, runs script= "down" while the tap still exists,
// closes the link (a tap netback created disappears with it) and stops
// reading. It is what the VMM calls at domain teardown, crash included;
// the xenbus Bus calls it when the device is removed. Further calls
// return nil.
func (v *Vif) Close() error {
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		return nil
	}
	v.closed = true
	v.mu.Unlock()
	errs := []error{v.Disconnect()}
	if v.hotplug != nil {
		if err := v.hotplug.Run(context.Background(), tap.Down); err != nil {
			errs = append(errs, err)
		}
	}
	close(v.closeC)
	errs = append(errs, v.link.Close())
	<-v.readDone
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("netback: close %s: %w", v.name, err)
	}
	return nil
}

// rxBuf is a frame buffer of the RX path.
type rxBuf struct {
	data []byte
	n    int
}

// bufPool recycles RX frame buffers: at most max of them, allocated on
// first need, so a busy vif allocates nothing per frame.
type bufPool struct {
	free chan *rxBuf
	size int

	mu  sync.Mutex
	n   int
	max int
}

func newBufPool(max, size int) *bufPool {
	return &bufPool{free: make(chan *rxBuf, max), size: size, max: max}
}

// get returns a free buffer; when none is free and max are out, it
// waits (block) or returns nil. It returns nil once stop is closed.
func (p *bufPool) get(block bool, stop <-chan struct{}) *rxBuf {
	select {
	case b := <-p.free:
		return b
	default:
	}
	p.mu.Lock()
	if p.n < p.max {
		p.n++
		p.mu.Unlock()
		return &rxBuf{data: make([]byte, p.size)}
	}
	p.mu.Unlock()
	if !block {
		return nil
	}
	select {
	case b := <-p.free:
		return b
	case <-stop:
		return nil
	}
}

// getBatch fills bufs with at least one buffer (waiting for it) and as
// many more as are at hand; 0 means stop was closed.
func (p *bufPool) getBatch(bufs []*rxBuf, stop <-chan struct{}) int {
	select {
	case <-stop:
		return 0
	default:
	}
	n := 0
	for n < len(bufs) {
		b := p.get(n == 0, stop)
		if b == nil {
			break
		}
		bufs[n] = b
		n++
	}
	return n
}

func (p *bufPool) put(b *rxBuf) {
	b.n = 0
	select {
	case p.free <- b:
	default: // more buffers than made: cannot happen
	}
}
