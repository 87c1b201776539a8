package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
)

// fuzzSeeds are small inputs that reach the corners of the grammar.
var fuzzSeeds = []string{
	"",
	"a = 1\n",
	"a = [\n 'x', # c\n [1, 0x2],\n]\n",
	"disk = ['phy:/dev/wd0e,0x1,w']\ndisk += [',hdc:cdrom,r', 'format=raw, vdev=xvdb, target=/a,b']\n",
	"vif = ['mac=aa:00:00:50:02:f0, bridge=bridge0, rate=10Mb/s@20ms']\n",
	"pci = ['0000:03:00.*@1f,permissive=1', 'name=x,seize=1']\npci_msitranslate = True\n",
	"extra = \"\\x41\\101\\n\"; root = 'a' ; cmdline = \"\"\n",
	"memory = -5\nvcpus = 0\nmaxvcpus = 1\ntype = 'hvm'\nbuilder = 'linux'\n",
	"on_crash = 'preserve'\nuuid = '6c7ba2d1-2a5b-4c1e-9d3f-0123456789ab'\n",
	"name = 'x' # trailing\r\nbootloader_args = 'a b'\n",
	"a = 'x'\na += ['y']\n",
}

// FuzzParse checks that Parse never panics, that every error it returns
// is a positioned *SyntaxError or *ValueError, and that the settings it
// reads print back (Value.String) to text that reads the same.
func FuzzParse(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join(seedDir, "*.cfg"))
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range seeds {
		src, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(src)
	}
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		lines := bytes.Count(src, []byte("\n")) + 1
		validPos := func(p Pos) bool { return p.File == "f.cfg" && p.Line >= 1 && p.Line <= lines && p.Col >= 1 }

		d, warns, err := Parse("f.cfg", src)
		var se *SyntaxError
		switch {
		case errors.As(err, &se):
			if d != nil || !validPos(se.Pos()) || se.Msg == "" {
				t.Fatalf("syntax error %v: domain %v, position out of range (%d lines)", err, d, lines)
			}
			if _, err2 := ParseSettings("f.cfg", src); err2 == nil || err2.Error() != err.Error() {
				t.Fatalf("ParseSettings disagrees: %v vs %v", err2, err)
			}
			return
		case err != nil:
			joined, ok := err.(interface{ Unwrap() []error })
			if !ok {
				t.Fatalf("error %T %v is neither a *SyntaxError nor joined *ValueErrors", err, err)
			}
			for _, e := range joined.Unwrap() {
				ve, ok := e.(*ValueError)
				if !ok || !validPos(ve.Pos) || ve.Key == "" || ve.Msg == "" {
					t.Fatalf("error %T %v is not a positioned *ValueError", e, e)
				}
			}
		}
		if d == nil {
			t.Fatal("no Domain without a syntax error")
		}
		for _, w := range warns {
			if !validPos(w.Pos) {
				t.Fatalf("warning %v has a bad position", w)
			}
		}
		if d.Memory < 1 || d.MaxMem < d.Memory || d.VCPUs < 1 || d.MaxVCPUs < d.VCPUs {
			t.Fatalf("inconsistent sizes: %+v", d)
		}
		for _, k := range d.Disks {
			if n, err := VDevNumber(k.VDev); err != nil || n != k.VDevNumber {
				t.Fatalf("disk %+v: VDevNumber = %d, %v", k, n, err)
			}
		}
		if err := d.Describe(io.Discard); err != nil {
			t.Fatal(err)
		}
		if _, err := json.Marshal(d); err != nil {
			t.Fatalf("json: %v", err)
		}
		_ = d.Validate()
		_ = d.CheckHostFS(fstest.MapFS{})

		// Round trip: each setting printed back parses to the same value.
		ss, err := ParseSettings("f.cfg", src)
		if err != nil {
			t.Fatalf("ParseSettings failed after Parse succeeded: %v", err)
		}
		for _, s := range ss {
			text := s.Key + " " + s.Op.String() + " " + s.Value.String() + "\n"
			back, err := ParseSettings("g.cfg", []byte(text))
			if err != nil || len(back) != 1 || !sameValue(back[0].Value, s.Value) {
				t.Fatalf("%q printed as %q reads back as %v, %v", s.Value.String(), text, back, err)
			}
		}
	})
}

func sameValue(a, b Value) bool {
	if a.Kind != b.Kind || a.Text != b.Text || len(a.List) != len(b.List) {
		return false
	}
	for i := range a.List {
		if !sameValue(a.List[i], b.List[i]) {
			return false
		}
	}
	return true
}

// checkSpecError checks that a spec parser's error points into the spec.
func checkSpecError(t *testing.T, spec string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var se *SpecError
	if !errors.As(err, &se) || se.Offset < 0 || se.Offset > len(spec) || se.Msg == "" {
		t.Fatalf("%q: error %T %v is not a *SpecError inside the spec", spec, err, err)
	}
}

func FuzzParseDisk(f *testing.F) {
	for _, s := range []string{
		"phy:/dev/wd0e,0x1,w", "phy:/dev/vnd0d,6:cdrom,r", "tap:aio:/x,xvda,w", ",hdc:cdrom,r",
		"format=raw, vdev=hda, access=rw, target=/dev/vg/guest-volume", "/x,,xvda,discard,colo-port=1",
		"iscsi:iqn:x,d536p37,ro", "foo:/x", "/x,qcow2,xvdaa,w,backendtype=qdisk",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		d, err := ParseDisk(spec)
		checkSpecError(t, spec, err)
		if err != nil {
			return
		}
		if d.VDev == "" || (d.Target == "" && !d.CDROM) || (d.CDROM && !d.ReadOnly) {
			t.Fatalf("%q: inconsistent disk %+v", spec, d)
		}
		if n, err := VDevNumber(d.VDev); err != nil || n != d.VDevNumber || n < 0 {
			t.Fatalf("%q: VDevNumber %d, %v", spec, n, err)
		}
	})
}

func FuzzParseVif(f *testing.F) {
	for _, s := range []string{
		"mac=aa:00:00:50:02:f0, bridge=bridge0", "", "rate=1MB/s@20ms,mtu=9000,devid=1",
		"type=ioemu,trusted,frob", "mac=0-1-2-3-4-5",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		v, err := ParseVif(spec)
		checkSpecError(t, spec, err)
		if err == nil && v.MAC != "" && v.HardwareAddr() == nil {
			t.Fatalf("%q: MAC %q does not parse back", spec, v.MAC)
		}
	})
}

func FuzzParsePCI(f *testing.F) {
	for _, s := range []string{
		"0000:03:00.0", "03:00.*@1f,permissive=1", "bdf=36:00.0,vslot=8,seize=1", "name=gpu,rdm_policy=strict",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		p, err := ParsePCI(spec, PCIOptions{})
		checkSpecError(t, spec, err)
		if err == nil && (p.Dev > 0x1f || p.Func > 7 || p.VSlot > 0x1f) {
			t.Fatalf("%q: out of range %+v", spec, p)
		}
	})
}

func FuzzVDevNumber(f *testing.F) {
	for _, s := range []string{"xvda", "xvdtq37", "d536p37", "hdt63", "sdiv15", "0x301", "xbd0", "010"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, vdev string) {
		n, err := VDevNumber(vdev)
		if err == nil && n < 0 {
			t.Fatalf("%q: negative number %d", vdev, n)
		}
	})
}
