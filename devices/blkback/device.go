package blkback

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/xenvmm/xenvmm/config"
	"github.com/xenvmm/xenvmm/devices/xenbus"
	"github.com/xenvmm/xenvmm/xenabi/evtchn"
	"github.com/xenvmm/xenvmm/xenabi/gnttab"
)

// Defaults of Options.
const (
	// DefaultMaxIndirectSegments is what Linux's xen-blkback offers
	// (MAX_INDIRECT_SEGMENTS): 1 MiB per request, one indirect page.
	DefaultMaxIndirectSegments = 256
	// DefaultMaxQueues caps multi-queue-max-queues (Linux offers one
	// per host CPU).
	DefaultMaxQueues = 4
)

// Options tune a Device.
type Options struct {
	// Log receives the device's log lines; nil discards them.
	Log *slog.Logger
	// Store replaces the backing store New would open from the disk spec
	// (tests, or a store the VMM opened itself). The Device closes it.
	Store Store
	// Direct, NoLock: see StoreOptions.
	Direct, NoLock bool
	// MaxQueues is multi-queue-max-queues: 0 means
	// min(DefaultMaxQueues, NumCPU); 1 leaves multi-queue out.
	MaxQueues int
	// MaxIndirectSegments is feature-max-indirect-segments: 0 means
	// DefaultMaxIndirectSegments, a negative value leaves indirect
	// requests out (a NetBSD 5.1 xbd does not use them anyway); at most
	// MaxIndirectSegments (4096).
	MaxIndirectSegments int
	// Persistent offers feature-persistent. Off by default: with
	// xenvmm's cheap in-process grant maps it saves the backend little
	// and costs the frontend a copy of every block.
	Persistent bool
	// CopyMax: see QueueConfig.
	CopyMax int
}

// Device is the vbd backend of one disk, an xenbus.Device: New opens the
// store; the Bus writes BackendNodes, calls Connect when the frontend is
// ready (one Queue per ring) and Disconnect when it goes, and Close when
// the device leaves the bus.
type Device struct {
	disk     config.Disk
	devid    int
	store    Store
	info     StoreInfo
	sectors  uint64
	readOnly bool
	features Features // offered
	queues   int      // multi-queue-max-queues
	persist  bool     // feature-persistent offered
	copyMax  int
	log      *slog.Logger

	mu   sync.Mutex
	conn []*queueConn // the current connection's rings
	// retired keeps the counters of past connections.
	retired Stats
}

var _ xenbus.Device = (*Device)(nil)

// queueConn is one ring of a connection: its mapping, endpoint, queue.
type queueConn struct {
	ring  *gnttab.Mapping
	ep    *evtchn.Endpoint
	queue atomic.Pointer[Queue]
}

// New makes the backend of disk d: it opens d's backing store (or takes
// o.Store) and decides what to offer. d.VDevNumber is the device id
// (computed from d.VDev if it is 0).
func New(d config.Disk, o Options) (*Device, error) {
	devid := d.VDevNumber
	if devid == 0 && d.VDev != "" {
		n, err := config.VDevNumber(d.VDev)
		if err != nil {
			return nil, fmt.Errorf("blkback: %q: %w", d.Spec, err)
		}
		devid = n
	}
	s := o.Store
	switch {
	case s != nil:
	case d.CDROM && (d.Target == "" || d.Format == "empty"):
		s = EmptyStore{}
	default:
		fs, err := OpenStore(d, StoreOptions{Direct: o.Direct, NoLock: o.NoLock})
		if err != nil {
			return nil, err
		}
		s = fs
	}
	info := s.Info()
	dev := &Device{
		disk:     d,
		devid:    devid,
		store:    s,
		info:     info,
		sectors:  uint64(info.Size) >> SectorShift,
		readOnly: d.ReadOnly || d.CDROM || info.ReadOnly,
		persist:  o.Persistent,
		copyMax:  o.CopyMax,
		log:      o.Log,
	}
	if dev.log == nil {
		dev.log = slog.New(slog.DiscardHandler)
	}
	dev.log = dev.log.With("vbd", devid)
	f := &dev.features
	if !dev.readOnly {
		f.Flush, f.Barrier = true, true
		f.Discard = info.Discard && (d.Discard == nil || *d.Discard)
		f.DiscardSecure = f.Discard && info.DiscardSecure
	}
	switch n := o.MaxIndirectSegments; {
	case n == 0:
		f.MaxIndirectSegments = DefaultMaxIndirectSegments
	case n > 0:
		f.MaxIndirectSegments = min(n, MaxIndirectSegments)
	}
	dev.queues = o.MaxQueues
	if dev.queues <= 0 {
		dev.queues = min(DefaultMaxQueues, runtime.NumCPU())
	}
	return dev, nil
}

