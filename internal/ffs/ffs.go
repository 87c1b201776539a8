// Package ffs reads files from a BSD Fast File System image (UFS1, as
// NetBSD 5's newfs and makefs -t ffs -o version=1 make it), so that tests
// can check on the host what a NetBSD guest wrote to its disk without
// mounting the image. It reads the superblock, inodes with direct,
// single- and double-indirect blocks, and directories; it is read-only
// and trusts nothing in the image (every offset is checked against the
// image's size).
//
// The layout is NetBSD's sys/ufs/ffs/fs.h (struct fs, the cylinder-group
// arithmetic cgbase/cgstart/cgimin, ino_to_fsba) and sys/ufs/ufs/dinode.h,
// dir.h (struct ufs1_dinode, struct direct).
package ffs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
)

const (
	sblockOffset = 8192     // SBLOCK_UFS1
	ufs1Magic    = 0x011954 // FS_UFS1_MAGIC
	rootIno      = 2        // UFS_ROOTINO
	dinodeSize   = 128      // sizeof(struct ufs1_dinode)
	nDirect      = 12       // UFS_NDADDR

	ifmt  = 0o170000
	ifdir = 0o040000
	ifreg = 0o100000
)

// Errors.
var (
	ErrNotFFS   = errors.New("ffs: not a UFS1 file system (no superblock magic at 8192)")
	ErrNotFound = errors.New("ffs: no such file")
	ErrCorrupt  = errors.New("ffs: corrupt file system")
)

// FS is an open UFS1 image.
type FS struct {
	r    io.ReaderAt
	size int64

	bsize, fsize, frag int64
	iblkno, ipg, fpg   int64
	cgoffset, cgmask   int64
	ncg, inopb, nindir int64
}

// Open reads the superblock of the image r of size bytes.
func Open(r io.ReaderAt, size int64) (*FS, error) {
	sb := make([]byte, 1376)
	if _, err := r.ReadAt(sb, sblockOffset); err != nil {
		return nil, fmt.Errorf("ffs: reading the superblock: %w", err)
	}
	le := binary.LittleEndian
	i32 := func(off int) int64 { return int64(int32(le.Uint32(sb[off:]))) }
	if le.Uint32(sb[1372:]) != ufs1Magic {
		return nil, ErrNotFFS
	}
	fs := &FS{
		r: r, size: size,
		iblkno: i32(16), cgoffset: i32(24), cgmask: i32(28), ncg: i32(44),
		bsize: i32(48), fsize: i32(52), frag: i32(56),
		nindir: i32(116), inopb: i32(120), ipg: i32(184), fpg: i32(188),
	}
	switch {
	case fs.bsize < 4096 || fs.bsize > 65536 || fs.bsize&(fs.bsize-1) != 0,
		fs.fsize < 512 || fs.fsize > fs.bsize || fs.fsize&(fs.fsize-1) != 0,
		fs.frag != fs.bsize/fs.fsize,
		fs.ipg <= 0, fs.fpg <= 0, fs.ncg <= 0, fs.inopb != fs.bsize/dinodeSize,
		fs.nindir != fs.bsize/4:
		return nil, fmt.Errorf("%w: superblock bsize=%d fsize=%d frag=%d ipg=%d fpg=%d ncg=%d inopb=%d",
			ErrCorrupt, fs.bsize, fs.fsize, fs.frag, fs.ipg, fs.fpg, fs.ncg, fs.inopb)
	}
	return fs, nil
}

// BlockSize is the file system's block size.
func (fs *FS) BlockSize() int { return int(fs.bsize) }

// inode is the part of a ufs1_dinode this package uses.
type inode struct {
	mode uint16
	size int64
	db   [nDirect]int64
	ib   [3]int64
}

func (fs *FS) readAt(p []byte, off int64) error {
	if off < 0 || off+int64(len(p)) > fs.size {
		return fmt.Errorf("%w: read of %d bytes at %d beyond the image (%d bytes)", ErrCorrupt, len(p), off, fs.size)
	}
	_, err := fs.r.ReadAt(p, off)
	return err
}

// inode reads inode number ino (ino_to_fsba, ino_to_fsbo).
func (fs *FS) inode(ino int64) (*inode, error) {
	if ino < rootIno || ino >= fs.ipg*fs.ncg {
		return nil, fmt.Errorf("%w: inode %d", ErrCorrupt, ino)
	}
	cg := ino / fs.ipg
	cgstart := fs.fpg*cg + fs.cgoffset*(cg&^fs.cgmask)
	frag := cgstart + fs.iblkno + (ino%fs.ipg)/fs.inopb*fs.frag
	off := frag*fs.fsize + (ino%fs.inopb)*dinodeSize
	b := make([]byte, dinodeSize)
	if err := fs.readAt(b, off); err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	in := &inode{mode: le.Uint16(b[0:]), size: int64(le.Uint64(b[8:]))}
	for i := range in.db {
		in.db[i] = int64(int32(le.Uint32(b[40+4*i:])))
	}
	for i := range in.ib {
		in.ib[i] = int64(int32(le.Uint32(b[88+4*i:])))
	}
	if in.size < 0 {
		return nil, fmt.Errorf("%w: inode %d has size %d", ErrCorrupt, ino, in.size)
	}
	return in, nil
}

