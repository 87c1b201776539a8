package xenbus_test

import (
	"context"
	"errors"
	"io/fs"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/xenvmm/xenvmm/devices/testdev"
	"github.com/xenvmm/xenvmm/devices/xenbus"
	"github.com/xenvmm/xenvmm/xenabi/xenstore"
)

const domid = 5

func newGuest(t *testing.T) *testdev.Guest {
	t.Helper()
	g, err := testdev.NewGuest(testdev.GuestConfig{DomID: domid})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	return g
}

func newBus(t *testing.T, g *testdev.Guest, opts ...xenbus.Option) *xenbus.Bus {
	t.Helper()
	b := xenbus.NewBus(g, opts...)
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("bus close: %v", err)
		}
	})
	return b
}

// recDev is a Device that records its calls and can be told to fail.
type recDev struct {
	typ   string
	nodes map[string]string

	mu       sync.Mutex
	calls    []string
	failNext error
	fe       *xenbus.Frontend
	ctx      context.Context
	ch       chan string
}

func newRecDev(typ string) *recDev {
	return &recDev{typ: typ, ch: make(chan string, 100), nodes: map[string]string{"sectors": "2048", "feature-flush-cache": "1", "sub/dir": "x"}}
}

func (d *recDev) Type() string                    { return d.typ }
func (d *recDev) BackendNodes() map[string]string { return d.nodes }

func (d *recDev) Connect(ctx context.Context, fe *xenbus.Frontend) error {
	d.mu.Lock()
	err := d.failNext
	d.failNext = nil
	d.fe, d.ctx = fe, ctx
	d.calls = append(d.calls, "connect")
	d.mu.Unlock()
	d.ch <- "connect"
	if err != nil {
		return err
	}
	// A device reads what the frontend published and may add backend nodes.
	if v, err := fe.ReadDefault("ring-ref", "none"); err == nil {
		fe.WriteBackend("seen-ring-ref", v)
	}
	return nil
}

func (d *recDev) Disconnect() error {
	d.mu.Lock()
	d.calls = append(d.calls, "disconnect")
	d.mu.Unlock()
	d.ch <- "disconnect"
	return nil
}

func (d *recDev) Close() error {
	d.mu.Lock()
	d.calls = append(d.calls, "close")
	d.mu.Unlock()
	d.ch <- "close"
	return nil
}

