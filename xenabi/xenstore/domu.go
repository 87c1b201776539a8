package xenstore

import (
	"errors"
	"fmt"
	"strconv"
	"syscall"
)

// DomU describes a PV guest for PopulateDomU, with the values xl's
// libxl__domain_make, libxl__build_post and libxl__device_console_add write
// (tools/libs/light/libxl_create.c, libxl_dom.c, libxl_console.c; paths in
// docs/misc/xenstore-paths.pandoc).
type DomU struct {
	Domid uint32
	Name  string
	UUID  string // canonical text form; the VM's /vm/<uuid> directory

	MaxMemKiB    uint64 // memory/static-max
	TargetMemKiB uint64 // memory/target
	VCPUs        int    // cpu/N/availability for N < VCPUs
	// OnlineVCPUs is how many of the VCPUs start "online" (the rest are
	// "offline"); 0 means all.
	OnlineVCPUs int

	StorePort    uint32 // store/port: the xenstore event channel
	StoreRingRef uint64 // store/ring-ref: the xenstore ring's frame

	ConsolePort    uint32 // console/port
	ConsoleRingRef uint64 // console/ring-ref
	// ConsoleBackend is the console backend's domain (0: the VMM).
	ConsoleBackend uint32

	Kernel  string // /vm/<uuid>/image/kernel
	Ramdisk string // /vm/<uuid>/image/ramdisk, if any
	Cmdline string // /vm/<uuid>/image/cmdline, if any
	// StartTime is /vm/<uuid>/start_time ("seconds.centiseconds"), if any.
	StartTime string
}

// consoleLimit is LIBXL_XENCONSOLE_LIMIT, consoleProtocol LIBXL_XENCONSOLE_PROTOCOL.
const (
	consoleLimit    = 1048576
	consoleProtocol = "vt100"
)

