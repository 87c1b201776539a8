package netback

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/xenvmm/xenvmm/config"
	"github.com/xenvmm/xenvmm/devices/ring"
	"github.com/xenvmm/xenvmm/devices/tap"
)

const testDom = 7

// fakeGrants is a guest's grant table reduced to what a backend sees:
// grant references naming pages, some read-only. It implements
// GrantCopier with gnttab's checks (domain, reference, range, write
// permission).
type fakeGrants struct {
	mu    sync.Mutex
	pages map[uint32][]byte
	ro    map[uint32]bool
	next  uint32
}

var errBadGrant = errors.New("fake: bad grant")

func newFakeGrants() *fakeGrants {
	return &fakeGrants{pages: map[uint32][]byte{}, ro: map[uint32]bool{}, next: 8}
}

// grant grants a fresh page and returns its reference.
func (g *fakeGrants) grant(readonly bool) (uint32, []byte) {
	g.mu.Lock()
	defer g.mu.Unlock()
	ref := g.next
	g.next++
	p := make([]byte, PageSize)
	g.pages[ref], g.ro[ref] = p, readonly
	return ref, p
}

func (g *fakeGrants) revoke(ref uint32) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.pages, ref)
}

func (g *fakeGrants) page(ref uint32) []byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.pages[ref]
}

func (g *fakeGrants) lookup(dom uint16, ref uint32, off, n int, write bool) ([]byte, error) {
	if dom != testDom {
		return nil, fmt.Errorf("%w: domain %d", errBadGrant, dom)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	p, ok := g.pages[ref]
	if !ok {
		return nil, fmt.Errorf("%w: ref %d", errBadGrant, ref)
	}
	if write && g.ro[ref] {
		return nil, fmt.Errorf("%w: ref %d is read-only", errBadGrant, ref)
	}
	if off < 0 || n < 0 || off+n > PageSize {
		return nil, fmt.Errorf("%w: [%d,+%d) beyond the page", errBadGrant, off, n)
	}
	return p, nil
}

func (g *fakeGrants) CopyFromGrant(dom uint16, ref uint32, off int, dst []byte) error {
	p, err := g.lookup(dom, ref, off, len(dst), false)
	if err == nil {
		copy(dst, p[off:])
	}
	return err
}

func (g *fakeGrants) CopyToGrant(dom uint16, ref uint32, off int, src []byte) error {
	p, err := g.lookup(dom, ref, off, len(src), true)
	if err == nil {
		copy(p[off:], src)
	}
	return err
}

// fakePort is an event channel between the test's frontend and netback.
type fakePort struct {
	kick     func()        // the backend's handler: the guest notifies
	notified chan struct{} // the backend notified the guest
	closed   bool
	mu       sync.Mutex
}

func (p *fakePort) Notify() error {
	select {
	case p.notified <- struct{}{}:
	default:
	}
	return nil
}

func (p *fakePort) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("fake: port closed twice")
	}
	p.closed = true
	return nil
}

// fakeFrontend implements frontendPort: a frontend directory and the
// guest's grants and ports.
type fakeFrontend struct {
	g     *fakeGrants
	nodes map[string]string
	ports map[string]*fakePort

	mu      sync.Mutex
	unmaps  int
	mapFail string // MapRing of this node fails
}

func (f *fakeFrontend) DomID() uint16 { return testDom }

func (f *fakeFrontend) Read(node string) (string, error) {
	v, ok := f.nodes[node]
	if !ok {
		return "", fmt.Errorf("read %s: %w", node, fs.ErrNotExist)
	}
	return v, nil
}

func (f *fakeFrontend) MapRing(node string) ([]byte, func() error, error) {
	if node == f.mapFail {
		return nil, nil, errors.New("fake: map refused")
	}
	s, err := f.Read(node)
	if err != nil {
		return nil, nil, err
	}
	ref, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return nil, nil, err
	}
	p := f.g.page(uint32(ref))
	if p == nil {
		return nil, nil, fmt.Errorf("%w: ring ref %d", errBadGrant, ref)
	}
	return p, func() error {
		f.mu.Lock()
		f.unmaps++
		f.mu.Unlock()
		return nil
	}, nil
}

