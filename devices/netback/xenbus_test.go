package netback

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/xenvmm/xenvmm/config"
	"github.com/xenvmm/xenvmm/devices/ring"
	"github.com/xenvmm/xenvmm/devices/tap"
	"github.com/xenvmm/xenvmm/devices/testdev"
	"github.com/xenvmm/xenvmm/devices/xenbus"
	"github.com/xenvmm/xenvmm/xenabi/xenstore"
)

// xennet is a frontend in a testdev.Guest (real xenstore daemon, grant
// table and event-channel table) that probes and connects as Linux's
// netfront does: read mac from its own directory and the backend's
// features, grant two ring pages, allocate one event channel, write the
// nodes, switch straight to Connected.
type xennet struct {
	t       *testing.T
	g       *testdev.Guest
	dir     string
	backend string
	mac     string
	port    uint32
	tx, rx  *ring.Front
	txRef   uint32
	rxRef   uint32
	rxPages map[uint16][]byte
	grants  []uint32
}

func (x *xennet) read(dir, node string) string {
	v, err := x.g.XS().Read(dir + "/" + node)
	if err != nil {
		x.t.Fatalf("guest read %s/%s: %v", dir, node, err)
	}
	return v
}

func (x *xennet) waitBackend(s xenbus.State) {
	x.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		v, _ := x.g.XS().Read(x.backend + "/state")
		if xenbus.ParseState(v) == s {
			return
		}
		if time.Now().After(deadline) {
			x.t.Fatalf("backend state %s, want %v", v, s)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (x *xennet) page(readonly bool) (uint32, []byte) {
	gfn, p, err := x.g.AllocPage()
	if err != nil {
		x.t.Fatal(err)
	}
	ref, err := x.g.Grant(gfn, readonly)
	if err != nil {
		x.t.Fatal(err)
	}
	x.grants = append(x.grants, ref)
	return ref, p
}

func probeXennet(t *testing.T, g *testdev.Guest, devid int, features map[string]string) *xennet {
	x := &xennet{t: t, g: g, rxPages: map[uint16][]byte{}}
	x.dir = xenstore.DomainPath(uint32(g.DomID())) + "/device/vif/" + strconv.Itoa(devid)
	x.backend = x.read(x.dir, "backend")
	x.mac = x.read(x.dir, "mac")
	if x.read(x.backend, "feature-rx-copy") != "1" {
		t.Fatal("backend lacks feature-rx-copy (NetBSD's xennet would refuse it)")
	}
	x.waitBackend(xenbus.StateInitWait)
	var tp, rp []byte
	x.txRef, tp = x.page(false)
	x.rxRef, rp = x.page(false)
	var err error
	if x.tx, err = ring.NewFront(tp, TxSlotSize); err != nil {
		t.Fatal(err)
	}
	if x.rx, err = ring.NewFront(rp, RxSlotSize); err != nil {
		t.Fatal(err)
	}
	if x.port, err = g.AllocUnbound(); err != nil {
		t.Fatal(err)
	}
	nodes := map[string]string{
		"tx-ring-ref":     strconv.Itoa(int(x.txRef)),
		"rx-ring-ref":     strconv.Itoa(int(x.rxRef)),
		"event-channel":   strconv.Itoa(int(x.port)),
		"request-rx-copy": "1",
	}
	for k, v := range features {
		nodes[k] = v
	}
	for k, v := range nodes {
		if err := g.XS().Write(x.dir+"/"+k, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := g.XS().Write(x.dir+"/state", xenbus.StateConnected.Value()); err != nil {
		t.Fatal(err)
	}
	x.waitBackend(xenbus.StateConnected)
	return x
}

func (x *xennet) wait() {
	select {
	case <-x.g.PortEvents(x.port):
	case <-time.After(20 * time.Millisecond):
	}
}

func (x *xennet) send(id uint16, frame []byte) {
	ref, p := x.page(true)
	copy(p, frame)
	TxRequest{Gref: ref, ID: id, Size: uint16(len(frame))}.Encode(x.tx.RequestSlot())
	if x.tx.PushRequests() {
		x.g.Send(x.port)
	}
}

func (x *xennet) txResponse() TxResponse {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if s, ok := x.tx.NextResponse(); ok {
			return DecodeTxResponse(s)
		}
		if !x.tx.FinalCheckForResponses() {
			x.wait()
		}
	}
	x.t.Fatal("no TX response")
	return TxResponse{}
}

func (x *xennet) post(n int) {
	for i := range n {
		ref, p := x.page(false)
		id := uint16(len(x.rxPages) + i)
		x.rxPages[id] = p
		RxRequest{ID: id, Gref: ref}.Encode(x.rx.RequestSlot())
	}
	if x.rx.PushRequests() {
		x.g.Send(x.port)
	}
}

func (x *xennet) receive() []byte {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if s, ok := x.rx.NextResponse(); ok {
			r := DecodeRxResponse(s)
			if r.Status < 0 || r.Flags&RxfMoreData != 0 {
				x.t.Fatalf("RX response %+v", r)
			}
			return x.rxPages[r.ID][r.Offset : int(r.Offset)+int(r.Status)]
		}
		if !x.rx.FinalCheckForResponses() {
			x.wait()
		}
	}
	x.t.Fatal("no RX packet")
	return nil
}

// close shuts the frontend down as netfront does on unplug and ends its
// grants: that only works if netback unmapped the rings.
func (x *xennet) close() error {
	xs := x.g.XS()
	if err := xs.Write(x.dir+"/state", xenbus.StateClosing.Value()); err != nil {
		return err
	}
	x.waitBackend(xenbus.StateClosing)
	if err := xs.Write(x.dir+"/state", xenbus.StateClosed.Value()); err != nil {
		return err
	}
	x.waitBackend(xenbus.StateClosed)
	var errs []error
	for _, ref := range x.grants {
		if err := x.g.EndGrant(ref); err != nil {
			errs = append(errs, fmt.Errorf("ref %d: %w", ref, err))
		}
	}
	errs = append(errs, x.g.ClosePort(x.port))
	return errors.Join(errs...)
}

// TestXenbus runs two vifs of one guest through the real xenbus Bus,
// xenstore, grant table and event channels: negotiation, a frame each
// way on each, a guest that breaks one vif's ring, and an orderly
// shutdown after which every grant can be ended.
func TestXenbus(t *testing.T) {
	g, err := testdev.NewGuest(testdev.GuestConfig{DomID: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	bus := xenbus.NewBus(g)
	defer bus.Close()
	var vifs []*Vif
	var links []*fakeLink
	for i, spec := range []string{"mac=aa:00:00:50:02:f0, bridge=bridge0", "bridge=bridge0"} {
		vc, err := config.ParseVif(spec)
		if err != nil {
			t.Fatal(err)
		}
		link := newFakeLink()
		v, err := New(vc, Options{DomID: g.DomID(), Index: i, Link: link})
		if err != nil {
			t.Fatal(err)
		}
		if err := bus.AddWith(v, xenbus.AddOptions{DevID: v.DevID(), FrontendNodes: v.FrontendNodes(), ReadOnlyFrontendNodes: v.ReadOnlyFrontendNodes()}); err != nil {
			t.Fatal(err)
		}
		vifs, links = append(vifs, v), append(links, link)
	}
	fronts := []*xennet{
		probeXennet(t, g, 0, linuxFeatures),
		probeXennet(t, g, 1, netbsd51Features),
	}
	if fronts[0].mac != "aa:00:00:50:02:f0" || fronts[1].mac != vifs[1].MAC().String() {
		t.Errorf("frontends read MACs %s, %s", fronts[0].mac, fronts[1].mac)
	}
	if mtu := fronts[0].read(fronts[0].dir, "mtu"); mtu != "1500" {
		t.Errorf("frontend mtu %q", mtu)
	}
	for i, x := range fronts {
		x.post(4)
		f := ether(0x88b5, fill(100, byte(i)))
		x.send(1, f)
		if r := x.txResponse(); r != (TxResponse{ID: 1}) {
			t.Errorf("vif %d: TX response %+v", i, r)
		}
		if out := links[i].written(t, 1); !bytes.Equal(out[0][tap.VnetHdrLen:], f) {
			t.Errorf("vif %d: frame on the link differs", i)
		}
		in := ether(0x88b5, fill(200, byte(10+i)))
		links[i].in <- vnet(tap.VnetHdr{}, in)
		if got := x.receive(); !bytes.Equal(got, in) {
			t.Errorf("vif %d: received frame differs", i)
		}
	}

	// A TX request naming a grant that does not exist: an error
	// response, and the vif goes on.
	x := fronts[0]
	TxRequest{Gref: 7777, ID: 2, Size: 60}.Encode(x.tx.RequestSlot())
	x.tx.PushRequests()
	g.Send(x.port)
	if r := x.txResponse(); r != (TxResponse{ID: 2, Status: RspError}) {
		t.Errorf("bad gref answered %+v", r)
	}
	// vif 1's guest driver goes haywire: a ring full of zeroed requests
	// (grant 0, size 0), each answered with an error.
	for fronts[1].tx.RequestSlot() != nil {
	}
	fronts[1].tx.PushRequests()
	g.Send(fronts[1].port)
	x.send(3, ether(0x88b5, fill(60, 3)))
	if r := x.txResponse(); r != (TxResponse{ID: 3}) {
		t.Errorf("vif 0 after vif 1 broke: %+v", r)
	}
	if st := vifs[0].Stats(); st.TxPackets != 2 || st.TxErrors != 1 || st.RxPackets != 1 {
		t.Errorf("vif 0 stats %+v", st)
	}
	deadline := time.Now().Add(5 * time.Second)
	for vifs[1].Stats().TxErrors < 256 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if st := vifs[1].Stats(); st.TxErrors != 256 || st.TxPackets != 1 {
		t.Errorf("vif 1 stats %+v", st)
	}

	for i, x := range fronts {
		if err := x.close(); err != nil {
			t.Errorf("vif %d: frontend close: %v", i, err)
		}
	}
	if err := bus.Remove("vif", 1); err != nil {
		t.Errorf("Remove: %v", err)
	}
	select {
	case <-links[1].closed:
	default:
		t.Error("removing the device did not close its vif")
	}
	if err := bus.Close(); err != nil {
		t.Errorf("bus Close: %v", err)
	}
	select {
	case <-links[0].closed:
	default:
		t.Error("closing the bus did not close vif 0")
	}
}
