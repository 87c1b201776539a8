package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v3"
	"github.com/xenvmm/xenvmm/config"
	"github.com/xenvmm/xenvmm/vmm"
	"github.com/xenvmm/xenvmm/vmm/kvm"
	"github.com/xenvmm/xenvmm/xenabi/abi"
)

func (a *app) runCommand() *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "build the domain described by CONFIG and run it until it shuts down",
		ArgsUsage: "CONFIG",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "console", Aliases: []string{"c"}, Usage: "attach this terminal's input to the guest console (like xm create -c); output always goes to stdout"},
			&cli.BoolFlag{Name: "trace-hypercalls", Usage: "count the guest's hypercalls and print a summary when it stops"},
			&cli.DurationFlag{Name: "timeout", Usage: "destroy the domain after this long (e.g. 10m; for CI)"},
			&cli.BoolFlag{Name: "console-io", Usage: "print what the guest writes with HYPERVISOR_console_io (a debug Xen's hypervisor console: early boot messages, before the guest's console ring works)"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if cmd.NArg() != 1 {
				return cli.Exit("run: want exactly one CONFIG file", 2)
			}
			if d := cmd.Duration("timeout"); d > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, d)
				defer cancel()
			}
			return a.run(ctx, cmd.Args().First(), runFlags{console: cmd.Bool("console"), trace: cmd.Bool("trace-hypercalls"), consoleIO: cmd.Bool("console-io")})
		},
	}
}

type runFlags struct{ console, trace, consoleIO bool }

func (a *app) run(ctx context.Context, path string, f runFlags) error {
	console, trace := f.console, f.trace
	dom, warns, choice, img, problems := a.prepare(path)
	if dom == nil {
		return cli.Exit(problems[0].Error(), 1)
	}
	for _, w := range warns {
		a.log.Warn(w.String())
	}
	if len(problems) > 0 {
		for _, p := range problems {
			a.log.Error(p.Error())
		}
		return cli.Exit(fmt.Sprintf("%s: %d problem(s); `xenvmm check %s` lists them", path, len(problems), path), 1)
	}
	if img == nil {
		return cli.Exit(fmt.Sprintf("%s: kernel %q could not be loaded", path, dom.Kernel), 1)
	}
	cmdline := dom.Cmdline
	if len(dom.PCI) > 0 {
		return cli.Exit(fmt.Sprintf("%s: pci = %d device(s): PCI passthrough (pciback over VFIO) is not implemented yet; remove the pci line to run this domain", path, len(dom.PCI)), 1)
	}
	if !kvm.Available() {
		return cli.Exit("no /dev/kvm on this host: run xenvmm inside the nested-KVM sandbox (scripts/run.sh)", 1)
	}
	var ramdisk []byte
	if dom.Ramdisk != "" && !dom.Pygrub() { // pygrub's ramdisk= is on the guest's disk
		var err error
		if ramdisk, err = os.ReadFile(dom.Ramdisk); err != nil {
			return cli.Exit(fmt.Sprintf("ramdisk: %v", err), 1)
		}
	}
	for boots := 0; ; boots++ {
		if dom.Pygrub() {
			// As xl does, pygrub reads the disk again at every
			// (re)boot: a kernel the guest installed is the next one.
			if boots > 0 {
				var err error
				if choice, img, err = pygrub(dom); err != nil {
					return cli.Exit(fmt.Sprintf("%s: %v", path, err), 1)
				}
			}
			ramdisk, cmdline = choice.Ramdisk, choice.Cmdline(dom.Cmdline)
			a.log.Info("pygrub", "disk", choice.Disk, "partition", choice.Partition, "menu", choice.MenuPath,
				"entry", choice.Entry.Title, "kernel", choice.Entry.Kernel, "initrd", choice.Entry.Initrd, "cmdline", cmdline)
		}
		opts := vmm.Options{
			Name: dom.Name, MemoryMiB: dom.Memory, MaxMemMiB: dom.MaxMem, VCPUs: dom.VCPUs,
			Kernel: img, Ramdisk: ramdisk, Cmdline: cmdline,
			Console: a.stdout, Log: a.log, Trace: trace, ConsoleIO: f.consoleIO,
			Disks: dom.Disks, Vifs: dom.Vifs,
		}
		if console {
			opts.ConsoleIn = os.Stdin
		}
		d, err := vmm.New(opts)
		if err != nil {
			return cli.Exit(fmt.Sprintf("%s: cannot build the domain: %v", path, err), 1)
		}
		a.log.Info("domain started", "name", dom.Name, "memory_mib", dom.Memory, "vcpus", dom.VCPUs, "kernel", img.Name)
		exit, err := d.Run(ctx)
		uptime := d.Uptime()
		if trace {
			a.printTrace(d.Trace())
		}
		d.Close()
		if err != nil {
			return cli.Exit(fmt.Sprintf("%s: %v", dom.Name, err), 1)
		}
		a.log.Info("domain stopped", "name", dom.Name, "reason", exit.String(), "uptime", uptime.Round(1e6))
		action := actionFor(dom, exit)
		switch action {
		case config.ActionRestart, config.ActionRenameRestart, config.ActionCoredumpRestart, config.ActionSoftReset:
			if ctx.Err() == nil {
				a.log.Info("restarting the domain", "on", exit.String(), "action", string(action))
				continue
			}
		}
		if exit.Reason == abi.SHUTDOWN_poweroff {
			return nil
		}
		return cli.Exit(fmt.Sprintf("%s: domain stopped: %s (%s)", dom.Name, exit.String(), action), exitCode(exit))
	}
}

// actionFor is the on_* action for how the domain ended.
func actionFor(dom *config.Domain, e vmm.Exit) config.Action {
	switch e.Reason {
	case abi.SHUTDOWN_poweroff:
		return dom.OnPoweroff
	case abi.SHUTDOWN_reboot:
		return dom.OnReboot
	case abi.SHUTDOWN_watchdog:
		return dom.OnWatchdog
	case abi.SHUTDOWN_soft_reset:
		return dom.OnSoftReset
	}
	return dom.OnCrash
}

// exitCode: 0 poweroff, 2 reboot, 3 crash, 4 killed by xenvmm, 5 other.
func exitCode(e vmm.Exit) int {
	switch e.Reason {
	case abi.SHUTDOWN_poweroff:
		return 0
	case abi.SHUTDOWN_reboot:
		return 2
	case abi.SHUTDOWN_crash:
		return 3
	case vmm.ReasonError:
		return 4
	}
	return 5
}

func (a *app) printTrace(t []vmm.TraceEntry) {
	var b strings.Builder
	fmt.Fprintf(&b, "hypercalls made by the guest (%d kinds):\n", len(t))
	var total uint64
	for _, e := range t {
		fmt.Fprintf(&b, "  %-28s subop %-4d %10d\n", e.Hypercall, e.Subop, e.Count)
		total += e.Count
	}
	fmt.Fprintf(&b, "  %-28s           %10d\n", "total", total)
	fmt.Fprint(a.stderr, b.String())
}
