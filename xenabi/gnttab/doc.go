// Package gnttab is xenvmm's grant-table core: the guest's grant table as
// Xen keeps it, the guest's GNTTABOP_* hypercalls, and the map and copy
// operations that xenvmm's in-process backends (acting as domain 0) use
// to reach the pages the guest grants them.
//
// Specification: xen/include/public/grant_table.h (struct grant_entry_v1,
// union grant_entry_v2, grant_status_t, the GTF_* flags and the rules for
// updating them, every GNTTABOP_* op and its struct, GNTMAP_*, GNTCOPY_*,
// GNTST_*). Semantics and error codes where the header is silent follow
// Xen's xen/common/grant_table.c (do_grant_table_op and its helpers, the
// active-entry pin counts, _set_status_v1/_v2, acquire_grant_for_copy,
// gnttab_set_version) and xen/arch/x86/include/asm/grant_table.h.
//
// The model: one 64-bit PV guest with an identity P2M, so a guest frame
// number is also its machine frame number. The table's frames are pages
// the VMM owns (Xen's xenheap pages), handed in by the caller through
// Frames with their machine frame numbers; the guest learns those numbers
// from setup_table / get_status_frames and maps the frames with
// mmu_update, as on Xen. The guest's own frames are reached through
// GuestMemory. The backends never map anything into a kernel: a map
// yields a bounds-checked []byte view of the granted page.
//
// Guest side: Table.Hypercall decodes the argument array the VMM's
// dispatcher copied in (ArgBytes says how much) and writes the results
// back into it. Backend side: Table.MapGrant returns a *Mapping (Bytes,
// ReadAt, WriteAt, Unmap); Table.CopyFromGrant and Table.CopyToGrant copy
// between a grant and a Go buffer. Both pin the grant entry and set
// GTF_reading/GTF_writing exactly as Xen does, so the guest's
// gnttab_end_foreign_access sees the entry busy while a backend uses it.
//
// Domains: the guest has Config.DomID; the backends are domain 0. Domain 0
// grants nothing, so the guest naming domain 0 in a map or copy meets
// Xen's initial, all-invalid table; any other domain id does not exist.
package gnttab
