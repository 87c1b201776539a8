package tap

import (
	"errors"
	"fmt"
	"net"
	"strings"
)

// IFNAMSIZ is the size of an interface name buffer in Linux, NUL
// included (include/uapi/linux/if.h).
const IFNAMSIZ = 16

// ErrBadName: an interface name Linux would refuse.
var ErrBadName = errors.New("tap: invalid interface name")

// DefaultName is the name Xen gives the backend interface of vif devid of
// domain domid on a Linux host, "vif<domid>.<devid>"
// (libxl__device_nic_devname, tools/libs/light/libxl_nic.c; Linux's
// netback names its net_device the same). Xen's Linux hotplug scripts
// rely on it: vif-bridge's set_mtu takes the domain id back out of the
// name. (A NetBSD domain 0 calls the same interface xvif<domid>.<devid>.)
func DefaultName(domid uint16, devid int) string {
	return fmt.Sprintf("vif%d.%d", domid, devid)
}

// ValidName checks name as Linux's dev_valid_name does
// (net/core/dev.c): 1 to IFNAMSIZ-1 bytes, not "." or "..", and no '/',
// ':' or white space.
func ValidName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrBadName)
	case len(name) >= IFNAMSIZ:
		return fmt.Errorf("%w: %q is %d bytes, at most %d allowed", ErrBadName, name, len(name), IFNAMSIZ-1)
	case name == "." || name == "..":
		return fmt.Errorf("%w: %q", ErrBadName, name)
	case strings.ContainsAny(name, "/: \t\n\v\f\r"):
		return fmt.Errorf("%w: %q contains '/', ':' or white space", ErrBadName, name)
	}
	return nil
}

// BridgePortMAC is the address Xen's vif-bridge gives a vif whose guest
// MAC it does not use: fe:ff:ff:ff:ff:ff, the numerically largest
// non-broadcast unicast address, so that a Linux bridge (which takes the
// lowest port address as its own) never adopts it
// (setup_virtual_bridge_port, tools/hotplug/Linux/xen-network-common.sh).
var BridgePortMAC = net.HardwareAddr{0xfe, 0xff, 0xff, 0xff, 0xff, 0xff}

// HostMAC is the MAC address of the host side of a vif whose guest side
// has MAC guest: the guest's address with 00:00:00:01:00:00 XOR'd in, as
// the xm-era toolstack did ("The interface in domain0 will use this
// address XOR'd with 00:00:00:01:00:00", the NetBSD/Xen howto's domain
// configuration), or BridgePortMAC when guest is not a 6-byte address.
func HostMAC(guest net.HardwareAddr) net.HardwareAddr {
	if len(guest) != 6 {
		return append(net.HardwareAddr(nil), BridgePortMAC...)
	}
	h := append(net.HardwareAddr(nil), guest...)
	h[3] ^= 0x01
	return h
}
