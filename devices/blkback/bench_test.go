package blkback_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/xenvmm/xenvmm/devices/blkback"
	"github.com/xenvmm/xenvmm/devices/blkback/blktest"
	"github.com/xenvmm/xenvmm/devices/testdev"
)

// benchFileSize is the image each sequential benchmark streams through.
const benchFileSize = 64 << 20

// BenchmarkSequential drives a queue with blktest's frontend (the data
// path of a guest's sequential dd through blkfront: requests of the
// given size, several in flight, each with freshly granted pages) over a
// raw image, and compares the throughput with the host's own pread or
// pwrite of the same file in requests of the same size, into as much
// memory as the backend's requests in flight use. Metrics: MB/s
// (the backend, from SetBytes), host-MB/s (the baseline) and x-host (the
// ratio: 1.0 means the backend moves data as fast as the host alone).
//
// Variants: direct requests of 11 pages (NetBSD's xbd), indirect ones of
// 128 KiB (Linux's blkfront default of 32 segments) and 1 MiB, the data
// moved by mapping the grants (the default) or by grant copy, buffered
// or O_DIRECT.
func BenchmarkSequential(b *testing.B) {
	cases := []struct {
		name     string
		reqBytes int
		indirect bool
		depth    int
		copyMax  int
		direct   bool
	}{
		{"44K-direct-req", 11 * 4096, false, 16, 0, false},
		{"128K", 128 << 10, true, 16, 0, false},
		{"1M", 1 << 20, true, 4, 0, false},
		{"128K-grantcopy", 128 << 10, true, 16, blkback.PageSize, false},
		{"128K-odirect", 128 << 10, true, 16, 0, true},
		{"1M-odirect", 1 << 20, true, 4, 0, true},
	}
	for _, write := range []bool{false, true} {
		for _, tc := range cases {
			name := "read/" + tc.name
			if write {
				name = "write/" + tc.name
			}
			b.Run(name, func(b *testing.B) {
				benchSequential(b, write, tc.reqBytes, tc.depth, tc.indirect, tc.copyMax, tc.direct)
			})
		}
	}
}

func benchSequential(b *testing.B, write bool, reqBytes, depth int, indirect bool, copyMax int, direct bool) {
	path := filepath.Join(b.TempDir(), "bench.img")
	if err := os.WriteFile(path, bytes.Repeat([]byte{0x5a}, benchFileSize), 0o644); err != nil {
		b.Fatal(err)
	}
	s, err := blkback.OpenFile(path, false, blkback.StoreOptions{Direct: direct})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if direct && !s.Info().Direct {
		b.Skip("no O_DIRECT on this file system")
	}
	feat := blktest.AllFeatures
	h, err := blktest.New(blktest.Config{Store: s, Features: feat, CopyMax: copyMax, Pages: 8192})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	h.Front.NoClear = true
	// Warm up both paths (page cache, allocations). The host's pass
	// runs right after each of the backend's, outside the timer, so that
	// both see the same machine load.
	if _, err := h.Front.Sequential(write, benchFileSize, reqBytes, depth, indirect); err != nil {
		b.Fatal(err)
	}
	hostPass := func() blktest.SeqResult {
		r, err := blktest.HostSequential(path, write, benchFileSize, reqBytes, depth*reqBytes, direct)
		if err != nil {
			b.Fatal(err)
		}
		return r
	}
	hostPass()
	b.SetBytes(benchFileSize)
	b.ResetTimer()
	var back, host blktest.SeqResult
	for range b.N {
		r, err := h.Front.Sequential(write, benchFileSize, reqBytes, depth, indirect)
		if err != nil {
			b.Fatal(err)
		}
		back.Bytes += r.Bytes
		back.Elapsed += r.Elapsed
		b.StopTimer()
		r = hostPass()
		host.Bytes += r.Bytes
		host.Elapsed += r.Elapsed
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(host.MBps(), "host-MB/s")
	b.ReportMetric(back.MBps()/host.MBps(), "x-host")
	if err := h.Front.ProtocolErr(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkGrantPaths measures, on the real grant table (through the
// fake guest of devices/testdev), what moving one segment costs each way
// the backend can: map + unmap (the data then moves by preadv/pwritev
// straight into the mapped page, no copy), or one grant copy of the
// segment's bytes (on top of the preadv/pwritev into a local buffer).
// Measured: map+unmap about 190 ns, a copy about 145 ns (512 bytes) to
// 160 ns (4 KiB); per segment the two are close, and mapping keeps the
// data to one pass over memory, so QueueConfig.CopyMax defaults to 0.
func BenchmarkGrantPaths(b *testing.B) {
	g, err := testdev.NewGuest(testdev.GuestConfig{DomID: 9, Pages: 64})
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	gfn, _, err := g.AllocPage()
	if err != nil {
		b.Fatal(err)
	}
	ref, err := g.Grant(gfn, false)
	if err != nil {
		b.Fatal(err)
	}
	grants := blkback.DomainGrants{M: g.Grants(), Dom: g.DomID()}
	buf := make([]byte, 4096)
	b.Run("map+unmap", func(b *testing.B) {
		for range b.N {
			m, err := grants.Map(ref, false)
			if err != nil {
				b.Fatal(err)
			}
			_ = m.Bytes()[100]
			if err := m.Unmap(); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, n := range []int{512, 4096} {
		b.Run("copy-"+strconv.Itoa(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			for range b.N {
				if err := grants.CopyTo(ref, 0, buf[:n]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
