package xenstore

import (
	"syscall"
)

// The operations below are the daemon's core, shared by the wire handlers
// and the in-process Client. Each runs with Daemon.mu held, validates
// everything before it changes anything, and returns a bare syscall.Errno
// with xenstored's choice of errno.

func (d *Daemon) view(tx *txn) view {
	if tx != nil {
		return tx
	}
	return d.store
}

// canon validates a client's path (EINVAL when bad).
func (d *Daemon) canon(c *conn, p string, special bool) (string, error) {
	pm := 0
	if q := c.quota(); q != nil {
		pm = q.PathMax
	}
	name, ok := canonicalPath(c.home, p, special, pm)
	if !ok {
		return "", syscall.EINVAL
	}
	return name, nil
}

// getNode returns the node at path if c has want access to it. For a
// missing node the error hides whether it exists from clients that could
// not see it: ENOENT if the nearest existing ancestor grants some of want,
// else EACCES (xenstored's get_node_chk_perm and errno_from_parents).
func (d *Daemon) getNode(c *conn, v view, path string, want Access) (*node, error) {
	if n := v.get(path); n != nil {
		if permFor(c.subject(), n.perms)&want != want {
			return nil, syscall.EACCES
		}
		return n, nil
	}
	return nil, d.missingErr(c, v, path, want)
}

func (d *Daemon) missingErr(c *conn, v view, path string, want Access) error {
	p := path
	for p != "/" {
		p = parentPath(p)
		if n := v.get(p); n != nil {
			if permFor(c.subject(), n.perms)&want != 0 {
				return syscall.ENOENT
			}
			return syscall.EACCES
		}
	}
	return syscall.EACCES
}

// txCheck fails a transaction that has touched more nodes than the
// "transaction-nodes" quota allows; it cannot commit afterwards.
func (d *Daemon) txCheck(c *conn, tx *txn) error {
	if tx == nil {
		return nil
	}
	if q := c.quota(); q != nil && exceeds(q.TransactionNodes, len(tx.order)) {
		tx.failed = true
	}
	if tx.failed {
		return syscall.ENOSPC
	}
	return nil
}

// sizeCheck enforces the "node-size" quota on a node c is about to store.
func sizeCheck(c *conn, n *node) error {
	if q := c.quota(); q != nil && exceeds(q.NodeSize, n.size()) {
		return syscall.ENOSPC
	}
	return nil
}

// create makes path and its missing ancestors, the new nodes inheriting
// their parent's permissions with an unprivileged creator as owner
// (xenstored's construct_node/create_node). The caller has checked that
// the nearest existing ancestor grants c write access.
func (d *Daemon) create(c *conn, tx *txn, path string, value []byte) error {
	v := d.view(tx)
	missing := []string{path}
	p := path
	for {
		p = parentPath(p)
		if v.get(p) != nil {
			break
		}
		if p == "/" {
			return syscall.EIO // no root: cannot happen
		}
		missing = append(missing, p)
	}
	ancPath := p
	anc := v.get(ancPath)
	if q := c.quota(); q != nil {
		owned := d.store.owned[c.domid] + v.ownedDelta(c.domid)
		if exceeds(q.Nodes, owned+len(missing)) {
			return syscall.ENOSPC
		}
	}
	newAnc := anc.withChild(baseName(missing[len(missing)-1]))
	if err := sizeCheck(c, newAnc); err != nil {
		return err
	}
	nodes := make([]*node, len(missing))
	parent := anc
	for i := len(missing) - 1; i >= 0; i-- {
		n := &node{perms: clonePerms(parent.perms)}
		if !c.priv {
			n.perms[0].Domid = c.domid
		}
		if i > 0 {
			n.children = []string{baseName(missing[i-1])}
		} else {
			n.value = append([]byte(nil), value...)
		}
		if err := sizeCheck(c, n); err != nil {
			return err
		}
		nodes[i] = n
		parent = n
	}
	if err := d.txCheck(c, tx); err != nil {
		return err
	}
	v.put(ancPath, newAnc)
	for i := len(missing) - 1; i >= 0; i-- {
		v.put(missing[i], nodes[i])
	}
	return nil
}

