// Package bootloader does natively what Xen's pygrub (tools/pygrub) does
// for bootloader = "pygrub": it opens the domain's first disk, finds the
// file system holding a GRUB menu (the whole disk, or an MBR or GPT
// partition), parses the menu (GRUB 2 grub.cfg or GRUB legacy menu.lst),
// chooses the default entry (or the one bootloader_args names) and reads
// the kernel and initrd it names, so that a disk image carries its own
// kernel. Supported file systems: ext2, ext3, ext4 (package extfs).
//
// The image is untrusted (the guest wrote it): everything read from it
// goes through extfs's bounds checks, and the kernel and initrd are then
// parsed by the loader like any other kernel.
package bootloader

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/xenvmm/xenvmm/bootloader/extfs"
	"github.com/xenvmm/xenvmm/config"
)

// menuPaths are where pygrub looks for a menu, in its order.
var menuPaths = []string{
	"/boot/grub/grub.cfg", "/grub/grub.cfg", "/boot/grub2/grub.cfg", "/grub2/grub.cfg",
	"/boot/grub/menu.lst", "/grub/menu.lst", "/boot/grub/grub.conf", "/grub/grub.conf",
}

// Options are pygrub's own options, from bootloader_args.
type Options struct {
	// Entry is the menu entry to boot (--entry=N, or a title); "" for
	// the menu's default.
	Entry string
	// Kernel and Ramdisk (--kernel=, --ramdisk=) boot these paths on
	// the file system instead of a menu entry; Args (--args=) is added
	// to the kernel's arguments.
	Kernel, Ramdisk, Args string
}

// ParseArgs reads pygrub's options from bootloader_args: -q/--quiet and
// -n/--not-really are accepted and ignored, --entry, --kernel, --ramdisk
// and --args are used; -i/--interactive (pygrub's curses menu) and
// anything else is refused with an error naming it.
func ParseArgs(args []string) (Options, error) {
	var o Options
	takes := map[string]*string{"--entry": &o.Entry, "--kernel": &o.Kernel, "--ramdisk": &o.Ramdisk, "--args": &o.Args}
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, val, hasVal := strings.Cut(a, "=")
		if p, ok := takes[name]; ok {
			if !hasVal {
				if i+1 >= len(args) {
					return o, fmt.Errorf("bootloader_args: %s needs a value", name)
				}
				i++
				val = args[i]
			}
			*p = val
			continue
		}
		switch a {
		case "-q", "--quiet", "-n", "--not-really":
		case "-i", "--interactive":
			return o, fmt.Errorf("bootloader_args: %s: xenvmm's pygrub has no interactive menu; choose with --entry=N", a)
		default:
			return o, fmt.Errorf("bootloader_args: unknown pygrub option %q (xenvmm knows -q, --entry, --kernel, --ramdisk, --args)", a)
		}
	}
	return o, nil
}

// Choice is what pygrub found.
type Choice struct {
	Disk      string // the image's path
	Partition int    // 0: the whole disk
	MenuPath  string // "" when --kernel chose
	Entry     Entry
	Kernel    []byte
	Ramdisk   []byte // nil for none
}

// Cmdline is the kernel command line: the entry's arguments, then
// extra (the domain's root= and extra=, as xl passes them with --args).
func (c *Choice) Cmdline(extra string) string {
	return strings.TrimSpace(c.Entry.Args + " " + extra)
}

// Pygrub chooses what to boot from the domain's first disk.
func Pygrub(disks []config.Disk, o Options) (*Choice, error) {
	if len(disks) == 0 {
		return nil, errors.New("pygrub: the domain has no disk to boot from")
	}
	d := disks[0]
	if d.Target == "" || d.Script != "" || (d.Format != "" && d.Format != "raw") {
		return nil, fmt.Errorf("pygrub: disk %q: only raw images and block devices can be read", d.Spec)
	}
	path := d.HostPath()
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("pygrub: %w", err)
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, fmt.Errorf("pygrub: %s: %w", path, err)
	}
	parts, err := Partitions(f, size)
	if err != nil {
		return nil, fmt.Errorf("pygrub: %s: %w", path, err)
	}
	var tried []string
	for _, p := range parts {
		fs, err := extfs.Open(io.NewSectionReader(f, p.Start, p.Size), p.Size)
		if err != nil {
			tried = append(tried, fmt.Sprintf("partition %d: %v", p.Number, err))
			continue
		}
		c, err := choose(fs, o)
		if err != nil {
			tried = append(tried, fmt.Sprintf("partition %d: %v", p.Number, err))
			continue
		}
		c.Disk, c.Partition = path, p.Number
		return c, nil
	}
	return nil, fmt.Errorf("pygrub: nothing to boot on %s: %s", path, strings.Join(tried, "; "))
}

// choose reads the menu (or the --kernel path) on one file system.
func choose(fs *extfs.FS, o Options) (*Choice, error) {
	c := &Choice{}
	if o.Kernel != "" {
		c.Entry = Entry{Title: "kernel " + o.Kernel, Kernel: stripDevice(o.Kernel), Initrd: o.Ramdisk}
		if c.Entry.Initrd != "" {
			c.Entry.Initrd = stripDevice(c.Entry.Initrd)
		}
	} else {
		var menu *Menu
		for _, p := range menuPaths {
			b, err := fs.ReadFile(p)
			if errors.Is(err, extfs.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			if strings.HasSuffix(p, ".cfg") {
				menu, err = ParseGrubCfg(string(b))
			} else {
				menu, err = ParseMenuLst(string(b))
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			c.MenuPath = p
			break
		}
		if menu == nil {
			return nil, fmt.Errorf("no GRUB menu (looked for %s)", strings.Join(menuPaths, ", "))
		}
		i := menu.Default
		if o.Entry != "" {
			n, err := strconv.Atoi(o.Entry)
			if err != nil {
				n = -1
				for k, e := range menu.Entries {
					if e.Title == o.Entry {
						n = k
					}
				}
			}
			if n < 0 || n >= len(menu.Entries) {
				return nil, fmt.Errorf("%s: no entry %q (it has %d)", c.MenuPath, o.Entry, len(menu.Entries))
			}
			i = n
		}
		c.Entry = menu.Entries[i]
		if o.Ramdisk != "" {
			c.Entry.Initrd = stripDevice(o.Ramdisk)
		}
		if c.Entry.Kernel == "" {
			return nil, fmt.Errorf("%s: entry %d (%q) names no kernel", c.MenuPath, i, c.Entry.Title)
		}
	}
	if o.Args != "" {
		c.Entry.Args = strings.TrimSpace(c.Entry.Args + " " + o.Args)
	}
	var err error
	if c.Kernel, err = readBoot(fs, c.Entry.Kernel); err != nil {
		return nil, fmt.Errorf("kernel: %w", err)
	}
	if c.Entry.Initrd != "" {
		if c.Ramdisk, err = readBoot(fs, c.Entry.Initrd); err != nil {
			return nil, fmt.Errorf("initrd: %w", err)
		}
	}
	return c, nil
}

// readBoot reads a file a menu names. A separate /boot partition holds
// paths without the /boot prefix; a menu on the root file system names
// them with it. Either way round is tried, as pygrub does.
func readBoot(fs *extfs.FS, p string) ([]byte, error) {
	b, err := fs.ReadFile(p)
	if errors.Is(err, extfs.ErrNotFound) {
		if rest, ok := strings.CutPrefix(p, "/boot/"); ok {
			if b2, err2 := fs.ReadFile("/" + rest); err2 == nil {
				return b2, nil
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return b, nil
}
