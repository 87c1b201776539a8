package abi

import (
	"math/bits"
	"strconv"
	"strings"
)

// Feature is a Xen feature flag number: XENFEAT_* in
// xen/include/public/features.h, reported by XENVER_get_features and
// named (without the XENFEAT_ prefix) in XEN_ELFNOTE_FEATURES.
type Feature uint

// The feature flags of xen/include/public/features.h.
const (
	FeatWritablePageTables       Feature = 0  // XENFEAT_writable_page_tables
	FeatWritableDescriptorTables Feature = 1  // XENFEAT_writable_descriptor_tables
	FeatAutoTranslatedPhysmap    Feature = 2  // XENFEAT_auto_translated_physmap
	FeatSupervisorModeKernel     Feature = 3  // XENFEAT_supervisor_mode_kernel
	FeatPAEPgdirAbove4GB         Feature = 4  // XENFEAT_pae_pgdir_above_4gb
	FeatMMUPTUpdatePreserveAD    Feature = 5  // XENFEAT_mmu_pt_update_preserve_ad
	FeatHighmemAssist            Feature = 6  // XENFEAT_highmem_assist
	FeatGnttabMapAvailBits       Feature = 7  // XENFEAT_gnttab_map_avail_bits
	FeatHVMCallbackVector        Feature = 8  // XENFEAT_hvm_callback_vector
	FeatHVMSafePvclock           Feature = 9  // XENFEAT_hvm_safe_pvclock
	FeatHVMPirqs                 Feature = 10 // XENFEAT_hvm_pirqs
	FeatDom0                     Feature = 11 // XENFEAT_dom0
	// 12 was XENFEAT_grant_map_identity, deprecated and commented out in features.h.
	FeatMemoryOpVnodeSupported Feature = 13 // XENFEAT_memory_op_vnode_supported
	FeatARMSMCCCSupported      Feature = 14 // XENFEAT_ARM_SMCCC_supported
	FeatLinuxRSDPUnrestricted  Feature = 15 // XENFEAT_linux_rsdp_unrestricted
	FeatNotDirectMapped        Feature = 16 // XENFEAT_not_direct_mapped
	FeatDirectMapped           Feature = 17 // XENFEAT_direct_mapped
	FeatRunstatePhysArea       Feature = 18 // XENFEAT_runstate_phys_area
	FeatVCPUTimePhysArea       Feature = 19 // XENFEAT_vcpu_time_phys_area
	FeatDMMSIXAllWrites        Feature = 20 // XENFEAT_dm_msix_all_writes
)

// FeatNRSubmaps is XENFEAT_NR_SUBMAPS: the number of 32-bit submaps
// XENVER_get_features reports.
const FeatNRSubmaps = 1

var featureNames = [...]string{
	FeatWritablePageTables:       "writable_page_tables",
	FeatWritableDescriptorTables: "writable_descriptor_tables",
	FeatAutoTranslatedPhysmap:    "auto_translated_physmap",
	FeatSupervisorModeKernel:     "supervisor_mode_kernel",
	FeatPAEPgdirAbove4GB:         "pae_pgdir_above_4gb",
	FeatMMUPTUpdatePreserveAD:    "mmu_pt_update_preserve_ad",
	FeatHighmemAssist:            "highmem_assist",
	FeatGnttabMapAvailBits:       "gnttab_map_avail_bits",
	FeatHVMCallbackVector:        "hvm_callback_vector",
	FeatHVMSafePvclock:           "hvm_safe_pvclock",
	FeatHVMPirqs:                 "hvm_pirqs",
	FeatDom0:                     "dom0",
	FeatMemoryOpVnodeSupported:   "memory_op_vnode_supported",
	FeatARMSMCCCSupported:        "ARM_SMCCC_supported",
	FeatLinuxRSDPUnrestricted:    "linux_rsdp_unrestricted",
	FeatNotDirectMapped:          "not_direct_mapped",
	FeatDirectMapped:             "direct_mapped",
	FeatRunstatePhysArea:         "runstate_phys_area",
	FeatVCPUTimePhysArea:         "vcpu_time_phys_area",
	FeatDMMSIXAllWrites:          "dm_msix_all_writes",
}

// String returns the feature's name as features.h spells it without the
// XENFEAT_ prefix ("writable_page_tables"), the form XEN_ELFNOTE_FEATURES
// uses, or "feature_N" for a number features.h does not define.
func (f Feature) String() string {
	if int(f) < len(featureNames) && featureNames[f] != "" {
		return featureNames[f]
	}
	return "feature_" + strconv.FormatUint(uint64(f), 10)
}

// FeatureByName returns the feature that features.h names name (without
// the XENFEAT_ prefix; case-sensitive, as Xen compares).
func FeatureByName(name string) (Feature, bool) {
	for i, n := range featureNames {
		if n != "" && n == name {
			return Feature(i), true
		}
	}
	return 0, false
}

// FeatureSet is one 32-bit feature submap (xen_feature_info.submap of
// XENVER_get_features, submap_idx 0): bit n set means Feature n. Features
// numbered 32 and up do not fit and are never set.
type FeatureSet uint32

// Has reports whether f is in s.
func (s FeatureSet) Has(f Feature) bool { return f < 32 && s&(1<<f) != 0 }

// With returns s with f added (s itself when f >= 32).
func (s FeatureSet) With(f Feature) FeatureSet {
	if f >= 32 {
		return s
	}
	return s | 1<<f
}

// Features lists the features in s in increasing order.
func (s FeatureSet) Features() []Feature {
	var out []Feature
	for v := uint32(s); v != 0; v &= v - 1 {
		out = append(out, Feature(bits.TrailingZeros32(v)))
	}
	return out
}

// String joins the names of the features in s with '|', the separator of
// XEN_ELFNOTE_FEATURES; the empty set is "".
func (s FeatureSet) String() string {
	fs := s.Features()
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = f.String()
	}
	return strings.Join(names, "|")
}
