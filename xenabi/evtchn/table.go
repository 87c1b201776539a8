package evtchn

import (
	"errors"
	"fmt"
	"sync"

	"github.com/xenvmm/xenvmm/xenabi/abi"
	"github.com/xenvmm/xenvmm/xenabi/guestmem"
)

// Guest is the guest domain as the event-channel table sees it.
type Guest interface {
	// SharedInfo is the domain's shared_info page (xen.h struct
	// shared_info, at least abi.SharedInfoSize bytes), which holds the
	// 2-level evtchn_pending and evtchn_mask bitmaps.
	SharedInfo() []byte
	// VCPUInfo is vCPU vcpu's struct vcpu_info (xen.h, abi.VCPUInfoSize
	// bytes): shared_info.vcpu_info[vcpu] until the guest registers
	// another location with VCPUOP_register_vcpu_info. It is asked for on
	// every delivery, so the location may change at runtime. nil (a vCPU
	// of 32 or more that registered none) drops the upcall as Xen's dummy
	// vcpu_info does.
	VCPUInfo(vcpu int) []byte
	// NumVCPUs is the domain's number of vCPUs (max_vcpus), fixed for the
	// Table's life.
	NumVCPUs() int
	// Kick wakes vCPU vcpu: see the package documentation. It must not
	// block; it is called without the Table's lock held, possibly on the
	// goroutine of vcpu itself (an IPI to self, a hypercall that unmasks).
	Kick(vcpu int)
	// Page is the 4096 bytes of guest frame gfn, writable, for FIFO
	// control blocks and event array pages, which the Table keeps using
	// until EVTCHNOP_reset. An error (a frame the guest does not own or
	// may not write, such as a pinned page table) fails the operation
	// with EINVAL as Xen's map_guest_page does.
	Page(gfn uint64) ([]byte, error)
}

// Config is the per-domain configuration Xen takes from the toolstack.
type Config struct {
	// DomID is the guest's domain id: not 0 (xenvmm itself) and below
	// DOMID_FIRST_RESERVED.
	DomID uint16
	// MaxPort is the highest port the guest may allocate (Xen's
	// max_evtchn_port, xl's event_channels); 0 means DefaultMaxPort.
	MaxPort uint32
	// NrPIRQs is the domain's number of PIRQs (Xen's nr_pirqs); 0 means
	// DefaultNrPIRQs. It only decides between EPERM and EINVAL.
	NrPIRQs uint32
	// GlobalVIRQs lists the global VIRQs this guest handles (set by
	// XEN_DOMCTL_set_virq_handler in Xen). Binding any other global VIRQ
	// answers EBUSY.
	GlobalVIRQs []uint32
	// NoFIFO makes the domain 2-level only, as a Xen built without
	// CONFIG_EVTCHN_FIFO: init_control and expand_array answer EOPNOTSUPP.
	NoFIFO bool
}

const (
	// DefaultMaxPort is libxl's default for event_channels (1023).
	DefaultMaxPort = 1023
	// DefaultNrPIRQs is a domU's nr_pirqs on a host with 24 GSIs: Xen's
	// nr_static_irqs (24) plus extra_domU_irqs (32).
	DefaultNrPIRQs = 24 + 32

	// portsPerBucket is Xen's EVTCHNS_PER_BUCKET: PAGE_SIZE divided by
	// sizeof(struct evtchn), which is aligned to 64. Valid ports grow in
	// these steps.
	portsPerBucket = 64
)

// Sentinel errors of the Go-level (non-hypercall) API. Hypercall-level
// failures are abi.Errno values.
var (
	ErrNotConnected = errors.New("evtchn: endpoint is not connected to the guest")
	ErrClosed       = errors.New("evtchn: endpoint is closed")
)

// Channel states: Xen's ECS_* (xen/include/xen/sched.h struct evtchn).
const (
	ecsFree uint8 = iota
	ecsReserved
	ecsUnbound
	ecsInterdomain
	ecsPIRQ
	ecsVIRQ
	ecsIPI
)

// channel is Xen's struct evtchn for one guest port.
type channel struct {
	state  uint8
	notify uint32 // notify_vcpu_id
	// ecsUnbound: remoteDom is u.unbound.remote_domid. ecsInterdomain:
	// remoteDom is the remote domain (the guest itself for loopback, 0
	// for a VMM endpoint) and remotePort its port there.
	remoteDom  uint16
	remotePort uint32
	virq       uint32 // ecsVIRQ
	pirq       uint32 // ecsPIRQ (never bound: see BindPIRQ)

	// FIFO: pending saved while the port has no event word
	// (evtchn->pending), the queue priority, and the last queue the event
	// was linked on (evtchn->fifo_lastq).
	fifoPending bool
	priority    uint8
	lastVCPU    uint32
	lastPrio    uint8
}

