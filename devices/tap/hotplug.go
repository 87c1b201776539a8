package tap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// DefaultScriptDir is where a script= without a directory is looked up,
// as libxl does with XEN_SCRIPT_DIR.
const DefaultScriptDir = "/etc/xen/scripts"

// DefaultScriptTimeout bounds one run of a hotplug script (libxl's
// LIBXL_HOTPLUG_TIMEOUT).
const DefaultScriptTimeout = 40 * time.Second

// Convention is a calling convention of vif hotplug scripts.
type Convention int

const (
	// ConventionXend is what xend called vif scripts with, and what the
	// NetBSD/Xen howto's users (the seed configurations) wrote theirs
	// for: "script up|down domain=NAME vif=IFNAME mac=MAC bridge=BRIDGE
	// [ip=IPS]" (the header of Xen 2.0's vif-bridge: "Usage: vif-bridge
	// (up|down) {VAR=VALUE}").
	ConventionXend Convention = iota
	// ConventionLibxl is xl's on Linux (libxl__hotplug_nic in
	// tools/libs/light/libxl_linux.c): "script online|offline
	// type_if=vif" with the details in the environment; what today's
	// /etc/xen/scripts/vif-bridge expects.
	ConventionLibxl
	// ConventionXenbackendd is NetBSD's xenbackendd and xl on NetBSD
	// (tools/hotplug/NetBSD/vif-bridge): "script BACKEND_PATH 2" to bring
	// the vif up (XenbusStateInitWait) and "script BACKEND_PATH 6" once it
	// is gone (XenbusStateClosed).
	ConventionXenbackendd
)

func (c Convention) String() string {
	switch c {
	case ConventionXend:
		return "xend"
	case ConventionLibxl:
		return "libxl"
	case ConventionXenbackendd:
		return "xenbackendd"
	}
	return "Convention(" + strconv.Itoa(int(c)) + ")"
}

// ParseConvention reads a Convention's name.
func ParseConvention(s string) (Convention, error) {
	for _, c := range []Convention{ConventionXend, ConventionLibxl, ConventionXenbackendd} {
		if c.String() == s {
			return c, nil
		}
	}
	return 0, fmt.Errorf("tap: unknown hotplug script convention %q: want xend, libxl or xenbackendd", s)
}

// Action is what a hotplug script is asked to do.
type Action int

const (
	Up   Action = iota + 1 // the vif exists: attach it
	Down                   // the vif is going away: detach it
)

// Hotplug runs a vif's hotplug script (script= in the vif spec).
//
// Whatever the Convention, the script also gets Xen's environment for
// it: script, XENBUS_TYPE=vif, XENBUS_PATH, XENBUS_BASE_PATH=backend,
// netdev (libxl's get_hotplug_env), vif, and the xend variables domain,
// mac, bridge and ip, so scripts written for any of them find what they
// read.
type Hotplug struct {
	// Script is the script= value; a name without '/' is looked up in
	// Dir.
	Script string
	// Dir defaults to DefaultScriptDir.
	Dir        string
	Convention Convention
	Timeout    time.Duration // 0: DefaultScriptTimeout

	Domain     string // the domain's name (xend's domain=)
	DomID      uint16
	DevID      int
	VifName    string // the host interface (vif=)
	MAC        string // the guest's MAC (mac=)
	Bridge     string
	IP         string
	GatewayDev string // netdev
	// XenbusPath is the backend directory relative to domain 0's home,
	// "backend/vif/<domid>/<devid>" when empty, as libxl passes it.
	XenbusPath string
	// Env holds extra environment variables ("K=V"), for example
	// XENSTORED_PATH for scripts that run xenstore-read.
	Env []string
}

// ScriptError is a hotplug script that failed.
type ScriptError struct {
	Path   string
	Args   []string
	Err    error  // from exec: an *exec.ExitError, a timeout, ...
	Output string // the end of its combined output
}

func (e *ScriptError) Error() string {
	msg := fmt.Sprintf("hotplug script %s %s: %v", e.Path, strings.Join(e.Args, " "), e.Err)
	if e.Output != "" {
		msg += ": " + e.Output
	}
	return msg
}

func (e *ScriptError) Unwrap() error { return e.Err }

// Path is the script's resolved path.
func (h *Hotplug) Path() string {
	if strings.Contains(h.Script, "/") {
		return h.Script
	}
	dir := h.Dir
	if dir == "" {
		dir = DefaultScriptDir
	}
	return filepath.Join(dir, h.Script)
}

func (h *Hotplug) xenbusPath() string {
	if h.XenbusPath != "" {
		return h.XenbusPath
	}
	return fmt.Sprintf("backend/vif/%d/%d", h.DomID, h.DevID)
}

// Args are the script's arguments for a, after argv[0].
func (h *Hotplug) Args(a Action) []string {
	switch h.Convention {
	case ConventionLibxl:
		if a == Up {
			return []string{"online", "type_if=vif"}
		}
		return []string{"offline", "type_if=vif"}
	case ConventionXenbackendd:
		if a == Up {
			return []string{h.xenbusPath(), "2"}
		}
		return []string{h.xenbusPath(), "6"}
	}
	verb := "up"
	if a == Down {
		verb = "down"
	}
	args := []string{verb, "domain=" + h.Domain, "vif=" + h.VifName, "mac=" + h.MAC, "bridge=" + h.Bridge}
	if h.IP != "" {
		args = append(args, "ip="+h.IP)
	}
	return args
}

// Environ is the script's environment: the VMM's, then Xen's variables,
// then Env.
func (h *Hotplug) Environ() []string {
	env := append([]string(nil), os.Environ()...)
	env = append(env,
		"script="+h.Path(),
		"XENBUS_TYPE=vif",
		"XENBUS_PATH="+h.xenbusPath(),
		"XENBUS_BASE_PATH=backend",
		"netdev="+h.GatewayDev,
		"vif="+h.VifName,
		"domain="+h.Domain,
		"mac="+h.MAC,
		"bridge="+h.Bridge,
		"ip="+h.IP,
	)
	return append(env, h.Env...)
}

// maxOutput is how much of a failing script's output an error keeps.
const maxOutput = 1024

// Run runs the script for a and waits for it; a non-zero exit, a signal
// or the timeout is a *ScriptError carrying the end of its output.
func (h *Hotplug) Run(ctx context.Context, a Action) error {
	if a != Up && a != Down {
		return fmt.Errorf("tap: hotplug action %d: want Up or Down", a)
	}
	timeout := h.Timeout
	if timeout == 0 {
		timeout = DefaultScriptTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	path, args := h.Path(), h.Args(a)
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = h.Environ()
	cmd.Dir = "/"
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		err = fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	o := bytes.TrimSpace(out.Bytes())
	if len(o) > maxOutput {
		o = o[len(o)-maxOutput:]
	}
	return &ScriptError{Path: path, Args: args, Err: err, Output: string(o)}
}
