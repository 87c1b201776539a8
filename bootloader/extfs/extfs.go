// Package extfs reads files from an ext2, ext3 or ext4 file system image,
// read-only, for xenvmm's native pygrub: the kernel, initrd and GRUB
// menu a disk image carries. It follows the on-disk format of Linux's
// fs/ext4/ext4.h and Documentation/filesystems/ext4 (superblock, group
// descriptors of 32 or 64 bytes, inodes, block maps with indirect blocks,
// extent trees, linear and htree directories read linearly, fast and
// slow symlinks).
//
// A disk image is untrusted input — the guest wrote it, and pygrub runs
// before the guest with the host's privileges (Xen's XSA-4 was pygrub's):
// every offset, length and count read from the image is checked against
// the image, recursion and symlink chains are bounded, and the total a
// read may return is capped. Nothing is written.
package extfs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
)

// Errors.
var (
	ErrNotExt      = errors.New("extfs: not an ext2/3/4 file system (no superblock magic)")
	ErrNotFound    = errors.New("extfs: no such file or directory")
	ErrCorrupt     = errors.New("extfs: corrupt file system")
	ErrUnsupported = errors.New("extfs: unsupported feature")
)

const (
	superOffset = 1024
	magic       = 0xEF53
	rootIno     = 2

	incompatFiletype   = 0x2
	incompatRecover    = 0x4
	incompatJournalDev = 0x8
	incompatMetaBG     = 0x10
	incompatExtents    = 0x40
	incompat64bit      = 0x80
	incompatFlexBG     = 0x200
	incompatCsumSeed   = 0x2000
	incompatLargeDir   = 0x4000
	incompatInlineData = 0x8000
	incompatEncrypt    = 0x10000
	incompatCasefold   = 0x20000
	incompatMMP        = 0x100
	incompatEAInode    = 0x400
	incompatDirData    = 0x1000
	incompatCompress   = 0x1

	extentsFlag    = 0x80000
	inlineDataFlag = 0x10000000
	encryptFlag    = 0x800

	sIFMT  = 0xF000
	sIFDIR = 0x4000
	sIFREG = 0x8000
	sIFLNK = 0xA000

	maxSymlinks  = 40
	maxDepth     = 5 // extent tree depth (ext4 allows at most 5)
	maxFileBytes = 1 << 30
)

// supportedIncompat are the incompatible features this reader handles;
// an image with any other is refused with ErrUnsupported.
const supportedIncompat = incompatFiletype | incompatRecover | incompatExtents | incompat64bit |
	incompatFlexBG | incompatCsumSeed | incompatLargeDir | incompatMMP | incompatMetaBG

// FS is an open ext2/3/4 file system.
type FS struct {
	r    io.ReaderAt
	size int64

	blockSize      int64
	firstDataBlock int64
	blocksPerGroup int64
	inodesPerGroup int64
	inodesCount    int64
	blocksCount    int64
	inodeSize      int64
	descSize       int64
	groups         int64
	incompat       uint32
	firstMetaBG    int64
	descPerBlock   int64
	NeedsRecovery  bool // the journal holds changes not yet applied (the guest did not unmount cleanly)
	Label          string
}