func (c *channel) usable() bool { return c.state > ecsReserved } // evtchn_usable

// VIRQ kinds: Xen's enum virq_type.
type virqType int

const (
	virqGlobal virqType = iota
	virqDomain
	virqVCPU
)

// getVIRQType is Xen's get_virq_type; x86's arch_get_virq_type makes the
// ARCH VIRQs global.
func getVIRQType(virq uint32) virqType {
	switch virq {
	case abi.VIRQ_TIMER, abi.VIRQ_DEBUG, abi.VIRQ_XENOPROF, abi.VIRQ_XENPMU:
		return virqVCPU
	case abi.VIRQ_ARGO:
		return virqDomain
	}
	return virqGlobal
}

// Table is the event-channel state of one guest domain (Xen's per-domain
// evtchn buckets, virq_to_evtchn, poll_mask and FIFO state) plus the
// domain-0 ports of the VMM's endpoints connected to it.
type Table struct {
	g      Guest
	cfg    Config
	dom    uint16
	nvcpus int

	mu         sync.Mutex
	ch         []channel // len is Xen's valid_evtchns
	virqPort   [][nrVIRQs]uint32
	globalVIRQ [nrVIRQs]bool
	pollMask   []bool
	pollPort   []int64 // poll_evtchn: -1 any port, else the one port
	fifo       *fifoDomain
	dom0       []*Endpoint // domain 0's ports (valid: len); nil is free

	// Work to do once the lock is released.
	kicked   []bool
	kicks    []int
	epEvents []endpointEvent
}

// New makes the table of a fresh domain: 2-level ABI, port 0 reserved.
func New(g Guest, cfg Config) (*Table, error) {
	if g == nil {
		return nil, errors.New("evtchn: nil Guest")
	}
	if cfg.DomID == 0 || cfg.DomID >= abi.DOMID_FIRST_RESERVED {
		return nil, fmt.Errorf("evtchn: domain id %d is not a domU id", cfg.DomID)
	}
	n := g.NumVCPUs()
	if n <= 0 || n > 1<<16 {
		return nil, fmt.Errorf("evtchn: %d vCPUs", n)
	}
	if len(g.SharedInfo()) < abi.SharedInfoSize {
		return nil, fmt.Errorf("evtchn: shared_info is %d bytes, want %d", len(g.SharedInfo()), abi.SharedInfoSize)
	}
	if cfg.MaxPort == 0 {
		cfg.MaxPort = DefaultMaxPort
	}
	if cfg.MaxPort >= abi.EVTCHN_FIFO_NR_CHANNELS {
		cfg.MaxPort = abi.EVTCHN_FIFO_NR_CHANNELS - 1
	}
	if cfg.NrPIRQs == 0 {
		cfg.NrPIRQs = DefaultNrPIRQs
	}
	t := &Table{
		g: g, cfg: cfg, dom: cfg.DomID, nvcpus: n,
		ch:       make([]channel, portsPerBucket),
		virqPort: make([][nrVIRQs]uint32, n),
		pollMask: make([]bool, n),
		pollPort: make([]int64, n),
		kicked:   make([]bool, n),
		dom0:     make([]*Endpoint, portsPerBucket), // evtchn_init's first bucket
	}
	for _, v := range cfg.GlobalVIRQs {
		if v >= nrVIRQs || getVIRQType(v) != virqGlobal {
			return nil, fmt.Errorf("evtchn: VIRQ %d is not a global VIRQ", v)
		}
		t.globalVIRQ[v] = true
	}
	t.ch[0].state = ecsReserved // evtchn_init
	return t, nil
}

// DomID is the guest's domain id.
func (t *Table) DomID() uint16 { return t.dom }

func (t *Table) lock() { t.mu.Lock() }

// unlock releases the lock and then does the deferred work: Kicks and
// endpoint handlers.
func (t *Table) unlock() {
	kicks, evs := t.kicks, t.epEvents
	t.kicks, t.epEvents = nil, nil
	for _, v := range kicks {
		t.kicked[v] = false
	}
	t.mu.Unlock()
	for _, v := range kicks {
		t.g.Kick(v)
	}
	for _, e := range evs {
		e.ep.h(e.ep, e.ev)
	}
}

func (t *Table) kick(v uint32) {
	if int(v) >= t.nvcpus || t.kicked[v] {
		return
	}
	t.kicked[v] = true
	t.kicks = append(t.kicks, int(v))
}

func (t *Table) validVCPU(v uint32) bool { return uint64(v) < uint64(t.nvcpus) } // domain_vcpu

// valid is Xen's port_is_valid.
func (t *Table) valid(port uint32) bool { return uint64(port) < uint64(len(t.ch)) }