// DevID is the device id: the virtual-device number.
func (d *Device) DevID() int { return d.devid }

// Type is "vbd".
func (d *Device) Type() string { return "vbd" }

// Store is the backing store.
func (d *Device) Store() Store { return d.store }

// Features is what the device offers.
func (d *Device) Features() Features { return d.features }

// FrontendNodes are the frontend directory's device nodes that libxl
// writes (libxl__device_disk_add): virtual-device (the number the guest's
// blkfront names the disk by), device-type and trusted. Pass them to
// xenbus.Bus.Add.
func (d *Device) FrontendNodes() map[string]string {
	trusted := "1"
	if d.disk.Trusted != nil && !*d.disk.Trusted {
		trusted = "0"
	}
	return map[string]string{
		"virtual-device": strconv.Itoa(d.devid),
		"device-type":    d.deviceType(),
		"trusted":        trusted,
	}
}

func (d *Device) deviceType() string {
	if d.disk.CDROM {
		return "cdrom"
	}
	return "disk"
}

// Info is the "info" node: VDISK_CDROM for a cdrom, VDISK_READONLY for a
// read-only disk (blkif.h).
func (d *Device) Info() int {
	info := 0
	if d.disk.CDROM {
		info |= VDiskCDROM
	}
	if d.readOnly {
		info |= VDiskReadOnly
	}
	return info
}

// BackendNodes are the backend directory's nodes (blkif.h "Backend
// XenBus Nodes"): the toolstack's (params, type, mode, device-type,
// removable, bootable, dev, discard-enable) and the backend's (sectors,
// sector-size, physical-sector-size, info, the features and transport
// parameters). sector-size is always 512, which every frontend handles
// (NetBSD 5.1's xbd assumes it); a 4K device says physical-sector-size
// 4096. Everything is known when the device is made, so nothing is left
// for Connect to write.
func (d *Device) BackendNodes() map[string]string {
	b := func(v bool) string {
		if v {
			return "1"
		}
		return "0"
	}
	mode := "w"
	if d.readOnly {
		mode = "r"
	}
	typ := "file"
	if d.info.BlockDevice {
		typ = "phy"
	}
	f := d.features
	n := map[string]string{
		"params":               d.disk.Target,
		"type":                 typ,
		"mode":                 mode,
		"device-type":          d.deviceType(),
		"removable":            b(d.disk.CDROM),
		"bootable":             "1",
		"dev":                  d.disk.VDev,
		"discard-enable":       b(d.disk.Discard == nil || *d.disk.Discard),
		"sectors":              strconv.FormatUint(d.sectors, 10),
		"sector-size":          strconv.Itoa(SectorSize),
		"physical-sector-size": strconv.Itoa(max(SectorSize, d.info.PhysicalBlockSize)),
		"info":                 strconv.Itoa(d.Info()),
		"feature-flush-cache":  b(f.Flush),
		"feature-barrier":      b(f.Barrier),
		"feature-discard":      b(f.Discard),
		"feature-persistent":   b(d.persist),
	}
	if f.Discard {
		n["discard-granularity"] = strconv.Itoa(max(SectorSize, d.info.DiscardGranularity))
		n["discard-alignment"] = strconv.Itoa(d.info.DiscardAlignment)
		n["discard-secure"] = b(f.DiscardSecure)
	}
	if f.MaxIndirectSegments > 0 {
		n["feature-max-indirect-segments"] = strconv.Itoa(f.MaxIndirectSegments)
	}
	if d.queues > 1 {
		n["multi-queue-max-queues"] = strconv.Itoa(d.queues)
	}
	return n
}

// Errors of Connect.
var (
	// ErrFrontend: the frontend's nodes ask for something impossible or
	// not offered (a bad protocol, too many queues, a multi-page ring).
	ErrFrontend = errors.New("blkback: unusable frontend parameters")
	// ErrConnected: Connect without a Disconnect since the last one.
	ErrConnected = errors.New("blkback: already connected")
)

