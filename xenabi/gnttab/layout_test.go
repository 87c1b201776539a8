package gnttab

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/xenvmm/xenvmm/internal/testenv"
)

// TestLayoutAgainstHeader compiles a C program against Xen's
// grant_table.h and compares the sizes and offsets it prints with this
// package's constants. It needs a C compiler and the header: the
// directory $XENVMM_XEN_PUBLIC, else ../ref/xen/include/public beside the
// checkout; without them it skips (the constants were printed this way
// once, see layout.go).
func TestLayoutAgainstHeader(t *testing.T) {
	dir := os.Getenv("XENVMM_XEN_PUBLIC")
	if dir == "" {
		dir = filepath.Join(testenv.RepoRoot(), "..", "ref", "xen", "include", "public")
	}
	header := filepath.Join(dir, "grant_table.h")
	if _, err := os.Stat(header); err != nil {
		t.Skipf("Xen's public headers not found (%v); set XENVMM_XEN_PUBLIC", err)
	}
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Skip("no C compiler")
	}
	checks := []struct {
		expr string
		want int
	}{
		{"sizeof(grant_entry_v1_t)", EntrySizeV1},
		{"offsetof(grant_entry_v1_t, domid)", entV1DomID},
		{"offsetof(grant_entry_v1_t, frame)", entV1Frame},
		{"sizeof(grant_entry_v2_t)", EntrySizeV2},
		{"offsetof(grant_entry_v2_t, sub_page.page_off)", entV2PageOff},
		{"offsetof(grant_entry_v2_t, sub_page.length)", entV2Length},
		{"offsetof(grant_entry_v2_t, full_page.frame)", entV2Frame},
		{"offsetof(grant_entry_v2_t, sub_page.frame)", entV2Frame},
		{"offsetof(grant_entry_v2_t, transitive.trans_domid)", entV2TransDo},
		{"offsetof(grant_entry_v2_t, transitive.gref)", entV2TransRf},
		{"sizeof(grant_status_t)", 2},
		{"sizeof(struct gnttab_map_grant_ref)", MapGrantRefSize},
		{"offsetof(struct gnttab_map_grant_ref, flags)", mapFlags},
		{"offsetof(struct gnttab_map_grant_ref, ref)", mapRef},
		{"offsetof(struct gnttab_map_grant_ref, dom)", mapDom},
		{"offsetof(struct gnttab_map_grant_ref, status)", mapStatus},
		{"offsetof(struct gnttab_map_grant_ref, handle)", mapHandle},
		{"offsetof(struct gnttab_map_grant_ref, dev_bus_addr)", mapDevBusAddr},
		{"sizeof(struct gnttab_unmap_grant_ref)", UnmapGrantRefSize},
		{"offsetof(struct gnttab_unmap_grant_ref, dev_bus_addr)", unmapDevBusAddr},
		{"offsetof(struct gnttab_unmap_grant_ref, handle)", unmapHandle},
		{"offsetof(struct gnttab_unmap_grant_ref, status)", unmapStatus},
		{"sizeof(struct gnttab_setup_table)", SetupTableSize},
		{"offsetof(struct gnttab_setup_table, nr_frames)", setupNrFrames},
		{"offsetof(struct gnttab_setup_table, status)", setupStatus},
		{"offsetof(struct gnttab_setup_table, frame_list)", setupFrameList},
		{"sizeof(struct gnttab_dump_table)", DumpTableSize},
		{"sizeof(struct gnttab_transfer)", TransferSize},
		{"offsetof(struct gnttab_transfer, status)", transferStatus},
		{"sizeof(struct gnttab_copy)", CopySize},
		{"offsetof(struct gnttab_copy, source.domid)", copySrcDomID},
		{"offsetof(struct gnttab_copy, source.offset)", copySrcOffset},
		{"offsetof(struct gnttab_copy, dest.u)", copyDstU},
		{"offsetof(struct gnttab_copy, dest.domid)", copyDstDomID},
		{"offsetof(struct gnttab_copy, dest.offset)", copyDstOffset},
		{"offsetof(struct gnttab_copy, len)", copyLen},
		{"offsetof(struct gnttab_copy, flags)", copyFlags},
		{"offsetof(struct gnttab_copy, status)", copyStatus},
		{"sizeof(struct gnttab_query_size)", QuerySizeSize},
		{"offsetof(struct gnttab_query_size, nr_frames)", querySizeNr},
		{"offsetof(struct gnttab_query_size, max_nr_frames)", querySizeMax},
		{"offsetof(struct gnttab_query_size, status)", querySizeStatus},
		{"sizeof(struct gnttab_unmap_and_replace)", UnmapReplaceSize},
		{"offsetof(struct gnttab_unmap_and_replace, new_addr)", urNewAddr},
		{"offsetof(struct gnttab_unmap_and_replace, handle)", urHandle},
		{"offsetof(struct gnttab_unmap_and_replace, status)", urStatus},
		{"sizeof(struct gnttab_set_version)", SetVersionSize},
		{"sizeof(struct gnttab_get_status_frames)", StatusFramesSize},
		{"offsetof(struct gnttab_get_status_frames, dom)", sfDom},
		{"offsetof(struct gnttab_get_status_frames, status)", sfStatus},
		{"offsetof(struct gnttab_get_status_frames, frame_list)", sfFrameList},
		{"sizeof(struct gnttab_get_version)", GetVersionSize},
		{"offsetof(struct gnttab_get_version, version)", gvVersion},
		{"sizeof(struct gnttab_swap_grant_ref)", SwapGrantRefSize},
		{"offsetof(struct gnttab_swap_grant_ref, ref_b)", swapRefB},
		{"offsetof(struct gnttab_swap_grant_ref, status)", swapStatus},
		{"sizeof(struct gnttab_cache_flush)", CacheFlushSize},
		{"GTF_readonly", GTF_readonly},
		{"GTF_reading", GTF_reading},
		{"GTF_writing", GTF_writing},
		{"GTF_PWT", GTF_PWT},
		{"GTF_PCD", GTF_PCD},
		{"GTF_PAT", GTF_PAT},
		{"GTF_sub_page", GTF_sub_page},
		{"GTF_transfer_committed", GTF_transfer_committed},
		{"GTF_transfer_completed", GTF_transfer_completed},
		{"GNTMAP_device_map", GNTMAP_device_map},
		{"GNTMAP_host_map", GNTMAP_host_map},
		{"GNTMAP_readonly", GNTMAP_readonly},
		{"GNTMAP_application_map", GNTMAP_application_map},
		{"GNTMAP_contains_pte", GNTMAP_contains_pte},
		{"GNTMAP_guest_avail_mask", GNTMAP_guest_avail_mask},
		{"GNTCOPY_source_gref", GNTCOPY_source_gref},
		{"GNTCOPY_dest_gref", GNTCOPY_dest_gref},
		{"GNTTAB_NR_RESERVED_ENTRIES", GNTTAB_NR_RESERVED_ENTRIES},
		{"GNTTAB_RESERVED_CONSOLE", GNTTAB_RESERVED_CONSOLE},
		{"GNTTAB_RESERVED_XENSTORE", GNTTAB_RESERVED_XENSTORE},
	}
	var src strings.Builder
	// Include by path: -I on the public directory would let its
	// features.h shadow the C library's.
	fmt.Fprintf(&src, "#include <stdio.h>\n#include <stddef.h>\n#include <stdint.h>\n#define __XEN_INTERFACE_VERSION__ 0x00040e00\n#include %q\nint main(void) {\n", header)
	for _, c := range checks {
		fmt.Fprintf(&src, "\tprintf(\"%%lu\\n\", (unsigned long)(%s));\n", c.expr)
	}
	src.WriteString("\treturn 0;\n}\n")
	tmp := t.TempDir()
	cfile, bin := filepath.Join(tmp, "layout.c"), filepath.Join(tmp, "layout")
	if err := os.WriteFile(cfile, []byte(src.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(cc, "-o", bin, cfile).CombinedOutput(); err != nil {
		t.Fatalf("cc: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Fields(string(out))
	if len(lines) != len(checks) {
		t.Fatalf("%d values printed, want %d", len(lines), len(checks))
	}
	for i, c := range checks {
		got, err := strconv.ParseUint(lines[i], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		if got != uint64(c.want) {
			t.Errorf("%s = %d in C, %d here", c.expr, got, c.want)
		}
	}
}
