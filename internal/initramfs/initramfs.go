// Package initramfs writes Linux initramfs images (newc cpio archives) in
// pure Go with u-root's pkg/cpio: the nested-KVM sandbox's root file
// system, and the tiny root file systems that PV guest tests boot.
package initramfs

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/u-root/u-root/pkg/cpio"
)

// Builder collects the files of an initramfs. The zero value is empty and
// ready to use.
type Builder struct {
	recs  map[string]cpio.Record
	files []*os.File
}

func (b *Builder) add(r cpio.Record) error {
	if b.recs == nil {
		b.recs = map[string]cpio.Record{}
	}
	name := cpio.Normalize(r.Name)
	if name == "" || name == "." || strings.HasPrefix(name, "..") {
		return fmt.Errorf("initramfs: bad path %q", r.Name)
	}
	r.Name = name
	if _, dup := b.recs[name]; dup {
		return fmt.Errorf("initramfs: %s added twice", name)
	}
	b.recs[name] = r
	return nil
}

// AddBytes adds a regular file with the given contents and permissions.
func (b *Builder) AddBytes(name string, data []byte, perm uint64) error {
	return b.add(cpio.StaticRecord(data, cpio.Info{Name: name, Mode: cpio.S_IFREG | perm&0o7777}))
}

// AddFile adds the host file src as name; its permission bits are kept.
// The file is read when the archive is written.
func (b *Builder) AddFile(name, src string) error {
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("initramfs: %w", err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return fmt.Errorf("initramfs: %s is not a regular file", src)
	}
	b.files = append(b.files, f)
	return b.add(cpio.Record{ReaderAt: f, Info: cpio.Info{
		Name: name, Mode: cpio.S_IFREG | uint64(st.Mode().Perm()), FileSize: uint64(st.Size()),
	}})
}

// AddDir adds an empty directory.
func (b *Builder) AddDir(name string, perm uint64) error {
	return b.add(cpio.Directory(name, perm))
}

// AddCharDev adds a character device node (e.g. dev/console 5:1, which
// the kernel opens for init's standard streams).
func (b *Builder) AddCharDev(name string, perm, major, minor uint64) error {
	return b.add(cpio.CharDev(name, perm, major, minor))
}

// AddSymlink adds a symbolic link.
func (b *Builder) AddSymlink(name, target string) error {
	return b.add(cpio.Symlink(name, target))
}

// WriteTo writes the archive (uncompressed newc cpio with a trailer),
// creating parent directories before their contents, and closes the host
// files it read.
func (b *Builder) WriteTo(w io.Writer) (int64, error) {
	defer b.closeFiles()
	cw := &countWriter{w: w}
	rw := cpio.NewDedupWriter(cpio.Newc.Writer(cw))
	names := make([]string, 0, len(b.recs))
	for n := range b.recs {
		names = append(names, n)
	}
	sort.Strings(names)
	var recs []cpio.Record
	for _, n := range names {
		r := b.recs[n]
		// Directories added explicitly go through parents first, like files.
		for _, d := range parents(n) {
			if _, explicit := b.recs[d]; !explicit {
				recs = append(recs, cpio.Directory(d, 0o755))
			}
		}
		recs = append(recs, cpio.MakeReproducible(r))
	}
	if err := cpio.WriteRecords(rw, recs); err != nil {
		return cw.n, fmt.Errorf("initramfs: %w", err)
	}
	if err := cpio.WriteTrailer(rw); err != nil {
		return cw.n, fmt.Errorf("initramfs: %w", err)
	}
	return cw.n, nil
}

// Bytes returns the archive, gzip-compressed when compress is set.
func (b *Builder) Bytes(compress bool) ([]byte, error) {
	var buf bytes.Buffer
	if !compress {
		_, err := b.WriteTo(&buf)
		return buf.Bytes(), err
	}
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if _, err := b.WriteTo(zw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("initramfs: %w", err)
	}
	return buf.Bytes(), nil
}

func (b *Builder) closeFiles() {
	for _, f := range b.files {
		f.Close()
	}
	b.files = nil
}

// parents returns the ancestors of name, outermost first ("a/b/c" → a, a/b).
func parents(name string) []string {
	var ps []string
	for d := path.Dir(name); d != "." && d != "/"; d = path.Dir(d) {
		ps = append([]string{d}, ps...)
	}
	return ps
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
