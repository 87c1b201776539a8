package loader

import (
	"bytes"
	"debug/elf"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/xenvmm/xenvmm/internal/testenv"
	"github.com/xenvmm/xenvmm/xenabi/abi"
)

// Facts below were read from the kernels with readelf (notes, program
// headers, __xen_guest, symbols) and agree with Xen's rules.

func TestDebianLinux61(t *testing.T) {
	path := testenv.DebianVmlinuz(t)
	img, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if img.Format != "bzImage+xz" || img.Class != 64 || img.Machine != elf.EM_X86_64 {
		t.Errorf("format %q class %d machine %v", img.Format, img.Class, img.Machine)
	}
	if img.Legacy || img.NotesFrom != "PT_NOTE" || img.GuestOS != "linux" || img.XenVersion != "xen-3.0" || img.Loader != "generic" {
		t.Errorf("legacy %v notes from %q guest %q xen %q loader %q", img.Legacy, img.NotesFrom, img.GuestOS, img.XenVersion, img.Loader)
	}
	if img.VirtBase != 0xffffffff80000000 || img.PaddrOffset != 0 {
		t.Errorf("VirtBase %#x PaddrOffset %#x", img.VirtBase, img.PaddrOffset)
	}
	// startup_xen; the kernel's first page is at 16 MiB.
	if img.Entry < 0xffffffff81000000 || img.Entry >= img.VirtKEnd || img.VirtKStart != 0xffffffff81000000 {
		t.Errorf("entry %#x kernel %#x-%#x", img.Entry, img.VirtKStart, img.VirtKEnd)
	}
	if img.InitP2M != 0x8000000000 {
		t.Errorf("InitP2M %#x, want 0x8000000000", img.InitP2M)
	}
	// Since the XSA-466 fixes Linux has no hypercall page.
	if img.HypercallPage != 0 {
		t.Errorf("HypercallPage %#x, want none", img.HypercallPage)
	}
	for _, n := range img.Notes {
		if n.Type == abi.ElfNoteHypercallPage {
			t.Errorf("a XEN_ELFNOTE_HYPERCALL_PAGE note is listed")
		}
	}
	if img.HVStartLow != 0xffff800000000000 {
		t.Errorf("HVStartLow %#x", img.HVStartLow)
	}
	if !img.Features.Required.Has(abi.FeatWritablePageTables) || img.Features.Required.Has(abi.FeatDom0) ||
		!img.Features.Supported.Has(abi.FeatPAEPgdirAbove4GB) || !img.Features.Supported.Has(abi.FeatDom0) {
		t.Errorf("features %+v", img.Features)
	}
	if !img.SuspendCancel || !img.ModStartPFN || img.PhysEntry == 0 || len(img.L1MFNValid) != 1 {
		t.Errorf("suspend_cancel %v mod_start_pfn %v phys_entry %#x l1_mfn_valid %v", img.SuspendCancel, img.ModStartPFN, img.PhysEntry, img.L1MFNValid)
	}
	// The percpu segment has p_vaddr 0 and is placed by its p_paddr.
	percpu := false
	for i, s := range img.Segments {
		if s.VAddr != s.PAddr+0xffffffff80000000 || s.VAddr < img.VirtKStart || s.VAddr+s.MemSize > img.VirtKEnd {
			t.Errorf("segment %d at %#x (p_paddr %#x) outside %#x-%#x", i, s.VAddr, s.PAddr, img.VirtKStart, img.VirtKEnd)
		}
		if s.PVAddr == 0 {
			percpu = true
		}
	}
	if len(img.Segments) != 4 || !percpu {
		t.Errorf("%d segments, percpu found %v", len(img.Segments), percpu)
	}
	// The entry point's bytes are in a loaded segment.
	if !containsVA(img, img.Entry) {
		t.Errorf("entry %#x is in no segment's file bytes", img.Entry)
	}
	var b strings.Builder
	img.Describe(&b)
	t.Logf("\n%s", b.String())
}

func containsVA(img *Image, va uint64) bool {
	for _, s := range img.Segments {
		if va >= s.VAddr && va < s.VAddr+uint64(len(s.Data)) {
			return true
		}
	}
	return false
}

