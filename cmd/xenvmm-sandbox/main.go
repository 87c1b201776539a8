// Command xenvmm-sandbox runs xenvmm's KVM tests (or any command) under
// real KVM on a host without /dev/kvm, inside the nested-KVM sandbox of
// package internal/sandbox: QEMU TCG with `-cpu max`, Debian's kernel and
// kvm_amd.
//
//	xenvmm-sandbox test [-run REGEXP] [-min N] [PACKAGES]
//	xenvmm-sandbox exec [-file HOST[:INSIDE]]... -- PROGRAM ARGS...
//
// Both share the host's root file system read-only at /host inside the
// sandbox (--host-root=false leaves it out; it adds about 0.4 s to the
// sandbox's start), so that tests run the host's own programs through
// testenv.HostCommand.
//
// scripts/setup.sh installs QEMU and fetches the kernel; scripts/test.sh
// calls `xenvmm-sandbox test`.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v3"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	app := &cli.Command{
		Name:  "xenvmm-sandbox",
		Usage: "run KVM tests or commands inside the nested-KVM sandbox (QEMU TCG -cpu max + kvm_amd)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "cache", Usage: "download cache (default $XENVMM_CACHE, $XDG_CACHE_HOME/xenvmm or ~/.cache/xenvmm)"},
			&cli.IntFlag{Name: "memory", Value: 3072, Usage: "sandbox memory in MiB"},
			&cli.IntFlag{Name: "cpus", Value: 2, Usage: "sandbox vCPUs"},
			&cli.DurationFlag{Name: "timeout", Value: 0, Usage: "limit for the whole sandbox run (default 20m)"},
			&cli.BoolFlag{Name: "kernel-log", Usage: "show the sandbox kernel's own messages"},
			&cli.BoolFlag{Name: "host-root", Value: true, Usage: "share the host's root file system read-only at /host (virtio-9p), for tests that run the host's programs (testenv.HostCommand); --host-root=false leaves it out"},
		},
		Commands: []*cli.Command{testCommand(log), execCommand(log), initramfsCommand()},
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := app.Run(ctx, os.Args); err != nil {
		fmt.Fprintf(os.Stderr, "xenvmm-sandbox: %v\n", err)
		os.Exit(1)
	}
}