func (d *recDev) expect(t *testing.T, calls ...string) {
	t.Helper()
	for _, want := range calls {
		select {
		case got := <-d.ch:
			if got != want {
				t.Fatalf("device call %q, want %q", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no device call, want %q", want)
		}
	}
}

func (d *recDev) expectNone(t *testing.T) {
	t.Helper()
	select {
	case got := <-d.ch:
		t.Fatalf("unexpected device call %q", got)
	case <-time.After(50 * time.Millisecond):
	}
}

// waitBackend waits until the backend state node reads want.
func waitBackend(t *testing.T, g *testdev.Guest, typ string, devid int, want xenbus.State) {
	t.Helper()
	p := xenbus.BackendPath(typ, domid, devid) + "/state"
	deadline := time.Now().Add(5 * time.Second)
	for {
		v, err := g.Store().ReadString(p)
		if err == nil && xenbus.ParseState(v) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("backend %s = %q (%v), want %v", p, v, err, want)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestAddLayout(t *testing.T) {
	g := newGuest(t)
	b := newBus(t, g)
	xs := g.XS()
	home := xenstore.DomainPath(domid)

	// The guest watches ~/device as Linux's xenbus_probe_frontend does; a
	// device added while it runs shows up there (hotplug).
	w, err := xs.Watch(home+"/device", "probe")
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := w.Next(time.Second); !ok || p != home+"/device" {
		t.Fatalf("initial watch event %q %v", p, ok)
	}

	dev := newRecDev("vbd")
	err = b.AddWith(dev, xenbus.AddOptions{
		DevID:                 51712,
		FrontendNodes:         map[string]string{"virtual-device": "51712", "device-type": "disk"},
		ReadOnlyFrontendNodes: map[string]string{"mtu": "1500"},
	})
	if err != nil {
		t.Fatal(err)
	}
	waitBackend(t, g, "vbd", 51712, xenbus.StateInitWait)
	fe := home + "/device/vbd/51712"
	be := "/local/domain/0/backend/vbd/5/51712"
	lx := "/libxl/5/device/vbd/51712"
	if p, ok := w.Next(time.Second); !ok || !strings.HasPrefix(p, home+"/device/vbd") {
		t.Fatalf("hotplug watch event %q %v", p, ok)
	}

	st := g.Store()
	wantNodes := map[string]string{
		fe + "/backend":        be,
		fe + "/backend-id":     "0",
		fe + "/state":          "1",
		fe + "/virtual-device": "51712",
		fe + "/device-type":    "disk",
		fe + "/mtu":            "1500",
		be + "/frontend":       fe,
		be + "/frontend-id":    "5",
		be + "/online":         "1",
		be + "/state":          "2",
		be + "/sectors":        "2048",
		be + "/sub/dir":        "x",
		lx + "/frontend":       fe,
		lx + "/backend":        be,
	}
	for p, want := range wantNodes {
		if got, err := st.ReadString(p); err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", p, got, err, want)
		}
	}
	n0r5 := "n0,r5"
	n5r0 := "n5,r0"
	wantPerms := map[string]string{
		fe:                     n5r0,
		fe + "/backend":        n5r0,
		fe + "/backend-id":     n5r0,
		fe + "/state":          n5r0,
		fe + "/virtual-device": n5r0,
		fe + "/mtu":            n0r5,
		be:                     n0r5,
		be + "/state":          n0r5,
		be + "/sectors":        n0r5,
		be + "/sub":            n0r5,
		lx:                     "n0",
	}
	for p, want := range wantPerms {
		ps, err := st.GetPerms(p)
		if err != nil || xenstore.FormatPerms(ps) != want {
			t.Errorf("perms of %s = %v, %v; want %s", p, xenstore.FormatPerms(ps), err, want)
		}
	}

	// As the guest sees it.
	tests := []struct {
		name    string
		op      func() error
		wantErr error
	}{
		{"read backend state", func() error { _, err := xs.Read(be + "/state"); return err }, nil},
		{"read backend node", func() error { _, err := xs.Read(be + "/sectors"); return err }, nil},
		{"list backend dir", func() error { _, err := xs.Directory(be); return err }, nil},
		{"write backend state", func() error { return xs.Write(be+"/state", "4") }, syscall.EACCES},
		{"write backend node", func() error { return xs.Write(be+"/sectors", "1") }, syscall.EACCES},
		{"create backend node", func() error { return xs.Write(be+"/new", "1") }, syscall.EACCES},
		{"remove backend dir", func() error { return xs.Rm(be) }, syscall.EACCES},
		{"read frontend", func() error { _, err := xs.Read(fe + "/backend"); return err }, nil},
		{"write frontend node", func() error { return xs.Write(fe+"/ring-ref", "8") }, nil},
		{"write frontend state", func() error { return xs.Write(fe+"/state", "1") }, nil},
		{"write read-only frontend node", func() error { return xs.Write(fe+"/mtu", "9000") }, syscall.EACCES},
		{"read libxl path", func() error { _, err := xs.Read(lx + "/backend"); return err }, syscall.EACCES},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.op()
			if tc.wantErr == nil && err != nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("err = %v, want %v", err, tc.wantErr)
			}
		})
	}
	if devs := b.Devices(); !slices.Equal(devs, []string{"vbd/51712"}) {
		t.Errorf("Devices = %v", devs)
	}
	if s, ok := b.BackendState("vbd", 51712); !ok || s != xenbus.StateInitWait {
		t.Errorf("BackendState = %v %v", s, ok)
	}
}

func TestAddErrors(t *testing.T) {
	g := newGuest(t)
	b := newBus(t, g)
	if err := b.Add(newRecDev("vbd"), 1, nil); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		typ   string
		devid int
		want  error
	}{
		{"duplicate", "vbd", 1, xenbus.ErrExists},
		{"slash in type", "v/bd", 2, xenbus.ErrBadName},
		{"empty type", "", 2, xenbus.ErrBadName},
		{"negative id", "vbd", -1, xenbus.ErrBadName},
		{"primary console", "console", 0, xenbus.ErrPrimaryConsole},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := b.Add(newRecDev(tc.typ), tc.devid, nil); !errors.Is(err, tc.want) {
				t.Errorf("Add = %v, want %v", err, tc.want)
			}
		})
	}
	// A secondary console is an ordinary device.
	if err := b.Add(newRecDev("console"), 1, nil); err != nil {
		t.Errorf("console 1: %v", err)
	}
	if err := b.Remove("vbd", 2); !errors.Is(err, xenbus.ErrNotFound) {
		t.Errorf("Remove of a missing device = %v", err)
	}
	// A failed Add leaves nothing behind; the original device is intact.
	if v, err := g.Store().ReadString(xenbus.BackendPath("vbd", domid, 1) + "/online"); err != nil || v != "1" {
		t.Errorf("device 1 damaged: %q %v", v, err)
	}
	if _, err := g.Store().ReadString(xenbus.FrontendPath("v/bd", domid, 2)); err == nil {
		t.Errorf("bad device written")
	}
}

