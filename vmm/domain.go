package vmm

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/xenvmm/xenvmm/config"
	"github.com/xenvmm/xenvmm/devices/xenbus"
	"github.com/xenvmm/xenvmm/loader"
	"github.com/xenvmm/xenvmm/vmm/hole"
	"github.com/xenvmm/xenvmm/vmm/kvm"
	"github.com/xenvmm/xenvmm/xenabi/abi"
	"github.com/xenvmm/xenvmm/xenabi/evtchn"
	"github.com/xenvmm/xenvmm/xenabi/gnttab"
	"github.com/xenvmm/xenvmm/xenabi/guestmem"
	"github.com/xenvmm/xenvmm/xenabi/xenstore"
)

// Options describe the domain to build.
type Options struct {
	Name string
	// DomID is the guest's domain id (default 1; 0 is xenvmm itself).
	DomID uint16
	// MemoryMiB is the domain's memory; MaxMemMiB its ceiling (the
	// balloon may grow it up to there; default MemoryMiB).
	MemoryMiB, MaxMemMiB int64
	VCPUs                int
	Kernel               *loader.Image
	Ramdisk              []byte
	Cmdline              string
	// Console receives the guest's console output (console_io and the
	// PV console ring); ConsoleIn, if set, feeds the console ring.
	Console   io.Writer
	ConsoleIn io.Reader
	Log       *slog.Logger
	// Trace counts hypercalls by number and subop (see Domain.Trace).
	Trace bool
	// ConsoleIO lets the guest print with HYPERVISOR_console_io, as a
	// debug build of Xen does (a release build refuses domUs; guests then
	// print on their console ring only).
	ConsoleIO bool
	// Disks are the domain's virtual block devices (disk =), served by
	// blkback.
	Disks []config.Disk
	// Vifs are the domain's network interfaces (vif =), served by
	// netback over a tap each.
	Vifs []config.Vif
	// VifScriptDir is where a vif's script= without '/' is looked up
	// (tap.DefaultScriptDir, /etc/xen/scripts, when empty).
	VifScriptDir string
	// XenstoreSocket is where host tools reach the domain's xenstore
	// (default XenstoreSocketPath(Name)); "-" disables the socket.
	XenstoreSocket string
}

// XenstoreSocketPath is where xenvmm serves the xenstore of the domain
// called name to host tools (xenstore-utils with XENSTORED_PATH, python3-pyxs,
// `xenvmm shutdown`): $XDG_RUNTIME_DIR/xenvmm/NAME/xenstored.sock, or
// /run/xenvmm/NAME/... for root without XDG_RUNTIME_DIR, else under the
// temporary directory.
func XenstoreSocketPath(name string) string {
	if p, err := xenstore.DefaultSocketPath(name); err == nil {
		return p
	}
	if os.Geteuid() == 0 {
		return filepath.Join("/run/xenvmm", name, "xenstored.sock")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("xenvmm-%d", os.Getuid()), name, "xenstored.sock")
}

// Exit is how a domain ended.
type Exit struct {
	// Reason is the SCHEDOP_shutdown reason (abi.SHUTDOWN_*), or
	// ReasonError when the domain was killed by the VMM.
	Reason int
	// Detail says why, for crashes.
	Detail string
}

// ReasonError means the VMM stopped the domain because it broke the PV
// ABI or hit something xenvmm does not implement.
const ReasonError = -1

// ReasonName is the name of an Exit.Reason.
func ReasonName(r int) string {
	switch r {
	case abi.SHUTDOWN_poweroff:
		return "poweroff"
	case abi.SHUTDOWN_reboot:
		return "reboot"
	case abi.SHUTDOWN_suspend:
		return "suspend"
	case abi.SHUTDOWN_crash:
		return "crash"
	case abi.SHUTDOWN_watchdog:
		return "watchdog"
	case abi.SHUTDOWN_soft_reset:
		return "soft_reset"
	case ReasonError:
		return "killed by xenvmm"
	}
	return fmt.Sprintf("shutdown code %d", r)
}

func (e Exit) String() string {
	if e.Detail != "" {
		return ReasonName(e.Reason) + ": " + e.Detail
	}
	return ReasonName(e.Reason)
}

// Guest-physical layout: RAM from 0, then the frames Xen would own
// (shared info, grant tables), then the hypervisor hole's pages.
const (
	xenheapPages = 128
	xenheapSize  = xenheapPages * guestmem.PageSize
	// Frames inside the xenheap region.
	xhSharedInfo   = 0
	xhGrantFrame   = 8 // first grant-table frame
	maxGrantFrames = 64
)

