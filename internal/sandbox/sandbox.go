package sandbox

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/xenvmm/xenvmm/internal/initramfs"
)

// Options configure one sandbox run.
type Options struct {
	// Kernel is the Debian vmlinuz to boot and ModulesDir its
	// lib/modules/<version> directory.
	Kernel, ModulesDir string
	// Init is the static guestinit binary.
	Init string
	// QEMU is the qemu-system-x86_64 binary (default: from $PATH).
	QEMU string
	// MemoryMiB and CPUs size the sandbox (defaults 3072 and the host's
	// CPU count, at most 2).
	MemoryMiB, CPUs int
	// Timeout bounds the whole run (default 20 minutes).
	Timeout time.Duration
	// Files maps paths inside the sandbox to host files copied into its
	// initramfs.
	Files map[string]string
	// Plan is what runs inside; its Modules are filled in by Run.
	Plan Plan
	// Console receives everything the sandbox prints (the kernel's and the
	// commands' output), line by line as it arrives.
	Console io.Writer
	// Stdin, if set, is fed to the sandbox's serial console.
	Stdin io.Reader
	Log   *slog.Logger
	// KernelLog shows the sandbox kernel's own messages (loglevel 7).
	KernelLog bool
}

// Result is what a sandbox run reported.
type Result struct {
	// KVM reports whether /dev/kvm appeared inside.
	KVM bool
	// Commands holds each command's exit status, in order.
	Commands []CommandResult
	// Done reports whether the plan ran to its end (the init printed its
	// final marker); Failures is the count it printed.
	Done     bool
	Failures int
	// Elapsed is the wall time of the QEMU run.
	Elapsed time.Duration
}

// CommandResult is one command's exit status.
type CommandResult struct {
	Name string
	Exit int
}

// Err summarizes a result as an error (nil when everything passed).
func (r *Result) Err() error {
	switch {
	case !r.KVM:
		return errors.New("sandbox: /dev/kvm did not appear inside the sandbox (kvm_amd failed to load)")
	case !r.Done:
		return errors.New("sandbox: the sandbox stopped before its plan finished")
	case r.Failures > 0:
		var failed []string
		for _, c := range r.Commands {
			if c.Exit != 0 {
				failed = append(failed, fmt.Sprintf("%s (exit %d)", c.Name, c.Exit))
			}
		}
		if len(failed) == 0 {
			return fmt.Errorf("sandbox: %d failures during setup", r.Failures)
		}
		return fmt.Errorf("sandbox: failed: %s", strings.Join(failed, ", "))
	}
	return nil
}

