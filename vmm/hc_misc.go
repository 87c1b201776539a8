package vmm

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/xenvmm/xenvmm/vmm/hole"
	"github.com/xenvmm/xenvmm/xenabi/abi"
	"github.com/xenvmm/xenvmm/xenabi/guestmem"
)

// The Xen version xenvmm reports: 4.17, the ABI its headers describe.
const (
	xenMajor = 4
	xenMinor = 17
)

// hcXenVersion: HYPERVISOR_xen_version(cmd, arg) (version.h).
func (v *VCPU) hcXenVersion(a hcArgs) uint64 {
	v.d.trace.count(abi.HYPERVISOR_xen_version, a[0])
	str := func(s string, size int) uint64 {
		b := make([]byte, size)
		copy(b, s)
		if err := v.copyTo(a[1], b); err != nil {
			return errno(abi.EFAULT)
		}
		return 0
	}
	switch a[0] {
	case abi.XENVER_version:
		return xenMajor<<16 | xenMinor
	case abi.XENVER_extraversion:
		return str(".0-xenvmm", 16)
	case abi.XENVER_compile_info:
		b := make([]byte, 64+16+32+32)
		copy(b, "go")
		copy(b[64:], "xenvmm")
		copy(b[80:], "xenvmm")
		copy(b[112:], "unknown")
		if err := v.copyTo(a[1], b); err != nil {
			return errno(abi.EFAULT)
		}
		return 0
	case abi.XENVER_capabilities:
		return str("xen-3.0-x86_64", 1024)
	case abi.XENVER_changeset:
		return str("xenvmm", 64)
	case abi.XENVER_platform_parameters:
		if err := v.write64(a[1], hole.VirtStart); err != nil {
			return errno(abi.EFAULT)
		}
		return 0
	case abi.XENVER_get_features:
		var b [8]byte
		if err := v.copyFrom(a[1], b[:4]); err != nil {
			return errno(abi.EFAULT)
		}
		if binary.LittleEndian.Uint32(b[:4]) >= abi.FeatNRSubmaps {
			return errno(abi.EINVAL)
		}
		// What Xen reports to a 64-bit PV domU (common/kernel.c).
		submap := uint32(1<<abi.FeatMemoryOpVnodeSupported | 1<<abi.FeatMMUPTUpdatePreserveAD |
			1<<abi.FeatHighmemAssist | 1<<abi.FeatGnttabMapAvailBits)
		binary.LittleEndian.PutUint32(b[4:], submap)
		if err := v.copyTo(a[1]+4, b[4:8]); err != nil {
			return errno(abi.EFAULT)
		}
		return 0
	case abi.XENVER_pagesize:
		return guestmem.PageSize
	case abi.XENVER_guest_handle:
		b := make([]byte, 16)
		copy(b, v.d.uuid[:])
		if err := v.copyTo(a[1], b); err != nil {
			return errno(abi.EFAULT)
		}
		return 0
	case abi.XENVER_commandline, abi.XENVER_build_id:
		return errno(abi.EPERM)
	}
	return errno(abi.ENOSYS)
}

// hcConsoleIO: HYPERVISOR_console_io(cmd, count, buffer). A release Xen
// refuses it to a domU (-EPERM; XSM's default for CONSOLEIO_write), and
// guests then use their PV console ring, so that is the default. With
// Options.ConsoleIO (a debug Xen's behaviour) writes go to the console,
// which shows what a guest prints before its ring works.
func (v *VCPU) hcConsoleIO(a hcArgs) uint64 {
	v.d.trace.count(abi.HYPERVISOR_console_io, a[0])
	if !v.d.opts.ConsoleIO {
		return errno(abi.EPERM)
	}
	switch a[0] {
	case abi.CONSOLEIO_write:
		n := a[1]
		if n > 1<<20 {
			return errno(abi.EINVAL)
		}
		buf := make([]byte, n)
		if err := v.copyFrom(a[2], buf); err != nil {
			return errno(abi.EFAULT)
		}
		v.d.con.write(buf)
		return 0
	case abi.CONSOLEIO_read:
		return 0
	}
	return errno(abi.ENOSYS)
}

// hcSchedOp: HYPERVISOR_sched_op(cmd, arg) (sched.h).
func (v *VCPU) hcSchedOp(a hcArgs) uint64 {
	v.d.trace.count(abi.HYPERVISOR_sched_op, a[0])
	switch a[0] {
	case abi.SCHEDOP_yield:
		v.yield()
		return 0
	case abi.SCHEDOP_block:
		v.block()
		return 0
	case abi.SCHEDOP_shutdown:
		var b [4]byte
		if err := v.copyFrom(a[1], b[:]); err != nil {
			return errno(abi.EFAULT)
		}
		return v.shutdown(binary.LittleEndian.Uint32(b[:]))
	case abi.SCHEDOP_shutdown_code:
		var b [4]byte
		if err := v.copyFrom(a[1], b[:]); err != nil {
			return errno(abi.EFAULT)
		}
		v.d.mu.Lock()
		v.d.shutdownCode = int(binary.LittleEndian.Uint32(b[:]))
		v.d.mu.Unlock()
		return 0
	case abi.SCHEDOP_poll:
		var b [abi.SchedPollSize]byte
		if err := v.copyFrom(a[1], b[:]); err != nil {
			return errno(abi.EFAULT)
		}
		return v.poll(binary.LittleEndian.Uint64(b[0:]), uint64(binary.LittleEndian.Uint32(b[8:])), binary.LittleEndian.Uint64(b[16:]))
	case abi.SCHEDOP_remote_shutdown, abi.SCHEDOP_pin_override:
		return errno(abi.EPERM)
	case abi.SCHEDOP_watchdog:
		return errno(abi.ENOSYS)
	}
	return errno(abi.ENOSYS)
}

