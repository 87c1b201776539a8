package netback

import "encoding/binary"

// The wire format of xen/include/public/io/netif.h. Ring slots are
// little-endian; each struct below mirrors its C counterpart field for
// field and is read from (or written to) a slot with Decode/Encode, which
// copy: a slot aliases guest memory the guest may change at any time.

// PageSize is XEN_PAGE_SIZE: the size of the granted buffer behind every
// netif request.
const PageSize = 4096

// Ring slot sizes: sizeof(union netif_tx_sring_entry) (a 12-byte
// netif_tx_request, "Ring slot size is 12 octets") and sizeof(union
// netif_rx_sring_entry) (8 bytes).
const (
	TxSlotSize = 12
	RxSlotSize = 8
)

// NrSlotsMin is XEN_NETIF_NR_SLOTS_MIN: the number of slots per packet
// every backend must accept from a frontend that does not negotiate more.
const NrSlotsMin = 18

// MaxTxSize is XEN_NETIF_MAX_TX_SIZE, the largest packet a tx request can
// describe (its size field is 16 bits).
const MaxTxSize = 0xffff

// NETTXF_* flags of netif_tx_request.flags.
const (
	TxfCsumBlank     = 1 << 0 // NETTXF_csum_blank: checksum field holds only the pseudo-header sum
	TxfDataValidated = 1 << 1 // NETTXF_data_validated: checksum known good
	TxfMoreData      = 1 << 2 // NETTXF_more_data: the packet continues in the next request
	TxfExtraInfo     = 1 << 3 // NETTXF_extra_info: netif_extra_info slots follow
)

// NETRXF_* flags of netif_rx_response.flags.
const (
	RxfDataValidated = 1 << 0 // NETRXF_data_validated
	RxfCsumBlank     = 1 << 1 // NETRXF_csum_blank
	RxfMoreData      = 1 << 2 // NETRXF_more_data
	RxfExtraInfo     = 1 << 3 // NETRXF_extra_info
	RxfGSOPrefix     = 1 << 4 // NETRXF_gso_prefix (deprecated; never sent)
)

// NETIF_RSP_* statuses.
const (
	RspDropped = -2 // NETIF_RSP_DROPPED
	RspError   = -1 // NETIF_RSP_ERROR
	RspOkay    = 0  // NETIF_RSP_OKAY
	RspNull    = 1  // NETIF_RSP_NULL: the response to an extra-info slot
)

// XEN_NETIF_EXTRA_TYPE_*, XEN_NETIF_EXTRA_FLAG_* and XEN_NETIF_GSO_TYPE_*.
const (
	ExtraTypeNone     = 0 // never used: invalid
	ExtraTypeGSO      = 1
	ExtraTypeMcastAdd = 2
	ExtraTypeMcastDel = 3
	ExtraTypeHash     = 4
	ExtraTypeMax      = 5

	ExtraFlagMore = 1 << 0

	GSOTypeNone  = 0
	GSOTypeTCPv4 = 1
	GSOTypeTCPv6 = 2
)

// TxRequest mirrors struct netif_tx_request: {grant_ref_t gref; uint16_t
// offset, flags, id, size;}. In the first request of a packet Size is the
// whole packet's size, in the others the fragment's.
type TxRequest struct {
	Gref   uint32
	Offset uint16
	Flags  uint16
	ID     uint16
	Size   uint16
}

// DecodeTxRequest copies a netif_tx_request out of slot b.
func DecodeTxRequest(b []byte) TxRequest {
	_ = b[11]
	return TxRequest{
		Gref:   binary.LittleEndian.Uint32(b[0:]),
		Offset: binary.LittleEndian.Uint16(b[4:]),
		Flags:  binary.LittleEndian.Uint16(b[6:]),
		ID:     binary.LittleEndian.Uint16(b[8:]),
		Size:   binary.LittleEndian.Uint16(b[10:]),
	}
}

// Encode writes r into slot b (what a frontend does).
func (r TxRequest) Encode(b []byte) {
	_ = b[11]
	binary.LittleEndian.PutUint32(b[0:], r.Gref)
	binary.LittleEndian.PutUint16(b[4:], r.Offset)
	binary.LittleEndian.PutUint16(b[6:], r.Flags)
	binary.LittleEndian.PutUint16(b[8:], r.ID)
	binary.LittleEndian.PutUint16(b[10:], r.Size)
}

