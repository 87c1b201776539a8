package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Kind is the type of a Value.
type Kind uint8

const (
	KindString Kind = iota + 1 // a quoted string
	KindNumber                 // an unquoted number, kept as written
	KindBool                   // True or False (xm extension)
	KindList                   // [ ... ]
)

func (k Kind) String() string {
	switch k {
	case KindString:
		return "string"
	case KindNumber:
		return "number"
	case KindBool:
		return "boolean"
	case KindList:
		return "list"
	}
	return "invalid"
}

// Value is one value of a setting, with its position.
//
// As in libxlu (where every atom is a string until xl asks for a number),
// a number is kept as the text that was written and converted on use, and a
// quoted string may be used where a number is expected ("128" works for
// memory).
type Value struct {
	Kind Kind
	// Text is the decoded string (KindString), the literal as written
	// (KindNumber: "0x1", "-5") or "True"/"False" (KindBool).
	Text string
	List []Value // KindList
	Pos  Pos     // of the first character: quote, digit or '['

	// offs maps decoded byte i of a string with escapes to its column
	// offset from Pos (offs[len(Text)] is the closing quote); nil when the
	// string had none.
	offs []int
	// joined marks a string built by "+=": offsets inside it are unknown.
	joined bool
}

// PosAt returns the position of byte i of a string value, so that an error
// in part of a spec string can point at that part. It falls back to v.Pos.
func (v Value) PosAt(i int) Pos {
	if v.Kind != KindString || v.joined || i < 0 || i > len(v.Text) {
		return v.Pos
	}
	p := v.Pos
	if v.offs == nil {
		p.Col += 1 + i
	} else if i < len(v.offs) {
		p.Col += v.offs[i]
	}
	return p
}

// String renders v in configuration file syntax.
func (v Value) String() string {
	switch v.Kind {
	case KindString:
		return quote(v.Text)
	case KindNumber, KindBool:
		return v.Text
	case KindList:
		var b strings.Builder
		b.WriteByte('[')
		for i, e := range v.List {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(e.String())
		}
		b.WriteByte(']')
		return b.String()
	}
	return "<invalid>"
}

// quote writes s as a double-quoted config string using only the escapes
// libxlu accepts.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '\n':
			b.WriteString(`\n`)
		case '\t':
			b.WriteString(`\t`)
		case '\r':
			b.WriteString(`\r`)
		default:
			if c < 0x20 || c == 0x7f {
				fmt.Fprintf(&b, `\x%02x`, c)
			} else {
				b.WriteByte(c)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}

// MarshalJSON renders strings as JSON strings, numbers as JSON numbers when
// they convert (else as the literal text), booleans as booleans and lists
// as arrays.
func (v Value) MarshalJSON() ([]byte, error) {
	switch v.Kind {
	case KindString:
		return json.Marshal(v.Text)
	case KindNumber:
		if n, err := v.Int(); err == nil {
			return json.Marshal(n)
		}
		return json.Marshal(v.Text)
	case KindBool:
		return json.Marshal(v.Text == "True")
	case KindList:
		l := v.List
		if l == nil {
			l = []Value{}
		}
		return json.Marshal(l)
	}
	return []byte("null"), nil
}

var (
	errNotNumber = errors.New("not a number")
	errRange     = errors.New("number out of range")
)

// Int converts a number or a string to an integer the way
// xlu_cfg_get_long does: strtol(text, &end, 0) with the whole text
// consumed, so "0x" means hex, a leading "0" octal, and leading blanks and
// a sign are allowed.
func (v Value) Int() (int64, error) {
	switch v.Kind {
	case KindNumber, KindString:
		return strtol(v.Text)
	case KindList:
		return 0, fmt.Errorf("expected a number, got a list")
	case KindBool:
		return 0, fmt.Errorf("expected a number, got %s", v.Text)
	}
	return 0, errNotNumber
}

// Bool converts a value where xl expects a BOOLEAN: a number that is 0
// (false) or anything else (true), as xlu_cfg_get_defbool does; the
// Python words True and False are accepted too.
func (v Value) Bool() (bool, error) {
	if v.Kind == KindBool {
		return v.Text == "True", nil
	}
	n, err := v.Int()
	if err != nil {
		return false, err
	}
	return n != 0, nil
}

// strtol mirrors C strtol(s, &end, 0) on a 64-bit long, and requires that
// the whole string is consumed and at least one digit read.
func strtol(s string) (int64, error) {
	orig := s
	s = strings.TrimLeft(s, " \t\n\v\f\r")
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	base := 10
	switch {
	case len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') && hexVal(s[2]) >= 0:
		base, s = 16, s[2:]
	case len(s) > 1 && s[0] == '0':
		base, s = 8, s[1:]
	}
	if s == "" {
		if base == 8 { // "0" itself
			return 0, nil
		}
		return 0, fmt.Errorf("%q is %w", orig, errNotNumber)
	}
	u, err := strconv.ParseUint(s, base, 64)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return 0, fmt.Errorf("%q is %w", orig, errRange)
		}
		return 0, fmt.Errorf("%q is %w", orig, errNotNumber)
	}
	if neg {
		if u > 1<<63 {
			return 0, fmt.Errorf("%q is %w", orig, errRange)
		}
		return -int64(u), nil
	}
	if u > math.MaxInt64 {
		return 0, fmt.Errorf("%q is %w", orig, errRange)
	}
	return int64(u), nil
}
