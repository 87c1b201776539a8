package xenstore

import (
	"syscall"
	"testing"
)

func TestTransactionIsolationAndCommit(t *testing.T) {
	d := New(Options{})
	c := wireConn(t, d, 0)
	o := wireConn(t, d, 0)
	o.watch("/t", "w")
	o.takeEvents()
	c.write("/t/a", "old")
	o.takeEvents()
	id := txStart(t, c)
	c.ok(TypeWrite, id, append(args("/t/a"), "new"...))
	c.ok(TypeWrite, id, append(args("/t/b/c"), "made"...))
	// Inside: the new values. Outside: unchanged, and no events yet.
	if got := string(c.ok(TypeRead, id, args("/t/a"))); got != "new" {
		t.Fatalf("in tx %q", got)
	}
	if got := o.read("/t/a"); got != "old" {
		t.Fatalf("outside tx %q", got)
	}
	o.wantErr(syscall.ENOENT, TypeRead, 0, args("/t/b/c"))
	o.wantEvents()
	c.ok(TypeTransactionEnd, id, args("T"))
	if got := o.read("/t/a"); got != "new" {
		t.Fatalf("after commit %q", got)
	}
	if got := o.read("/t/b/c"); got != "made" {
		t.Fatalf("after commit %q", got)
	}
	o.wantEvents(evs("/t/a", "w", "/t/b/c", "w")...)
	checkStore(t, d)
}

func TestTransactionAbort(t *testing.T) {
	d := New(Options{})
	c := wireConn(t, d, 0)
	c.write("/t/a", "old")
	c.watch("/t", "w")
	c.takeEvents()
	id := txStart(t, c)
	c.ok(TypeWrite, id, append(args("/t/a"), "new"...))
	c.ok(TypeRm, id, args("/t"))
	c.wantErr(syscall.ENOENT, TypeRead, id, args("/t/a"))
	c.ok(TypeTransactionEnd, id, args("F"))
	if got := c.read("/t/a"); got != "old" {
		t.Fatalf("abort leaked %q", got)
	}
	c.wantEvents()
	checkStore(t, d)
}

func TestTransactionConflicts(t *testing.T) {
	d := New(Options{})
	c := wireConn(t, d, 0)
	c.write("/t/x", "0")
	c.write("/t/y", "0")

	// Two transactions writing the same node: the second commit fails.
	t1 := txStart(t, c)
	t2 := txStart(t, c)
	c.ok(TypeWrite, t1, append(args("/t/x"), "1"...))
	c.ok(TypeWrite, t2, append(args("/t/x"), "2"...))
	c.ok(TypeTransactionEnd, t1, args("T"))
	c.wantErr(syscall.EAGAIN, TypeTransactionEnd, t2, args("T"))
	if got := c.read("/t/x"); got != "1" {
		t.Fatalf("x = %q", got)
	}
	// The failed transaction is gone.
	c.wantErr(syscall.ENOENT, TypeRead, t2, args("/t/x"))

	// Non-conflicting transactions both commit.
	t1 = txStart(t, c)
	t2 = txStart(t, c)
	c.ok(TypeWrite, t1, append(args("/t/x"), "a"...))
	c.ok(TypeWrite, t2, append(args("/t/y"), "b"...))
	c.ok(TypeTransactionEnd, t2, args("T"))
	c.ok(TypeTransactionEnd, t1, args("T"))
	if c.read("/t/x") != "a" || c.read("/t/y") != "b" {
		t.Fatal("non-conflicting commits lost a write")
	}

	// A write outside any transaction to a node read inside one conflicts.
	t1 = txStart(t, c)
	c.ok(TypeRead, t1, args("/t/x"))
	c.ok(TypeWrite, t1, append(args("/t/y"), "from-tx"...))
	c.write("/t/x", "outside")
	c.wantErr(syscall.EAGAIN, TypeTransactionEnd, t1, args("T"))
	if got := c.read("/t/y"); got != "b" {
		t.Fatalf("failed commit applied: y = %q", got)
	}

	// Creating a node read as missing conflicts too.
	t1 = txStart(t, c)
	c.wantErr(syscall.ENOENT, TypeRead, t1, args("/t/new"))
	c.write("/t/new", "1")
	c.wantErr(syscall.EAGAIN, TypeTransactionEnd, t1, args("T"))

	// Deleting a node read inside conflicts.
	t1 = txStart(t, c)
	c.ok(TypeRead, t1, args("/t/x"))
	c.ok(TypeRm, 0, args("/t/x"))
	c.wantErr(syscall.EAGAIN, TypeTransactionEnd, t1, args("T"))

	// A change to a node the transaction never touched does not conflict.
	t1 = txStart(t, c)
	c.ok(TypeWrite, t1, append(args("/t/y"), "tx"...))
	c.write("/elsewhere", "1")
	c.ok(TypeTransactionEnd, t1, args("T"))
	checkStore(t, d)
}

func TestTransactionRmAndRecreate(t *testing.T) {
	d := New(Options{})
	c := wireConn(t, d, 0)
	c.write("/t/a/b", "1")
	c.watch("/t/a/b", "exact")
	c.watch("/t", "sub")
	c.takeEvents()
	id := txStart(t, c)
	c.ok(TypeRm, id, args("/t/a"))
	c.ok(TypeWrite, id, append(args("/t/a/c"), "2"...))
	if got := string(c.ok(TypeDirectory, id, args("/t/a"))); got != "c\x00" {
		t.Fatalf("dir in tx %q", got)
	}
	c.ok(TypeTransactionEnd, id, args("T"))
	c.wantErr(syscall.ENOENT, TypeRead, 0, args("/t/a/b"))
	if got := c.read("/t/a/c"); got != "2" {
		t.Fatalf("c = %q", got)
	}
	got := c.takeEvents()
	want := map[WatchEvent]bool{{"/t/a/b", "exact"}: true, {"/t/a", "sub"}: true, {"/t/a/c", "sub"}: true}
	for _, e := range got {
		if !want[e] {
			t.Fatalf("unexpected event %v in %v", e, got)
		}
		delete(want, e)
	}
	if len(want) != 0 {
		t.Fatalf("missing events %v (got %v)", want, got)
	}
	checkStore(t, d)
}

func TestTransactionGuestPermissions(t *testing.T) {
	d := New(Options{})
	_, g := guestSetup(t, d, 4)
	id := txStart(t, g)
	g.wantErr(syscall.EACCES, TypeWrite, id, append(args("/local/domain/4/x"), "1"...))
	g.wantErr(syscall.EACCES, TypeRead, id, args("/local/domain/0/name"))
	g.ok(TypeWrite, id, append(args("data/x"), "1"...))
	g.ok(TypeTransactionEnd, id, args("T"))
	if got := g.read("data/x"); got != "1" {
		t.Fatalf("x = %q", got)
	}
}
