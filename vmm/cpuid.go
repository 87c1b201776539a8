package vmm

import (
	"github.com/xenvmm/xenvmm/vmm/kvm"
)

// cpuidTable is the CPUID a PV guest sees, from both the native
// instruction (KVM_SET_CPUID2) and the forced-emulation prefix
// (`ud2; .ascii "xen"; cpuid`): the host's KVM-supported CPUID filtered
// as Xen filters it for a 64-bit PV guest (no VMX/SVM, no APIC/x2APIC, no
// MONITOR, no XSAVE/AVX since xenvmm does not yet enable CR4.OSXSAVE, no
// PCID/SMEP/SMAP/FSGSBASE that only ring 0 may use, the hypervisor bit),
// plus Xen's leaves at 0x40000000 (Xen's arch/x86/cpuid.c and
// traps.c cpuid_hypervisor_leaves).
type cpuidTable struct {
	entries []kvm.CPUIDEntry
}

// Bits cleared, by (leaf, register).
var (
	clear1ECX = bit(2) | bit(3) | bit(4) | bit(5) | bit(6) | bit(7) | bit(8) | bit(12) | bit(14) | bit(15) |
		bit(17) | bit(18) | bit(21) | bit(24) | bit(26) | bit(27) | bit(28) | bit(29)
	// Leaf 1 EDX: VME, PSE, MCE, APIC, MTRR, PGE, MCA, PSE36, DS, ACPI, TM, PBE.
	clear1EDX = bit(1) | bit(3) | bit(7) | bit(9) | bit(12) | bit(13) | bit(14) | bit(17) | bit(21) | bit(22) | bit(29) | bit(31)
	// Leaf 7.0: FSGSBASE, TSC_ADJUST, AVX2, SMEP, INVPCID, MPX, AVX512*,
	// SMAP, PT; ECX: UMIP, PKU, OSPKE, WAITPKG, AVX512_VBMI2, CET_SS,
	// VAES, VPCLMULQDQ, AVX512 VNNI/BITALG/VPOPCNTDQ, LA57; EDX: AVX512
	// 4VNNIW/4FMAPS, CET_IBT, AMX, AVX512_FP16.
	clear7EBX = bit(0) | bit(1) | bit(5) | bit(7) | bit(10) | bit(14) | bit(16) | bit(17) | bit(20) | bit(21) |
		bit(25) | bit(26) | bit(27) | bit(28) | bit(30) | bit(31)
	clear7ECX = bit(1) | bit(2) | bit(3) | bit(4) | bit(5) | bit(6) | bit(7) | bit(9) | bit(10) | bit(11) |
		bit(12) | bit(14) | bit(16)
	clear7EDX = bit(2) | bit(3) | bit(8) | bit(20) | bit(22) | bit(23) | bit(24) | bit(23)
	// 0x80000001 ECX: SVM; EDX: 1 GiB pages.
	clearExt1ECX  = bit(2)
	clearExt1EDX  = bit(26)
	hypervisorBit = bit(31)
)

func bit(n uint) uint32 { return 1 << n }

// Xen's signature "XenVMMXenVMM" at leaf 0x40000000.
const (
	xenSigEBX = 0x566e6558
	xenSigECX = 0x65584d4d
	xenSigEDX = 0x4d4d566e
	xenBase   = 0x40000000
)

func newCPUIDTable(sys *kvm.System) (*cpuidTable, error) {
	sup, err := sys.SupportedCPUID()
	if err != nil {
		return nil, err
	}
	t := &cpuidTable{}
	for _, e := range sup {
		switch {
		case e.Function >= xenBase && e.Function < xenBase+0x10000:
			continue // KVM's own paravirt leaves: replaced by Xen's
		case e.Function == 1:
			e.ECX = e.ECX&^clear1ECX | hypervisorBit
			e.EDX &^= clear1EDX
			e.EBX &^= 0xff << 24 // initial APIC id
		case e.Function == 6, e.Function == 0xa, e.Function == 0xd, e.Function == 0x8000000a:
			e.EAX, e.EBX, e.ECX, e.EDX = 0, 0, 0, 0
		case e.Function == 7 && e.Index == 0:
			e.EBX &^= clear7EBX
			e.ECX &^= clear7ECX
			e.EDX &^= clear7EDX
		case e.Function == 7:
			e.EAX, e.EBX, e.ECX, e.EDX = 0, 0, 0, 0
		case e.Function == 0x80000001:
			e.ECX &^= clearExt1ECX
			e.EDX &^= clearExt1EDX
		}
		t.entries = append(t.entries, e)
	}
	t.entries = append(t.entries,
		kvm.CPUIDEntry{Function: xenBase, EAX: xenBase + 5, EBX: xenSigEBX, ECX: xenSigECX, EDX: xenSigEDX},
		kvm.CPUIDEntry{Function: xenBase + 1, EAX: xenMajor<<16 | xenMinor},
		kvm.CPUIDEntry{Function: xenBase + 2, EAX: 1, EBX: xenBase},
		kvm.CPUIDEntry{Function: xenBase + 3},
		kvm.CPUIDEntry{Function: xenBase + 4},
		kvm.CPUIDEntry{Function: xenBase + 5},
	)
	return t, nil
}

func (t *cpuidTable) kvmEntries() []kvm.CPUIDEntry { return t.entries }

// lookup answers CPUID leaf/subleaf as the table has it (zeros for a leaf
// it lacks).
func (t *cpuidTable) lookup(leaf, sub uint32) (eax, ebx, ecx, edx uint32) {
	for _, e := range t.entries {
		if e.Function != leaf {
			continue
		}
		if e.Flags&kvm.CPUIDFlagSignificantIndex != 0 && e.Index != sub {
			continue
		}
		return e.EAX, e.EBX, e.ECX, e.EDX
	}
	return 0, 0, 0, 0
}
