package pvkernels

import (
	"bytes"
	"debug/elf"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/xenvmm/xenvmm/loader"
	"github.com/xenvmm/xenvmm/xenabi/abi"
)

const virtBase = 0xffffffff80000000

func symbols(t *testing.T, path string) map[string]uint64 {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]uint64{}
	for _, s := range syms {
		m[s.Name] = s.Value
	}
	return m
}

// bytesAt returns n bytes of the image at virtual address va.
func bytesAt(img *loader.Image, va uint64, n int) []byte {
	for _, s := range img.Segments {
		if va >= s.VAddr && va+uint64(n) <= s.VAddr+uint64(len(s.Data)) {
			return s.Data[va-s.VAddr : va-s.VAddr+uint64(n)]
		}
	}
	return nil
}

// Every kernel builds, and the loader reads from it what Xen's domain
// builder would: the notes the runtime declares, the entry point, the
// hypercall page (still holding our ud2 filler), the layout from VIRT_BASE.
func TestBuildAndLoad(t *testing.T) {
	paths := BuildT(t)
	for _, k := range Kernels {
		t.Run(k.Name, func(t *testing.T) {
			path := paths[k.Name]
			img, err := loader.LoadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			sym := symbols(t, path)

			if img.Class != 64 || img.Machine != elf.EM_X86_64 || img.Legacy || img.NotesFrom != "PT_NOTE" {
				t.Errorf("class %d, machine %v, legacy %v, notes from %q", img.Class, img.Machine, img.Legacy, img.NotesFrom)
			}
			if img.GuestOS != "xenvmm-test" || img.XenVersion != "xen-3.0" || img.Loader != "generic" ||
				img.PAEMode != loader.PAEExtendedCR3 || img.PAEString != "yes" {
				t.Errorf("GUEST_OS %q, XEN_VERSION %q, LOADER %q, PAE %v (%q)",
					img.GuestOS, img.XenVersion, img.Loader, img.PAEMode, img.PAEString)
			}
			if img.VirtBase != virtBase || img.PaddrOffset != 0 || img.VirtKStart != virtBase {
				t.Errorf("VIRT_BASE %#x, PADDR_OFFSET %#x, kernel starts at %#x", img.VirtBase, img.PaddrOffset, img.VirtKStart)
			}
			if img.Entry != sym["_start"] || img.Entry == 0 {
				t.Errorf("entry %#x, _start at %#x", img.Entry, sym["_start"])
			}
			if img.HypercallPage != sym["hypercall_page"] || img.HypercallPage%4096 != 0 ||
				img.HypercallPage < img.VirtKStart || img.HypercallPage+4096 > img.VirtKEnd {
				t.Errorf("hypercall page %#x (symbol %#x), kernel %#x-%#x", img.HypercallPage, sym["hypercall_page"],
					img.VirtKStart, img.VirtKEnd)
			}
			if page := bytesAt(img, img.HypercallPage, 4096); page == nil ||
				!bytes.Equal(page, bytes.Repeat([]byte{0x0f, 0x0b}, 2048)) {
				t.Error("the hypercall page is not in the file or not filled with ud2")
			}

			// FEATURES: the string and what it means.
			var features string
			var haveFeatures bool
			for _, n := range img.Notes {
				if n.Type == abi.ElfNoteFeatures {
					features, haveFeatures = n.Str, true
				}
			}
			if !haveFeatures || features != k.Features {
				t.Errorf("FEATURES note %q (present %v), want %q", features, haveFeatures, k.Features)
			}
			wantRequired := k.Features == "!writable_page_tables"
			if img.Features.Required.Has(abi.FeatWritablePageTables) != wantRequired ||
				img.Features.Supported.Has(abi.FeatWritablePageTables) != wantRequired {
				t.Errorf("features %+v for %q", img.Features, k.Features)
			}

			// The hypercall style byte PVK_KERNEL compiled in.
			style := bytesAt(img, sym["pvk_hypercall_page"], 1)
			wantStyle := byte(0)
			if k.Hypercalls == ViaPage {
				wantStyle = 1
			}
			if style == nil || style[0] != wantStyle {
				t.Errorf("pvk_hypercall_page = %v, want %d for %s", style, wantStyle, k.Hypercalls)
			}

			// Loadable segments sit in the first pages after VIRT_BASE,
			// .bss included (the builder zeroes it; _start clears it too).
			if img.VirtKEnd-img.VirtKStart > 1<<20 || len(img.Segments) != 2 {
				t.Errorf("kernel spans %#x-%#x in %d segments", img.VirtKStart, img.VirtKEnd, len(img.Segments))
			}
			for _, s := range img.Segments {
				if s.VAddr != s.PVAddr || s.PAddr != s.VAddr-virtBase {
					t.Errorf("segment vaddr %#x, p_vaddr %#x, p_paddr %#x", s.VAddr, s.PVAddr, s.PAddr)
				}
			}
		})
	}
}

// A second build with the same inputs is served from the cache.
func TestBuildCache(t *testing.T) {
	if os.Getenv("XENVMM_PVKERNELS") != "" {
		t.Skip("prebuilt kernels in use")
	}
	first := BuildT(t)
	before := map[string]os.FileInfo{}
	for name, p := range first {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		before[name] = fi
	}
	second := BuildT(t)
	for name, p := range second {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if p != first[name] || !fi.ModTime().Equal(before[name].ModTime()) {
			t.Errorf("%s rebuilt: %s (%v) then %s (%v)", name, first[name], before[name].ModTime(), p, fi.ModTime())
		}
	}
}

func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		if fi.IsDir() {
			return os.MkdirAll(out, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(out, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestBuildErrors(t *testing.T) {
	if _, err := BuildFrom(t.TempDir(), t.TempDir()); !errors.Is(err, ErrNoSources) && !errors.Is(err, ErrNoCompiler) {
		t.Errorf("empty source directory: %v, want ErrNoSources", err)
	}

	t.Run("no compiler", func(t *testing.T) {
		t.Setenv("CC", filepath.Join(t.TempDir(), "no-such-cc"))
		if _, err := Build(t.TempDir()); !errors.Is(err, ErrNoCompiler) {
			t.Errorf("got %v, want ErrNoCompiler", err)
		}
	})

	t.Run("compile error", func(t *testing.T) {
		src := t.TempDir()
		copyTree(t, SourceDir(), src)
		bad := filepath.Join(src, "kernels", "traps.c")
		if err := os.WriteFile(bad, []byte("this is not C\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := BuildFrom(src, t.TempDir())
		if errors.Is(err, ErrNoCompiler) {
			t.Skip("no gcc")
		}
		var be *BuildError
		if !errors.As(err, &be) || be.Kernel != "traps" || be.Output == "" {
			t.Errorf("got %v, want a *BuildError for traps with compiler output", err)
		}
	})
}
