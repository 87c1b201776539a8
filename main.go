// Command xenvmm runs unmodified Xen PV guest kernels (NetBSD XEN3_DOMU,
// Linux with CONFIG_XEN_PV) on KVM, without Xen, from xl/xm domain
// configuration files.
//
//	xenvmm check nbsd.cfg       # parse, validate, load the kernel; print the domain
//	xenvmm run [-c] nbsd.cfg    # build and run the domain
//	xenvmm version
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/exp/zapslog"
	"go.uber.org/zap/zapcore"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newApp(os.Stdout, os.Stderr).Run(ctx, os.Args)
	stop()
	if err != nil {
		var ec cli.ExitCoder
		if errors.As(err, &ec) {
			if msg := ec.Error(); msg != "" {
				fmt.Fprintln(os.Stderr, "xenvmm:", msg)
			}
			os.Exit(ec.ExitCode())
		}
		fmt.Fprintln(os.Stderr, "xenvmm:", err)
		os.Exit(1)
	}
}

// app carries what the commands share: the output streams and the logger
// built from the global flags.
type app struct {
	stdout, stderr io.Writer
	log            *slog.Logger
}

func newApp(stdout, stderr io.Writer) *cli.Command {
	a := &app{stdout: stdout, stderr: stderr}
	return &cli.Command{
		Name:    "xenvmm",
		Usage:   "run unmodified Xen PV guest kernels on KVM, without Xen",
		Version: version,
		Writer:  stdout, ErrWriter: stderr,
		// main turns errors into exit statuses; cli must not os.Exit.
		ExitErrHandler: func(context.Context, *cli.Command, error) {},
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error"},
			&cli.StringFlag{Name: "log-format", Value: "console", Usage: "console or json"},
		},
		Before: func(ctx context.Context, cmd *cli.Command) (context.Context, error) {
			l, err := newLogger(stderr, cmd.String("log-level"), cmd.String("log-format"))
			if err != nil {
				return ctx, cli.Exit(err.Error(), 2)
			}
			a.log = l
			return ctx, nil
		},
		Commands: []*cli.Command{a.checkCommand(), a.runCommand(), a.shutdownCommand(), a.listCommand(), a.versionCommand()},
	}
}

// newLogger builds the slog logger with zap as its backend.
func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lvl zapcore.Level
	if err := lvl.UnmarshalText([]byte(strings.ToLower(level))); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	switch format {
	case "console":
		encCfg.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(encCfg)
	case "json":
		enc = zapcore.NewJSONEncoder(encCfg)
	default:
		return nil, fmt.Errorf("--log-format %q: want console or json", format)
	}
	core := zapcore.NewCore(enc, zapcore.AddSync(w), lvl)
	return slog.New(zapslog.NewHandler(core, zapslog.AddStacktraceAt(slog.LevelError+100))), nil
}

func (a *app) versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print xenvmm's version",
		Action: func(ctx context.Context, cmd *cli.Command) error {
			fmt.Fprintf(a.stdout, "xenvmm %s\n", version)
			return nil
		},
	}
}