// TestStateMachine drives the frontend state node as the guest and
// checks the backend's transitions and the device calls.
func TestStateMachine(t *testing.T) {
	g := newGuest(t)
	b := newBus(t, g)
	dev := newRecDev("vif")
	if err := b.Add(dev, 0, map[string]string{"handle": "0", "mac": "00:16:3e:00:00:01"}); err != nil {
		t.Fatal(err)
	}
	fe := xenbus.FrontendPath("vif", domid, 0)
	set := func(s string) {
		t.Helper()
		if err := g.XS().Write(fe+"/state", s); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		name    string
		fe      string // frontend state written
		calls   []string
		backend xenbus.State
	}{
		{"start", "", nil, xenbus.StateInitWait},
		{"initialised connects", "3", []string{"connect"}, xenbus.StateConnected},
		{"connected is idle", "4", nil, xenbus.StateConnected},
		{"closing disconnects", "5", []string{"disconnect"}, xenbus.StateClosing},
		{"closed", "6", nil, xenbus.StateClosed},
		{"reinitialising waits", "1", nil, xenbus.StateInitWait},
		{"connected directly connects", "4", []string{"connect"}, xenbus.StateConnected},
		{"reconfiguring ignored", "7", nil, xenbus.StateConnected},
		{"closed straight away", "6", []string{"disconnect"}, xenbus.StateClosed},
		{"initialised after closed reconnects", "3", []string{"connect"}, xenbus.StateConnected},
		{"restart without close", "1", []string{"disconnect"}, xenbus.StateInitWait},
		{"initialised again", "3", []string{"connect"}, xenbus.StateConnected},
		{"garbage state", "garbage", []string{"disconnect"}, xenbus.StateClosed},
		{"back to life", "1", nil, xenbus.StateInitWait},
		{"connect once more", "4", []string{"connect"}, xenbus.StateConnected},
	}
	for _, s := range steps {
		if s.fe != "" {
			set(s.fe)
		}
		waitBackend(t, g, "vif", 0, s.backend)
		dev.expect(t, s.calls...)
		dev.expectNone(t)
		if t.Failed() {
			t.Fatalf("step %q failed", s.name)
		}
	}
	if v, err := g.Store().ReadString(xenbus.BackendPath("vif", domid, 0) + "/seen-ring-ref"); err != nil || v != "none" {
		t.Errorf("device's backend node: %q %v", v, err)
	}
	// The guest removing its frontend directory disconnects the device.
	if err := g.XS().Rm(fe); err != nil {
		t.Fatal(err)
	}
	waitBackend(t, g, "vif", 0, xenbus.StateClosed)
	dev.expect(t, "disconnect")
	if err := b.Remove("vif", 0); err != nil {
		t.Fatal(err)
	}
	dev.expect(t, "close")
	dev.expectNone(t)
}

func TestConnectFailure(t *testing.T) {
	g := newGuest(t)
	b := newBus(t, g)
	dev := newRecDev("vbd")
	dev.failNext = errors.New("no such ring")
	if err := b.Add(dev, 7, nil); err != nil {
		t.Fatal(err)
	}
	fe := xenbus.FrontendPath("vbd", domid, 7)
	waitBackend(t, g, "vbd", 7, xenbus.StateInitWait)
	g.XS().Write(fe+"/state", "3")
	// A failed Connect is still paired with a Disconnect, and the backend
	// closes as after xenbus_dev_fatal.
	dev.expect(t, "connect", "disconnect")
	waitBackend(t, g, "vbd", 7, xenbus.StateClosing)
	g.XS().Write(fe+"/state", "6")
	waitBackend(t, g, "vbd", 7, xenbus.StateClosed)
	g.XS().Write(fe+"/state", "1")
	waitBackend(t, g, "vbd", 7, xenbus.StateInitWait)
	g.XS().Write(fe+"/ring-ref", "9")
	g.XS().Write(fe+"/state", "3")
	dev.expect(t, "connect")
	waitBackend(t, g, "vbd", 7, xenbus.StateConnected)
	if v, _ := g.Store().ReadString(xenbus.BackendPath("vbd", domid, 7) + "/seen-ring-ref"); v != "9" {
		t.Errorf("seen-ring-ref = %q", v)
	}
	dev.expectNone(t)
}

