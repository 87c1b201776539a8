package xenstore

import (
	"errors"
	"fmt"
	"sync"
	"syscall"
)

// OpError is the error of a Client or Tx operation; Err is the errno the
// daemon answered with, so errors.Is(err, syscall.ENOENT) works.
type OpError struct {
	Op   string
	Path string
	Err  syscall.Errno
}

func (e *OpError) Error() string {
	if e.Path == "" {
		return fmt.Sprintf("xenstore %s: %s", e.Op, ErrnoName(e.Err))
	}
	return fmt.Sprintf("xenstore %s %s: %s", e.Op, e.Path, ErrnoName(e.Err))
}

func (e *OpError) Unwrap() error { return e.Err }

func opErr(op, path string, err error) error {
	if err == nil {
		return nil
	}
	var e syscall.Errno
	if !errors.As(err, &e) {
		e = syscall.EIO
	}
	return &OpError{Op: op, Path: path, Err: e}
}

// ErrClosed is returned by operations on a closed Client or ended Tx.
var ErrClosed = errors.New("xenstore: client closed")

// Client is a privileged (domain 0) connection for the VMM's own backends
// and toolstack code. Paths are absolute, or relative to /local/domain/0.
// Its methods may be called from any goroutine.
type Client struct {
	d *Daemon
	c *conn // guarded by d.mu
}

// NewClient opens an in-process privileged connection.
func (d *Daemon) NewClient() *Client {
	d.lock()
	defer d.unlock()
	return &Client{d: d, c: d.newConn(0, nil, nil)}
}

// Close drops the client's watches and transactions.
func (cl *Client) Close() {
	cl.d.lock()
	defer cl.d.unlock()
	cl.d.removeConn(cl.c)
}

// do runs f under the daemon's lock.
func (cl *Client) do(op, path string, tx *Tx, f func(*txn) error) error {
	cl.d.lock()
	defer cl.d.unlock()
	if cl.c.closed {
		return ErrClosed
	}
	var t *txn
	if tx != nil {
		if t = cl.c.txs[tx.id]; t == nil {
			return &OpError{Op: op, Path: path, Err: syscall.ENOENT}
		}
	}
	return opErr(op, path, f(t))
}

func checkPayload(path string, value []byte) error {
	if len(path)+1+len(value) > PayloadMax {
		return syscall.E2BIG
	}
	return nil
}

func (cl *Client) read(tx *Tx, path string) (v []byte, err error) {
	err = cl.do("read", path, tx, func(t *txn) error {
		b, err := cl.d.opRead(cl.c, t, path)
		v = append([]byte(nil), b...)
		return err
	})
	return v, err
}

func (cl *Client) write(tx *Tx, path string, value []byte) error {
	return cl.do("write", path, tx, func(t *txn) error {
		if err := checkPayload(path, value); err != nil {
			return err
		}
		return cl.d.opWrite(cl.c, t, path, value)
	})
}

func (cl *Client) mkdir(tx *Tx, path string) error {
	return cl.do("mkdir", path, tx, func(t *txn) error { return cl.d.opMkdir(cl.c, t, path) })
}

func (cl *Client) rm(tx *Tx, path string) error {
	return cl.do("rm", path, tx, func(t *txn) error { return cl.d.opRm(cl.c, t, path) })
}

func (cl *Client) directory(tx *Tx, path string) (ch []string, err error) {
	err = cl.do("directory", path, tx, func(t *txn) error {
		c, _, err := cl.d.opDirectory(cl.c, t, path)
		ch = append([]string(nil), c...)
		return err
	})
	return ch, err
}

func (cl *Client) getPerms(tx *Tx, path string) (p []Perm, err error) {
	err = cl.do("get-perms", path, tx, func(t *txn) error {
		p, err = cl.d.opGetPerms(cl.c, t, path)
		return err
	})
	return p, err
}

