package xenstore

import (
	"syscall"
	"testing"
)

func TestWatchFiresOnRegistrationAfterAck(t *testing.T) {
	d := New(Options{})
	c := wireConn(t, d, 0)
	c.req++
	m := Message{Header: Header{Type: TypeWatch, ReqID: c.req}, Payload: args("/w", "tok")}
	c.d.lock()
	c.d.process(c.c, &m)
	out := c.c.out
	c.d.unlock()
	if len(out) != 2 {
		t.Fatalf("%d messages queued, want ack and event", len(out))
	}
	h0, _ := ParseHeader(out[0].data)
	h1, _ := ParseHeader(out[1].data)
	if h0.Type != TypeWatch || h1.Type != TypeWatchEvent {
		t.Fatalf("order %v, %v: want WATCH then WATCH_EVENT", h0.Type, h1.Type)
	}
	if got := string(out[1].data[HeaderSize:]); got != "/w\x00tok\x00" {
		t.Fatalf("event payload %q", got)
	}
}

func TestWatchEvents(t *testing.T) {
	d := New(Options{})
	c := wireConn(t, d, 0)
	o := wireConn(t, d, 0)
	c.watch("/w", "t1")
	c.wantEvents(evs("/w", "t1")...)

	// Changes by anyone at or below the watched path fire; others do not.
	o.write("/w", "x")
	o.write("/w/a/b", "y")
	o.write("/wx", "no")
	o.write("/other", "no")
	c.wantEvents(evs("/w", "t1", "/w/a/b", "t1")...)

	// MKDIR of an existing node does not fire; of a new one it does.
	o.ok(TypeMkdir, 0, args("/w/a"))
	o.ok(TypeMkdir, 0, args("/w/n"))
	c.wantEvents(evs("/w/n", "t1")...)

	// SET_PERMS fires.
	o.setPerms("/w/n", "n0", "r1")
	c.wantEvents(evs("/w/n", "t1")...)

	// RM fires the removed root for watches at or above it; the nodes
	// below reach only watches exactly on them (xenstored's delnode_sub).
	o.ok(TypeRm, 0, args("/w/a"))
	c.wantEvents(evs("/w/a", "t1")...)

	// Removing a parent of the watch fires the watch with its own path.
	c.watch("/w/n", "t2")
	c.wantEvents(evs("/w/n", "t2")...)
	o.ok(TypeRm, 0, args("/w"))
	c.wantEvents(evs("/w/n", "t2", "/w", "t1")...)

	// A watch on the root sees everything.
	c.watch("/", "root")
	c.wantEvents(evs("/", "root")...)
	o.write("/z", "1")
	c.wantEvents(evs("/z", "root")...)
}

func TestWatchDuplicateAndUnwatch(t *testing.T) {
	d := New(Options{})
	c := wireConn(t, d, 0)
	c.watch("/w", "t")
	c.wantErr(syscall.EEXIST, TypeWatch, 0, args("/w", "t"))
	c.watch("/w", "t2") // same path, other token: a second watch
	c.takeEvents()
	c.write("/w", "1")
	c.wantEvents(evs("/w", "t", "/w", "t2")...)
	c.ok(TypeUnwatch, 0, args("/w", "t"))
	c.wantErr(syscall.ENOENT, TypeUnwatch, 0, args("/w", "t"))
	c.write("/w", "2")
	c.wantEvents(evs("/w", "t2")...)
	c.wantErr(syscall.EINVAL, TypeUnwatch, 0, args("/w"))
	c.wantErr(syscall.EINVAL, TypeWatch, 0, args("/w"))
	c.wantErr(syscall.EINVAL, TypeWatch, 0, args("/w/", "t"))
	c.wantErr(syscall.EINVAL, TypeWatch, 0, args("/w", "t", "-1"))
}

func TestWatchRelativePaths(t *testing.T) {
	d := New(Options{})
	dom0, g := guestSetup(t, d, 5)
	g.watch("data", "rel")
	g.watch("/local/domain/5/data", "abs")
	g.wantEvents(evs("data", "rel", "/local/domain/5/data", "abs")...)
	dom0.write("/local/domain/5/data/x", "1")
	g.wantEvents(evs("data/x", "rel", "/local/domain/5/data/x", "abs")...)
	g.write("data/y", "1")
	g.wantEvents(evs("data/y", "rel", "/local/domain/5/data/y", "abs")...)
	// UNWATCH by the relative or the absolute spelling finds the watch.
	g.ok(TypeUnwatch, 0, args("/local/domain/5/data", "rel"))
	g.ok(TypeUnwatch, 0, args("data", "abs"))
	g.write("data/z", "1")
	g.wantEvents()
}

func TestWatchDepth(t *testing.T) {
	d := New(Options{})
	c := wireConn(t, d, 0)
	c.ok(TypeWatch, 0, args("/d", "d0", "0"))
	c.ok(TypeWatch, 0, args("/d", "d1", "1"))
	c.takeEvents()
	c.write("/d", "")
	c.wantEvents(evs("/d", "d0", "/d", "d1")...)
	c.write("/d/a", "")
	c.wantEvents(evs("/d/a", "d1")...)
	c.write("/d/a/b", "")
	c.wantEvents()
}

