package blkback

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/xenvmm/xenvmm/config"
)

// Store errors.
var (
	// ErrNotSupported: the store cannot do the operation (discard on a
	// file system without hole punching). A request meeting it is
	// answered BLKIF_RSP_EOPNOTSUPP.
	ErrNotSupported = errors.New("blkback: operation not supported by the backing store")
	// ErrReadOnly: a write or discard to a store opened read-only.
	ErrReadOnly = errors.New("blkback: backing store is read-only")
	// ErrShortIO: the host file ended before the transfer did (it shrank
	// under the VMM).
	ErrShortIO = errors.New("blkback: short read or write on the backing store")
	// ErrInUse: another process holds the image (flock).
	ErrInUse = errors.New("blkback: disk image is in use by another process")
	// ErrUnsupportedDisk: a disk spec this backend cannot serve (a format
	// other than raw, a block script, a target that is neither a regular
	// file nor a block device).
	ErrUnsupportedDisk = errors.New("blkback: unsupported disk")
)

// StoreInfo describes a backing store: what the backend advertises.
type StoreInfo struct {
	Size     int64 // bytes; the disk has Size/512 sectors
	ReadOnly bool
	// BlockDevice: a host block device (phy:), not a regular file.
	BlockDevice bool
	// LogicalBlockSize and PhysicalBlockSize are the device's (512 and
	// 512 for a regular file). The backend always advertises
	// sector-size 512; a 4K device gets physical-sector-size 4096.
	LogicalBlockSize, PhysicalBlockSize int
	// Discard: Discard works (hole punching on files, BLKDISCARD on
	// devices). DiscardSecure: secure discard works.
	Discard, DiscardSecure bool
	// DiscardGranularity and DiscardAlignment are the discard-granularity
	// and discard-alignment to advertise, in bytes.
	DiscardGranularity, DiscardAlignment int
	// Direct: requests that meet the alignment go through O_DIRECT.
	Direct bool
	// Path is the host path.
	Path string
}

// Store is a virtual disk's backing store. Offsets and lengths are in
// bytes. The vector methods transfer all of their buffers or fail: a
// write that returned nil is in the host kernel (it survives the VMM
// being killed), and Sync makes everything written before it durable
// (fdatasync). All methods may be called concurrently.
type Store interface {
	ReadV(bufs [][]byte, off int64) error
	WriteV(bufs [][]byte, off int64) error
	Sync() error
	// Discard deallocates [off, off+n); ErrNotSupported if it cannot.
	Discard(off, n int64, secure bool) error
	Info() StoreInfo
	Close() error
}

// StoreOptions tune OpenStore.
type StoreOptions struct {
	// Direct opens a second descriptor with O_DIRECT and sends the
	// requests whose file offset and lengths meet the file's direct-I/O
	// alignment through it (the guest pages, bounced through an aligned
	// buffer if their address does not), bypassing the host page cache.
	// Other requests, and files that do not support O_DIRECT, use the
	// buffered descriptor. Both see the same data: the kernel writes back
	// and invalidates cached pages around direct I/O.
	Direct bool
	// NoLock skips the flock (exclusive for a writable disk, shared for a
	// read-only one) that keeps two VMMs from writing one image.
	NoLock bool
}

// OpenStore opens the backing store a disk spec names: d.HostPath(), a
// raw image file (file:, tap:aio:, a bare path; sparse files are fine)
// or a host block device (phy:, a bare name under /dev), read-only when
// d.ReadOnly (access r, and every cdrom). An empty cdrom drive has no
// store: use EmptyStore.
func OpenStore(d config.Disk, o StoreOptions) (*FileStore, error) {
	if d.Script != "" {
		return nil, fmt.Errorf("%w: %q uses block script %q", ErrUnsupportedDisk, d.Spec, d.Script)
	}
	switch d.Format {
	case "", "raw":
	default:
		return nil, fmt.Errorf("%w: %q: format %s (only raw images are served)", ErrUnsupportedDisk, d.Spec, d.Format)
	}
	path := d.HostPath()
	if path == "" {
		return nil, fmt.Errorf("%w: %q has no target", ErrUnsupportedDisk, d.Spec)
	}
	return OpenFile(path, d.ReadOnly, o)
}

