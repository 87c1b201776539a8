package blkback_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/xenvmm/xenvmm/config"
	"github.com/xenvmm/xenvmm/devices/blkback"
	"github.com/xenvmm/xenvmm/devices/blkback/blktest"
)

// sparseImage makes a sparse file of size bytes and returns its path.
func sparseImage(t testing.TB, size int64) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return path
}

func parseDisk(t testing.TB, spec string) config.Disk {
	t.Helper()
	d, err := config.ParseDisk(spec)
	if err != nil {
		t.Fatalf("ParseDisk(%q): %v", spec, err)
	}
	return d
}

func allocatedBytes(t testing.TB, path string) int64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

func TestOpenStoreErrors(t *testing.T) {
	img := sparseImage(t, 1<<20)
	dir := t.TempDir()
	tests := []struct {
		spec string
		want error
	}{
		{"format=qcow2,vdev=xvda,target=" + img, blkback.ErrUnsupportedDisk},
		{"script=block-iscsi,vdev=xvda,target=iqn.x", blkback.ErrUnsupportedDisk},
		{dir + ",raw,xvda,w", blkback.ErrUnsupportedDisk},
		{"/dev/null,raw,xvda,w", blkback.ErrUnsupportedDisk},
		{filepath.Join(dir, "missing.img") + ",raw,xvda,w", os.ErrNotExist},
	}
	for _, tt := range tests {
		s, err := blkback.OpenStore(parseDisk(t, tt.spec), blkback.StoreOptions{})
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.spec, err, tt.want)
		}
		if s != nil {
			s.Close()
		}
	}
}

// TestFileStoreThroughQueue serves a sparse raw image (file:, tap:aio:
// and bare-path specs) through a queue: random writes land at the right
// offsets of the file, read back, and the file stays sparse.
func TestFileStoreThroughQueue(t *testing.T) {
	for _, prefix := range []string{"file:", "tap:aio:", "raw:"} {
		for _, direct := range []bool{false, true} {
			name := strings.ReplaceAll(strings.TrimSuffix(prefix, ":"), ":", "-") + map[bool]string{false: "/buffered", true: "/direct"}[direct]
			t.Run(name, func(t *testing.T) {
				const size = 64 << 20
				img := sparseImage(t, size)
				d := parseDisk(t, prefix+img+",xvda,w")
				s, err := blkback.OpenStore(d, blkback.StoreOptions{Direct: direct})
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				info := s.Info()
				if info.Size != size || info.ReadOnly || info.BlockDevice || !info.Discard {
					t.Errorf("info %+v", info)
				}
				if direct && !info.Direct {
					t.Log("file system without O_DIRECT: buffered")
				}
				h := newHarness(t, blktest.Config{Store: s, Features: blktest.AllFeatures, Pages: 8192})
				rng := rand.New(rand.NewPCG(20, 20))
				type w struct {
					off  int64
					data []byte
				}
				var ws []w
				for i := range 40 {
					shape := randShape(rng, 1+rng.IntN(11))
					if i%4 == 0 {
						shape = blktest.Contiguous(8 * (1 + rng.IntN(200)))
					}
					n := blktest.ShapeLen(shape)
					// Disjoint 1 MiB slots, so later writes do not
					// overwrite earlier ones.
					off := int64(i)<<20 + int64(rng.IntN((1<<20-n)/512))*512
					data := randBytes(rng, n)
					rsp, err := h.Front.Write(uint64(off/512), data, shape, len(shape) > 11 || rng.IntN(2) == 0)
					wantStatus(t, "write", rsp, err, blkback.RspOkay)
					rsp, got, err := h.Front.Read(uint64(off/512), shape, len(shape) > 11 || rng.IntN(2) == 0)
					wantStatus(t, "read", rsp, err, blkback.RspOkay)
					if !bytes.Equal(got, data) {
						t.Fatalf("write %d: read back differs", i)
					}
					ws = append(ws, w{off, data})
				}
				rsp, err := h.Front.Flush()
				wantStatus(t, "flush", rsp, err, blkback.RspOkay)
				file, err := os.ReadFile(img)
				if err != nil {
					t.Fatal(err)
				}
				for i, w := range ws {
					if !bytes.Equal(file[w.off:w.off+int64(len(w.data))], w.data) {
						t.Fatalf("write %d not in the image at %d", i, w.off)
					}
				}
				if a := allocatedBytes(t, img); a > 24<<20 {
					t.Errorf("image has %d bytes allocated: not sparse", a)
				}
			})
		}
	}
}

