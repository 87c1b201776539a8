package vmm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/xenvmm/xenvmm/vmm/hole"
	"github.com/xenvmm/xenvmm/xenabi/abi"
	"github.com/xenvmm/xenvmm/xenabi/guestmem"
)

// hcArgs are a hypercall's arguments (64-bit ABI: RDI, RSI, RDX, R10,
// R8, R9; docs/guest-guide/x86/hypercall-abi.rst).
type hcArgs [6]uint64

// hcFunc implements one hypercall; it returns the value for RAX (0 or a
// negated Xen errno, or a positive result).
type hcFunc func(v *VCPU, a hcArgs) uint64

// errno returns the hypercall return value for e.
func errno(e abi.Errno) uint64 { return e.Ret() }

var hypercalls [64]hcFunc

func init() {
	hypercalls = [64]hcFunc{
		abi.HYPERVISOR_set_trap_table:                (*VCPU).hcSetTrapTable,
		abi.HYPERVISOR_mmu_update:                    (*VCPU).hcMMUUpdate,
		abi.HYPERVISOR_set_gdt:                       (*VCPU).hcSetGDT,
		abi.HYPERVISOR_stack_switch:                  (*VCPU).hcStackSwitch,
		abi.HYPERVISOR_set_callbacks:                 (*VCPU).hcSetCallbacks,
		abi.HYPERVISOR_fpu_taskswitch:                (*VCPU).hcFPUTaskswitch,
		abi.HYPERVISOR_sched_op_compat:               (*VCPU).hcSchedOpCompat,
		abi.HYPERVISOR_update_descriptor:             (*VCPU).hcUpdateDescriptor,
		abi.HYPERVISOR_set_debugreg:                  (*VCPU).hcSetDebugreg,
		abi.HYPERVISOR_get_debugreg:                  (*VCPU).hcGetDebugreg,
		abi.HYPERVISOR_memory_op:                     (*VCPU).hcMemoryOp,
		abi.HYPERVISOR_multicall:                     (*VCPU).hcMulticall,
		abi.HYPERVISOR_update_va_mapping:             (*VCPU).hcUpdateVAMapping,
		abi.HYPERVISOR_set_timer_op:                  (*VCPU).hcSetTimerOp,
		abi.HYPERVISOR_event_channel_op_compat:       (*VCPU).hcEventChannelOpCompat,
		abi.HYPERVISOR_xen_version:                   (*VCPU).hcXenVersion,
		abi.HYPERVISOR_console_io:                    (*VCPU).hcConsoleIO,
		abi.HYPERVISOR_physdev_op_compat:             (*VCPU).hcPhysdevOpCompat,
		abi.HYPERVISOR_grant_table_op:                (*VCPU).hcGrantTableOp,
		abi.HYPERVISOR_vm_assist:                     (*VCPU).hcVMAssist,
		abi.HYPERVISOR_update_va_mapping_otherdomain: (*VCPU).hcUpdateVAMappingOtherdomain,
		abi.HYPERVISOR_vcpu_op:                       (*VCPU).hcVCPUOp,
		abi.HYPERVISOR_set_segment_base:              (*VCPU).hcSetSegmentBase,
		abi.HYPERVISOR_mmuext_op:                     (*VCPU).hcMMUExtOp,
		abi.HYPERVISOR_sched_op:                      (*VCPU).hcSchedOp,
		abi.HYPERVISOR_callback_op:                   (*VCPU).hcCallbackOp,
		abi.HYPERVISOR_event_channel_op:              (*VCPU).hcEventChannelOp,
		abi.HYPERVISOR_physdev_op:                    (*VCPU).hcPhysdevOp,
		abi.HYPERVISOR_nmi_op:                        (*VCPU).hcNMIOp,
	}
}

var hypercallNames = map[uint64]string{
	0: "set_trap_table", 1: "mmu_update", 2: "set_gdt", 3: "stack_switch", 4: "set_callbacks",
	5: "fpu_taskswitch", 6: "sched_op_compat", 7: "platform_op", 8: "set_debugreg", 9: "get_debugreg",
	10: "update_descriptor", 12: "memory_op", 13: "multicall", 14: "update_va_mapping",
	15: "set_timer_op", 16: "event_channel_op_compat", 17: "xen_version", 18: "console_io",
	19: "physdev_op_compat", 20: "grant_table_op", 21: "vm_assist", 22: "update_va_mapping_otherdomain",
	23: "iret", 24: "vcpu_op", 25: "set_segment_base", 26: "mmuext_op", 27: "xsm_op", 28: "nmi_op",
	29: "sched_op", 30: "callback_op", 31: "xenoprof_op", 32: "event_channel_op", 33: "physdev_op",
	34: "hvm_op", 35: "sysctl", 36: "domctl", 37: "kexec_op", 38: "tmem_op", 39: "argo_op",
	40: "xenpmu_op", 41: "dm_op", 42: "hypfs_op",
}