// hcSchedOpCompat: sched_op_compat(cmd, arg) — the shutdown reason is
// the argument itself.
func (v *VCPU) hcSchedOpCompat(a hcArgs) uint64 {
	v.d.trace.count(abi.HYPERVISOR_sched_op_compat, a[0])
	switch a[0] {
	case abi.SCHEDOP_yield:
		v.yield()
		return 0
	case abi.SCHEDOP_block:
		v.block()
		return 0
	case abi.SCHEDOP_shutdown:
		return v.shutdown(uint32(a[1]))
	}
	return errno(abi.ENOSYS)
}

func (v *VCPU) shutdown(reason uint32) uint64 {
	if reason > abi.SHUTDOWN_MAX {
		return errno(abi.EINVAL)
	}
	if reason == abi.SHUTDOWN_suspend {
		// Suspend/resume is not supported: the guest sees the
		// suspend cancelled (return 1 with SUSPEND_CANCEL).
		return 1
	}
	v.d.shutdown(Exit{Reason: int(reason)})
	v.fatal = stopError{}
	return 0
}

// yield gives the host CPU away briefly.
func (v *VCPU) yield() {
	select {
	case <-v.wake:
	case <-time.After(50 * time.Microsecond):
	}
}

// block waits with events enabled until one is pending (SCHEDOP_block:
// local_event_delivery_enable, then wait).
func (v *VCPU) block() {
	info := v.vcpuInfo()
	info[abi.VCPUInfoUpcallMask] = 0
	v.updateRunstate(abi.RUNSTATE_blocked)
	defer func() {
		v.updateRunstate(abi.RUNSTATE_running)
		v.refreshTime()
	}()
	for !v.d.stopped() {
		if p, _ := guestmem.Load8(info, abi.VCPUInfoUpcallPending); p != 0 {
			return
		}
		select {
		case <-v.wake:
		case <-v.d.done:
			return
		}
	}
}

// poll waits until one of the ports is pending or the deadline (system
// time, 0 = none) passes (SCHEDOP_poll).
func (v *VCPU) poll(portsVA, n, timeout uint64) uint64 {
	if n > 128 {
		return errno(abi.EINVAL)
	}
	ports := make([]uint32, n)
	for i := range ports {
		var b [4]byte
		if err := v.copyFrom(portsVA+uint64(i)*4, b[:]); err != nil {
			return errno(abi.EFAULT)
		}
		ports[i] = binary.LittleEndian.Uint32(b[:])
	}
	var deadline <-chan time.Time
	if timeout != 0 {
		t := time.NewTimer(v.d.clock.until(timeout))
		defer t.Stop()
		deadline = t.C
	}
	defer v.d.events.StopPoll(v.id)
	for !v.d.stopped() {
		ready, err := v.d.events.Poll(v.id, ports)
		if err != nil {
			var e abi.Errno
			if errors.As(err, &e) {
				return errno(e)
			}
			return errno(abi.EINVAL)
		}
		if ready {
			return 0
		}
		select {
		case <-v.wake:
		case <-deadline:
			return 0
		case <-v.d.done:
			return 0
		}
	}
	return 0
}

// hcSetTimerOp: HYPERVISOR_set_timer_op(timeout): the singleshot timer in
// system time, 0 to stop. Xen's "Linux workaround": a deadline in the
// past or absurdly far in the future becomes now + 100 ms.
func (v *VCPU) hcSetTimerOp(a hcArgs) uint64 {
	v.d.trace.count(abi.HYPERVISOR_set_timer_op, 0)
	if a[0] == 0 {
		v.stopSingleshot()
		return 0
	}
	deadline := a[0]
	if int64(deadline) < 0 || deadline>>50 != 0 {
		deadline = v.d.clock.now() + uint64(100*time.Millisecond)
	}
	v.setSingleshot(deadline)
	return 0
}

// hcMulticall: HYPERVISOR_multicall(call_list, nr_calls).
func (v *VCPU) hcMulticall(a hcArgs) uint64 {
	v.d.trace.count(abi.HYPERVISOR_multicall, 0)
	if a[1] > 1<<16 {
		return errno(abi.EINVAL)
	}
	for i := uint64(0); i < a[1]; i++ {
		va := a[0] + i*abi.MulticallEntrySize
		var b [abi.MulticallEntrySize]byte
		if err := v.copyFrom(va, b[:]); err != nil {
			return errno(abi.EFAULT)
		}
		op := binary.LittleEndian.Uint64(b[0:])
		var args hcArgs
		for j := range args {
			args[j] = binary.LittleEndian.Uint64(b[16+8*j:])
		}
		var res uint64
		if op == abi.HYPERVISOR_iret || op == abi.HYPERVISOR_multicall {
			res = errno(abi.EINVAL)
		} else {
			res = v.call(op, args)
		}
		if err := v.write64(va+8, res); err != nil {
			return errno(abi.EFAULT)
		}
		if v.fatal != nil {
			break
		}
	}
	return 0
}