// TestFileStoreDiscardPunchesHoles: a discard through the queue punches
// a hole in the image: the range reads as zeros, its blocks are freed,
// and the bytes around it are intact.
func TestFileStoreDiscardPunchesHoles(t *testing.T) {
	img := sparseImage(t, 8<<20)
	rng := rand.New(rand.NewPCG(21, 21))
	data := randBytes(rng, 4<<20)
	if err := os.WriteFile(img, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 8<<20); err != nil {
		t.Fatal(err)
	}
	s, err := blkback.OpenStore(parseDisk(t, img+",raw,xvda,w"), blkback.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !s.Info().Discard {
		t.Skip("the file system cannot punch holes")
	}
	h := newHarness(t, blktest.Config{Store: s, Features: blktest.AllFeatures})
	before := allocatedBytes(t, img)
	// 1 MiB at 1 MiB, and an odd range that ends mid-block.
	rsp, err := h.Front.Discard(2048, 2048, false)
	wantStatus(t, "discard", rsp, err, blkback.RspOkay)
	rsp, err = h.Front.Discard(6001, 13, false)
	wantStatus(t, "discard", rsp, err, blkback.RspOkay)
	rsp, err = h.Front.Discard(0, 16, true) // secure: not offered for files, done as plain
	wantStatus(t, "secure discard", rsp, err, blkback.RspOkay)
	after := allocatedBytes(t, img)
	if before-after < 1<<20 {
		t.Errorf("allocated %d -> %d bytes: no hole punched", before, after)
	}
	want := bytes.Clone(data)
	clear(want[1<<20 : 2<<20])
	clear(want[6001*512 : 6014*512])
	clear(want[:16*512])
	file, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(file)) != 8<<20 {
		t.Fatalf("image size changed to %d", len(file))
	}
	if !bytes.Equal(file[:4<<20], want) {
		t.Fatal("image differs from the expected punched data")
	}
	rsp, got, err := h.Front.Read(2048, blktest.Contiguous(64), false)
	wantStatus(t, "read", rsp, err, blkback.RspOkay)
	if !bytes.Equal(got, make([]byte, 64*512)) {
		t.Error("discarded range does not read as zeros")
	}
}

// TestFileStoreReadOnly: access r opens the image read-only; writes and
// discards through the queue are refused and the image is unchanged.
func TestFileStoreReadOnly(t *testing.T) {
	img := sparseImage(t, 1<<20)
	orig := randBytes(rand.New(rand.NewPCG(22, 22)), 1<<20)
	if err := os.WriteFile(img, orig, 0o444); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(img, 0o444); err != nil {
		t.Fatal(err)
	}
	for _, spec := range []string{img + ",raw,xvda,r", img + ",raw,hdc:cdrom,r", "format=raw,vdev=xvdb,access=ro,target=" + img} {
		s, err := blkback.OpenStore(parseDisk(t, spec), blkback.StoreOptions{})
		if err != nil {
			t.Fatalf("%s: %v", spec, err)
		}
		info := s.Info()
		if !info.ReadOnly || info.Discard {
			t.Errorf("%s: info %+v", spec, info)
		}
		if err := s.WriteV([][]byte{make([]byte, 512)}, 0); !errors.Is(err, blkback.ErrReadOnly) {
			t.Errorf("%s: WriteV: %v", spec, err)
		}
		if err := s.Discard(0, 512, false); !errors.Is(err, blkback.ErrReadOnly) {
			t.Errorf("%s: Discard: %v", spec, err)
		}
		h := newHarness(t, blktest.Config{Store: s, Features: blktest.AllFeatures})
		rsp, err := h.Front.Write(0, make([]byte, 4096), blktest.Contiguous(8), false)
		wantStatus(t, "write", rsp, err, blkback.RspError)
		rsp, got, err := h.Front.Read(8, blktest.Contiguous(8), false)
		wantStatus(t, "read", rsp, err, blkback.RspOkay)
		if !bytes.Equal(got, orig[4096:8192]) {
			t.Error("read differs")
		}
		h.Close()
		s.Close()
	}
	file, _ := os.ReadFile(img)
	if !bytes.Equal(file, orig) {
		t.Error("read-only image changed")
	}
}

