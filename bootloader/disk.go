package bootloader

import (
	"encoding/binary"
	"fmt"
	"io"
)

// Partition is a region of a disk image that may hold a file system.
type Partition struct {
	Number int   // 0 for the whole disk, else 1-based as Linux numbers them
	Start  int64 // bytes
	Size   int64 // bytes
}

// Partitions lists where to look for file systems on a disk image of
// size bytes: the primary partitions of an MBR (DOS) partition table, or
// the entries of a GPT (its protective MBR says so), in table order; the
// whole disk when it has neither. Extended partitions are not followed.
// Entries that fall outside the image are dropped.
func Partitions(r io.ReaderAt, size int64) ([]Partition, error) {
	mbr := make([]byte, 512)
	if size < 512 {
		return []Partition{{Number: 0, Start: 0, Size: size}}, nil
	}
	if _, err := r.ReadAt(mbr, 0); err != nil {
		return nil, fmt.Errorf("reading the MBR: %w", err)
	}
	if mbr[510] != 0x55 || mbr[511] != 0xAA {
		return []Partition{{Number: 0, Start: 0, Size: size}}, nil
	}
	le := binary.LittleEndian
	var parts []Partition
	for i := 0; i < 4; i++ {
		e := mbr[446+16*i:]
		typ := e[4]
		start := int64(le.Uint32(e[8:])) * 512
		n := int64(le.Uint32(e[12:])) * 512
		switch typ {
		case 0:
			continue
		case 0xEE: // protective MBR: a GPT follows
			return gptPartitions(r, size)
		case 0x05, 0x0F, 0x85: // extended
			continue
		}
		if n > 0 && start > 0 && start < size && n <= size-start {
			parts = append(parts, Partition{Number: i + 1, Start: start, Size: n})
		}
	}
	if len(parts) == 0 {
		// A boot sector with no partitions (a file system image whose
		// first sector happens to end in 55 AA): the whole disk.
		return []Partition{{Number: 0, Start: 0, Size: size}}, nil
	}
	return parts, nil
}

// gptPartitions reads a GPT's header (LBA 1) and its entries (UEFI 2.x,
// section 5.3), 512-byte sectors.
func gptPartitions(r io.ReaderAt, size int64) ([]Partition, error) {
	h := make([]byte, 92)
	if _, err := r.ReadAt(h, 512); err != nil {
		return nil, fmt.Errorf("reading the GPT header: %w", err)
	}
	if string(h[:8]) != "EFI PART" {
		return nil, fmt.Errorf("protective MBR but no GPT header at LBA 1")
	}
	le := binary.LittleEndian
	entriesLBA := int64(le.Uint64(h[72:]))
	count := int64(le.Uint32(h[80:]))
	esize := int64(le.Uint32(h[84:]))
	if esize < 128 || esize > 4096 || count > 1024 || entriesLBA <= 0 || entriesLBA > size/512 {
		return nil, fmt.Errorf("GPT header: %d entries of %d bytes at LBA %d", count, esize, entriesLBA)
	}
	table := make([]byte, count*esize)
	if _, err := r.ReadAt(table, entriesLBA*512); err != nil {
		return nil, fmt.Errorf("reading the GPT entries: %w", err)
	}
	var parts []Partition
	for i := int64(0); i < count; i++ {
		e := table[i*esize:]
		if allZero(e[:16]) { // unused entry
			continue
		}
		first, last := int64(le.Uint64(e[32:])), int64(le.Uint64(e[40:]))
		start, end := first*512, (last+1)*512
		if first <= 0 || last < first || end > size || start >= end {
			continue
		}
		parts = append(parts, Partition{Number: int(i) + 1, Start: start, Size: end - start})
	}
	return parts, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
