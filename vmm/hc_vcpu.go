package vmm

import (
	"encoding/binary"
	"time"

	"github.com/xenvmm/xenvmm/xenabi/abi"
	"github.com/xenvmm/xenvmm/xenabi/guestmem"
)

// hcVCPUOp: HYPERVISOR_vcpu_op(cmd, vcpuid, arg) (vcpu.h).
func (v *VCPU) hcVCPUOp(a hcArgs) uint64 {
	cmd, id := a[0], a[1]
	v.d.trace.count(abi.HYPERVISOR_vcpu_op, cmd)
	if id >= uint64(len(v.d.vcpus)) {
		return errno(abi.ENOENT)
	}
	target := v.d.vcpus[id]
	switch cmd {
	case abi.VCPUOP_is_up:
		if target.online {
			return 1
		}
		return 0
	case abi.VCPUOP_register_vcpu_info:
		if target != v {
			return errno(abi.EINVAL)
		}
		var b [16]byte
		if err := v.copyFrom(a[2], b[:]); err != nil {
			return errno(abi.EFAULT)
		}
		mfn, off := binary.LittleEndian.Uint64(b[0:]), uint64(binary.LittleEndian.Uint32(b[8:]))
		if !v.d.isRAM(mfn) || off+abi.VCPUInfoSize > guestmem.PageSize || off%8 != 0 {
			return errno(abi.EINVAL)
		}
		if v.vcpuInfoMoved {
			return errno(abi.EINVAL) // Xen allows it once
		}
		newGPA := mfn*guestmem.PageSize + off
		old := v.vcpuInfo()
		dst, err := v.d.space.Slice(newGPA, abi.VCPUInfoSize)
		if err != nil {
			return errno(abi.EINVAL)
		}
		copy(dst, old)
		// Xen marks all event selector bits pending after the move so
		// that nothing is lost.
		binary.LittleEndian.PutUint64(dst[abi.VCPUInfoPendingSel:], ^uint64(0))
		dst[abi.VCPUInfoUpcallPending] = 1
		v.vcpuInfoGPA = newGPA
		v.vcpuInfoMoved = true
		v.d.events.VCPUInfoMoved(v.id)
		v.refreshTime()
		return 0
	case abi.VCPUOP_register_runstate_memory_area:
		va, err := v.read64(a[2])
		if err != nil {
			return errno(abi.EFAULT)
		}
		target.runstateVA = va
		target.updateRunstate(abi.RUNSTATE_running)
		return 0
	case abi.VCPUOP_register_vcpu_time_memory_area:
		va, err := v.read64(a[2])
		if err != nil {
			return errno(abi.EFAULT)
		}
		if target != v {
			return errno(abi.EINVAL)
		}
		v.timeVA = va
		v.refreshTime()
		return 0
	case abi.VCPUOP_get_runstate_info:
		b := target.runstateInfo(abi.RUNSTATE_running)
		if err := v.copyTo(a[2], b[:]); err != nil {
			return errno(abi.EFAULT)
		}
		return 0
	case abi.VCPUOP_set_periodic_timer:
		if target != v {
			return errno(abi.EINVAL)
		}
		p, err := v.read64(a[2])
		if err != nil {
			return errno(abi.EFAULT)
		}
		if p < uint64(time.Millisecond) {
			return errno(abi.EINVAL)
		}
		v.setPeriodic(time.Duration(p))
		return 0
	case abi.VCPUOP_stop_periodic_timer:
		if target != v {
			return errno(abi.EINVAL)
		}
		v.stopPeriodic()
		return 0
	case abi.VCPUOP_set_singleshot_timer:
		if target != v {
			return errno(abi.EINVAL)
		}
		var b [16]byte
		if err := v.copyFrom(a[2], b[:]); err != nil {
			return errno(abi.EFAULT)
		}
		deadline, flags := binary.LittleEndian.Uint64(b[0:]), binary.LittleEndian.Uint32(b[8:])
		if flags&abi.VCPU_SSHOTTMR_future != 0 && deadline < v.d.clock.now() {
			return errno(abi.ETIME)
		}
		v.setSingleshot(deadline)
		return 0
	case abi.VCPUOP_stop_singleshot_timer:
		if target != v {
			return errno(abi.EINVAL)
		}
		v.stopSingleshot()
		return 0
	case abi.VCPUOP_initialise, abi.VCPUOP_up, abi.VCPUOP_down:
		return v.vcpuLifecycle(cmd, target, a[2])
	case abi.VCPUOP_get_physid, abi.VCPUOP_send_nmi:
		return errno(abi.ENOSYS)
	}
	v.d.unknown("vcpu_op " + itoa(cmd))
	return errno(abi.ENOSYS)
}

// runstateInfo builds struct vcpu_runstate_info: the current state since
// the domain started (xenvmm does not yet account runnable/blocked time
// separately).
func (v *VCPU) runstateInfo(state uint32) [abi.RunstateInfoSize]byte {
	var b [abi.RunstateInfoSize]byte
	now := v.d.clock.now()
	binary.LittleEndian.PutUint32(b[abi.RunstateInfoState:], state)
	binary.LittleEndian.PutUint64(b[abi.RunstateInfoStateEntryTime:], now)
	binary.LittleEndian.PutUint64(b[abi.RunstateInfoTime+8*abi.RUNSTATE_running:], now)
	return b
}

func (v *VCPU) updateRunstate(state uint32) {
	if v.runstateVA == 0 {
		return
	}
	b := v.runstateInfo(state)
	v.d.space.CopyToVirt(v.cr3Kernel, v.runstateVA, b[:], false)
}

// vcpuLifecycle handles VCPUOP_initialise/up/down (secondary vCPUs).
func (v *VCPU) vcpuLifecycle(cmd uint64, t *VCPU, ctxVA uint64) uint64 {
	switch cmd {
	case abi.VCPUOP_initialise:
		if t.online {
			return errno(abi.EEXIST)
		}
		ctx := make([]byte, abi.VCPUGuestContextSize)
		if err := v.copyFrom(ctxVA, ctx); err != nil {
			return errno(abi.EFAULT)
		}
		if err := t.initialise(ctx); err != nil {
			return errno(abi.EINVAL)
		}
		return 0
	case abi.VCPUOP_up:
		if !t.initialised {
			return errno(abi.EINVAL)
		}
		t.online = true
		t.setPeriodic(defaultPeriodicTimer)
		t.kick()
		return 0
	case abi.VCPUOP_down:
		if t != v {
			return errno(abi.EINVAL)
		}
		return errno(abi.ENOSYS)
	}
	return errno(abi.ENOSYS)
}