// TestEchoReconnect: a frontend closes and reconnects (module reload)
// with a fresh ring and event channel; the old grants are released.
func TestEchoReconnect(t *testing.T) {
	g := newGuest(t)
	b := newBus(t, g)
	echo := &testdev.Echo{}
	if err := b.Add(echo, 0, nil); err != nil {
		t.Fatal(err)
	}
	f, err := g.ProbeEcho(0)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for round := range 3 {
		if err := f.Connect(8, round == 1); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if _, err := f.Run(2000, rng); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if err := f.Close(); err != nil {
			t.Fatalf("round %d close (ring grant must be unmapped): %v", round, err)
		}
		if err := f.SetState(xenbus.StateInitialising); err != nil {
			t.Fatal(err)
		}
	}
	if c, d := echo.Connects.Load(), echo.Disconnects.Load(); c != 3 || d != 3 {
		t.Errorf("connects %d disconnects %d, want 3 3", c, d)
	}
	if got := echo.Served.Load(); got != 6000 {
		t.Errorf("served %d", got)
	}
}

// frontendFollower plays a Linux frontend's reaction to its backend
// closing (blkback_changed → blkfront_closing → xenbus_frontend_closed):
// when the backend goes Closing, the frontend goes Closed.
func frontendFollower(t *testing.T, f *testdev.EchoFront) chan error {
	done := make(chan error, 1)
	go func() {
		if _, err := f.WaitBackend(xenbus.StateClosing, xenbus.StateClosed); err != nil {
			done <- err
			return
		}
		done <- f.SetState(xenbus.StateClosed)
	}()
	return done
}

func TestHotUnplug(t *testing.T) {
	g := newGuest(t)
	b := newBus(t, g)
	echo := &testdev.Echo{}
	if err := b.Add(echo, 3, nil); err != nil {
		t.Fatal(err)
	}
	f, err := g.ProbeEcho(3)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Connect(4, false); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Run(100, rand.New(rand.NewPCG(7, 8))); err != nil {
		t.Fatal(err)
	}
	w, err := g.XS().Watch(xenstore.DomainPath(domid)+"/device", "probe")
	if err != nil {
		t.Fatal(err)
	}
	w.Next(time.Second)
	follow := frontendFollower(t, f)
	start := time.Now()
	if err := b.Remove(testdev.EchoType, 3); err != nil {
		t.Fatal(err)
	}
	if err := <-follow; err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Remove took %v with a cooperating frontend", d)
	}
	if c, d := echo.Connects.Load(), echo.Disconnects.Load(); c != 1 || d != 1 || !echo.Closed.Load() {
		t.Errorf("connects %d disconnects %d closed %v", c, d, echo.Closed.Load())
	}
	for _, p := range []string{
		xenbus.FrontendPath(testdev.EchoType, domid, 3),
		xenbus.BackendPath(testdev.EchoType, domid, 3),
		xenbus.LibxlPath(testdev.EchoType, domid, 3),
	} {
		if _, err := g.Store().ReadString(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s still exists (%v)", p, err)
		}
	}
	// The guest's probe watch saw the device go.
	saw := false
	for {
		p, ok := w.Next(200 * time.Millisecond)
		if !ok {
			break
		}
		saw = saw || strings.HasPrefix(p, xenbus.FrontendPath(testdev.EchoType, domid, 3))
	}
	if !saw {
		t.Error("guest watch on ~/device did not see the removal")
	}
	if err := f.Release(); err != nil {
		t.Errorf("grants busy after unplug: %v", err)
	}
	if len(b.Devices()) != 0 {
		t.Errorf("devices left: %v", b.Devices())
	}
	if err := b.Remove(testdev.EchoType, 3); !errors.Is(err, xenbus.ErrNotFound) {
		t.Errorf("second Remove = %v", err)
	}
	// The device id may be used again.
	if err := b.Add(&testdev.Echo{}, 3, nil); err != nil {
		t.Errorf("re-add: %v", err)
	}
}

