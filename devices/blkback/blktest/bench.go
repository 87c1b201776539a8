package blktest

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xenvmm/xenvmm/devices/blkback"
)

// SeqResult is the outcome of a sequential transfer.
type SeqResult struct {
	Bytes   int64
	Elapsed time.Duration
}

// MBps is the throughput in MB/s (10^6 bytes per second).
func (r SeqResult) MBps() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Bytes) / r.Elapsed.Seconds() / 1e6
}

// Sequential reads (or writes) size bytes from sector 0 on, in requests
// of reqBytes (whole pages; more than 11 pages need indirect), keeping
// depth requests in flight, as a guest's sequential dd through blkfront
// does. Written pages carry whatever they held; read data is not looked
// at. Any status but BLKIF_RSP_OKAY is an error.
func (f *Front) Sequential(write bool, size int64, reqBytes, depth int, indirect bool) (SeqResult, error) {
	if reqBytes <= 0 || reqBytes%blkback.PageSize != 0 || depth <= 0 {
		return SeqResult{}, fmt.Errorf("blktest: sequential requests of %d bytes, depth %d", reqBytes, depth)
	}
	op := uint8(blkback.OpRead)
	if write {
		op = blkback.OpWrite
	}
	shape := Contiguous(reqBytes / blkback.SectorSize)
	var inflight []*Transfer
	finish := func() error {
		t := inflight[0]
		inflight = inflight[1:]
		rsp, err := t.Finish()
		if err == nil && rsp.Status != blkback.RspOkay {
			err = fmt.Errorf("blktest: status %d", rsp.Status)
		}
		return err
	}
	start := time.Now()
	var done int64
	for off := int64(0); off+int64(reqBytes) <= size; off += int64(reqBytes) {
		if len(inflight) == depth {
			if err := finish(); err != nil {
				return SeqResult{}, err
			}
		}
		t, err := f.StartIO(op, uint64(off/blkback.SectorSize), nil, shape, indirect)
		if err != nil {
			return SeqResult{}, err
		}
		inflight = append(inflight, t)
		done += int64(reqBytes)
	}
	for len(inflight) > 0 {
		if err := finish(); err != nil {
			return SeqResult{}, err
		}
	}
	return SeqResult{Bytes: done, Elapsed: time.Since(start)}, nil
}

// HostSequential is the host's own sequential transfer of the same file:
// pread (or pwrite) of reqBytes at a time from offset 0, with O_DIRECT if
// direct, cycling through bufBytes of page-aligned memory (reqBytes if
// smaller): reqBytes alone is dd's cache-hot single buffer; depth *
// reqBytes touches as much memory as the backend's requests in flight
// do. It is the baseline the backend's throughput is compared with.
func HostSequential(path string, write bool, size int64, reqBytes, bufBytes int, direct bool) (SeqResult, error) {
	flags := os.O_RDONLY
	if write {
		flags = os.O_WRONLY
	}
	if direct {
		flags |= unix.O_DIRECT
	}
	f, err := os.OpenFile(path, flags, 0)
	if err != nil {
		return SeqResult{}, err
	}
	defer f.Close()
	fd := int(f.Fd())
	nbuf := max(1, bufBytes/reqBytes)
	mem, err := unix.Mmap(-1, 0, nbuf*reqBytes, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return SeqResult{}, err
	}
	defer unix.Munmap(mem)
	clear(mem) // fault it in, as the guest's memory is
	start := time.Now()
	var done int64
	for i, off := 0, int64(0); off+int64(reqBytes) <= size; i, off = i+1, off+int64(reqBytes) {
		buf := mem[i%nbuf*reqBytes : (i%nbuf+1)*reqBytes]
		var n int
		if write {
			n, err = unix.Pwrite(fd, buf, off)
		} else {
			n, err = unix.Pread(fd, buf, off)
		}
		if err != nil {
			return SeqResult{}, err
		}
		if n != reqBytes {
			return SeqResult{}, errors.New("blktest: short host transfer")
		}
		done += int64(n)
	}
	return SeqResult{Bytes: done, Elapsed: time.Since(start)}, nil
}
