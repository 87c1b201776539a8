package xenstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"syscall"
)

// MsgType is enum xsd_sockmsg_type from xen/include/public/io/xs_wire.h.
type MsgType uint32

// Message types (enum xsd_sockmsg_type, xs_wire.h; numbering in
// docs/misc/xenstore.txt "Defined Xenstore message types").
const (
	TypeControl            MsgType = 0
	TypeDebug              MsgType = TypeControl // deprecated alias of CONTROL
	TypeDirectory          MsgType = 1
	TypeRead               MsgType = 2
	TypeGetPerms           MsgType = 3
	TypeWatch              MsgType = 4
	TypeUnwatch            MsgType = 5
	TypeTransactionStart   MsgType = 6
	TypeTransactionEnd     MsgType = 7
	TypeIntroduce          MsgType = 8
	TypeRelease            MsgType = 9
	TypeGetDomainPath      MsgType = 10
	TypeWrite              MsgType = 11
	TypeMkdir              MsgType = 12
	TypeRm                 MsgType = 13
	TypeSetPerms           MsgType = 14
	TypeWatchEvent         MsgType = 15 // daemon → client only
	TypeError              MsgType = 16 // daemon → client only
	TypeIsDomainIntroduced MsgType = 17
	TypeResume             MsgType = 18
	TypeSetTarget          MsgType = 19
	typeRestrict           MsgType = 20 // removed from the protocol; invalid
	TypeResetWatches       MsgType = 21
	TypeDirectoryPart      MsgType = 22
	TypeGetFeature         MsgType = 23
	TypeSetFeature         MsgType = 24
	TypeGetQuota           MsgType = 25
	TypeSetQuota           MsgType = 26
	TypeCount              MsgType = 27     // XS_TYPE_COUNT
	TypeInvalid            MsgType = 0xffff // XS_INVALID
)

var typeNames = [...]string{
	TypeControl:            "CONTROL",
	TypeDirectory:          "DIRECTORY",
	TypeRead:               "READ",
	TypeGetPerms:           "GET_PERMS",
	TypeWatch:              "WATCH",
	TypeUnwatch:            "UNWATCH",
	TypeTransactionStart:   "TRANSACTION_START",
	TypeTransactionEnd:     "TRANSACTION_END",
	TypeIntroduce:          "INTRODUCE",
	TypeRelease:            "RELEASE",
	TypeGetDomainPath:      "GET_DOMAIN_PATH",
	TypeWrite:              "WRITE",
	TypeMkdir:              "MKDIR",
	TypeRm:                 "RM",
	TypeSetPerms:           "SET_PERMS",
	TypeWatchEvent:         "WATCH_EVENT",
	TypeError:              "ERROR",
	TypeIsDomainIntroduced: "IS_DOMAIN_INTRODUCED",
	TypeResume:             "RESUME",
	TypeSetTarget:          "SET_TARGET",
	typeRestrict:           "RESTRICT",
	TypeResetWatches:       "RESET_WATCHES",
	TypeDirectoryPart:      "DIRECTORY_PART",
	TypeGetFeature:         "GET_FEATURE",
	TypeSetFeature:         "SET_FEATURE",
	TypeGetQuota:           "GET_QUOTA",
	TypeSetQuota:           "SET_QUOTA",
}

// String returns the name xenstored's trace uses for t.
func (t MsgType) String() string {
	if int(t) < len(typeNames) && typeNames[t] != "" {
		return typeNames[t]
	}
	return "UNKNOWN(" + strconv.FormatUint(uint64(t), 10) + ")"
}

// Sizes and limits from xs_wire.h.
const (
	HeaderSize = 16   // sizeof(struct xsd_sockmsg)
	RingSize   = 1024 // XENSTORE_RING_SIZE
	PayloadMax = 4096 // XENSTORE_PAYLOAD_MAX
	AbsPathMax = 3072 // XENSTORE_ABS_PATH_MAX
	RelPathMax = 2048 // XENSTORE_REL_PATH_MAX
)

// Server feature bits advertised in xenstore_domain_interface.server_features
// (xs_wire.h, docs/misc/xenstore-ring.txt).
const (
	FeatureReconnection uint32 = 1 // XENSTORE_SERVER_FEATURE_RECONNECTION
	FeatureError        uint32 = 2 // XENSTORE_SERVER_FEATURE_ERROR
	FeatureWatchDepth   uint32 = 4 // XENSTORE_SERVER_FEATURE_WATCHDEPTH
	FeatureDomidAny     uint32 = 8 // XENSTORE_SERVER_FEATURE_DOMID_ANY

	// SupportedFeatures is every feature this daemon implements.
	SupportedFeatures = FeatureReconnection | FeatureError | FeatureWatchDepth | FeatureDomidAny
)

// Values of xenstore_domain_interface.connection (xs_wire.h).
const (
	StateConnected uint32 = 0 // XENSTORE_CONNECTED
	StateReconnect uint32 = 1 // XENSTORE_RECONNECT
)

// Values of xenstore_domain_interface.error (xs_wire.h).
const (
	ErrorNone    uint32 = 0 // XENSTORE_ERROR_NONE
	ErrorComm    uint32 = 1 // XENSTORE_ERROR_COMM
	ErrorRingIdx uint32 = 2 // XENSTORE_ERROR_RINGIDX
	ErrorProto   uint32 = 3 // XENSTORE_ERROR_PROTO
)

// Domain ids with special meaning (xen/include/public/xen.h).
const (
	DomidSelf uint32 = 0x7FF0 // DOMID_SELF
	DomidAny  uint32 = 0x7FF5 // DOMID_ANY: a permission entry matching every domain
)