// TestHotUnplugUnresponsive: a frontend that never closes delays Remove by
// the timeout only; a frontend that never connected does not delay it.
func TestHotUnplugUnresponsive(t *testing.T) {
	g := newGuest(t)
	b := newBus(t, g, xenbus.WithRemoveTimeout(300*time.Millisecond))
	echo := &testdev.Echo{}
	if err := b.Add(echo, 1, nil); err != nil {
		t.Fatal(err)
	}
	f, err := g.ProbeEcho(1)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Connect(2, false); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := b.Remove(testdev.EchoType, 1); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 5*time.Second {
		t.Errorf("Remove took %v, want about the 300ms timeout", d)
	}
	if echo.Disconnects.Load() != 1 {
		t.Errorf("not disconnected")
	}
	if err := f.Release(); err != nil {
		t.Errorf("grants busy after forced unplug: %v", err)
	}

	idle := newRecDev("vbd")
	if err := b.Add(idle, 2, nil); err != nil {
		t.Fatal(err)
	}
	waitBackend(t, g, "vbd", 2, xenbus.StateInitWait)
	start = time.Now()
	if err := b.Remove("vbd", 2); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 200*time.Millisecond {
		t.Errorf("Remove of an unconnected device took %v", d)
	}
	idle.expect(t, "close")
	idle.expectNone(t)
}

// goroutinesSettle waits until the number of goroutines is at most n.
func goroutinesSettle(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines, want at most %d:\n%s", runtime.NumGoroutine(), n, buf)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestCloseLeavesNoGoroutines(t *testing.T) {
	base := runtime.NumGoroutine()
	g, err := testdev.NewGuest(testdev.GuestConfig{DomID: domid})
	if err != nil {
		t.Fatal(err)
	}
	withGuest := runtime.NumGoroutine()
	b := xenbus.NewBus(g)
	var echos []*testdev.Echo
	for i := range 4 {
		e := &testdev.Echo{}
		echos = append(echos, e)
		if err := b.Add(e, i, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Add(newRecDev("vbd"), 9, nil); err != nil {
		t.Fatal(err)
	}
	// Two devices connected and busy, two waiting.
	for i := range 2 {
		f, err := g.ProbeEcho(i)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Connect(2, i == 1); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Run(50, rand.New(rand.NewPCG(1, uint64(i)))); err != nil {
			t.Fatal(err)
		}
	}
	if runtime.NumGoroutine() <= withGuest {
		t.Fatalf("devices started no goroutines?")
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	goroutinesSettle(t, withGuest)
	for i, e := range echos {
		if e.Connects.Load() != e.Disconnects.Load() || !e.Closed.Load() {
			t.Errorf("echo %d: connects %d disconnects %d closed %v", i, e.Connects.Load(), e.Disconnects.Load(), e.Closed.Load())
		}
	}
	// (backend/console/5/0, the primary console PopulateDomU wrote, is
	// not the bus's.)
	for _, typ := range []string{testdev.EchoType, "vbd"} {
		for _, dir := range []string{"/local/domain/0/backend/" + typ + "/5", xenstore.DomainPath(domid) + "/device/" + typ} {
			if sub, _ := g.Store().Directory(dir); len(sub) > 0 {
				t.Errorf("%s left: %v", dir, sub)
			}
		}
	}
	if err := b.Add(&testdev.Echo{}, 7, nil); !errors.Is(err, xenbus.ErrClosed) {
		t.Errorf("Add after Close = %v", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	g.Close()
	goroutinesSettle(t, base)
}

// TestConcurrentAddRemove adds and removes devices from several
// goroutines while others connect.
func TestConcurrentAddRemove(t *testing.T) {
	g := newGuest(t)
	b := newBus(t, g, xenbus.WithRemoveTimeout(100*time.Millisecond))
	var wg sync.WaitGroup
	errc := make(chan error, 64)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5 {
				id := w*100 + i
				if err := b.Add(newQuietDev("vbd"), id, nil); err != nil {
					errc <- err
					return
				}
				if err := b.Remove("vbd", id); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	if len(b.Devices()) != 0 {
		t.Errorf("left: %v", b.Devices())
	}
}

// quietDev is a Device that does nothing.
type quietDev struct{ typ string }

func newQuietDev(typ string) *quietDev                              { return &quietDev{typ} }
func (d *quietDev) Type() string                                    { return d.typ }
func (d *quietDev) BackendNodes() map[string]string                 { return nil }
func (d *quietDev) Connect(context.Context, *xenbus.Frontend) error { return nil }
func (d *quietDev) Disconnect() error                               { return nil }
