// Command netcheck is the /init of xenvmm's network tests: it loads the
// modules in /modules.list (xen-netfront), waits for the vifs, reads each
// one's address from xenstore (the backend's "ip" node, where xl puts
// ip=) through /dev/xen/xenbus, configures it with netlink, pings the
// host side (the .1 of its /24), and, when xenvmm.net.server=ADDR:PORT is
// on the kernel command line, receives a TCP stream of xenvmm.net.mib
// MiB from the server and then sends one back. It reports in
// "XENVMM-GUEST:" lines and powers off.
package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/xenvmm/xenvmm/internal/guestxenbus"
	"golang.org/x/sys/unix"
)

func say(format string, args ...any) { fmt.Printf("XENVMM-GUEST: "+format+"\n", args...) }

func poweroff() {
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	select {}
}

func fail(format string, args ...any) {
	say("FAIL "+format, args...)
	poweroff()
}

func main() {
	for _, m := range []struct{ src, dst, typ string }{
		{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}, {"devtmpfs", "/dev", "devtmpfs"},
	} {
		os.MkdirAll(m.dst, 0o755)
		if err := unix.Mount(m.src, m.dst, m.typ, 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
			fail("mount %s: %v", m.dst, err)
		}
	}
	loadModules()
	args := map[string]string{}
	cmdline, _ := os.ReadFile("/proc/cmdline")
	for _, f := range strings.Fields(string(cmdline)) {
		if k, v, ok := strings.Cut(f, "="); ok && strings.HasPrefix(k, "xenvmm.") {
			args[k] = v
		}
	}
	nvifs, _ := strconv.Atoi(args["xenvmm.net.vifs"])
	if nvifs == 0 {
		nvifs = 1
	}

	xs, err := guestxenbus.Open()
	if err != nil {
		fail("xenbus: %v", err)
	}
	// Issue 4: a guest writes its own xenstore nodes (data/ is the
	// guest's, as under Xen).
	if err := xs.Write("data/xenvmm-test", "written-by-guest"); err != nil {
		fail("xenstore write data/xenvmm-test: %v", err)
	}
	say("xenstore wrote data/xenvmm-test")
	if name, err := xs.Read("name"); err == nil {
		say("xenstore name=%s", name)
	} else {
		fail("xenstore read name: %v", err)
	}

	if lo, err := netlink.LinkByName("lo"); err == nil {
		netlink.LinkSetUp(lo)
	}
	var gws []net.IP
	for i := 0; i < nvifs; i++ {
		ifname := fmt.Sprintf("eth%d", i)
		link := waitLink(ifname)
		be, err := xs.Read(fmt.Sprintf("device/vif/%d/backend", i))
		if err != nil {
			fail("xenstore device/vif/%d/backend: %v", i, err)
		}
		ipStr, err := xs.Read(be + "/ip")
		if err != nil {
			fail("xenstore %s/ip: %v", be, err)
		}
		ip := net.ParseIP(strings.Fields(ipStr)[0]).To4()
		if ip == nil {
			fail("%s/ip = %q is not an IPv4 address", be, ipStr)
		}
		addr := &netlink.Addr{IPNet: &net.IPNet{IP: ip, Mask: net.CIDRMask(24, 32)}}
		if err := netlink.AddrAdd(link, addr); err != nil {
			fail("%s: add %v: %v", ifname, addr, err)
		}
		if err := netlink.LinkSetUp(link); err != nil {
			fail("%s up: %v", ifname, err)
		}
		say("%s mac=%s ip=%s (from %s/ip)", ifname, link.Attrs().HardwareAddr, ip, be)
		gws = append(gws, net.IPv4(ip[0], ip[1], ip[2], 1).To4())
	}
	for i, gw := range gws {
		var rtt time.Duration
		var err error
		// The first echo may wait for ARP and the bridge's forwarding
		// delay; try for a while.
		for try := 0; try < 30; try++ {
			if rtt, err = ping(gw, uint16(try)); err == nil {
				break
			}
		}
		if err != nil {
			fail("eth%d: ping %s: %v", i, gw, err)
		}
		say("eth%d ping %s ok rtt=%v", i, gw, rtt)
	}

	if srv := args["xenvmm.net.server"]; srv != "" {
		mib, _ := strconv.Atoi(args["xenvmm.net.mib"])
		if mib == 0 {
			mib = 100
		}
		n := int64(mib) << 20
		// Host to guest.
		c := dial(srv)
		h := sha256.New()
		start := time.Now()
		got, err := io.Copy(h, c)
		el := time.Since(start)
		c.Close()
		if err != nil {
			fail("receive: %v after %d bytes", err, got)
		}
		say("received %d bytes in %v (%.1f MB/s) sha256=%x", got, el.Round(time.Millisecond), float64(got)/el.Seconds()/1e6, h.Sum(nil))
		// Guest to host.
		c = dial(srv)
		h.Reset()
		start = time.Now()
		sent, err := io.Copy(c, io.TeeReader(io.LimitReader(newStream(uint64(n)), n), h))
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		if err == nil {
			// Wait for the server to close: everything was received.
			_, err = io.Copy(io.Discard, c)
		}
		el = time.Since(start)
		c.Close()
		if err != nil {
			fail("send: %v after %d bytes", err, sent)
		}
		say("sent %d bytes in %v (%.1f MB/s) sha256=%x", sent, el.Round(time.Millisecond), float64(sent)/el.Seconds()/1e6, h.Sum(nil))
	}
	say("poweroff")
	poweroff()
}