// FileStore is a Store on a host file or block device.
type FileStore struct {
	f      *os.File // buffered
	direct *os.File // O_DIRECT, or nil
	fd     int
	dfd    int
	info   StoreInfo
	// Direct-I/O alignment: file offsets and lengths to dioOff, buffer
	// addresses to dioMem.
	dioOff, dioMem int
	bounce         sync.Pool // *[]byte, aligned to dioMem

	closeOnce sync.Once
	closeErr  error
}

// OpenFile opens path as a Store.
func OpenFile(path string, readOnly bool, o StoreOptions) (*FileStore, error) {
	flags := os.O_RDWR
	if readOnly {
		flags = os.O_RDONLY
	}
	f, err := os.OpenFile(path, flags, 0)
	if errors.Is(err, unix.EISDIR) {
		return nil, fmt.Errorf("%w: %s is a directory", ErrUnsupportedDisk, path)
	}
	if err != nil {
		return nil, fmt.Errorf("blkback: open disk: %w", err)
	}
	s := &FileStore{f: f, fd: int(f.Fd()), dfd: -1}
	s.info.Path, s.info.ReadOnly = path, readOnly
	if err := s.probe(o); err != nil {
		f.Close()
		return nil, err
	}
	if !o.NoLock {
		how := unix.LOCK_EX
		if readOnly {
			how = unix.LOCK_SH
		}
		if err := unix.Flock(s.fd, how|unix.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, fmt.Errorf("%w: %s", ErrInUse, path)
			}
			return nil, fmt.Errorf("blkback: lock %s: %w", path, err)
		}
	}
	if o.Direct {
		s.openDirect(flags)
	}
	return s, nil
}

// probe fills in the size, block sizes and discard support.
func (s *FileStore) probe(o StoreOptions) error {
	var st unix.Stat_t
	if err := unix.Fstat(s.fd, &st); err != nil {
		return fmt.Errorf("blkback: stat %s: %w", s.info.Path, err)
	}
	in := &s.info
	in.LogicalBlockSize, in.PhysicalBlockSize = SectorSize, SectorSize
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		in.Size = st.Size
		in.DiscardGranularity = PageSize
		if !in.ReadOnly {
			// Punching a hole past the end of the file changes no
			// data and tells whether the file system can.
			end := (in.Size + PageSize - 1) &^ (PageSize - 1)
			err := unix.Fallocate(s.fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, end, PageSize)
			in.Discard = err == nil
		}
	case unix.S_IFBLK:
		in.BlockDevice = true
		size, err := blkGetSize64(s.fd)
		if err != nil {
			return fmt.Errorf("blkback: BLKGETSIZE64 %s: %w", s.info.Path, err)
		}
		in.Size = int64(size)
		if n, err := unix.IoctlGetUint32(s.fd, unix.BLKSSZGET); err == nil && n >= SectorSize {
			in.LogicalBlockSize = int(n)
		}
		if n, err := unix.IoctlGetUint32(s.fd, unix.BLKPBSZGET); err == nil && int(n) >= in.LogicalBlockSize {
			in.PhysicalBlockSize = int(n)
		}
		if !in.ReadOnly {
			gran, ok := blockDiscard(st.Rdev)
			in.Discard, in.DiscardGranularity = ok, max(gran, in.LogicalBlockSize)
		}
	default:
		return fmt.Errorf("%w: %s is neither a regular file nor a block device", ErrUnsupportedDisk, s.info.Path)
	}
	return nil
}

// blockDiscard reads the queue limits of block device rdev from sysfs:
// whether it discards, and its discard granularity.
func blockDiscard(rdev uint64) (gran int, ok bool) {
	dir := fmt.Sprintf("/sys/dev/block/%d:%d/queue/", unix.Major(rdev), unix.Minor(rdev))
	readInt := func(name string) int64 {
		b, err := os.ReadFile(dir + name)
		if err != nil {
			return 0
		}
		var v int64
		fmt.Sscan(string(b), &v)
		return v
	}
	if readInt("discard_max_bytes") == 0 {
		return 0, false
	}
	return int(readInt("discard_granularity")), true
}

