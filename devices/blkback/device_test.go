package blkback_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/xenvmm/xenvmm/config"
	"github.com/xenvmm/xenvmm/devices/blkback"
	"github.com/xenvmm/xenvmm/devices/ring"
	"github.com/xenvmm/xenvmm/devices/testdev"
	"github.com/xenvmm/xenvmm/devices/xenbus"
	"github.com/xenvmm/xenvmm/xenabi/xenstore"
)

func TestDeviceNodes(t *testing.T) {
	img := sparseImage(t, 10<<20)
	no := "<absent>"
	tests := []struct {
		spec  string
		opts  blkback.Options
		devid int
		back  map[string]string
		front map[string]string
	}{
		{
			spec: "file:" + img + ",xvda,w", devid: 51712,
			back: map[string]string{
				"mode": "w", "type": "file", "device-type": "disk", "info": "0", "sectors": "20480",
				"sector-size": "512", "physical-sector-size": "512", "removable": "0", "dev": "xvda", "params": img,
				"feature-flush-cache": "1", "feature-barrier": "1", "feature-discard": "1",
				"discard-granularity": "4096", "discard-alignment": "0", "discard-secure": "0",
				"feature-max-indirect-segments": "256", "feature-persistent": "0", "discard-enable": "1",
				"multi-queue-max-queues": no, "max-ring-page-order": no,
			},
			front: map[string]string{"virtual-device": "51712", "device-type": "disk", "trusted": "1"},
		},
		{
			spec: img + ",raw,xvdb,r", devid: 51728,
			back: map[string]string{
				"mode": "r", "info": "4", "feature-flush-cache": "0", "feature-barrier": "0",
				"feature-discard": "0", "discard-granularity": no,
			},
		},
		{
			spec: img + ",raw,hdc:cdrom,r", devid: 5632,
			back:  map[string]string{"mode": "r", "info": "5", "device-type": "cdrom", "removable": "1", "feature-discard": "0"},
			front: map[string]string{"virtual-device": "5632", "device-type": "cdrom"},
		},
		{
			spec: ",,hdc:cdrom,r", devid: 5632,
			back: map[string]string{"sectors": "0", "info": "5", "mode": "r", "params": ""},
		},
		{
			spec: "vdev=xbd0,access=w,no-discard,untrusted,target=" + img, devid: 51712,
			back:  map[string]string{"feature-discard": "0", "discard-enable": "0", "feature-flush-cache": "1"},
			front: map[string]string{"trusted": "0"},
		},
		{
			spec: "phy:" + img + ",0x1,w", devid: 1,
			opts: blkback.Options{MaxQueues: 4, MaxIndirectSegments: -1, Persistent: true, NoLock: true},
			back: map[string]string{
				"multi-queue-max-queues": "4", "feature-max-indirect-segments": no, "feature-persistent": "1",
				"type": "file", // phy: of a regular file is served as a file
			},
		},
		{
			spec: img + ",raw,sda,w", devid: 2048,
			opts: blkback.Options{MaxIndirectSegments: 100000, MaxQueues: 1, NoLock: true},
			back: map[string]string{"feature-max-indirect-segments": "4096", "multi-queue-max-queues": no},
		},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			d := parseDisk(t, tt.spec)
			o := tt.opts
			if o.MaxQueues == 0 {
				o.MaxQueues = 1
			}
			dev, err := blkback.New(d, o)
			if err != nil {
				t.Fatal(err)
			}
			defer dev.Close()
			if dev.DevID() != tt.devid || dev.Type() != "vbd" {
				t.Errorf("devid %d type %s", dev.DevID(), dev.Type())
			}
			checkNodes(t, "backend", dev.BackendNodes(), tt.back)
			checkNodes(t, "frontend", dev.FrontendNodes(), tt.front)
		})
	}
}

func checkNodes(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	for k, v := range want {
		g, ok := got[k]
		if v == "<absent>" {
			if ok {
				t.Errorf("%s node %s = %q, want none", what, k, g)
			}
			continue
		}
		if !ok || g != v {
			t.Errorf("%s node %s = %q (present %v), want %q", what, k, g, ok, v)
		}
	}
}

func TestNewErrors(t *testing.T) {
	for _, spec := range []string{"/nonexistent/disk.img,raw,xvda,w", "format=qcow2,vdev=xvda,target=/x"} {
		if _, err := blkback.New(parseDisk(t, spec), blkback.Options{}); err == nil {
			t.Errorf("%s: accepted", spec)
		}
	}
	d := config.Disk{Spec: "x", Target: "/dev/null", VDev: "bogus", Format: "raw"}
	if _, err := blkback.New(d, blkback.Options{}); err == nil {
		t.Error("bad vdev accepted")
	}
}