// Domain is one running PV domain.
type Domain struct {
	opts  Options
	log   *slog.Logger
	domid uint16

	sys *kvm.System
	vm  *kvm.VM

	nrPages, maxPages uint64
	ram, xenheap      *guestmem.Region
	holeMem           *guestmem.Region
	space             *guestmem.Space
	layout            *hole.Layout
	xenheapPFN        uint64 // first frame of the xenheap region
	sharedInfo        []byte
	built             *loader.Built

	events    *evtchn.Table
	xs        *xenstore.Daemon
	xsSock    *xenstore.SocketServer
	bus       *xenbus.Bus
	storeRing *xenstore.Ring
	grants    *gnttab.Table
	uuid      [16]byte

	vcpus []*VCPU
	cpuid *cpuidTable
	clock *clock
	mmu   *mmu
	trace *tracer
	con   *console

	pit       pit2
	closeOnce sync.Once

	debug bool // log every hypercall

	unknownMu   sync.Mutex
	unknownSeen map[string]time.Time

	// mu guards the fields below.
	mu           sync.Mutex
	exit         *Exit
	done         chan struct{} // closed when exit is set
	vmAssist     uint64
	shutdownCode int
	// popBits has a bit per frame below maxPages: set when populated
	// (guest RAM the guest owns); populated counts them.
	popBits   []uint64
	populated uint64
}

// New builds the domain: memory, KVM VM, the kernel laid out by the PV
// domain builder, and vCPU 0 ready at the kernel's entry point.
func New(opts Options) (*Domain, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.DomID == 0 {
		opts.DomID = 1
	}
	if opts.VCPUs <= 0 {
		opts.VCPUs = 1
	}
	if opts.MaxMemMiB < opts.MemoryMiB {
		opts.MaxMemMiB = opts.MemoryMiB
	}
	if opts.Console == nil {
		opts.Console = io.Discard
	}
	if opts.Kernel == nil {
		return nil, errors.New("vmm: no kernel")
	}
	if opts.MemoryMiB < 16 {
		return nil, fmt.Errorf("vmm: %d MiB of memory is too little for a PV guest", opts.MemoryMiB)
	}
	d := &Domain{opts: opts, log: opts.Log, domid: opts.DomID, done: make(chan struct{})}
	d.debug = opts.Log.Enabled(context.Background(), slog.LevelDebug)
	rand.Read(d.uuid[:])
	d.uuid[6] = d.uuid[6]&0x0f | 0x40 // version 4
	d.uuid[8] = d.uuid[8]&0x3f | 0x80
	d.nrPages = uint64(opts.MemoryMiB) << 8
	d.maxPages = uint64(opts.MaxMemMiB) << 8
	if opts.Trace {
		d.trace = newTracer()
	}
	ok := false
	defer func() {
		if !ok {
			d.Close()
		}
	}()
	if err := d.setupMemory(); err != nil {
		return nil, err
	}
	if err := d.setupKVM(); err != nil {
		return nil, err
	}
	d.con = newConsole(d, opts.Console)
	d.mmu = newMMU(d)
	if err := d.setupEvents(); err != nil {
		return nil, err
	}
	if err := d.build(); err != nil {
		return nil, err
	}
	for i := 0; i < opts.VCPUs; i++ {
		v, err := d.newVCPU(i)
		if err != nil {
			return nil, err
		}
		d.vcpus = append(d.vcpus, v)
	}
	if err := d.vcpus[0].bootState(d.built); err != nil {
		return nil, err
	}
	ok = true
	return d, nil
}

