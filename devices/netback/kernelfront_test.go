package netback

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/xenvmm/xenvmm/devices/tap"
)

// kernelFront is a network frontend whose "guest kernel" is a real Linux
// network stack: it relays between netback's rings and a tap device in
// another network namespace, translating as xen-netfront does between
// skbs and netif requests (virtio_net_hdr partial checksums and TSO to
// NETTXF_csum_blank and GSO extra info, and back). With it, real TCP
// runs over netback in tests, checksums and segmentation offloads
// included.
type kernelFront struct {
	t    testing.TB
	nf   *netfront
	dev  *tap.Tap
	done chan struct{}
	wg   sync.WaitGroup

	txPages [256][]byte // TX buffer of request id i, granted read-only
	txRefs  [256]uint32
	rxPages [256][]byte // RX buffer of request id i, granted writable
	rxRefs  [256]uint32
	// The RX ring's slot-to-buffer map, as netfront keeps it (it does
	// not use response ids, which extra-info slots overwrite).
	rxShadow [256]uint16
	rxPosted uint32 // requests posted
	rxCons   uint32 // responses consumed

	mu   sync.Mutex
	errs []error
}

func newKernelFront(t testing.TB, nf *netfront, dev *tap.Tap) *kernelFront {
	k := &kernelFront{t: t, nf: nf, dev: dev, done: make(chan struct{})}
	for i := range 256 {
		k.txRefs[i], k.txPages[i] = nf.g.grant(true)
		k.rxRefs[i], k.rxPages[i] = nf.g.grant(false)
	}
	// Post every RX buffer, as netfront fills its ring at connect.
	for i := range 256 {
		k.postRx(uint16(i))
	}
	if nf.rx.PushRequests() {
		nf.kickRx()
	}
	k.wg.Add(2)
	go k.txLoop()
	go k.rxLoop()
	return k
}

func (k *kernelFront) postRx(id uint16) {
	RxRequest{ID: id, Gref: k.rxRefs[id]}.Encode(k.nf.rx.RequestSlot())
	k.rxShadow[k.rxPosted%256] = id
	k.rxPosted++
}

func (k *kernelFront) fail(err error) {
	k.mu.Lock()
	k.errs = append(k.errs, err)
	k.mu.Unlock()
}

// stop ends the relay (close the guest tap first to unblock its reader)
// and returns the first error it met.
func (k *kernelFront) stop() error {
	close(k.done)
	k.dev.Close()
	k.wg.Wait()
	k.mu.Lock()
	defer k.mu.Unlock()
	return errors.Join(k.errs...)
}

func (k *kernelFront) stopped() bool {
	select {
	case <-k.done:
		return true
	default:
		return false
	}
}

// txLoop: frames the guest kernel sends become TX requests.
func (k *kernelFront) txLoop() {
	defer k.wg.Done()
	nf := k.nf
	var free []uint16
	for i := range 256 {
		free = append(free, uint16(i))
	}
	bufs := make([][]byte, 32)
	for i := range bufs {
		bufs[i] = make([]byte, tap.VnetHdrLen+maxFrame)
	}
	sizes := make([]int, len(bufs))
	reap := func() {
		for {
			s, ok := nf.tx.NextResponse()
			if !ok {
				return
			}
			r := DecodeTxResponse(s)
			if r.Status == RspNull {
				continue
			}
			if r.Status != RspOkay {
				k.fail(errors.New("netback refused a TX packet"))
			}
			free = append(free, r.ID)
		}
	}
	for {
		n, err := k.dev.ReadBatch(bufs, sizes)
		if err != nil {
			if !k.stopped() {
				k.fail(err)
			}
			return
		}
		for i := range n {
			hdr, _ := tap.DecodeVnetHdr(bufs[i])
			f := bufs[i][tap.VnetHdrLen:sizes[i]]
			nfrags := (len(f) + PageSize - 1) / PageSize
			gso := hdr.GSOType != tap.VnetGSONone
			slots := nfrags
			if gso {
				slots++
			}
			// Wait for ring slots and buffers, having published what
			// is queued (netfront pushes every packet).
			for int(nf.tx.Free()) < slots || len(free) < nfrags {
				if nf.tx.PushRequests() {
					nf.kick()
				}
				reap()
				if int(nf.tx.Free()) >= slots && len(free) >= nfrags {
					break
				}
				if nf.tx.FinalCheckForResponses() {
					continue
				}
				select {
				case <-nf.txPort().notified:
				case <-time.After(10 * time.Millisecond):
				case <-k.done:
					return
				}
			}
			for j := range nfrags {
				id := free[len(free)-1]
				free = free[:len(free)-1]
				chunk := f[j*PageSize : min(len(f), (j+1)*PageSize)]
				copy(k.txPages[id], chunk)
				r := TxRequest{Gref: k.txRefs[id], ID: id, Size: uint16(len(chunk))}
				if j == 0 {
					r.Size = uint16(len(f))
					if hdr.Flags&tap.VnetFlagNeedsCsum != 0 {
						r.Flags |= TxfCsumBlank | TxfDataValidated
					}
					if gso {
						r.Flags |= TxfExtraInfo
					}
				}
				if j < nfrags-1 {
					r.Flags |= TxfMoreData
				}
				r.Encode(nf.tx.RequestSlot())
				if j == 0 && gso {
					typ := uint8(GSOTypeTCPv4)
					if hdr.GSOType&^tap.VnetGSOECN == tap.VnetGSOTCPv6 {
						typ = GSOTypeTCPv6
					}
					s := nf.tx.RequestSlot()
					clear(s)
					GSOExtra(hdr.GSOSize, typ, 0).Encode(s)
				}
			}
		}
		if nf.tx.PushRequests() {
			nf.kick()
		}
		reap()
	}
}