// xbdFront is a guest's blkfront as Linux's xen-blkfront talks to the
// backend (talk_to_blkback, blkfront_connect): through xenstore as the
// guest, with rings in guest memory granted through the real grant
// table and event channels in the real event-channel table.
type xbdFront struct {
	t      *testing.T
	g      *testdev.Guest
	dir    string
	be     string
	watch  *testdev.XSWatch
	proto  blkback.Protocol
	rings  []*ring.Front
	gfns   []uint64
	refs   []uint32
	ports  []uint32
	data   []uint64 // data page frames
	pages  [][]byte
	nextID uint64
}

func probeXBD(t *testing.T, g *testdev.Guest, devid int) *xbdFront {
	t.Helper()
	dir := xenstore.DomainPath(uint32(g.DomID())) + "/device/vbd/" + strconv.Itoa(devid)
	be, err := g.XS().Read(dir + "/backend")
	if err != nil {
		t.Fatal(err)
	}
	f := &xbdFront{t: t, g: g, dir: dir, be: be}
	f.watch, err = g.XS().Watch(be+"/state", "xbd:"+dir)
	if err != nil {
		t.Fatal(err)
	}
	for range 16 {
		gfn, page, err := g.AllocPage()
		if err != nil {
			t.Fatal(err)
		}
		f.data, f.pages = append(f.data, gfn), append(f.pages, page)
	}
	return f
}

func (f *xbdFront) backendState() xenbus.State {
	v, err := f.g.XS().Read(f.be + "/state")
	if err != nil {
		return xenbus.StateUnknown
	}
	return xenbus.ParseState(v)
}

func (f *xbdFront) wait(states ...xenbus.State) xenbus.State {
	f.t.Helper()
	deadline := time.Now().Add(testdev.WaitTimeout)
	for {
		s := f.backendState()
		if slices.Contains(states, s) {
			return s
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("backend %s is %v, want %v", f.be, s, states)
		}
		f.watch.Next(time.Until(deadline))
	}
}

func (f *xbdFront) write(node, v string) {
	f.t.Helper()
	if err := f.g.XS().Write(f.dir+"/"+node, v); err != nil {
		f.t.Fatal(err)
	}
}

func (f *xbdFront) readBackend(node string) string {
	v, _ := f.g.XS().Read(f.be + "/" + node)
	return v
}

// connectOpts are the frontend's choices.
type connectOpts struct {
	queues     int
	protocol   string            // "" writes none
	extra      map[string]string // more frontend nodes
	wantFail   bool              // the backend must refuse (Closing)
	noRingPage bool              // write a ring-ref that is not granted
}

// connect sets up the rings and event channels, publishes them and
// switches to Initialised; the backend must reach Connected (or Closing
// when o.wantFail).
func (f *xbdFront) connect(o connectOpts) {
	f.t.Helper()
	f.wait(xenbus.StateInitWait)
	if o.queues == 0 {
		o.queues = 1
	}
	var err error
	if f.proto, err = blkback.ParseProtocol(o.protocol); err != nil && !o.wantFail {
		f.t.Fatal(err)
	}
	f.rings, f.refs, f.ports = nil, nil, nil
	for q := range o.queues {
		if len(f.gfns) <= q {
			gfn, _, err := f.g.AllocPage()
			if err != nil {
				f.t.Fatal(err)
			}
			f.gfns = append(f.gfns, gfn)
		}
		page, _ := f.g.Memory().Page(f.gfns[q])
		r, err := ring.NewFront(page, f.proto.SlotSize())
		if err != nil {
			f.t.Fatal(err)
		}
		ref, err := f.g.Grant(f.gfns[q], false)
		if err != nil {
			f.t.Fatal(err)
		}
		port, err := f.g.AllocUnbound()
		if err != nil {
			f.t.Fatal(err)
		}
		f.rings, f.refs, f.ports = append(f.rings, r), append(f.refs, ref), append(f.ports, port)
		prefix := ""
		if o.queues > 1 {
			prefix = "queue-" + strconv.Itoa(q) + "/"
		}
		refv := ref
		if o.noRingPage {
			refv = 2000
		}
		f.write(prefix+"ring-ref", strconv.Itoa(int(refv)))
		f.write(prefix+"event-channel", strconv.Itoa(int(port)))
	}
	if o.queues > 1 {
		f.write("multi-queue-num-queues", strconv.Itoa(o.queues))
	}
	if o.protocol != "" {
		f.write("protocol", o.protocol)
	}
	for k, v := range o.extra {
		f.write(k, v)
	}
	f.write("state", xenbus.StateInitialised.Value())
	if o.wantFail {
		f.wait(xenbus.StateClosing)
		return
	}
	f.wait(xenbus.StateConnected)
	f.write("state", xenbus.StateConnected.Value())
}