func (d *Daemon) opRead(c *conn, tx *txn, p string) ([]byte, error) {
	name, err := d.canon(c, p, false)
	if err != nil {
		return nil, err
	}
	n, err := d.getNode(c, d.view(tx), name, AccessRead)
	if err == nil {
		err = d.txCheck(c, tx)
	}
	if err != nil {
		return nil, err
	}
	return n.value, nil
}

func (d *Daemon) opWrite(c *conn, tx *txn, p string, value []byte) error {
	name, err := d.canon(c, p, false)
	if err != nil {
		return err
	}
	v := d.view(tx)
	n, err := d.getNode(c, v, name, AccessWrite)
	switch err {
	case nil:
		nn := n.clone()
		nn.value = append([]byte(nil), value...)
		if err := sizeCheck(c, nn); err != nil {
			return err
		}
		if err := d.txCheck(c, tx); err != nil {
			return err
		}
		v.put(name, nn)
	case syscall.ENOENT:
		if err := d.create(c, tx, name, value); err != nil {
			return err
		}
	default:
		return err
	}
	d.changed(tx, name, matchSubtree, nil)
	return nil
}

func (d *Daemon) opMkdir(c *conn, tx *txn, p string) error {
	name, err := d.canon(c, p, false)
	if err != nil {
		return err
	}
	_, err = d.getNode(c, d.view(tx), name, AccessWrite)
	switch err {
	case nil:
		return d.txCheck(c, tx)
	case syscall.ENOENT:
		if err := d.create(c, tx, name, nil); err != nil {
			return err
		}
		d.changed(tx, name, matchSubtree, nil)
		return nil
	default:
		return err
	}
}

func (d *Daemon) opRm(c *conn, tx *txn, p string) error {
	name, err := d.canon(c, p, false)
	if err != nil {
		return err
	}
	v := d.view(tx)
	if _, err := d.getNode(c, v, name, AccessWrite); err != nil {
		// Removing a missing node is fine if its parent exists.
		if err == syscall.ENOENT && v.get(parentPath(name)) != nil {
			return d.txCheck(c, tx)
		}
		return err
	}
	if name == "/" {
		return syscall.EINVAL
	}
	return d.rmTree(c, tx, name)
}

// rmTree deletes name and everything below it, firing watches on each
// deleted node, deepest first (xenstored's rm_node and delnode_sub): the
// removed root reaches watches above it too, the others exact watches only.
func (d *Daemon) rmTree(c *conn, tx *txn, name string) error {
	v := d.view(tx)
	parent := v.get(parentPath(name))
	if parent == nil {
		return syscall.EINVAL
	}
	var list []string
	var walk func(p string)
	walk = func(p string) {
		n := v.get(p)
		if n == nil {
			return
		}
		for _, ch := range n.children {
			walk(childPath(p, ch))
		}
		list = append(list, p)
	}
	walk(name)
	if err := d.txCheck(c, tx); err != nil {
		return err
	}
	for _, p := range list {
		old := v.get(p)
		m := matchExact
		if p == name {
			m = matchSubtree
		}
		v.put(p, nil)
		d.changed(tx, p, m, old.perms)
	}
	v.put(parentPath(name), parent.withoutChild(baseName(name)))
	return nil
}

func (d *Daemon) opDirectory(c *conn, tx *txn, p string) ([]string, uint64, error) {
	name, err := d.canon(c, p, false)
	if err != nil {
		return nil, 0, err
	}
	n, err := d.getNode(c, d.view(tx), name, AccessRead)
	if err == nil {
		err = d.txCheck(c, tx)
	}
	if err != nil {
		return nil, 0, err
	}
	return n.children, n.gen, nil
}

func (d *Daemon) opGetPerms(c *conn, tx *txn, p string) ([]Perm, error) {
	name, err := d.canon(c, p, true)
	if err != nil {
		return nil, err
	}
	n, err := d.getNode(c, d.view(tx), name, AccessRead)
	if err == nil {
		err = d.txCheck(c, tx)
	}
	if err != nil {
		return nil, err
	}
	return clonePerms(n.perms), nil
}

