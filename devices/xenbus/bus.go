package xenbus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/xenvmm/xenvmm/xenabi/xenstore"
)

// Sentinel errors of the Bus.
var (
	ErrClosed   = errors.New("xenbus: bus closed")
	ErrExists   = errors.New("xenbus: device already exists")
	ErrNotFound = errors.New("xenbus: no such device")
	ErrBadName  = errors.New("xenbus: bad device type or id")
	// ErrPrimaryConsole: console 0 is not a xenbus device. Its frontend
	// lives at ~/console, is read-only to the guest and has no state
	// machine (libxl__device_generic_add's special case); the guest finds
	// its ring through start_info. xenstore.Client.PopulateDomU writes
	// its nodes; secondary consoles (devid >= 1) are ordinary devices.
	ErrPrimaryConsole = errors.New("xenbus: console 0 is not a xenbus device")
)

// DefaultRemoveTimeout bounds how long Remove waits for the frontend to
// close, as libxl bounds its wait for the backend (LIBXL_DESTROY_TIMEOUT).
const DefaultRemoveTimeout = 10 * time.Second

// Option configures a Bus.
type Option func(*Bus)

// WithRemoveTimeout sets how long Remove waits for the frontend to close
// before disconnecting the device anyway (DefaultRemoveTimeout).
func WithRemoveTimeout(d time.Duration) Option { return func(b *Bus) { b.removeTimeout = d } }

// Bus is the xenbus of one guest: the set of its split devices whose
// backends run in this process, each driven through the xenbus state
// machine by its own goroutine.
type Bus struct {
	h             Host
	log           *slog.Logger
	removeTimeout time.Duration

	mu     sync.Mutex
	closed bool
	devs   map[devKey]*instance
}

type devKey struct {
	typ   string
	devid int
}

// NewBus makes the bus of the guest h.DomID(). It writes nothing until a
// device is added.
func NewBus(h Host, opts ...Option) *Bus {
	b := &Bus{h: h, log: h.Log(), removeTimeout: DefaultRemoveTimeout, devs: map[devKey]*instance{}}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	for _, o := range opts {
		o(b)
	}
	return b
}

// AddOptions is the full form of Add's arguments.
type AddOptions struct {
	// DevID is the device id: the last component of both directories
	// (for a vbd, the encoded virtual device number, e.g. 51712 for xvda).
	DevID int
	// FrontendNodes are written into the frontend directory, owned by the
	// guest (libxl's fents: "virtual-device" and "device-type" for a vbd,
	// "mac", "handle" for a vif).
	FrontendNodes map[string]string
	// ReadOnlyFrontendNodes are written into the frontend directory owned
	// by domain 0 and readable by the guest (libxl's ro_fents: "mtu" of a
	// vif), so the guest cannot change them.
	ReadOnlyFrontendNodes map[string]string
}

// Add creates device devid and starts driving it; see AddWith.
func (b *Bus) Add(dev Device, devid int, frontendNodes map[string]string) error {
	return b.AddWith(dev, AddOptions{DevID: devid, FrontendNodes: frontendNodes})
}

