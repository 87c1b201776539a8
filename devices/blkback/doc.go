// Package blkback is xenvmm's virtual block device backend: the domain-0
// half of Xen's split block driver, which Linux's xen-blkfront and
// NetBSD's xbd talk to as if it were Linux's xen-blkback.
//
// Specification: xen/include/public/io/blkif.h (the xenbus nodes, the
// request and response structs, BLKIF_OP_*, BLKIF_RSP_*, VDISK_*),
// io/ring.h through package devices/ring, and io/protocols.h for the
// "protocol" node. Where the header is silent the behaviour follows
// Linux's drivers/block/xen-blkback (which checks it applies to a request
// and which status a failed one gets) and what xen-blkfront and NetBSD's
// xbd_xenbus.c expect of a backend.
//
// The layers, each usable on its own:
//
//   - request.go: the wire formats. ParseRequest copies one ring slot
//     into a Request (native x86_64 or the x86_32 layout that 32-bit
//     guests use, see Protocol); PutResponse writes a response slot.
//   - store.go: Store, the backing store, and OpenStore, which opens a
//     config.Disk's target: a regular file (raw image, sparse or not) or a
//     host block device, read-only or writable, optionally with O_DIRECT.
//   - queue.go: Queue, one ring's request engine. It consumes requests,
//     checks them (segments, sector ranges, access mode), runs several at
//     once against the Store with the data moving straight between the
//     mapped guest pages and the host file (preadv/pwritev), orders
//     flushes and barriers after the writes before them, and answers each
//     request exactly once.
//   - device.go: Device, the xenbus device ("vbd"): the backend nodes, and
//     Connect/Disconnect, which read the frontend's ring references, event
//     channels and protocol, map the rings and start one Queue per ring.
//
// blktest (a subpackage) plays the guest for the tests and benchmarks:
// guest memory with a fake grant table, a frontend on devices/ring's
// Front, and a store that keeps written and synced data apart.
//
// Wiring (the VMM), per config.Disk d of the domain:
//
//	dev, err := blkback.New(d, blkback.Options{Log: log})
//	err = bus.Add(dev, dev.DevID(), dev.FrontendNodes())
//
// where bus is the domain's xenbus.Bus (its Host gives the grant table,
// the event-channel table and xenstore). The Bus writes the backend
// nodes, calls Connect when the frontend is Initialised, Disconnect when
// it closes, and Close (which closes the image) when the device is
// removed or the bus closed.
//
// Durability contract: a write is answered only after pwritev returned
// all its bytes (the data is in the host kernel, so it survives the
// VMM being killed), and a flush or barrier only after fdatasync returned
// for every write answered before it. A host I/O error answers
// BLKIF_RSP_ERROR and is logged; the guest and the VMM go on.
package blkback
