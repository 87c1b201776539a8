package xenbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/xenvmm/xenvmm/xenabi/evtchn"
	"github.com/xenvmm/xenvmm/xenabi/gnttab"
	"github.com/xenvmm/xenvmm/xenabi/xenstore"
)

// Host is what the bus and its devices need from the VMM: the guest's
// domain id, its grant table and event-channel table (the backend,
// domain-0, side of each), a privileged xenstore client, and a logger.
type Host interface {
	DomID() uint16
	Grants() GrantMapper // *gnttab.Table satisfies it
	Events() EventBinder // *evtchn.Table satisfies it
	Store() *xenstore.Client
	Log() *slog.Logger
}

// GrantMapper is domain 0's access to the pages the guest grants it
// (grant_table.h GNTTABOP_map_grant_ref with GNTMAP_host_map, and
// GNTTABOP_copy with a grant reference on one side).
type GrantMapper interface {
	MapGrant(dom uint16, ref uint32, readonly bool) (*gnttab.Mapping, error)
	CopyFromGrant(dom uint16, ref uint32, off int, dst []byte) error
	CopyToGrant(dom uint16, ref uint32, off int, src []byte) error
}

// EventBinder binds domain 0's end of an interdomain event channel to a
// port the guest allocated (event_channel.h EVTCHNOP_bind_interdomain,
// issued by the backend).
type EventBinder interface {
	BindBackend(guestPort uint32, h evtchn.Handler) (*evtchn.Endpoint, error)
}

var (
	_ GrantMapper = (*gnttab.Table)(nil)
	_ EventBinder = (*evtchn.Table)(nil)
)

// Device is one backend instance (blkback, netback, ...), driven by the
// Bus through the xenbus state machine.
//
// Contract: the Bus calls Connect and Disconnect from the device's own
// goroutine, never concurrently. Every Connect, successful or not, is
// followed by exactly one Disconnect before the next Connect, so a Connect
// that fails halfway may leave what it set up for Disconnect to undo.
// Disconnect must not block on the guest (it may be gone) and must leave
// no goroutine of the connection running. If the Device also implements
// io.Closer, Close is called once, after the last Disconnect, when the
// device leaves the bus (Remove, Bus.Close).
type Device interface {
	// Type is the xenstore device class: "vbd", "vif", "console", "pci".
	Type() string
	// BackendNodes are written into the backend directory when the
	// device is added (e.g. "sectors", "feature-flush-cache"), before the
	// backend announces InitWait. Keys may contain '/' (subdirectories).
	BackendNodes() map[string]string
	// Connect runs when the frontend is Initialised (or Connected): fe
	// reads the frontend's nodes (ring-ref, event-channel, protocol, ...).
	// It maps rings, binds event channels, starts the device's goroutines,
	// and may write more backend nodes through fe. The Bus switches the
	// backend to Connected when it returns nil, and to Closing (as Linux's
	// xenbus_dev_fatal does) when it fails. ctx is cancelled when the
	// device is being removed or the bus closed; it is not the lifetime of
	// the connection (that ends with Disconnect).
	Connect(ctx context.Context, fe *Frontend) error
	// Disconnect stops the device (frontend Closing/Closed, device
	// removal, domain shutdown): unmap grants, close endpoints, stop
	// goroutines.
	Disconnect() error
}

// Frontend is a device's view of its frontend directory
// (/local/domain/<domid>/device/<type>/<devid>) and its own backend
// directory. Everything read from the frontend directory was written by
// the guest: validate it.
type Frontend struct {
	h     Host
	typ   string
	devid int
	dir   string
	bdir  string
	log   *slog.Logger
}

// ErrBadNode is wrapped by the errors of ReadInt and ReadUint for a node
// whose value does not parse.
var ErrBadNode = errors.New("xenbus: malformed node value")

// Host is the host the device runs on.
func (fe *Frontend) Host() Host { return fe.h }

// DomID is the guest's (the frontend's) domain id.
func (fe *Frontend) DomID() uint16 { return fe.h.DomID() }

// Type is the device class.
func (fe *Frontend) Type() string { return fe.typ }

// DevID is the device id (the last component of both directories).
func (fe *Frontend) DevID() int { return fe.devid }