// AddWith creates a device as libxl__device_generic_add does, in one
// transaction:
//
//   - /libxl/<domid>/device/<type>/<devid>/{frontend,backend};
//   - the frontend directory /local/domain/<domid>/device/<type>/<devid>,
//     owned by the guest and readable by domain 0 (n<domid>,r0), with
//     backend, backend-id = 0, state = Initialising (1) and the
//     FrontendNodes; ReadOnlyFrontendNodes owned by domain 0 and readable
//     by the guest (n0,r<domid>);
//   - the backend directory /local/domain/0/backend/<type>/<domid>/<devid>,
//     owned by domain 0 and readable by the guest (n0,r<domid>), with the
//     device's BackendNodes, then frontend, frontend-id, online = 1 and
//     state = Initialising (1).
//
// Then the device's goroutine switches the backend to InitWait (2) and
// follows the frontend's state node:
//
//   - frontend Initialised (3) or Connected (4), backend not Connected:
//     Connect, then backend Connected (4); if Connect fails, backend
//     Closing (5). (Linux's blkback connects on either state; netfront
//     goes straight to Connected.)
//   - frontend Closing (5): Disconnect, backend Closing.
//   - frontend Closed (6): Disconnect, backend Closed (6).
//   - frontend Initialising (1) again after a close (module reload,
//     kexec: Linux's xenbus_reset_state): backend InitWait, and the next
//     Initialised/Connected gets a fresh Connect.
//   - frontend state missing or not a number (Unknown): Disconnect,
//     backend Closed.
//
// A guest that is running sees the new device through its watch on
// ~/device (hotplug). The caller keeps ownership of the permissions of
// ~/device itself (PopulateDomU makes it readable by the guest).
func (b *Bus) AddWith(dev Device, o AddOptions) error {
	typ := dev.Type()
	if !validName(typ) || o.DevID < 0 {
		return fmt.Errorf("%w: %q/%d", ErrBadName, typ, o.DevID)
	}
	if typ == "console" && o.DevID == 0 {
		return ErrPrimaryConsole
	}
	key := devKey{typ, o.DevID}
	domid := b.h.DomID()
	ctx, cancel := context.WithCancel(context.Background())
	log := b.log.With("dev", typ+"/"+strconv.Itoa(o.DevID), "domid", domid)
	in := &instance{
		b:     b,
		dev:   dev,
		key:   key,
		libxl: LibxlPath(typ, domid, o.DevID),
		fe: &Frontend{
			h: b.h, typ: typ, devid: o.DevID,
			dir:  FrontendPath(typ, domid, o.DevID),
			bdir: BackendPath(typ, domid, o.DevID),
			log:  log,
		},
		log:     log,
		ctx:     ctx,
		cancel:  cancel,
		removeC: make(chan struct{}),
		closeC:  make(chan struct{}),
		done:    make(chan struct{}),
		state:   StateInitialising,
	}

	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		cancel()
		return ErrClosed
	}
	if b.devs[key] != nil {
		b.mu.Unlock()
		cancel()
		return fmt.Errorf("%w: %s/%d", ErrExists, typ, o.DevID)
	}
	b.devs[key] = in // reserved; done is closed on every path below
	b.mu.Unlock()

	fail := func(err error) error {
		cancel()
		b.forget(in)
		close(in.done)
		return fmt.Errorf("xenbus: add %s/%d: %w", typ, o.DevID, err)
	}
	if err := in.writeTrees(o); err != nil {
		return fail(err)
	}
	w, err := b.h.Store().Watch(in.fe.dir+"/state", "xenbus:"+in.fe.bdir)
	if err != nil {
		in.removeTrees()
		return fail(err)
	}
	in.watch = w
	in.log.Debug("xenbus: device added", "frontend", in.fe.dir, "backend", in.fe.bdir)
	go in.run()
	return nil
}

// Remove hot-unplugs a device as libxl's device removal and the backend
// driver do together: backend online = 0 and state Closing (5); wait for
// the frontend to close (state Closed, or not connected at all), at most
// the remove timeout; Disconnect; backend Closed (6); remove the frontend,
// backend and libxl directories. It returns when the device's goroutine
// has ended, with the errors of its final Disconnect, Close and tree
// removal.
func (b *Bus) Remove(typ string, devid int) error {
	b.mu.Lock()
	in := b.devs[devKey{typ, devid}]
	if in == nil || in.removing {
		b.mu.Unlock()
		return fmt.Errorf("%w: %s/%d", ErrNotFound, typ, devid)
	}
	in.removing = true
	close(in.removeC)
	b.mu.Unlock()
	in.cancel()
	<-in.done
	return in.err
}

// Close tears the bus down with the domain: every device is disconnected
// (without waiting for the guest), its directories are removed and its
// goroutine ended. Later Adds fail with ErrClosed; a second Close does
// nothing.
func (b *Bus) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	ins := make([]*instance, 0, len(b.devs))
	for _, in := range b.devs {
		ins = append(ins, in)
		close(in.closeC)
	}
	b.mu.Unlock()
	var errs []error
	for _, in := range ins {
		in.cancel()
		<-in.done
		if in.err != nil {
			errs = append(errs, in.err)
		}
	}
	return errors.Join(errs...)
}

// BackendState is the state the bus last wrote for a device's backend,
// and false if there is no such device.
func (b *Bus) BackendState(typ string, devid int) (State, bool) {
	b.mu.Lock()
	in := b.devs[devKey{typ, devid}]
	b.mu.Unlock()
	if in == nil {
		return StateUnknown, false
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.state, true
}

// Devices lists the devices on the bus as "type/devid".
func (b *Bus) Devices() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]string, 0, len(b.devs))
	for k := range b.devs {
		out = append(out, k.typ+"/"+strconv.Itoa(k.devid))
	}
	return out
}