// PopulateDomU writes the tree xl creates for a PV domU before introducing
// it, with xl's permissions: the home /local/domain/<id> and /vm/<uuid>
// readable by the guest (n0,r<id>), cpu/, memory/, device/ and control/
// likewise, and the nodes the guest writes — control/shutdown,
// control/feature-{poweroff,reboot,suspend}, control/sysrq, data/,
// drivers/, feature/, attr/, error/ — owned by the guest (n<id>). The primary console's frontend keys are readable but not
// writable by the guest, as xl sets them. Everything is written in one
// transaction.
//
// One node of xl's is left out: device/suspend/event-channel, where a
// guest that can suspend through an event channel publishes it. xenvmm
// does not save or suspend domains, and the node breaks NetBSD up to 5.x:
// its xenbus_probe_device_type keeps the error of the "suspend" entry
// (which has no state node) and so stops probing every device type after
// it, vbd and vif included; NetBSD fixed that later (err = 0 there), and
// xm, which NetBSD 5 was built against, did not write the node.
func (cl *Client) PopulateDomU(u DomU) error {
	if u.Domid == 0 || u.Domid >= DomidSelf {
		return fmt.Errorf("xenstore: populate: bad domid %d", u.Domid)
	}
	if u.Name == "" || u.UUID == "" {
		return errors.New("xenstore: populate: name and UUID are required")
	}
	id := u.Domid
	ids := strconv.FormatUint(uint64(id), 10)
	dom := DomainPath(id)
	vm := "/vm/" + u.UUID
	libxl := "/libxl/" + ids
	ro := []Perm{{0, AccessNone}, {id, AccessRead}}
	rw := []Perm{{id, AccessNone}}
	no := []Perm{{0, AccessNone}}
	cb := u.ConsoleBackend
	conFront := []Perm{{cb, AccessNone}, {id, AccessRead}} // ro_frontend_perms
	conFrontRW := []Perm{{id, AccessNone}, {cb, AccessRead}}
	conBack := []Perm{{cb, AccessNone}, {id, AccessRead}}
	conBackPath := DomainPath(cb) + "/backend/console/" + ids + "/0"
	u64 := func(v uint64) string { return strconv.FormatUint(v, 10) }

	return cl.Transaction(func(tx *Tx) error {
		var err error
		mknod := func(p string, perms []Perm) {
			if err == nil {
				err = tx.Write(p, nil)
			}
			if err == nil {
				err = tx.SetPerms(p, perms...)
			}
		}
		write := func(p, v string) {
			if err == nil {
				err = tx.WriteString(p, v)
			}
		}
		writePerms := func(p, v string, perms []Perm) {
			write(p, v)
			if err == nil {
				err = tx.SetPerms(p, perms...)
			}
		}
		rm := func(p string) { // xl ignores xs_rm's failures
			if err == nil {
				if e := tx.Rm(p); e != nil && !errors.Is(e, syscall.ENOENT) {
					err = e
				}
			}
		}

		// libxl__domain_make
		rm(dom)
		mknod(dom, ro)
		rm(vm)
		mknod(vm, ro)
		rm(libxl)
		mknod(libxl, no)
		mknod(libxl+"/device", no)
		write(dom+"/vm", vm)
		write(dom+"/name", u.Name)
		mknod(dom+"/cpu", ro)
		mknod(dom+"/memory", ro)
		mknod(dom+"/device", ro)
		mknod(dom+"/control", ro)
		for _, k := range []string{"shutdown", "feature-poweroff", "feature-reboot", "feature-suspend", "sysrq"} {
			mknod(dom+"/control/"+k, rw)
		}
		for _, k := range []string{"data", "drivers", "feature", "attr", "error"} {
			mknod(dom+"/"+k, rw)
		}
		write(vm+"/uuid", u.UUID)
		write(vm+"/name", u.Name)
		write(dom+"/control/platform-feature-multiprocessor-suspend", "1")
		write(dom+"/control/platform-feature-xs_reset_watches", "1")
		write(libxl+"/type", "pv")

		// libxl__build_post
		write(dom+"/memory/static-max", u64(u.MaxMemKiB))
		write(dom+"/memory/target", u64(u.TargetMemKiB))
		write(dom+"/memory/videoram", "0")
		write(dom+"/domid", ids)
		write(dom+"/store/port", u64(uint64(u.StorePort)))
		write(dom+"/store/ring-ref", u64(u.StoreRingRef))
		online := u.OnlineVCPUs
		if online == 0 {
			online = u.VCPUs
		}
		for i := range u.VCPUs {
			st := "offline"
			if i < online {
				st = "online"
			}
			write(dom+"/cpu/"+strconv.Itoa(i)+"/availability", st)
		}
		write(vm+"/image/ostype", "linux")
		write(vm+"/image/kernel", u.Kernel)
		if u.StartTime != "" {
			write(vm+"/start_time", u.StartTime)
		}
		if u.Ramdisk != "" {
			write(vm+"/image/ramdisk", u.Ramdisk)
		}
		if u.Cmdline != "" {
			write(vm+"/image/cmdline", u.Cmdline)
		}

		// libxl__device_console_add for the primary console, through
		// libxl__device_generic_add.
		con := dom + "/console"
		rm(con)
		mknod(con, conFront)
		write(con+"/backend", conBackPath)
		writePerms(con+"/backend-id", u64(uint64(cb)), conFrontRW)
		for _, kv := range [][2]string{
			{"limit", strconv.Itoa(consoleLimit)},
			{"type", "xenconsoled"},
			{"output", "pty"},
			{"tty", ""},
			{"port", u64(uint64(u.ConsolePort))},
			{"ring-ref", u64(u.ConsoleRingRef)},
		} {
			writePerms(con+"/"+kv[0], kv[1], conFront)
		}
		rm(conBackPath)
		mknod(conBackPath, conBack)
		for _, kv := range [][2]string{
			{"frontend", con},
			{"frontend-id", ids},
			{"online", "1"},
			{"state", "1"},
			{"protocol", consoleProtocol},
		} {
			writePerms(conBackPath+"/"+kv[0], kv[1], conBack)
		}
		write(libxl+"/device/console/0/frontend", con)
		write(libxl+"/device/console/0/backend", conBackPath)
		return err
	})
}
