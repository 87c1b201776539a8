package xenstore

import (
	"fmt"
	"strconv"
	"strings"
)

// Access is a set of permission bits, as XS_PERM_* in tools/include/xenstore_lib.h.
type Access uint8

// Permission bits.
const (
	AccessNone  Access = 0x00                     // 'n'
	AccessRead  Access = 0x01                     // 'r'
	AccessWrite Access = 0x02                     // 'w'
	AccessBoth         = AccessRead | AccessWrite // 'b'
	// accessOwner is granted to a node's owner and the privileged domain only;
	// SET_PERMS requires it.
	accessOwner Access = 0x08
)

// Perm is one entry of a node's permission list (<perm-as-string> in
// docs/misc/xenstore.txt). The first entry of a list names the node's owner,
// who has full access, and its Access is the default for every domain
// without an entry of its own.
type Perm struct {
	Domid  uint32
	Access Access
}

// String formats p as on the wire: a letter (n, r, w, b) and the domid.
func (p Perm) String() string {
	var c byte
	switch p.Access & AccessBoth {
	case AccessRead:
		c = 'r'
	case AccessWrite:
		c = 'w'
	case AccessBoth:
		c = 'b'
	default:
		c = 'n'
	}
	return string(c) + strconv.FormatUint(uint64(p.Domid), 10)
}

// ParsePerm parses "<letter><domid>". Like xenstored (strtol base 0) the
// domid may be decimal, 0x-hex or 0-octal; it must fit in 16 bits.
func ParsePerm(s string) (Perm, error) {
	if len(s) < 2 {
		return Perm{}, fmt.Errorf("xenstore: bad permission %q", s)
	}
	var a Access
	switch s[0] {
	case 'n':
		a = AccessNone
	case 'r':
		a = AccessRead
	case 'w':
		a = AccessWrite
	case 'b':
		a = AccessBoth
	default:
		return Perm{}, fmt.Errorf("xenstore: bad permission letter in %q", s)
	}
	v, err := strconv.ParseUint(s[1:], 0, 16)
	if err != nil {
		return Perm{}, fmt.Errorf("xenstore: bad permission domid in %q: %w", s, err)
	}
	return Perm{Domid: uint32(v), Access: a}, nil
}

// ParsePerms parses a list of permission strings.
func ParsePerms(ss ...string) ([]Perm, error) {
	out := make([]Perm, 0, len(ss))
	for _, s := range ss {
		p, err := ParsePerm(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// FormatPerms formats a permission list as xenstore-ls -p shows it.
func FormatPerms(ps []Perm) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

// clonePerms copies a permission list.
func clonePerms(ps []Perm) []Perm {
	return append([]Perm(nil), ps...)
}

// subject is who asks for access: a domain, the domain it targets
// (SET_TARGET) if any, and whether it is privileged (dom0 and host tools).
type subject struct {
	domid  uint32
	target int // -1: none
	priv   bool
}

func (s subject) matches(id uint32) bool {
	return id == s.domid || (s.target >= 0 && id == uint32(s.target)) || id == DomidAny
}

// permFor computes the access s has to a node with perms, as xenstored's
// perm_for_conn: the privileged domain and the owner get everything
// (including the owner bit); otherwise the first matching non-owner entry
// decides, else the owner entry's default.
func permFor(s subject, perms []Perm) Access {
	if s.priv {
		return AccessBoth | accessOwner
	}
	if len(perms) == 0 {
		return AccessNone
	}
	if s.matches(perms[0].Domid) {
		return AccessBoth | accessOwner
	}
	for _, p := range perms[1:] {
		if s.matches(p.Domid) {
			return p.Access & AccessBoth
		}
	}
	return perms[0].Access & AccessBoth
}
