package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/urfave/cli/v3"
	"github.com/xenvmm/xenvmm/config"
	"github.com/xenvmm/xenvmm/loader"
)

func (a *app) checkCommand() *cli.Command {
	return &cli.Command{
		Name:      "check",
		Usage:     "parse and validate a domain config, load its kernel, and print what would be built",
		ArgsUsage: "CONFIG",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print the domain as JSON"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if cmd.NArg() != 1 {
				return cli.Exit("check: want exactly one CONFIG file", 2)
			}
			return a.check(cmd.Args().First(), cmd.Bool("json"))
		},
	}
}

// checkReport is `xenvmm check --json`'s output.
type checkReport struct {
	Domain   *config.Domain `json:"domain"`
	Warnings []string       `json:"warnings,omitempty"`
	Kernel   *loader.Image  `json:"kernel,omitempty"`
	Problems []string       `json:"problems,omitempty"`
}

// prepare parses, validates and host-checks the config and loads its
// kernel. It returns the domain (nil only on a parse failure), the
// kernel image when it loaded, and every problem found.
func (a *app) prepare(path string) (*config.Domain, []config.Warning, *loader.Image, []error) {
	dom, warns, err := config.ParseFile(path)
	if err != nil {
		return nil, nil, nil, []error{err}
	}
	var problems []error
	if err := dom.Validate(); err != nil {
		problems = append(problems, unjoin(err)...)
	}
	if err := dom.CheckHost(); err != nil {
		problems = append(problems, unjoin(err)...)
	}
	var img *loader.Image
	if dom.Kernel != "" {
		var lerr error
		img, lerr = loader.LoadFile(dom.Kernel)
		// A missing file is already reported by CheckHost, with its key.
		if lerr != nil && !errors.Is(lerr, fs.ErrNotExist) {
			problems = append(problems, fmt.Errorf("kernel %q: %w", dom.Kernel, lerr))
		}
	}
	return dom, warns, img, problems
}

func (a *app) check(path string, asJSON bool) error {
	dom, warns, img, problems := a.prepare(path)
	if dom == nil {
		return cli.Exit(problems[0].Error(), 1)
	}
	if asJSON {
		r := checkReport{Domain: dom, Kernel: img}
		for _, w := range warns {
			r.Warnings = append(r.Warnings, w.String())
		}
		for _, p := range problems {
			r.Problems = append(r.Problems, p.Error())
		}
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return err
		}
	} else {
		for _, w := range warns {
			fmt.Fprintln(a.stderr, "warning:", w.String())
		}
		if err := dom.Describe(a.stdout); err != nil {
			return err
		}
		if img != nil {
			fmt.Fprintln(a.stdout)
			fmt.Fprintf(a.stdout, "kernel image %s:\n", dom.Kernel)
			if err := img.Describe(indent(a.stdout)); err != nil {
				return err
			}
		}
	}
	if len(problems) > 0 {
		fmt.Fprintf(a.stderr, "\n%s: %d problem(s) stop this domain from running here:\n", path, len(problems))
		for _, p := range problems {
			fmt.Fprintf(a.stderr, "  - %v\n", p)
		}
		return cli.Exit("", 1)
	}
	fmt.Fprintf(a.stderr, "\n%s: OK\n", path)
	return nil
}

// unjoin splits an errors.Join result into its parts.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

type indentWriter struct {
	w   io.Writer
	bol bool
}

func indent(w io.Writer) io.Writer { return &indentWriter{w: w, bol: true} }

func (iw *indentWriter) Write(p []byte) (int, error) {
	for i, c := range p {
		if iw.bol {
			if _, err := io.WriteString(iw.w, "  "); err != nil {
				return i, err
			}
		}
		if _, err := iw.w.Write([]byte{c}); err != nil {
			return i, err
		}
		iw.bol = c == '\n'
	}
	return len(p), nil
}