// Open reads the superblock of the file system in r (size bytes).
func Open(r io.ReaderAt, size int64) (*FS, error) {
	sb := make([]byte, 1024)
	if size < superOffset+1024 {
		return nil, ErrNotExt
	}
	if _, err := r.ReadAt(sb, superOffset); err != nil {
		return nil, fmt.Errorf("extfs: reading the superblock: %w", err)
	}
	le := binary.LittleEndian
	if le.Uint16(sb[0x38:]) != magic {
		return nil, ErrNotExt
	}
	logBlock := le.Uint32(sb[0x18:])
	if logBlock > 6 { // 64 KiB blocks at most
		return nil, fmt.Errorf("%w: block size 2^(10+%d)", ErrCorrupt, logBlock)
	}
	fs := &FS{
		r: r, size: size,
		blockSize:      1024 << logBlock,
		firstDataBlock: int64(le.Uint32(sb[0x14:])),
		blocksPerGroup: int64(le.Uint32(sb[0x20:])),
		inodesPerGroup: int64(le.Uint32(sb[0x28:])),
		inodesCount:    int64(le.Uint32(sb[0x0:])),
		blocksCount:    int64(le.Uint32(sb[0x4:])),
		inodeSize:      128,
		descSize:       32,
		incompat:       le.Uint32(sb[0x60:]),
		firstMetaBG:    int64(le.Uint32(sb[0x104:])),
		Label:          strings.TrimRight(string(sb[0x78:0x88]), "\x00"),
	}
	if le.Uint32(sb[0x4C:]) >= 1 { // EXT2_DYNAMIC_REV
		fs.inodeSize = int64(le.Uint16(sb[0x58:]))
	}
	if fs.incompat&incompat64bit != 0 {
		fs.blocksCount |= int64(le.Uint32(sb[0x150:])) << 32
		if ds := int64(le.Uint16(sb[0xFE:])); ds != 0 {
			fs.descSize = ds
		}
	}
	if un := fs.incompat &^ supportedIncompat; un != 0 {
		return nil, fmt.Errorf("%w: incompatible features %#x (%s)", ErrUnsupported, un, featureNames(un))
	}
	fs.NeedsRecovery = fs.incompat&incompatRecover != 0
	switch {
	case fs.blocksPerGroup <= 0 || fs.inodesPerGroup <= 0 || fs.blocksCount <= 0,
		fs.inodeSize < 128 || fs.inodeSize > fs.blockSize || fs.inodeSize&(fs.inodeSize-1) != 0,
		fs.descSize < 32 || fs.descSize > 1024 || fs.descSize&(fs.descSize-1) != 0,
		fs.firstDataBlock > 1:
		return nil, fmt.Errorf("%w: superblock (blocks/group %d, inodes/group %d, inode size %d, desc size %d)",
			ErrCorrupt, fs.blocksPerGroup, fs.inodesPerGroup, fs.inodeSize, fs.descSize)
	}
	fs.groups = (fs.blocksCount - fs.firstDataBlock + fs.blocksPerGroup - 1) / fs.blocksPerGroup
	fs.descPerBlock = fs.blockSize / fs.descSize
	return fs, nil
}

func featureNames(f uint32) string {
	names := map[uint32]string{
		incompatCompress: "compression", incompatJournalDev: "journal_dev", incompatEAInode: "ea_inode",
		incompatDirData: "dirdata", incompatInlineData: "inline_data", incompatEncrypt: "encrypt",
		incompatCasefold: "casefold",
	}
	var out []string
	for bit := uint32(1); bit != 0; bit <<= 1 {
		if f&bit != 0 {
			if n, ok := names[bit]; ok {
				out = append(out, n)
			} else {
				out = append(out, fmt.Sprintf("%#x", bit))
			}
		}
	}
	return strings.Join(out, ", ")
}

func (fs *FS) readAt(p []byte, off int64) error {
	if off < 0 || off > fs.size || int64(len(p)) > fs.size-off {
		return fmt.Errorf("%w: read of %d bytes at %d beyond the file system (%d bytes)", ErrCorrupt, len(p), off, fs.size)
	}
	if _, err := fs.r.ReadAt(p, off); err != nil {
		return fmt.Errorf("extfs: %w", err)
	}
	return nil
}

func (fs *FS) block(n int64) ([]byte, error) {
	if n < 0 || n >= fs.blocksCount {
		return nil, fmt.Errorf("%w: block %d of %d", ErrCorrupt, n, fs.blocksCount)
	}
	b := make([]byte, fs.blockSize)
	return b, fs.readAt(b, n*fs.blockSize)
}

// descBlock is the block holding group g's descriptor.
func (fs *FS) descBlock(g int64) int64 {
	if fs.incompat&incompatMetaBG != 0 && g/fs.descPerBlock >= fs.firstMetaBG {
		// META_BG: the descriptors of each meta group (one block of
		// them) are in its first group's first block.
		metaGroup := g / fs.descPerBlock
		return fs.firstDataBlock + metaGroup*fs.descPerBlock*fs.blocksPerGroup + fs.hasSuper(metaGroup*fs.descPerBlock)
	}
	return fs.firstDataBlock + 1 + g/fs.descPerBlock
}