// do sends one request on ring q and waits for its response.
func (f *xbdFront) do(q int, r blkback.Request) blkback.Response {
	f.t.Helper()
	r.ID = f.nextID
	f.nextID++
	if err := r.Encode(f.proto, f.rings[q].RequestSlot()); err != nil {
		f.t.Fatal(err)
	}
	if f.rings[q].PushRequests() {
		if err := f.g.Send(f.ports[q]); err != nil {
			f.t.Fatal(err)
		}
	}
	timeout := time.After(testdev.WaitTimeout)
	for {
		if slot, ok := f.rings[q].NextResponse(); ok {
			rsp, err := blkback.ParseResponse(f.proto, slot)
			if err != nil {
				f.t.Fatal(err)
			}
			if rsp.ID != r.ID || rsp.Operation != r.DataOp() {
				f.t.Fatalf("response %+v to request %d op %d", rsp, r.ID, r.DataOp())
			}
			return rsp
		}
		if f.rings[q].FinalCheckForResponses() {
			continue
		}
		select {
		case <-f.g.PortEvents(f.ports[q]):
		case <-timeout:
			f.t.Fatalf("no response on queue %d", q)
		}
	}
}

// transfer reads or writes n whole pages (n <= 16) at sector on ring q,
// granting the data pages for the request only.
func (f *xbdFront) transfer(q int, write bool, sector uint64, data []byte) ([]byte, int16) {
	f.t.Helper()
	n := len(data) / 4096
	r := blkback.Request{Operation: blkback.OpRead, Sector: sector, NrSegments: uint16(n)}
	if write {
		r.Operation = blkback.OpWrite
	}
	var refs []uint32
	for i := range n {
		if write {
			copy(f.pages[i], data[i*4096:])
		}
		ref, err := f.g.Grant(f.data[i], write)
		if err != nil {
			f.t.Fatal(err)
		}
		refs = append(refs, ref)
		r.Seg[i] = seg(ref, 0, 7)
	}
	rsp := f.do(q, r)
	for _, ref := range refs {
		if err := f.g.EndGrant(ref); err != nil {
			f.t.Fatalf("grant still in use after the response: %v", err)
		}
	}
	var out []byte
	if !write {
		for i := range n {
			out = append(out, f.pages[i]...)
		}
	}
	return out, rsp.Status
}

// close shuts the device down as blkfront does and ends the ring grants
// (which fails if the backend still maps a ring).
func (f *xbdFront) close() {
	f.t.Helper()
	f.write("state", xenbus.StateClosing.Value())
	f.wait(xenbus.StateClosing, xenbus.StateClosed)
	f.write("state", xenbus.StateClosed.Value())
	f.wait(xenbus.StateClosed)
	for i := range f.refs {
		if err := f.g.EndGrant(f.refs[i]); err != nil {
			f.t.Errorf("ring %d: %v", i, err)
		}
		f.g.ClosePort(f.ports[i])
	}
	f.refs, f.ports = nil, nil
	f.write("state", xenbus.StateInitialising.Value())
}

func newBusDisk(t *testing.T, spec string, o blkback.Options) (*testdev.Guest, *xenbus.Bus, *blkback.Device, string) {
	t.Helper()
	g, err := testdev.NewGuest(testdev.GuestConfig{DomID: 5, Pages: 2048})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	img := sparseImage(t, 8<<20)
	if spec == "" {
		spec = "file:" + img + ",xvda,w"
	} else {
		spec = fmt.Sprintf(spec, img)
	}
	dev, err := blkback.New(parseDisk(t, spec), o)
	if err != nil {
		t.Fatal(err)
	}
	bus := xenbus.NewBus(g)
	t.Cleanup(func() { bus.Close() })
	if err := bus.Add(dev, dev.DevID(), dev.FrontendNodes()); err != nil {
		t.Fatal(err)
	}
	return g, bus, dev, img
}

