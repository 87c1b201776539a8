package evtchn

import (
	"encoding/binary"

	"github.com/xenvmm/xenvmm/xenabi/abi"
)

// Argument structures of the event-channel hypercalls, mirroring the C
// structs of xen/include/public/event_channel.h one-to-one (x86-64 layout;
// explicit padding fields stand where the C compiler inserts padding). Each
// has decode (from the guest's argument bytes) and encode (the OUT fields
// back into them) working on explicit little-endian offsets, so the hot
// paths (send, unmask) do no reflection. args_test.go checks every layout
// against encoding/binary and the sizes a C compiler printed for these
// headers.

var le = binary.LittleEndian

// Sizes of the argument structs (x86-64), as printed by a C program built
// against xen/include/public/event_channel.h.
const (
	AllocUnboundSize    = 8
	BindInterdomainSize = 12
	BindVIRQSize        = 12
	BindPIRQSize        = 12
	BindIPISize         = 8
	CloseSize           = 4
	SendSize            = 4
	StatusSize          = 24
	BindVCPUSize        = 8
	UnmaskSize          = 4
	ResetSize           = 2
	InitControlSize     = 24
	ExpandArraySize     = 8
	SetPrioritySize     = 8

	// CompatOpSize is sizeof(struct evtchn_op): uint32_t cmd, then the
	// union at offset 4 (its largest member is struct evtchn_status).
	CompatOpSize   = 28
	compatUnionOff = 4

	// ControlBlockSize is sizeof(struct evtchn_fifo_control_block):
	// uint32_t ready, _rsvd; uint32_t head[EVTCHN_FIFO_MAX_QUEUES].
	ControlBlockSize  = 72
	controlBlockReady = 0
	controlBlockHead  = 8

	eventWordSize      = 4 // sizeof(event_word_t)
	eventWordsPerPage  = abi.XEN_PAGE_SIZE / eventWordSize
	maxEventArrayPages = abi.EVTCHN_FIFO_NR_CHANNELS / eventWordsPerPage

	// BITS_PER_EVTCHN_WORD: the 2-level bitmaps are arrays of xen_ulong_t,
	// 64 bits on x86-64, which gives EVTCHN_2L_NR_CHANNELS = 64*64.
	bitsPerEvtchnWord = 64
	nr2LChannels      = abi.NR_EVENT_CHANNELS_2L

	// NR_VIRQS (xen.h); abi does not export it.
	nrVIRQs = 24
)

// BIND_PIRQ__WILL_SHARE (event_channel.h), a flag of struct
// evtchn_bind_pirq; abi does not export it.
const BindPIRQWillShare = 1

// AllocUnbound mirrors struct evtchn_alloc_unbound (event_channel.h).
type AllocUnbound struct {
	Dom, RemoteDom uint16 // IN
	Port           uint32 // OUT
}

func (a *AllocUnbound) decode(b []byte) {
	a.Dom, a.RemoteDom, a.Port = le.Uint16(b[0:]), le.Uint16(b[2:]), le.Uint32(b[4:])
}
func (a *AllocUnbound) encode(b []byte) { le.PutUint32(b[4:], a.Port) }

// BindInterdomain mirrors struct evtchn_bind_interdomain (event_channel.h).
type BindInterdomain struct {
	RemoteDom  uint16 // IN
	_          [2]byte
	RemotePort uint32 // IN
	LocalPort  uint32 // OUT
}

func (a *BindInterdomain) decode(b []byte) {
	a.RemoteDom, a.RemotePort, a.LocalPort = le.Uint16(b[0:]), le.Uint32(b[4:]), le.Uint32(b[8:])
}
func (a *BindInterdomain) encode(b []byte) { le.PutUint32(b[8:], a.LocalPort) }

// BindVIRQ mirrors struct evtchn_bind_virq (event_channel.h).
type BindVIRQ struct {
	VIRQ uint32 // IN: enum virq
	VCPU uint32 // IN
	Port uint32 // OUT
}

func (a *BindVIRQ) decode(b []byte) {
	a.VIRQ, a.VCPU, a.Port = le.Uint32(b[0:]), le.Uint32(b[4:]), le.Uint32(b[8:])
}
func (a *BindVIRQ) encode(b []byte) { le.PutUint32(b[8:], a.Port) }

// BindPIRQ mirrors struct evtchn_bind_pirq (event_channel.h).
type BindPIRQ struct {
	PIRQ  uint32 // IN
	Flags uint32 // IN: BIND_PIRQ__*
	Port  uint32 // OUT
}

