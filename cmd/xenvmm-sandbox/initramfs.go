package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v3"
	"github.com/xenvmm/xenvmm/internal/initramfs"
)

func initramfsCommand() *cli.Command {
	return &cli.Command{
		Name:  "initramfs",
		Usage: "write a gzip'd initramfs whose /init is a given static program (for guests)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "init", Required: true, Usage: "static program to install as /init"},
			&cli.StringFlag{Name: "o", Required: true, Usage: "output file"},
			&cli.StringSliceFlag{Name: "file", Aliases: []string{"f"}, Usage: "extra HOST:PATH files"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			var b initramfs.Builder
			if err := b.AddFile("init", cmd.String("init")); err != nil {
				return err
			}
			for _, err := range []error{
				b.AddCharDev("dev/console", 0o600, 5, 1),
				b.AddDir("proc", 0o755), b.AddDir("sys", 0o755), b.AddDir("tmp", 0o1777),
			} {
				if err != nil {
					return err
				}
			}
			for _, f := range cmd.StringSlice("file") {
				host, inside, ok := strings.Cut(f, ":")
				if !ok {
					return fmt.Errorf("--file %q: want HOST:PATH", f)
				}
				if err := b.AddFile(inside, host); err != nil {
					return err
				}
			}
			data, err := b.Bytes(true)
			if err != nil {
				return err
			}
			return os.WriteFile(cmd.String("o"), data, 0o644)
		},
	}
}
