package bootloader

import (
	"bytes"
	"testing"
)

// FuzzMenus: any menu text parses or errors; a parsed menu's default is
// one of its entries.
func FuzzMenus(f *testing.F) {
	f.Add(debianGrubCfg)
	f.Add("default 1\ntitle a\nkernel (hd0,0)/k x\ninitrd /i\ntitle b\nkernel /k2\n")
	f.Add("submenu 'x' {\nmenuentry 'y' {\nlinux /k\n}\n}\nset default='x>y'\n")
	f.Fuzz(func(t *testing.T, text string) {
		for _, parse := range []func(string) (*Menu, error){ParseGrubCfg, ParseMenuLst} {
			m, err := parse(text)
			if err == nil && (m.Default < 0 || m.Default >= len(m.Entries)) {
				t.Fatalf("default %d of %d entries", m.Default, len(m.Entries))
			}
		}
	})
}

// FuzzPartitions: any first sectors give partitions inside the disk or
// an error.
func FuzzPartitions(f *testing.F) {
	f.Add(withMBR(make([]byte, 4096))[:2048])
	f.Add(withGPT(make([]byte, 4096))[:2048])
	f.Fuzz(func(t *testing.T, b []byte) {
		size := int64(len(b)) * 64 // the rest of the disk reads as zeros
		disk := make([]byte, size)
		copy(disk, b)
		parts, err := Partitions(bytes.NewReader(disk), size)
		if err != nil {
			return
		}
		for _, p := range parts {
			if p.Start < 0 || p.Size <= 0 && size > 0 || p.Start+p.Size > size {
				t.Fatalf("partition %+v outside a disk of %d bytes", p, size)
			}
		}
	})
}
