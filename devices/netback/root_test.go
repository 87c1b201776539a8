package netback

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xenvmm/xenvmm/config"
	"github.com/xenvmm/xenvmm/devices/tap"
	"github.com/xenvmm/xenvmm/devices/tap/taptest"
)

// Tests with real tap devices, each in network namespaces of its own.
// They need root and /dev/net/tun (taptest.Require: skipped on a
// developer's machine without them, failed under CI).

const (
	hostIP  = "10.0.0.1"
	guestIP = "10.0.0.2"
)

var guestMAC = net.HardwareAddr{0xaa, 0x00, 0x00, 0x50, 0x02, 0xf0}

// addrUp gives link name address cidr and sets it up.
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
		return err
	}
	return netlink.LinkSetUp(l)
}

// hostSide is the "domain 0" namespace: bridge br0 with the host's
// address, and a vif on it made by New from a vif spec.
type hostSide struct {
	ns  *taptest.Netns
	vif *Vif
}

func newHostSide(t *testing.T, spec string, o Options) *hostSide {
	t.Helper()
	h := &hostSide{ns: taptest.New(t)}
	vc, err := config.ParseVif(spec)
	if err != nil {
		t.Fatal(err)
	}
	err = h.ns.Do(func() error {
		if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}}); err != nil {
			return err
		}
		if err := addrUp("br0", hostIP+"/24"); err != nil {
			return err
		}
		o.DomID = 9
		h.vif, err = New(vc, o)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.vif.Close() })
	return h
}

// guestSide is a namespace whose kernel plays the guest: its eth0 is a
// tap that kernelFront relays to netback's rings.
type guestSide struct {
	ns *taptest.Netns
	kf *kernelFront
}

func newGuestSide(t *testing.T, h *hostSide, features map[string]string) *guestSide {
	t.Helper()
	g := &guestSide{ns: taptest.New(t)}
	nf := newNetfront(t, features)
	if err := h.vif.connect(context.Background(), nf.fe); err != nil {
		t.Fatal(err)
	}
	var dev *tap.Tap
	err := g.ns.Do(func() error {
		var err error
		if dev, err = tap.Create(tap.Config{Name: "eth0", MAC: guestMAC}); err != nil {
			return err
		}
		// What netfront offers its kernel: checksum offload, and TSO
		// when the backend takes GSO.
		off := tap.OffloadCsum
		if features["feature-gso-tcpv4"] == "1" {
			off |= tap.OffloadTSO4 | tap.OffloadTSO6
		}
		if err := dev.SetOffload(off); err != nil {
			return err
		}
		return addrUp("eth0", guestIP+"/24")
	})
	if err != nil {
		t.Fatal(err)
	}
	g.kf = newKernelFront(t, nf, dev)
	t.Cleanup(func() {
		if err := g.kf.stop(); err != nil {
			t.Errorf("guest relay: %v", err)
		}
	})
	return g
}

