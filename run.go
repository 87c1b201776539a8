package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/urfave/cli/v3"
	"github.com/xenvmm/xenvmm/vmm/kvm"
)

func (a *app) runCommand() *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "build the domain described by CONFIG and run it",
		ArgsUsage: "CONFIG",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "console", Aliases: []string{"c"}, Usage: "attach the guest console to this terminal (like xm create -c)"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if cmd.NArg() != 1 {
				return cli.Exit("run: want exactly one CONFIG file", 2)
			}
			path := cmd.Args().First()
			dom, warns, img, problems := a.prepare(path)
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
			a.log.Info("domain parsed", "name", dom.Name, "memory_mib", dom.Memory, "vcpus", dom.VCPUs, "kernel", dom.Kernel)
			if !kvm.Available() {
				return cli.Exit("no /dev/kvm on this host: run xenvmm inside the nested-KVM sandbox (scripts/run.sh)", 1)
			}
			return errors.New("run: the PV CPU model is not implemented yet; `xenvmm check` shows what would be built")
		},
	}
}
