package xenstore

import (
	"strings"
	"syscall"
	"testing"
)

// quotaGuest returns a guest connection of domain 5 whose quota q changes.
func quotaGuest(t *testing.T, q func(*Quota)) (*Daemon, *tconn, *tconn) {
	t.Helper()
	d := New(Options{})
	dom0, g := guestSetup(t, d, 5)
	d.lock()
	q(&d.domains[5].quota)
	d.unlock()
	return d, dom0, g
}

func TestQuotaNodes(t *testing.T) {
	d, dom0, g := quotaGuest(t, func(q *Quota) { q.Nodes = 4 })
	// guestSetup's data/ node is already owned by domain 5.
	g.write("data/a", "")
	g.write("data/b", "")
	g.write("data/c", "") // 4 owned: at the limit
	g.wantErr(syscall.ENOSPC, TypeWrite, 0, append(args("data/d"), 'x'))
	g.wantErr(syscall.ENOSPC, TypeMkdir, 0, args("data/d"))
	// Creating several parents at once is counted whole and not partly done.
	g.ok(TypeRm, 0, args("data/c"))
	g.wantErr(syscall.ENOSPC, TypeWrite, 0, append(args("data/x/y"), 'x'))
	g.wantErr(syscall.ENOENT, TypeRead, 0, args("data/x"))
	// dom0 is not limited, and overwriting needs no new node.
	dom0.write("/local/domain/5/misc/x/y/z", "")
	g.write("data/a", "changed")
	// In a transaction the quota counts the transaction's own nodes, and
	// is checked again at commit.
	id := txStart(t, g)
	g.ok(TypeWrite, id, append(args("data/t1"), 'x'))
	g.wantErr(syscall.ENOSPC, TypeWrite, id, append(args("data/t2"), 'x'))
	g.write("data/c", "") // another node outside: now at the limit
	g.wantErr(syscall.ENOSPC, TypeTransactionEnd, id, args("T"))
	// Nodes dom0 creates under a guest-owned directory inherit the guest
	// as owner and count against its quota.
	dom0.write("/local/domain/5/data/bydom0", "")
	if got := dom0.getPerms("/local/domain/5/data/bydom0"); got != "n5" {
		t.Fatalf("perms %q", got)
	}
	d.lock()
	owned := d.store.owned[5]
	d.unlock()
	if owned != 5 {
		t.Fatalf("domain 5 owns %d nodes, want 5", owned)
	}
	checkStore(t, d)
}

func TestQuotaNodeSize(t *testing.T) {
	_, dom0, g := quotaGuest(t, func(q *Quota) {})
	// node-size counts 16 + 8 per permission + value + child names.
	max := 2048 - 16 - 8
	g.write("data/v", strings.Repeat("v", max))
	g.wantErr(syscall.ENOSPC, TypeWrite, 0, append(args("data/v"), strings.Repeat("v", max+1)...))
	g.wantErr(syscall.ENOSPC, TypeWrite, 0, append(args("data/w"), strings.Repeat("v", max+1)...))
	g.wantErr(syscall.ENOENT, TypeRead, 0, args("data/w"))
	// The privileged domain is exempt.
	dom0.write("/local/domain/5/data/v", strings.Repeat("v", 3000))
	// Child names count towards the parent's size.
	for i := 0; ; i++ {
		name := "data/" + strings.Repeat("c", 200) + itoa(uint32(i))
		r := g.call(TypeWrite, 0, append(args(name), 'x'))
		if r.Type == TypeError {
			if e, _ := ParseErrno(r.Payload); e != syscall.ENOSPC || i < 5 {
				t.Fatalf("child %d: %q", i, r.Payload)
			}
			break
		}
		if i > 20 {
			t.Fatal("parent grew beyond node-size")
		}
	}
}

func TestQuotaWatches(t *testing.T) {
	_, _, g := quotaGuest(t, func(q *Quota) { q.Watches = 2 })
	g.watch("data", "1")
	g.watch("data", "2")
	g.wantErr(syscall.ENOSPC, TypeWatch, 0, args("data", "3"))
	g.ok(TypeUnwatch, 0, args("data", "1"))
	g.watch("data", "3")
}