// Header mirrors struct xsd_sockmsg (xs_wire.h). On the wire it is four
// native-endian (little-endian on x86) uint32s followed by Len payload bytes.
type Header struct {
	Type  MsgType // XS_???
	ReqID uint32  // request identifier, echoed in the daemon's response
	TxID  uint32  // transaction id (0 if not related to a transaction)
	Len   uint32  // length of the payload following the header
}

// Put writes h into b[:HeaderSize].
func (h Header) Put(b []byte) {
	_ = b[HeaderSize-1]
	binary.LittleEndian.PutUint32(b[0:], uint32(h.Type))
	binary.LittleEndian.PutUint32(b[4:], h.ReqID)
	binary.LittleEndian.PutUint32(b[8:], h.TxID)
	binary.LittleEndian.PutUint32(b[12:], h.Len)
}

// ErrShortHeader is returned by ParseHeader for fewer than HeaderSize bytes.
var ErrShortHeader = errors.New("xenstore: short message header")

// ErrPayloadTooLong is the protocol violation of a header whose len exceeds
// PayloadMax; xenstored drops the connection for it (docs/misc/xenstore.txt).
var ErrPayloadTooLong = errors.New("xenstore: payload longer than XENSTORE_PAYLOAD_MAX")

// ParseHeader decodes a struct xsd_sockmsg from b.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, ErrShortHeader
	}
	return Header{
		Type:  MsgType(binary.LittleEndian.Uint32(b[0:])),
		ReqID: binary.LittleEndian.Uint32(b[4:]),
		TxID:  binary.LittleEndian.Uint32(b[8:]),
		Len:   binary.LittleEndian.Uint32(b[12:]),
	}, nil
}

// Message is one header plus its payload.
type Message struct {
	Header
	Payload []byte
}

// Encode returns the wire form of m; Len is taken from the payload.
func (m Message) Encode() []byte {
	b := make([]byte, HeaderSize+len(m.Payload))
	h := m.Header
	h.Len = uint32(len(m.Payload))
	h.Put(b)
	copy(b[HeaderSize:], m.Payload)
	return b
}

// xsdErrors mirrors the xsd_errors table of xs_wire.h, in its order: error
// replies carry the errno's name, NUL-terminated ("ENOENT\0").
var xsdErrors = [...]struct {
	errno syscall.Errno
	name  string
}{
	{syscall.EINVAL, "EINVAL"},
	{syscall.EACCES, "EACCES"},
	{syscall.EEXIST, "EEXIST"},
	{syscall.EISDIR, "EISDIR"},
	{syscall.ENOENT, "ENOENT"},
	{syscall.ENOMEM, "ENOMEM"},
	{syscall.ENOSPC, "ENOSPC"},
	{syscall.EIO, "EIO"},
	{syscall.ENOTEMPTY, "ENOTEMPTY"},
	{syscall.ENOSYS, "ENOSYS"},
	{syscall.EROFS, "EROFS"},
	{syscall.EBUSY, "EBUSY"},
	{syscall.EAGAIN, "EAGAIN"},
	{syscall.EISCONN, "EISCONN"},
	{syscall.E2BIG, "E2BIG"},
	{syscall.EPERM, "EPERM"},
}

// ErrnoName returns the xsd_errors name of e. Like xenstored's send_error,
// an errno missing from the table is sent as "EINVAL".
func ErrnoName(e syscall.Errno) string {
	for _, x := range xsdErrors {
		if x.errno == e {
			return x.name
		}
	}
	return "EINVAL"
}

// ParseErrno maps an ERROR reply's payload ("ENOENT" with or without the
// trailing NUL) back to the errno.
func ParseErrno(payload []byte) (syscall.Errno, bool) {
	s := string(payload)
	if n := len(s); n > 0 && s[n-1] == 0 {
		s = s[:n-1]
	}
	for _, x := range xsdErrors {
		if x.name == s {
			return x.errno, true
		}
	}
	return 0, false
}

// decoder splits a byte stream into messages. It buffers partial headers
// and payloads, so a message may arrive across any number of feeds.
type decoder struct {
	hdr    [HeaderSize]byte
	nhdr   int
	h      Header
	body   []byte
	inBody bool
}

// feed consumes bytes of p up to the end of the first message completed by
// them. It returns how many bytes it consumed and, when a message is
// complete, that message. A header announcing more than PayloadMax bytes is
// a protocol violation (ErrPayloadTooLong); the decoder is then unusable
// until reset.
func (d *decoder) feed(p []byte) (int, *Message, error) {
	used := 0
	if !d.inBody {
		n := copy(d.hdr[d.nhdr:], p)
		d.nhdr += n
		used += n
		if d.nhdr < HeaderSize {
			return used, nil, nil
		}
		h, _ := ParseHeader(d.hdr[:])
		if h.Len > PayloadMax {
			return used, nil, fmt.Errorf("%w: len %d", ErrPayloadTooLong, h.Len)
		}
		d.h = h
		d.body = make([]byte, 0, h.Len)
		d.inBody = true
	}
	want := int(d.h.Len) - len(d.body)
	n := min(want, len(p)-used)
	d.body = append(d.body, p[used:used+n]...)
	used += n
	if len(d.body) < int(d.h.Len) {
		return used, nil, nil
	}
	m := &Message{Header: d.h, Payload: d.body}
	d.reset()
	return used, m, nil
}

// reset drops any partial message.
func (d *decoder) reset() {
	*d = decoder{}
}

// partial reports whether part of a message has been buffered.
func (d *decoder) partial() bool { return d.nhdr > 0 }
