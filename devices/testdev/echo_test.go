package testdev

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/xenvmm/xenvmm/devices/ring"
	"github.com/xenvmm/xenvmm/devices/xenbus"
	"github.com/xenvmm/xenvmm/xenabi/guestmem"
)

func newGuest(t *testing.T) *Guest {
	t.Helper()
	g, err := NewGuest(GuestConfig{DomID: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	return g
}

// TestEcho100k is the split-driver "done when": 100,000 requests over a
// shared ring between a frontend in a fake guest and an in-process
// backend, through the real xenstore daemon, event-channel table and
// grant table, every byte checked.
func TestEcho100k(t *testing.T) {
	n := 100000
	if testing.Short() {
		n = 5000
	}
	g := newGuest(t)
	bus := xenbus.NewBus(g)
	echo := &Echo{}
	if err := bus.Add(echo, 0, nil); err != nil {
		t.Fatal(err)
	}
	f, err := g.ProbeEcho(0)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Connect(32, false); err != nil {
		t.Fatal(err)
	}
	kicks, err := f.Run(n, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	if got := echo.Served.Load(); got != int64(n) {
		t.Errorf("backend served %d requests, want %d", got, n)
	}
	t.Logf("%d requests, %d frontend notifications", n, kicks)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Release(); err != nil {
		t.Fatalf("grants still in use after close: %v", err)
	}
	if err := bus.Remove(EchoType, 0); err != nil {
		t.Fatal(err)
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
	if c, d := echo.Connects.Load(), echo.Disconnects.Load(); c != 1 || d != 1 {
		t.Errorf("connects %d disconnects %d, want 1 1", c, d)
	}
	if !echo.Closed.Load() {
		t.Error("device not closed on removal")
	}
	if m := g.GrantTable().GuestMaps(); m != 0 {
		t.Errorf("%d guest maps left", m)
	}
}

// TestEchoBadRequests: spans beyond the page and grants the guest never
// made are answered with errors, and the ring goes on working.
func TestEchoBadRequests(t *testing.T) {
	g := newGuest(t)
	bus := xenbus.NewBus(g)
	t.Cleanup(func() { bus.Close() })
	if err := bus.Add(&Echo{}, 1, nil); err != nil {
		t.Fatal(err)
	}
	f, err := g.ProbeEcho(1)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Connect(2, true); err != nil {
		t.Fatal(err)
	}
	reqs := []struct {
		r    EchoRequest
		want int16
	}{
		{EchoRequest{ID: 1, Gref: f.data[0].ref, Offset: 4000, Len: 97}, EchoBadSpan},
		{EchoRequest{ID: 2, Gref: f.data[0].ref, Offset: 0xffff, Len: 0xffff}, EchoBadSpan},
		{EchoRequest{ID: 3, Gref: 400, Offset: 0, Len: 16}, EchoBadGref}, // odd: map path
		{EchoRequest{ID: 4, Gref: 400, Offset: 0, Len: 16}, EchoBadGref}, // even: copy path
		{EchoRequest{ID: 5, Gref: 1 << 30, Offset: 0, Len: 1}, EchoBadGref},
		{EchoRequest{ID: 6, Gref: f.data[1].ref, Offset: 4095, Len: 1}, EchoOK},
	}
	for _, rq := range reqs {
		rq.r.Put(f.Ring().RequestSlot())
	}
	if f.Ring().PushRequests() {
		g.Send(f.Port())
	}
	for _, rq := range reqs {
		var slot []byte
		for {
			var ok bool
			if slot, ok = f.Ring().NextResponse(); ok {
				break
			}
			if !f.Ring().FinalCheckForResponses() {
				<-g.PortEvents(f.Port())
			}
		}
		r := GetEchoResponse(slot)
		if r.ID != rq.r.ID || r.Status != rq.want {
			t.Errorf("request %d: %v, want status %d", rq.r.ID, r, rq.want)
		}
	}
	if _, err := f.Run(500, rand.New(rand.NewPCG(3, 4))); err != nil {
		t.Fatal(err)
	}
}

// TestEchoHostileGuest: a guest that publishes an impossible req_prod
// stops the backend's ring (no panic, no out-of-bounds access); the device
// still disconnects cleanly. While connected, the ring grant is pinned: the
// guest cannot revoke it.
func TestEchoHostileGuest(t *testing.T) {
	g := newGuest(t)
	bus := xenbus.NewBus(g)
	t.Cleanup(func() { bus.Close() })
	echo := &Echo{}
	if err := bus.Add(echo, 2, nil); err != nil {
		t.Fatal(err)
	}
	f, err := g.ProbeEcho(2)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Connect(1, false); err != nil {
		t.Fatal(err)
	}
	if err := g.EndGrant(f.ringRef); !errors.Is(err, ErrGrantBusy) {
		t.Fatalf("revoking a mapped ring grant: %v, want ErrGrantBusy", err)
	}
	page, _ := g.Memory().Page(f.ringGFN)
	guestmem.Store32(page, 0, 0x80000000) // req_prod far beyond the ring
	g.Send(f.Port())
	deadline := time.Now().Add(5 * time.Second)
	for echo.Err() == nil {
		if time.Now().After(deadline) {
			t.Fatal("backend did not notice the bogus req_prod")
		}
		time.Sleep(time.Millisecond)
	}
	if !errors.Is(echo.Err(), ring.ErrBadIndex) {
		t.Errorf("backend error %v, want ring.ErrBadIndex", echo.Err())
	}
	if echo.Served.Load() != 0 {
		t.Errorf("served %d requests from a broken ring", echo.Served.Load())
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Release(); err != nil {
		t.Errorf("grants busy after close: %v", err)
	}
}
