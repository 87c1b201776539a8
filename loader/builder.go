package loader

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/xenvmm/xenvmm/xenabi/abi"
	"github.com/xenvmm/xenvmm/xenabi/guestmem"
)

// The PV domain builder: the start-of-day memory layout of
// xen/include/public/xen.h ("Start-of-day memory layout"), laid out in the
// order and with the page-table rules of libxc (tools/libs/guest:
// xc_dom_build_image in xg_dom_core.c; alloc_pgtables_pv,
// setup_pgtables_pv, start_info_x86_64 and vcpu_x86_64 in xg_dom_x86.c).
// The P2M is the identity: pseudo-physical frame N is machine frame N.

const pageSize = guestmem.PageSize

// BuildConfig is what the builder needs besides the kernel image.
type BuildConfig struct {
	// RAM is the domain's memory: guest-physical [0, NrPages*4096).
	RAM *guestmem.Space
	// NrPages is the domain's size in pages (start_info.nr_pages).
	NrPages uint64
	// Ramdisk is the initial RAM disk (mod_start/mod_len), or nil.
	Ramdisk []byte
	// Cmdline is the kernel command line (at most 1023 bytes).
	Cmdline string
	// SharedInfoMFN is the machine frame of the shared info page.
	SharedInfoMFN uint64
	// StoreEvtchn and ConsoleEvtchn are the guest's ports for xenstore and
	// the console, allocated before the build.
	StoreEvtchn, ConsoleEvtchn uint32
	// HoleL4 are the entries of L4 slots 256–271 that the hypervisor owns
	// (see vmm/hole); they are written into the bootstrap L4, as Xen's
	// init_xen_l4_slots does when it pins it.
	HoleL4 [16]uint64
	// Flags are start_info.flags bits (SIF_*) to set.
	Flags uint32
}

// PageTable is one frame of the bootstrap page tables and its level
// (4 for the L4, 1 for an L1).
type PageTable struct {
	PFN   uint64
	Level int
}

// Built is the domain as the builder left it: where everything is and the
// initial vCPU state (vcpu_x86_64).
type Built struct {
	// Initial registers: RIP, RSP, RSI; CR3 is the L4's machine address.
	Entry, StackTop, StartInfoVA, CR3 uint64
	// VirtBase and VirtEnd bound the initial mapping (VirtEnd is 4 MiB
	// aligned, with at least 512 KiB of padding before it).
	VirtBase, VirtEnd uint64
	// Frames of what the builder placed.
	StartInfoPFN, StorePFN, ConsolePFN, StackPFN uint64
	KernelPFN, KernelPages                       uint64
	P2MPFN, P2MPages                             uint64
	// P2MVA is start_info.mfn_list.
	P2MVA uint64
	// ModStart and ModLen are start_info.mod_start/mod_len (a VA, or a
	// PFN with SIF_MOD_START_PFN).
	ModStart, ModLen uint64
	// PageTables are the bootstrap page-table frames, L4 first; the L4
	// is pinned from the start, as on Xen.
	PageTables []PageTable
	// NrPTFrames is start_info.nr_pt_frames (the first mapping's tables).
	NrPTFrames uint64
	// HypercallPagePFN is the frame the builder filled with hypercall
	// stubs, or 0 when the kernel has no hypercall page.
	HypercallPagePFN uint64
	// PFNAllocEnd is the first frame the builder did not use.
	PFNAllocEnd uint64
	// Flags is start_info.flags.
	Flags uint32
}

// ErrTooSmall is returned when the domain's memory cannot hold the
// initial mapping.
var ErrTooSmall = errors.New("loader: not enough memory for the initial mapping")

// Page-table entry protections of the bootstrap tables (x86_64_params in
// xg_dom_x86.c), with _PAGE_USER added at every level as Xen's
// adjust_guest_l*e does for a 64-bit PV guest (its kernel runs at CPL3).
const (
	protL1    = guestmem.PTEPresent | guestmem.PTEWrite | guestmem.PTEAccessed | guestmem.PTEUser
	protUpper = guestmem.PTEPresent | guestmem.PTEWrite | guestmem.PTEAccessed | guestmem.PTEDirty | guestmem.PTEUser
)

