// Package xenstore is xenvmm's xenstored: an in-process implementation of
// the Xen Store Daemon that the guest's xenbus, the VMM's own backends and
// host tools share.
//
// Specification:
//   - xen/include/public/io/xs_wire.h: message types (enum
//     xsd_sockmsg_type), struct xsd_sockmsg, the xsd_errors table, struct
//     xenstore_domain_interface and its feature/connection/error values;
//   - docs/misc/xenstore.txt: path syntax, permissions, every message's
//     payload and semantics, watches and transactions;
//   - docs/misc/xenstore-ring.txt: the shared ring page, the reconnection and
//     connection-error features;
//   - docs/misc/xenstore-paths.pandoc: the keys a domain's tree holds.
//
// Behaviour where those documents are silent follows Xen's C xenstored
// (tools/xenstored: core.c, transaction.c, watch.c, domain.c, control.c):
// errno choices, permission inheritance and error masking, generation-based
// transaction conflicts, the first watch event on registration, and
// quotas. QEMU's in-process store (hw/i386/kvm/xenstore_impl.c) supplied the
// default limits.
//
// Structure:
//   - Daemon holds the tree and all connection state behind one mutex. Its
//     core is a state machine with no goroutines: requests go in, replies
//     and watch events are queued per connection.
//   - Ring connects a guest through its xenstore_domain_interface page
//     (Daemon.Introduce, Ring.HandleEvent).
//   - SocketServer serves host tools over a Unix socket as domain 0
//     (Daemon.ListenUnix); XENSTORED_PATH=<socket> makes xenstore-utils use it.
//   - Client is the VMM's own privileged connection (Daemon.NewClient), with
//     transactions (Client.Transaction) and channel-based watches.
//   - Client.PopulateDomU writes the tree xl writes for a PV domU.
//
// Domain 0 is privileged: it bypasses permissions and quotas. Every other
// domain is subject to the node permissions and to its Quota.
package xenstore