// TestFileStoreLock: two writers of one image are refused; readers
// share it.
func TestFileStoreLock(t *testing.T) {
	img := sparseImage(t, 1<<20)
	rw := parseDisk(t, img+",raw,xvda,w")
	ro := parseDisk(t, img+",raw,xvda,r")
	a, err := blkback.OpenStore(rw, blkback.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := blkback.OpenStore(rw, blkback.StoreOptions{}); !errors.Is(err, blkback.ErrInUse) {
		t.Errorf("second writer: %v", err)
	}
	if _, err := blkback.OpenStore(ro, blkback.StoreOptions{}); !errors.Is(err, blkback.ErrInUse) {
		t.Errorf("reader beside a writer: %v", err)
	}
	b, err := blkback.OpenStore(rw, blkback.StoreOptions{NoLock: true})
	if err != nil {
		t.Errorf("NoLock: %v", err)
	} else {
		b.Close()
	}
	a.Close()
	r1, err := blkback.OpenStore(ro, blkback.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r1.Close()
	r2, err := blkback.OpenStore(ro, blkback.StoreOptions{})
	if err != nil {
		t.Fatalf("second reader: %v", err)
	}
	r2.Close()
}

// TestFileStoreVectors: the store's own edge cases: more buffers than
// IOV_MAX, buffers at unaligned addresses with O_DIRECT (bounced), a
// read past the end of the file.
func TestFileStoreVectors(t *testing.T) {
	img := sparseImage(t, 4<<20)
	for _, direct := range []bool{false, true} {
		s, err := blkback.OpenFile(img, false, blkback.StoreOptions{Direct: direct, NoLock: true})
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(23, 23))
		// 2500 buffers of 512 bytes, every other one at an odd address.
		backing := randBytes(rng, 2500*513)
		var bufs [][]byte
		var want []byte
		for i := range 2500 {
			b := backing[i*513 : i*513+512]
			if i%2 == 1 {
				b = backing[i*513+1 : i*513+513]
			}
			bufs = append(bufs, b)
			want = append(want, b...)
		}
		if err := s.WriteV(bufs, 4096); err != nil {
			t.Fatalf("direct=%v WriteV: %v", direct, err)
		}
		back := make([]byte, 2500*513)
		var rbufs [][]byte
		for i := range 2500 {
			rbufs = append(rbufs, back[i*513+i%2:i*513+i%2+512])
		}
		if err := s.ReadV(rbufs, 4096); err != nil {
			t.Fatalf("direct=%v ReadV: %v", direct, err)
		}
		var got []byte
		for _, b := range rbufs {
			got = append(got, b...)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("direct=%v: vectors read back differ", direct)
		}
		file, _ := os.ReadFile(img)
		if !bytes.Equal(file[4096:4096+len(want)], want) {
			t.Fatalf("direct=%v: file differs", direct)
		}
		if err := s.ReadV([][]byte{make([]byte, 1024)}, 4<<20-512); !errors.Is(err, blkback.ErrShortIO) {
			t.Errorf("read past the end: %v", err)
		}
		if err := s.Sync(); err != nil {
			t.Error(err)
		}
		s.Close()
	}
}

// loopDevice attaches img to a loop device (root and losetup needed;
// skipped otherwise) with the given logical sector size.
func loopDevice(t *testing.T, img string, sectorSize int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("loop devices need root")
	}
	losetup, err := exec.LookPath("losetup")
	if err != nil {
		t.Skip("no losetup")
	}
	out, err := exec.Command(losetup, "--find", "--show", "--sector-size", strconv.Itoa(sectorSize), img).CombinedOutput()
	if err != nil {
		t.Skipf("losetup: %v: %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command(losetup, "-d", dev).Run() })
	return dev
}

// TestBlockDevice serves a host block device (phy:, also by a bare name
// under /dev), 512-byte and 4K-sector, through a queue: sizes and sector
// sizes come from the device, 512-byte writes work on the 4K device,
// discards reach it, and the data lands in the backing file.
func TestBlockDevice(t *testing.T) {
	for _, ss := range []int{512, 4096} {
		t.Run(strconv.Itoa(ss), func(t *testing.T) {
			const size = 16 << 20
			img := sparseImage(t, size)
			dev := loopDevice(t, img, ss)
			for i, spec := range []string{"phy:" + dev + ",xvda,w", strings.TrimPrefix(dev, "/dev/") + ",raw,xvda,w"} {
				d := parseDisk(t, spec)
				if d.HostPath() != dev {
					t.Fatalf("%s: host path %s", spec, d.HostPath())
				}
				s, err := blkback.OpenStore(d, blkback.StoreOptions{Direct: i == 1})
				if err != nil {
					t.Fatal(err)
				}
				info := s.Info()
				if !info.BlockDevice || info.Size != size || info.LogicalBlockSize != ss || info.PhysicalBlockSize < ss {
					t.Errorf("%s: info %+v", spec, info)
				}
				dv, err := blkback.New(d, blkback.Options{Store: s})
				if err != nil {
					t.Fatal(err)
				}
				nodes := dv.BackendNodes()
				if nodes["sector-size"] != "512" || nodes["physical-sector-size"] != strconv.Itoa(max(ss, 512)) || nodes["type"] != "phy" || nodes["sectors"] != "32768" {
					t.Errorf("%s: nodes %v", spec, nodes)
				}
				h := newHarness(t, blktest.Config{Store: s, Features: dv.Features()})
				rng := rand.New(rand.NewPCG(24, uint64(ss)))
				data := randBytes(rng, 1536)
				rsp, err := h.Front.Write(uint64(3+i*1000), data, []blktest.Shape{{First: 1, Last: 3}}, false)
				wantStatus(t, "512-byte write", rsp, err, blkback.RspOkay)
				rsp, got, err := h.Front.Read(uint64(3+i*1000), []blktest.Shape{{First: 5, Last: 7}}, true)
				wantStatus(t, "read", rsp, err, blkback.RspOkay)
				if !bytes.Equal(got, data) {
					t.Fatal("read back differs")
				}
				rsp, err = h.Front.Flush()
				wantStatus(t, "flush", rsp, err, blkback.RspOkay)
				if info.Discard {
					rsp, err = h.Front.Discard(8192, 8192, false)
					wantStatus(t, "discard", rsp, err, blkback.RspOkay)
				}
				h.Close()
				dv.Close()
				file, _ := os.ReadFile(img)
				off := (3 + i*1000) * 512
				if !bytes.Equal(file[off:off+1536], data) {
					t.Fatalf("%s: data not in the backing file", spec)
				}
			}
		})
	}
}