// hasSuper is 1 when group g holds a superblock backup (sparse_super: 0,
// 1 and powers of 3, 5, 7), as the meta_bg layout counts it.
func (fs *FS) hasSuper(g int64) int64 {
	if g <= 1 {
		return 1
	}
	for _, p := range []int64{3, 5, 7} {
		n := p
		for n < g {
			n *= p
		}
		if n == g {
			return 1
		}
	}
	return 0
}

// inodeTable is the first block of group g's inode table.
func (fs *FS) inodeTable(g int64) (int64, error) {
	if g < 0 || g >= fs.groups {
		return 0, fmt.Errorf("%w: group %d of %d", ErrCorrupt, g, fs.groups)
	}
	b, err := fs.block(fs.descBlock(g))
	if err != nil {
		return 0, err
	}
	off := (g % fs.descPerBlock) * fs.descSize
	le := binary.LittleEndian
	t := int64(le.Uint32(b[off+8:]))
	if fs.descSize >= 64 {
		t |= int64(le.Uint32(b[off+0x28:])) << 32
	}
	return t, nil
}

// inode is what this package uses of an ext4_inode.
type inode struct {
	num   int64
	mode  uint16
	size  int64
	flags uint32
	block [60]byte
	nblk  uint32 // i_blocks_lo: 0 for a fast symlink
}

func (fs *FS) inode(num int64) (*inode, error) {
	if num < 1 || num > fs.inodesCount {
		return nil, fmt.Errorf("%w: inode %d of %d", ErrCorrupt, num, fs.inodesCount)
	}
	g := (num - 1) / fs.inodesPerGroup
	table, err := fs.inodeTable(g)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 128)
	idx := (num - 1) % fs.inodesPerGroup
	if table < 0 || table >= fs.blocksCount {
		return nil, fmt.Errorf("%w: inode table of group %d at block %d", ErrCorrupt, g, table)
	}
	if err := fs.readAt(b, table*fs.blockSize+idx*fs.inodeSize); err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	in := &inode{
		num:   num,
		mode:  le.Uint16(b[0:]),
		size:  int64(le.Uint32(b[4:])) | int64(le.Uint32(b[0x6C:]))<<32,
		flags: le.Uint32(b[0x20:]),
		nblk:  le.Uint32(b[0x1C:]),
	}
	copy(in.block[:], b[0x28:0x28+60])
	if in.size < 0 {
		return nil, fmt.Errorf("%w: inode %d has size %d", ErrCorrupt, num, in.size)
	}
	return in, nil
}

// extent maps file blocks [lblk, lblk+n) to physical blocks from pblk
// (pblk 0: a hole or an unwritten extent, read as zeros).
type extent struct{ lblk, n, pblk int64 }

