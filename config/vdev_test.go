package config

import (
	"errors"
	"strings"
	"testing"
)

func TestVDevNumber(t *testing.T) {
	tests := []struct {
		vdev string
		want int
	}{
		// xvd: 202<<8 | disk<<4 | partition, then 1<<28 | disk<<8 | partition.
		{"xvda", 0xca00},
		{"xvdb", 0xca10},
		{"xvdb3", 0xca13},
		{"xvdp15", 0xcaff},
		{"xvdq", 0x10001000},
		{"xvda16", 0x10000010},
		{"xvdz255", 0x100019ff},
		{"xvdaa", 0x10001a00},
		{"xvdtq37", 0x10021825}, // xen-vbd-interface(7): d536p37
		{"d0p0", 0xca00},
		{"d1p2", 0xca12},
		{"d536p37", 0x10021825},
		// plain numbers, strtoul base 0
		{"0x1", 1},
		{"0x01", 1},
		{"0x2", 2},
		{"0x301", 0x301},
		{"0x300", 0x300},
		{"6", 6},
		{"0", 0},
		{"010", 8},
		{"51712", 51712},
		{"2147483647", 2147483647},
		// hd: Linux IDE majors 3, 22 (libxl), 33, 34, ..., 91 (xend)
		{"hda", 0x300},
		{"hda1", 0x301},
		{"hda63", 0x33f},
		{"hdb", 0x340},
		{"hdc", 0x1600},
		{"hdd2", 0x1642},
		{"hde", 0x2100},
		{"hdf1", 0x2141},
		{"hdg", 0x2200},
		{"hdh", 0x2240},
		{"hdi", 56 << 8},
		{"hdt", 91<<8 | 64},
		// sd: Linux SCSI majors 8 (libxl), 65-71, 128-135 (xend)
		{"sda", 0x800},
		{"sda1", 0x801},
		{"sdb3", 0x813},
		{"sdp15", 0x8ff},
		{"sdq", 65 << 8},
		{"sdz", 65<<8 | 9<<4},
		{"sdaa", 65<<8 | 10<<4},
		{"sdiv", 135<<8 | 15<<4},
		{"sdiv15", 135<<8 | 15<<4 | 15},
		// NetBSD xbdN: disk N in the xvd scheme
		{"xbd0", 0xca00},
		{"xbd1", 0xca10},
		{"xbd15", 0xcaf0},
		{"xbd16", 0x10001000},
	}
	for _, tt := range tests {
		got, err := VDevNumber(tt.vdev)
		if err != nil || got != tt.want {
			t.Errorf("VDevNumber(%q) = %#x, %v; want %#x", tt.vdev, got, err, tt.want)
		}
	}
}

func TestVDevNumberErrors(t *testing.T) {
	for _, vdev := range []string{
		"", "qq", "d0", "d0p", "dp0", "d0p256", "d1048576p0", "d0p0x", "d-1p0",
		"xvd", "xvda0", "xvda01", "xvda256", "xvdA", "xvda-1", "xvd1", "xvda 1",
		"hda0", "hda64", "hdu", "hd", "sda16", "sdiw", "sd", "sdA",
		"0x", "08", "2147483648", "0x80000000", "-1", " 1", "+1", "1 ",
		"xbd", "xbd01", "xbd0a", "xbd1048576", "xbd-1", "wd0", "/dev/hda1",
	} {
		n, err := VDevNumber(vdev)
		if err == nil {
			t.Errorf("VDevNumber(%q) = %#x, want an error", vdev, n)
			continue
		}
		if !errors.Is(err, errBadVDev) || !strings.HasPrefix(err.Error(), "bad vdev ") {
			t.Errorf("VDevNumber(%q) error = %v", vdev, err)
		}
	}
}
