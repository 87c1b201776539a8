package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseDisk(t *testing.T) {
	yes, no := true, false
	tests := []struct {
		spec string
		want Disk // Spec is filled in by the test
	}{
		// The seed configs' legacy forms.
		{"phy:/dev/wd0e,0x1,w", Disk{Target: "/dev/wd0e", Format: "raw", Prefix: "phy", VDev: "0x1", VDevNumber: 1}},
		{"phy:/dev/cd0a,0x2,r", Disk{Target: "/dev/cd0a", Format: "raw", Prefix: "phy", VDev: "0x2", VDevNumber: 2, ReadOnly: true}},
		{"phy:/dev/wd0e,0x300,w", Disk{Target: "/dev/wd0e", Format: "raw", Prefix: "phy", VDev: "0x300", VDevNumber: 0x300}},
		{"phy:/dev/wd0k,0,w", Disk{Target: "/dev/wd0k", Format: "raw", Prefix: "phy", VDev: "0", VDevNumber: 0}},
		{"phy:/dev/vnd0d,6:cdrom,r", Disk{Target: "/dev/vnd0d", Format: "raw", Prefix: "phy", VDev: "6", VDevNumber: 6, ReadOnly: true, CDROM: true}},
		{"phy:/dev/wd0g,xvda,w", Disk{Target: "/dev/wd0g", Format: "raw", Prefix: "phy", VDev: "xvda", VDevNumber: 0xca00}},
		{"file:/var/xen/nbsd-disk,0x01,w", Disk{Target: "/var/xen/nbsd-disk", Format: "raw", Prefix: "file", VDev: "0x01", VDevNumber: 1}},
		{"file:/var/xen/nbsd-disk,0x301,w", Disk{Target: "/var/xen/nbsd-disk", Format: "raw", Prefix: "file", VDev: "0x301", VDevNumber: 0x301}},
		// Deprecated prefixes.
		{"tap:aio:/x.img,xvda,w", Disk{Target: "/x.img", Format: "raw", Prefix: "tap:aio", VDev: "xvda", VDevNumber: 0xca00}},
		{"tap:qcow2:/x.qcow2,xvdb,w", Disk{Target: "/x.qcow2", Format: "qcow2", Prefix: "tap:qcow2", VDev: "xvdb", VDevNumber: 0xca10}},
		{"tap2:tapdisk:aio:/x,xvda,r", Disk{Target: "/x", Format: "raw", Prefix: "tap2:tapdisk:aio", VDev: "xvda", VDevNumber: 0xca00, ReadOnly: true}},
		{"raw:/dev/vg/guest-volume,hda,w", Disk{Target: "/dev/vg/guest-volume", Format: "raw", Prefix: "raw", VDev: "hda", VDevNumber: 0x300}},
		{"qcow:/x,hdb", Disk{Target: "/x", Format: "qcow", Prefix: "qcow", VDev: "hdb", VDevNumber: 0x340}},
		{"vhd:/x,sda1,ro", Disk{Target: "/x", Format: "vhd", Prefix: "vhd", VDev: "sda1", VDevNumber: 0x801, ReadOnly: true}},
		{"ioemu:/x,hdc,w", Disk{Target: "/x", Format: "raw", Prefix: "ioemu", VDev: "hdc", VDevNumber: 0x1600}},
		{"iscsi:iqn.2001-05.com.example:disk1,xvda,w", Disk{Target: "iqn.2001-05.com.example:disk1", Format: "raw", Prefix: "iscsi", Script: "block-iscsi", VDev: "xvda", VDevNumber: 0xca00}},
		{"drbd:resource,xvda,w", Disk{Target: "resource", Format: "raw", Prefix: "drbd", Script: "block-drbd", VDev: "xvda", VDevNumber: 0xca00}},
		{"phy:wd0e,0x1,w", Disk{Target: "wd0e", Format: "raw", Prefix: "phy", VDev: "0x1", VDevNumber: 1}},
		// xl-disk-configuration(5): these four are equivalent...
		{"/dev/vg/guest-volume,,hda", Disk{Target: "/dev/vg/guest-volume", Format: "raw", VDev: "hda", VDevNumber: 0x300}},
		{"/dev/vg/guest-volume,raw,hda,rw", Disk{Target: "/dev/vg/guest-volume", Format: "raw", VDev: "hda", VDevNumber: 0x300}},
		{"format=raw, vdev=hda, access=rw, target=/dev/vg/guest-volume", Disk{Target: "/dev/vg/guest-volume", Format: "raw", VDev: "hda", VDevNumber: 0x300}},
		// ... and so are these five.
		{"/root/image.iso,,hdc,cdrom", Disk{Target: "/root/image.iso", Format: "raw", VDev: "hdc", VDevNumber: 0x1600, CDROM: true, ReadOnly: true}},
		{"/root/image.iso,,hdc,,cdrom", Disk{Target: "/root/image.iso", Format: "raw", VDev: "hdc", VDevNumber: 0x1600, CDROM: true, ReadOnly: true}},
		{"/root/image.iso,raw,hdc,devtype=cdrom", Disk{Target: "/root/image.iso", Format: "raw", VDev: "hdc", VDevNumber: 0x1600, CDROM: true, ReadOnly: true}},
		{"format=raw, vdev=hdc, access=ro, devtype=cdrom, target=/root/image.iso", Disk{Target: "/root/image.iso", Format: "raw", VDev: "hdc", VDevNumber: 0x1600, CDROM: true, ReadOnly: true}},
		{"raw:/root/image.iso,hdc:cdrom,ro", Disk{Target: "/root/image.iso", Format: "raw", Prefix: "raw", VDev: "hdc", VDevNumber: 0x1600, CDROM: true, ReadOnly: true}},
		// Empty cdrom drives.
		{",hdc:cdrom,r", Disk{Format: "empty", VDev: "hdc", VDevNumber: 0x1600, CDROM: true, ReadOnly: true}},
		{"vdev=xvdc,devtype=cdrom", Disk{Format: "empty", VDev: "xvdc", VDevNumber: 0xca20, CDROM: true, ReadOnly: true}},
		{",,hdc,cdrom", Disk{Format: "empty", VDev: "hdc", VDevNumber: 0x1600, CDROM: true, ReadOnly: true}},
		// cdrom is read-only even when "w" is asked for (xlu_disk_parse).
		{"/x.iso,raw,xvdd,w,cdrom", Disk{Target: "/x.iso", Format: "raw", VDev: "xvdd", VDevNumber: 0xca30, CDROM: true, ReadOnly: true}},
		// target= takes the rest, commas and trailing blanks included.
		{"vdev=xvda, target=/a,b:c ,", Disk{Target: "/a,b:c ", Format: "raw", VDev: "xvda", VDevNumber: 0xca00}},
		{",vdev=xvda,target=/x", Disk{Target: "/x", Format: "raw", VDev: "xvda", VDevNumber: 0xca00}},
		// The other keys and flags.
		{"/x,qcow2,xvda,w,backendtype=qdisk,backend=dd,script=block-foo,specification=virtio,grant_usage=0,direct-io-safe,no-discard,untrusted",
			Disk{Target: "/x", Format: "qcow2", VDev: "xvda", VDevNumber: 0xca00, BackendType: "qdisk", Backend: "dd", Script: "block-foo",
				Specification: "virtio", GrantUsage: &no, DirectIOSafe: true, Discard: &no, Trusted: &no}},
		{"/x,,xvda,discard,trusted,devtype=disk", Disk{Target: "/x", Format: "raw", VDev: "xvda", VDevNumber: 0xca00, Discard: &yes, Trusted: &yes}},
		{"/x,,xvda,colo,colo-host=h,colo-port=9000,colo-export=e,active-disk=/a,hidden-disk=/h",
			Disk{Target: "/x", Format: "raw", VDev: "xvda", VDevNumber: 0xca00,
				Colo: map[string]string{"colo": "true", "colo-host": "h", "colo-port": "9000", "colo-export": "e", "active-disk": "/a", "hidden-disk": "/h"}}},
		// Whitespace before parameters is ignored, and (extension) after.
		{"  phy:/dev/wd0e ,  0x1 ,\tw ", Disk{Target: "/dev/wd0e", Format: "raw", Prefix: "phy", VDev: "0x1", VDevNumber: 1}},
		{"/x,,xvda,", Disk{Target: "/x", Format: "raw", VDev: "xvda", VDevNumber: 0xca00}},
		// An empty vdev may be overwritten (savestring).
		{"format=raw,vdev=,vdev=xvda,target=/x", Disk{Target: "/x", Format: "raw", VDev: "xvda", VDevNumber: 0xca00}},
		// Access given twice by name is allowed; the last wins.
		{"/x,,xvda,access=ro,access=rw", Disk{Target: "/x", Format: "raw", VDev: "xvda", VDevNumber: 0xca00}},
		{"/x,,xvda,r,access=w", Disk{Target: "/x", Format: "raw", VDev: "xvda", VDevNumber: 0xca00}},
		// Names and numbers of every scheme.
		{"phy:/x,xbd0,w", Disk{Target: "/x", Format: "raw", Prefix: "phy", VDev: "xbd0", VDevNumber: 0xca00}},
		{"phy:/x,xvdaa,w", Disk{Target: "/x", Format: "raw", Prefix: "phy", VDev: "xvdaa", VDevNumber: 0x10001a00}},
		{"phy:/x,sda,w", Disk{Target: "/x", Format: "raw", Prefix: "phy", VDev: "sda", VDevNumber: 0x800}},
	}
	for _, tt := range tests {
		got, err := ParseDisk(tt.spec)
		if err != nil {
			t.Errorf("ParseDisk(%q): %v", tt.spec, err)
			continue
		}
		tt.want.Spec = tt.spec
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseDisk(%q)\n got %+v\nwant %+v", tt.spec, got, tt.want)
		}
	}
}