func (d *Domain) setupMemory() error {
	var err error
	if d.ram, err = guestmem.Map(0, d.maxPages*guestmem.PageSize); err != nil {
		return err
	}
	d.popBits = make([]uint64, (d.maxPages+63)/64)
	for p := uint64(0); p < d.nrPages; p++ {
		d.popBits[p/64] |= 1 << (p % 64)
	}
	d.populated = d.nrPages
	xhBase := roundUp(d.maxPages*guestmem.PageSize, 2<<20)
	if d.xenheap, err = guestmem.Map(xhBase, xenheapSize); err != nil {
		return err
	}
	d.xenheapPFN = xhBase / guestmem.PageSize
	holeBase := roundUp(xhBase+xenheapSize, 2<<20)
	if d.layout, err = hole.Plan(holeBase, d.xenheapPFN+xenheapPages, d.opts.VCPUs); err != nil {
		return err
	}
	if d.holeMem, err = guestmem.Map(holeBase, d.layout.Size()); err != nil {
		return err
	}
	if err := d.layout.Build(d.holeMem.Bytes()); err != nil {
		return err
	}
	// M2P entries of frames that are not the guest's RAM are invalid, as
	// on Xen (INVALID_M2P_ENTRY).
	for mfn := d.nrPages; mfn < d.xenheapPFN+xenheapPages; mfn++ {
		// (frames above the reservation get their entry when populated)
		d.layout.M2PSet(d.holeMem.Bytes(), mfn, ^uint64(0))
	}
	if d.space, err = guestmem.NewSpace(d.ram, d.xenheap, d.holeMem); err != nil {
		return err
	}
	d.sharedInfo, _ = d.space.Page(d.xenheapPFN + xhSharedInfo)
	// shared_info_x86_64: all vCPUs start with events masked.
	for i := 0; i < abi.XEN_LEGACY_MAX_VCPUS; i++ {
		d.sharedInfo[i*abi.VCPUInfoSize+abi.VCPUInfoUpcallMask] = 1
	}
	return nil
}

func (d *Domain) setupKVM() error {
	var err error
	if d.sys, err = kvm.Open(); err != nil {
		return err
	}
	if d.vm, err = d.sys.CreateVM(); err != nil {
		return err
	}
	for slot, r := range []*guestmem.Region{d.ram, d.xenheap, d.holeMem} {
		if err := d.vm.SetUserMemoryRegion(&kvm.UserspaceMemoryRegion{
			Slot: uint32(slot), GuestPhysAddr: r.Base(), MemorySize: r.Size(), UserspaceAddr: kvm.AddrOf(r.Bytes()),
		}); err != nil {
			return fmt.Errorf("vmm: memory slot %d: %w", slot, err)
		}
	}
	if d.cpuid, err = newCPUIDTable(d.sys); err != nil {
		return err
	}
	d.clock = newClock()
	return nil
}

// build runs the PV domain builder and connects the console and
// xenstore rings it placed.
func (d *Domain) build() error {
	conPort, err := d.con.allocPort()
	if err != nil {
		return err
	}
	storeEP, err := d.events.AllocBackend(func(ep *evtchn.Endpoint, ev evtchn.EndpointEvent) {
		if ev == evtchn.EndpointNotifiedEvent && d.storeRing != nil {
			d.storeRing.HandleEvent()
		}
	})
	if err != nil {
		return err
	}
	_, storePort := storeEP.State()
	d.built, err = loader.BuildPV(d.opts.Kernel, loader.BuildConfig{
		RAM:           d.space,
		NrPages:       d.nrPages,
		Ramdisk:       d.opts.Ramdisk,
		Cmdline:       d.opts.Cmdline,
		SharedInfoMFN: d.xenheapPFN + xhSharedInfo,
		StoreEvtchn:   storePort,
		ConsoleEvtchn: conPort,
		HoleL4:        d.layout.L4Entries(),
	})
	if err != nil {
		return err
	}
	// Xen pins the bootstrap L4: its tables are page tables from the start.
	l4 := d.built.CR3 >> guestmem.PageShift
	if !d.mmu.validate(l4, 4) {
		return errors.New("vmm: the domain builder's page tables do not validate")
	}
	d.mmu.pinned[l4] = 4
	if err := d.con.setRing(d.built.ConsolePFN); err != nil {
		return err
	}
	d.setWallclock()

	// xenstore: the daemon, the guest's ring, and the tree xl writes.
	d.xs = xenstore.New(xenstore.Options{Logger: d.log.With("component", "xenstore")})
	page, err := d.space.Page(d.built.StorePFN)
	if err != nil {
		return err
	}
	ring, err := d.xs.Introduce(uint32(d.domid), page, func() { storeEP.Notify() })
	if err != nil {
		return err
	}
	d.storeRing = ring
	if sock := d.opts.XenstoreSocket; sock != "-" {
		if sock == "" {
			sock = XenstoreSocketPath(d.opts.Name)
		}
		if c, err := net.DialTimeout("unix", sock, time.Second); err == nil {
			c.Close()
			return fmt.Errorf("a domain named %q is already running (its xenstore answers on %s)", d.opts.Name, sock)
		}
		if d.xsSock, err = d.xs.ListenUnix(sock); err != nil {
			return fmt.Errorf("xenstore socket: %w", err)
		}
		d.log.Info("xenstore for host tools", "socket", sock)
	}
	uuid := fmt.Sprintf("%x-%x-%x-%x-%x", d.uuid[0:4], d.uuid[4:6], d.uuid[6:8], d.uuid[8:10], d.uuid[10:16])
	if err := d.xs.NewClient().PopulateDomU(xenstore.DomU{
		Domid: uint32(d.domid), Name: d.opts.Name, UUID: uuid,
		MaxMemKiB: d.maxPages * 4, TargetMemKiB: d.nrPages * 4, VCPUs: d.opts.VCPUs, OnlineVCPUs: 1,
		StorePort: storePort, StoreRingRef: d.built.StorePFN,
		ConsolePort: conPort, ConsoleRingRef: d.built.ConsolePFN,
		Kernel: d.opts.Kernel.Name, Cmdline: d.opts.Cmdline,
	}); err != nil {
		return err
	}
	return d.setupDevices()
}

