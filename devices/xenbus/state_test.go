package xenbus

import (
	"testing"
)

func TestParseState(t *testing.T) {
	tests := []struct {
		in   string
		want State
	}{
		{"0", StateUnknown},
		{"1", StateInitialising},
		{"2", StateInitWait},
		{"3", StateInitialised},
		{"4", StateConnected},
		{"5", StateClosing},
		{"6", StateClosed},
		{"7", StateReconfiguring},
		{"8", StateReconfigured},
		{" 4\n", StateConnected},
		{"9", StateUnknown},
		{"-1", StateUnknown},
		{"", StateUnknown},
		{"4x", StateUnknown},
		{"0x4", StateUnknown},
		{"99999999999999999999", StateUnknown},
	}
	for _, tc := range tests {
		if got := ParseState(tc.in); got != tc.want {
			t.Errorf("ParseState(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
	for s := StateUnknown; s <= StateReconfigured; s++ {
		if ParseState(s.Value()) != s {
			t.Errorf("%v does not round-trip", s)
		}
	}
	if StateConnected.String() != "Connected" || State(42).String() != "State(42)" {
		t.Errorf("String: %v %v", StateConnected, State(42))
	}
}

func FuzzParseState(f *testing.F) {
	for _, s := range []string{"1", "4", " 6 ", "x", "-0", "+3", "１"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		st := ParseState(s)
		if st < StateUnknown || st > StateReconfigured {
			t.Fatalf("ParseState(%q) = %d", s, st)
		}
		if st != StateUnknown && ParseState(st.Value()) != st {
			t.Fatalf("round trip of %v", st)
		}
	})
}

func TestPaths(t *testing.T) {
	if got := BackendPath("vbd", 3, 51712); got != "/local/domain/0/backend/vbd/3/51712" {
		t.Error(got)
	}
	if got := FrontendPath("vif", 3, 0); got != "/local/domain/3/device/vif/0" {
		t.Error(got)
	}
	if got := LibxlPath("vif", 3, 1); got != "/libxl/3/device/vif/1" {
		t.Error(got)
	}
}