func loadModules() {
	f, err := os.Open("/modules.list")
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		p := strings.TrimSpace(sc.Text())
		if p == "" {
			continue
		}
		m, err := os.Open(p)
		if err != nil {
			fail("%v", err)
		}
		if err := unix.FinitModule(int(m.Fd()), "", 0); err != nil && !errors.Is(err, unix.EEXIST) {
			fail("insmod %s: %v", p, err)
		}
		m.Close()
	}
}

func waitLink(name string) netlink.Link {
	deadline := time.Now().Add(60 * time.Second)
	for {
		if l, err := netlink.LinkByName(name); err == nil {
			return l
		}
		if time.Now().After(deadline) {
			fail("no %s after 60 s", name)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func dial(addr string) net.Conn {
	var err error
	for try := 0; try < 20; try++ {
		var c net.Conn
		if c, err = net.DialTimeout("tcp4", addr, 10*time.Second); err == nil {
			return c
		}
		time.Sleep(250 * time.Millisecond)
	}
	fail("connect %s: %v", addr, err)
	return nil
}

// newStream is the deterministic byte stream both sides of the TCP test
// generate from the same seed (the stream's length).
func newStream(seed uint64) io.Reader { return &stream{rng: rand.New(rand.NewPCG(seed, 7))} }

type stream struct{ rng *rand.Rand }

func (s *stream) Read(p []byte) (int, error) {
	n := len(p) &^ 7
	if n == 0 {
		return 0, nil
	}
	for i := 0; i < n; i += 8 {
		binary.LittleEndian.PutUint64(p[i:], s.rng.Uint64())
	}
	return n, nil
}

// ping sends one ICMP echo request to dst on a raw socket and waits up
// to a second for the reply.
func ping(dst net.IP, seq uint16) (time.Duration, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_ICMP)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval(int64(time.Second))
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	const id = 0x5856
	pkt := make([]byte, 64)
	pkt[0] = 8 // echo request
	binary.BigEndian.PutUint16(pkt[4:], id)
	binary.BigEndian.PutUint16(pkt[6:], seq)
	copy(pkt[8:], "xenvmm netcheck")
	binary.BigEndian.PutUint16(pkt[2:], checksum(pkt))
	to := &unix.SockaddrInet4{}
	copy(to.Addr[:], dst.To4())
	start := time.Now()
	if err := unix.Sendto(fd, pkt, 0, to); err != nil {
		return 0, err
	}
	buf := make([]byte, 1500)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return 0, err
		}
		if n < 20 {
			continue
		}
		ihl := int(buf[0]&0xf) * 4
		r := buf[ihl:n]
		if len(r) >= 8 && r[0] == 0 && binary.BigEndian.Uint16(r[4:]) == id && binary.BigEndian.Uint16(r[6:]) == seq {
			return time.Since(start), nil
		}
	}
}

func checksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}
