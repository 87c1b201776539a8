package loader

import (
	"fmt"
	"io"
	"strings"
)

// Describe writes the facts `xenvmm check` shows about the kernel, one
// "name: value" line each, then the segments.
func (img *Image) Describe(w io.Writer) error {
	var b strings.Builder
	line := func(name, format string, args ...any) {
		if name != "" {
			name += ":"
		}
		fmt.Fprintf(&b, "%-16s %s\n", name, fmt.Sprintf(format, args...))
	}
	line("kernel", "%s", img.Name)
	line("format", "%s", img.Format)
	line("class", "ELF%d %s", img.Class, machineName(img))
	if img.Legacy {
		line("xen info", "__xen_guest %q", img.GuestInfo)
	} else {
		line("xen info", "%d ELF notes (%s)", len(img.Notes), img.NotesFrom)
	}
	line("guest os", "%s", orNone(strings.TrimSpace(img.GuestOS+" "+img.GuestVersion)))
	line("xen version", "%s", orNone(img.XenVersion))
	line("loader", "%s", orNone(img.Loader))
	line("entry", "%#x", img.Entry)
	line("virt_base", "%#x", img.VirtBase)
	line("paddr_offset", "%#x", img.PaddrOffset)
	line("kernel range", "%#x-%#x", img.VirtKStart, img.VirtKEnd)
	if img.HypercallPage != 0 {
		line("hypercall page", "%#x", img.HypercallPage)
	} else {
		line("hypercall page", "none")
	}
	if img.InitP2M != 0 {
		line("init_p2m", "%#x", img.InitP2M)
	} else {
		line("init_p2m", "none (P2M list placed after the kernel)")
	}
	if img.HVStartLow != 0 {
		line("hv_start_low", "%#x", img.HVStartLow)
	}
	line("features", "supported %s", orNone(img.Features.Supported.String()))
	line("", "required %s", orNone(img.Features.Required.String()))
	if img.Class == 32 {
		line("pae", "%s", img.PAEMode)
	}
	var flags []string
	if img.SuspendCancel {
		flags = append(flags, "suspend_cancel")
	}
	if img.ModStartPFN {
		flags = append(flags, "mod_start_pfn")
	}
	if len(img.L1MFNValid) > 0 {
		flags = append(flags, "l1_mfn_valid")
	}
	if img.PhysEntry != 0 {
		flags = append(flags, fmt.Sprintf("pvh_entry=%#x", img.PhysEntry))
	}
	if len(flags) > 0 {
		line("other", "%s", strings.Join(flags, " "))
	}
	switch {
	case img.Symtab != nil:
		line("bsd symtab", "%d bytes at %#x", len(img.Symtab), img.SymtabVAddr)
	case img.BSDSymtab:
		line("bsd symtab", "requested, but the kernel has no symbol table")
	}
	fmt.Fprintf(&b, "segments:\n")
	for _, s := range img.Segments {
		fmt.Fprintf(&b, "  0x%016x filesz %#9x memsz %#9x %s (p_paddr %#x, p_vaddr %#x)\n",
			s.VAddr, len(s.Data), s.MemSize, s.Flags, s.PAddr, s.PVAddr)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func machineName(img *Image) string {
	if img.Class == 64 {
		return "x86_64"
	}
	return "i386"
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