// maxEvtchns is Xen's max_evtchns.
func (t *Table) maxEvtchns() uint32 {
	if t.fifo != nil {
		return abi.EVTCHN_FIFO_NR_CHANNELS
	}
	return nr2LChannels
}

// allocatePort is Xen's evtchn_allocate_port: claim port if it is free,
// growing the valid range in whole buckets.
func (t *Table) allocatePort(port uint32) error {
	if port > t.cfg.MaxPort || port >= t.maxEvtchns() {
		return abi.ENOSPC
	}
	if t.valid(port) {
		if t.ch[port].state != ecsFree || t.isBusy(port) {
			return abi.EBUSY
		}
		return nil
	}
	n := (int(port)/portsPerBucket + 1) * portsPerBucket
	t.ch = append(t.ch, make([]channel, n-len(t.ch))...)
	return nil
}

// getFreePort is Xen's get_free_port: the lowest free port.
func (t *Table) getFreePort() (uint32, error) {
	for port := uint32(0); port <= t.cfg.MaxPort; port++ {
		err := t.allocatePort(port)
		if err == nil {
			return port, nil
		}
		if err != abi.EBUSY {
			return 0, err
		}
	}
	return 0, abi.ENOSPC
}

// portInit is evtchn_port_init: FIFO gives a newly bound port the default
// priority.
func (t *Table) portInit(port uint32) {
	if t.fifo != nil {
		t.ch[port].priority = abi.EVTCHN_FIFO_PRIORITY_DEFAULT
	}
}

// free is Xen's evtchn_free.
func (t *Table) free(port uint32) {
	c := &t.ch[port]
	if c.usable() {
		t.clearPending(port)
	}
	c.state = ecsFree
	c.notify = 0
}

// Delivery, dispatched on the domain's ABI (Xen's evtchn_port_ops).

func (t *Table) setPending(vcpu, port uint32) {
	if !t.ch[port].usable() || !t.validVCPU(vcpu) {
		return
	}
	if t.fifo != nil {
		t.fifoSetPending(vcpu, port)
	} else {
		t.set2L(vcpu, port)
	}
}

func (t *Table) clearPending(port uint32) {
	if t.fifo != nil {
		t.fifoClearPending(port)
	} else {
		t.clear2L(port)
	}
}

func (t *Table) unmask(port uint32) {
	if !t.ch[port].usable() {
		return
	}
	if t.fifo != nil {
		t.fifoUnmask(port)
	} else {
		t.unmask2L(port)
	}
}

func (t *Table) isPending(port uint32) bool {
	if !t.ch[port].usable() {
		return false
	}
	if t.fifo != nil {
		return t.fifoIsPending(port)
	}
	return t.isPending2L(port)
}

func (t *Table) isMasked(port uint32) bool {
	if !t.ch[port].usable() {
		return true
	}
	if t.fifo != nil {
		return t.fifoIsMasked(port)
	}
	return t.isMasked2L(port)
}

func (t *Table) isBusy(port uint32) bool {
	return t.fifo != nil && t.fifoIsBusy(port)
}

// vcpuInfo is vCPU v's vcpu_info, or nil.
func (t *Table) vcpuInfo(v uint32) []byte {
	b := t.g.VCPUInfo(int(v))
	if len(b) < abi.VCPUInfoSize {
		return nil
	}
	return b
}

// markEventsPending is Xen's vcpu_mark_events_pending: set
// evtchn_upcall_pending and kick the vCPU if it was clear.
func (t *Table) markEventsPending(v uint32) {
	vi := t.vcpuInfo(v)
	if vi == nil {
		return
	}
	old, err := guestmem.Or8(vi, abi.VCPUInfoUpcallPending, 1)
	if err != nil || old&1 != 0 {
		return
	}
	t.kick(v)
}

// checkPollers is Xen's evtchn_check_pollers: wake the vCPUs polling
// port (or any port).
func (t *Table) checkPollers(port uint32) {
	for v, on := range t.pollMask {
		if on && (t.pollPort[v] <= 0 || t.pollPort[v] == int64(port)) {
			t.pollMask[v] = false
			t.pollPort[v] = 0
			t.kick(uint32(v))
		}
	}
}

// needsDelivery is Xen's local_events_need_delivery for a PV vCPU.
func (t *Table) needsDelivery(v uint32) bool {
	vi := t.vcpuInfo(v)
	if vi == nil {
		return false
	}
	w, err := guestmem.Load32(vi, 0)
	return err == nil && uint8(w>>(8*abi.VCPUInfoUpcallPending)) != 0 && uint8(w>>(8*abi.VCPUInfoUpcallMask)) == 0
}
