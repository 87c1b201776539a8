package bootloader

import (
	"fmt"
	"strconv"
	"strings"
)

// Entry is one boot entry of a GRUB menu.
type Entry struct {
	Title  string
	Kernel string // path on the file system the menu was read from
	Initrd string // "" for none
	Args   string
}

// Menu is a parsed GRUB configuration: its entries, in order (GRUB 2
// submenus flattened in place), and the default one.
type Menu struct {
	Entries []Entry
	Default int
}

// stripDevice removes a GRUB device prefix from a path: "(hd0,0)/boot/x"
// and "($root)/x" become "/boot/x" and "/x".
func stripDevice(p string) string {
	if strings.HasPrefix(p, "(") {
		if i := strings.IndexByte(p, ')'); i >= 0 {
			p = p[i+1:]
		}
	}
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	return p
}

// unquote removes one level of shell-style quotes from a GRUB 2 word.
func unquote(s string) string {
	if len(s) >= 2 && (s[0] == '\'' || s[0] == '"') && s[len(s)-1] == s[0] {
		return s[1 : len(s)-1]
	}
	return s
}

// ParseMenuLst parses a GRUB legacy menu.lst (grub.conf): "default N",
// "title", "kernel PATH ARGS", "initrd PATH"; "root" lines are ignored
// (paths are taken on the file system the menu is on, as pygrub does).
func ParseMenuLst(text string) (*Menu, error) {
	m := &Menu{}
	var cur *Entry
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, rest := line, ""
		if i := strings.IndexAny(line, " \t="); i >= 0 {
			key, rest = line[:i], strings.TrimSpace(line[i+1:]) // "title x", "title\tx", "title=x"
		}
		switch key {
		case "default":
			if d, err := strconv.Atoi(rest); err == nil {
				m.Default = d
			} // "saved": the first entry
		case "title":
			m.Entries = append(m.Entries, Entry{Title: rest})
			cur = &m.Entries[len(m.Entries)-1]
		case "kernel":
			if cur == nil {
				return nil, fmt.Errorf("menu.lst:%d: kernel before any title", n+1)
			}
			f := strings.Fields(rest)
			if len(f) == 0 {
				return nil, fmt.Errorf("menu.lst:%d: kernel without a path", n+1)
			}
			cur.Kernel, cur.Args = stripDevice(f[0]), strings.Join(f[1:], " ")
		case "initrd":
			if cur == nil {
				return nil, fmt.Errorf("menu.lst:%d: initrd before any title", n+1)
			}
			if f := strings.Fields(rest); len(f) > 0 {
				cur.Initrd = stripDevice(f[0])
			}
		}
	}
	return m.check()
}

// ParseGrubCfg parses a GRUB 2 grub.cfg as pygrub does: the menuentry
// blocks (and those inside submenus, in order), their "linux" (also
// linux16/linuxefi) and "initrd" lines, and "set default=". A default
// given as a title, or as "N>M" for an entry of a submenu, is resolved;
// "saved" and variables mean the first entry. Scripting (if, search,
// insmod) is skipped.
func ParseGrubCfg(text string) (*Menu, error) {
	m := &Menu{}
	var def string
	type item struct {
		title string
		entry int // index in m.Entries, or -1 for a submenu
		sub   []int
	}
	var top []item
	depth := 0       // braces open
	inSub := -1      // index in top of the open submenu, or -1
	var cur *Entry   // entry being read
	entryDepth := -1 // depth of the open menuentry's brace
	for _, raw := range strings.Split(text, "\n") {
		line := strings.TrimSpace(raw)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		words := strings.Fields(line)
		switch {
		case words[0] == "menuentry" || words[0] == "submenu":
			title := ""
			if rest := strings.TrimSpace(strings.TrimPrefix(line, words[0])); rest != "" {
				if q := rest[0]; q == '\'' || q == '"' {
					if end := strings.IndexByte(rest[1:], q); end >= 0 {
						title = rest[1 : end+1]
					}
				} else {
					title = strings.Fields(rest)[0]
				}
			}
			if words[0] == "submenu" {
				top = append(top, item{title: title, entry: -1})
				inSub = len(top) - 1
			} else {
				m.Entries = append(m.Entries, Entry{Title: title})
				cur = &m.Entries[len(m.Entries)-1]
				if inSub >= 0 {
					top[inSub].sub = append(top[inSub].sub, len(m.Entries)-1)
				} else {
					top = append(top, item{title: title, entry: len(m.Entries) - 1})
				}
			}
			if strings.HasSuffix(line, "{") {
				depth++
				if words[0] == "menuentry" {
					entryDepth = depth
				}
			}
		case line == "}":
			if depth == entryDepth {
				cur, entryDepth = nil, -1
			} else if inSub >= 0 && cur == nil {
				inSub = -1
			}
			if depth > 0 {
				depth--
			}
		case cur != nil && (words[0] == "linux" || words[0] == "linux16" || words[0] == "linuxefi" || words[0] == "multiboot"):
			if len(words) > 1 {
				cur.Kernel = stripDevice(unquote(words[1]))
				cur.Args = strings.TrimSpace(strings.Join(words[2:], " "))
			}
		case cur != nil && (words[0] == "initrd" || words[0] == "initrd16" || words[0] == "initrdefi"):
			if len(words) > 1 {
				cur.Initrd = stripDevice(unquote(words[1])) // the first; more are not supported
			}
		case cur == nil && words[0] == "set" && len(words) > 1 && strings.HasPrefix(words[1], "default="):
			// The last constant one wins ("${next_entry}" and the like
			// are GRUB's run-time state, which pygrub does not have).
			if v := unquote(line[strings.Index(line, "default=")+len("default="):]); !strings.Contains(v, "$") {
				def = v
			}
		}
	}
	// Resolve the default: a number, "N>M", or a title.
	resolve := func(it item, rest string) int {
		if it.entry >= 0 {
			return it.entry
		}
		if len(it.sub) == 0 {
			return 0
		}
		if rest == "" {
			return it.sub[0]
		}
		for i, e := range it.sub {
			if strconv.Itoa(i) == rest || m.Entries[e].Title == rest {
				return e
			}
		}
		return it.sub[0]
	}
	if def != "" && len(top) > 0 {
		head, rest, _ := strings.Cut(def, ">")
		if n, err := strconv.Atoi(head); err == nil && n >= 0 && n < len(top) {
			m.Default = resolve(top[n], rest)
		} else {
			for _, it := range top {
				if it.title == head {
					m.Default = resolve(it, rest)
					break
				}
			}
		}
	}
	return m.check()
}

// check drops the default to the first entry when it is out of range
// and refuses a menu with no bootable entry.
func (m *Menu) check() (*Menu, error) {
	if len(m.Entries) == 0 {
		return nil, fmt.Errorf("no boot entries")
	}
	if m.Default < 0 || m.Default >= len(m.Entries) {
		m.Default = 0
	}
	return m, nil
}