// TxResponse mirrors struct netif_tx_response: {uint16_t id; int16_t
// status;} (the rest of the 12-byte slot is unused).
type TxResponse struct {
	ID     uint16
	Status int16
}

// DecodeTxResponse copies a netif_tx_response out of slot b.
func DecodeTxResponse(b []byte) TxResponse {
	_ = b[3]
	return TxResponse{ID: binary.LittleEndian.Uint16(b), Status: int16(binary.LittleEndian.Uint16(b[2:]))}
}

// Encode writes r into slot b.
func (r TxResponse) Encode(b []byte) {
	_ = b[3]
	binary.LittleEndian.PutUint16(b, r.ID)
	binary.LittleEndian.PutUint16(b[2:], uint16(r.Status))
}

// RxRequest mirrors struct netif_rx_request: {uint16_t id, pad;
// grant_ref_t gref;}.
type RxRequest struct {
	ID   uint16
	Gref uint32
}

// DecodeRxRequest copies a netif_rx_request out of slot b.
func DecodeRxRequest(b []byte) RxRequest {
	_ = b[7]
	return RxRequest{ID: binary.LittleEndian.Uint16(b), Gref: binary.LittleEndian.Uint32(b[4:])}
}

// Encode writes r into slot b (pad zero).
func (r RxRequest) Encode(b []byte) {
	_ = b[7]
	binary.LittleEndian.PutUint16(b, r.ID)
	binary.LittleEndian.PutUint16(b[2:], 0)
	binary.LittleEndian.PutUint32(b[4:], r.Gref)
}

// RxResponse mirrors struct netif_rx_response: {uint16_t id, offset,
// flags; int16_t status;}; a non-negative Status is the number of bytes
// in the slot's buffer, from Offset.
type RxResponse struct {
	ID     uint16
	Offset uint16
	Flags  uint16
	Status int16
}

// DecodeRxResponse copies a netif_rx_response out of slot b.
func DecodeRxResponse(b []byte) RxResponse {
	_ = b[7]
	return RxResponse{
		ID:     binary.LittleEndian.Uint16(b),
		Offset: binary.LittleEndian.Uint16(b[2:]),
		Flags:  binary.LittleEndian.Uint16(b[4:]),
		Status: int16(binary.LittleEndian.Uint16(b[6:])),
	}
}

// Encode writes r into slot b.
func (r RxResponse) Encode(b []byte) {
	_ = b[7]
	binary.LittleEndian.PutUint16(b, r.ID)
	binary.LittleEndian.PutUint16(b[2:], r.Offset)
	binary.LittleEndian.PutUint16(b[4:], r.Flags)
	binary.LittleEndian.PutUint16(b[6:], uint16(r.Status))
}

// ExtraInfo mirrors struct netif_extra_info: {uint8_t type, flags; union
// {gso, mcast, hash, uint16_t pad[3]} u;}, 8 bytes, overlaying a tx
// request or an rx response. Data is the union's 6 bytes; the accessors
// read its members.
type ExtraInfo struct {
	Type  uint8
	Flags uint8
	Data  [6]byte
}

// DecodeExtraInfo copies a netif_extra_info out of slot b.
func DecodeExtraInfo(b []byte) ExtraInfo {
	_ = b[7]
	e := ExtraInfo{Type: b[0], Flags: b[1]}
	copy(e.Data[:], b[2:8])
	return e
}

// Encode writes e into slot b (8 bytes; a tx slot's last 4 are padding).
func (e ExtraInfo) Encode(b []byte) {
	_ = b[7]
	b[0], b[1] = e.Type, e.Flags
	copy(b[2:8], e.Data[:])
}

// GSO returns u.gso: {uint16_t size; uint8_t type, pad; uint16_t
// features;}.
func (e ExtraInfo) GSO() (size uint16, typ uint8, features uint16) {
	return binary.LittleEndian.Uint16(e.Data[0:]), e.Data[2], binary.LittleEndian.Uint16(e.Data[4:])
}

// GSOExtra builds an XEN_NETIF_EXTRA_TYPE_GSO extra info.
func GSOExtra(size uint16, typ uint8, flags uint8) ExtraInfo {
	e := ExtraInfo{Type: ExtraTypeGSO, Flags: flags}
	binary.LittleEndian.PutUint16(e.Data[0:], size)
	e.Data[2] = typ
	return e
}

// Mcast returns u.mcast.addr.
func (e ExtraInfo) Mcast() [6]byte { return e.Data }
