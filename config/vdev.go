package config

import (
	"errors"
	"fmt"
	"math"
	"strconv"
)

// Virtual block device numbers, docs/man/xen-vbd-interface.7.pandoc
// ("Concrete encoding in the VBD interface").
const (
	vbdExtended = 1 << 28 // xvd, disks or partitions 16 onwards: 1<<28 | disk<<8 | partition
	majorXVD    = 202     // xvd, disks and partitions up to 15: 202<<8 | disk<<4 | partition
	majorSCSI   = 8       // sd, disks and partitions up to 15: 8<<8 | disk<<4 | partition
)

// ideMajors are Linux's IDE majors, two disks each (hda,hdb: 3; hdc,hdd: 22;
// ...). libxl knows the first two; xend's blkif.py knew all ten.
var ideMajors = [...]int{3, 22, 33, 34, 56, 57, 88, 89, 90, 91}

// scsiMajors are Linux's SCSI disk majors, sixteen disks each; libxl knows
// the first, xend's blkif.py all sixteen.
var scsiMajors = [...]int{8, 65, 66, 67, 68, 69, 70, 71, 128, 129, 130, 131, 132, 133, 134, 135}

var errBadVDev = errors.New("expected a name like xvda/hda1/xbd0 or a number like 0x301")

// VDevNumber returns the Xen virtual-device number (the xenstore
// "virtual-device" value a guest's blkfront sees) for a disk's vdev, as
// libxl__device_disk_dev_number (tools/libs/light/libxl_device.c) computes
// it:
//
//   - xvdX[N] and dDpP: 202<<8 | disk<<4 | partition for disk and partition
//     up to 15, else 1<<28 | disk<<8 | partition (disk < 1<<20,
//     partition < 256). Drive letters count a..z, aa..zz, ... (xvdaa is
//     disk 26).
//   - a plain number (decimal, 0x hex or 0 octal, as strtoul base 0) is
//     used as it is: 0x301 is Linux's hda1, 0x1 is NetBSD's xbd1... as the
//     guest chooses to read it.
//   - hdX[N]: Linux IDE numbering, major<<8 | (disk&1)<<6 | partition,
//     partitions up to 63. libxl stops at hdd (majors 3 and 22); like xend
//     we continue through hdt (majors 33, 34, 56, 57, 88, 89, 90, 91).
//   - sdX[N]: Linux SCSI numbering, major<<8 | (disk%16)<<4 | partition,
//     partitions up to 15. libxl stops at sdp (major 8); like xend we
//     continue through sdiv (majors 65-71, 128-135).
//
// xenvmm also accepts NetBSD's name xbdN (which NetBSD's xbd(4) derives
// from the device's index, not from its number): it is taken as disk N
// with the xvd scheme, so xbd0 is xvda (51712) and xbd1 is xvdb. libxl
// rejects these names.
func VDevNumber(vdev string) (int, error) {
	if n, ok := vdevXVD(vdev); ok {
		return n, nil
	}
	if n, ok := vdevPlainNumber(vdev); ok {
		return n, nil
	}
	if disk, part, ok := driveLetters(vdev, "hd", len(ideMajors)*2-1, 63); ok {
		return ideMajors[disk/2]<<8 | (disk&1)<<6 | part, nil
	}
	if disk, part, ok := driveLetters(vdev, "sd", len(scsiMajors)*16-1, 15); ok {
		return scsiMajors[disk/16]<<8 | (disk%16)<<4 | part, nil
	}
	if disk, ok := vdevXBD(vdev); ok {
		return xvdNumber(disk, 0), nil
	}
	return 0, fmt.Errorf("bad vdev %q: %w", vdev, errBadVDev)
}

func xvdNumber(disk, part int) int {
	if disk <= 15 && part <= 15 {
		return majorXVD<<8 | disk<<4 | part
	}
	return vbdExtended | disk<<8 | part
}

// vdevXVD matches "xvd<letters>[partition]" and "d<disk>p<partition>".
func vdevXVD(s string) (int, bool) {
	if disk, part, ok := driveLetters(s, "xvd", 1<<20-1, 255); ok {
		return xvdNumber(disk, part), true
	}
	// dDpP; libxl reads D and P with sscanf %i, we take decimal only.
	if len(s) < 4 || s[0] != 'd' {
		return 0, false
	}
	disk, i, ok := decimalAt(s, 1)
	if !ok || i >= len(s) || s[i] != 'p' {
		return 0, false
	}
	part, i, ok := decimalAt(s, i+1)
	if !ok || i != len(s) || disk >= 1<<20 || part >= 256 {
		return 0, false
	}
	return xvdNumber(disk, part), true
}

// decimalAt reads decimal digits at s[i:] (at most 9, so no overflow).
func decimalAt(s string, i int) (n, end int, ok bool) {
	start := i
	for i < len(s) && isDigit(s[i]) && i-start < 9 {
		n = n*10 + int(s[i]-'0')
		i++
	}
	return n, i, i > start
}

// driveLetters is device_virtdisk_matches: prefix, then drive letters read
// as bijective base 26 (a=0, z=25, aa=26), then an optional partition
// number without leading zeros.
func driveLetters(s, prefix string, maxDisk, maxPart int) (disk, part int, ok bool) {
	if len(s) <= len(prefix) || s[:len(prefix)] != prefix {
		return 0, 0, false
	}
	i := len(prefix)
	disk = -1
	for i < len(s) && isLower(s[i]) {
		disk = (disk+1)*26 + int(s[i]-'a')
		if disk > maxDisk {
			return 0, 0, false
		}
		i++
	}
	if disk < 0 {
		return 0, 0, false // libxl accepts a bare "xvd" as disk -1
	}
	if i == len(s) {
		return disk, 0, true
	}
	if s[i] == '0' {
		return 0, 0, false
	}
	part, end, ok := decimalAt(s, i)
	if !ok || end != len(s) || part > maxPart {
		return 0, 0, false
	}
	return disk, part, true
}

// vdevPlainNumber is libxl's strtoul(virtpath, &ep, 0) branch: the whole
// string is a number no larger than INT_MAX.
func vdevPlainNumber(s string) (int, bool) {
	if s == "" || !isDigit(s[0]) {
		return 0, false // no blanks or signs, which strtoul would skip
	}
	base, digits := 10, s
	switch {
	case len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'):
		base, digits = 16, s[2:]
	case len(s) > 1 && s[0] == '0':
		base, digits = 8, s[1:]
	}
	u, err := strconv.ParseUint(digits, base, 64)
	if err != nil || u > math.MaxInt32 {
		return 0, false
	}
	return int(u), true
}

// vdevXBD matches NetBSD's "xbdN".
func vdevXBD(s string) (int, bool) {
	if len(s) < 4 || s[:3] != "xbd" || (s[3] == '0' && len(s) > 4) {
		return 0, false
	}
	n, end, ok := decimalAt(s, 3)
	if !ok || end != len(s) || n >= 1<<20 {
		return 0, false
	}
	return n, true
}