func (cl *Client) setPerms(tx *Tx, path string, perms []Perm) error {
	return cl.do("set-perms", path, tx, func(t *txn) error { return cl.d.opSetPerms(cl.c, t, path, perms) })
}

// Read returns the value at path.
func (cl *Client) Read(path string) ([]byte, error) { return cl.read(nil, path) }

// ReadString returns the value at path as a string.
func (cl *Client) ReadString(path string) (string, error) {
	v, err := cl.read(nil, path)
	return string(v), err
}

// Write stores value at path, creating missing parents.
func (cl *Client) Write(path string, value []byte) error { return cl.write(nil, path, value) }

// WriteString stores a string value at path.
func (cl *Client) WriteString(path, value string) error { return cl.write(nil, path, []byte(value)) }

// Mkdir makes sure path exists.
func (cl *Client) Mkdir(path string) error { return cl.mkdir(nil, path) }

// Rm deletes path and everything below it; a missing path whose parent
// exists is not an error.
func (cl *Client) Rm(path string) error { return cl.rm(nil, path) }

// Directory lists the names of path's children.
func (cl *Client) Directory(path string) ([]string, error) { return cl.directory(nil, path) }

// GetPerms returns path's permission list.
func (cl *Client) GetPerms(path string) ([]Perm, error) { return cl.getPerms(nil, path) }

// SetPerms replaces path's permission list; perms[0] is the owner.
func (cl *Client) SetPerms(path string, perms ...Perm) error { return cl.setPerms(nil, path, perms) }

// Tx is an open transaction of a Client. Its reads see a consistent tree;
// its writes become visible, and fire watches, only at Commit.
type Tx struct {
	cl *Client
	id uint32
}

