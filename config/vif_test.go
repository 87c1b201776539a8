package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseVif(t *testing.T) {
	yes, no := true, false
	three := 3
	tests := []struct {
		spec string
		want Vif
	}{
		{"", Vif{}},
		{"bridge=bridge0", Vif{Bridge: "bridge0"}},
		{"mac=aa:00:00:50:02:f0, bridge=bridge0", Vif{MAC: "aa:00:00:50:02:f0", Bridge: "bridge0"}},
		{"mac=00:16:3E:74:3d:76,model=rtl8139,bridge=xenbr0", Vif{MAC: "00:16:3e:74:3d:76", Model: "rtl8139", Bridge: "xenbr0"}},
		{"mac=0:16:3e:1:2:3", Vif{MAC: "00:16:3e:01:02:03"}},
		{"mac=00-16-3e-01-02-03", Vif{MAC: "00:16:3e:01:02:03"}},
		{" ip=10.0.0.2 10.0.0.3 , script=vif-route,vifname=v0 ,gatewaydev=eth0", Vif{IP: "10.0.0.2 10.0.0.3", Script: "vif-route", VifName: "v0", GatewayDev: "eth0"}},
		{"netdev=eth1", Vif{GatewayDev: "eth1"}},
		{"type=ioemu,backend=drv", Vif{Type: "ioemu", Backend: "drv"}},
		{"type=vif", Vif{Type: "vif"}},
		{"mtu=9000,devid=3,vlan=10p/20", Vif{MTU: 9000, DevID: &three, VLAN: "10p/20"}},
		{"trusted", Vif{Trusted: &yes}},
		{"untrusted,,", Vif{Trusted: &no}},
		// xl-network-configuration(5)'s rate examples.
		{"rate=10Mb/s", Vif{Rate: "10Mb/s", RateBytesPerInterval: 62500, RateIntervalUsecs: 50000}},
		{"rate=250KB/s", Vif{Rate: "250KB/s", RateBytesPerInterval: 12500, RateIntervalUsecs: 50000}},
		{"rate=1MB/s@20ms", Vif{Rate: "1MB/s@20ms", RateBytesPerInterval: 20000, RateIntervalUsecs: 20000}},
		{"rate=1GB/s@1s", Vif{Rate: "1GB/s@1s", RateBytesPerInterval: 1000000000, RateIntervalUsecs: 1000000}},
		{"rate=8b/s@100us", Vif{Rate: "8b/s@100us", RateBytesPerInterval: 0, RateIntervalUsecs: 100}},
		{"rate=100B/s@2", Vif{Rate: "100B/s@2", RateBytesPerInterval: 200, RateIntervalUsecs: 2000000}},
		// Unknown and uninterpreted keys are kept, in order.
		{"bridge=b,accel=x,colo_sock_mirror_id=1,frob=2,weird",
			Vif{Bridge: "b", Other: []Option{
				{Key: "accel", Value: "x", Known: true, Offset: 9},
				{Key: "colo_sock_mirror_id", Value: "1", Known: true, Offset: 17},
				{Key: "frob", Value: "2", Offset: 39},
				{Key: "weird", Offset: 46},
			}}},
	}
	for _, tt := range tests {
		got, err := ParseVif(tt.spec)
		if err != nil {
			t.Errorf("ParseVif(%q): %v", tt.spec, err)
			continue
		}
		tt.want.Spec = tt.spec
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseVif(%q)\n got %+v\nwant %+v", tt.spec, got, tt.want)
		}
	}
}

func TestParseVifErrors(t *testing.T) {
	tests := []struct {
		spec string
		off  int
		msg  string
	}{
		{"mac=aa:00:00:50:02", 4, `bad mac "aa:00:00:50:02": expected six hex octets like aa:00:00:50:02:f0`},
		{"bridge=b, mac=aa:00:00:50:02:f0:11", 14, `expected six hex octets`},
		{"mac=aa:00:00:50:02:fg", 4, `octet 6 ("fg") is not one or two hex digits`},
		{"mac=aa:00:00:50:02:f00", 4, `octet 6 ("f00")`},
		{"mac=aa:00::50:02:f0", 4, `octet 3 ("")`},
		{"mac=", 4, `bad mac ""`},
		{"type=bridge", 5, `bad type "bridge": expected vif or ioemu`},
		{"mtu=big", 4, `bad mtu "big": expected a decimal number`},
		{"devid=-1", 6, `bad devid "-1"`},
		{"rate=10Mbps", 5, `bad rate "10Mbps": invalid rate`},
		{"rate=", 5, `no rate specified`},
		{"rate=0MB/s", 5, `rate must be greater than zero`},
		{"rate=4294967296B/s", 5, `rate overflow`},
		{"rate=1MB/s@20h", 5, `invalid replenishment interval`},
		{"rate=1MB/s@0ms", 5, `replenishment interval must be greater than zero`},
		{"rate=1MB/s@5000s", 5, `replenishment interval overflow`},
	}
	for _, tt := range tests {
		_, err := ParseVif(tt.spec)
		var se *SpecError
		if !errors.As(err, &se) {
			t.Errorf("ParseVif(%q) = %v, want a *SpecError", tt.spec, err)
			continue
		}
		if se.Offset != tt.off || !strings.Contains(se.Msg, tt.msg) {
			t.Errorf("ParseVif(%q) error at %d: %s\nwant at %d: ...%s...", tt.spec, se.Offset, se.Msg, tt.off, tt.msg)
		}
	}
}

func TestVifHardwareAddr(t *testing.T) {
	v, err := ParseVif("mac=AA:0:0:50:2:F0")
	if err != nil {
		t.Fatal(err)
	}
	if got := v.HardwareAddr().String(); got != "aa:00:00:50:02:f0" {
		t.Errorf("HardwareAddr() = %s", got)
	}
	if (&Vif{}).HardwareAddr() != nil {
		t.Error("HardwareAddr() of a vif without mac is not nil")
	}
}