// builder is the allocation state of xc_dom_image: virt_alloc_end and
// pfn_alloc_end advance together inside the initial mapping.
type builder struct {
	img       *Image
	cfg       BuildConfig
	virtEnd   uint64 // virt_alloc_end
	pfnEnd    uint64 // pfn_alloc_end
	maps      []mapping
	ptSegPFN0 uint64
}

// mapping is one xc_dom_x86_mapping: a virtual range mapped to
// consecutive frames, with the tables at each level it needs.
type mapping struct {
	from, to uint64 // inclusive virtual range
	pfn      uint64 // first frame mapped at from
	lvls     [4]mapLevel
	tables   uint64 // area.pgtables
}

type mapLevel struct {
	from, to uint64 // virtual range the tables of this level cover
	pfn      uint64 // first table frame
	n        uint64 // number of tables
}

// BuildPV lays out a 64-bit PV domain for img in cfg.RAM.
func BuildPV(img *Image, cfg BuildConfig) (*Built, error) {
	if img.Class != 64 {
		return nil, fmt.Errorf("loader: %s: only 64-bit PV guests are supported so far (this is a %d-bit kernel)", img.Name, img.Class)
	}
	if len(cfg.Cmdline) >= abi.MAX_GUEST_CMDLINE {
		return nil, fmt.Errorf("loader: command line of %d bytes; at most %d fit start_info", len(cfg.Cmdline), abi.MAX_GUEST_CMDLINE-1)
	}
	if img.VirtBase%pageSize != 0 || img.VirtKStart < img.VirtBase {
		return nil, fmt.Errorf("loader: %s: kernel starts at %#x, below VIRT_BASE %#x", img.Name, img.VirtKStart, img.VirtBase)
	}
	b := &builder{img: img, cfg: cfg, virtEnd: img.VirtBase}
	out := &Built{VirtBase: img.VirtBase, Entry: img.Entry}

	// a. The kernel, at virt_kstart (the frames below it are padding).
	kstart := img.VirtKStart &^ (pageSize - 1)
	if err := b.pad(kstart); err != nil {
		return nil, err
	}
	kpfn, kpages, err := b.alloc(img.VirtKEnd - kstart)
	if err != nil {
		return nil, err
	}
	out.KernelPFN, out.KernelPages = kpfn, kpages
	if err := b.loadKernel(); err != nil {
		return nil, err
	}

	// b. The ramdisk, mapped, unless the kernel takes it by PFN.
	unmappedInitrd := img.ModStartPFN && len(cfg.Ramdisk) > 0
	if len(cfg.Ramdisk) > 0 && !unmappedInitrd {
		va := b.virtEnd
		pfn, _, err := b.alloc(uint64(len(cfg.Ramdisk)))
		if err != nil {
			return nil, err
		}
		if err := cfg.RAM.Write(pfn*pageSize, cfg.Ramdisk); err != nil {
			return nil, err
		}
		out.ModStart, out.ModLen = va, uint64(len(cfg.Ramdisk))
	}

	// c. The P2M list, inside the mapping unless XEN_ELFNOTE_INIT_P2M
	// asks for it elsewhere (and a valid address below VIRT_BASE).
	p2mBytes := roundUp(cfg.NrPages*8, pageSize)
	initP2M := img.InitP2M != 0 && img.InitP2M < img.VirtBase && img.InitP2M%pageSize == 0
	if !initP2M {
		out.P2MVA = b.virtEnd
		out.P2MPFN, out.P2MPages, err = b.alloc(p2mBytes)
		if err != nil {
			return nil, err
		}
	}

	// d–f. start_info, xenstore ring, console ring.
	var pages [3]uint64
	for i := range pages {
		if pages[i], _, err = b.alloc(pageSize); err != nil {
			return nil, err
		}
	}
	out.StartInfoPFN, out.StorePFN, out.ConsolePFN = pages[0], pages[1], pages[2]

	// g. Bootstrap page tables, sized so that they, the stack and 512 KiB
	// of padding fit below a 4 MiB boundary (alloc_pgtables_pv).
	extra := uint64(1 + 512*1024/pageSize) // boot stack + padding
	n := extra
	var m mapping
	var tryEnd uint64
	for {
		tryEnd = roundUp(b.virtEnd+n*pageSize, 4<<20) - 1
		m, err = b.countTables(img.VirtBase, tryEnd, b.pfnEnd, true)
		if err != nil {
			return nil, err
		}
		n = m.tables + extra
		if b.virtEnd+n*pageSize <= tryEnd+1 {
			break
		}
	}
	m.pfn = 0
	b.maps = append(b.maps, m)
	b.ptSegPFN0 = b.pfnEnd
	ptpfn, _, err := b.alloc(m.tables * pageSize)
	if err != nil {
		return nil, err
	}
	out.NrPTFrames = m.tables
	out.CR3 = ptpfn * pageSize

	// h. The boot stack, then padding to the 4 MiB boundary.
	out.StackPFN, _, err = b.alloc(pageSize)
	if err != nil {
		return nil, err
	}
	if err := b.pad(tryEnd + 1); err != nil {
		return nil, err
	}
	out.VirtEnd = tryEnd + 1

	// The ramdisk outside the mapping, by PFN.
	flags := cfg.Flags
	if unmappedInitrd {
		pfn, pages, err := b.alloc(uint64(len(cfg.Ramdisk)))
		if err != nil {
			return nil, err
		}
		if err := cfg.RAM.Write(pfn*pageSize, cfg.Ramdisk); err != nil {
			return nil, err
		}
		flags |= abi.SIF_MOD_START_PFN
		out.ModStart, out.ModLen = pfn, pages*pageSize
	}

	// The P2M at INIT_P2M: its own mapping, tables after the list
	// (alloc_p2m_list_x86_64).
	if initP2M {
		from := img.InitP2M
		to := from + p2mBytes - 1
		pm, err := b.countTables(from, to, b.pfnEnd, false)
		if err != nil {
			return nil, err
		}
		pm.pfn = b.pfnEnd
		for l := range pm.lvls {
			pm.lvls[l].pfn += p2mBytes / pageSize
		}
		b.maps = append(b.maps, pm)
		out.P2MVA = from
		out.P2MPFN, out.P2MPages, err = b.allocUnmapped(p2mBytes + pm.tables*pageSize)
		if err != nil {
			return nil, err
		}
	}
	out.PFNAllocEnd = b.pfnEnd

	// Fill in: P2M (identity), page tables, start_info, hypercall page.
	p2m := make([]byte, cfg.NrPages*8)
	for pfn := uint64(0); pfn < cfg.NrPages; pfn++ {
		binary.LittleEndian.PutUint64(p2m[pfn*8:], pfn)
	}
	if err := cfg.RAM.Write(out.P2MPFN*pageSize, p2m); err != nil {
		return nil, err
	}
	if err := b.writeTables(); err != nil {
		return nil, err
	}
	for _, mp := range b.maps {
		for l := 3; l >= 0; l-- {
			for i := uint64(0); i < mp.lvls[l].n; i++ {
				out.PageTables = append(out.PageTables, PageTable{PFN: mp.lvls[l].pfn + i, Level: l + 1})
			}
		}
	}
	out.StartInfoVA = img.VirtBase + out.StartInfoPFN*pageSize
	out.StackTop = img.VirtBase + (out.StackPFN+1)*pageSize
	out.Flags = flags
	if err := b.writeStartInfo(out); err != nil {
		return nil, err
	}
	if img.HypercallPage != 0 {
		pfn := (img.HypercallPage - img.VirtBase) / pageSize
		if img.HypercallPage < img.VirtBase || pfn >= kpfn+kpages || pfn < kpfn {
			return nil, fmt.Errorf("loader: %s: hypercall page %#x outside the kernel image", img.Name, img.HypercallPage)
		}
		page, err := cfg.RAM.Page(pfn)
		if err != nil {
			return nil, err
		}
		FillHypercallPage(page)
		out.HypercallPagePFN = pfn
	}
	return out, nil
}

