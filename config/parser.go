package config

import (
	"encoding/json"
	"fmt"
)

// Op is the assignment operator of a setting.
type Op uint8

const (
	OpAssign Op = iota // KEY = VALUE
	OpAppend           // KEY += VALUE
)

func (o Op) String() string {
	if o == OpAppend {
		return "+="
	}
	return "="
}

// Setting is one "KEY = VALUE" or "KEY += VALUE" statement.
type Setting struct {
	Key   string
	Op    Op
	Value Value
	Pos   Pos // of the key
}

// MarshalJSON renders a setting as {"key":..., "value":..., "pos":...}.
func (s Setting) MarshalJSON() ([]byte, error) {
	type js struct {
		Key   string `json:"key"`
		Op    string `json:"op,omitempty"`
		Value Value  `json:"value"`
		Pos   Pos    `json:"pos"`
	}
	j := js{Key: s.Key, Value: s.Value, Pos: s.Pos}
	if s.Op == OpAppend {
		j.Op = "+="
	}
	return json.Marshal(j)
}

// Settings is the statements of a file in the order they appear.
type Settings []Setting

// maxDepth bounds list nesting so that hostile input cannot exhaust the
// stack; libxlu has no limit but nothing uses more than one level.
const maxDepth = 64

// parser is a recursive-descent version of the grammar in libxlu_cfg_y.y:
//
//	file:       stmts | stmts assignment
//	stmt:       assignment endstmt | endstmt
//	assignment: IDENT '=' value | IDENT "+=" value
//	endstmt:    NEWLINE | ';'
//	value:      atom | '[' nlok valuelist ']'
//	atom:       STRING | NUMBER
//	valuelist:  /* empty */ | values | values ',' nlok
//	values:     value nlok | values ',' nlok value nlok
//	nlok:       /* empty */ | nlok NEWLINE
type parser struct {
	lx  *lexer
	tok token
	// kinds remembers the kind of the latest value of each key, to reject
	// "+=" between a string and a list as xlu__cfg_concat_vals does.
	kinds map[string]Kind
}

// ParseSettings parses the xl configuration language into its statements,
// without interpreting any key. The first syntax error is returned as a
// *SyntaxError.
func ParseSettings(filename string, src []byte) (Settings, error) {
	p := &parser{lx: newLexer(filename, src), kinds: map[string]Kind{}}
	if err := p.advance(); err != nil {
		return nil, err
	}
	var out Settings
	for {
		switch p.tok.kind {
		case tEOF:
			return out, nil
		case tNewline, tSemi:
			if err := p.advance(); err != nil {
				return nil, err
			}
		case tIdent:
			s, err := p.assignment()
			if err != nil {
				return nil, err
			}
			out = append(out, s)
			switch p.tok.kind {
			case tEOF:
				return out, nil
			case tNewline, tSemi:
				if err := p.advance(); err != nil {
					return nil, err
				}
			default:
				return nil, p.errorf("expected newline or ';' after the value of %q, found %s", s.Key, p.tok.describe())
			}
		default:
			return nil, p.errorf("expected a key (lower case: a-z, 0-9, '.', '_'), found %s", p.tok.describe())
		}
	}
}

func (p *parser) advance() error {
	t, err := p.lx.next()
	if err != nil {
		return err
	}
	p.tok = t
	return nil
}

func (p *parser) pos(t token) Pos { return Pos{File: p.lx.file, Line: t.line, Col: t.col} }

