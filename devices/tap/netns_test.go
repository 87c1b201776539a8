package tap_test

import (
	"bytes"
	"errors"
	"net"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xenvmm/xenvmm/devices/tap"
	"github.com/xenvmm/xenvmm/devices/tap/taptest"
)

func addBridge(name string) error {
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}
	if err := netlink.LinkAdd(br); err != nil {
		return err
	}
	return netlink.LinkSetUp(br)
}

// frame builds an Ethernet frame with an experimental EtherType and a
// recognisable payload.
func frame(dst, src net.HardwareAddr, n int, seed byte) []byte {
	f := make([]byte, 14+n)
	copy(f, dst)
	copy(f[6:], src)
	f[12], f[13] = 0x88, 0xb5 // IEEE 802 local experimental
	for i := 14; i < len(f); i++ {
		f[i] = seed + byte(i)
	}
	return f
}

// ours says whether f has frame's EtherType.
func ours(f []byte) bool { return len(f) >= 14 && f[12] == 0x88 && f[13] == 0xb5 }

func withHdr(f []byte) []byte { return append(make([]byte, tap.VnetHdrLen), f...) }

func TestCreateBridgedTap(t *testing.T) {
	ns := taptest.New(t)
	guest, _ := net.ParseMAC("aa:00:00:50:02:f0")
	var tp *tap.Tap
	var ps *taptest.PacketSocket
	err := ns.Do(func() error {
		if err := addBridge("bridge0"); err != nil {
			return err
		}
		var err error
		tp, err = tap.Create(tap.Config{Name: tap.DefaultName(5, 0), MAC: tap.HostMAC(guest), MTU: 1400, Bridge: "bridge0"})
		if err != nil {
			return err
		}
		l, err := netlink.LinkByName("vif5.0")
		if err != nil {
			return err
		}
		a := l.Attrs()
		br, _ := netlink.LinkByName("bridge0")
		if a.HardwareAddr.String() != "aa:00:00:51:02:f0" || a.MTU != 1400 || a.MasterIndex != br.Attrs().Index || a.Flags&net.FlagUp == 0 {
			t.Errorf("link: mac %v mtu %d master %d (bridge %d) flags %v", a.HardwareAddr, a.MTU, a.MasterIndex, br.Attrs().Index, a.Flags)
		}
		tt, ok := l.(*netlink.Tuntap)
		if !ok || tt.Mode != netlink.TUNTAP_MODE_TAP || tt.Flags&netlink.TUNTAP_VNET_HDR == 0 || tt.Flags&netlink.TUNTAP_NO_PI == 0 {
			t.Errorf("link is %#v, want a tap with vnet_hdr and no PI", l)
		}
		ps, err = taptest.OpenPacketSocket("vif5.0")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	// Carrier follows SetCarrier (the kernel's lower-up flag).
	for _, up := range []bool{false, true} {
		if err := tp.SetCarrier(up); err != nil {
			t.Fatal(err)
		}
		if err := ns.Do(func() error {
			l, err := netlink.LinkByName("vif5.0")
			if err == nil && (l.Attrs().RawFlags&unix.IFF_LOWER_UP != 0) != up {
				t.Errorf("carrier %v: flags %#x", up, l.Attrs().RawFlags)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	if tp.Name() != "vif5.0" {
		t.Errorf("Name = %q", tp.Name())
	}

	// Guest to host: a frame written to the tap is received by the
	// interface.
	bcast := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	out := frame(bcast, guest, 100, 1)
	if _, err := tp.Write(withHdr(out)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65536)
	n, err := ps.Recv(buf, 2000)
	if err != nil || !bytes.Equal(buf[:n], out) {
		t.Fatalf("host received %d bytes (%v), want the frame written", n, err)
	}

	// Host to guest: frames sent out of the interface are read from the
	// tap, several with one ReadBatch.
	var sent [][]byte
	for i := range 3 {
		f := frame(guest, tap.HostMAC(guest), 60+i, byte(10*i))
		sent = append(sent, f)
		if err := ps.Send(f); err != nil {
			t.Fatal(err)
		}
	}
	bufs := [][]byte{make([]byte, 2048), make([]byte, 2048), make([]byte, 2048), make([]byte, 2048)}
	sizes := make([]int, len(bufs))
	var got [][]byte
	for len(got) < 3 {
		n, err := tp.ReadBatch(bufs, sizes)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			h, err := tap.DecodeVnetHdr(bufs[i][:sizes[i]])
			if err != nil || h.GSOType != tap.VnetGSONone {
				t.Fatalf("header %+v, %v", h, err)
			}
			if !ours(bufs[i][tap.VnetHdrLen:sizes[i]]) {
				continue // the kernel's own IGMP, MLD, ...
			}
			got = append(got, append([]byte(nil), bufs[i][tap.VnetHdrLen:sizes[i]]...))
		}
	}
	for i := range sent {
		if !bytes.Equal(got[i], sent[i]) {
			t.Errorf("frame %d: read % x, want % x", i, got[i], sent[i])
		}
	}

	// Close unblocks a reader and removes the interface.
	errc := make(chan error, 1)
	go func() {
		_, err := tp.Read(buf)
		errc <- err
	}()
	if err := tp.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, tap.ErrClosed) {
		t.Errorf("Read after Close: %v, want ErrClosed", err)
	}
	if err := tp.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := ns.Do(func() error {
		_, err := netlink.LinkByName("vif5.0")
		return err
	}); err == nil {
		t.Error("vif5.0 still exists after Close")
	}
}

func TestCreateErrors(t *testing.T) {
	ns := taptest.New(t)
	err := ns.Do(func() error {
		if _, err := tap.Create(tap.Config{Name: "vif1.0", Bridge: "nosuchbr"}); !errors.Is(err, tap.ErrNoBridge) {
			t.Errorf("missing bridge: %v, want ErrNoBridge", err)
		}
		if _, err := netlink.LinkByName("vif1.0"); err == nil {
			t.Error("failed Create left vif1.0 behind")
		}
		if err := addBridge("br0"); err != nil {
			return err
		}
		if _, err := tap.Create(tap.Config{Name: "br0"}); !errors.Is(err, tap.ErrInUse) {
			t.Errorf("name of a bridge: %v, want ErrInUse", err)
		}
		if _, err := tap.Create(tap.Config{Name: "much-too-long-name"}); !errors.Is(err, tap.ErrBadName) {
			t.Errorf("long name: %v, want ErrBadName", err)
		}
		a, err := tap.Create(tap.Config{Name: "vif1.0"})
		if err != nil {
			return err
		}
		defer a.Close()
		if _, err := tap.Create(tap.Config{Name: "vif1.0"}); !errors.Is(err, tap.ErrInUse) {
			t.Errorf("tap held open: %v, want ErrInUse", err)
		}
		// A multicast MAC is refused by the kernel; nothing is left.
		if _, err := tap.Create(tap.Config{Name: "vif1.1", MAC: net.HardwareAddr{1, 0, 0, 0, 0, 1}}); err == nil {
			t.Error("multicast MAC accepted")
		}
		if _, err := netlink.LinkByName("vif1.1"); err == nil {
			t.Error("failed Create left vif1.1 behind")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestAttachPersistentTap(t *testing.T) {
	ns := taptest.New(t)
	err := ns.Do(func() error {
		pt := &netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: "ptap0"}, Mode: netlink.TUNTAP_MODE_TAP,
			Flags: netlink.TUNTAP_NO_PI | netlink.TUNTAP_VNET_HDR | netlink.TUNTAP_ONE_QUEUE}
		if err := netlink.LinkAdd(pt); err != nil {
			return err
		}
		for _, f := range pt.Fds {
			f.Close()
		}
		if err := addBridge("br1"); err != nil {
			return err
		}
		tp, err := tap.Create(tap.Config{Name: "ptap0", Bridge: "br1"})
		if err != nil {
			return err
		}
		l, _ := netlink.LinkByName("ptap0")
		if l.Attrs().MasterIndex == 0 || l.Attrs().Flags&net.FlagUp == 0 {
			t.Errorf("attached tap: master %d flags %v", l.Attrs().MasterIndex, l.Attrs().Flags)
		}
		if err := tp.Close(); err != nil {
			return err
		}
		// A persistent tap outlives us, out of the bridge and down.
		l, err = netlink.LinkByName("ptap0")
		if err != nil {
			t.Fatalf("persistent tap gone after Close: %v", err)
		}
		if l.Attrs().MasterIndex != 0 || l.Attrs().Flags&net.FlagUp != 0 {
			t.Errorf("after Close: master %d flags %v", l.Attrs().MasterIndex, l.Attrs().Flags)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