func TestQuotaDefaultWatches(t *testing.T) {
	_, _, g := quotaGuest(t, func(q *Quota) {})
	for i := range 128 {
		g.watch("data", itoa(uint32(i)))
	}
	g.wantErr(syscall.ENOSPC, TypeWatch, 0, args("data", "128"))
}

func TestQuotaTransactions(t *testing.T) {
	_, dom0, g := quotaGuest(t, func(q *Quota) {})
	for range 10 {
		txStart(t, g)
	}
	g.wantErr(syscall.ENOSPC, TypeTransactionStart, 0, args(""))
	for range 20 {
		txStart(t, dom0)
	}
}

func TestQuotaTransactionNodes(t *testing.T) {
	_, _, g := quotaGuest(t, func(q *Quota) { q.TransactionNodes = 4 })
	id := txStart(t, g)
	g.ok(TypeRead, id, args("name"))
	g.ok(TypeWrite, id, append(args("data/a"), 'x')) // data/a, data
	g.wantErr(syscall.ENOSPC, TypeWrite, id, append(args("data/b/c"), 'x'))
	// The transaction is spoilt: it cannot commit.
	g.wantErr(syscall.ENOSPC, TypeTransactionEnd, id, args("T"))
	g.wantErr(syscall.ENOENT, TypeRead, 0, args("data/a"))
}

func TestQuotaPermissions(t *testing.T) {
	_, _, g := quotaGuest(t, func(q *Quota) {})
	g.write("data/p", "")
	g.setPerms("data/p", "n5", "r1", "r2", "r3", "r4")
	g.wantErr(syscall.ENOSPC, TypeSetPerms, 0, args("data/p", "n5", "r1", "r2", "r3", "r4", "r6"))
}

func TestQuotaOutstanding(t *testing.T) {
	// A guest that does not read its replies stops being served after
	// "outstanding" replies; see TestRingOutstanding for the ring side.
	q := DefaultQuota()
	if q.Outstanding != 20 {
		t.Fatalf("default outstanding %d", q.Outstanding)
	}
	if err := q.Set("outstanding", 2); err != nil || q.Outstanding != 2 {
		t.Fatal(err)
	}
	if err := q.Set("bogus", 2); err == nil {
		t.Fatal("unknown quota accepted")
	}
	if err := q.Set("nodes", -1); err == nil {
		t.Fatal("negative quota accepted")
	}
}

func TestQuotaZeroDisables(t *testing.T) {
	_, _, g := quotaGuest(t, func(q *Quota) { q.Watches = 0 })
	for i := range 200 {
		g.watch("data", itoa(uint32(i)))
	}
}

func TestQuotaGlobalDefaultsApplyToNewDomains(t *testing.T) {
	d := New(Options{})
	dom0 := wireConn(t, d, 0)
	dom0.ok(TypeSetQuota, 0, args("watches", "1"))
	_, g := guestSetup(t, d, 8)
	g.watch("data", "1")
	g.wantErr(syscall.ENOSPC, TypeWatch, 0, args("data", "2"))
}

func TestQuotaAPI(t *testing.T) {
	d := New(Options{Quota: &Quota{Watches: 7}})
	if q := d.DefaultDomainQuota(); q.Watches != 7 || q.Nodes != 0 {
		t.Fatalf("default %+v", q)
	}
	q := DefaultQuota()
	q.Watches = 1
	if err := d.SetDomainQuota(9, q); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Introduce(9, make([]byte, 4096), nil); err != nil {
		t.Fatal(err)
	}
	g := &tconn{t: t, d: d, c: d.domains[9].conn}
	d.domains[9].conn.tr = nopTransport{}
	g.watch("/local/domain/9", "1")
	g.wantErr(syscall.ENOSPC, TypeWatch, 0, args("/local/domain/9", "2"))
	if got, _ := d.DomainQuota(9); got.Watches != 1 {
		t.Fatalf("domain quota %+v", got)
	}
	if _, err := d.DomainQuota(DomidSelf); err == nil {
		t.Fatal("quota of a reserved domid")
	}
	d.SetDefaultDomainQuota(DefaultQuota())
	if got, _ := d.DomainQuota(10); got != DefaultQuota() {
		t.Fatalf("new domain %+v", got)
	}
}