// openDirect opens the O_DIRECT descriptor if the file supports it, and
// learns its alignment (statx STATX_DIOALIGN; a block device's logical
// block size where statx does not say).
func (s *FileStore) openDirect(flags int) {
	d, err := os.OpenFile(s.info.Path, flags|unix.O_DIRECT, 0)
	if err != nil {
		return
	}
	memAlign, offAlign := 0, 0
	var stx unix.Statx_t
	if err := unix.Statx(int(d.Fd()), "", unix.AT_EMPTY_PATH, unix.STATX_DIOALIGN, &stx); err == nil && stx.Mask&unix.STATX_DIOALIGN != 0 {
		memAlign, offAlign = int(stx.Dio_mem_align), int(stx.Dio_offset_align)
	} else if s.info.BlockDevice {
		memAlign, offAlign = s.info.LogicalBlockSize, s.info.LogicalBlockSize
	}
	if offAlign == 0 || memAlign == 0 || offAlign > PageSize || memAlign > PageSize {
		d.Close() // the file system has no direct I/O (tmpfs before 6.6)
		return
	}
	s.direct, s.dfd = d, int(d.Fd())
	s.dioOff, s.dioMem = offAlign, memAlign
	s.info.Direct = true
}

// Info describes the store.
func (s *FileStore) Info() StoreInfo { return s.info }

// maxIOV is IOV_MAX: preadv and pwritev take at most this many buffers.
const maxIOV = 1024

// ReadV reads len of all bufs at off (preadv).
func (s *FileStore) ReadV(bufs [][]byte, off int64) error {
	return s.rw(bufs, off, false)
}

// WriteV writes bufs at off (pwritev). It returns once the host kernel
// has all the data.
func (s *FileStore) WriteV(bufs [][]byte, off int64) error {
	if s.info.ReadOnly {
		return ErrReadOnly
	}
	return s.rw(bufs, off, true)
}

func (s *FileStore) rw(bufs [][]byte, off int64, write bool) error {
	if s.direct != nil && s.directOK(bufs, off) {
		return s.rwDirect(bufs, off, write)
	}
	return rwFull(s.fd, bufs, off, write)
}

// directOK: the offset and every length are multiples of the direct-I/O
// offset alignment.
func (s *FileStore) directOK(bufs [][]byte, off int64) bool {
	if off%int64(s.dioOff) != 0 {
		return false
	}
	for _, b := range bufs {
		if len(b)%s.dioOff != 0 {
			return false
		}
	}
	return true
}

// rwDirect does the transfer on the O_DIRECT descriptor, bouncing the
// buffers whose address is not aligned.
func (s *FileStore) rwDirect(bufs [][]byte, off int64, write bool) error {
	aligned := true
	for _, b := range bufs {
		if !isAligned(b, s.dioMem) {
			aligned = false
			break
		}
	}
	if aligned {
		return rwFull(s.dfd, bufs, off, write)
	}
	io := make([][]byte, len(bufs))
	bounced := make([]bool, len(bufs))
	var held []*[]byte
	defer func() {
		for _, p := range held {
			s.bounce.Put(p)
		}
	}()
	for i, b := range bufs {
		if isAligned(b, s.dioMem) || len(b) > PageSize {
			io[i] = b
			continue
		}
		p := s.bouncePage()
		held = append(held, p)
		bb := (*p)[:len(b)]
		if write {
			copy(bb, b)
		}
		io[i], bounced[i] = bb, true
	}
	if err := rwFull(s.dfd, io, off, write); err != nil {
		return err
	}
	if !write {
		for i, b := range bufs {
			if bounced[i] {
				copy(b, io[i])
			}
		}
	}
	return nil
}