func (b *Bus) forget(in *instance) {
	b.mu.Lock()
	if b.devs[in.key] == in {
		delete(b.devs, in.key)
	}
	b.mu.Unlock()
}

// validName: a device class is one xenstore path component.
func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

// instance is one device on the bus.
type instance struct {
	b     *Bus
	dev   Device
	key   devKey
	fe    *Frontend
	libxl string
	log   *slog.Logger
	watch *xenstore.Watch

	ctx     context.Context
	cancel  context.CancelFunc
	removeC chan struct{} // closed by Remove
	closeC  chan struct{} // closed by Close
	done    chan struct{} // closed when the goroutine has finished

	removing bool  // guarded by b.mu
	err      error // final errors; written before done is closed

	// Owned by the device goroutine.
	connected bool // a Connect awaits its Disconnect

	mu    sync.Mutex
	state State // the backend state last written
}

// writeTrees is libxl__device_generic_add.
func (in *instance) writeTrees(o AddOptions) error {
	domid := uint32(in.b.h.DomID())
	fePerms := []xenstore.Perm{{Domid: domid, Access: xenstore.AccessNone}, {Domid: BackendDomID, Access: xenstore.AccessRead}}
	roPerms := []xenstore.Perm{{Domid: BackendDomID, Access: xenstore.AccessNone}, {Domid: domid, Access: xenstore.AccessRead}}
	bePerms := roPerms
	fe, be := in.fe.dir, in.fe.bdir
	return in.b.h.Store().Transaction(func(tx *xenstore.Tx) error {
		var err error
		rm := func(p string) {
			if err == nil {
				if e := tx.Rm(p); e != nil && !isNotExist(e) {
					err = e
				}
			}
		}
		mkdir := func(p string, perms []xenstore.Perm) {
			if err == nil {
				err = tx.Mkdir(p)
			}
			if err == nil {
				err = tx.SetPerms(p, perms...)
			}
		}
		write := func(p, v string, perms []xenstore.Perm) {
			if err == nil {
				err = tx.WriteString(p, v)
			}
			if err == nil && perms != nil {
				err = tx.SetPerms(p, perms...)
			}
		}

		rm(in.libxl)
		write(in.libxl+"/frontend", fe, nil)
		write(in.libxl+"/backend", be, nil)

		rm(fe)
		mkdir(fe, fePerms)
		write(fe+"/backend", be, nil)
		for k, v := range o.FrontendNodes {
			write(fe+"/"+k, v, fePerms)
		}
		for k, v := range o.ReadOnlyFrontendNodes {
			write(fe+"/"+k, v, roPerms)
		}
		write(fe+"/backend-id", strconv.Itoa(BackendDomID), fePerms)
		write(fe+"/state", StateInitialising.Value(), fePerms)

		rm(be)
		mkdir(be, bePerms)
		write(be+"/frontend", fe, nil)
		for k, v := range in.dev.BackendNodes() {
			write(be+"/"+k, v, nil)
		}
		write(be+"/frontend-id", strconv.Itoa(int(domid)), nil)
		write(be+"/online", "1", nil)
		write(be+"/state", StateInitialising.Value(), nil)
		return err
	})
}

// removeTrees is libxl__device_destroy: the frontend, backend and libxl
// directories go in one transaction.
func (in *instance) removeTrees() error {
	return in.b.h.Store().Transaction(func(tx *xenstore.Tx) error {
		for _, p := range []string{in.fe.dir, in.fe.bdir, in.libxl} {
			if err := tx.Rm(p); err != nil && !isNotExist(err) {
				return err
			}
		}
		return nil
	})
}

// setState writes the backend's state node (xenbus_switch_state).
func (in *instance) setState(s State) {
	in.mu.Lock()
	old := in.state
	in.state = s
	in.mu.Unlock()
	if err := in.fe.WriteBackend("state", s.Value()); err != nil {
		in.log.Warn("xenbus: cannot write backend state", "state", s, "err", err)
		return
	}
	in.log.Debug("xenbus: backend state", "from", old, "to", s)
}

func (in *instance) backendState() State {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.state
}