// Dir is the frontend directory.
func (fe *Frontend) Dir() string { return fe.dir }

// BackendDir is the backend directory.
func (fe *Frontend) BackendDir() string { return fe.bdir }

// Log is the host's logger with the device's identity (type/devid and
// domid) attached.
func (fe *Frontend) Log() *slog.Logger { return fe.log }

// Read returns the value of node in the frontend directory (node may be a
// relative path such as "queue-0/tx-ring-ref"). A missing node is an error
// for which errors.Is(err, fs.ErrNotExist) holds.
func (fe *Frontend) Read(node string) (string, error) {
	return fe.h.Store().ReadString(fe.dir + "/" + node)
}

// ReadDefault is Read with def for a missing node (optional keys such as
// "protocol" or "feature-persistent").
func (fe *Frontend) ReadDefault(node, def string) (string, error) {
	v, err := fe.Read(node)
	if isNotExist(err) {
		return def, nil
	}
	return v, err
}

// ReadInt reads node as a decimal int, as xenbus_scanf("%d") is used.
func (fe *Frontend) ReadInt(node string) (int, error) {
	v, err := fe.Read(node)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return 0, fmt.Errorf("xenbus: %s/%s = %q: %w", fe.dir, node, v, ErrBadNode)
	}
	return n, nil
}

// ReadUint reads node as an unsigned number of at most bits bits (grant
// references and event-channel ports are "%u" of 32 bits).
func (fe *Frontend) ReadUint(node string, bits int) (uint64, error) {
	v, err := fe.Read(node)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(strings.TrimSpace(v), 10, bits)
	if err != nil {
		return 0, fmt.Errorf("xenbus: %s/%s = %q: %w", fe.dir, node, v, ErrBadNode)
	}
	return n, nil
}

// State is the frontend's current state (StateUnknown if it is missing
// or malformed).
func (fe *Frontend) State() State {
	v, err := fe.Read("state")
	if err != nil {
		return StateUnknown
	}
	return ParseState(v)
}

// ReadBackend returns the value of node in the backend directory.
func (fe *Frontend) ReadBackend(node string) (string, error) {
	return fe.h.Store().ReadString(fe.bdir + "/" + node)
}

// WriteBackend writes node in the backend directory (readable, not
// writable, by the guest: the node inherits the directory's
// permissions).
func (fe *Frontend) WriteBackend(node, value string) error {
	return fe.h.Store().WriteString(fe.bdir+"/"+node, value)
}

// WriteBackendNodes writes several backend nodes in one transaction, so
// that a frontend reading them after a watch fires sees all or none (as
// blkback's connect writes sectors, info and sector-size).
func (fe *Frontend) WriteBackendNodes(nodes map[string]string) error {
	return fe.h.Store().Transaction(func(tx *xenstore.Tx) error {
		for k, v := range nodes {
			if err := tx.WriteString(fe.bdir+"/"+k, v); err != nil {
				return err
			}
		}
		return nil
	})
}

// MapGrant reads a grant reference from the frontend node refNode (such
// as "ring-ref") and maps it. The caller unmaps it in Disconnect.
func (fe *Frontend) MapGrant(refNode string, readonly bool) (*gnttab.Mapping, error) {
	ref, err := fe.ReadUint(refNode, 32)
	if err != nil {
		return nil, err
	}
	m, err := fe.h.Grants().MapGrant(fe.h.DomID(), uint32(ref), readonly)
	if err != nil {
		return nil, fmt.Errorf("xenbus: map %s/%s (gref %d): %w", fe.dir, refNode, ref, err)
	}
	return m, nil
}

// BindEvent reads the guest's event-channel port from the frontend node
// portNode (such as "event-channel") and binds domain 0's end to it. The
// caller closes the endpoint in Disconnect.
func (fe *Frontend) BindEvent(portNode string, h evtchn.Handler) (*evtchn.Endpoint, error) {
	port, err := fe.ReadUint(portNode, 32)
	if err != nil {
		return nil, err
	}
	ep, err := fe.h.Events().BindBackend(uint32(port), h)
	if err != nil {
		return nil, fmt.Errorf("xenbus: bind %s/%s (port %d): %w", fe.dir, portNode, port, err)
	}
	return ep, nil
}
