// Package sandbox runs commands under real KVM on hosts without /dev/kvm:
// it boots Debian's kernel in QEMU TCG with `-cpu max` (which emulates AMD
// SVM with nested paging), loads kvm_amd inside, and runs the commands of a
// Plan there, streaming their output and returning their exit status
// (design/pv-on-kvm.md §1).
//
// The host side (Run) writes an initramfs holding the guest init
// (guestinit), the plan, the kernel modules and the files the commands
// need; the guest side (guestinit) executes the plan and prints result
// markers on the serial console that Run parses.
//
// With Plan.HostRoot the sandbox also sees the host's root file system,
// read-only, at HostRootPath (QEMU's virtio-9p), with its own live file
// systems bound over the host's there; testenv.HostCommand runs the
// host's programs chrooted into it.
package sandbox

// PlanPath is where the plan lives inside the sandbox.
const PlanPath = "/sandbox/plan.json"

// Plan is what the sandbox's init executes, in order.
type Plan struct {
	// Modules are kernel modules (paths inside the sandbox), loaded in
	// order before any command runs.
	Modules []string `json:"modules"`
	// Env is added to every command's environment.
	Env []string `json:"env"`
	// Commands run one after another; all run even when one fails.
	Commands []Command `json:"commands"`
	// HostRoot shares the host's root file system with the sandbox:
	// QEMU exports "/" read-only over virtio-9p (tag HostRootTag), Run
	// loads HostRootModules, and the init mounts it at HostRootPath with
	// the sandbox's /proc, /sys, /dev, /run and /tmp bound over the
	// host's, so that a program chrooted into HostRootPath is the host's
	// program seeing the sandbox's live state (its sockets under /run,
	// the files tests write under /tmp). The sandbox's own root (the
	// initramfs) is bound at SelfRootPath, which lies under /run and so
	// is visible from the chroot too. The commands get
	// XENVMM_HOST_ROOT=HostRootPath and XENVMM_SANDBOX_ROOT=SelfRootPath
	// when all of this succeeded.
	HostRoot bool `json:"host_root,omitempty"`
}

// Command is one program to run inside the sandbox.
type Command struct {
	Name string   `json:"name"` // label for the result line
	Argv []string `json:"argv"`
	Dir  string   `json:"dir,omitempty"`
	Env  []string `json:"env,omitempty"`
}

// The host root's layout inside the sandbox (see Plan.HostRoot);
// guestinit and internal/testenv repeat these values.
const (
	HostRootTag  = "hostroot"
	HostRootPath = "/host"
	SelfRootPath = "/run/sandbox-root"
)

// Markers printed by guestinit on the console; Run parses them.
const (
	markerPrefix  = "XENVMM-SANDBOX"
	markerReady   = markerPrefix + " ready kvm="     // followed by 0/1
	markerCommand = markerPrefix + " command "       // name exit=N
	markerDone    = markerPrefix + " done failures=" // followed by N
)
