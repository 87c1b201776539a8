package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v3"
	"github.com/xenvmm/xenvmm/internal/sandbox"
)

func execCommand(log *slog.Logger) *cli.Command {
	return &cli.Command{
		Name:      "exec",
		Usage:     "run one program inside the sandbox, with the console on stdout and stdin fed to it",
		ArgsUsage: "-- PROGRAM [ARGS...]",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "file", Aliases: []string{"f"}, Usage: "copy HOST[:INSIDE] into the sandbox (INSIDE defaults to /sandbox/files/BASENAME)"},
			&cli.BoolFlag{Name: "stdin", Usage: "feed this process's stdin to the sandbox console"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			argv := cmd.Args().Slice()
			if len(argv) == 0 {
				return fmt.Errorf("exec: no program given")
			}
			dir, err := os.MkdirTemp("", "xenvmm-sandbox-exec-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			opts, err := baseOptions(cmd, dir, log)
			if err != nil {
				return err
			}
			var env []string
			addGuestData(&opts, &env)
			for _, f := range cmd.StringSlice("file") {
				host, inside, ok := strings.Cut(f, ":")
				if !ok {
					inside = path.Join("/sandbox/files", filepath.Base(host))
				}
				opts.Files[inside] = host
			}
			opts.Plan.Env = env
			opts.Plan.Commands = []sandbox.Command{{Name: argv[0], Argv: argv, Dir: "/tmp"}}
			opts.Console = os.Stdout
			if cmd.Bool("stdin") {
				opts.Stdin = os.Stdin
			}
			res, err := sandbox.Run(ctx, opts)
			if err != nil {
				return err
			}
			if len(res.Commands) == 1 && res.Commands[0].Exit != 0 {
				return cli.Exit(fmt.Sprintf("xenvmm-sandbox: %s exited with status %d", argv[0], res.Commands[0].Exit), res.Commands[0].Exit)
			}
			return res.Err()
		},
	}
}
