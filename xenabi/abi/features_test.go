package abi

import (
	"reflect"
	"testing"
)

func TestFeatureNames(t *testing.T) {
	// Numbers and names from xen/include/public/features.h.
	tests := []struct {
		f    Feature
		num  uint
		name string
	}{
		{FeatWritablePageTables, 0, "writable_page_tables"},
		{FeatWritableDescriptorTables, 1, "writable_descriptor_tables"},
		{FeatAutoTranslatedPhysmap, 2, "auto_translated_physmap"},
		{FeatSupervisorModeKernel, 3, "supervisor_mode_kernel"},
		{FeatPAEPgdirAbove4GB, 4, "pae_pgdir_above_4gb"},
		{FeatMMUPTUpdatePreserveAD, 5, "mmu_pt_update_preserve_ad"},
		{FeatHighmemAssist, 6, "highmem_assist"},
		{FeatGnttabMapAvailBits, 7, "gnttab_map_avail_bits"},
		{FeatHVMCallbackVector, 8, "hvm_callback_vector"},
		{FeatHVMSafePvclock, 9, "hvm_safe_pvclock"},
		{FeatHVMPirqs, 10, "hvm_pirqs"},
		{FeatDom0, 11, "dom0"},
		{FeatMemoryOpVnodeSupported, 13, "memory_op_vnode_supported"},
		{FeatARMSMCCCSupported, 14, "ARM_SMCCC_supported"},
		{FeatLinuxRSDPUnrestricted, 15, "linux_rsdp_unrestricted"},
		{FeatNotDirectMapped, 16, "not_direct_mapped"},
		{FeatDirectMapped, 17, "direct_mapped"},
		{FeatRunstatePhysArea, 18, "runstate_phys_area"},
		{FeatVCPUTimePhysArea, 19, "vcpu_time_phys_area"},
		{FeatDMMSIXAllWrites, 20, "dm_msix_all_writes"},
	}
	for _, tt := range tests {
		if uint(tt.f) != tt.num {
			t.Errorf("%s = %d, want %d", tt.name, tt.f, tt.num)
		}
		if got := tt.f.String(); got != tt.name {
			t.Errorf("Feature(%d).String() = %q, want %q", tt.num, got, tt.name)
		}
		if f, ok := FeatureByName(tt.name); !ok || f != tt.f {
			t.Errorf("FeatureByName(%q) = %d, %v; want %d, true", tt.name, f, ok, tt.f)
		}
	}
	for _, bad := range []string{"", "grant_map_identity", "WRITABLE_PAGE_TABLES", "!dom0", "feature_12"} {
		if f, ok := FeatureByName(bad); ok {
			t.Errorf("FeatureByName(%q) = %d, true; want not found", bad, f)
		}
	}
	if got := Feature(12).String(); got != "feature_12" {
		t.Errorf("Feature(12).String() = %q", got)
	}
}

func TestFeatureSet(t *testing.T) {
	var s FeatureSet
	s = s.With(FeatWritablePageTables).With(FeatDom0).With(FeatLinuxRSDPUnrestricted).With(Feature(40))
	if uint32(s) != 0x8801 {
		t.Fatalf("set = %#x, want 0x8801", uint32(s))
	}
	if !s.Has(FeatDom0) || s.Has(FeatPAEPgdirAbove4GB) || s.Has(Feature(40)) {
		t.Errorf("Has is wrong for %#x", uint32(s))
	}
	want := []Feature{FeatWritablePageTables, FeatDom0, FeatLinuxRSDPUnrestricted}
	if got := s.Features(); !reflect.DeepEqual(got, want) {
		t.Errorf("Features() = %v, want %v", got, want)
	}
	if got := s.String(); got != "writable_page_tables|dom0|linux_rsdp_unrestricted" {
		t.Errorf("String() = %q", got)
	}
	if got := FeatureSet(0).String(); got != "" {
		t.Errorf("empty String() = %q", got)
	}
}