// Connect reads the frontend's transport parameters (blkif.h "Frontend
// XenBus Nodes"): protocol, feature-persistent, multi-queue-num-queues
// and, per ring (the top level, or queue-N/ with several queues),
// ring-ref and event-channel. It maps each ring, binds each event
// channel and starts a Queue on it. A ring-page-order other than 0 is
// refused: this backend does not offer max-ring-page-order.
func (d *Device) Connect(ctx context.Context, fe *xenbus.Frontend) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conn != nil {
		return ErrConnected
	}
	protoNode, err := fe.ReadDefault("protocol", "")
	if err != nil {
		return err
	}
	proto, err := ParseProtocol(protoNode)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrFrontend, err)
	}
	nq := 1
	if v, err := fe.ReadDefault("multi-queue-num-queues", ""); err != nil {
		return err
	} else if v != "" {
		nq, err = strconv.Atoi(v)
		if err != nil || nq < 1 || nq > d.queues {
			return fmt.Errorf("%w: multi-queue-num-queues %q (at most %d)", ErrFrontend, v, d.queues)
		}
	}
	refNode := "ring-ref"
	if v, err := fe.ReadDefault("ring-page-order", ""); err != nil {
		return err
	} else if v != "" {
		// A frontend that writes ring-page-order names its pages
		// ring-ref%u, even for one page.
		if v != "0" {
			return fmt.Errorf("%w: ring-page-order %q (max-ring-page-order is not offered)", ErrFrontend, v)
		}
		refNode = "ring-ref0"
	}
	persistent := false
	if d.persist {
		v, err := fe.ReadDefault("feature-persistent", "0")
		if err != nil {
			return err
		}
		persistent = v == "1"
	}
	features := d.features
	features.Persistent = persistent
	grants := DomainGrants{M: fe.Host().Grants(), Dom: fe.DomID()}
	log := d.log.With("protocol", proto.String(), "queues", nq)

	for i := range nq {
		prefix := ""
		if nq > 1 {
			prefix = "queue-" + strconv.Itoa(i) + "/"
		}
		c := &queueConn{}
		d.conn = append(d.conn, c) // Disconnect undoes what is set up
		if c.ring, err = fe.MapGrant(prefix+refNode, false); err != nil {
			return err
		}
		if c.ep, err = fe.BindEvent(prefix+"event-channel", func(_ *evtchn.Endpoint, ev evtchn.EndpointEvent) {
			if ev == evtchn.EndpointNotifiedEvent {
				if q := c.queue.Load(); q != nil {
					q.Kick()
				}
			}
		}); err != nil {
			return err
		}
		ep := c.ep
		q, err := NewQueue(QueueConfig{
			Ring:     c.ring.Bytes(),
			Protocol: proto,
			Store:    d.store,
			Sectors:  d.sectors,
			ReadOnly: d.readOnly,
			Grants:   grants,
			Notify:   func() { _ = ep.Notify() }, // ErrNotConnected: the guest closed its port
			Features: features,
			CopyMax:  d.copyMax,
			Log:      log.With("queue", i),
		})
		if err != nil {
			return err
		}
		c.queue.Store(q)
		// A notification that came before the queue was published.
		q.Kick()
	}
	log.Debug("blkback: connected", "persistent", persistent)
	return nil
}

// Disconnect stops every queue (waiting for the requests running on the
// host to be answered), closes the event channels and unmaps the rings.
func (d *Device) Disconnect() error {
	d.mu.Lock()
	conn := d.conn
	d.conn = nil
	d.mu.Unlock()
	var errs []error
	for _, c := range conn {
		if q := c.queue.Load(); q != nil {
			errs = append(errs, q.Close())
			d.addRetired(q.Stats())
		}
		if c.ep != nil {
			errs = append(errs, c.ep.Close())
		}
		if c.ring != nil {
			errs = append(errs, c.ring.Unmap())
		}
	}
	return errors.Join(errs...)
}

// Close closes the backing store, once the device has left the bus.
func (d *Device) Close() error {
	if err := d.Disconnect(); err != nil {
		d.log.Warn("blkback: disconnect at close", "err", err)
	}
	return d.store.Close()
}

func (d *Device) addRetired(s Stats) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s.PersistentGrants = 0 // unmapped with the queue
	d.retired = d.retired.add(s)
}

// Stats sums the counters of every queue, past and present.
func (d *Device) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.retired
	for _, c := range d.conn {
		if q := c.queue.Load(); q != nil {
			s = s.add(q.Stats())
		}
	}
	return s
}

// Queues returns the current connection's queues (for tests).
func (d *Device) Queues() []*Queue {
	d.mu.Lock()
	defer d.mu.Unlock()
	var qs []*Queue
	for _, c := range d.conn {
		if q := c.queue.Load(); q != nil {
			qs = append(qs, q)
		}
	}
	return qs
}

func (s Stats) add(o Stats) Stats {
	return Stats{
		Reads: s.Reads + o.Reads, Writes: s.Writes + o.Writes, Flushes: s.Flushes + o.Flushes,
		Barriers: s.Barriers + o.Barriers, Discards: s.Discards + o.Discards,
		ReadBytes: s.ReadBytes + o.ReadBytes, WriteBytes: s.WriteBytes + o.WriteBytes,
		Errors: s.Errors + o.Errors, NotSupported: s.NotSupported + o.NotSupported,
		PersistentGrants: s.PersistentGrants + o.PersistentGrants,
	}
}
