package evtchn

import (
	"github.com/xenvmm/xenvmm/xenabi/abi"
	"github.com/xenvmm/xenvmm/xenabi/guestmem"
)

// The 2-level ABI (xen/common/event_2l.c): a pending and a mask bit per
// port in shared_info (evtchn_pending[], evtchn_mask[], arrays of 64-bit
// xen_ulong_t), a selector word per vCPU (vcpu_info.evtchn_pending_sel,
// one bit per bitmap word) and the upcall flag
// (vcpu_info.evtchn_upcall_pending).

func word2L(port uint32) (off uint64, bit uint64) {
	return uint64(port/bitsPerEvtchnWord) * 8, 1 << (port % bitsPerEvtchnWord)
}

// set2L is evtchn_2l_set_pending: set the pending bit; if it was clear
// and the port is unmasked, set the word's selector bit, and if that was
// clear, mark events pending on the vCPU. Pollers are woken whenever the
// pending bit goes from clear to set, masked or not.
func (t *Table) set2L(vcpu, port uint32) {
	si := t.g.SharedInfo()
	off, bit := word2L(port)
	old, err := guestmem.Or64(si, abi.SharedInfoEvtchnPending+off, bit)
	if err != nil || old&bit != 0 {
		return
	}
	mask, err := guestmem.Load64(si, abi.SharedInfoEvtchnMask+off)
	if err == nil && mask&bit == 0 {
		if vi := t.vcpuInfo(vcpu); vi != nil {
			sel := uint64(1) << (port / bitsPerEvtchnWord)
			if oldSel, err := guestmem.Or64(vi, abi.VCPUInfoPendingSel, sel); err == nil && oldSel&sel == 0 {
				t.markEventsPending(vcpu)
			}
		}
	}
	t.checkPollers(port)
}

// clear2L is evtchn_2l_clear_pending.
func (t *Table) clear2L(port uint32) {
	off, bit := word2L(port)
	guestmem.And64(t.g.SharedInfo(), abi.SharedInfoEvtchnPending+off, ^bit)
}

// unmask2L is evtchn_2l_unmask: clear the mask bit; if it was set and the
// port is pending, redo the selector and upcall steps of set2L on the
// port's notify vCPU.
func (t *Table) unmask2L(port uint32) {
	si := t.g.SharedInfo()
	vcpu := t.ch[port].notify
	off, bit := word2L(port)
	old, err := guestmem.And64(si, abi.SharedInfoEvtchnMask+off, ^bit)
	if err != nil || old&bit == 0 {
		return
	}
	if p, err := guestmem.Load64(si, abi.SharedInfoEvtchnPending+off); err != nil || p&bit == 0 {
		return
	}
	if vi := t.vcpuInfo(vcpu); vi != nil {
		sel := uint64(1) << (port / bitsPerEvtchnWord)
		if oldSel, err := guestmem.Or64(vi, abi.VCPUInfoPendingSel, sel); err == nil && oldSel&sel == 0 {
			t.markEventsPending(vcpu)
		}
	}
}

func (t *Table) test2L(base uint64, port uint32) bool {
	if port >= nr2LChannels {
		return false
	}
	off, bit := word2L(port)
	w, err := guestmem.Load64(t.g.SharedInfo(), base+off)
	return err == nil && w&bit != 0
}

// isPending2L is evtchn_2l_is_pending.
func (t *Table) isPending2L(port uint32) bool { return t.test2L(abi.SharedInfoEvtchnPending, port) }

// isMasked2L is evtchn_2l_is_masked: ports beyond the bitmaps are masked.
func (t *Table) isMasked2L(port uint32) bool {
	return port >= nr2LChannels || t.test2L(abi.SharedInfoEvtchnMask, port)
}