func (f *fakeFrontend) BindEvent(node string, kick func()) (eventPort, error) {
	if _, err := f.Read(node); err != nil {
		return nil, err
	}
	p := &fakePort{kick: kick, notified: make(chan struct{}, 1)}
	f.ports[node] = p
	return p, nil
}

func (f *fakeFrontend) Grants() GrantCopier { return f.g }

// fakeLink is a Link over channels: frames the test injects are read by
// netback; frames netback writes are recorded.
type fakeLink struct {
	in     chan []byte
	closed chan struct{}
	once   sync.Once

	mu      sync.Mutex
	out     [][]byte
	outC    chan struct{}
	offload []int
	failAt  int // the failAt-th write (1-based) fails
	writes  int
}

func newFakeLink() *fakeLink {
	return &fakeLink{in: make(chan []byte, 1024), closed: make(chan struct{}), outC: make(chan struct{}, 1)}
}

func (l *fakeLink) ReadBatch(bufs [][]byte, sizes []int) (int, error) {
	select {
	case f := <-l.in:
		sizes[0] = copy(bufs[0], f)
	case <-l.closed:
		return 0, tap.ErrClosed
	}
	n := 1
	for n < len(bufs) {
		select {
		case f := <-l.in:
			sizes[n] = copy(bufs[n], f)
			n++
		default:
			return n, nil
		}
	}
	return n, nil
}

func (l *fakeLink) WriteBatch(frames [][]byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, f := range frames {
		l.writes++
		if l.writes == l.failAt {
			return i, errors.New("fake: link refused the frame")
		}
		l.out = append(l.out, append([]byte(nil), f...))
	}
	select {
	case l.outC <- struct{}{}:
	default:
	}
	return len(frames), nil
}

func (l *fakeLink) SetOffload(flags int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.offload = append(l.offload, flags)
	return nil
}

func (l *fakeLink) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

// written waits until n frames have been written and returns them.
func (l *fakeLink) written(t testing.TB, n int) [][]byte {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		l.mu.Lock()
		if len(l.out) >= n {
			out := slices.Clone(l.out)
			l.mu.Unlock()
			return out
		}
		l.mu.Unlock()
		select {
		case <-l.outC:
		case <-deadline:
			t.Fatalf("link: waited for %d frames, have %d", n, len(l.out))
		}
	}
}

func (l *fakeLink) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.out)
}

// netfront is the test's frontend for one queue: it initialises the
// rings, posts TX requests and RX buffers and reads the responses, as
// Linux's netfront and NetBSD's xennet do.
type netfront struct {
	t      testing.TB
	g      *fakeGrants
	fe     *fakeFrontend
	tx     *ring.Front
	rx     *ring.Front
	txRef  uint32
	rxRef  uint32
	rxBuf  map[uint16]uint32 // posted rx id -> gref
	rxSeq  uint16
	nodes  map[string]string
	prefix string // "queue-N/" with several queues
	split  bool   // event-channel-tx and -rx
}

// newNetfront sets up a frontend directory with one queue and a shared
// event channel; features are extra frontend nodes ("" deletes one).
func newNetfront(t testing.TB, features map[string]string) *netfront {
	return newNetfrontQueues(t, features, 1, false)[0]
}