func TestNetBSD(t *testing.T) {
	for _, name := range []string{"netbsd-5.1-amd64-XEN3_DOMU.gz", "netbsd-5.1-amd64-INSTALL_XEN3_DOMU.gz"} {
		t.Run(name, func(t *testing.T) {
			img, err := LoadFile(testenv.Guest(t, name))
			if err != nil {
				t.Fatal(err)
			}
			if img.Format != "gzip+elf" || img.Class != 64 || !img.Legacy || img.GuestOS != "NetBSD" || img.Loader != "generic" {
				t.Errorf("format %q class %d legacy %v guest %q loader %q", img.Format, img.Class, img.Legacy, img.GuestOS, img.Loader)
			}
			if img.VirtBase != 0xffffffff80000000 || img.PaddrOffset != 0xffffffff80000000 || img.Entry != 0xffffffff80100000 {
				t.Errorf("VirtBase %#x PaddrOffset %#x Entry %#x", img.VirtBase, img.PaddrOffset, img.Entry)
			}
			// HYPERCALL_PAGE=0x00000101 is a page number relative to
			// VIRT_BASE: NetBSD's hypercall_page symbol.
			if img.HypercallPage != 0xffffffff80101000 {
				t.Errorf("HypercallPage %#x, want 0xffffffff80101000", img.HypercallPage)
			}
			if !img.BSDSymtab || len(img.Symtab) == 0 {
				t.Fatalf("BSDSymtab %v, symtab %d bytes", img.BSDSymtab, len(img.Symtab))
			}
			last := img.Segments[len(img.Segments)-1]
			if img.SymtabVAddr != (last.VAddr+last.MemSize+7)&^7 || img.VirtKEnd < img.SymtabVAddr+uint64(len(img.Symtab)) {
				t.Errorf("symtab at %#x (%d bytes), kernel end %#x, last segment ends %#x", img.SymtabVAddr, len(img.Symtab), img.VirtKEnd, last.VAddr+last.MemSize)
			}
			if !bytes.Contains(img.Symtab, []byte("\x00xpq_queue_machphys_update\x00")) {
				t.Errorf("the symtab blob lacks xpq_queue_machphys_update")
			}
			f, err := elf.NewFile(bytes.NewReader(img.Symtab[4:]))
			if err != nil {
				t.Fatalf("symtab blob: %v", err)
			}
			syms, err := f.Symbols()
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, s := range syms {
				if s.Name == "hypercall_page" {
					found = true
					if s.Value != img.HypercallPage {
						t.Errorf("hypercall_page symbol at %#x, HypercallPage %#x", s.Value, img.HypercallPage)
					}
				}
			}
			if !found || len(syms) < 10000 {
				t.Errorf("%d symbols, hypercall_page found %v", len(syms), found)
			}
		})
	}
}

func TestCentOS5(t *testing.T) {
	img, err := LoadFile(testenv.Guest(t, "vmlinuz-centos5-xen-install"))
	if err != nil {
		t.Fatal(err)
	}
	// Notes and __xen_guest both present: libelf uses the notes.
	if img.Format != "gzip+elf" || img.Legacy || img.NotesFrom != "PT_NOTE" || len(img.Notes) != 9 {
		t.Errorf("format %q legacy %v notes from %q, %d notes", img.Format, img.Legacy, img.NotesFrom, len(img.Notes))
	}
	// PADDR_OFFSET = VIRT_BASE: p_paddr is already virtual.
	if img.VirtBase != 0xffffffff80000000 || img.PaddrOffset != 0xffffffff80000000 || img.Entry != 0xffffffff80200000 {
		t.Errorf("VirtBase %#x PaddrOffset %#x Entry %#x", img.VirtBase, img.PaddrOffset, img.Entry)
	}
	if img.HypercallPage != 0xffffffff80206000 || img.GuestVersion != "2.6" {
		t.Errorf("HypercallPage %#x guest version %q", img.HypercallPage, img.GuestVersion)
	}
	want := abi.FeatureSet(0).With(abi.FeatWritablePageTables).With(abi.FeatWritableDescriptorTables).
		With(abi.FeatAutoTranslatedPhysmap).With(abi.FeatPAEPgdirAbove4GB).With(abi.FeatSupervisorModeKernel)
	if img.Features.Supported != want || img.Features.Required != 0 {
		t.Errorf("features %+v", img.Features)
	}
	// The vsyscall segment (p_vaddr 0xffffffffff600000) is placed by
	// its p_paddr.
	if len(img.Segments) != 4 || img.Segments[2].PVAddr != 0xffffffffff600000 || img.Segments[2].VAddr != 0xffffffff8074d000 {
		t.Errorf("segments %+v", img.Segments)
	}
	if img.VirtKStart != 0xffffffff80200000 || img.VirtKEnd != 0xffffffff808e302c {
		t.Errorf("kernel %#x-%#x", img.VirtKStart, img.VirtKEnd)
	}
}