// run is the device's state machine.
func (in *instance) run() {
	defer close(in.done)
	in.setState(StateInitWait)
	removeC := in.removeC
	var deadline <-chan time.Time
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	removing := false
	for {
		select {
		case _, ok := <-in.watch.Events():
			if !ok { // the store client was closed under us
				in.log.Warn("xenbus: frontend watch closed")
				in.finish(false)
				return
			}
			fs := in.frontendChanged(removing)
			if removing && frontendGone(fs) {
				in.finish(true)
				return
			}
		case <-removeC:
			removeC = nil
			removing = true
			in.startRemove()
			if frontendGone(in.fe.State()) {
				in.finish(true)
				return
			}
			timer = time.NewTimer(in.b.removeTimeout)
			deadline = timer.C
		case <-deadline:
			in.log.Warn("xenbus: frontend did not close; removing the device anyway", "frontend", in.fe.State())
			in.finish(true)
			return
		case <-in.closeC:
			in.finish(false)
			return
		}
	}
}

// frontendGone says whether a frontend in state s holds nothing of the
// device any more, so that removal need not wait for it.
func frontendGone(s State) bool {
	switch s {
	case StateUnknown, StateInitialising, StateInitWait, StateClosed:
		return true
	}
	return false
}

// frontendChanged is the backend's otherend_changed: it reads the
// frontend's state and moves the backend's, as Linux's blkback and
// netback frontend_changed do. It returns the state it read.
func (in *instance) frontendChanged(removing bool) State {
	fs := in.fe.State()
	bs := in.backendState()
	in.log.Debug("xenbus: frontend state", "frontend", fs, "backend", bs)
	switch fs {
	case StateInitialising:
		if removing || bs == StateInitWait || bs == StateInitialising {
			break
		}
		// A frontend starting over (after Closed, or after a kexec that
		// skipped the close): drop any old connection and wait anew.
		in.disconnect()
		in.setState(StateInitWait)
	case StateInitialised, StateConnected:
		if removing || bs == StateConnected {
			break
		}
		in.connect()
	case StateClosing:
		in.disconnect()
		if bs != StateClosing && bs != StateClosed {
			in.setState(StateClosing)
		}
	case StateClosed:
		in.disconnect()
		if bs != StateClosed {
			in.setState(StateClosed)
		}
	case StateUnknown:
		// The frontend directory is gone or its state is garbage.
		in.disconnect()
		if bs != StateClosed && !removing {
			in.setState(StateClosed)
		}
	default:
		// Reconfiguring/Reconfigured (vscsi, pvcalls) and InitWait are
		// not part of these devices' protocols.
	}
	return fs
}

func (in *instance) connect() {
	in.disconnect() // blkback: "Enforce precondition before potential leak point"
	in.connected = true
	if err := in.dev.Connect(in.ctx, in.fe); err != nil {
		in.log.Error("xenbus: connect failed", "err", err)
		in.disconnect()
		in.setState(StateClosing) // xenbus_dev_fatal
		return
	}
	in.log.Info("xenbus: device connected")
	in.setState(StateConnected)
}

// disconnect calls Disconnect if a Connect awaits it; it returns the
// error of Disconnect.
func (in *instance) disconnect() error {
	if !in.connected {
		return nil
	}
	in.connected = false
	err := in.dev.Disconnect()
	if err != nil {
		in.log.Warn("xenbus: disconnect failed", "err", err)
	} else {
		in.log.Debug("xenbus: device disconnected")
	}
	return err
}

// startRemove is what libxl writes to start a removal
// (libxl__initiate_device_generic_remove): online = 0, state = Closing.
func (in *instance) startRemove() {
	if err := in.fe.WriteBackend("online", "0"); err != nil {
		in.log.Warn("xenbus: cannot write online", "err", err)
	}
	if bs := in.backendState(); bs != StateClosing && bs != StateClosed {
		in.setState(StateClosing)
	}
}

// finish ends the device: Disconnect, (for a removal) backend Closed,
// directories removed, Close, off the bus.
func (in *instance) finish(removal bool) {
	in.watch.Close()
	var errs []error
	if err := in.disconnect(); err != nil {
		errs = append(errs, fmt.Errorf("disconnect: %w", err))
	}
	if removal && in.backendState() != StateClosed {
		in.setState(StateClosed)
	}
	if err := in.removeTrees(); err != nil {
		errs = append(errs, fmt.Errorf("remove directories: %w", err))
	}
	if c, ok := in.dev.(io.Closer); ok {
		if err := c.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close: %w", err))
		}
	}
	if len(errs) > 0 {
		in.err = fmt.Errorf("xenbus: %s/%d: %w", in.key.typ, in.key.devid, errors.Join(errs...))
	}
	in.b.forget(in)
	in.log.Debug("xenbus: device removed")
}
