package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// HostError is a file, device or bridge that the configuration names but
// that this host lacks or cannot use. It is not a parse error: a config
// written for another host (the seed configs name NetBSD's /dev/wd0e)
// parses fine and fails here.
type HostError struct {
	Pos   Pos    // of the value in the config
	Key   string // "kernel", "disk[0]", "vif[1]"
	What  string // "kernel", "target", "bridge", ...
	Value string // as written in the config
	Path  string // what was looked at on the host
	Err   error  // fs.ErrNotExist, fs.ErrPermission, ErrIsDirectory, ErrNotBridge, ErrBadName
}

func (e *HostError) Error() string {
	var b strings.Builder
	switch {
	case e.Pos.IsValid():
		fmt.Fprintf(&b, "%s: ", e.Pos)
	case e.Pos.File != "":
		fmt.Fprintf(&b, "%s: ", e.Pos.File)
	}
	fmt.Fprintf(&b, "%s: %s %q", e.Key, e.What, e.Value)
	if e.Path != e.Value {
		fmt.Fprintf(&b, " (%s)", e.Path)
	}
	switch {
	case errors.Is(e.Err, fs.ErrNotExist):
		b.WriteString(" does not exist on this host")
	case errors.Is(e.Err, fs.ErrPermission):
		b.WriteString(": permission denied")
	default:
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

func (e *HostError) Unwrap() error { return e.Err }

// Sentinels for HostError.Err beyond the fs errors.
var (
	ErrIsDirectory = errors.New("is a directory")
	ErrNotBridge   = errors.New("is not a bridge")
	ErrBadName     = errors.New("is not a valid interface name")
)

// CheckHost reports the paths in d that do not exist or cannot be used on
// this host: kernel, ramdisk and an absolute bootloader (must be readable
// files), disk targets (must exist and not be directories; a target not
// starting with '/' is under /dev), and vif bridges (must be bridges under
// /sys/class/net). Relative kernel and ramdisk paths are taken from the
// current directory, as xl does. It returns nil or one *HostError per
// problem, joined.
func (d *Domain) CheckHost() error {
	wd, err := os.Getwd()
	if err != nil {
		wd = "/"
	}
	return d.check(os.DirFS("/"), func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(wd, p)
	})
}

// CheckHostFS is CheckHost against fsys, which stands for the host's root
// directory: "/dev/wd0e" is looked up as "dev/wd0e". Relative paths are
// relative to fsys's root.
func (d *Domain) CheckHostFS(fsys fs.FS) error {
	return d.check(fsys, func(p string) string {
		if strings.HasPrefix(p, "/") {
			return p
		}
		return "/" + p
	})
}

func (d *Domain) check(fsys fs.FS, abs func(string) string) error {
	var errs []error
	pos := func(key string) Pos {
		if p, ok := d.Positions[key]; ok {
			return p
		}
		return Pos{File: d.File}
	}
	add := func(p Pos, key, what, value, hostPath string, err error) {
		if err != nil {
			errs = append(errs, &HostError{Pos: p, Key: key, What: what, Value: value, Path: hostPath, Err: err})
		}
	}
	file := func(key, value string) {
		if value == "" {
			return
		}
		p := abs(value)
		add(pos(key), key, key, value, p, readableFile(fsys, p))
	}
	if !d.Pygrub() { // pygrub's kernel= and ramdisk= are inside the guest's disk
		file("kernel", d.Kernel)
		file("ramdisk", d.Ramdisk)
	}
	if strings.HasPrefix(d.Bootloader, "/") && !d.Pygrub() {
		file("bootloader", d.Bootloader)
	}
	for i, disk := range d.Disks {
		hp := disk.HostPath()
		if hp == "" {
			continue
		}
		fi, err := stat(fsys, hp)
		if err == nil && fi.IsDir() {
			err = ErrIsDirectory
		}
		add(disk.Pos, fmt.Sprintf("disk[%d]", i), "target", disk.Target, hp, err)
	}
	for i, v := range d.Vifs {
		if v.Bridge == "" {
			continue
		}
		key := fmt.Sprintf("vif[%d]", i)
		p := v.Pos
		dir := "/sys/class/net/" + v.Bridge
		if v.Bridge == "." || v.Bridge == ".." || strings.ContainsAny(v.Bridge, "/ \t\n") || len(v.Bridge) > 15 {
			add(p, key, "bridge", v.Bridge, dir, ErrBadName)
			continue
		}
		_, err := stat(fsys, dir)
		if err == nil {
			if _, err2 := stat(fsys, dir+"/bridge"); err2 != nil {
				err = ErrNotBridge
			}
		}
		add(p, key, "bridge", v.Bridge, dir, err)
	}
	return errors.Join(errs...)
}

// stat looks up an absolute host path in fsys.
func stat(fsys fs.FS, p string) (fs.FileInfo, error) {
	return fs.Stat(fsys, fsPath(p))
}

func fsPath(p string) string {
	p = strings.TrimPrefix(path.Clean("/"+p), "/")
	if p == "" {
		return "."
	}
	return p
}

// readableFile checks that p is a file that can be opened for reading.
func readableFile(fsys fs.FS, p string) error {
	fi, err := stat(fsys, p)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return ErrIsDirectory
	}
	f, err := fsys.Open(fsPath(p))
	if err != nil {
		return err
	}
	return f.Close()
}
