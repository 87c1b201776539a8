package vmm

import (
	"encoding/binary"
	"math/bits"
	"time"

	"github.com/xenvmm/xenvmm/vmm/kvm"
	"github.com/xenvmm/xenvmm/xenabi/abi"
	"github.com/xenvmm/xenvmm/xenabi/guestmem"
)

// Time as a PV guest sees it (xen.h struct vcpu_time_info, struct
// shared_info wallclock; Xen's arch/x86/time.c): system time is
// nanoseconds since the domain was built; each vCPU's vcpu_time_info
// anchors a guest TSC value to a system time and gives the scale from TSC
// ticks to nanoseconds. xenvmm re-anchors it from the host's monotonic
// clock whenever the vCPU wakes and at least every refreshInterval, and
// measures the guest TSC's real rate against the host clock, so the
// guest's clock follows the host's.

const (
	msrTSC          = 0x10
	refreshInterval = 250 * time.Millisecond
	// remeasureInterval is how often the guest TSC's rate is measured
	// again against the host clock.
	remeasureInterval = 2 * time.Second
)

type clock struct {
	start time.Time // system time 0
}

func newClock() *clock { return &clock{start: time.Now()} }

// now is the current system time in nanoseconds.
func (c *clock) now() uint64 { return uint64(time.Since(c.start)) }

// until is how long until system time t (0 if past).
func (c *clock) until(t uint64) time.Duration {
	n := c.now()
	if t <= n {
		return 0
	}
	return time.Duration(t - n)
}

// timeScale is Xen's struct time_scale: ns = ((ticks << shift) * mul) >> 32
// (shift negative: ticks >> -shift).
type timeScale struct {
	mul   uint32
	shift int8
}

// scaleFor computes the TSC-to-nanoseconds scale for a TSC running at
// hz ticks per second, as Xen's set_time_scale does.
func scaleFor(hz uint64) timeScale {
	const second = 1_000_000_000
	if hz == 0 {
		return timeScale{mul: 1 << 31, shift: 1} // 1 tick = 1 ns
	}
	shift := int8(0)
	tps := hz
	for tps > 2*second {
		tps >>= 1
		shift--
	}
	for tps <= second {
		tps <<= 1
		shift++
	}
	return timeScale{mul: uint32((uint64(second) << 32) / tps), shift: shift}
}

func (s timeScale) apply(ticks uint64) uint64 {
	if s.shift < 0 {
		ticks >>= uint(-s.shift)
	} else {
		ticks <<= uint(s.shift)
	}
	hi, lo := mul64(ticks, uint64(s.mul))
	return hi<<32 | lo>>32
}

func mul64(a, b uint64) (hi, lo uint64) {
	const mask32 = 1<<32 - 1
	a0, a1 := a&mask32, a>>32
	b0, b1 := b&mask32, b>>32
	w0 := a0 * b0
	t := a1*b0 + w0>>32
	w1 := t&mask32 + a0*b1
	hi = a1*b1 + t>>32 + w1>>32
	lo = a * b
	return
}

// vcpuClock is one vCPU's time state (owned by its goroutine).
type vcpuClock struct {
	tsc0, ns0   uint64 // first anchor, for measuring the TSC rate
	scale       timeScale
	lastRefresh time.Time
	measured    bool
}

func (c *clock) initVCPU(v *VCPU) {
	hz := uint64(v.tscKHz) * 1000
	v.clk.scale = scaleFor(hz)
	v.refreshTime()
}

// guestTSC reads the vCPU's TSC (KVM_GET_MSRS, on the vCPU's thread).
func (v *VCPU) guestTSC() (uint64, bool) {
	m := []kvm.MSREntry{{Index: msrTSC}}
	if err := v.kv.GetMSRs(m); err != nil {
		return 0, false
	}
	return m[0].Data, true
}

// refreshTime re-anchors vcpu_time_info (and the secondary time area the
// guest registered) with the version protocol: odd while updating.
func (v *VCPU) refreshTime() {
	tsc, ok := v.guestTSC()
	if !ok {
		return
	}
	ns := v.d.clock.now()
	c := &v.clk
	if c.tsc0 == 0 {
		c.tsc0, c.ns0 = tsc, ns
	} else if dn := ns - c.ns0; dn >= uint64(remeasureInterval) && tsc > c.tsc0 {
		// Use the guest TSC's rate measured against the host clock
		// over the last interval (128-bit arithmetic: ticks × 1e9
		// overflows 64 bits after a few seconds).
		hi, lo := bits.Mul64(tsc-c.tsc0, 1_000_000_000)
		if hi < dn {
			hz, _ := bits.Div64(hi, lo, dn)
			c.scale = scaleFor(hz)
			v.d.log.Debug("guest TSC rate measured", "vcpu", v.id, "hz", hz, "kvm_tsc_khz", v.tscKHz, "over", time.Duration(dn))
			c.measured = true
		}
		c.tsc0, c.ns0 = tsc, ns
	}
	c.lastRefresh = time.Now()
	v.lastRefreshNS.Store(c.lastRefresh.UnixNano())
	info := v.vcpuInfo()
	writeTimeInfo(info[abi.VCPUInfoTime:abi.VCPUInfoTime+abi.TimeInfoSize], tsc, ns, c.scale)
	if v.timeVA != 0 {
		var b [abi.TimeInfoSize]byte
		if err := v.d.space.CopyFromVirt(v.cr3Kernel, v.timeVA, b[:], false); err == nil {
			writeTimeInfo(b[:], tsc, ns, c.scale)
			v.d.space.CopyToVirt(v.cr3Kernel, v.timeVA, b[:], false)
		}
	}
}