// Xenstore is the domain's xenstore daemon (for host-side clients).
func (d *Domain) Xenstore() *xenstore.Daemon { return d.xs }

// Run runs the domain until it shuts down or ctx ends.
func (d *Domain) Run(ctx context.Context) (Exit, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	d.con.start(ctx)
	d.vcpus[0].online = true
	// Xen starts every vCPU with a 10 ms periodic VIRQ_TIMER (vcpu
	// initialisation sets periodic_period); 2.6.18-era kernels rely on
	// it, later ones stop it with VCPUOP_stop_periodic_timer.
	d.vcpus[0].setPeriodic(defaultPeriodicTimer)
	go d.keepTime(ctx.Done())
	for _, v := range d.vcpus {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v.loop(ctx)
		}()
	}
	select {
	case <-d.done:
	case <-ctx.Done():
		d.shutdown(Exit{Reason: ReasonError, Detail: "interrupted"})
	}
	cancel()
	for _, v := range d.vcpus {
		v.kick()
	}
	wg.Wait()
	d.con.flush()
	// The domain is gone: stop answering for its name.
	if d.xsSock != nil {
		d.xsSock.Close()
		d.xsSock = nil
	}
	d.mu.Lock()
	e := *d.exit
	d.mu.Unlock()
	if e.Reason == ReasonError && e.Detail == "interrupted" {
		// Stopped from outside (a timeout, a signal): say where each
		// vCPU was, for a guest that hung.
		for _, v := range d.vcpus {
			if v.online {
				e.Detail += "; " + v.stallReport()
			}
		}
	}
	return e, nil
}

// shutdown records how the domain ends (the first call wins) and stops
// every vCPU.
func (d *Domain) shutdown(e Exit) {
	d.mu.Lock()
	if d.exit == nil {
		d.exit = &e
		close(d.done)
	}
	d.mu.Unlock()
	for _, v := range d.vcpus {
		v.kick()
	}
}

// crash kills the domain for a reason the guest caused or xenvmm cannot
// handle; it is logged with context.
func (d *Domain) crash(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	d.log.Error("domain killed", "domain", d.opts.Name, "reason", msg)
	d.shutdown(Exit{Reason: ReasonError, Detail: msg})
}

func (d *Domain) stopped() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// Close releases the domain's devices, VM and memory. It may be called
// more than once.
func (d *Domain) Close() error {
	d.closeOnce.Do(d.close)
	return nil
}

func (d *Domain) close() {
	if d.bus != nil {
		d.bus.Close()
	}
	if d.xsSock != nil {
		d.xsSock.Close()
	}
	for _, v := range d.vcpus {
		v.close()
	}
	if d.vm != nil {
		d.vm.Close()
	}
	if d.sys != nil {
		d.sys.Close()
	}
	for _, r := range []*guestmem.Region{d.ram, d.xenheap, d.holeMem} {
		if r != nil {
			r.Close()
		}
	}
}

// Trace returns the hypercall counts (nil unless Options.Trace).
func (d *Domain) Trace() []TraceEntry {
	if d.trace == nil {
		return nil
	}
	return d.trace.entries()
}

// Uptime is the domain's system time (nanoseconds since it was built).
func (d *Domain) Uptime() time.Duration { return time.Duration(d.clock.now()) }

func roundUp(v, to uint64) uint64 { return (v + to - 1) &^ (to - 1) }