// extents lists the extents of an extent-mapped inode, walking its tree.
func (fs *FS) extents(in *inode) ([]extent, error) {
	var out []extent
	var walk func(node []byte, depth int) error
	walk = func(node []byte, depth int) error {
		le := binary.LittleEndian
		if len(node) < 12 || le.Uint16(node[0:]) != 0xF30A {
			return fmt.Errorf("%w: inode %d: bad extent header", ErrCorrupt, in.num)
		}
		entries := int(le.Uint16(node[2:]))
		d := int(le.Uint16(node[6:]))
		if d > maxDepth || depth > maxDepth || 12+12*entries > len(node) {
			return fmt.Errorf("%w: inode %d: extent node (depth %d, %d entries)", ErrCorrupt, in.num, d, entries)
		}
		for i := 0; i < entries; i++ {
			e := node[12+12*i:]
			if d == 0 {
				n := int64(le.Uint16(e[4:]))
				p := int64(le.Uint16(e[6:]))<<32 | int64(le.Uint32(e[8:]))
				if n > 32768 { // unwritten: reads as zeros
					n -= 32768
					p = 0
				}
				out = append(out, extent{lblk: int64(le.Uint32(e[0:])), n: n, pblk: p})
				if len(out) > 1<<20 {
					return fmt.Errorf("%w: inode %d: too many extents", ErrCorrupt, in.num)
				}
				continue
			}
			leaf := int64(le.Uint16(e[8:]))<<32 | int64(le.Uint32(e[4:]))
			b, err := fs.block(leaf)
			if err != nil {
				return err
			}
			if err := walk(b, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	return out, walk(in.block[:], 0)
}

// blockMap lists the blocks of a block-mapped (ext2/ext3) inode up to
// count logical blocks: 12 direct, then single, double and triple
// indirect blocks.
func (fs *FS) blockMap(in *inode, count int64) ([]int64, error) {
	le := binary.LittleEndian
	out := make([]int64, 0, min(count, 1<<16))
	var ind func(blk int64, level int) error
	ind = func(blk int64, level int) error {
		if int64(len(out)) >= count {
			return nil
		}
		if blk == 0 {
			// A hole: as many zero blocks as this subtree maps.
			n := int64(1)
			for i := 0; i < level; i++ {
				n *= fs.blockSize / 4
			}
			for i := int64(0); i < n && int64(len(out)) < count; i++ {
				out = append(out, 0)
			}
			return nil
		}
		if level == 0 {
			out = append(out, blk)
			return nil
		}
		b, err := fs.block(blk)
		if err != nil {
			return err
		}
		for i := int64(0); i < fs.blockSize/4 && int64(len(out)) < count; i++ {
			if err := ind(int64(le.Uint32(b[4*i:])), level-1); err != nil {
				return err
			}
		}
		return nil
	}
	for i := 0; i < 15; i++ {
		level := 0
		if i >= 12 {
			level = i - 11
		}
		if err := ind(int64(le.Uint32(in.block[4*i:])), level); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// contents reads a whole file of at most limit bytes.
func (fs *FS) contents(in *inode, limit int64) ([]byte, error) {
	if in.size > limit {
		return nil, fmt.Errorf("extfs: inode %d: %d bytes is more than %d", in.num, in.size, limit)
	}
	if in.flags&inlineDataFlag != 0 {
		return nil, fmt.Errorf("%w: inode %d has inline data", ErrUnsupported, in.num)
	}
	if in.flags&encryptFlag != 0 {
		return nil, fmt.Errorf("%w: inode %d is encrypted", ErrUnsupported, in.num)
	}
	out := make([]byte, in.size)
	nblocks := (in.size + fs.blockSize - 1) / fs.blockSize
	put := func(lblk, pblk int64) error {
		if lblk < 0 || lblk >= nblocks || pblk == 0 {
			return nil
		}
		off := lblk * fs.blockSize
		n := min(fs.blockSize, in.size-off)
		if pblk < 0 || pblk >= fs.blocksCount {
			return fmt.Errorf("%w: inode %d: block %d of %d", ErrCorrupt, in.num, pblk, fs.blocksCount)
		}
		return fs.readAt(out[off:off+n], pblk*fs.blockSize)
	}
	if in.flags&extentsFlag != 0 {
		exts, err := fs.extents(in)
		if err != nil {
			return nil, err
		}
		// One read per extent: its blocks are contiguous on disk.
		for _, e := range exts {
			if e.pblk == 0 || e.lblk >= nblocks {
				continue // a hole, or past the end: zeros
			}
			n := min(e.n, nblocks-e.lblk)
			if e.pblk < 0 || n > fs.blocksCount-e.pblk {
				return nil, fmt.Errorf("%w: inode %d: extent of %d blocks at %d, of %d", ErrCorrupt, in.num, n, e.pblk, fs.blocksCount)
			}
			off := e.lblk * fs.blockSize
			end := min(off+n*fs.blockSize, in.size)
			if err := fs.readAt(out[off:end], e.pblk*fs.blockSize); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	blocks, err := fs.blockMap(in, nblocks)
	if err != nil {
		return nil, err
	}
	for i, p := range blocks {
		if err := put(int64(i), p); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Entry is a directory entry.
type Entry struct {
	Name string
	Ino  int64
}

func readDir(b []byte) ([]Entry, error) {
	le := binary.LittleEndian
	var out []Entry
	for off := 0; off+8 <= len(b); {
		ino := le.Uint32(b[off:])
		reclen := int(le.Uint16(b[off+4:]))
		namelen := int(b[off+6])
		if reclen < 8 || off+reclen > len(b) || 8+namelen > reclen {
			return nil, fmt.Errorf("%w: directory record at %d (rec_len %d, name_len %d)", ErrCorrupt, off, reclen, namelen)
		}
		if ino != 0 && namelen > 0 {
			out = append(out, Entry{Name: string(b[off+8 : off+8+namelen]), Ino: int64(ino)})
		}
		off += reclen
	}
	return out, nil
}

// lookup resolves an absolute path, following symlinks (at most 40),
// and returns its inode.
func (fs *FS) lookup(p string, follow bool) (*inode, error) {
	hops := 0
	var walk func(dir *inode, p string, follow bool) (*inode, error)
	walk = func(dir *inode, p string, follow bool) (*inode, error) {
		if strings.HasPrefix(p, "/") {
			root, err := fs.inode(rootIno)
			if err != nil {
				return nil, err
			}
			dir = root
		}
		parts := strings.Split(strings.Trim(p, "/"), "/")
		cur := dir
		for i, name := range parts {
			if name == "" || name == "." {
				continue
			}
			if cur.mode&sIFMT != sIFDIR {
				return nil, fmt.Errorf("%w: %s: not a directory", ErrNotFound, p)
			}
			b, err := fs.contents(cur, 64<<20)
			if err != nil {
				return nil, err
			}
			ents, err := readDir(b)
			if err != nil {
				return nil, err
			}
			var next *inode
			for _, e := range ents {
				if e.Name == name {
					if next, err = fs.inode(e.Ino); err != nil {
						return nil, err
					}
					break
				}
			}
			if next == nil {
				return nil, fmt.Errorf("%w: %s", ErrNotFound, p)
			}
			last := i == len(parts)-1
			if next.mode&sIFMT == sIFLNK && (!last || follow) {
				if hops++; hops > maxSymlinks {
					return nil, fmt.Errorf("extfs: %s: too many levels of symbolic links", p)
				}
				target, err := fs.readlink(next)
				if err != nil {
					return nil, err
				}
				if next, err = walk(cur, target, true); err != nil {
					return nil, err
				}
			}
			cur = next
		}
		return cur, nil
	}
	return walk(nil, "/"+strings.TrimPrefix(path.Clean("/"+p), "/"), follow)
}

func (fs *FS) readlink(in *inode) (string, error) {
	if in.size > 4096 {
		return "", fmt.Errorf("%w: symlink inode %d of %d bytes", ErrCorrupt, in.num, in.size)
	}
	if in.size < 60 && in.flags&(extentsFlag|inlineDataFlag) == 0 && in.nblk == 0 {
		return string(in.block[:in.size]), nil // fast symlink
	}
	b, err := fs.contents(in, 4096)
	return string(b), err
}

// ReadFile returns the contents of the regular file at the absolute path
// p, following symlinks; at most 1 GiB.
func (fs *FS) ReadFile(p string) ([]byte, error) {
	in, err := fs.lookup(p, true)
	if err != nil {
		return nil, err
	}
	if in.mode&sIFMT != sIFREG {
		return nil, fmt.Errorf("extfs: %s is not a regular file (mode %#o)", p, in.mode)
	}
	return fs.contents(in, maxFileBytes)
}

// ReadDir lists the directory at the absolute path p.
func (fs *FS) ReadDir(p string) ([]Entry, error) {
	in, err := fs.lookup(p, true)
	if err != nil {
		return nil, err
	}
	if in.mode&sIFMT != sIFDIR {
		return nil, fmt.Errorf("extfs: %s is not a directory", p)
	}
	b, err := fs.contents(in, 64<<20)
	if err != nil {
		return nil, err
	}
	return readDir(b)
}