// bouncePage returns a page-aligned page-sized buffer (segments are at
// most a page).
func (s *FileStore) bouncePage() *[]byte {
	if p, ok := s.bounce.Get().(*[]byte); ok {
		return p
	}
	b := make([]byte, 2*PageSize)
	skip := alignSkip(b, PageSize)
	b = b[skip : skip+PageSize : skip+PageSize]
	return &b
}

// rwFull transfers all of bufs at off on fd, resuming after short
// transfers and EINTR, IOV_MAX buffers at a time.
func rwFull(fd int, bufs [][]byte, off int64, write bool) error {
	for len(bufs) > 0 {
		chunk := bufs[:min(len(bufs), maxIOV)]
		var n int
		var err error
		if write {
			n, err = unix.Pwritev(fd, chunk, off)
		} else {
			n, err = unix.Preadv(fd, chunk, off)
		}
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			if write {
				return fmt.Errorf("blkback: pwritev at %d: %w", off, err)
			}
			return fmt.Errorf("blkback: preadv at %d: %w", off, err)
		}
		if n == 0 {
			return fmt.Errorf("%w at %d", ErrShortIO, off)
		}
		off += int64(n)
		// Drop what was transferred.
		for n > 0 {
			if n >= len(bufs[0]) {
				n -= len(bufs[0])
				bufs = bufs[1:]
				continue
			}
			// A partial buffer: copy the slice header so the
			// caller's array is not modified.
			rest := make([][]byte, len(bufs))
			copy(rest, bufs)
			rest[0] = rest[0][n:]
			bufs, n = rest, 0
		}
		for len(bufs) > 0 && len(bufs[0]) == 0 {
			bufs = bufs[1:]
		}
	}
	return nil
}

// Sync is fdatasync: everything written before it returned is on stable
// storage when it returns nil.
func (s *FileStore) Sync() error {
	if s.info.ReadOnly {
		return nil
	}
	for {
		err := unix.Fdatasync(s.fd)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("blkback: fdatasync %s: %w", s.info.Path, err)
		}
		return nil
	}
}

// Discard punches a hole (regular file: fallocate PUNCH_HOLE|KEEP_SIZE,
// so reads return zeros and the size stays) or discards the range
// (block device: BLKDISCARD, or BLKSECDISCARD when secure).
func (s *FileStore) Discard(off, n int64, secure bool) error {
	if s.info.ReadOnly {
		return ErrReadOnly
	}
	if !s.info.Discard || (secure && !s.info.DiscardSecure) {
		return ErrNotSupported
	}
	if n == 0 {
		return nil
	}
	var err error
	if s.info.BlockDevice {
		req := uint(unix.BLKDISCARD)
		if secure {
			req = unix.BLKSECDISCARD
		}
		err = blkDiscard(s.fd, req, uint64(off), uint64(n))
	} else {
		err = unix.Fallocate(s.fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
	}
	if errors.Is(err, unix.EOPNOTSUPP) {
		return ErrNotSupported
	}
	if err != nil {
		return fmt.Errorf("blkback: discard [%d, +%d) on %s: %w", off, n, s.info.Path, err)
	}
	return nil
}

// Close closes the descriptors (which drops the lock).
func (s *FileStore) Close() error {
	s.closeOnce.Do(func() {
		if s.direct != nil {
			s.direct.Close()
		}
		s.closeErr = s.f.Close()
	})
	return s.closeErr
}

// EmptyStore is the store of an empty cdrom drive: no sectors, read-only.
type EmptyStore struct{}

func (EmptyStore) ReadV([][]byte, int64) error      { return ErrShortIO }
func (EmptyStore) WriteV([][]byte, int64) error     { return ErrReadOnly }
func (EmptyStore) Sync() error                      { return nil }
func (EmptyStore) Discard(int64, int64, bool) error { return ErrReadOnly }
func (EmptyStore) Close() error                     { return nil }
func (EmptyStore) Info() StoreInfo {
	return StoreInfo{ReadOnly: true, LogicalBlockSize: SectorSize, PhysicalBlockSize: SectorSize}
}
