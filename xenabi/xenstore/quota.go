package xenstore

import (
	"fmt"
	"strings"
)

// Quota holds the per-domain limits xenstored enforces on unprivileged
// domains (docs/misc/xenstore.txt GET_QUOTA/SET_QUOTA and CONTROL quota;
// defaults as xenstored's quotas[] and QEMU's xenstore_impl.c). A zero field
// disables that check. Privileged connections (dom0, host tools, the VMM's
// own backends) are never limited, except by MaxPendingEvents of Options.
//
// A value equal to its limit is allowed (xenstored refuses it; QEMU allows
// it); errors follow xenstored: ENOSPC for every exhausted quota, EINVAL for
// an over-long path.
type Quota struct {
	// Nodes is the number of nodes a domain may own ("nodes", 1000).
	Nodes int
	// NodeSize limits one node's accounted size: 16 bytes of header,
	// 8 per permission entry, the value and the NUL-terminated child names
	// ("node-size", 2048).
	NodeSize int
	// Watches is the number of watches per domain ("watches", 128).
	Watches int
	// Transactions is the number of open transactions ("transactions", 10).
	Transactions int
	// TransactionNodes limits the nodes one transaction may touch
	// ("transaction-nodes", 1024).
	TransactionNodes int
	// Permissions is the number of entries in a node's permission list
	// ("node-permissions", 5).
	Permissions int
	// PathMax limits a path's length below /local/domain/<id>/
	// ("path-max", XENSTORE_REL_PATH_MAX).
	PathMax int
	// Outstanding is the number of replies that may wait for room in the
	// ring before the daemon stops reading requests ("outstanding", 20).
	Outstanding int
	// WatchEvents caps the watch events queued for the domain and not yet
	// written to its ring; further events are dropped and logged
	// ("watch-events", 1024; xenstored bounds them by its memory quota).
	WatchEvents int
}

// DefaultQuota returns xenstored's and QEMU's default limits.
func DefaultQuota() Quota {
	return Quota{
		Nodes:            1000,
		NodeSize:         2048,
		Watches:          128,
		Transactions:     10,
		TransactionNodes: 1024,
		Permissions:      5,
		PathMax:          RelPathMax,
		Outstanding:      20,
		WatchEvents:      1024,
	}
}

// quotaField describes one quota for GET_QUOTA, SET_QUOTA and CONTROL quota.
type quotaField struct {
	name  string
	descr string
	ptr   func(*Quota) *int
}

var quotaFields = [...]quotaField{
	{"nodes", "Nodes per domain", func(q *Quota) *int { return &q.Nodes }},
	{"watches", "Watches per domain", func(q *Quota) *int { return &q.Watches }},
	{"outstanding", "Outstanding requests per domain", func(q *Quota) *int { return &q.Outstanding }},
	{"transactions", "Active transactions per domain", func(q *Quota) *int { return &q.Transactions }},
	{"transaction-nodes", "Max. number of accessed nodes per transaction", func(q *Quota) *int { return &q.TransactionNodes }},
	{"node-permissions", "Max. number of permissions per node", func(q *Quota) *int { return &q.Permissions }},
	{"path-max", "Max. length of a node path", func(q *Quota) *int { return &q.PathMax }},
	{"node-size", "Max. size of a node", func(q *Quota) *int { return &q.NodeSize }},
	{"watch-events", "Max. pending watch events per domain", func(q *Quota) *int { return &q.WatchEvents }},
}

// quotaNames returns the supported quota names separated by blanks
// (GET_QUOTA without parameters).
func quotaNames() string {
	n := make([]string, len(quotaFields))
	for i, f := range quotaFields {
		n[i] = f.name
	}
	return strings.Join(n, " ")
}

// Get returns the quota called name.
func (q *Quota) Get(name string) (int, bool) {
	for _, f := range quotaFields {
		if f.name == name {
			return *f.ptr(q), true
		}
	}
	return 0, false
}

// Set changes the quota called name; v must not be negative.
func (q *Quota) Set(name string, v int) error {
	if v < 0 {
		return fmt.Errorf("xenstore: quota %s: negative value %d", name, v)
	}
	for _, f := range quotaFields {
		if f.name == name {
			*f.ptr(q) = v
			return nil
		}
	}
	return fmt.Errorf("xenstore: unknown quota %q", name)
}

// exceeds reports whether v is over limit (a zero limit disables the check).
func exceeds(limit, v int) bool {
	return limit > 0 && v > limit
}

// DefaultDomainQuota returns the limits new domains start with.
func (d *Daemon) DefaultDomainQuota() Quota {
	d.lock()
	defer d.unlock()
	return d.quota
}

// SetDefaultDomainQuota changes the limits new domains start with
// (SET_QUOTA without a domid).
func (d *Daemon) SetDefaultDomainQuota(q Quota) {
	d.lock()
	defer d.unlock()
	d.quota = q
}

// DomainQuota returns domain domid's limits.
func (d *Daemon) DomainQuota(domid uint32) (Quota, error) {
	d.lock()
	defer d.unlock()
	dom, err := d.domainRecord(domid)
	if err != nil {
		return Quota{}, fmt.Errorf("xenstore: quota of domain %d: %w", domid, err)
	}
	return dom.quota, nil
}

// SetDomainQuota replaces domain domid's limits (SET_QUOTA <domid>); it
// may be called before the domain is introduced.
func (d *Daemon) SetDomainQuota(domid uint32, q Quota) error {
	d.lock()
	defer d.unlock()
	dom, err := d.domainRecord(domid)
	if err != nil {
		return fmt.Errorf("xenstore: quota of domain %d: %w", domid, err)
	}
	dom.quota = q
	return nil
}