// recorder is a hotplug script that appends its arguments to a log.
func recorder(t *testing.T) (dir, log string) {
	dir = t.TempDir()
	log = filepath.Join(dir, "calls")
	script := "#!/bin/sh\necho \"$*\" >> " + log + "\nip link show \"$(echo \"$*\" | sed -n 's/.*vif=\\([^ ]*\\).*/\\1/p')\" >/dev/null 2>&1 && echo exists >> " + log + "\n"
	if err := os.WriteFile(filepath.Join(dir, "vif-record"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir, log
}

// TestTapUDP: UDP both ways between the host's stack and a fake guest
// over a real tap, with checksum offload honoured in both directions, and
// the hotplug script run on up and down.
func TestTapUDP(t *testing.T) {
	taptest.Require(t)
	dir, log := recorder(t)
	h := newHostSide(t, "mac=aa:00:00:50:02:f0, bridge=br0, script=vif-record, ip=10.0.0.2", Options{ScriptDir: dir, DomainName: "nbsd"})
	nf := newNetfront(t, linuxFeatures)
	link := h.vif.link.(*tap.Tap)
	carrier := func() bool {
		var up bool
		if err := h.ns.Do(func() error {
			l, err := netlink.LinkByName("vif9.0")
			if err == nil {
				up = l.Attrs().RawFlags&unix.IFF_LOWER_UP != 0
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return up
	}
	if carrier() {
		t.Error("carrier on before the frontend connected")
	}
	if err := h.vif.connect(context.Background(), nf.fe); err != nil {
		t.Fatal(err)
	}
	if !carrier() {
		t.Error("carrier off with the frontend connected")
	}
	var conn *net.UDPConn
	err := h.ns.Do(func() error {
		l, err := netlink.LinkByName("vif9.0")
		if err != nil {
			return err
		}
		if l.Attrs().HardwareAddr.String() != "aa:00:00:51:02:f0" || l.Attrs().Flags&net.FlagUp == 0 {
			t.Errorf("vif9.0: mac %s flags %v", l.Attrs().HardwareAddr, l.Attrs().Flags)
		}
		br, _ := netlink.LinkByName("br0")
		if l.Attrs().MasterIndex != br.Attrs().Index {
			t.Error("vif9.0 is not a port of br0")
		}
		// The guest's address resolves without ARP.
		if err := netlink.NeighAdd(&netlink.Neigh{LinkIndex: br.Attrs().Index, State: netlink.NUD_PERMANENT,
			IP: net.ParseIP(guestIP), HardwareAddr: guestMAC}); err != nil {
			return err
		}
		conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(hostIP), Port: 5001})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if link.Name() != "vif9.0" {
		t.Errorf("tap %s", link.Name())
	}

	// Guest to host: the guest's stack leaves the checksum to the
	// backend (csum_blank); a frame with a correct full checksum and no
	// flags; and one with a wrong checksum, which the host must drop.
	mk := func(payload string) []byte {
		p := ipv4(protoUDP, udp([]byte(payload)))
		copy(p[12:], net.ParseIP(guestIP).To4())
		copy(p[16:], net.ParseIP(hostIP).To4())
		binary.BigEndian.PutUint16(p[10:], 0)
		binary.BigEndian.PutUint16(p[10:], ^csumFold(csumAdd(0, p[:20])))
		binary.BigEndian.PutUint16(p[22:], 5001)
		return ether(etherTypeIPv4, p)
	}
	// Frames for the host's stack are addressed to the bridge's MAC.
	var brMAC net.HardwareAddr
	h.ns.Do(func() error {
		br, err := netlink.LinkByName("br0")
		if err == nil {
			brMAC = br.Attrs().HardwareAddr
		}
		return err
	})
	send := func(f []byte, flags uint16, id uint16) {
		copy(f, brMAC)
		nf.sendTx([]txFrag{{data: f, flags: flags, id: id}}, nil, true)
		if r := nf.txResponses(1); r[0].Status != RspOkay {
			t.Fatalf("TX response %v", r)
		}
	}
	send(withPartialCsum(mk("partial")), TxfCsumBlank|TxfDataValidated, 1)
	bad := withFullCsum(mk("corrupt"))
	bad[len(bad)-1] ^= 0xff
	send(bad, 0, 2)
	send(withFullCsum(mk("full")), 0, 3)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var got []string
	buf := make([]byte, 2000)
	for len(got) < 2 {
		n, _, err := conn.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("host UDP read after %v: %v", got, err)
		}
		got = append(got, string(buf[:n]))
	}
	if got[0] != "partial" || got[1] != "full" {
		t.Errorf("host received %q; want partial and full (the corrupt one dropped)", got)
	}

	// Host to guest: the host's datagram arrives in the guest's buffers
	// with a checksum it can verify or complete.
	nf.postRx(16)
	if err := h.ns.Do(func() error {
		_, err := conn.WriteToUDP([]byte("hello guest"), &net.UDPAddr{IP: net.ParseIP(guestIP), Port: 6000})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for {
		p := nf.rxPackets(1)[0]
		hd, err := parseHeaders(p.data)
		if err != nil || hd.proto != protoUDP {
			continue // IPv6 router solicitations and such
		}
		if p.flags&RxfCsumBlank != 0 {
			if err := completeCsum(p.data, hd.l4, hd.csumOffset()); err != nil {
				t.Fatal(err)
			}
		}
		if err := csumOK(p.data); err != nil {
			t.Errorf("datagram to the guest (flags %#x): %v", p.flags, err)
		}
		if !bytes.HasSuffix(p.data, []byte("hello guest")) {
			t.Errorf("datagram % x", p.data)
		}
		break
	}

	// Close runs the script's down while the interface exists, then the
	// interface is gone.
	if err := h.ns.Do(func() error { return h.vif.Close() }); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	want := "up domain=nbsd vif=vif9.0 mac=aa:00:00:50:02:f0 bridge=br0 ip=10.0.0.2\nexists\n" +
		"down domain=nbsd vif=vif9.0 mac=aa:00:00:50:02:f0 bridge=br0 ip=10.0.0.2\nexists\n"
	if string(b) != want {
		t.Errorf("script calls:\n%s\nwant:\n%s", b, want)
	}
	if err := h.ns.Do(func() error { _, err := netlink.LinkByName("vif9.0"); return err }); err == nil {
		t.Error("vif9.0 exists after Close")
	}
}

// stream moves n bytes of pseudo-random data over c and returns how long
// it took and whether the SHA-256 of what arrived matches.
func stream(t *testing.T, w io.WriteCloser, r io.Reader, n int64) (time.Duration, error) {
	block := make([]byte, 1<<20)
	rng := rand.New(rand.NewPCG(uint64(n), 7))
	for i := 0; i < len(block); i += 8 {
		binary.LittleEndian.PutUint64(block[i:], rng.Uint64())
	}
	sent := sha256.New()
	var werr error
	var wg sync.WaitGroup
	start := time.Now()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for left := n; left > 0; {
			b := block[:min(int64(len(block)), left)]
			block[0]++ // no two blocks alike
			sent.Write(b)
			if _, err := w.Write(b); err != nil {
				werr = err
				break
			}
			left -= int64(len(b))
		}
		w.Close()
	}()
	recv := sha256.New()
	got, err := io.Copy(recv, r)
	d := time.Since(start)
	wg.Wait()
	if err != nil || werr != nil {
		return d, fmt.Errorf("read %d bytes: %v; write: %v", got, err, werr)
	}
	if got != n || !bytes.Equal(sent.Sum(nil), recv.Sum(nil)) {
		return d, fmt.Errorf("received %d of %d bytes, checksum match %v", got, n, bytes.Equal(sent.Sum(nil), recv.Sum(nil)))
	}
	return d, nil
}

// tcpPair connects a client in cli to a server in srv at addr and
// returns both ends.
func tcpPair(t *testing.T, srv, cli *taptest.Netns, addr string) (server, client *net.TCPConn) {
	t.Helper()
	var ln net.Listener
	if err := srv.Do(func() error {
		var err error
		ln, err = net.Listen("tcp4", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	var c net.Conn
	if err := cli.Do(func() error {
		var err error
		c, err = net.DialTimeout("tcp4", addr, 10*time.Second)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	s, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	return s.(*net.TCPConn), c.(*net.TCPConn)
}

// transfer runs a TCP stream each way between srv (at addr) and cli and
// returns the throughput of each in MB/s.
func transfer(t *testing.T, srv, cli *taptest.Netns, addr string, n int64) (up, down float64) {
	t.Helper()
	s, c := tcpPair(t, srv, cli, addr)
	d, err := stream(t, c, s, n) // client to server
	if err != nil {
		t.Fatalf("client to server: %v", err)
	}
	up = float64(n) / d.Seconds() / 1e6
	s.Close()
	s, c = tcpPair(t, srv, cli, addr)
	d, err = stream(t, s, c, n) // server to client
	if err != nil {
		t.Fatalf("server to client: %v", err)
	}
	c.Close()
	return up, float64(n) / d.Seconds() / 1e6
}

// TestTCPStream is the data path's acceptance test with a real network
// stack on both sides: a guest (a namespace's kernel behind kernelFront,
// standing in for netfront) and the host exchange a 100 MiB TCP stream in
// each direction over netback and a bridged tap, SHA-256 verified, with
// Linux's offloads (csum_blank, GSO both ways) and with NetBSD 5.1's (no
// SG, no GSO: netback segments in Go). The same transfer over a veth pair
// gives the reference, and the log reports the ratio.
func TestTCPStream(t *testing.T) {
	taptest.Require(t)
	n := int64(100 << 20)
	if testing.Short() {
		n = 8 << 20
	}
	// Host to host over a veth pair, for reference.
	a, b := taptest.New(t), taptest.New(t)
	var bFd int
	if err := b.Do(func() error {
		f, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			return err
		}
		bFd = int(f.Fd())
		t.Cleanup(func() { f.Close() })
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := a.Do(func() error {
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "veth0"}, PeerName: "veth1", PeerNamespace: netlink.NsFd(bFd)}
		if err := netlink.LinkAdd(veth); err != nil {
			return err
		}
		return addrUp("veth0", "10.1.0.1/24")
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.Do(func() error { return addrUp("veth1", "10.1.0.2/24") }); err != nil {
		t.Fatal(err)
	}
	vUp, vDown := transfer(t, a, b, "10.1.0.1:5001", n)
	t.Logf("veth: %d MiB each way: %.0f MB/s up, %.0f MB/s down", n>>20, vUp, vDown)

	for _, tc := range []struct {
		name     string
		features map[string]string
	}{
		{"Linux netfront offloads", linuxFeatures},
		{"NetBSD 5.1 xennet (no SG, no GSO)", netbsd51Features},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHostSide(t, "mac=aa:00:00:50:02:f0, bridge=br0", Options{})
			g := newGuestSide(t, h, tc.features)
			up, down := transfer(t, h.ns, g.ns, hostIP+":5001", n)
			st := h.vif.Stats()
			t.Logf("netback: %d MiB each way: guest->host %.0f MB/s (%.2f of veth), host->guest %.0f MB/s (%.2f of veth); %d TX packets (%.0f B avg), %d RX packets (%.0f B avg), errors tx %d rx %d, dropped tx %d rx %d",
				n>>20, up, up/vUp, down, down/vDown, st.TxPackets, float64(st.TxBytes)/float64(max(1, st.TxPackets)),
				st.RxPackets, float64(st.RxBytes)/float64(max(1, st.RxPackets)), st.TxErrors, st.RxErrors, st.TxDropped, st.RxDropped)
			if st.TxErrors != 0 || st.RxErrors != 0 {
				t.Errorf("errors: %+v", st)
			}
			if tc.features["feature-gso-tcpv4"] == "1" && st.TxBytes/max(1, st.TxPackets) < 3000 {
				t.Errorf("guest to host: average packet %d bytes; GSO not in use", st.TxBytes/max(1, st.TxPackets))
			}
			if tc.features["feature-sg"] == "" && st.RxBytes/max(1, st.RxPackets) > PageSize {
				t.Errorf("frames over a page went to a frontend without feature-sg")
			}
		})
	}
}

// BenchmarkTxToTap measures guest-to-host throughput: frames a guest
// puts on its TX ring, through netback, into a real tap; and, on the
// same tap, the same frames written directly. It reports the ratio
// (netback throughput / direct throughput) as "ratio". Two workloads:
// 1514-byte frames, and 64 KiB TCP GSO frames (17 slots and a GSO extra
// each, as Linux's netfront sends a TSO skb).
func BenchmarkTxToTap(b *testing.B) {
	taptest.Require(b)
	// netfront's largest TSO skb: XEN_NETIF_MAX_TX_SIZE less room for headers.
	gso := withPartialCsum(ether(etherTypeIPv4, ipv4(protoTCP, tcp(fill(MaxTxSize-14-40-200, 1), 1, 0x10))))
	for _, w := range []struct {
		name  string
		frame []byte
		hdr   tap.VnetHdr
	}{
		{"1514B", ether(0x88b5, fill(1500, 1)), tap.VnetHdr{}},
		{"gso64k", gso, tap.VnetHdr{Flags: tap.VnetFlagNeedsCsum, GSOType: tap.VnetGSOTCPv4, GSOSize: 1448, HdrLen: 54, CsumStart: 34, CsumOffset: 16}},
	} {
		b.Run(w.name, func(b *testing.B) {
			ns := taptest.New(b)
			var dev *tap.Tap
			if err := ns.Do(func() error {
				var err error
				dev, err = tap.Create(tap.Config{Name: "bench0"})
				return err
			}); err != nil {
				b.Fatal(err)
			}
			nf := newNetfront(b, linuxFeatures)
			v, err := New(config.Vif{}, Options{DomID: testDom, Link: dev})
			if err != nil {
				b.Fatal(err)
			}
			defer v.Close()
			if err := v.connect(context.Background(), nf.fe); err != nil {
				b.Fatal(err)
			}
			// The guest's buffers: the frame's pages, granted once, as
			// many copies as fit the ring.
			nfrags := (len(w.frame) + PageSize - 1) / PageSize
			slots := nfrags
			if w.hdr.GSOType != 0 {
				slots++
			}
			perRing := 256 / slots
			refs := make([][]uint32, perRing)
			for k := range refs {
				for j := range nfrags {
					ref, p := nf.g.grant(true)
					copy(p, w.frame[j*PageSize:min(len(w.frame), (j+1)*PageSize)])
					refs[k] = append(refs[k], ref)
				}
			}
			b.SetBytes(int64(len(w.frame)))
			b.ResetTimer()
			start := time.Now()
			sent, done := 0, 0
			for done < b.N {
				for sent < b.N && int(nf.tx.Free()) >= slots {
					k := sent % perRing
					for j, ref := range refs[k] {
						r := TxRequest{Gref: ref, ID: uint16(k*nfrags + j), Size: uint16(min(PageSize, len(w.frame)-j*PageSize))}
						if j == 0 {
							r.Size = uint16(len(w.frame))
							if w.hdr.GSOType != 0 {
								r.Flags |= TxfCsumBlank | TxfExtraInfo
							}
						}
						if j < nfrags-1 {
							r.Flags |= TxfMoreData
						}
						r.Encode(nf.tx.RequestSlot())
						if j == 0 && w.hdr.GSOType != 0 {
							s := nf.tx.RequestSlot()
							clear(s)
							GSOExtra(w.hdr.GSOSize, GSOTypeTCPv4, 0).Encode(s)
						}
					}
					sent++
				}
				if nf.tx.PushRequests() {
					nf.kick()
				}
				for {
					s, ok := nf.tx.NextResponse()
					if ok {
						r := DecodeTxResponse(s)
						if r.Status == RspError {
							b.Fatalf("TX error response %+v", r)
						}
						if r.Status == RspOkay && r.ID%uint16(nfrags) == 0 {
							done++
						}
						continue
					}
					if done == sent || nf.tx.FinalCheckForResponses() {
						break
					}
					<-nf.txPort().notified
				}
			}
			viaNetback := time.Since(start)
			b.StopTimer()
			if st := v.Stats(); st.TxPackets < uint64(b.N) || st.TxDropped != 0 || st.TxErrors != 0 {
				b.Fatalf("stats %+v", st)
			}
			// The same frames written straight to the tap.
			frames := make([][]byte, 64)
			for i := range frames {
				frames[i] = vnet(w.hdr, w.frame)
			}
			start = time.Now()
			for i := 0; i < b.N; i += len(frames) {
				if _, err := dev.WriteBatch(frames[:min(len(frames), b.N-i)]); err != nil {
					b.Fatal(err)
				}
			}
			direct := time.Since(start)
			b.ReportMetric(direct.Seconds()/viaNetback.Seconds(), "ratio")
			b.ReportMetric(float64(b.N)*float64(len(w.frame))/direct.Seconds()/1e6, "direct-MB/s")
		})
	}
}