func TestDebian6Kernels(t *testing.T) {
	for _, tt := range []struct {
		name  string
		entry uint64
		end   uint64
	}{
		{"vmlinuz-2.6.32-5-xen-amd64", 0xffffffff8150a200, 0xffffffff816bb000},
		{"vmlinuz-debian6-xen-install", 0xffffffff814f3200, 0xffffffff816ab000},
	} {
		t.Run(tt.name, func(t *testing.T) {
			img, err := LoadFile(testenv.Guest(t, tt.name))
			if err != nil {
				t.Fatal(err)
			}
			if img.Format != "bzImage+gzip" || img.Entry != tt.entry || img.VirtKEnd != tt.end || img.VirtKStart != 0xffffffff81000000 {
				t.Errorf("format %q entry %#x kernel %#x-%#x", img.Format, img.Entry, img.VirtKStart, img.VirtKEnd)
			}
			// Old pvops Linux uses the hypercall page.
			if img.HypercallPage != 0xffffffff81009000 || img.InitP2M != 0 || img.PaddrOffset != 0 {
				t.Errorf("HypercallPage %#x InitP2M %#x PaddrOffset %#x", img.HypercallPage, img.InitP2M, img.PaddrOffset)
			}
			if img.Features.Required != 1<<abi.FeatWritablePageTables {
				t.Errorf("features %+v", img.Features)
			}
			if !containsVA(img, img.Entry) || !containsVA(img, img.HypercallPage) {
				t.Errorf("entry or hypercall page outside the segments")
			}
		})
	}
}

func TestPVGrub(t *testing.T) {
	for _, tt := range []struct {
		name  string
		class int
		end   uint64
		pae   PAEMode
	}{
		{"pv-grub-x86_64.gz", 64, 0x98efa8, PAENo},
		{"pv-grub-x86_32.gz", 32, 0x9653b4, PAEExtendedCR3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			img, err := LoadFile(testenv.Guest(t, tt.name))
			if err != nil {
				t.Fatal(err)
			}
			if img.Format != "gzip+elf" || img.Class != tt.class || !img.Legacy || img.GuestOS != "Mini-OS" || img.PAEMode != tt.pae {
				t.Errorf("format %q class %d legacy %v guest %q PAE %v", img.Format, img.Class, img.Legacy, img.GuestOS, img.PAEMode)
			}
			// VIRT_BASE=0x0, HYPERCALL_PAGE=0x2, entry from e_entry (0).
			if img.VirtBase != 0 || img.PaddrOffset != 0 || img.Entry != 0 || img.HypercallPage != 0x2000 {
				t.Errorf("VirtBase %#x PaddrOffset %#x Entry %#x HypercallPage %#x", img.VirtBase, img.PaddrOffset, img.Entry, img.HypercallPage)
			}
			if img.VirtKStart != 0 || img.VirtKEnd != tt.end {
				t.Errorf("kernel %#x-%#x", img.VirtKStart, img.VirtKEnd)
			}
		})
	}
}

func TestRealKernelNotPV(t *testing.T) {
	// Debian's kernel ELF with its Xen notes renamed: what a kernel
	// built without CONFIG_XEN looks like to the loader.
	path := testenv.DebianVmlinuz(t)
	_, elfData, err := unpack(mustRead(t, path), MaxSize, 0)
	if err != nil {
		t.Fatal(err)
	}
	stripped := bytes.ReplaceAll(elfData, []byte("Xen\x00"), []byte("Nex\x00"))
	_, err = Load("/boot/vmlinuz-nox", stripped)
	if !errors.Is(err, ErrNotPV) || !strings.Contains(err.Error(), "loader: /boot/vmlinuz-nox: this kernel has no Xen PV support") {
		t.Errorf("error %v, want ErrNotPV", err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
