// Package netback is xenvmm's network backend: the domain-0 end of Xen's
// split network driver, serving Linux's xen-netfront and NetBSD's xennet
// in-process, with a Linux tap device (devices/tap) as the host side of
// each vif.
//
// Specification: xen/include/public/io/netif.h (the TX and RX wire
// formats, netif_tx_request / netif_extra_info / netif_rx_request and
// their responses, NETTXF_* / NETRXF_* / NETIF_RSP_*, the xenstore
// feature keys, multiple queues, split event channels, MTU) over the
// shared rings of io/ring.h (devices/ring). Where the header is silent,
// behaviour follows Linux's drivers/net/xen-netback (netback.c's
// xenvif_tx_build_gops and xenvif_count_requests for what a TX request
// may be; rx.c's slot layout, with the GSO extra-info slot after the
// first data slot; xenbus.c's connect and connect_data_rings for the
// negotiation) and the expectations of the two frontends (netfront
// answers by ring slot, not id; NetBSD's xennet refuses a backend
// without feature-rx-copy and takes no extra info).
//
// Data path. TX (guest to host): each packet's fragments are copied out
// of the guest's grants (GNTTABOP_copy, never a mapping) into one batch
// buffer; NETTXF_csum_blank and GSO extra info become a virtio_net_hdr
// (VIRTIO_NET_HDR_F_NEEDS_CSUM with the transport header located as
// skb_checksum_setup does; GSO type, size and header length); every slot
// is answered (NETIF_RSP_NULL for extra-info slots) and the frames go to
// the tap in one batch per ring pass. RX (host to guest): frames read
// from the tap with their virtio_net_hdr are copied into the buffers the
// frontend posted, a page per slot, with NETRXF_more_data between slots,
// NETRXF_csum_blank|data_validated for partial checksums and
// NETRXF_data_validated for verified ones, and a GSO extra-info slot for
// TSO frames.
//
// Offloads are honest: a frontend gets only what it negotiated. The
// tap's offloads (TUNSETOFFLOAD) are set from the frontend's
// feature-sg, feature-gso-tcpv4/v6, feature-no-csum-offload and
// feature-ipv6-csum-offload, so the kernel segments and checksums for
// frontends that cannot; a frame that still arrives in a form the
// frontend cannot take is segmented (TCP) or checksummed in Go.
//
// Malformed requests (bad grants, fragments crossing their page, sizes
// that do not add up, runaway more_data or extra-info chains, ids reused
// while in flight, unknown extra types) are answered NETIF_RSP_ERROR and
// counted; the vif carries on. A ring whose producer index is impossible
// stops that queue only. No guest input panics or blocks another vif.
//
// Concurrency: per queue one TX and one RX goroutine; per vif one
// goroutine reading the tap and spreading frames over the queues by
// flow. Buffers are reused: the TX path copies into a per-queue arena,
// the RX path reads into a bounded pool.
//
// Host side (devices/tap): the tap is vifname= or vif<domid>.<devid>,
// Xen's name for it on a Linux domain 0 (Xen's Linux hotplug scripts
// parse the domain id back out of it; a NetBSD domain 0 would call it
// xvif<domid>.<devid>); its MAC is the guest's with 00:00:00:01:00:00
// XOR'd in when mac= is given, as the seed configurations describe, else
// fe:ff:ff:ff:ff:ff as Xen's vif-bridge sets; it joins bridge= when given
// (no bridge= leaves it unbridged: xl's default xenbr0 is the business
// of its vif-bridge script, which xenvmm does not run unless asked); its
// carrier is on only while a frontend is connected. script= runs after
// the tap is set up ("up") and before it goes ("down"), by default in the
// xend convention the seed configurations' users wrote their scripts for
// (script up|down domain= vif= mac= bridge= [ip=]); Options selects
// libxl's (online|offline type_if=vif, details in the environment) or
// NetBSD xenbackendd's instead. ip= is written to the backend directory
// as xl does; netback itself filters nothing.
//
// The VMM's part: New(config.Vif, Options) per vif entry (this creates
// the tap and runs the hotplug script), then the xenbus Bus's AddWith
// with FrontendNodes and ReadOnlyFrontendNodes; the Bus calls Connect
// and Disconnect as the frontend comes and goes, and Close at removal or
// domain teardown.
//
// Not implemented: rate= (credit scheduling), the control ring (hash
// configuration), multicast filtering (feature-multicast-control), page
// flipping (rx-flip), XDP headroom, UDP segmentation offloads (never
// enabled on the tap, so never needed).
package netback
