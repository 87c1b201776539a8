// Package taptest runs tests that need real tap devices: each test gets
// its own fresh network namespace, served by one OS thread, so nothing
// it creates is seen by the host or by other tests. Tests that cannot
// have one (not root, no /dev/net/tun) skip, or fail under CI, through
// internal/testenv.
package taptest

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/xenvmm/xenvmm/internal/testenv"
)

// Netns is a network namespace held by one locked OS thread. Do runs
// functions on that thread, so the sockets, taps and processes they
// create live in the namespace; the descriptors may then be used from
// any goroutine.
type Netns struct {
	calls chan func()
	done  chan struct{}
}

// Require skips t (or fails it under CI) unless this process may create
// network namespaces and tap devices.
func Require(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Missing(t, "root (for network namespaces and tap devices)")
		return
	}
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		testenv.Missing(t, fmt.Sprintf("a usable /dev/net/tun (%v)", err))
		return
	}
	unix.Close(fd)
}

// New calls Require, then creates a namespace with its loopback up,
// which t's cleanup destroys.
func New(t testing.TB) *Netns {
	t.Helper()
	Require(t)
	ns := &Netns{calls: make(chan func()), done: make(chan struct{})}
	errc := make(chan error, 1)
	go func() {
		// The thread never returns to the scheduler's pool: exiting the
		// goroutine while locked ends it, and the namespace with it.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare(CLONE_NEWNET): %w", err)
			return
		}
		errc <- nil
		for {
			select {
			case f := <-ns.calls:
				f()
			case <-ns.done:
				return
			}
		}
	}()
	if err := <-errc; err != nil {
		testenv.Missing(t, "network namespaces: "+err.Error())
		return nil
	}
	t.Cleanup(func() { close(ns.done) })
	if err := ns.Do(func() error { return setUp("lo") }); err != nil {
		t.Fatalf("netns: lo up: %v", err)
	}
	return ns
}

// Do runs f on the namespace's thread and returns its error.
func (ns *Netns) Do(f func() error) error {
	errc := make(chan error, 1)
	call := func() {
		defer func() {
			if r := recover(); r != nil {
				errc <- fmt.Errorf("panic in netns: %v", r)
			}
		}()
		errc <- f()
	}
	select {
	case ns.calls <- call:
	case <-ns.done:
		return errors.New("netns: closed")
	}
	return <-errc
}

// setUp sets a link up with SIOCSIFFLAGS on a socket of the namespace.
func setUp(name string) error {
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(s)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(s, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(s, unix.SIOCSIFFLAGS, ifr)
}

// PacketSocket is an AF_PACKET socket bound to one interface: it sees
// every frame the interface sends and receives, and sends frames out of
// it. It is the host side's view of a tap in tests.
type PacketSocket struct {
	fd    int
	index int
}

// OpenPacketSocket opens an AF_PACKET socket on interface name; call it
// inside Netns.Do.
func OpenPacketSocket(name string) (*PacketSocket, error) {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return nil, err
	}
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	err = unix.IoctlIfreq(s, unix.SIOCGIFINDEX, ifr)
	unix.Close(s)
	if err != nil {
		return nil, fmt.Errorf("SIOCGIFINDEX %s: %w", name, err)
	}
	index := int(ifr.Uint32())
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		return nil, fmt.Errorf("AF_PACKET socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: index}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind to %s: %w", name, err)
	}
	return &PacketSocket{fd: fd, index: index}, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// Send transmits one Ethernet frame out of the interface.
func (p *PacketSocket) Send(frame []byte) error {
	return unix.Sendto(p.fd, frame, 0, &unix.SockaddrLinklayer{Ifindex: p.index, Halen: 6})
}

// Recv waits up to timeoutMs for a frame the interface received (frames
// it sent, PACKET_OUTGOING, are skipped) and returns it.
func (p *PacketSocket) Recv(buf []byte, timeoutMs int) (int, error) {
	for {
		fds := []unix.PollFd{{Fd: int32(p.fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, timeoutMs)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		if n == 0 {
			return 0, errors.New("taptest: timed out waiting for a frame")
		}
		m, from, err := unix.Recvfrom(p.fd, buf, 0)
		if err != nil {
			return 0, err
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		return m, nil
	}
}

// Close closes the socket.
func (p *PacketSocket) Close() error { return unix.Close(p.fd) }
