// Package xenbus is the backend half of Xen's split-driver framework for
// xenvmm's in-process backends (console, blkback, netback, pciback): it
// creates each device's xenstore directories as Xen's toolstack does and
// drives the device through the xenbus state machine as Linux's backend
// drivers do, calling the device's Connect and Disconnect at the right
// transitions.
//
// Specification:
//   - xen/include/public/io/xenbus.h: enum xenbus_state (State);
//   - docs/misc/xenstore-paths.pandoc: ~/device/$TYPE/$DEVID (frontend),
//     ~/backend/$TYPE/$DOMID/$DEVID (backend), /libxl/$DOMID/device/...;
//   - tools/libs/light/libxl_device.c libxl__device_generic_add: the nodes
//     and permissions written for a new device (Bus.AddWith), and
//     libxl__initiate_device_generic_remove / libxl__device_destroy for
//     hot-unplug (Bus.Remove);
//   - Linux drivers/block/xen-blkback/xenbus.c and
//     drivers/net/xen-netback/xenbus.c frontend_changed: how a backend
//     reacts to each frontend state; drivers/xen/xenbus/
//     xenbus_probe_frontend.c (and NetBSD sys/arch/xen/xenbus/
//     xenbus_probe.c): how the guest finds devices (a watch on ~/device,
//     then the backend's state) and resets them after kexec.
//
// The protocol, as the two ends see it:
//
//	backend (Bus)                      frontend (guest)
//	Initialising → InitWait            Initialising
//	                                   writes ring-ref, event-channel, ...
//	                                   → Initialised (blkfront) or Connected (netfront)
//	Connect(); → Connected             → Connected
//	                                   → Closing   (shutdown, unplug)
//	Disconnect(); → Closing            → Closed
//	→ Closed                           → Initialising (reconnect)
//	→ InitWait                         ...
//
// One goroutine per device runs its state machine, reading the watch on
// the frontend's state node; Connect and Disconnect run on it. Everything
// goes through Host: the bus has no global state and logs through
// Host.Log.
//
// Wiring (the VMM): implement Host over the guest's gnttab.Table,
// evtchn.Table and a privileged xenstore.Client; write the domain's tree
// (xenstore.Client.PopulateDomU) so that ~/device exists and is readable
// by the guest; NewBus; Add each configured device before or after the
// guest starts; Bus.Close at domain teardown.
package xenbus