// TestDeviceEndToEnd: a blkfront in a fake guest finds the disk through
// xenstore, connects (native and x86_32 layouts, one and two queues),
// writes and reads through the real grant and event-channel tables,
// flushes, and closes; the data is in the image; the grants are free
// after close; removal closes the image.
func TestDeviceEndToEnd(t *testing.T) {
	for _, tc := range []struct {
		name     string
		protocol string
		queues   int
	}{
		{"native", "", 1},
		{"x86_64-abi", "x86_64-abi", 1},
		{"x86_32-abi", "x86_32-abi", 1},
		{"2 queues", "", 2},
		{"4 queues x86_32", "x86_32-abi", 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, bus, dev, img := newBusDisk(t, "", blkback.Options{MaxQueues: 4})
			f := probeXBD(t, g, dev.DevID())
			if got := f.readBackend("sectors"); got != "16384" {
				t.Errorf("sectors %q as the guest reads it", got)
			}
			f.connect(connectOpts{queues: tc.queues, protocol: tc.protocol})
			if n := len(dev.Queues()); n != tc.queues {
				t.Fatalf("%d queues", n)
			}
			rng := rand.New(rand.NewPCG(30, uint64(tc.queues)))
			want := map[uint64][]byte{}
			for i := range 24 {
				q := i % tc.queues
				n := 1 + rng.IntN(11)
				data := randBytes(rng, n*4096)
				sector := uint64(i) * 128
				if _, st := f.transfer(q, true, sector, data); st != blkback.RspOkay {
					t.Fatalf("write %d: status %d", i, st)
				}
				want[sector] = data
				got, st := f.transfer((q+1)%tc.queues, false, sector, make([]byte, len(data)))
				if st != blkback.RspOkay || !bytes.Equal(got, data) {
					t.Fatalf("read %d: status %d, equal %v", i, st, bytes.Equal(got, data))
				}
			}
			if rsp := f.do(0, blkback.Request{Operation: blkback.OpFlushDiskcache}); rsp.Status != blkback.RspOkay {
				t.Fatalf("flush %d", rsp.Status)
			}
			if rsp := f.do(tc.queues-1, blkback.Request{Operation: 99}); rsp.Status != blkback.RspEOPNOTSUPP {
				t.Fatalf("unknown op: %d", rsp.Status)
			}
			s := dev.Stats()
			if s.Writes != 24 || s.Reads != 24 || s.Flushes != 1 || s.NotSupported != 1 {
				t.Errorf("stats %+v", s)
			}
			f.close()
			file, err := os.ReadFile(img)
			if err != nil {
				t.Fatal(err)
			}
			for sector, data := range want {
				if !bytes.Equal(file[sector*512:sector*512+uint64(len(data))], data) {
					t.Fatalf("image differs at sector %d", sector)
				}
			}
			if m := g.GrantTable().GuestMaps(); m != 0 {
				t.Errorf("%d guest maps left", m)
			}
			if err := bus.Remove("vbd", dev.DevID()); err != nil {
				t.Fatal(err)
			}
			// The image is closed, so its lock is gone.
			s2, err := blkback.OpenStore(parseDisk(t, img+",raw,xvda,w"), blkback.StoreOptions{})
			if err != nil {
				t.Fatalf("image still held after removal: %v", err)
			}
			s2.Close()
		})
	}
}

// TestDeviceReconnect: the frontend closes and connects again (module
// reload, kexec); the data written before is still there and the new
// connection works.
func TestDeviceReconnect(t *testing.T) {
	g, _, dev, _ := newBusDisk(t, "", blkback.Options{MaxQueues: 2})
	f := probeXBD(t, g, dev.DevID())
	rng := rand.New(rand.NewPCG(31, 31))
	data := randBytes(rng, 8*4096)
	f.connect(connectOpts{})
	if _, st := f.transfer(0, true, 64, data); st != 0 {
		t.Fatal(st)
	}
	f.close()
	f.connect(connectOpts{queues: 2, protocol: "x86_32-abi"})
	got, st := f.transfer(1, false, 64, make([]byte, len(data)))
	if st != 0 || !bytes.Equal(got, data) {
		t.Fatalf("after reconnect: status %d", st)
	}
	f.close()
	if s := dev.Stats(); s.Writes != 1 || s.Reads != 1 {
		t.Errorf("stats over two connections %+v", s)
	}
}