// newNetfrontQueues sets up nq queues (under queue-N/ when nq > 1), with
// split event channels if asked.
func newNetfrontQueues(t testing.TB, features map[string]string, nq int, split bool) []*netfront {
	g := newFakeGrants()
	nodes := map[string]string{"request-rx-copy": "1"}
	fe := &fakeFrontend{g: g, nodes: nodes, ports: map[string]*fakePort{}}
	var out []*netfront
	for i := range nq {
		nf := &netfront{t: t, g: g, fe: fe, nodes: nodes, rxBuf: map[uint16]uint32{}, split: split}
		if nq > 1 {
			nf.prefix = fmt.Sprintf("queue-%d/", i)
			nodes["multi-queue-num-queues"] = strconv.Itoa(nq)
		}
		var txPage, rxPage []byte
		nf.txRef, txPage = g.grant(false)
		nf.rxRef, rxPage = g.grant(false)
		var err error
		if nf.tx, err = ring.NewFront(txPage, TxSlotSize); err != nil {
			t.Fatal(err)
		}
		if nf.rx, err = ring.NewFront(rxPage, RxSlotSize); err != nil {
			t.Fatal(err)
		}
		nodes[nf.prefix+"tx-ring-ref"] = strconv.Itoa(int(nf.txRef))
		nodes[nf.prefix+"rx-ring-ref"] = strconv.Itoa(int(nf.rxRef))
		if split {
			nodes[nf.prefix+"event-channel-tx"] = strconv.Itoa(20 + 2*i)
			nodes[nf.prefix+"event-channel-rx"] = strconv.Itoa(21 + 2*i)
		} else {
			nodes[nf.prefix+"event-channel"] = strconv.Itoa(11 + i)
		}
		out = append(out, nf)
	}
	for k, v := range features {
		if v == "" {
			delete(nodes, k)
		} else {
			nodes[k] = v
		}
	}
	return out
}

// linuxFeatures are the nodes Linux 6.1's netfront writes.
var linuxFeatures = map[string]string{
	"feature-rx-notify": "1", "feature-sg": "1", "feature-gso-tcpv4": "1",
	"feature-gso-tcpv6": "1", "feature-ipv6-csum-offload": "1",
}

// netbsd51Features are those of NetBSD 5.1's xennet: single-slot packets,
// no GSO, IPv4 checksum offload assumed (no feature-no-csum-offload).
var netbsd51Features = map[string]string{"feature-rx-notify": "1"}

func (nf *netfront) txPort() *fakePort {
	if nf.split {
		return nf.fe.ports[nf.prefix+"event-channel-tx"]
	}
	return nf.fe.ports[nf.prefix+"event-channel"]
}

func (nf *netfront) rxPort() *fakePort {
	if nf.split {
		return nf.fe.ports[nf.prefix+"event-channel-rx"]
	}
	return nf.fe.ports[nf.prefix+"event-channel"]
}

// kick notifies the backend on the TX (or shared) port, as
// notify_remote_via_irq after a push.
func (nf *netfront) kick() {
	if p := nf.txPort(); p != nil {
		p.kick()
	}
}

func (nf *netfront) kickRx() {
	if p := nf.rxPort(); p != nil {
		p.kick()
	}
}

// txFrag describes one TX slot the test writes.
type txFrag struct {
	data   []byte
	offset int
	id     uint16
	gref   *uint32 // overrides the granted page's reference
	size   *int    // overrides the request's size field
	flags  uint16  // added to the computed flags
}

// sendTx writes one packet: frags (the first one's size field is the
// total), extras after the first slot, then pushes and kicks.
func (nf *netfront) sendTx(frags []txFrag, extras []ExtraInfo, push bool) {
	total := 0
	for _, f := range frags {
		total += len(f.data)
	}
	slot := func() []byte {
		s := nf.tx.RequestSlot()
		if s == nil {
			nf.t.Fatal("TX ring full")
		}
		return s
	}
	for i, f := range frags {
		ref, page := nf.g.grant(true)
		copy(page[f.offset:], f.data)
		if f.gref != nil {
			ref = *f.gref
		}
		size := len(f.data)
		if i == 0 {
			size = total
		}
		if f.size != nil {
			size = *f.size
		}
		fl := f.flags
		if i < len(frags)-1 {
			fl |= TxfMoreData
		}
		if i == 0 && len(extras) > 0 {
			fl |= TxfExtraInfo
		}
		TxRequest{Gref: ref, Offset: uint16(f.offset), Flags: fl, ID: f.id, Size: uint16(size)}.Encode(slot())
		if i == 0 {
			for j, x := range extras {
				if j < len(extras)-1 {
					x.Flags |= ExtraFlagMore
				}
				b := slot()
				clear(b)
				x.Encode(b)
			}
		}
	}
	if push {
		nf.pushTx()
	}
}