// Begin starts a transaction.
func (cl *Client) Begin() (*Tx, error) {
	var id uint32
	err := cl.do("transaction-start", "", nil, func(*txn) error {
		var err error
		id, err = cl.d.opTxStart(cl.c)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &Tx{cl: cl, id: id}, nil
}

// Commit ends the transaction and applies it; an error wrapping
// syscall.EAGAIN means it conflicted with another change and must be
// retried from the start.
func (tx *Tx) Commit() error {
	return tx.cl.do("transaction-end", "", tx, func(t *txn) error { return tx.cl.d.opTxEnd(tx.cl.c, t, true) })
}

// Abort ends the transaction discarding its changes.
func (tx *Tx) Abort() {
	_ = tx.cl.do("transaction-end", "", tx, func(t *txn) error { return tx.cl.d.opTxEnd(tx.cl.c, t, false) })
}

// Read returns the value at path as the transaction sees it.
func (tx *Tx) Read(path string) ([]byte, error) { return tx.cl.read(tx, path) }

// ReadString returns the value at path as a string.
func (tx *Tx) ReadString(path string) (string, error) {
	v, err := tx.cl.read(tx, path)
	return string(v), err
}

// Write stores value at path within the transaction.
func (tx *Tx) Write(path string, value []byte) error { return tx.cl.write(tx, path, value) }

// WriteString stores a string value at path within the transaction.
func (tx *Tx) WriteString(path, value string) error { return tx.cl.write(tx, path, []byte(value)) }

// Mkdir makes sure path exists within the transaction.
func (tx *Tx) Mkdir(path string) error { return tx.cl.mkdir(tx, path) }

// Rm deletes path and its subtree within the transaction.
func (tx *Tx) Rm(path string) error { return tx.cl.rm(tx, path) }

// Directory lists path's children within the transaction.
func (tx *Tx) Directory(path string) ([]string, error) { return tx.cl.directory(tx, path) }

// GetPerms returns path's permissions within the transaction.
func (tx *Tx) GetPerms(path string) ([]Perm, error) { return tx.cl.getPerms(tx, path) }

// SetPerms replaces path's permissions within the transaction.
func (tx *Tx) SetPerms(path string, perms ...Perm) error { return tx.cl.setPerms(tx, path, perms) }

// maxTxRetries bounds Transaction's retries on EAGAIN.
const maxTxRetries = 64

// Transaction runs fn in a transaction and commits it, retrying from the
// start while the commit conflicts (EAGAIN), as xl's retry_transaction
// loops do. If fn fails the transaction is aborted and fn's error returned.
func (cl *Client) Transaction(fn func(*Tx) error) error {
	var err error
	for range maxTxRetries {
		var tx *Tx
		if tx, err = cl.Begin(); err != nil {
			return err
		}
		if err = fn(tx); err != nil {
			tx.Abort()
			return err
		}
		if err = tx.Commit(); !errors.Is(err, syscall.EAGAIN) {
			return err
		}
	}
	return err
}

// WatchEvent is one watch firing: the path that changed (relative if the
// watch was set with a relative path) and the watch's token.
type WatchEvent struct {
	Path  string
	Token string
}

// Watch is a watch set by a Client. Its events, starting with the one
// every watch fires when set, arrive on Events in order; the queue behind
// the channel is unbounded, so the daemon never blocks on a slow reader.
type Watch struct {
	cl *Client
	ch chan WatchEvent

	// mu guards queue and closed.
	mu     sync.Mutex
	queue  []WatchEvent
	closed bool

	wake chan struct{} // capacity 1: the pump has work
	done chan struct{} // closed by close
	once sync.Once
	w    *watch // guarded by Daemon.mu
}

// Watch sets a watch on path (absolute, relative to /local/domain/0, or a
// special @ path) and starts delivering its events.
func (cl *Client) Watch(path, token string) (*Watch, error) {
	return cl.WatchDepth(path, token, -1)
}

// WatchDepth is Watch limited to changes at most depth levels below path
// (XENSTORE_SERVER_FEATURE_WATCHDEPTH); depth < 0 means unlimited.
func (cl *Client) WatchDepth(path, token string, depth int) (*Watch, error) {
	w := &Watch{
		cl:   cl,
		ch:   make(chan WatchEvent),
		wake: make(chan struct{}, 1),
		done: make(chan struct{}),
	}
	err := cl.do("watch", path, nil, func(*txn) error {
		iw, err := cl.d.opWatch(cl.c, path, token, depth, w)
		if err != nil {
			return err
		}
		w.w = iw
		cl.d.deliver(iw, iw.path)
		return nil
	})
	if err != nil {
		return nil, err
	}
	go w.pump()
	return w, nil
}

// Events returns the channel of the watch's events; it is closed when the
// watch is closed (by Close, the client's Close, or a watch reset).
func (w *Watch) Events() <-chan WatchEvent { return w.ch }

// Close removes the watch and closes its channel; pending events are
// dropped.
func (w *Watch) Close() {
	d := w.cl.d
	d.lock()
	c := w.cl.c
	for i, x := range c.watches {
		if x == w.w {
			c.watches = append(c.watches[:i:i], c.watches[i+1:]...)
			break
		}
	}
	d.unlock()
	w.close()
}

// push queues an event; called with Daemon.mu held.
func (w *Watch) push(ev WatchEvent) {
	w.mu.Lock()
	if !w.closed {
		w.queue = append(w.queue, ev)
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *Watch) close() {
	w.once.Do(func() {
		w.mu.Lock()
		w.closed = true
		w.queue = nil
		w.mu.Unlock()
		close(w.done)
	})
}

// pump is the watch's runner: it moves queued events to the channel.
func (w *Watch) pump() {
	defer close(w.ch)
	for {
		w.mu.Lock()
		if w.closed {
			w.mu.Unlock()
			return
		}
		if len(w.queue) == 0 {
			w.mu.Unlock()
			select {
			case <-w.wake:
			case <-w.done:
				return
			}
			continue
		}
		ev := w.queue[0]
		w.queue = w.queue[1:]
		w.mu.Unlock()
		select {
		case w.ch <- ev:
		case <-w.done:
			return
		}
	}
}