func (a *BindPIRQ) decode(b []byte) {
	a.PIRQ, a.Flags, a.Port = le.Uint32(b[0:]), le.Uint32(b[4:]), le.Uint32(b[8:])
}
func (a *BindPIRQ) encode(b []byte) { le.PutUint32(b[8:], a.Port) }

// BindIPI mirrors struct evtchn_bind_ipi (event_channel.h).
type BindIPI struct {
	VCPU uint32 // IN
	Port uint32 // OUT
}

func (a *BindIPI) decode(b []byte) { a.VCPU, a.Port = le.Uint32(b[0:]), le.Uint32(b[4:]) }
func (a *BindIPI) encode(b []byte) { le.PutUint32(b[4:], a.Port) }

// Close mirrors struct evtchn_close (event_channel.h).
type Close struct {
	Port uint32 // IN
}

func (a *Close) decode(b []byte) { a.Port = le.Uint32(b) }

// Send mirrors struct evtchn_send (event_channel.h).
type Send struct {
	Port uint32 // IN
}

func (a *Send) decode(b []byte) { a.Port = le.Uint32(b) }

// Status mirrors struct evtchn_status (event_channel.h). The C union u is
// flattened: U0 is its first 4 bytes (u.unbound.dom and u.interdomain.dom
// in the low 16 bits, or u.pirq, or u.virq), U1 its second 4 bytes
// (u.interdomain.port).
type Status struct {
	Dom    uint16 // IN
	_      [2]byte
	Port   uint32 // IN
	Status uint32 // OUT: EVTCHNSTAT_*
	VCPU   uint32 // OUT
	U0, U1 uint32 // OUT: union u
}

func (a *Status) decode(b []byte) {
	a.Dom, a.Port = le.Uint16(b[0:]), le.Uint32(b[4:])
	a.Status, a.VCPU = le.Uint32(b[8:]), le.Uint32(b[12:])
	a.U0, a.U1 = le.Uint32(b[16:]), le.Uint32(b[20:])
}

// encode writes the OUT fields the status reports. Like Xen, which copies
// back the whole struct it read in and filled in part, the union bytes a
// status does not use keep what the guest passed.
func (a *Status) encode(b []byte) {
	le.PutUint32(b[8:], a.Status)
	le.PutUint32(b[12:], a.VCPU)
	switch a.Status {
	case abi.EVTCHNSTAT_unbound: // u.unbound.dom
		le.PutUint16(b[16:], uint16(a.U0))
	case abi.EVTCHNSTAT_interdomain: // u.interdomain.{dom,port}
		le.PutUint16(b[16:], uint16(a.U0))
		le.PutUint32(b[20:], a.U1)
	case abi.EVTCHNSTAT_pirq, abi.EVTCHNSTAT_virq: // u.pirq, u.virq
		le.PutUint32(b[16:], a.U0)
	}
}

// BindVCPU mirrors struct evtchn_bind_vcpu (event_channel.h).
type BindVCPU struct {
	Port uint32 // IN
	VCPU uint32 // IN
}

func (a *BindVCPU) decode(b []byte) { a.Port, a.VCPU = le.Uint32(b[0:]), le.Uint32(b[4:]) }

// Unmask mirrors struct evtchn_unmask (event_channel.h).
type Unmask struct {
	Port uint32 // IN
}

func (a *Unmask) decode(b []byte) { a.Port = le.Uint32(b) }

// Reset mirrors struct evtchn_reset (event_channel.h).
type Reset struct {
	Dom uint16 // IN
}

func (a *Reset) decode(b []byte) { a.Dom = le.Uint16(b) }

// InitControl mirrors struct evtchn_init_control (event_channel.h).
type InitControl struct {
	ControlGFN uint64 // IN
	Offset     uint32 // IN
	VCPU       uint32 // IN
	LinkBits   uint8  // OUT
	_          [7]byte
}

func (a *InitControl) decode(b []byte) {
	a.ControlGFN, a.Offset, a.VCPU, a.LinkBits = le.Uint64(b[0:]), le.Uint32(b[8:]), le.Uint32(b[12:]), b[16]
}
func (a *InitControl) encode(b []byte) { b[16] = a.LinkBits }

// ExpandArray mirrors struct evtchn_expand_array (event_channel.h).
type ExpandArray struct {
	ArrayGFN uint64 // IN
}

func (a *ExpandArray) decode(b []byte) { a.ArrayGFN = le.Uint64(b) }

// SetPriority mirrors struct evtchn_set_priority (event_channel.h).
type SetPriority struct {
	Port     uint32 // IN
	Priority uint32 // IN
}

func (a *SetPriority) decode(b []byte) { a.Port, a.Priority = le.Uint32(b[0:]), le.Uint32(b[4:]) }
