package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParsePCI(t *testing.T) {
	tests := []struct {
		spec string
		def  PCIOptions
		want PCIDev
	}{
		{"0000:03:00.0", PCIOptions{}, PCIDev{Bus: 3}},
		{"0000:00:06.0", PCIOptions{}, PCIDev{Dev: 6}},
		{"0000:00:0a.0", PCIOptions{}, PCIDev{Dev: 0xa}},
		{"03:00.1", PCIOptions{}, PCIDev{Bus: 3, Func: 1}},
		{"ffff:ff:1f.7", PCIOptions{}, PCIDev{Domain: 0xffff, Bus: 0xff, Dev: 0x1f, Func: 7}},
		{"0000:03:00.*", PCIOptions{}, PCIDev{Bus: 3, AllFuncs: true}},
		// xl-pci-configuration(5) gives "36:00.0@20" as an example, but
		// parse_vslot rejects slots above 0x1f; see the errors test.
		{"36:00.0@1f", PCIOptions{}, PCIDev{Bus: 0x36, VSlot: 0x1f, HasVSlot: true}},
		{"36:00.0,vslot=8,seize=1", PCIOptions{}, PCIDev{Bus: 0x36, VSlot: 8, HasVSlot: true, Options: PCIOptions{Seize: true}}},
		{"bdf=36:00.0,vslot=8,seize=1", PCIOptions{}, PCIDev{Bus: 0x36, VSlot: 8, HasVSlot: true, Options: PCIOptions{Seize: true}}},
		{"03:00.0,permissive=1,msitranslate=1,power_mgmt=1,rdm_policy=strict", PCIOptions{},
			PCIDev{Bus: 3, Options: PCIOptions{Permissive: true, MSITranslate: true, PowerMgmt: true, RDMPolicy: "strict"}}},
		// Top-level defaults apply, and per-device options override them.
		{"03:00.0", PCIOptions{Permissive: true, Seize: true}, PCIDev{Bus: 3, Options: PCIOptions{Permissive: true, Seize: true}}},
		{"03:00.0,permissive=0", PCIOptions{Permissive: true}, PCIDev{Bus: 3}},
		{"name=gpu0,vslot=3", PCIOptions{}, PCIDev{Name: "gpu0", VSlot: 3, HasVSlot: true}},
	}
	for _, tt := range tests {
		got, err := ParsePCI(tt.spec, tt.def)
		if err != nil {
			t.Errorf("ParsePCI(%q): %v", tt.spec, err)
			continue
		}
		tt.want.Spec = tt.spec
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParsePCI(%q)\n got %+v\nwant %+v", tt.spec, got, tt.want)
		}
	}
}

func TestParsePCIErrors(t *testing.T) {
	tests := []struct {
		spec string
		off  int
		msg  string
	}{
		{"", 0, `no device: expected [DDDD:]BB:DD.F, bdf= or name=`},
		{"0000:03:00", 0, `expected a PCI address [DDDD:]BB:DD.F`},
		{"03.0", 0, `bad PCI address`},
		{"0:0:0:0.0", 0, `bad PCI address`},
		{"10000:00:00.0", 0, `domain 0x10000 is larger than 0xffff`},
		{"0000:100:00.0", 0, `bus 0x100 is larger than 0xff`},
		{"0000:00:20.0", 0, `device 0x20 is larger than 0x1f`},
		{"0000:00:00.8", 0, `function 0x8 is larger than 7`},
		{"0000:00:00.", 0, `bad PCI address`},
		{"0000:00:00.0x", 12, `unexpected "x" after the device address`},
		{"0000:00:00.0@20", 13, `bad vslot "20": expected a hex slot number 0..1f`},
		{"0000:00:00.0@,seize=1", 13, `bad vslot ""`},
		{"0000:00:00.0,seize", 13, `expected KEY=VALUE, found "seize"`},
		{"0000:00:00.0,seize=yes", 19, `bad seize "yes": expected 0 or 1`},
		{"0000:00:00.0,rdm_policy=lax", 24, `unknown rdm_policy "lax": expected strict or relaxed`},
		{"0000:00:00.0,frob=1", 13, `unknown PCI option "frob"`},
		{"0000:00:00.0,vslot=zz", 19, `bad vslot "zz"`},
		{"bdf=0000:00:00.0x", 4, `unexpected "x" after the device address in bdf=`},
		{"bdf=junk", 4, `bad PCI address "junk"`},
		{"seize=1", 0, `no device: expected [DDDD:]BB:DD.F, bdf= or name=`},
		{"03:00.0,name=x", 0, `both a device address and name= given`},
	}
	for _, tt := range tests {
		_, err := ParsePCI(tt.spec, PCIOptions{})
		var se *SpecError
		if !errors.As(err, &se) {
			t.Errorf("ParsePCI(%q) = %v, want a *SpecError", tt.spec, err)
			continue
		}
		if se.Offset != tt.off || !strings.Contains(se.Msg, tt.msg) {
			t.Errorf("ParsePCI(%q) error at %d: %s\nwant at %d: ...%s...", tt.spec, se.Offset, se.Msg, tt.off, tt.msg)
		}
	}
}

func TestPCIBDF(t *testing.T) {
	for _, tt := range []struct{ spec, want string }{
		{"03:00.0", "0000:03:00.0"},
		{"1:2:3.4", "0001:02:03.4"},
		{"0000:03:00.*", "0000:03:00.*"},
		{"name=gpu0", "gpu0"},
	} {
		p, err := ParsePCI(tt.spec, PCIOptions{})
		if err != nil {
			t.Fatalf("ParsePCI(%q): %v", tt.spec, err)
		}
		if got := p.BDF(); got != tt.want {
			t.Errorf("BDF(%q) = %q, want %q", tt.spec, got, tt.want)
		}
	}
}