func TestWatchPermissions(t *testing.T) {
	d := New(Options{})
	dom0, g := guestSetup(t, d, 5)
	dom0.write("/secret/x", "1")
	g.watch("/secret", "s")
	g.wantEvents(evs("/secret", "s")...)
	// The guest cannot read /secret: no events for changes there.
	dom0.write("/secret/x", "2")
	dom0.write("/secret/y", "2")
	g.wantEvents()
	// Readable node: events. A node made unreadable still reports the
	// permission change itself (old permissions count).
	dom0.write("/pub/x", "1")
	dom0.setPerms("/pub/x", "n0", "r5")
	g.watch("/pub", "p")
	g.takeEvents()
	dom0.write("/pub/x", "2")
	g.wantEvents(evs("/pub/x", "p")...)
	dom0.setPerms("/pub/x", "n0")
	g.wantEvents(evs("/pub/x", "p")...)
	dom0.write("/pub/x", "3")
	g.wantEvents()
	// Deleting a node the guest could read reports it.
	dom0.setPerms("/pub/x", "n0", "r5")
	g.takeEvents()
	dom0.ok(TypeRm, 0, args("/pub/x"))
	g.wantEvents(evs("/pub/x", "p")...)
}

func TestResetWatches(t *testing.T) {
	d := New(Options{})
	c := wireConn(t, d, 0)
	c.watch("/a", "1")
	c.watch("/b", "2")
	id := txStart(t, c)
	c.takeEvents()
	c.ok(TypeResetWatches, 0, nil)
	c.write("/a", "x")
	c.write("/b", "x")
	c.wantEvents()
	c.wantErr(syscall.ENOENT, TypeRead, id, args("/a"))
	c.watch("/a", "1") // can be set again
}

func TestSpecialWatches(t *testing.T) {
	d := New(Options{})
	c := wireConn(t, d, 0)
	c.watch("@introduceDomain", "in")
	c.watch("@releaseDomain", "rel")
	c.ok(TypeWatch, 0, args("@releaseDomain", "rel1", "1"))
	c.watch("@releaseDomain/6", "only6")
	c.takeEvents()
	_, g := guestSetup(t, d, 5)
	_ = g
	page := make([]byte, 4096)
	if _, err := d.Introduce(6, page, nil); err != nil {
		t.Fatal(err)
	}
	c.wantEvents(evs("@introduceDomain", "in")...)
	if err := d.Release(6); err != nil {
		t.Fatal(err)
	}
	c.wantEvents(evs("@releaseDomain", "rel", "@releaseDomain/6", "rel1", "@releaseDomain/6", "only6")...)
	// Shutdown fires @releaseDomain once until RESUME.
	if _, err := d.Introduce(6, page, nil); err != nil {
		t.Fatal(err)
	}
	c.takeEvents()
	d.DomainShutdown(6)
	d.DomainShutdown(6)
	c.wantEvents(evs("@releaseDomain", "rel", "@releaseDomain/6", "rel1", "@releaseDomain/6", "only6")...)
	c.ok(TypeResume, 0, args("6"))
	d.DomainShutdown(6)
	if n := len(c.takeEvents()); n != 3 {
		t.Fatalf("%d events after resume and shutdown, want 3", n)
	}
	// Guests see @releaseDomain (readable by DOMID_ANY), not
	// @introduceDomain (dom0 only) unless given permission.
	gw := wireConn(t, d, 6)
	gw.watch("@releaseDomain", "r")
	gw.watch("@introduceDomain", "i")
	gw.takeEvents()
	if _, err := d.Introduce(7, make([]byte, 4096), nil); err != nil {
		t.Fatal(err)
	}
	if err := d.Release(7); err != nil {
		t.Fatal(err)
	}
	gw.wantEvents(evs("@releaseDomain", "r")...)
	c.setPerms("@introduceDomain", "n0", "r6")
	gw.wantEvents(evs("@introduceDomain", "i")...) // SET_PERMS fires too
	if _, err := d.Introduce(7, make([]byte, 4096), nil); err != nil {
		t.Fatal(err)
	}
	gw.wantEvents(evs("@introduceDomain", "i")...)
}

func TestDuplicateEventsCoalesce(t *testing.T) {
	d := New(Options{})
	c := wireConn(t, d, 0)
	o := wireConn(t, d, 0)
	c.watch("/w", "t")
	c.takeEvents()
	// Three identical events still queued: one is sent.
	o.write("/w", "1")
	o.write("/w", "2")
	o.write("/w", "3")
	c.wantEvents(evs("/w", "t")...)
}

func TestPendingEventCap(t *testing.T) {
	d := New(Options{})
	dom0, g := guestSetup(t, d, 5)
	d.lock()
	d.domains[5].quota.WatchEvents = 3
	d.unlock()
	g.watch("data", "t")
	g.takeEvents()
	for i := range 10 {
		dom0.write("/local/domain/5/data/n"+itoa(uint32(i)), "")
	}
	if got := g.takeEvents(); len(got) != 3 || got[2].Path != "data/n2" {
		t.Fatalf("events %v, want the first 3", got)
	}
	dom0.write("/local/domain/5/data/again", "")
	g.wantEvents(evs("data/again", "t")...)
}
