package xenstore

import (
	"syscall"
	"testing"
)

func TestPermFor(t *testing.T) {
	perms := []Perm{{5, AccessRead}, {7, AccessWrite}, {8, AccessNone}}
	for _, tc := range []struct {
		s    subject
		want Access
	}{
		{subject{domid: 0, target: -1, priv: true}, AccessBoth | accessOwner},
		{subject{domid: 5, target: -1}, AccessBoth | accessOwner}, // owner
		{subject{domid: 7, target: -1}, AccessWrite},
		{subject{domid: 8, target: -1}, AccessNone},
		{subject{domid: 9, target: -1}, AccessRead},              // default
		{subject{domid: 9, target: 5}, AccessBoth | accessOwner}, // targets the owner
		{subject{domid: 9, target: 7}, AccessWrite},
	} {
		if got := permFor(tc.s, perms); got != tc.want {
			t.Errorf("%+v: %#x, want %#x", tc.s, got, tc.want)
		}
	}
	anyRead := []Perm{{0, AccessNone}, {DomidAny, AccessRead}}
	if got := permFor(subject{domid: 3, target: -1}, anyRead); got != AccessRead {
		t.Errorf("DOMID_ANY: %#x", got)
	}
}

func TestParsePerm(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Perm
		ok   bool
	}{
		{"n0", Perm{0, AccessNone}, true},
		{"r5", Perm{5, AccessRead}, true},
		{"w65535", Perm{65535, AccessWrite}, true},
		{"b0x7ff5", Perm{DomidAny, AccessBoth}, true},
		{"x1", Perm{}, false},
		{"r", Perm{}, false},
		{"r65536", Perm{}, false},
		{"r1 ", Perm{}, false},
		{"", Perm{}, false},
	} {
		got, err := ParsePerm(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("ParsePerm(%q) = %v, %v", tc.in, got, err)
		}
		if tc.ok && tc.in[1] != '0' {
			if s := got.String(); s != tc.in {
				t.Errorf("String() = %q, want %q", s, tc.in)
			}
		}
	}
}

func TestGuestPermissions(t *testing.T) {
	d := New(Options{})
	dom0, g := guestSetup(t, d, 5)

	// dom0-only nodes: EACCES for reading, writing, listing, perms.
	g.wantErr(syscall.EACCES, TypeRead, 0, args("/local/domain/0/name"))
	g.wantErr(syscall.EACCES, TypeDirectory, 0, args("/local/domain"))
	g.wantErr(syscall.EACCES, TypeGetPerms, 0, args("/tool"))
	g.wantErr(syscall.EACCES, TypeWrite, 0, append(args("/local/domain/0/name"), 'x'))
	g.wantErr(syscall.EACCES, TypeWrite, 0, append(args("/newtop"), 'x'))
	g.wantErr(syscall.EACCES, TypeMkdir, 0, args("/local/domain/9"))
	g.wantErr(syscall.EACCES, TypeRm, 0, args("/local/domain/0"))
	g.wantErr(syscall.EACCES, TypeSetPerms, 0, args("/tool", "n5"))
	// A missing node under an unreadable parent: EACCES, not ENOENT, so
	// the guest learns nothing about what exists there.
	g.wantErr(syscall.EACCES, TypeRead, 0, args("/local/domain/0/none"))

	// Its home is readable (r5) but not writable.
	if got := g.read("name"); got != "guest" {
		t.Fatalf("name %q", got)
	}
	g.wantErr(syscall.ENOENT, TypeRead, 0, args("none"))
	g.wantErr(syscall.EACCES, TypeWrite, 0, append(args("name"), 'x'))
	g.wantErr(syscall.EACCES, TypeWrite, 0, append(args("newkey"), 'x'))

	// data/ is its own: writes create nodes it owns, inheriting the list.
	g.write("data/a/b", "v")
	if got := g.getPerms("data/a/b"); got != "n5" {
		t.Fatalf("created perms %q", got)
	}
	// Nodes a guest creates under a dom0-owned writable dir become its own.
	dom0.write("/local/domain/5/shared", "")
	dom0.setPerms("/local/domain/5/shared", "n0", "b5", "r7")
	g.write("shared/mine", "1")
	if got := g.getPerms("shared/mine"); got != "n5,b5,r7" {
		t.Fatalf("created under dom0 dir: %q", got)
	}
	// It may change the permissions of what it owns, not the owner.
	g.setPerms("data/a/b", "n5", "r6")
	if got := dom0.getPerms("/local/domain/5/data/a/b"); got != "n5,r6" {
		t.Fatalf("perms %q", got)
	}
	g.wantErr(syscall.EPERM, TypeSetPerms, 0, args("data/a/b", "n6"))
	// Not on a node it may only write.
	g.wantErr(syscall.EACCES, TypeSetPerms, 0, args("shared", "n5"))
	// dom0 may change the owner.
	dom0.setPerms("/local/domain/5/data/a/b", "n6")
	g.wantErr(syscall.EACCES, TypeRead, 0, args("data/a/b"))
	// Removing: a writable node goes with its subtree, whoever owns that.
	g.ok(TypeRm, 0, args("data/a"))
	dom0.wantErr(syscall.ENOENT, TypeRead, 0, args("/local/domain/5/data/a/b"))
	checkStore(t, d)
}

func TestSetTarget(t *testing.T) {
	d := New(Options{})
	dom0 := wireConn(t, d, 0)
	for _, id := range []uint32{5, 6} {
		if _, err := d.Introduce(id, make([]byte, 4096), nil); err != nil {
			t.Fatal(err)
		}
	}
	dom0.write("/local/domain/6/x", "1")
	dom0.setPerms("/local/domain/6/x", "n6")
	g := &tconn{t: t, d: d, c: d.domains[5].conn}
	d.domains[5].conn.tr = nopTransport{}
	g.wantErr(syscall.EACCES, TypeRead, 0, args("/local/domain/6/x"))
	dom0.ok(TypeSetTarget, 0, args("5", "6"))
	if got := g.read("/local/domain/6/x"); got != "1" {
		t.Fatalf("target read %q", got)
	}
}

func TestReleaseRemovesDomainNodes(t *testing.T) {
	d := New(Options{})
	dom0 := wireConn(t, d, 0)
	if _, err := d.Introduce(5, make([]byte, 4096), nil); err != nil {
		t.Fatal(err)
	}
	dom0.write("/local/domain/5/device/vbd/0/state", "1")
	dom0.setPerms("/local/domain/5/device/vbd/0", "n5", "r0")
	dom0.write("/backend/5/x", "1")
	dom0.setPerms("/backend/5/x", "n0", "r5", "r6")
	if err := d.Release(5); err != nil {
		t.Fatal(err)
	}
	dom0.wantErr(syscall.ENOENT, TypeRead, 0, args("/local/domain/5/device/vbd/0"))
	if got := dom0.read("/local/domain/5/device/vbd"); got != "" {
		t.Fatalf("dom0-owned parent gone: %q", got)
	}
	if got := dom0.getPerms("/backend/5/x"); got != "n0,r6" {
		t.Fatalf("perms not stripped: %q", got)
	}
	checkStore(t, d)
}