func (nf *netfront) pushTx() {
	if nf.tx.PushRequests() {
		nf.kick()
	}
}

// txResponses waits for n TX responses.
func (nf *netfront) txResponses(n int) []TxResponse {
	nf.t.Helper()
	var out []TxResponse
	deadline := time.After(5 * time.Second)
	for len(out) < n {
		if s, ok := nf.tx.NextResponse(); ok {
			out = append(out, DecodeTxResponse(s))
			continue
		}
		if nf.tx.FinalCheckForResponses() {
			continue
		}
		select {
		case <-nf.txPort().notified:
		case <-deadline:
			nf.t.Fatalf("waited for %d TX responses, have %v", n, out)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return out
}

// postRx posts n receive buffers.
func (nf *netfront) postRx(n int) {
	for range n {
		s := nf.rx.RequestSlot()
		if s == nil {
			nf.t.Fatal("RX ring full")
		}
		ref, _ := nf.g.grant(false)
		id := nf.rxSeq
		nf.rxSeq++
		nf.rxBuf[id] = ref
		RxRequest{ID: id, Gref: ref}.Encode(s)
	}
	if nf.rx.PushRequests() {
		nf.kickRx()
	}
}

// rxPacket is a packet as a frontend reassembles it from RX responses.
type rxPacket struct {
	data   []byte
	flags  uint16 // of the first slot
	gso    *ExtraInfo
	status []int16 // every data slot's status
	slots  int
}

// rxPackets waits for n packets.
func (nf *netfront) rxPackets(n int) []rxPacket {
	nf.t.Helper()
	var out []rxPacket
	var cur *rxPacket
	deadline := time.After(5 * time.Second)
	extraNext := false
	for len(out) < n {
		s, ok := nf.rx.NextResponse()
		if !ok {
			if nf.rx.FinalCheckForResponses() {
				continue
			}
			select {
			case <-nf.rxPort().notified:
			case <-deadline:
				nf.t.Fatalf("waited for %d RX packets, have %d", n, len(out))
			case <-time.After(20 * time.Millisecond):
			}
			continue
		}
		if extraNext {
			x := DecodeExtraInfo(s)
			cur.gso = &x
			cur.slots++
			extraNext = x.Flags&ExtraFlagMore != 0
			continue
		}
		r := DecodeRxResponse(s)
		if cur == nil {
			cur = &rxPacket{flags: r.Flags}
			extraNext = r.Flags&RxfExtraInfo != 0
		}
		cur.slots++
		cur.status = append(cur.status, r.Status)
		if r.Status > 0 {
			ref, ok := nf.rxBuf[r.ID]
			if !ok {
				nf.t.Fatalf("RX response for unknown id %d", r.ID)
			}
			cur.data = append(cur.data, nf.g.page(ref)[r.Offset:int(r.Offset)+int(r.Status)]...)
		}
		if r.Flags&RxfMoreData == 0 && !extraNext {
			out = append(out, *cur)
			cur = nil
		}
	}
	return out
}

// testVif makes a vif over a fake link and connects nf to it.
func testVif(t testing.TB, nf *netfront, o Options) (*Vif, *fakeLink) {
	t.Helper()
	link := newFakeLink()
	o.Link, o.DomID = link, testDom
	v, err := New(config.Vif{MAC: "00:16:3e:00:00:01"}, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	if nf != nil {
		if err := v.connect(context.Background(), nf.fe); err != nil {
			t.Fatal(err)
		}
	}
	return v, link
}

// Frame builders.

var (
	macGuest = []byte{0x00, 0x16, 0x3e, 0, 0, 1}
	macHost  = []byte{0xfe, 0xff, 0xff, 0xff, 0xff, 0xff}
)

func ether(et uint16, payload []byte) []byte {
	f := make([]byte, 14, 14+len(payload))
	copy(f, macHost)
	copy(f[6:], macGuest)
	binary.BigEndian.PutUint16(f[12:], et)
	return append(f, payload...)
}

func fill(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

// ipv4 builds an IPv4 packet (header checksum set) around l4.
func ipv4(proto uint8, l4 []byte) []byte {
	h := make([]byte, 20, 20+len(l4))
	h[0] = 0x45
	binary.BigEndian.PutUint16(h[2:], uint16(20+len(l4)))
	binary.BigEndian.PutUint16(h[4:], 0x1234)
	h[6] = 0x40 // DF
	h[8], h[9] = 64, proto
	copy(h[12:], []byte{10, 0, 0, 2, 10, 0, 0, 1})
	binary.BigEndian.PutUint16(h[10:], ^csumFold(csumAdd(0, h)))
	return append(h, l4...)
}

// ipv6 builds an IPv6 packet around l4.
func ipv6(proto uint8, l4 []byte) []byte {
	h := make([]byte, 40, 40+len(l4))
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(len(l4)))
	h[6], h[7] = proto, 64
	h[8], h[23] = 0xfd, 2
	h[24], h[39] = 0xfd, 1
	return append(h, l4...)
}

func tcp(payload []byte, seq uint32, flags byte) []byte {
	h := make([]byte, 20, 20+len(payload))
	binary.BigEndian.PutUint16(h[0:], 40000)
	binary.BigEndian.PutUint16(h[2:], 5001)
	binary.BigEndian.PutUint32(h[4:], seq)
	h[12] = 5 << 4
	h[13] = flags
	binary.BigEndian.PutUint16(h[14:], 65535)
	return append(h, payload...)
}

func udp(payload []byte) []byte {
	h := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(h[0:], 40000)
	binary.BigEndian.PutUint16(h[2:], 5001)
	binary.BigEndian.PutUint16(h[4:], uint16(8+len(payload)))
	return append(h, payload...)
}

// withFullCsum sets the transport checksum of an Ethernet frame.
func withFullCsum(f []byte) []byte {
	h, err := parseHeaders(f)
	if err != nil {
		panic(err)
	}
	binary.BigEndian.PutUint16(f[h.l4+h.csumOffset():], 0)
	c := ^csumFold(csumAdd(h.pseudoHeader(f, h.l4Len), f[h.l4:h.l4+h.l4Len]))
	if c == 0 && h.proto == protoUDP {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(f[h.l4+h.csumOffset():], c)
	return f
}

// withPartialCsum stores the pseudo-header sum, as a sender offloading
// the checksum does.
func withPartialCsum(f []byte) []byte {
	h, err := parseHeaders(f)
	if err != nil {
		panic(err)
	}
	h.setPartialCsum(f)
	return f
}

// csumOK verifies the transport checksum (and the IPv4 header's).
func csumOK(f []byte) error {
	h, err := parseHeaders(f)
	if err != nil {
		return err
	}
	if !h.ipv6 {
		ihl := int(f[h.l3]&0x0f) * 4
		if c := csumFold(csumAdd(0, f[h.l3:h.l3+ihl])); c != 0xffff {
			return fmt.Errorf("IPv4 header checksum sums to %#x", c)
		}
	}
	if c := csumFold(csumAdd(h.pseudoHeader(f, h.l4Len), f[h.l4:h.l4+h.l4Len])); c != 0xffff {
		return fmt.Errorf("transport checksum sums to %#x", c)
	}
	return nil
}

// vnet prefixes a frame with a virtio_net_hdr.
func vnet(h tap.VnetHdr, f []byte) []byte {
	b := make([]byte, tap.VnetHdrLen, tap.VnetHdrLen+len(f))
	h.Encode(b)
	return append(b, f...)
}

var _ io.Closer = (*Vif)(nil)