// indirect reads the block addresses in the indirect block at frag.
func (fs *FS) indirect(frag int64) ([]int64, error) {
	b := make([]byte, fs.bsize)
	if err := fs.readAt(b, frag*fs.fsize); err != nil {
		return nil, err
	}
	a := make([]int64, fs.nindir)
	for i := range a {
		a[i] = int64(int32(binary.LittleEndian.Uint32(b[4*i:])))
	}
	return a, nil
}

// blockAddr maps logical block lbn of in to its first fragment (0: a
// hole).
func (fs *FS) blockAddr(in *inode, lbn int64) (int64, error) {
	if lbn < nDirect {
		return in.db[lbn], nil
	}
	lbn -= nDirect
	if lbn < fs.nindir {
		if in.ib[0] == 0 {
			return 0, nil
		}
		a, err := fs.indirect(in.ib[0])
		if err != nil {
			return 0, err
		}
		return a[lbn], nil
	}
	lbn -= fs.nindir
	if lbn < fs.nindir*fs.nindir {
		if in.ib[1] == 0 {
			return 0, nil
		}
		a, err := fs.indirect(in.ib[1])
		if err != nil {
			return 0, err
		}
		if a[lbn/fs.nindir] == 0 {
			return 0, nil
		}
		b, err := fs.indirect(a[lbn/fs.nindir])
		if err != nil {
			return 0, err
		}
		return b[lbn%fs.nindir], nil
	}
	return 0, fmt.Errorf("%w: file too large for this reader (triple indirect)", ErrCorrupt)
}

// contents reads a whole file (at most limit bytes).
func (fs *FS) contents(in *inode, limit int64) ([]byte, error) {
	if in.size > limit {
		return nil, fmt.Errorf("ffs: file of %d bytes is larger than %d", in.size, limit)
	}
	out := make([]byte, in.size)
	for off := int64(0); off < in.size; off += fs.bsize {
		frag, err := fs.blockAddr(in, off/fs.bsize)
		if err != nil {
			return nil, err
		}
		n := min(fs.bsize, in.size-off)
		if frag == 0 {
			continue // a hole reads as zeros
		}
		if err := fs.readAt(out[off:off+n], frag*fs.fsize); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Entry is a directory entry.
type Entry struct {
	Name string
	Ino  int64
	Type uint8 // DT_* (4 directory, 8 regular file)
}

// readDir parses a directory's contents (struct direct records).
func readDir(b []byte) ([]Entry, error) {
	var out []Entry
	le := binary.LittleEndian
	for off := 0; off+8 <= len(b); {
		ino := le.Uint32(b[off:])
		reclen := int(le.Uint16(b[off+4:]))
		typ, namlen := b[off+6], int(b[off+7])
		if reclen < 8 || off+reclen > len(b) || 8+namlen > reclen {
			return nil, fmt.Errorf("%w: directory record at %d (reclen %d, namlen %d)", ErrCorrupt, off, reclen, namlen)
		}
		if ino != 0 {
			out = append(out, Entry{Name: string(b[off+8 : off+8+namlen]), Ino: int64(ino), Type: typ})
		}
		off += reclen
	}
	return out, nil
}

// lookup walks an absolute path to its inode.
func (fs *FS) lookup(p string) (*inode, error) {
	in, err := fs.inode(rootIno)
	if err != nil {
		return nil, err
	}
	for _, name := range strings.Split(strings.Trim(path.Clean("/"+p), "/"), "/") {
		if name == "" {
			continue
		}
		if in.mode&ifmt != ifdir {
			return nil, fmt.Errorf("%w: %s: a path element is not a directory", ErrNotFound, p)
		}
		b, err := fs.contents(in, 64<<20)
		if err != nil {
			return nil, err
		}
		ents, err := readDir(b)
		if err != nil {
			return nil, err
		}
		found := false
		for _, e := range ents {
			if e.Name == name {
				if in, err = fs.inode(e.Ino); err != nil {
					return nil, err
				}
				found = true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, p)
		}
	}
	return in, nil
}

// ReadFile returns the contents of the regular file at the absolute path
// p (at most 1 GiB).
func (fs *FS) ReadFile(p string) ([]byte, error) {
	in, err := fs.lookup(p)
	if err != nil {
		return nil, err
	}
	if in.mode&ifmt != ifreg {
		return nil, fmt.Errorf("ffs: %s is not a regular file (mode %#o)", p, in.mode)
	}
	return fs.contents(in, 1<<30)
}

// ReadDir lists the directory at the absolute path p.
func (fs *FS) ReadDir(p string) ([]Entry, error) {
	in, err := fs.lookup(p)
	if err != nil {
		return nil, err
	}
	if in.mode&ifmt != ifdir {
		return nil, fmt.Errorf("ffs: %s is not a directory", p)
	}
	b, err := fs.contents(in, 64<<20)
	if err != nil {
		return nil, err
	}
	return readDir(b)
}
