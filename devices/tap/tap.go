package tap

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TunPath is the tun/tap clone device.
const TunPath = "/dev/net/tun"

// Sentinel errors.
var (
	// ErrInUse: the interface exists and is not a tap we may attach to
	// (another kind of link, or a tap another process holds open).
	ErrInUse = errors.New("tap: interface name in use")
	// ErrNoBridge: the bridge named in the configuration does not exist.
	ErrNoBridge = errors.New("tap: no such bridge")
	// ErrClosed: the Tap was closed.
	ErrClosed = errors.New("tap: closed")
)

// Config says how to set up a tap.
type Config struct {
	// Name is the interface name (DefaultName or the vif's vifname=).
	Name string
	// MAC is the host side's address (HostMAC); nil keeps the kernel's
	// random one.
	MAC net.HardwareAddr
	// MTU, when non-zero, is set on the link.
	MTU int
	// Bridge, when set, names the bridge the tap becomes a port of.
	Bridge string
	// Down leaves the link administratively down (for a hotplug script
	// that brings it up itself).
	Down bool
}

// Tap is an open tap device with IFF_VNET_HDR: every frame read or written
// starts with a VnetHdr. Reads and writes may run concurrently with each
// other; Close unblocks them.
type Tap struct {
	name    string
	file    *os.File
	rc      syscall.RawConn
	created bool // false: we attached to an existing persistent tap
	bridged bool // we made it a bridge port

	closeOnce sync.Once
	closeErr  error
}

// Create opens /dev/net/tun and creates the tap cfg.Name (TUNSETIFF with
// IFF_TAP|IFF_NO_PI|IFF_VNET_HDR), or attaches to a persistent tap of that
// name, then sets its MAC and MTU, makes it a port of cfg.Bridge and sets
// it up, all with netlink. The kernel may hand over no offloaded frames
// until SetOffload says otherwise. It acts in the network namespace of
// the calling OS thread. On error nothing is left behind.
func Create(cfg Config) (*Tap, error) {
	if err := ValidName(cfg.Name); err != nil {
		return nil, err
	}
	existed := false
	if l, err := netlink.LinkByName(cfg.Name); err == nil {
		if _, ok := l.(*netlink.Tuntap); !ok {
			return nil, fmt.Errorf("%w: %s is a %s link", ErrInUse, cfg.Name, l.Type())
		}
		existed = true
	}
	var br netlink.Link
	if cfg.Bridge != "" {
		var err error
		if br, err = netlink.LinkByName(cfg.Bridge); err != nil {
			return nil, fmt.Errorf("%w %q (create it first, e.g. ip link add %s type bridge): %v", ErrNoBridge, cfg.Bridge, cfg.Bridge, err)
		}
	}
	fd, err := unix.Open(TunPath, unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("tap %s: open %s: %w", cfg.Name, TunPath, err)
	}
	ifr, err := unix.NewIfreq(cfg.Name)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tap %s: %w", cfg.Name, err)
	}
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EINVAL) {
			return nil, fmt.Errorf("%w: %s: TUNSETIFF: %v (held by another process, or not a tap with a virtio-net header)", ErrInUse, cfg.Name, err)
		}
		return nil, fmt.Errorf("tap %s: TUNSETIFF: %w", cfg.Name, err)
	}
	if got := ifr.Name(); got != cfg.Name {
		unix.Close(fd)
		return nil, fmt.Errorf("tap %s: kernel named it %q", cfg.Name, got)
	}
	t := &Tap{name: cfg.Name, created: !existed}
	fail := func(err error) (*Tap, error) {
		t.Close()
		return nil, fmt.Errorf("tap %s: %w", cfg.Name, err)
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TUNSETVNETHDRSZ, VnetHdrLen); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tap %s: TUNSETVNETHDRSZ: %w", cfg.Name, err)
	}
	// With O_NONBLOCK set, os.NewFile puts the descriptor in the runtime
	// poller: reads park the goroutine, and Close wakes them.
	t.file = os.NewFile(uintptr(fd), TunPath+":"+cfg.Name)
	if t.rc, err = t.file.SyscallConn(); err != nil {
		return fail(err)
	}
	if err := t.SetOffload(0); err != nil {
		return fail(err)
	}
	link, err := netlink.LinkByName(cfg.Name)
	if err != nil {
		return fail(fmt.Errorf("netlink: %w", err))
	}
	if cfg.MAC != nil {
		if err := netlink.LinkSetHardwareAddr(link, cfg.MAC); err != nil {
			return fail(fmt.Errorf("set MAC %s: %w", cfg.MAC, err))
		}
	}
	if cfg.MTU > 0 {
		if err := netlink.LinkSetMTU(link, cfg.MTU); err != nil {
			return fail(fmt.Errorf("set MTU %d: %w", cfg.MTU, err))
		}
	}
	if br != nil {
		if err := netlink.LinkSetMasterByIndex(link, br.Attrs().Index); err != nil {
			return fail(fmt.Errorf("add to bridge %s: %w", cfg.Bridge, err))
		}
		t.bridged = true
	}
	if !cfg.Down {
		if err := netlink.LinkSetUp(link); err != nil {
			return fail(fmt.Errorf("set up: %w", err))
		}
	}
	return t, nil
}

// Name is the interface name.
func (t *Tap) Name() string { return t.name }

