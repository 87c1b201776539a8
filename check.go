package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/urfave/cli/v3"
	"github.com/xenvmm/xenvmm/bootloader"
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
	Pygrub   *pygrubReport  `json:"pygrub,omitempty"`
	Kernel   *loader.Image  `json:"kernel,omitempty"`
	Problems []string       `json:"problems,omitempty"`
}

// prepare parses, validates and host-checks the config and loads its
// kernel — for bootloader = "pygrub", the one the first disk's GRUB menu
// names (see bootloader.Pygrub). It returns the domain (nil only on a
// parse failure), what pygrub chose (or nil), the kernel image when it
// loaded, and every problem found.
func (a *app) prepare(path string) (*config.Domain, []config.Warning, *bootloader.Choice, *loader.Image, []error) {
	dom, warns, err := config.ParseFile(path)
	if err != nil {
		return nil, nil, nil, nil, []error{err}
	}
	var problems []error
	if err := dom.Validate(); err != nil {
		problems = append(problems, unjoin(err)...)
	}
	if err := dom.CheckHost(); err != nil {
		problems = append(problems, unjoin(err)...)
	}
	var img *loader.Image
	var choice *bootloader.Choice
	switch {
	case dom.Pygrub():
		var perr error
		choice, img, perr = pygrub(dom)
		if perr != nil {
			problems = append(problems, perr)
		}
	case dom.Kernel != "":
		var lerr error
		img, lerr = loader.LoadFile(dom.Kernel)
		// A missing file is already reported by CheckHost, with its key.
		if lerr != nil && !errors.Is(lerr, fs.ErrNotExist) {
			problems = append(problems, fmt.Errorf("kernel %q: %w", dom.Kernel, lerr))
		}
	}
	return dom, warns, choice, img, problems
}

// pygrub reads the kernel and initrd that the domain's first disk names
// in its GRUB menu (bootloader = "pygrub"), and loads the kernel.
func pygrub(dom *config.Domain) (*bootloader.Choice, *loader.Image, error) {
	o, err := bootloader.ParseArgs(dom.BootloaderArgs)
	if err != nil {
		return nil, nil, err
	}
	// As xl passes them to pygrub: kernel= and ramdisk= of a pygrub
	// domain are paths inside the guest's file system.
	if o.Kernel == "" {
		o.Kernel = dom.Kernel
	}
	if o.Ramdisk == "" {
		o.Ramdisk = dom.Ramdisk
	}
	c, err := bootloader.Pygrub(dom.Disks, o)
	if err != nil {
		return nil, nil, err
	}
	img, err := loader.Load(c.Disk+":"+c.Entry.Kernel, c.Kernel)
	if err != nil {
		return c, nil, fmt.Errorf("pygrub: kernel %s on %s: %w", c.Entry.Kernel, c.Disk, err)
	}
	return c, img, nil
}

// pygrubReport is what `xenvmm check` says pygrub chose.
type pygrubReport struct {
	Disk      string `json:"disk"`
	Partition int    `json:"partition"`
	Menu      string `json:"menu,omitempty"`
	Title     string `json:"title"`
	Kernel    string `json:"kernel"`
	Initrd    string `json:"initrd,omitempty"`
	Cmdline   string `json:"cmdline"`
}

func newPygrubReport(c *bootloader.Choice, dom *config.Domain) *pygrubReport {
	if c == nil {
		return nil
	}
	return &pygrubReport{Disk: c.Disk, Partition: c.Partition, Menu: c.MenuPath, Title: c.Entry.Title,
		Kernel: c.Entry.Kernel, Initrd: c.Entry.Initrd, Cmdline: c.Cmdline(dom.Cmdline)}
}

func (a *app) check(path string, asJSON bool) error {
	dom, warns, choice, img, problems := a.prepare(path)
	if dom == nil {
		return cli.Exit(problems[0].Error(), 1)
	}
	if asJSON {
		r := checkReport{Domain: dom, Kernel: img, Pygrub: newPygrubReport(choice, dom)}
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
		if r := newPygrubReport(choice, dom); r != nil {
			fmt.Fprintln(a.stdout)
			fmt.Fprintf(a.stdout, "pygrub: %s partition %d, %s, entry %q:\n", r.Disk, r.Partition, r.Menu, r.Title)
			fmt.Fprintf(a.stdout, "  kernel  %s\n  initrd  %s\n  cmdline %s\n", r.Kernel, r.Initrd, r.Cmdline)
		}
		if img != nil {
			fmt.Fprintln(a.stdout)
			fmt.Fprintf(a.stdout, "kernel image %s:\n", img.Name)
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
