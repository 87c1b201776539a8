package config

import (
	"fmt"
	"strings"
)

// tokKind is a lexical token class of libxlu_cfg_l.l.
type tokKind uint8

const (
	tEOF       tokKind = iota
	tIdent             // [a-z][._0-9a-z]*
	tNumber            // [0-9][0-9a-fx]* (plus the extensions in the package doc)
	tString            // '...' or "..."
	tBool              // True / False (xm extension)
	tLBrack            // [
	tRBrack            // ]
	tComma             // ,
	tAssign            // =
	tAddAssign         // +=
	tSemi              // ;
	tNewline           // \n, or a comment running to the end of a line
)

func (k tokKind) String() string {
	switch k {
	case tEOF:
		return "end of file"
	case tIdent:
		return "key"
	case tNumber:
		return "number"
	case tString:
		return "string"
	case tBool:
		return "boolean"
	case tLBrack:
		return "'['"
	case tRBrack:
		return "']'"
	case tComma:
		return "','"
	case tAssign:
		return "'='"
	case tAddAssign:
		return "'+='"
	case tSemi:
		return "';'"
	case tNewline:
		return "newline"
	}
	return "token"
}

type token struct {
	kind tokKind
	text string // identifier, number literal or decoded string
	line int
	col  int
	// offs maps each byte of a decoded string with escapes to its column
	// offset from the opening quote, plus one entry for the closing quote;
	// nil when the string had no escapes.
	offs []int
}

// describe names a token for an error message.
func (t token) describe() string {
	switch t.kind {
	case tIdent:
		return fmt.Sprintf("bare word %q", t.text)
	case tNumber:
		return fmt.Sprintf("number %s", t.text)
	case tString:
		return fmt.Sprintf("string %q", t.text)
	case tBool:
		return t.text
	}
	return t.kind.String()
}

// lexer splits a configuration file into tokens, following libxlu_cfg_l.l.
type lexer struct {
	file string
	src  []byte
	off  int
	line int
	col  int // column of src[off], 1-based
}

func newLexer(file string, src []byte) *lexer {
	return &lexer{file: file, src: src, line: 1, col: 1}
}

func (lx *lexer) errorf(line, col int, format string, args ...any) *SyntaxError {
	return &SyntaxError{File: lx.file, Line: line, Col: col, Msg: fmt.Sprintf(format, args...)}
}

// advance moves over n bytes that contain no newline.
func (lx *lexer) advance(n int) {
	lx.off += n
	lx.col += n
}

func (lx *lexer) peekByte(i int) byte {
	if lx.off+i < len(lx.src) {
		return lx.src[lx.off+i]
	}
	return 0
}

func isLower(c byte) bool { return c >= 'a' && c <= 'z' }
func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// pythonHint is appended to lexical errors on characters that suggest a
// Python expression; libxlu_cfg.c prints a similar warning ("Config file
// looks like it contains Python code").
const pythonHint = " (xl config files are not Python: expressions are not supported)"

// next returns the next token.
func (lx *lexer) next() (token, error) {
	for {
		if lx.off >= len(lx.src) {
			return token{kind: tEOF, line: lx.line, col: lx.col}, nil
		}
		c := lx.src[lx.off]
		switch {
		case c == ' ' || c == '\t':
			lx.advance(1)
			continue
		case c == '\r' && lx.peekByte(1) == '\n':
			// DOS line ending: an extension, xl rejects '\r'.
			lx.advance(1)
			continue
		}
		break
	}
	line, col := lx.line, lx.col
	c := lx.src[lx.off]
	tok := token{line: line, col: col}
	switch {
	case c == '\n':
		lx.off++
		lx.line++
		lx.col = 1
		tok.kind = tNewline
		return tok, nil
	case c == '#':
		// "\#.*\n" is a NEWLINE token; a comment at end of file without
		// a newline is accepted too (xl rejects it).
		for lx.off < len(lx.src) && lx.src[lx.off] != '\n' {
			lx.advance(1)
		}
		if lx.off < len(lx.src) {
			lx.off++
			lx.line++
			lx.col = 1
			tok.kind = tNewline
			return tok, nil
		}
		tok.kind = tEOF
		tok.line, tok.col = lx.line, lx.col
		return tok, nil
	case isLower(c):
		n := 1
		for {
			d := lx.peekByte(n)
			if !(isLower(d) || isDigit(d) || d == '.' || d == '_') {
				break
			}
			n++
		}
		tok.kind = tIdent
		tok.text = string(lx.src[lx.off : lx.off+n])
		lx.advance(n)
		return tok, nil
	case isDigit(c) || (c == '-' && isDigit(lx.peekByte(1))):
		n := 1
		for {
			d := lx.peekByte(n)
			if !(isDigit(d) || (d >= 'a' && d <= 'f') || (d >= 'A' && d <= 'F') || d == 'x' || d == 'X') {
				break
			}
			n++
		}
		tok.kind = tNumber
		tok.text = string(lx.src[lx.off : lx.off+n])
		lx.advance(n)
		return tok, nil
	case c == '\'' || c == '"':
		return lx.lexString(c)
	case isUpper(c) || c == '_':
		n := 1
		for {
			d := lx.peekByte(n)
			if !(isLower(d) || isUpper(d) || isDigit(d) || d == '_') {
				break
			}
			n++
		}
		w := string(lx.src[lx.off : lx.off+n])
		if w == "True" || w == "False" {
			tok.kind = tBool
			tok.text = w
			lx.advance(n)
			return tok, nil
		}
		return tok, lx.errorf(line, col, "unexpected %q: keys are lower case (a-z, 0-9, '.', '_') and string values must be quoted", w)
	case c == ',':
		tok.kind = tComma
	case c == '[':
		tok.kind = tLBrack
	case c == ']':
		tok.kind = tRBrack
	case c == '=':
		tok.kind = tAssign
	case c == ';':
		tok.kind = tSemi
	case c == '+' && lx.peekByte(1) == '=':
		tok.kind = tAddAssign
		lx.advance(2)
		return tok, nil
	case strings.IndexByte("+-.():", c) >= 0:
		return tok, lx.errorf(line, col, "unexpected %q%s", rune(c), pythonHint)
	default:
		return tok, lx.errorf(line, col, "unexpected character %s", quoteByte(c))
	}
	lx.advance(1)
	return tok, nil
}