// Run boots the sandbox, executes opts.Plan inside and returns what it
// reported. An error means the sandbox itself could not run; command
// failures are in the Result (see Result.Err).
func Run(ctx context.Context, opts Options) (*Result, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.QEMU == "" {
		q, err := exec.LookPath("qemu-system-x86_64")
		if err != nil {
			return nil, fmt.Errorf("sandbox: qemu-system-x86_64 not found (run scripts/setup.sh): %w", err)
		}
		opts.QEMU = q
	}
	if opts.MemoryMiB == 0 {
		opts.MemoryMiB = 3072
	}
	if opts.CPUs == 0 {
		opts.CPUs = 2
	}
	if opts.Timeout == 0 {
		opts.Timeout = 20 * time.Minute
	}
	if opts.Console == nil {
		opts.Console = io.Discard
	}
	for _, p := range []string{opts.Kernel, opts.Init, opts.ModulesDir} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("sandbox: %w (run scripts/setup.sh)", err)
		}
	}

	// One list, loaded in order: loading the 9p modules beside kvm_amd
	// on the other vCPU saved 0.4 s at best and cost up to 5 s when the
	// host's CPUs were busy (TCG's cross-vCPU TLB flushes).
	modNames := append(slices.Clone(KVMModules), NetModules...)
	if opts.Plan.HostRoot {
		modNames = append(modNames, HostRootModules...)
	}
	mods, err := ResolveModules(opts.ModulesDir, modNames)
	if err != nil {
		return nil, err
	}
	var rb initramfs.Builder
	plan := opts.Plan
	plan.Modules = nil
	for _, m := range mods {
		inside := path.Join("/lib/modules", filepath.Base(m))
		if err := rb.AddFile(inside, m); err != nil {
			return nil, err
		}
		plan.Modules = append(plan.Modules, inside)
	}
	pj, err := json.MarshalIndent(plan, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("sandbox: plan: %w", err)
	}
	if err := rb.AddBytes(PlanPath, pj, 0o644); err != nil {
		return nil, err
	}
	if err := rb.AddFile("init", opts.Init); err != nil {
		return nil, err
	}
	if err := rb.AddCharDev("dev/console", 0o600, 5, 1); err != nil {
		return nil, err
	}
	for _, d := range []string{"proc", "sys", "tmp", "run"} {
		if err := rb.AddDir(d, 0o755); err != nil {
			return nil, err
		}
	}
	for inside, host := range opts.Files {
		if err := rb.AddFile(inside, host); err != nil {
			return nil, err
		}
	}
	tmp, err := os.MkdirTemp("", "xenvmm-sandbox-")
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	defer os.RemoveAll(tmp)
	initrd := filepath.Join(tmp, "initrd.cpio")
	f, err := os.Create(initrd)
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	size, err := rb.WriteTo(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("sandbox: write initramfs: %w", err)
	}
	opts.Log.Info("sandbox initramfs written", "bytes", size, "modules", len(mods), "files", len(opts.Files))

	loglevel := "3"
	if opts.KernelLog {
		loglevel = "7"
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	// One TCG thread for all the sandbox's vCPUs. With thread=multi,
	// nested guests triple-faulted (and the sandbox kernel itself reset)
	// in about one Linux boot in three; with thread=single, 0 in 12, at
	// the same speed (docs/design.md). $XENVMM_SANDBOX_ACCEL overrides.
	accel := "tcg,thread=single"
	if a := os.Getenv("XENVMM_SANDBOX_ACCEL"); a != "" {
		accel = a
	}
	cpu := "max"
	if c := os.Getenv("XENVMM_SANDBOX_CPU"); c != "" {
		cpu = c
	}
	appendExtra := ""
	if a := os.Getenv("XENVMM_SANDBOX_APPEND"); a != "" {
		appendExtra = " " + a
	}
	args := []string{
		"-accel", accel, "-cpu", cpu, "-smp", strconv.Itoa(opts.CPUs),
		"-m", strconv.Itoa(opts.MemoryMiB),
		"-nodefaults", "-display", "none", "-no-reboot", "-monitor", "none",
		"-serial", "stdio",
		"-kernel", opts.Kernel, "-initrd", initrd,
		"-append", "console=ttyS0 panic=-1 tsc=reliable quiet loglevel=" + loglevel + appendExtra,
	}
	if plan.HostRoot {
		// The host's "/", read-only (Plan.HostRoot). multidevs=remap
		// keeps inode numbers unique across the host's mounts under "/".
		args = append(args,
			"-fsdev", "local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap",
			"-device", "virtio-9p-pci,fsdev=hostroot,mount_tag="+HostRootTag)
	}
	if f := os.Getenv("XENVMM_SANDBOX_QEMU_LOG"); f != "" {
		// QEMU's own log of CPU resets (a triple fault in the sandbox
		// kernel ends the run silently otherwise).
		args = append(args, "-d", "cpu_reset,guest_errors", "-D", f)
	}
	cmd := exec.CommandContext(ctx, opts.QEMU, args...)
	cmd.WaitDelay = 5 * time.Second
	if opts.Stdin != nil {
		cmd.Stdin = opts.Stdin
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	cmd.Stderr = cmd.Stdout
	start := time.Now()
	opts.Log.Info("booting sandbox", "qemu", opts.QEMU, "memory_mib", opts.MemoryMiB, "cpus", opts.CPUs)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("sandbox: start qemu: %w", err)
	}
	res := &Result{}
	parseConsole(out, opts.Console, res)
	werr := cmd.Wait()
	res.Elapsed = time.Since(start)
	if ctx.Err() != nil {
		return res, fmt.Errorf("sandbox: timed out after %v: %w", opts.Timeout, ctx.Err())
	}
	if werr != nil && !res.Done {
		return res, fmt.Errorf("sandbox: qemu: %w", werr)
	}
	return res, nil
}

// parseConsole copies the console to w and records the markers in res.
func parseConsole(r io.Reader, w io.Writer, res *Result) {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadString('\n')
		if len(line) > 0 {
			io.WriteString(w, line)
			parseMarker(strings.TrimRight(line, "\r\n"), res)
		}
		if err != nil {
			return
		}
	}
}

func parseMarker(line string, res *Result) {
	i := strings.Index(line, markerPrefix)
	if i < 0 {
		return
	}
	line = line[i:]
	switch {
	case strings.HasPrefix(line, markerReady):
		res.KVM = strings.TrimPrefix(line, markerReady) == "1"
	case strings.HasPrefix(line, markerCommand):
		rest := strings.TrimPrefix(line, markerCommand)
		j := strings.LastIndex(rest, " exit=")
		if j < 0 {
			return
		}
		code, err := strconv.Atoi(rest[j+len(" exit="):])
		if err != nil {
			return
		}
		res.Commands = append(res.Commands, CommandResult{Name: rest[:j], Exit: code})
	case strings.HasPrefix(line, markerDone):
		n, err := strconv.Atoi(strings.TrimPrefix(line, markerDone))
		if err == nil {
			res.Done = true
			res.Failures = n
		}
	}
}
