package loader

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/xenvmm/xenvmm/internal/testenv"
	"github.com/xenvmm/xenvmm/xenabi/abi"
	"github.com/xenvmm/xenvmm/xenabi/guestmem"
)

func buildReal(t *testing.T, path string, mib uint64, ramdisk []byte) (*Image, *Built, *guestmem.Space) {
	t.Helper()
	img, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ram, err := guestmem.Map(0, mib<<20)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ram.Close() })
	space, _ := guestmem.NewSpace(ram)
	var hole [16]uint64
	hole[0] = 0xabc000 | 5 // marker for slot 256
	b, err := BuildPV(img, BuildConfig{RAM: space, NrPages: mib << 8, Cmdline: "console=hvc0 root=/dev/xvda",
		SharedInfoMFN: 0x12345, StoreEvtchn: 1, ConsoleEvtchn: 2, HoleL4: hole, Ramdisk: ramdisk})
	if err != nil {
		t.Fatal(err)
	}
	return img, b, space
}

// checkLayout asserts the invariants of xen.h's start-of-day layout.
func checkLayout(t *testing.T, img *Image, b *Built, s *guestmem.Space) {
	t.Helper()
	// The entry point maps to the kernel's bytes.
	for _, seg := range img.Segments {
		if len(seg.Data) < 16 {
			continue
		}
		tr, err := s.Walk(b.CR3, seg.VAddr, guestmem.AccessFetch, true)
		if err != nil {
			t.Fatalf("segment %#x not mapped for CPL3: %v", seg.VAddr, err)
		}
		got, _ := s.Slice(tr.GPA, 16)
		if !bytes.Equal(got, seg.Data[:16]) {
			t.Fatalf("segment %#x: mapped bytes differ", seg.VAddr)
		}
		if tr.GPA != seg.VAddr-img.VirtBase {
			t.Fatalf("segment %#x at gpa %#x, want the 1:1 offset mapping", seg.VAddr, tr.GPA)
		}
	}
	// start_info through RSI.
	si := make([]byte, abi.StartInfoSize)
	if err := s.CopyFromVirt(b.CR3, b.StartInfoVA, si, true); err != nil {
		t.Fatal(err)
	}
	if string(si[:14]) != "xen-3.0-x86_64" || si[14] != 0 {
		t.Fatalf("magic %q", si[:16])
	}
	u64 := func(off int) uint64 { return binary.LittleEndian.Uint64(si[off:]) }
	if u64(abi.StartInfoSharedInfo) != 0x12345000 || u64(abi.StartInfoStoreMFN) != b.StorePFN || u64(abi.StartInfoConsoleMFN) != b.ConsolePFN {
		t.Fatalf("start_info: shared_info %#x store %#x console %#x", u64(abi.StartInfoSharedInfo), u64(abi.StartInfoStoreMFN), u64(abi.StartInfoConsoleMFN))
	}
	if cmd := si[abi.StartInfoCmdLine:]; string(cmd[:bytes.IndexByte(cmd, 0)]) != "console=hvc0 root=/dev/xvda" {
		t.Fatalf("cmd_line %q", cmd[:40])
	}
	// pt_base is the L4, mapped read-only; every bootstrap table is RO.
	if u64(abi.StartInfoPTBase) != img.VirtBase+b.CR3 || u64(abi.StartInfoNrPTFrames) != b.NrPTFrames {
		t.Fatalf("pt_base %#x nr_pt_frames %d", u64(abi.StartInfoPTBase), u64(abi.StartInfoNrPTFrames))
	}
	for _, pt := range b.PageTables {
		va := img.VirtBase + pt.PFN*pageSize
		if pt.PFN >= b.PFNAllocEnd || va >= b.VirtEnd {
			continue // P2M-mapping tables lie outside the initial mapping
		}
		if _, err := s.Walk(b.CR3, va, guestmem.AccessRead, true); err != nil {
			t.Fatalf("page table %#x not readable: %v", pt.PFN, err)
		}
		if _, err := s.Walk(b.CR3, va, guestmem.AccessWrite, true); err == nil {
			t.Fatalf("page table frame %#x (L%d) is mapped writable", pt.PFN, pt.Level)
		}
	}
	// The stack, writable, below a 4 MiB aligned end with >= 512 KiB pad.
	if _, err := s.Walk(b.CR3, b.StackTop-8, guestmem.AccessWrite, true); err != nil {
		t.Fatalf("stack not writable: %v", err)
	}
	if b.VirtEnd%(4<<20) != 0 || b.VirtEnd-b.StackTop < 512<<10 {
		t.Fatalf("mapping ends at %#x, stack top %#x", b.VirtEnd, b.StackTop)
	}
	if _, err := s.Walk(b.CR3, b.VirtEnd-8, guestmem.AccessRead, true); err != nil {
		t.Fatalf("padding not mapped: %v", err)
	}
	// The P2M list is the identity and readable where mfn_list says.
	for _, pfn := range []uint64{0, 1, b.PFNAllocEnd - 1} {
		buf := make([]byte, 8)
		if err := s.CopyFromVirt(b.CR3, b.P2MVA+pfn*8, buf, true); err != nil {
			t.Fatalf("p2m[%d]: %v", pfn, err)
		}
		if v := binary.LittleEndian.Uint64(buf); v != pfn {
			t.Fatalf("p2m[%d] = %d", pfn, v)
		}
	}
	// The hypervisor slots are in the L4.
	if e, _ := s.Read64(b.CR3 + 256*8); e != 0xabc000|5 {
		t.Fatalf("L4[256] = %#x", e)
	}
}

