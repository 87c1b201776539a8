package tap

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaultName(t *testing.T) {
	for _, tc := range []struct {
		dom   uint16
		devid int
		want  string
	}{
		{1, 0, "vif1.0"},
		{7, 3, "vif7.3"},
		{65535, 65535, "vif65535.65535"},
	} {
		got := DefaultName(tc.dom, tc.devid)
		if got != tc.want {
			t.Errorf("DefaultName(%d, %d) = %q, want %q", tc.dom, tc.devid, got, tc.want)
		}
		if err := ValidName(got); err != nil {
			t.Errorf("DefaultName(%d, %d) = %q is not valid: %v", tc.dom, tc.devid, got, err)
		}
	}
}

func TestValidName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"vif1.0", true},
		{"xvif1.0", true},
		{"a", true},
		{"fifteen-chars-x", true},
		{"sixteen-chars-xx", false},
		{"", false},
		{".", false},
		{"..", false},
		{"a/b", false},
		{"a:b", false},
		{"a b", false},
		{"a\tb", false},
	} {
		err := ValidName(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("ValidName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrBadName) {
			t.Errorf("ValidName(%q) = %v, not ErrBadName", tc.name, err)
		}
	}
}

func TestHostMAC(t *testing.T) {
	mac := func(s string) net.HardwareAddr {
		hw, err := net.ParseMAC(s)
		if err != nil {
			t.Fatal(err)
		}
		return hw
	}
	for _, tc := range []struct {
		guest net.HardwareAddr
		want  string
	}{
		// The seed configuration's own example.
		{mac("aa:00:00:50:02:f0"), "aa:00:00:51:02:f0"},
		{mac("00:16:3e:01:02:03"), "00:16:3e:00:02:03"},
		{nil, "fe:ff:ff:ff:ff:ff"},
		{net.HardwareAddr{1, 2, 3}, "fe:ff:ff:ff:ff:ff"},
	} {
		g := append(net.HardwareAddr(nil), tc.guest...)
		got := HostMAC(tc.guest)
		if got.String() != tc.want {
			t.Errorf("HostMAC(%v) = %v, want %s", tc.guest, got, tc.want)
		}
		if !bytes.Equal(g, tc.guest) {
			t.Errorf("HostMAC modified its argument: %v", tc.guest)
		}
	}
	// The result is a fresh slice.
	h := HostMAC(nil)
	h[0] = 0
	if BridgePortMAC[0] != 0xfe {
		t.Fatal("HostMAC returned BridgePortMAC itself")
	}
}

func TestVnetHdr(t *testing.T) {
	h := VnetHdr{Flags: VnetFlagNeedsCsum, GSOType: VnetGSOTCPv6 | VnetGSOECN, HdrLen: 0x4a, GSOSize: 1440, CsumStart: 0x36, CsumOffset: 16}
	b := make([]byte, VnetHdrLen)
	h.Encode(b)
	want := []byte{1, 0x84, 0x4a, 0, 0xa0, 0x05, 0x36, 0, 16, 0}
	if !bytes.Equal(b, want) {
		t.Fatalf("Encode = % x, want % x", b, want)
	}
	got, err := DecodeVnetHdr(append(b, 0xee))
	if err != nil || got != h {
		t.Fatalf("DecodeVnetHdr = %+v, %v; want %+v", got, err, h)
	}
	if _, err := DecodeVnetHdr(b[:9]); !errors.Is(err, ErrShortFrame) {
		t.Fatalf("DecodeVnetHdr(9 bytes) = %v, want ErrShortFrame", err)
	}
}

func TestParseConvention(t *testing.T) {
	for _, c := range []Convention{ConventionXend, ConventionLibxl, ConventionXenbackendd} {
		got, err := ParseConvention(c.String())
		if err != nil || got != c {
			t.Errorf("ParseConvention(%q) = %v, %v", c.String(), got, err)
		}
	}
	if _, err := ParseConvention("udev"); err == nil {
		t.Error("ParseConvention(udev) succeeded")
	}
}

func testHotplug(c Convention) *Hotplug {
	return &Hotplug{
		Script: "vif-bridge", Convention: c,
		Domain: "nbsd", DomID: 3, DevID: 1, VifName: "vif3.1",
		MAC: "aa:00:00:50:02:f0", Bridge: "bridge0", IP: "10.0.0.2",
		GatewayDev: "eth0",
	}
}

