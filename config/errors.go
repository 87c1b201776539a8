package config

import (
	"errors"
	"fmt"
)

// Pos is a position in a configuration file. Line and Col are 1-based;
// Col counts bytes, as go/scanner does. A Pos with Line 0 is unknown.
type Pos struct {
	File string `json:"file,omitempty"`
	Line int    `json:"line"`
	Col  int    `json:"col"`
}

// String formats p as "file:line:col", or "line:col" when File is empty.
func (p Pos) String() string {
	if p.File == "" {
		return fmt.Sprintf("%d:%d", p.Line, p.Col)
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// IsValid reports whether p names a line.
func (p Pos) IsValid() bool { return p.Line > 0 }

// Sentinel errors, matched with errors.Is.
var (
	// ErrSyntax is matched by every *SyntaxError.
	ErrSyntax = errors.New("config syntax error")
	// ErrUnsupported marks a setting that parses but that xenvmm cannot
	// honour (type = "hvm", for instance).
	ErrUnsupported = errors.New("not supported by xenvmm")
	// ErrRequired marks a mandatory key that is missing.
	ErrRequired = errors.New("required")
)

// SyntaxError is a malformed file: the lexer or the grammar of
// tools/libs/util/libxlu_cfg_l.l and libxlu_cfg_y.y rejected it. Only the
// first one in a file is reported, as xl does.
type SyntaxError struct {
	File string
	Line int
	Col  int
	Msg  string // what was expected, or what was wrong
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("%s: %s", e.Pos(), e.Msg)
}

// Pos returns the position of the error.
func (e *SyntaxError) Pos() Pos { return Pos{File: e.File, Line: e.Line, Col: e.Col} }

// Is makes errors.Is(err, ErrSyntax) true.
func (e *SyntaxError) Is(target error) bool { return target == ErrSyntax }

// ValueError is a well-formed setting whose value is wrong: a bad disk spec,
// a negative memory size, an unknown on_crash action. Pos is the position of
// the offending value (inside a string when that is known) and Key names the
// setting, with an index for list items ("disk[0]").
type ValueError struct {
	Pos Pos
	Key string
	Msg string
	Err error // optional cause, for errors.Is / errors.As
}

func (e *ValueError) Error() string {
	switch {
	case e.Pos.IsValid():
		return fmt.Sprintf("%s: %s: %s", e.Pos, e.Key, e.Msg)
	case e.Pos.File != "":
		return fmt.Sprintf("%s: %s: %s", e.Pos.File, e.Key, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.Key, e.Msg)
}

func (e *ValueError) Unwrap() error { return e.Err }

// Warning is something xl would accept (or silently ignore) but that the user
// should know about: an unknown key, a duplicate assignment, an ignored
// root/extra.
type Warning struct {
	Pos Pos    `json:"pos"`
	Key string `json:"key"`
	Msg string `json:"msg"`
}

func (w Warning) String() string {
	if w.Pos.IsValid() {
		return fmt.Sprintf("%s: warning: %s: %s", w.Pos, w.Key, w.Msg)
	}
	return fmt.Sprintf("warning: %s: %s", w.Key, w.Msg)
}

// SpecError is an error inside one device specification string (a disk,
// vif or pci spec) on its own. Offset is the byte offset in the spec where
// the problem starts. Parse turns these into *ValueError with a file
// position.
type SpecError struct {
	Offset int
	Msg    string
}

func (e *SpecError) Error() string { return e.Msg }