func TestBuildDebianLinux(t *testing.T) {
	img, b, s := buildReal(t, testenv.DebianVmlinuz(t), 256, bytes.Repeat([]byte{0x5a}, 3000))
	checkLayout(t, img, b, s)
	if b.P2MVA != 0x8000000000 {
		t.Fatalf("P2M at %#x, want INIT_P2M", b.P2MVA)
	}
	if b.Flags&abi.SIF_MOD_START_PFN == 0 || b.ModLen != 4096 {
		t.Fatalf("initrd: flags %#x mod_start %#x len %d, want an unmapped initrd by PFN", b.Flags, b.ModStart, b.ModLen)
	}
	got, _ := s.Slice(b.ModStart*pageSize, 3001)
	if got[2999] != 0x5a || got[3000] != 0 {
		t.Fatal("initrd bytes not at mod_start's frame")
	}
	if b.HypercallPagePFN != 0 {
		t.Fatal("hypercall page filled for a kernel without one")
	}
}

func TestBuildNetBSD(t *testing.T) {
	img, b, s := buildReal(t, testenv.Guest(t, "netbsd-5.1-amd64-XEN3_DOMU.gz"), 128, nil)
	checkLayout(t, img, b, s)
	if b.P2MVA < img.VirtKEnd || b.P2MVA >= b.VirtEnd {
		t.Fatalf("P2M at %#x, want inside the mapping after the kernel", b.P2MVA)
	}
	// The hypercall page: stub 17 (xen_version) and 23 (iret).
	page, _ := s.Page(b.HypercallPagePFN)
	want17 := []byte{0x51, 0x41, 0x53, 0xb8, 17, 0, 0, 0, 0x0f, 0x05, 0x41, 0x5b, 0x59, 0xc3, 0xcc}
	if !bytes.Equal(page[17*32:17*32+15], want17) {
		t.Fatalf("hypercall 17 stub % x", page[17*32:17*32+15])
	}
	if !bytes.Equal(page[23*32:23*32+12], []byte{0x51, 0x41, 0x53, 0x50, 0xb8, 23, 0, 0, 0, 0x0f, 0x05, 0xcc}) {
		t.Fatalf("iret stub % x", page[23*32:23*32+12])
	}
	if b.HypercallPagePFN*pageSize+img.VirtBase != 0xffffffff80101000 {
		t.Fatalf("hypercall page frame %#x", b.HypercallPagePFN)
	}
	// BSD symtab copied after the kernel.
	got, _ := s.Slice(img.SymtabVAddr-img.VirtBase, 8)
	if !bytes.Equal(got, img.Symtab[:8]) {
		t.Fatal("BSD symbol table not loaded")
	}
}

func TestBuildTooSmall(t *testing.T) {
	img, err := LoadFile(testenv.DebianVmlinuz(t))
	if err != nil {
		t.Fatal(err)
	}
	ram := guestmem.FromBytes(0, make([]byte, 32<<20))
	s, _ := guestmem.NewSpace(ram)
	_, err = BuildPV(img, BuildConfig{RAM: s, NrPages: 32 << 8})
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("MiB")) {
		t.Fatalf("err = %v, want a clear out-of-memory error", err)
	}
}