func TestParseDiskErrors(t *testing.T) {
	tests := []struct {
		spec string
		off  int
		msg  string
	}{
		{"", 0, "no vdev specified"},
		{"target=/x", 9, "no vdev specified"},
		{"vdev=xvda", 0, "no target specified"},
		{",,xvda", 0, "no target specified"},
		{"format=raw,vdev=xvda,target=", 0, "no target specified"},
		{"phy:/dev/wd0e,qq,w", 14, `bad vdev "qq": expected a name like xvda/hda1/xbd0 or a number like 0x301`},
		{"phy:/dev/wd0e,xvda0,w", 14, `bad vdev "xvda0"`},
		{"format=raw,vdev=zz,target=/x", 16, `bad vdev "zz"`},
		{"phy:/dev/wd0e,0x1,x", 18, `unknown access mode "x": expected r, ro, w or rw`},
		{"phy:/dev/wd0e,0x1,w!", 18, `unknown access mode "w!": expected r, ro, w or rw (xm's "!" forced sharing is not supported by xl)`},
		{"/dev/wd0e,xvda,w", 10, `unknown disk format "xvda": expected raw, qcow, qcow2, vhd or qed (without a prefix such as phy:, the second field is the format`},
		{"/x,raw,xvda,w,extra", 14, `too many positional parameters at "extra"`},
		{"/x,,xvda,w,foo=bar", 11, `unknown disk parameter "foo="`},
		{"/x,,xvda,devtype=floppy", 17, `unknown devtype "floppy": expected cdrom or disk`},
		{"/x,,xvda,backendtype=nbd", 21, `unknown backendtype "nbd"`},
		{"/x,,xvda,specification=scsi", 23, `unknown specification "scsi"`},
		{"/x,,xvda,grant_usage=2", 21, `unknown grant_usage "2"`},
		{"/x,,xvda,colo-port=x", 19, `unknown value for colo-port "x"`},
		{"format=vmdk,vdev=xvda,target=/x", 7, `unknown disk format "vmdk"`},
		{"format=raw,format=qcow2,vdev=xvda,target=/x", 18, `format respecified: "qcow2" after "raw"`},
		{"qcow2:/x,xvda,w,format=raw", 23, `format respecified`},
		{"/x,,xvda,vdev=xvdb", 14, `vdev respecified: "xvdb" after "xvda"`},
		{"/x,,xvda,backendtype=phy,backendtype=tap", 25, `backendtype respecified`},
		{"/x,,xvda,script=a,script=b", 25, `script respecified`},
		{"nbd:host,xvda,w,script=x", 23, `script respecified: "x" after "block-nbd"`},
		{"foo:/x,xvda,w", 0, `unknown deprecated disk prefix "foo:"`},
		{"phy:foo:,xvda,w", 4, `unknown deprecated disk prefix "foo:"`},
		{"phy:/x,xvda:floppy,w", 12, `unknown device type "floppy" after vdev`},
		{",hdc:tape,r", 5, `unknown device type "tape"`},
		{"/x,,xvda,colo-host=a,colo-host=b", 21, `colo-host respecified`},
	}
	for _, tt := range tests {
		_, err := ParseDisk(tt.spec)
		var se *SpecError
		if !errors.As(err, &se) {
			t.Errorf("ParseDisk(%q) = %v, want a *SpecError", tt.spec, err)
			continue
		}
		if se.Offset != tt.off || !strings.Contains(se.Msg, tt.msg) {
			t.Errorf("ParseDisk(%q) error at %d: %s\nwant at %d: ...%s...", tt.spec, se.Offset, se.Msg, tt.off, tt.msg)
		}
	}
}

func TestDiskHostPath(t *testing.T) {
	for _, tt := range []struct{ spec, want string }{
		{"phy:/dev/wd0e,0x1,w", "/dev/wd0e"},
		{"phy:wd0e,0x1,w", "/dev/wd0e"},
		{",hdc:cdrom,r", ""},
		{"iscsi:iqn.x:y,xvda,w", ""},
		{"file:/var/xen/d.img,xvda,w", "/var/xen/d.img"},
	} {
		d, err := ParseDisk(tt.spec)
		if err != nil {
			t.Fatalf("ParseDisk(%q): %v", tt.spec, err)
		}
		if got := d.HostPath(); got != tt.want {
			t.Errorf("HostPath(%q) = %q, want %q", tt.spec, got, tt.want)
		}
	}
}
