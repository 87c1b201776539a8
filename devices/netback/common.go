package netback

import (
	"sync/atomic"
)

// GrantCopier is the grant-copy half of domain 0's access to the guest's
// grants (grant_table.h GNTTABOP_copy with GNTCOPY_source_gref or
// GNTCOPY_dest_gref): netback never maps packet buffers, it copies, as
// Linux's netback does. *gnttab.Table implements it.
type GrantCopier interface {
	CopyFromGrant(dom uint16, ref uint32, off int, dst []byte) error
	CopyToGrant(dom uint16, ref uint32, off int, src []byte) error
}

// Link is the host side of a vif: frames, each a virtio_net_hdr
// (tap.VnetHdr) followed by an Ethernet frame. *tap.Tap implements it.
type Link interface {
	// ReadBatch blocks until at least one frame is available, then
	// reads as many as are queued, up to len(bufs); sizes[i] gets the
	// length of bufs[i]'s frame. After Close it returns an error.
	ReadBatch(bufs [][]byte, sizes []int) (int, error)
	// WriteBatch writes each element as one frame; it returns how many
	// were written and stops at the first error.
	WriteBatch(frames [][]byte) (int, error)
	// SetOffload says which partial frames (tap.Offload*) the link may
	// hand to ReadBatch.
	SetOffload(flags int) error
	Close() error
}

// carrierSetter is implemented by links with a carrier (*tap.Tap): off
// while no frontend is connected, as Linux's netback keeps its vif.
type carrierSetter interface {
	SetCarrier(up bool) error
}

// setCarrier sets l's carrier if it has one.
func setCarrier(l Link, up bool) error {
	if c, ok := l.(carrierSetter); ok {
		return c.SetCarrier(up)
	}
	return nil
}

// Stats counts a vif's traffic. Tx is guest to host, Rx host to guest,
// as netif.h names the rings.
type Stats struct {
	TxPackets, TxBytes uint64
	// TxErrors: packets answered NETIF_RSP_ERROR (malformed requests,
	// bad grants, offloads that cannot be honoured).
	TxErrors uint64
	// TxDropped: packets taken from the guest that the link refused.
	TxDropped          uint64
	RxPackets, RxBytes uint64
	// RxErrors: packets whose delivery failed in the guest's buffers
	// (bad grant, reused request id): answered NETIF_RSP_ERROR.
	RxErrors uint64
	// RxDropped: frames the guest could not take (not connected, a frame
	// larger than a page without feature-sg, a GSO type it cannot
	// segment, a broken ring).
	RxDropped uint64
}

// counters is Stats, updated atomically.
type counters struct {
	txPackets, txBytes, txErrors, txDropped atomic.Uint64
	rxPackets, rxBytes, rxErrors, rxDropped atomic.Uint64
}

func (c *counters) snapshot() Stats {
	return Stats{
		TxPackets: c.txPackets.Load(), TxBytes: c.txBytes.Load(), TxErrors: c.txErrors.Load(), TxDropped: c.txDropped.Load(),
		RxPackets: c.rxPackets.Load(), RxBytes: c.rxBytes.Load(), RxErrors: c.rxErrors.Load(), RxDropped: c.rxDropped.Load(),
	}
}

// idSet is the set of request ids answered since responses were last
// pushed: a correct frontend cannot reuse one of them until it has seen
// the response, so a repeat is a malformed request.
type idSet struct {
	bits [1 << 16 / 64]uint64
	used []uint16
}

func (s *idSet) has(id uint16) bool { return s.bits[id/64]&(1<<(id%64)) != 0 }

func (s *idSet) add(id uint16) {
	if !s.has(id) {
		s.bits[id/64] |= 1 << (id % 64)
		s.used = append(s.used, id)
	}
}

func (s *idSet) reset() {
	for _, id := range s.used {
		s.bits[id/64] = 0
	}
	s.used = s.used[:0]
}

// signal wakes a goroutine waiting on c (capacity 1), coalescing as an
// event channel's pending bit does.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
