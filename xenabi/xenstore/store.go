package xenstore

import (
	"fmt"
	"sort"
)

// noGeneration marks "node absent" in transaction conflict checks
// (xenstored's NO_GENERATION).
const noGeneration = ^uint64(0)

// node is one xenstore node. Nodes are immutable once stored: every change
// builds a new node, so a transaction may keep pointers to what it read.
type node struct {
	value    []byte
	perms    []Perm   // never empty; perms[0] is the owner
	children []string // child names in creation order, as xenstored keeps them
	gen      uint64   // generation of the last change (DIRECTORY_PART's gencnt)
}

func (n *node) owner() uint32 { return n.perms[0].Domid }

// size is xenstored's accounted node size (calc_node_acc_size): header,
// permissions, value and the NUL-terminated child names.
func (n *node) size() int {
	s := 16 + 8*len(n.perms) + len(n.value)
	for _, c := range n.children {
		s += len(c) + 1
	}
	return s
}

// clone returns a shallow copy whose slices may be replaced (not mutated).
func (n *node) clone() *node {
	c := *n
	return &c
}

func (n *node) withChild(name string) *node {
	c := n.clone()
	c.children = append(append([]string(nil), n.children...), name)
	return c
}

func (n *node) withoutChild(name string) *node {
	c := n.clone()
	c.children = make([]string, 0, len(n.children))
	for _, x := range n.children {
		if x != name {
			c.children = append(c.children, x)
		}
	}
	return c
}

// view is the tree as one operation sees it: the global store, or a
// transaction's private overlay on it.
type view interface {
	// get returns the node at path, or nil.
	get(path string) *node
	// put stores n at path (nil deletes it), stamping a new generation.
	put(path string, n *node)
	// ownedDelta returns how many more nodes domid will own once this view
	// is visible (0 for the global store).
	ownedDelta(domid uint32) int
}

// store is the global tree: a flat map from absolute (or special) path to
// node, as xenstored's data base.
type store struct {
	nodes map[string]*node
	owned map[uint32]int // nodes per owner domid (the "nodes" quota)
	gen   uint64         // global generation counter
}

func newStore() *store {
	return &store{nodes: make(map[string]*node), owned: make(map[uint32]int)}
}

func (s *store) nextGen() uint64 {
	s.gen++
	return s.gen
}

func (s *store) get(path string) *node { return s.nodes[path] }

func (s *store) put(path string, n *node) {
	if old := s.nodes[path]; old != nil {
		s.owned[old.owner()]--
		if s.owned[old.owner()] == 0 {
			delete(s.owned, old.owner())
		}
	}
	if n == nil {
		delete(s.nodes, path)
		return
	}
	n.gen = s.nextGen()
	s.nodes[path] = n
	s.owned[n.owner()]++
}

func (s *store) ownedDelta(uint32) int { return 0 }

// check verifies the tree's invariants (xenstored's check_store): every
// node but the root and the special nodes has a parent listing it, every
// listed child exists exactly once, and the ownership counts match.
func (s *store) check() error {
	if s.nodes["/"] == nil {
		return fmt.Errorf("xenstore: no root node")
	}
	owned := make(map[uint32]int)
	paths := make([]string, 0, len(s.nodes))
	for p := range s.nodes {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		n := s.nodes[p]
		if len(n.perms) == 0 {
			return fmt.Errorf("xenstore: node %s has no permissions", p)
		}
		owned[n.owner()]++
		seen := make(map[string]bool, len(n.children))
		for _, c := range n.children {
			if seen[c] {
				return fmt.Errorf("xenstore: node %s lists child %q twice", p, c)
			}
			seen[c] = true
			if s.nodes[childPath(p, c)] == nil {
				return fmt.Errorf("xenstore: node %s lists missing child %q", p, c)
			}
		}
		if p == "/" || p[0] == '@' {
			continue
		}
		par := s.nodes[parentPath(p)]
		if par == nil {
			return fmt.Errorf("xenstore: node %s has no parent", p)
		}
		found := false
		for _, c := range par.children {
			if c == baseName(p) {
				found = true
				break
			}
		}
		if !found {
			return fmt.Errorf("xenstore: node %s not listed by its parent", p)
		}
	}
	for d, n := range owned {
		if s.owned[d] != n {
			return fmt.Errorf("xenstore: domain %d owns %d nodes, counted %d", d, n, s.owned[d])
		}
	}
	for d, n := range s.owned {
		if owned[d] != n {
			return fmt.Errorf("xenstore: domain %d owns %d nodes, counted %d", d, owned[d], n)
		}
	}
	return nil
}

// matchMode selects which watches an event reaches (xenstored's enum
// watch_match).
type matchMode int

const (
	matchSubtree matchMode = iota // watches at or above the path
	matchExact                    // watches exactly on the path
	matchDepth                    // special events with a /<domid> suffix
	matchNoDepth                  // special events without the suffix
)

// access is one node a transaction touched (xenstored's accessed_node).
type access struct {
	n        *node  // the node as the transaction sees it; nil: absent
	gen      uint64 // global generation when first read; noGeneration: absent
	checkGen bool   // read before written: must be unchanged at commit
	modified bool
	orig     []Perm // permissions when first accessed, for watch checks

	fire  bool // a watch event is due at commit
	match matchMode
}

// txn is an open transaction: optimistic, generation-checked as
// xenstored's transaction.c. Reads see the global tree as of their first
// access; commit fails with EAGAIN if any node read has changed since.
type txn struct {
	id       uint32
	s        *store
	accessed map[string]*access
	order    []string // accessed paths in first-access order
	owned    map[uint32]int
	failed   bool // the transaction exceeded a quota and cannot commit
}

func newTxn(id uint32, s *store) *txn {
	return &txn{id: id, s: s, accessed: make(map[string]*access), owned: make(map[uint32]int)}
}

func (t *txn) touch(path string) *access {
	a := t.accessed[path]
	if a != nil {
		return a
	}
	g := t.s.get(path)
	a = &access{n: g, gen: noGeneration}
	if g != nil {
		a.gen = g.gen
		a.orig = g.perms
	}
	t.accessed[path] = a
	t.order = append(t.order, path)
	return a
}

func (t *txn) get(path string) *node {
	_, seen := t.accessed[path]
	a := t.touch(path)
	if !seen {
		a.checkGen = true
	}
	return a.n
}

func (t *txn) put(path string, n *node) {
	a := t.touch(path)
	if a.n != nil {
		t.owned[a.n.owner()]--
	}
	if n != nil {
		n.gen = t.s.nextGen()
		t.owned[n.owner()]++
	}
	a.n = n
	a.modified = true
}

func (t *txn) ownedDelta(domid uint32) int { return t.owned[domid] }

// queueEvent remembers that a watch event is due for path at commit; a
// subtree event replaces an exact one (xenstored's queue_watches).
func (t *txn) queueEvent(path string, m matchMode) {
	a := t.touch(path)
	if !a.fire {
		a.fire = true
		a.match = m
	} else if m == matchSubtree {
		a.match = matchSubtree
	}
}

// conflicts reports whether a node the transaction read has changed in the
// global tree since.
func (t *txn) conflicts() bool {
	for _, p := range t.order {
		a := t.accessed[p]
		if !a.checkGen {
			continue
		}
		g := t.s.get(p)
		cur := noGeneration
		if g != nil {
			cur = g.gen
		}
		if cur != a.gen {
			return true
		}
	}
	return false
}