func writeTimeInfo(t []byte, tsc, ns uint64, s timeScale) {
	ver, _ := guestmem.Load32(t, abi.TimeInfoVersion)
	if ver%2 == 0 {
		ver++ // odd: update in progress
	}
	guestmem.Store32(t, abi.TimeInfoVersion, ver)
	binary.LittleEndian.PutUint64(t[abi.TimeInfoTSCTimestamp:], tsc)
	binary.LittleEndian.PutUint64(t[abi.TimeInfoSystemTime:], ns)
	binary.LittleEndian.PutUint32(t[abi.TimeInfoTSCToSystemMul:], s.mul)
	t[abi.TimeInfoTSCShift] = byte(s.shift)
	// Not XEN_PVCLOCK_TSC_STABLE: re-anchoring may move the
	// extrapolated time back a little, which the guest's pvclock then
	// hides (its last-value check) instead of trusting the TSC.
	t[abi.TimeInfoFlags] = 0
	guestmem.Store32(t, abi.TimeInfoVersion, ver+1)
}

// maybeRefreshTime re-anchors the clock when the last anchor is old.
func (v *VCPU) maybeRefreshTime() {
	if time.Since(v.clk.lastRefresh) >= refreshInterval {
		v.refreshTime()
	}
}

// setWallclock writes shared_info's wallclock: the wall time at system
// time 0, with the version protocol.
func (d *Domain) setWallclock() {
	si := d.sharedInfo
	ver, _ := guestmem.Load32(si, abi.SharedInfoWcVersion)
	ver |= 1
	guestmem.Store32(si, abi.SharedInfoWcVersion, ver)
	boot := d.clock.start
	sec := uint64(boot.Unix())
	binary.LittleEndian.PutUint32(si[abi.SharedInfoWcSec:], uint32(sec))
	binary.LittleEndian.PutUint32(si[abi.SharedInfoWcNsec:], uint32(boot.Nanosecond()))
	binary.LittleEndian.PutUint32(si[abi.SharedInfoWcSecHi:], uint32(sec>>32))
	guestmem.Store32(si, abi.SharedInfoWcVersion, ver+1)
}

// defaultPeriodicTimer is the period Xen gives every new vCPU.
const defaultPeriodicTimer = 10 * time.Millisecond

// Timers: the singleshot timer and the periodic timer raise VIRQ_TIMER on
// their vCPU.

func (v *VCPU) timerFired() {
	if v.d.events != nil {
		v.d.events.RaiseVIRQ(abi.VIRQ_TIMER, v.id)
	}
	v.kick()
}

func (v *VCPU) setSingleshot(deadline uint64) {
	v.stopSingleshot()
	v.timerDeadline = deadline
	v.singleshot = time.AfterFunc(v.d.clock.until(deadline), v.timerFired)
}

func (v *VCPU) stopSingleshot() {
	if v.singleshot != nil {
		v.singleshot.Stop()
		v.singleshot = nil
	}
}

func (v *VCPU) setPeriodic(period time.Duration) {
	v.stopPeriodic()
	t := time.NewTicker(period)
	stop := make(chan struct{})
	v.periodic, v.periodicStop = t, stop
	go func() {
		for {
			select {
			case <-t.C:
				v.timerFired()
			case <-stop:
				return
			case <-v.d.done:
				return
			}
		}
	}()
}

func (v *VCPU) stopPeriodic() {
	if v.periodic != nil {
		v.periodic.Stop()
		close(v.periodicStop)
		v.periodic = nil
	}
}

// timeKeeperInterval is how often every running vCPU's vcpu_time_info is
// refreshed even when the guest makes no exit: guests poll system_time
// in shared memory (NetBSD 5.1's xen_delay spins on it), which Xen
// updates at least once per second (local_time_calibration).
const timeKeeperInterval = 100 * time.Millisecond

// keepTime asks each vCPU to refresh its time info periodically until
// the domain stops.
func (d *Domain) keepTime(done <-chan struct{}) {
	t := time.NewTicker(timeKeeperInterval)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-d.done:
			return
		case <-t.C:
			now := time.Now().UnixNano()
			for _, v := range d.vcpus {
				// Only vCPUs that have run without an exit for a while:
				// the others refreshed their time on the way.
				if !v.online || now-v.lastRefreshNS.Load() < int64(2*timeKeeperInterval) {
					continue
				}
				v.mailbox.Lock()
				v.timeTick = true
				v.mailbox.Unlock()
				v.kv.Kick()
			}
		}
	}
}