// rxLoop: packets netback delivers go to the guest kernel, with their
// checksum and GSO state, as netfront's xennet_poll and
// xennet_set_skb_gso do.
func (k *kernelFront) rxLoop() {
	defer k.wg.Done()
	nf := k.nf
	pkt := make([]byte, tap.VnetHdrLen, tap.VnetHdrLen+maxFrame)
	var flags uint16
	var gsoSize uint16
	var gsoType uint8
	inPkt, extraNext, more := false, false, false
	var repost []uint16
	for {
		s, ok := nf.rx.NextResponse()
		if !ok {
			if len(repost) > 0 {
				for _, id := range repost {
					k.postRx(id)
				}
				repost = repost[:0]
				if nf.rx.PushRequests() {
					nf.kickRx()
				}
			}
			if nf.rx.FinalCheckForResponses() {
				continue
			}
			select {
			case <-nf.rxPort().notified:
			case <-time.After(10 * time.Millisecond):
			case <-k.done:
				return
			}
			continue
		}
		id := k.rxShadow[k.rxCons%256]
		k.rxCons++
		repost = append(repost, id)
		if extraNext {
			// The extra-info slot overlays a response: its request's
			// buffer is free again (netfront's xennet_move_rx_slot).
			x := DecodeExtraInfo(s)
			gsoSize, gsoType, _ = x.GSO()
			extraNext = x.Flags&ExtraFlagMore != 0
			if extraNext || more {
				continue
			}
		} else {
			r := DecodeRxResponse(s)
			if r.ID != id {
				k.fail(errors.New("RX response not in its request's slot"))
			}
			if !inPkt {
				inPkt, flags, gsoType, gsoSize = true, r.Flags, 0, 0
				pkt = pkt[:tap.VnetHdrLen]
				extraNext = r.Flags&RxfExtraInfo != 0
			}
			if r.Status < 0 {
				k.fail(errors.New("RX error response"))
			} else {
				pkt = append(pkt, k.rxPages[id][r.Offset:int(r.Offset)+int(r.Status)]...)
			}
			// A packet ends with a data slot without more_data, after
			// its extra-info slots (which follow the first data slot
			// even when that is the only one).
			more = r.Flags&RxfMoreData != 0
			if more || extraNext {
				continue
			}
		}
		inPkt = false
		var hdr tap.VnetHdr
		f := pkt[tap.VnetHdrLen:]
		if flags&RxfCsumBlank != 0 {
			h, err := parseHeaders(f)
			if err != nil {
				k.fail(err)
				continue
			}
			hdr.Flags = tap.VnetFlagNeedsCsum
			hdr.CsumStart, hdr.CsumOffset = uint16(h.l4), uint16(h.csumOffset())
			if gsoType != 0 {
				hdr.GSOType, hdr.GSOSize = tap.VnetGSOTCPv4, gsoSize
				if gsoType == GSOTypeTCPv6 {
					hdr.GSOType = tap.VnetGSOTCPv6
				}
				hdr.HdrLen = uint16(h.l4 + h.tcpHeaderLen(f))
			}
		}
		hdr.Encode(pkt)
		if _, err := k.dev.Write(pkt); err != nil && !k.stopped() {
			k.fail(err)
		}
	}
}