func quoteByte(c byte) string {
	if c < 0x80 {
		return fmt.Sprintf("%q", rune(c))
	}
	return fmt.Sprintf("byte 0x%02x", c)
}

// lexString scans a quoted string: "\'([^\'\\\n]|\\.)*\'" or the double
// quoted equivalent, and decodes its escapes as xlu__cfgl_dequote does.
func (lx *lexer) lexString(q byte) (token, error) {
	line, col := lx.line, lx.col
	tok := token{kind: tString, line: line, col: col}
	var b []byte
	var offs []int
	escaped := false
	i := lx.off + 1
	// emit appends one decoded byte that came from source offset at.
	emit := func(c byte, at int) {
		b = append(b, c)
		offs = append(offs, at-lx.off)
	}
	for {
		if i >= len(lx.src) || lx.src[i] == '\n' {
			return tok, lx.errorf(line, col, "unterminated string: expected closing %c before end of line", q)
		}
		c := lx.src[i]
		if c == q {
			offs = append(offs, i-lx.off) // the closing quote
			i++
			break
		}
		if c != '\\' {
			emit(c, i)
			i++
			continue
		}
		escaped = true
		at := i
		if i+1 >= len(lx.src) || lx.src[i+1] == '\n' {
			return tok, lx.errorf(line, col+(i-lx.off), "unterminated string: backslash at end of line")
		}
		e := lx.src[i+1]
		i += 2
		switch e {
		case '"', '\'', '\\':
			emit(e, at)
		case 'a':
			emit('\a', at)
		case 'b':
			emit('\b', at)
		case 'f':
			emit('\f', at)
		case 'n':
			emit('\n', at)
		case 'r':
			emit('\r', at)
		case 't':
			emit('\t', at)
		case 'v':
			emit('\v', at)
		case 'x':
			// Exactly two hex digits. (libxlu's NUMERIC_CHAR rejects
			// every \x escape through an off-by-one; we implement the
			// evident intent, which is also Python's.)
			v, n := 0, 0
			for n < 2 && i+n < len(lx.src) && hexVal(lx.src[i+n]) >= 0 {
				v = v*16 + hexVal(lx.src[i+n])
				n++
			}
			if n != 2 {
				return tok, lx.errorf(line, col+(at-lx.off), `invalid \x escape in string: expected two hex digits`)
			}
			i += n
			emit(byte(v), at)
		case '0', '1', '2', '3', '4', '5', '6', '7':
			// One to three octal digits, value at most 0377.
			v, n := int(e-'0'), 1
			for n < 3 && i < len(lx.src) && lx.src[i] >= '0' && lx.src[i] <= '7' {
				v = v*8 + int(lx.src[i]-'0')
				i++
				n++
			}
			if v > 0377 {
				return tok, lx.errorf(line, col+(at-lx.off), "octal escape \\%o in string is larger than \\377", v)
			}
			emit(byte(v), at)
		default:
			return tok, lx.errorf(line, col+(at-lx.off), "invalid escape %s in string: expected one of \\\" \\' \\\\ \\a \\b \\f \\n \\r \\t \\v \\xHH \\OOO", quoteEscape(e))
		}
	}
	tok.text = string(b)
	if escaped {
		tok.offs = offs
	}
	lx.advance(i - lx.off)
	return tok, nil
}

func quoteEscape(c byte) string {
	if c >= 0x20 && c < 0x7f {
		return `\` + string(rune(c))
	}
	return fmt.Sprintf(`\ followed by byte 0x%02x`, c)
}

func hexVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}