func roundUp(v, to uint64) uint64 { return (v + to - 1) &^ (to - 1) }

// pad advances the allocation to boundary (xc_dom_alloc_pad).
func (b *builder) pad(boundary uint64) error {
	if boundary%pageSize != 0 || boundary < b.virtEnd {
		return fmt.Errorf("loader: segment boundary %#x below %#x", boundary, b.virtEnd)
	}
	_, _, err := b.alloc(boundary - b.virtEnd)
	return err
}

// alloc takes size bytes (rounded to pages) at the end of the initial
// mapping, zeroed.
func (b *builder) alloc(size uint64) (pfn, pages uint64, err error) {
	pfn, pages, err = b.allocUnmapped(size)
	if err == nil {
		b.virtEnd += pages * pageSize
	}
	return
}

// allocUnmapped takes frames without advancing the virtual allocation.
func (b *builder) allocUnmapped(size uint64) (pfn, pages uint64, err error) {
	pages = (size + pageSize - 1) / pageSize
	if b.pfnEnd+pages > b.cfg.NrPages {
		return 0, 0, fmt.Errorf("%w: the kernel's start-of-day layout needs more than %d MiB (%d pages), the domain has %d MiB",
			ErrTooSmall, (b.pfnEnd+pages)>>8, b.pfnEnd+pages, b.cfg.NrPages>>8)
	}
	pfn = b.pfnEnd
	b.pfnEnd += pages
	if err := b.cfg.RAM.Zero(pfn*pageSize, pages*pageSize); err != nil {
		return 0, 0, err
	}
	return pfn, pages, nil
}

