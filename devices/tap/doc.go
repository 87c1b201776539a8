// Package tap is the host side of a xenvmm network interface: a Linux tap
// device per vif, created (or attached to, when a persistent tap of that
// name exists) through /dev/net/tun with IFF_TAP|IFF_NO_PI|IFF_VNET_HDR,
// configured with netlink (MAC, MTU, bridge port, link up), and torn down
// when the VMM lets go of it; plus the vif hotplug script that Xen's
// toolstacks run for each vif (Hotplug).
//
// Every frame read from or written to a Tap starts with a struct
// virtio_net_hdr (VnetHdr, include/uapi/linux/virtio_net.h) so that
// checksum and segmentation offloads pass between the guest and the host
// stack unchanged; what the kernel may hand us is chosen with
// Tap.SetOffload (TUNSETOFFLOAD, include/uapi/linux/if_tun.h).
//
// Naming and addresses follow Xen: the interface of vif devid of domain
// domid is "vif<domid>.<devid>" (libxl__device_nic_devname in
// tools/libs/light/libxl_nic.c) unless vifname= names it; its MAC is the
// guest's MAC with 00:00:00:01:00:00 XOR'd in when the guest's is known
// (the xm-era convention the seed configurations describe), else
// fe:ff:ff:ff:ff:ff (setup_virtual_bridge_port in Xen's
// tools/hotplug/Linux/xen-network-common.sh, chosen so that a bridge never
// takes it as its own address).
//
// Create acts in the network namespace of the calling OS thread: tests
// lock a goroutine to a thread in a fresh namespace and create taps there.
// Tap is a thin runner over file descriptors; the packet logic lives in
// devices/netback.
package tap