func TestHotplugArgs(t *testing.T) {
	for _, tc := range []struct {
		c        Convention
		a        Action
		want     string
		noIPWant string
	}{
		{ConventionXend, Up, "up domain=nbsd vif=vif3.1 mac=aa:00:00:50:02:f0 bridge=bridge0 ip=10.0.0.2", "up domain=nbsd vif=vif3.1 mac=aa:00:00:50:02:f0 bridge=bridge0"},
		{ConventionXend, Down, "down domain=nbsd vif=vif3.1 mac=aa:00:00:50:02:f0 bridge=bridge0 ip=10.0.0.2", "down domain=nbsd vif=vif3.1 mac=aa:00:00:50:02:f0 bridge=bridge0"},
		{ConventionLibxl, Up, "online type_if=vif", "online type_if=vif"},
		{ConventionLibxl, Down, "offline type_if=vif", "offline type_if=vif"},
		{ConventionXenbackendd, Up, "backend/vif/3/1 2", "backend/vif/3/1 2"},
		{ConventionXenbackendd, Down, "backend/vif/3/1 6", "backend/vif/3/1 6"},
	} {
		h := testHotplug(tc.c)
		if got := strings.Join(h.Args(tc.a), " "); got != tc.want {
			t.Errorf("%v %v: args %q, want %q", tc.c, tc.a, got, tc.want)
		}
		h.IP = ""
		if got := strings.Join(h.Args(tc.a), " "); got != tc.noIPWant {
			t.Errorf("%v %v without ip: args %q, want %q", tc.c, tc.a, got, tc.noIPWant)
		}
	}
	h := testHotplug(ConventionXend)
	if got := h.Path(); got != "/etc/xen/scripts/vif-bridge" {
		t.Errorf("Path = %q", got)
	}
	h.Script = "/usr/local/bin/my-vif"
	if got := h.Path(); got != "/usr/local/bin/my-vif" {
		t.Errorf("Path = %q", got)
	}
	h.Script, h.Dir = "vif-nat", "/opt/xen"
	if got := h.Path(); got != "/opt/xen/vif-nat" {
		t.Errorf("Path = %q", got)
	}
}

// recordScript writes a script that appends its arguments and some of
// its environment to a log file.
func recordScript(t *testing.T, dir string) (script, log string) {
	t.Helper()
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	log = filepath.Join(dir, "calls.log")
	script = filepath.Join(dir, "record-vif")
	body := "#!/bin/sh\n" +
		"echo \"args:$*\" >> " + log + "\n" +
		"echo \"env:vif=$vif XENBUS_PATH=$XENBUS_PATH XENBUS_TYPE=$XENBUS_TYPE netdev=$netdev script=$script domain=$domain bridge=$bridge EXTRA=$EXTRA\" >> " + log + "\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return script, log
}

func TestHotplugRun(t *testing.T) {
	dir := t.TempDir()
	script, log := recordScript(t, dir)
	for _, c := range []Convention{ConventionXend, ConventionLibxl, ConventionXenbackendd} {
		os.Remove(log)
		h := testHotplug(c)
		h.Script, h.Dir = "record-vif", dir
		h.Env = []string{"EXTRA=yes"}
		for _, a := range []Action{Up, Down} {
			if err := h.Run(context.Background(), a); err != nil {
				t.Fatalf("%v: Run(%v): %v", c, a, err)
			}
		}
		b, err := os.ReadFile(log)
		if err != nil {
			t.Fatal(err)
		}
		env := "env:vif=vif3.1 XENBUS_PATH=backend/vif/3/1 XENBUS_TYPE=vif netdev=eth0 script=" + script + " domain=nbsd bridge=bridge0 EXTRA=yes"
		want := "args:" + strings.Join(h.Args(Up), " ") + "\n" + env + "\n" +
			"args:" + strings.Join(h.Args(Down), " ") + "\n" + env + "\n"
		if string(b) != want {
			t.Errorf("%v: calls:\n%s\nwant:\n%s", c, b, want)
		}
	}
}

func TestHotplugRunErrors(t *testing.T) {
	dir := t.TempDir()
	fail := filepath.Join(dir, "fail")
	if err := os.WriteFile(fail, []byte("#!/bin/sh\necho \"no bridge $bridge\" >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	slow := filepath.Join(dir, "slow")
	if err := os.WriteFile(slow, []byte("#!/bin/sh\nexec sleep 30\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	h := testHotplug(ConventionXend)
	h.Script = fail
	err := h.Run(context.Background(), Up)
	var se *ScriptError
	if !errors.As(err, &se) {
		t.Fatalf("failing script: %v, want *ScriptError", err)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Errorf("failing script: %v, want exit status 3", err)
	}
	if se.Output != "no bridge bridge0" || !strings.Contains(err.Error(), "no bridge bridge0") {
		t.Errorf("error %q, output %q: want the script's stderr", err, se.Output)
	}

	h.Script, h.Timeout = slow, 200*time.Millisecond
	start := time.Now()
	err = h.Run(context.Background(), Down)
	if !errors.As(err, &se) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("slow script: %v, want a timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("slow script took %v to time out", d)
	}

	h.Script = filepath.Join(dir, "missing")
	if err := h.Run(context.Background(), Up); !errors.As(err, &se) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing script: %v", err)
	}
	if err := h.Run(context.Background(), Action(0)); err == nil {
		t.Error("Run(Action(0)) succeeded")
	}
}