// loadKernel copies the segments (zero-filled to memsz) and the BSD
// symbol table.
func (b *builder) loadKernel() error {
	img := b.img
	for _, s := range img.Segments {
		gpa := s.VAddr - img.VirtBase
		if err := b.cfg.RAM.Write(gpa, s.Data); err != nil {
			return fmt.Errorf("loader: segment at %#x: %w", s.VAddr, err)
		}
	}
	if len(img.Symtab) > 0 {
		if err := b.cfg.RAM.Write(img.SymtabVAddr-img.VirtBase, img.Symtab); err != nil {
			return fmt.Errorf("loader: BSD symbol table: %w", err)
		}
	}
	return nil
}

// countTables computes the tables a mapping of [from, to] needs at each
// level (count_pgtables); tables at a level already covered by an
// earlier mapping are shared, and only the first mapping has an L4.
func (b *builder) countTables(from, to, pfn uint64, first bool) (mapping, error) {
	if (to-from)/pageSize+pfn >= b.cfg.NrPages {
		return mapping{}, fmt.Errorf("%w (%#x pages past frame %#x, the domain has %#x)", ErrTooSmall, (to-from)/pageSize, pfn, b.cfg.NrPages)
	}
	const vmask = 1<<48 - 1
	m := mapping{from: from & vmask, to: to & vmask}
	for l := 3; l >= 0; l-- {
		m.lvls[l].pfn = b.pfnEnd + m.tables
		if l == 3 {
			if first {
				m.lvls[l] = mapLevel{from: 0, to: vmask, pfn: b.pfnEnd + m.tables, n: 1}
				m.tables++
			}
			continue
		}
		bits := uint(12 + (l+1)*9)
		mask := uint64(1)<<bits - 1
		lv := &m.lvls[l]
		lv.from, lv.to = m.from&^mask, m.to|mask
		for _, o := range b.maps {
			ol := o.lvls[l]
			if ol.n == 0 {
				continue
			}
			if lv.from >= ol.from && lv.to <= ol.to {
				lv.from, lv.to = 0, 0
				break
			}
			if lv.from < ol.to && lv.to > ol.from {
				return mapping{}, fmt.Errorf("loader: mappings %#x-%#x and %#x-%#x share level-%d tables partially (unsupported)", m.from, m.to, o.from, o.to, l+1)
			}
		}
		if lv.from < lv.to {
			lv.n = (lv.to-lv.from)>>bits + 1
		}
		m.tables += lv.n
	}
	return m, nil
}

// writeTables fills the bootstrap page tables (setup_pgtables_pv).
func (b *builder) writeTables() error {
	const vmask = 1<<48 - 1
	for l := 3; l >= 0; l-- {
		for _, m1 := range b.maps {
			lv := m1.lvls[l]
			if lv.n == 0 {
				continue
			}
			span := uint64(1) << uint(12+9*l) // what one entry maps
			for _, m2 := range b.maps {
				// What the entries of level l point to: the tables of
				// level l-1, or for l == 0 the mapped frames.
				var tFrom, tTo, tPFN uint64
				if l > 0 {
					t := m2.lvls[l-1]
					if t.n == 0 {
						continue
					}
					tFrom, tTo, tPFN = t.from, t.to, t.pfn
				} else {
					tFrom, tTo, tPFN = m2.from, m2.to, m2.pfn
				}
				if tFrom >= lv.to || tTo <= lv.from {
					continue
				}
				start := max(lv.from, tFrom)
				end := min(lv.to, tTo)
				pfn := (start-tFrom)/span + tPFN
				for va := start; va <= end && va >= start; va += span {
					off := (va - lv.from) / span // entry index across this level's tables
					table := lv.pfn + off/512
					prot := uint64(protUpper)
					if l == 0 {
						prot = b.l1Prot(pfn)
					}
					if err := b.cfg.RAM.Write64(table*pageSize+(off%512)*8, pfn*pageSize|prot); err != nil {
						return err
					}
					pfn++
					if va+span < va || va+span > vmask {
						break
					}
				}
			}
		}
	}
	// The hypervisor's L4 slots.
	l4 := b.maps[0].lvls[3].pfn
	for i, e := range b.cfg.HoleL4 {
		if err := b.cfg.RAM.Write64(l4*pageSize+uint64(256+i)*8, e); err != nil {
			return err
		}
	}
	return nil
}

