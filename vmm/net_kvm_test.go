package vmm

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/xenvmm/xenvmm/config"
	"github.com/xenvmm/xenvmm/devices/tap/taptest"
	"github.com/xenvmm/xenvmm/internal/testenv"
	"github.com/xenvmm/xenvmm/xenabi/abi"
)

// TestMain lets the test binary stand in for a vif hotplug script: run
// under the name "vif-record", it appends its arguments to the file named
// by $XENVMM_TEST_HOTPLUG_LOG and exits.
func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == "vif-record" {
		f, err := os.OpenFile(os.Getenv("XENVMM_TEST_HOTPLUG_LOG"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Fprintln(f, strings.Join(os.Args[1:], " "))
		f.Close()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// netStream is the byte stream of the guest's netcheck for n bytes (the
// same generator, seeded with n).
func netStream(n int64) io.Reader {
	return io.LimitReader(&pcgStream{rand.New(rand.NewPCG(uint64(n), 7))}, n)
}

type pcgStream struct{ rng *rand.Rand }

func (s *pcgStream) Read(p []byte) (int, error) {
	n := len(p) &^ 7
	for i := 0; i < n; i += 8 {
		binary.LittleEndian.PutUint64(p[i:], s.rng.Uint64())
	}
	return n, nil
}

// bridgeUp creates bridge name with address cidr, up, in the calling
// thread's network namespace.
func bridgeUp(name, cidr string) error {
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}
	if err := netlink.LinkAdd(br); err != nil {
		return fmt.Errorf("bridge %s: %w", name, err)
	}
	return addrUp(name, cidr)
}

func addrUp(name, cidr string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	a, err := netlink.ParseAddr(cidr)
	if err != nil {
		return err
	}
	if err := netlink.AddrAdd(l, a); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return netlink.LinkSetUp(l)
}

// streamServer accepts two connections at addr in ns: to the first it
// sends n bytes of netStream(n); from the second it receives until EOF.
// It returns the SHA-256 of what it sent and what it received, and the
// receive's duration.
type streamResult struct {
	sent, recv     [32]byte
	recvN          int64
	sendD, recvD   time.Duration
	sendErr, rxErr error
}

func streamServer(t *testing.T, ns *taptest.Netns, addr string, n int64) <-chan streamResult {
	t.Helper()
	var ln net.Listener
	if err := ns.Do(func() error {
		var err error
		ln, err = net.Listen("tcp4", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	res := make(chan streamResult, 1)
	go func() {
		var r streamResult
		defer func() { res <- r }()
		c, err := ln.Accept()
		if err != nil {
			r.sendErr = err
			return
		}
		h := sha256.New()
		start := time.Now()
		_, r.sendErr = io.Copy(c, io.TeeReader(netStream(n), h))
		c.Close()
		r.sendD = time.Since(start)
		copy(r.sent[:], h.Sum(nil))
		if c, err = ln.Accept(); err != nil {
			r.rxErr = err
			return
		}
		h.Reset()
		start = time.Now()
		r.recvN, r.rxErr = io.Copy(h, c)
		r.recvD = time.Since(start)
		c.Close()
		copy(r.recv[:], h.Sum(nil))
	}()
	return res
}

// TestKVMNetLinux: Linux's xen-netfront against netback over real taps,
// in a network namespace the test creates. The guest has two vifs on two
// bridges; it reads each one's address from xenstore (ip=), pings the
// host side of both, and exchanges a TCP stream each way with a server
// on the host (SHA-256 checked). The second vif has a script=, which
// must run with "up" at start and "down" at teardown. The same transfer
// between two namespaces over a veth pair gives the reference for the
// throughput ratio.
func TestKVMNetLinux(t *testing.T) {
	testenvNet(t)
	mib := int64(100)
	if testing.Short() {
		mib = 16
	}
	n := mib << 20
	ns := taptest.New(t)
	if err := ns.Do(func() error {
		if err := bridgeUp("br0", "10.0.0.1/24"); err != nil {
			return err
		}
		return bridgeUp("br1", "10.0.1.1/24")
	}); err != nil {
		t.Fatal(err)
	}
	// The hotplug script: this test binary under another name.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "vif-record")
	if err := os.Symlink(exe, script); err != nil {
		t.Fatal(err)
	}
	hotplugLog := filepath.Join(dir, "hotplug.log")
	t.Setenv("XENVMM_TEST_HOTPLUG_LOG", hotplugLog)

	vifs := []config.Vif{
		parseVif(t, "mac=00:16:3e:12:34:56, bridge=br0, ip=10.0.0.2"),
		parseVif(t, "mac=00:16:3e:12:34:57, bridge=br1, ip=10.0.1.2, script="+script),
	}
	res := streamServer(t, ns, "10.0.0.1:5001", n)
	rd := linuxInitramfs(t, "netcheck", "xen_netfront")
	extra := fmt.Sprintf("xenvmm.net.vifs=2 xenvmm.net.server=10.0.0.1:5001 xenvmm.net.mib=%d", mib)
	opts, con := linuxOptions(t, rd, 256, extra)
	opts.Vifs = vifs
	// The taps are created, and the scripts run, in the namespace.
	var d *Domain
	if err := ns.Do(func() error {
		var err error
		d, err = New(opts)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Do(d.Close) })
	if b, _ := os.ReadFile(hotplugLog); !strings.Contains(string(b), "up domain=linux-test vif=vif1.1 mac=00:16:3e:12:34:57 bridge=br1") {
		t.Errorf("hotplug script at start: %q", b)
	}
	var exit Exit
	if err := ns.Do(func() error {
		var err error
		exit, err = runClose(d, 10*time.Minute)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if exit.Reason != abi.SHUTDOWN_poweroff {
		t.Fatalf("domain ended with %v; console tail:\n%s", exit, con.tail(40))
	}
	must := func(pattern string) []string {
		t.Helper()
		_, m, ok := con.find(regexp.MustCompile(pattern))
		if !ok {
			t.Fatalf("console lacks %q; tail:\n%s", pattern, con.tail(40))
		}
		return m
	}
	must(`XENVMM-GUEST: eth0 mac=00:16:3e:12:34:56 ip=10\.0\.0\.2 \(from /local/domain/0/backend/vif/1/0/ip\)`)
	must(`XENVMM-GUEST: eth1 mac=00:16:3e:12:34:57 ip=10\.0\.1\.2 \(from /local/domain/0/backend/vif/1/1/ip\)`)
	t.Logf("ping: %s; %s", must(`eth0 ping 10\.0\.0\.1 ok rtt=(\S+)`)[1], must(`eth1 ping 10\.0\.1\.1 ok rtt=(\S+)`)[1])
	must(`XENVMM-GUEST: xenstore wrote data/xenvmm-test`)
	must(`XENVMM-GUEST: xenstore name=linux-test`)

	r := <-res
	if r.sendErr != nil || r.rxErr != nil {
		t.Fatalf("host server: send %v, receive %v", r.sendErr, r.rxErr)
	}
	rx := must(`XENVMM-GUEST: received (\d+) bytes in (\S+) \(([\d.]+) MB/s\) sha256=([0-9a-f]+)`)
	if rx[1] != fmt.Sprint(n) || rx[4] != fmt.Sprintf("%x", r.sent) {
		t.Errorf("host to guest: guest got %s bytes sha256 %s; host sent %d sha256 %x", rx[1], rx[4], n, r.sent)
	}
	tx := must(`XENVMM-GUEST: sent (\d+) bytes in (\S+) \(([\d.]+) MB/s\) sha256=([0-9a-f]+)`)
	want := sha256.New()
	io.Copy(want, netStream(n))
	if r.recvN != n || fmt.Sprintf("%x", r.recv) != fmt.Sprintf("%x", want.Sum(nil)) || tx[4] != fmt.Sprintf("%x", r.recv) {
		t.Errorf("guest to host: host got %d bytes sha256 %x; guest sent %s sha256 %s", r.recvN, r.recv, tx[1], tx[4])
	}
	down, up := float64(n)/r.sendD.Seconds()/1e6, float64(n)/r.recvD.Seconds()/1e6

	b, _ := os.ReadFile(hotplugLog)
	if !strings.Contains(string(b), "down domain=linux-test vif=vif1.1") {
		t.Errorf("hotplug script at teardown: %q", b)
	}
	if strings.Contains(string(b), "vif1.0") {
		t.Errorf("the script ran for the vif without script=: %q", b)
	}
	if err := ns.Do(func() error {
		if _, err := netlink.LinkByName("vif1.0"); err == nil {
			return fmt.Errorf("vif1.0 still exists after the domain closed")
		}
		return nil
	}); err != nil {
		t.Error(err)
	}

	vUp, vDown := vethTransfer(t, n)
	t.Logf("BENCH net: %d MiB each way: guest->host %.1f MB/s (%.3f of veth %.0f MB/s), host->guest %.1f MB/s (%.3f of veth %.0f MB/s)",
		mib, up, up/vUp, vUp, down, down/vDown, vDown)
}

// vethTransfer moves n bytes each way over TCP between two namespaces
// joined by a veth pair and returns the throughput (MB/s) of each.
func vethTransfer(t *testing.T, n int64) (up, down float64) {
	t.Helper()
	a, b := taptest.New(t), taptest.New(t)
	var bNs *os.File
	if err := b.Do(func() error {
		var err error
		bNs, err = os.Open("/proc/thread-self/ns/net")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer bNs.Close()
	if err := a.Do(func() error {
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "veth0"}, PeerName: "veth1", PeerNamespace: netlink.NsFd(int(bNs.Fd()))}
		if err := netlink.LinkAdd(veth); err != nil {
			return err
		}
		return addrUp("veth0", "10.9.0.1/24")
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.Do(func() error { return addrUp("veth1", "10.9.0.2/24") }); err != nil {
		t.Fatal(err)
	}
	res := streamServer(t, a, "10.9.0.1:5002", n)
	var wg sync.WaitGroup
	var cerr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		var c net.Conn
		dial := func() error {
			var err error
			c, err = net.DialTimeout("tcp4", "10.9.0.1:5002", 10*time.Second)
			return err
		}
		if cerr = b.Do(dial); cerr != nil {
			return
		}
		io.Copy(io.Discard, c)
		c.Close()
		if cerr = b.Do(dial); cerr != nil {
			return
		}
		io.Copy(c, netStream(n))
		c.Close()
	}()
	wg.Wait()
	r := <-res
	if cerr != nil || r.sendErr != nil || r.rxErr != nil || r.recvN != n {
		t.Fatalf("veth transfer: client %v, server send %v, receive %v (%d bytes)", cerr, r.sendErr, r.rxErr, r.recvN)
	}
	return float64(n) / r.recvD.Seconds() / 1e6, float64(n) / r.sendD.Seconds() / 1e6
}

func parseVif(t *testing.T, spec string) config.Vif {
	t.Helper()
	v, err := config.ParseVif(spec)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// testenvNet skips (or fails under CI) where neither KVM nor network
// namespaces are available.
func testenvNet(t *testing.T) {
	t.Helper()
	testenv.RequireKVM(t)
	taptest.Require(t)
}