func (p *parser) errorf(format string, args ...any) *SyntaxError {
	return &SyntaxError{File: p.lx.file, Line: p.tok.line, Col: p.tok.col, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) assignment() (Setting, error) {
	key := p.tok
	s := Setting{Key: key.text, Pos: p.pos(key)}
	if err := p.advance(); err != nil {
		return s, err
	}
	switch p.tok.kind {
	case tAssign:
		s.Op = OpAssign
	case tAddAssign:
		s.Op = OpAppend
	default:
		return s, p.errorf("expected '=' or '+=' after key %q, found %s", s.Key, p.tok.describe())
	}
	if err := p.advance(); err != nil {
		return s, err
	}
	v, err := p.value(s.Key, 0)
	if err != nil {
		return s, err
	}
	s.Value = v
	if s.Op == OpAppend {
		if prev, ok := p.kinds[s.Key]; ok && (prev == KindList) != (v.Kind == KindList) {
			return s, &SyntaxError{File: p.lx.file, Line: v.Pos.Line, Col: v.Pos.Col,
				Msg: fmt.Sprintf("can't add a %s to the %s value of %q with '+='", v.Kind, prev, s.Key)}
		}
	}
	p.kinds[s.Key] = v.Kind
	return s, nil
}

// value parses an atom or a list; the current token is its first token.
func (p *parser) value(key string, depth int) (Value, error) {
	t := p.tok
	v := Value{Pos: p.pos(t)}
	switch t.kind {
	case tString:
		v.Kind, v.Text, v.offs = KindString, t.text, t.offs
	case tNumber:
		v.Kind, v.Text = KindNumber, t.text
	case tBool:
		v.Kind, v.Text = KindBool, t.text
	case tLBrack:
		if depth >= maxDepth {
			return v, p.errorf("lists nested more than %d deep", maxDepth)
		}
		return p.list(key, depth+1)
	case tIdent:
		return v, p.errorf("expected a value for %q, found bare word %q: strings must be quoted (%q)", key, t.text, t.text)
	default:
		return v, p.errorf("expected a value for %q (a quoted string, a number or a [list]), found %s", key, t.describe())
	}
	return v, p.advance()
}

func (p *parser) skipNewlines() error {
	for p.tok.kind == tNewline {
		if err := p.advance(); err != nil {
			return err
		}
	}
	return nil
}

// list parses '[' nlok valuelist ']' with the current token at '['.
func (p *parser) list(key string, depth int) (Value, error) {
	open := p.tok
	v := Value{Kind: KindList, Pos: p.pos(open), List: []Value{}}
	if err := p.advance(); err != nil {
		return v, err
	}
	if err := p.skipNewlines(); err != nil {
		return v, err
	}
	for {
		if p.tok.kind == tRBrack {
			return v, p.advance()
		}
		if p.tok.kind == tEOF {
			return v, p.errorf("expected ']' to close the list opened at %d:%d, found end of file", open.line, open.col)
		}
		e, err := p.value(key, depth)
		if err != nil {
			return v, err
		}
		v.List = append(v.List, e)
		if err := p.skipNewlines(); err != nil {
			return v, err
		}
		switch p.tok.kind {
		case tRBrack:
			return v, p.advance()
		case tComma:
			if err := p.advance(); err != nil {
				return v, err
			}
			if err := p.skipNewlines(); err != nil {
				return v, err
			}
		case tEOF:
			return v, p.errorf("expected ']' to close the list opened at %d:%d, found end of file", open.line, open.col)
		default:
			return v, p.errorf("expected ',' or ']' in the list opened at %d:%d, found %s", open.line, open.col, p.tok.describe())
		}
	}
}

// Keys returns each key once, in the order of first appearance.
func (s Settings) Keys() []string {
	seen := map[string]bool{}
	var keys []string
	for _, st := range s {
		if !seen[st.Key] {
			seen[st.Key] = true
			keys = append(keys, st.Key)
		}
	}
	return keys
}

// Lookup returns the effective setting of key as xl sees it: the last
// "=" wins, and each "+=" after it appends to it (list to list, string to
// string, as xlu__cfg_set_store does). The result has the Op and Pos of the
// last statement, so that "memory += 1" is recognisably not a number. A
// "+=" with nothing before it is the value itself.
func (s Settings) Lookup(key string) (Setting, bool) {
	var cur Setting
	found := false
	for _, st := range s {
		if st.Key != key {
			continue
		}
		if !found || st.Op == OpAssign {
			cur, found = st, true
			continue
		}
		cur.Value = concat(cur.Value, st.Value)
		cur.Op, cur.Pos = st.Op, st.Pos
	}
	return cur, found
}

// concat implements xlu__cfg_concat_vals; ParseSettings has already
// rejected mixing lists and atoms.
func concat(a, b Value) Value {
	if a.Kind == KindList && b.Kind == KindList {
		l := make([]Value, 0, len(a.List)+len(b.List))
		l = append(append(l, a.List...), b.List...)
		a.List = l
		return a
	}
	if a.Kind == KindList || b.Kind == KindList {
		return b
	}
	return Value{Kind: KindString, Text: a.Text + b.Text, Pos: a.Pos, joined: true}
}