// l1Prot is get_pg_prot for an L1 entry: page-table frames are mapped
// read-only.
func (b *builder) l1Prot(pfn uint64) uint64 {
	for _, m := range b.maps {
		s := m.lvls[3].pfn
		if m.lvls[3].n == 0 {
			// A later mapping's tables start at its first table frame.
			s = m.lvls[2].pfn
			for l := 2; l >= 0; l-- {
				if m.lvls[l].n > 0 {
					s = m.lvls[l].pfn
					break
				}
			}
		}
		if pfn >= s && pfn < s+m.tables {
			return protL1 &^ guestmem.PTEWrite
		}
	}
	return protL1
}

func (b *builder) writeStartInfo(out *Built) error {
	si := make([]byte, abi.StartInfoSize)
	copy(si[abi.StartInfoMagic:], abi.StartInfoMagic64)
	put := func(off int, v uint64) { binary.LittleEndian.PutUint64(si[off:], v) }
	put(abi.StartInfoNrPages, b.cfg.NrPages)
	put(abi.StartInfoSharedInfo, b.cfg.SharedInfoMFN*pageSize)
	binary.LittleEndian.PutUint32(si[abi.StartInfoFlags:], out.Flags)
	put(abi.StartInfoStoreMFN, out.StorePFN)
	binary.LittleEndian.PutUint32(si[abi.StartInfoStoreEvtchn:], b.cfg.StoreEvtchn)
	put(abi.StartInfoConsoleMFN, out.ConsolePFN)
	binary.LittleEndian.PutUint32(si[abi.StartInfoConsoleEvtchn:], b.cfg.ConsoleEvtchn)
	put(abi.StartInfoPTBase, b.img.VirtBase+(out.CR3/pageSize)*pageSize)
	put(abi.StartInfoNrPTFrames, out.NrPTFrames)
	put(abi.StartInfoMFNList, out.P2MVA)
	put(abi.StartInfoModStart, out.ModStart)
	put(abi.StartInfoModLen, out.ModLen)
	copy(si[abi.StartInfoCmdLine:abi.StartInfoCmdLine+abi.MAX_GUEST_CMDLINE-1], b.cfg.Cmdline)
	if b.img.InitP2M != 0 && out.P2MVA == b.img.InitP2M {
		put(abi.StartInfoFirstP2MPFN, out.P2MPFN)
		put(abi.StartInfoNrP2MFrames, out.P2MPages)
	}
	return b.cfg.RAM.Write(out.StartInfoPFN*pageSize, si)
}

// FillHypercallPage writes the 64-bit PV hypercall stubs into page as
// Xen's pv_ring3_init_hypercall_page does: 32 bytes per hypercall,
// `push %rcx; push %r11; mov $nr,%eax; syscall; pop %r11; pop %rcx; ret`,
// except iret (23), which is jumped to: `push %rcx; push %r11; push %rax;
// mov $23,%eax; syscall`. The rest of the page is int3.
func FillHypercallPage(page []byte) {
	for i := range page {
		page[i] = 0xcc
	}
	for i := 0; i < len(page)/32; i++ {
		p := page[i*32:]
		if i == abi.HYPERVISOR_iret {
			copy(p, []byte{0x51, 0x41, 0x53, 0x50, 0xb8, byte(i), 0, 0, 0, 0x0f, 0x05})
			continue
		}
		copy(p, []byte{0x51, 0x41, 0x53, 0xb8, byte(i), 0, 0, 0, 0x0f, 0x05, 0x41, 0x5b, 0x59, 0xc3})
	}
}
