package xenstore

import (
	"strconv"
	"strings"
)

// Special watch paths (docs/misc/xenstore.txt "Watches"): events invented by
// the daemon, fired on INTRODUCE and on RELEASE or domain shutdown.
const (
	IntroduceDomainPath = "@introduceDomain"
	ReleaseDomainPath   = "@releaseDomain"
)

// DomainPath returns a domain's home, /local/domain/<domid>, the base of its
// relative paths (GET_DOMAIN_PATH in docs/misc/xenstore.txt).
func DomainPath(domid uint32) string {
	return "/local/domain/" + strconv.FormatUint(uint64(domid), 10)
}

// validPathChar reports whether c may appear in a path: ASCII alphanumerics
// and -/_@ (docs/misc/xenstore.txt; xenstored's valid_chars).
func validPathChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	case c == '-', c == '/', c == '_', c == '@':
		return true
	}
	return false
}

// canonicalPath validates p as sent by a client whose home is home and
// returns the absolute path. Relative paths are taken below home. Paths
// starting with '@' are the special watch paths, allowed only where special
// is true. pathMax, when non-zero, limits the length of the path below any
// /local/domain/<id>/ prefix (the "path-max" quota, which xenstored applies
// to unprivileged domains); every path is limited to AbsPathMax. All
// violations are EINVAL, as in xenstored's canonicalize().
func canonicalPath(home, p string, special bool, pathMax int) (string, bool) {
	if p == "" {
		return "", false
	}
	for i := 0; i < len(p); i++ {
		if !validPathChar(p[i]) {
			return "", false
		}
	}
	if p[0] == '@' && !special {
		return "", false
	}
	name := p
	if p[0] != '/' && p[0] != '@' {
		name = home + "/" + p
	}
	if name != "/" && strings.HasSuffix(name, "/") {
		return "", false
	}
	if strings.Contains(name, "//") {
		return "", false
	}
	if len(name) > AbsPathMax {
		return "", false
	}
	if pathMax > 0 && len(name)-localOffset(name) > pathMax {
		return "", false
	}
	return name, true
}

// localOffset returns the length of a leading "/local/domain/<id>/" (id of
// at most five digits), or 0; xenstored measures path-max from there.
func localOffset(name string) int {
	const pfx = "/local/domain/"
	if !strings.HasPrefix(name, pfx) {
		return 0
	}
	i := len(pfx)
	j := i
	for j < len(name) && j-i < 5 && name[j] >= '0' && name[j] <= '9' {
		j++
	}
	if j == i || j >= len(name) || name[j] != '/' {
		return 0
	}
	return j + 1
}

// parentPath returns the parent of an absolute or special path: "/" for
// top-level nodes and for the special paths (xenstored's get_parent).
func parentPath(p string) string {
	i := strings.LastIndexByte(p[1:], '/')
	if i < 0 {
		return "/"
	}
	return p[:i+1]
}

// baseName returns the last element of a path other than "/".
func baseName(p string) string {
	return p[strings.LastIndexByte(p, '/')+1:]
}

// childPath joins a node and a child's name.
func childPath(parent, name string) string {
	if parent == "/" {
		return "/" + name
	}
	return parent + "/" + name
}

// isChild reports whether child lies at or below parent, at most depth
// levels down (depth < 0: unlimited). This is the watch match of
// docs/misc/xenstore.txt and xenstored's is_child().
func isChild(child, parent string, depth int) bool {
	n := len(parent)
	if !strings.HasPrefix(child, parent) {
		return false
	}
	if n > 1 && len(child) > n && child[n] != '/' {
		return false
	}
	if depth < 0 || len(child) == n {
		return true
	}
	rest := child[n:]
	if n == 1 { // parent "/": rest has no leading slash
		rest = "/" + rest
	}
	return strings.Count(rest, "/") <= depth
}

// parseDomid parses a decimal domid 0..65535 as xenstored's parse_domid.
func parseDomid(s string) (uint32, bool) {
	if s == "" || len(s) > 5 {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil || v > 65535 {
		return 0, false
	}
	return uint32(v), true
}

// atoi mimics C atoi on a decimal prefix (used where xenstored uses atoi).
func atoi(s string) int {
	neg := false
	i := 0
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n') {
		i++
	}
	if i < len(s) && (s[i] == '-' || s[i] == '+') {
		neg = s[i] == '-'
		i++
	}
	v := 0
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		v = v*10 + int(s[i]-'0')
		if v > 1<<31 {
			v = 1 << 31
		}
	}
	if neg {
		return -v
	}
	return v
}