// TestDeviceConnectErrors: frontend parameters the backend cannot use
// make it give up the connection (Closing), and it can be connected
// properly afterwards.
func TestDeviceConnectErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    connectOpts
	}{
		{"unknown protocol", connectOpts{protocol: "arm-abi"}},
		{"multi-page ring", connectOpts{extra: map[string]string{"ring-page-order": "2"}}},
		{"too many queues", connectOpts{queues: 3}},
		{"bad queue count", connectOpts{extra: map[string]string{"multi-queue-num-queues": "zero"}}},
		{"ring not granted", connectOpts{noRingPage: true}},
		{"bad event channel", connectOpts{extra: map[string]string{"event-channel": "4000"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, _, dev, _ := newBusDisk(t, "", blkback.Options{MaxQueues: 2})
			f := probeXBD(t, g, dev.DevID())
			tc.o.wantFail = true
			f.connect(tc.o)
			if len(dev.Queues()) != 0 {
				t.Error("queues running after a failed connect")
			}
			f.close()
			for _, k := range []string{"protocol", "ring-page-order", "multi-queue-num-queues"} {
				g.XS().Rm(f.dir + "/" + k)
			}
			f.connect(connectOpts{})
			data := randBytes(rand.New(rand.NewPCG(32, 32)), 4096)
			if _, st := f.transfer(0, true, 8, data); st != 0 {
				t.Fatalf("write after recovery: %d", st)
			}
			f.close()
		})
	}
}

// TestDeviceRingPageOrderZero: a frontend that writes ring-page-order
// (Linux's blkfront does when the backend offers max-ring-page-order)
// names even a single page ring-ref0; the backend reads that name then,
// and not ring-ref.
func TestDeviceRingPageOrderZero(t *testing.T) {
	g, _, dev, _ := newBusDisk(t, "", blkback.Options{MaxQueues: 1})
	f := probeXBD(t, g, dev.DevID())
	f.connect(connectOpts{extra: map[string]string{"ring-page-order": "0"}, wantFail: true})
	f.close()
	f.wait(xenbus.StateInitWait)
	f.connectRef0(connectOpts{extra: map[string]string{"ring-page-order": "0"}})
	data := randBytes(rand.New(rand.NewPCG(33, 33)), 4096)
	if _, st := f.transfer(0, true, 8, data); st != 0 {
		t.Fatalf("write: %d", st)
	}
	f.close()
}

// connectRef0 is connect with the ring published as ring-ref0.
func (f *xbdFront) connectRef0(o connectOpts) {
	f.t.Helper()
	gfn := f.gfns[0]
	page, _ := f.g.Memory().Page(gfn)
	r, err := ring.NewFront(page, blkback.ProtocolX86_64.SlotSize())
	if err != nil {
		f.t.Fatal(err)
	}
	ref, err := f.g.Grant(gfn, false)
	if err != nil {
		f.t.Fatal(err)
	}
	port, err := f.g.AllocUnbound()
	if err != nil {
		f.t.Fatal(err)
	}
	f.proto = blkback.ProtocolX86_64
	f.rings, f.refs, f.ports = []*ring.Front{r}, []uint32{ref}, []uint32{port}
	f.g.XS().Rm(f.dir + "/ring-ref")
	f.write("ring-ref0", strconv.Itoa(int(ref)))
	f.write("event-channel", strconv.Itoa(int(port)))
	for k, v := range o.extra {
		f.write(k, v)
	}
	f.write("state", xenbus.StateInitialised.Value())
	f.wait(xenbus.StateConnected)
	f.write("state", xenbus.StateConnected.Value())
}

// TestDevicePersistentNegotiation: feature-persistent is used only when
// both ends offer it.
func TestDevicePersistentNegotiation(t *testing.T) {
	for _, tc := range []struct {
		backend, frontend bool
	}{{true, true}, {true, false}, {false, true}} {
		t.Run(fmt.Sprintf("backend %v frontend %v", tc.backend, tc.frontend), func(t *testing.T) {
			g, _, dev, _ := newBusDisk(t, "", blkback.Options{MaxQueues: 1, Persistent: tc.backend})
			f := probeXBD(t, g, dev.DevID())
			extra := map[string]string{}
			if tc.frontend {
				extra["feature-persistent"] = "1"
			}
			f.connect(connectOpts{extra: extra})
			// A persistent frontend keeps its grants: write without
			// ending them.
			ref, err := g.Grant(f.data[0], false)
			if err != nil {
				t.Fatal(err)
			}
			copy(f.pages[0], bytes.Repeat([]byte{7}, 4096))
			r := blkback.Request{Operation: blkback.OpWrite, Sector: 8, NrSegments: 1}
			r.Seg[0] = seg(ref, 0, 7)
			if rsp := f.do(0, r); rsp.Status != 0 {
				t.Fatal(rsp.Status)
			}
			kept := dev.Stats().PersistentGrants
			if want := tc.backend && tc.frontend; (kept > 0) != want {
				t.Errorf("%d persistent grants, want some: %v", kept, want)
			}
			f.close()
			if err := g.EndGrant(ref); err != nil {
				t.Errorf("data grant still mapped after close: %v", err)
			}
		})
	}
}