// HypercallName names hypercall nr as xen.h does.
func HypercallName(nr uint64) string {
	if n, ok := hypercallNames[nr]; ok {
		return n
	}
	return fmt.Sprintf("hypercall_%d", nr)
}

// errBlocked is returned by handlers that made the vCPU wait; the result
// is already in RAX.
var errHalted = errors.New("vCPU halted")

// hypercall dispatches the hypercall in RAX from guest kernel mode.
func (v *VCPU) hypercall() error {
	nr := v.regs.RAX
	a := hcArgs{v.regs.RDI, v.regs.RSI, v.regs.RDX, v.regs.R10, v.regs.R8, v.regs.R9}
	v.modified = true
	if nr == abi.HYPERVISOR_iret {
		v.d.trace.count(nr, 0)
		return v.iretHypercall()
	}
	v.regs.RAX = v.call(nr, a)
	if v.d.debug {
		v.d.log.Debug("hypercall", "vcpu", v.id, "nr", HypercallName(nr), "args", fmt.Sprintf("%#x", a[:5]), "ret", int64(v.regs.RAX), "rip", fmt.Sprintf("%#x", v.frame.RIP))
	}
	if v.fatal != nil {
		err := v.fatal
		v.fatal = nil
		return err
	}
	return nil
}

// call runs one hypercall (also from a multicall).
func (v *VCPU) call(nr uint64, a hcArgs) uint64 {
	var f hcFunc
	if nr < uint64(len(hypercalls)) {
		f = hypercalls[nr]
	}
	if f == nil {
		v.d.trace.count(nr, 0)
		v.d.unknown(fmt.Sprintf("hypercall %d (%s)", nr, HypercallName(nr)))
		return errno(abi.ENOSYS)
	}
	return f(v, a)
}

// fail records a fatal error from inside a hypercall (the domain is
// killed when the hypercall returns).
func (v *VCPU) fail(format string, args ...any) uint64 {
	if v.fatal == nil {
		v.fatal = fmt.Errorf(format, args...)
	}
	return errno(abi.EINVAL)
}

// unknown logs an unimplemented hypercall or subop, at most once per
// second per name.
func (d *Domain) unknown(what string) {
	d.unknownMu.Lock()
	last, seen := d.unknownSeen[what]
	now := time.Now()
	if seen && now.Sub(last) < time.Second {
		d.unknownMu.Unlock()
		return
	}
	if d.unknownSeen == nil {
		d.unknownSeen = map[string]time.Time{}
	}
	d.unknownSeen[what] = now
	d.unknownMu.Unlock()
	d.log.Warn("unimplemented: answering -ENOSYS", "what", what)
}

// Guest memory access for hypercall arguments, with the guest kernel's
// page tables, as Xen's copy_from_guest does. An address in the
// hypervisor hole is -EFAULT.

func (v *VCPU) guestAddrOK(va, n uint64) bool {
	end := va + n
	if end < va {
		return false
	}
	return !(end > hole.VirtStart && va < hole.VirtEnd)
}

func (v *VCPU) copyFrom(va uint64, p []byte) error {
	if !v.guestAddrOK(va, uint64(len(p))) {
		return guestmem.ErrFault
	}
	return v.d.space.CopyFromVirt(v.currentCR3(), va, p, false)
}

func (v *VCPU) copyTo(va uint64, p []byte) error {
	if !v.guestAddrOK(va, uint64(len(p))) {
		return guestmem.ErrFault
	}
	return v.d.space.CopyToVirt(v.currentCR3(), va, p, false)
}

func (v *VCPU) read64(va uint64) (uint64, error) {
	var b [8]byte
	if err := v.copyFrom(va, b[:]); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b[:]), nil
}

func (v *VCPU) write64(va, val uint64) error {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], val)
	return v.copyTo(va, b[:])
}

// TraceEntry is how often the guest made one hypercall (and subop).
type TraceEntry struct {
	Hypercall string
	Subop     uint64
	Count     uint64
}

type traceKey struct{ nr, sub uint64 }

type tracer struct {
	mu     sync.Mutex
	counts map[traceKey]uint64
}

func newTracer() *tracer { return &tracer{counts: map[traceKey]uint64{}} }

func (t *tracer) count(nr, sub uint64) {
	if t == nil {
		return
	}
	t.mu.Lock()
	t.counts[traceKey{nr, sub}]++
	t.mu.Unlock()
}

func (t *tracer) entries() []TraceEntry {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []TraceEntry
	for k, c := range t.counts {
		out = append(out, TraceEntry{Hypercall: HypercallName(k.nr), Subop: k.sub, Count: c})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		if out[i].Hypercall != out[j].Hypercall {
			return out[i].Hypercall < out[j].Hypercall
		}
		return out[i].Subop < out[j].Subop
	})
	return out
}