// SetOffload tells the kernel which partial frames it may hand us
// (TUNSETOFFLOAD with Offload* flags): without OffloadCsum every frame
// read has its checksums complete, without OffloadTSO4/6 none is a GSO
// frame. Frames written may carry any offload regardless.
func (t *Tap) SetOffload(flags int) error {
	var err error
	cerr := t.rc.Control(func(fd uintptr) {
		err = unix.IoctlSetInt(int(fd), unix.TUNSETOFFLOAD, flags)
	})
	if cerr != nil {
		return fmt.Errorf("tap %s: TUNSETOFFLOAD: %w", t.name, cerr)
	}
	if err != nil {
		return fmt.Errorf("tap %s: TUNSETOFFLOAD %#x: %w", t.name, flags, err)
	}
	return nil
}

// SetCarrier sets the link's carrier (TUNSETCARRIER), as Linux's
// netback does with netif_carrier_on/off while a frontend is connected or
// not: without carrier a bridge does not forward to the port.
func (t *Tap) SetCarrier(up bool) error {
	v := 0
	if up {
		v = 1
	}
	var err error
	cerr := t.rc.Control(func(fd uintptr) {
		err = unix.IoctlSetPointerInt(int(fd), unix.TUNSETCARRIER, v)
	})
	if cerr != nil {
		return fmt.Errorf("tap %s: TUNSETCARRIER: %w", t.name, cerr)
	}
	if err != nil {
		return fmt.Errorf("tap %s: TUNSETCARRIER %d: %w", t.name, v, err)
	}
	return nil
}

// Read reads one frame (VnetHdr then the Ethernet frame) into b, blocking
// until one arrives. A frame longer than b is an error (EINVAL or EFAULT
// from the kernel); size b for 64 KiB GSO frames when TSO is offloaded.
func (t *Tap) Read(b []byte) (int, error) {
	n, err := t.file.Read(b)
	if errors.Is(err, os.ErrClosed) {
		err = ErrClosed
	}
	return n, err
}

// Write writes one frame (VnetHdr then the Ethernet frame).
func (t *Tap) Write(b []byte) (int, error) {
	n, err := t.file.Write(b)
	if errors.Is(err, os.ErrClosed) {
		err = ErrClosed
	}
	return n, err
}

// ReadBatch reads up to len(bufs) frames with one wake-up: it blocks
// until a frame arrives, then goes on reading while the kernel has more
// queued. sizes[i] receives the length of the frame in bufs[i]; it
// returns the number of frames read. An error with n > 0 is held back
// until the next call.
func (t *Tap) ReadBatch(bufs [][]byte, sizes []int) (int, error) {
	if len(bufs) == 0 {
		return 0, nil
	}
	n := 0
	var rerr error
	err := t.rc.Read(func(fd uintptr) bool {
		for n < len(bufs) && n < len(sizes) {
			m, err := unix.Read(int(fd), bufs[n])
			switch {
			case err == unix.EINTR:
				continue
			case err == unix.EAGAIN:
				return n > 0 // nothing yet: wait for the poller
			case err != nil:
				if n == 0 {
					rerr = err
				}
				return true
			}
			sizes[n] = m
			n++
		}
		return true
	})
	if n > 0 {
		return n, nil
	}
	if err != nil {
		if errors.Is(err, os.ErrClosed) {
			return 0, ErrClosed
		}
		return 0, fmt.Errorf("tap %s: read: %w", t.name, err)
	}
	if rerr != nil {
		return 0, fmt.Errorf("tap %s: read: %w", t.name, rerr)
	}
	return 0, nil
}

// WriteBatch writes each of frames as one frame, with one wake-up of the
// poller for the lot. It returns how many were written; it stops at the
// first error.
func (t *Tap) WriteBatch(frames [][]byte) (int, error) {
	n := 0
	var werr error
	err := t.rc.Write(func(fd uintptr) bool {
		for n < len(frames) {
			_, err := unix.Write(int(fd), frames[n])
			switch {
			case err == unix.EINTR:
				continue
			case err == unix.EAGAIN:
				return false
			case err != nil:
				werr = err
				return true
			}
			n++
		}
		return true
	})
	if err != nil {
		if errors.Is(err, os.ErrClosed) {
			return n, ErrClosed
		}
		return n, fmt.Errorf("tap %s: write: %w", t.name, err)
	}
	if werr != nil {
		return n, fmt.Errorf("tap %s: write frame %d: %w", t.name, n, werr)
	}
	return n, nil
}

// Close releases the tap. A tap Create made disappears with its last
// descriptor (and leaves its bridge with it); one it attached to is
// taken out of the bridge it was added to and set down, as Xen's
// vif-bridge offline does. Close is idempotent; it unblocks pending reads
// and writes, which return ErrClosed.
func (t *Tap) Close() error {
	t.closeOnce.Do(func() {
		var errs []error
		if !t.created {
			if link, err := netlink.LinkByName(t.name); err == nil {
				if t.bridged {
					if err := netlink.LinkSetNoMaster(link); err != nil {
						errs = append(errs, fmt.Errorf("leave bridge: %w", err))
					}
				}
				if err := netlink.LinkSetDown(link); err != nil {
					errs = append(errs, fmt.Errorf("set down: %w", err))
				}
			}
		}
		if t.file != nil {
			if err := t.file.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		if err := errors.Join(errs...); err != nil {
			t.closeErr = fmt.Errorf("tap %s: close: %w", t.name, err)
		}
	})
	return t.closeErr
}
