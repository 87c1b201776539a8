package vmm

import (
	"encoding/binary"
	"fmt"

	"github.com/xenvmm/xenvmm/xenabi/abi"
	"github.com/xenvmm/xenvmm/xenabi/evtchn"
	"github.com/xenvmm/xenvmm/xenabi/gnttab"
	"github.com/xenvmm/xenvmm/xenabi/guestmem"
)

// The domain as package evtchn and gnttab see it.

// SharedInfo implements evtchn.Guest.
func (d *Domain) SharedInfo() []byte { return d.sharedInfo }

// VCPUInfo implements evtchn.Guest: where vCPU i's vcpu_info is now.
func (d *Domain) VCPUInfo(i int) []byte {
	if i < 0 || i >= len(d.vcpus) {
		return nil
	}
	b, err := d.space.Slice(d.vcpus[i].vcpuInfoGPA, abi.VCPUInfoSize)
	if err != nil {
		return nil
	}
	return b
}

// NumVCPUs implements evtchn.Guest.
func (d *Domain) NumVCPUs() int { return d.opts.VCPUs }

// Kick implements evtchn.Guest.
func (d *Domain) Kick(i int) {
	if i >= 0 && i < len(d.vcpus) {
		d.vcpus[i].kick()
	}
}

// Page implements evtchn.Guest and gnttab.GuestMemory: a guest RAM
// frame the guest may write (not one of its page tables).
func (d *Domain) Page(gfn uint64) ([]byte, error) {
	if !d.isRAM(gfn) {
		return nil, fmt.Errorf("frame %#x is not the guest's RAM: %w", gfn, guestmem.ErrFault)
	}
	return d.space.Page(gfn)
}

// Frame implements gnttab.Frames: grant-table frames live in the xenheap
// region, shared frames first, then status frames.
func (d *Domain) Frame(kind gnttab.FrameKind, i int) (uint64, []byte, error) {
	var pfn uint64
	switch {
	case kind == gnttab.SharedFrame && i >= 0 && i < maxGrantFrames:
		pfn = d.xenheapPFN + xhGrantFrame + uint64(i)
	case kind == gnttab.StatusFrame && i >= 0 && i < xenheapPages-xhGrantFrame-maxGrantFrames:
		pfn = d.xenheapPFN + xhGrantFrame + maxGrantFrames + uint64(i)
	default:
		return 0, nil, fmt.Errorf("no room for %v frame %d", kind, i)
	}
	p, err := d.space.Page(pfn)
	return pfn, p, err
}

// CopyToGuest implements gnttab.GuestWriter for the calling vCPU.
func (v *VCPU) CopyToGuest(va uint64, b []byte) error { return v.copyTo(va, b) }

func (d *Domain) setupEvents() error {
	var err error
	d.events, err = evtchn.New(d, evtchn.Config{DomID: d.domid, GlobalVIRQs: []uint32{abi.VIRQ_CONSOLE, abi.VIRQ_DOM_EXC}})
	if err != nil {
		return err
	}
	d.grants, err = gnttab.New(gnttab.Config{
		DomID: d.domid, MaxFrames: maxGrantFrames, Frames: d, Memory: d,
		Writable: func(gfn uint64) bool { return d.mmu.typeOf(gfn) == 0 },
	})
	return err
}

// hcEventChannelOp: HYPERVISOR_event_channel_op(cmd, arg).
func (v *VCPU) hcEventChannelOp(a hcArgs) uint64 {
	cmd := uint32(a[0])
	v.d.trace.count(abi.HYPERVISOR_event_channel_op, uint64(cmd))
	n := evtchn.ArgSize(cmd)
	if n == 0 {
		v.d.unknown("event_channel_op " + itoa(uint64(cmd)))
		return errno(abi.ENOSYS)
	}
	arg := make([]byte, n)
	if err := v.copyFrom(a[1], arg); err != nil {
		return errno(abi.EFAULT)
	}
	ret := v.d.events.Hypercall(cmd, arg)
	if ret == 0 {
		if err := v.copyTo(a[1], arg); err != nil {
			return errno(abi.EFAULT)
		}
	}
	return uint64(ret)
}

// hcEventChannelOpCompat: event_channel_op_compat(struct evtchn_op *):
// the whole struct (cmd, then the argument union at offset 4) is copied
// in and, on success, out, as Xen's do_event_channel_op_compat does.
func (v *VCPU) hcEventChannelOpCompat(a hcArgs) uint64 {
	arg := make([]byte, evtchn.CompatOpSize)
	if err := v.copyFrom(a[0], arg); err != nil {
		return errno(abi.EFAULT)
	}
	cmd := binary.LittleEndian.Uint32(arg)
	v.d.trace.count(abi.HYPERVISOR_event_channel_op_compat, uint64(cmd))
	ret := v.d.events.HypercallCompat(arg)
	if ret == 0 {
		if err := v.copyTo(a[0], arg); err != nil {
			return errno(abi.EFAULT)
		}
	}
	return uint64(ret)
}

// hcGrantTableOp: HYPERVISOR_grant_table_op(cmd, uop, count).
func (v *VCPU) hcGrantTableOp(a hcArgs) uint64 {
	v.d.trace.count(abi.HYPERVISOR_grant_table_op, a[0])
	size := gnttab.ArgBytes(a[0], a[2])
	if size > 1<<20 {
		return errno(abi.EINVAL)
	}
	args := make([]byte, size)
	if err := v.copyFrom(a[1], args); err != nil {
		return errno(abi.EFAULT)
	}
	e := v.d.grants.Hypercall(a[0], a[2], args, v)
	if err := v.copyTo(a[1], args); err != nil {
		return errno(abi.EFAULT)
	}
	if e != 0 {
		return errno(e)
	}
	return 0
}