func (d *Daemon) opSetPerms(c *conn, tx *txn, p string, perms []Perm) error {
	if len(perms) == 0 {
		return syscall.EINVAL
	}
	if q := c.quota(); q != nil && exceeds(q.Permissions, len(perms)) {
		return syscall.ENOSPC
	}
	name, err := d.canon(c, p, true)
	if err != nil {
		return err
	}
	v := d.view(tx)
	n, err := d.getNode(c, v, name, AccessWrite|accessOwner)
	if err != nil {
		return err
	}
	// Only the privileged domain may change a node's owner.
	if !c.priv && perms[0].Domid != n.owner() {
		return syscall.EPERM
	}
	nn := n.clone()
	nn.perms = clonePerms(perms)
	if err := sizeCheck(c, nn); err != nil {
		return err
	}
	if err := d.txCheck(c, tx); err != nil {
		return err
	}
	v.put(name, nn)
	d.changed(tx, name, matchSubtree, n.perms)
	return nil
}

// opWatch registers a watch; the caller fires its initial event after the
// acknowledgement.
func (d *Daemon) opWatch(c *conn, p, token string, depth int, local *Watch) (*watch, error) {
	relative := p != "" && p[0] != '/' && p[0] != '@'
	name, err := d.canon(c, p, true)
	if err != nil {
		return nil, err
	}
	for _, w := range c.watches {
		if w.path == name && w.token == token {
			return nil, syscall.EEXIST
		}
	}
	if q := c.quota(); q != nil && exceeds(q.Watches, len(c.watches)+1) {
		return nil, syscall.ENOSPC
	}
	w := &watch{c: c, path: name, token: token, depth: depth, local: local}
	if relative {
		w.prefix = len(c.home) + 1
	}
	c.watches = append(c.watches, w)
	return w, nil
}

func (d *Daemon) opUnwatch(c *conn, p, token string) error {
	name, err := d.canon(c, p, true)
	if err != nil {
		return err
	}
	for i, w := range c.watches {
		if w.path == name && w.token == token {
			c.watches = append(c.watches[:i:i], c.watches[i+1:]...)
			if w.local != nil {
				w.local.close()
			}
			return nil
		}
	}
	return syscall.ENOENT
}

// opResetWatches drops all watches and transactions of c (RESET_WATCHES).
func (d *Daemon) opResetWatches(c *conn) {
	for _, w := range c.watches {
		if w.local != nil {
			w.local.close()
		}
	}
	c.watches = nil
	c.txs = make(map[uint32]*txn)
}

func (d *Daemon) opTxStart(c *conn) (uint32, error) {
	if q := c.quota(); q != nil && exceeds(q.Transactions, len(c.txs)+1) {
		return 0, syscall.ENOSPC
	}
	for {
		c.nextTxID++
		if c.nextTxID != 0 && c.txs[c.nextTxID] == nil {
			break
		}
	}
	tx := newTxn(c.nextTxID, d.store)
	c.txs[tx.id] = tx
	return tx.id, nil
}

// opTxEnd ends a transaction, committing it if asked: EAGAIN if a node it
// read has changed meanwhile. The transaction is gone either way.
func (d *Daemon) opTxEnd(c *conn, tx *txn, commit bool) error {
	if tx == nil {
		return syscall.ENOENT
	}
	delete(c.txs, tx.id)
	if !commit {
		return nil
	}
	if tx.failed {
		return syscall.ENOSPC
	}
	// Quota before conflicts, as xenstored's do_transaction_end.
	if q := c.quota(); q != nil {
		if delta := tx.owned[c.domid]; delta > 0 && exceeds(q.Nodes, d.store.owned[c.domid]+delta) {
			return syscall.ENOSPC
		}
	}
	if tx.conflicts() {
		return syscall.EAGAIN
	}
	s := d.store
	for _, p := range tx.order {
		a := tx.accessed[p]
		if !a.modified {
			continue
		}
		if a.n != nil {
			s.put(p, a.n.clone())
		} else if s.get(p) != nil {
			s.put(p, nil)
		}
	}
	for _, p := range tx.order {
		if a := tx.accessed[p]; a.fire {
			d.fire(p, a.match, a.orig)
		}
	}
	return nil
}
