// Package vmm runs one Xen PV domain on KVM: it builds the domain's
// memory (guest RAM, the pages Xen would own, the hypervisor hole), loads
// the kernel with the PV domain builder, and runs each vCPU on its own
// locked OS thread with the PV CPU model of design/pv-on-kvm.md §2: guest
// kernel and user code run at CPL3; every SYSCALL, exception and
// interrupt enters a ring-0 hlt stub (package hole) and exits to Go, which
// implements the hypercalls, bounces exceptions and events to the guest's
// handlers with Xen's frames, and resumes the guest through a return
// chain.
//
// The Xen ABI objects (event channels, grant tables, xenstore) live in
// package xenabi/*; this package owns what is specific to the CPU: traps,
// bounce frames, the PV MMU's effects on page tables and TLBs, time and
// the vCPU lifecycle.
package vmm
