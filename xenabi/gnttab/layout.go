package gnttab

import "github.com/xenvmm/xenvmm/xenabi/guestmem"

// Constants of xen/include/public/grant_table.h that package abi does not
// carry (its generator skips the _GTF_* / _GNTMAP_* helper-macro forms).
// They are defined here, not in abi, because this package is their only
// user.
const (
	// Subflags for GTF_permit_access and GTF_transitive.
	GTF_readonly = 1 << 2 // [GST] restrict @domid to read-only access
	GTF_reading  = 1 << 3 // [XEN] mapped for reading by @domid
	GTF_writing  = 1 << 4 // [XEN] mapped for writing by @domid
	GTF_PWT      = 1 << 5 // [GST] x86 cache attributes for mappings
	GTF_PCD      = 1 << 6
	GTF_PAT      = 1 << 7
	GTF_sub_page = 1 << 8 // [GST] v2: copy-only access to a sub-range

	// Subflags for GTF_accept_transfer.
	GTF_transfer_committed = 1 << 2
	GTF_transfer_completed = 1 << 3

	// Bits of gnttab_map_grant_ref.flags.
	GNTMAP_device_map       = 1 << 0
	GNTMAP_host_map         = 1 << 1
	GNTMAP_readonly         = 1 << 2
	GNTMAP_application_map  = 1 << 3
	GNTMAP_contains_pte     = 1 << 4
	GNTMAP_guest_avail_mask = 0xffff0000

	// Bits of gnttab_copy.flags.
	GNTCOPY_source_gref = 1 << 0
	GNTCOPY_dest_gref   = 1 << 1

	// The first entries, kept across version changes (console, xenstore).
	GNTTAB_NR_RESERVED_ENTRIES = 8
	GNTTAB_RESERVED_CONSOLE    = 0
	GNTTAB_RESERVED_XENSTORE   = 1
)

// Xen's defaults and limits (xen/common/grant_table.c,
// xen/arch/x86/include/asm/grant_table.h).
const (
	// DefaultMaxFrames is opt_max_grant_frames, the default
	// max_grant_frames of a domain.
	DefaultMaxFrames = 64
	// DefaultMaxMaptrackFrames is opt_max_maptrack_frames.
	DefaultMaxMaptrackFrames = 1024
	// InitialFrames is INITIAL_NR_GRANT_FRAMES on x86: a new table has
	// one frame before the guest calls setup_table.
	InitialFrames = 1

	// PageSize is the size of a grant-table, status and granted frame.
	PageSize = guestmem.PageSize

	// EntriesPerFrameV1 is SHGNT_PER_PAGE_V1: 8-byte grant_entry_v1.
	EntriesPerFrameV1 = PageSize / EntrySizeV1
	// EntriesPerFrameV2 is SHGNT_PER_PAGE_V2: 16-byte grant_entry_v2.
	EntriesPerFrameV2 = PageSize / EntrySizeV2
	// StatusPerFrame is STGNT_PER_PAGE: 2-byte grant_status_t.
	StatusPerFrame = PageSize / 2

	// maptrackPerFrame is MAPTRACK_PER_PAGE: 16-byte struct grant_mapping.
	maptrackPerFrame = PageSize / 16
)

// Layouts of the grant-table structures on x86-64, as byte offsets. The
// values were printed by a C program compiled against
// xen/include/public/grant_table.h (xen@c447b73); layout_test.go checks
// them again when a C compiler and the header are at hand.
const (
	// struct grant_entry_v1 {u16 flags; domid_t domid; u32 frame}.
	EntrySizeV1  = 8
	entV1Flags   = 0
	entV1DomID   = 2
	entV1Frame   = 4
	EntrySizeV2  = 16 // union grant_entry_v2
	entV2Flags   = 0  // hdr.flags
	entV2DomID   = 2  // hdr.domid
	entV2PageOff = 4  // sub_page.page_off (u16)
	entV2Length  = 6  // sub_page.length (u16)
	entV2Frame   = 8  // full_page.frame / sub_page.frame (u64)
	entV2TransDo = 4  // transitive.trans_domid (u16)
	entV2TransRf = 8  // transitive.gref (u32)

	// struct gnttab_map_grant_ref.
	MapGrantRefSize   = 32
	mapHostAddr       = 0
	mapFlags          = 8
	mapRef            = 12
	mapDom            = 16
	mapStatus         = 18
	mapHandle         = 20
	mapDevBusAddr     = 24
	UnmapGrantRefSize = 24 // struct gnttab_unmap_grant_ref
	unmapHostAddr     = 0
	unmapDevBusAddr   = 8
	unmapHandle       = 16
	unmapStatus       = 20
	SetupTableSize    = 24 // struct gnttab_setup_table
	setupDom          = 0
	setupNrFrames     = 4
	setupStatus       = 8
	setupFrameList    = 16
	DumpTableSize     = 4 // struct gnttab_dump_table
	TransferSize      = 24
	transferStatus    = 16
	CopySize          = 40 // struct gnttab_copy
	copySrcU          = 0  // source.u (ref or gmfn)
	copySrcDomID      = 8
	copySrcOffset     = 10
	copyDstU          = 16
	copyDstDomID      = 24
	copyDstOffset     = 26
	copyLen           = 32
	copyFlags         = 34
	copyStatus        = 36
	QuerySizeSize     = 16 // struct gnttab_query_size
	querySizeDom      = 0
	querySizeNr       = 4
	querySizeMax      = 8
	querySizeStatus   = 12
	UnmapReplaceSize  = 24 // struct gnttab_unmap_and_replace
	urHostAddr        = 0
	urNewAddr         = 8
	urHandle          = 16
	urStatus          = 20
	SetVersionSize    = 4  // struct gnttab_set_version
	StatusFramesSize  = 16 // struct gnttab_get_status_frames
	sfNrFrames        = 0
	sfDom             = 4
	sfStatus          = 6
	sfFrameList       = 8
	GetVersionSize    = 8 // struct gnttab_get_version
	gvDom             = 0
	gvVersion         = 4
	SwapGrantRefSize  = 12 // struct gnttab_swap_grant_ref
	swapRefA          = 0
	swapRefB          = 4
	swapStatus        = 8
	CacheFlushSize    = 16 // struct gnttab_cache_flush
)
