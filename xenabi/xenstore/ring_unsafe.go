package xenstore

import (
	"fmt"
	"sync/atomic"
	"unsafe"
)

// Offsets of the fields of struct xenstore_domain_interface (xs_wire.h;
// table in docs/misc/xenstore-ring.txt).
const (
	offReq            = 0
	offRsp            = RingSize
	offReqCons        = 2 * RingSize
	offReqProd        = offReqCons + 4
	offRspCons        = offReqCons + 8
	offRspProd        = offReqCons + 12
	offServerFeatures = offReqCons + 16
	offConnection     = offReqCons + 20
	offError          = offReqCons + 24
	offEvtchnPort     = offReqCons + 28
	interfaceSize     = offReqCons + 32
)

// ringWords gives atomic access to the index and status words of a
// xenstore_domain_interface that lives in guest memory. Every access is a
// sequentially consistent atomic, which provides the barriers
// xenstored's xen_mb() calls stand for.
type ringWords struct {
	base unsafe.Pointer // &page[0], kept alive by the Ring's page slice
}

func newRingWords(page []byte) (ringWords, error) {
	if len(page) < interfaceSize {
		return ringWords{}, fmt.Errorf("xenstore: ring page of %d bytes, need %d", len(page), interfaceSize)
	}
	p := unsafe.Pointer(unsafe.SliceData(page))
	if uintptr(p)%4 != 0 {
		return ringWords{}, fmt.Errorf("xenstore: ring page not 4-byte aligned")
	}
	return ringWords{base: p}, nil
}

func (w ringWords) word(off uintptr) *uint32 {
	return (*uint32)(unsafe.Add(w.base, off))
}

func (w ringWords) load(off uintptr) uint32     { return atomic.LoadUint32(w.word(off)) }
func (w ringWords) store(off uintptr, v uint32) { atomic.StoreUint32(w.word(off), v) }
