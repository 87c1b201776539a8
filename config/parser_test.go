package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// render writes settings compactly: "key=value@line:col" per statement,
// with list items' positions in braces.
func render(ss Settings) string {
	var parts []string
	for _, s := range ss {
		parts = append(parts, fmt.Sprintf("%s%s%s@%d:%d", s.Key, s.Op, renderValue(s.Value), s.Value.Pos.Line, s.Value.Pos.Col))
	}
	return strings.Join(parts, " | ")
}

func renderValue(v Value) string {
	if v.Kind != KindList {
		return v.String()
	}
	var items []string
	for _, e := range v.List {
		items = append(items, fmt.Sprintf("%s{%d:%d}", renderValue(e), e.Pos.Line, e.Pos.Col))
	}
	return "[" + strings.Join(items, ",") + "]"
}

func TestParseSettings(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"empty", "", ""},
		{"only comments", "# a\n  # b\n\n", ""},
		{"comment at EOF without newline", "a = 1 # x", `a=1@1:5`},
		{"string", `name = "nbsd"`, `name="nbsd"@1:8`},
		{"single quoted", `name = 'solaris'` + "\n", `name="solaris"@1:8`},
		{"no spaces", `a=1`, `a=1@1:3`},
		{"tabs", "a\t=\t1\n", `a=1@1:5`},
		{"decimal", "memory = 128\n", `memory=128@1:10`},
		{"hex", "x = 0x1f\n", `x=0x1f@1:5`},
		{"hex upper (extension)", "x = 0X1F\n", `x=0X1F@1:5`},
		{"negative (extension)", "x = -5\n", `x=-5@1:5`},
		{"bool (xm extension)", "autorestart = True\nb = False\n", `autorestart=True@1:15 | b=False@2:5`},
		{"key chars", "a.b_c9 = 1\n", `a.b_c9=1@1:10`},
		{"semicolons", `a = 1; b = "x";c=2`, `a=1@1:5 | b="x"@1:12 | c=2@1:18`},
		{"empty statements", ";;\n;a=1;;\n", `a=1@2:4`},
		{"trailing comment", "a = 'x' # comment ' \"\n", `a="x"@1:5`},
		{"hash in string", `a = "x#y"`, `a="x#y"@1:5`},
		{"crlf (extension)", "a = 1\r\nb = 2\r\n", `a=1@1:5 | b=2@2:5`},
		{"empty list", "a = []\n", `a=[]@1:5`},
		{"list", `disk = [ 'phy:/dev/wd0e,0x1,w' ]`, `disk=["phy:/dev/wd0e,0x1,w"{1:10}]@1:8`},
		{"list trailing comma", "a = [ 1, 2, ]\n", `a=[1{1:7},2{1:10}]@1:5`},
		{"multi-line list", "a = [\n  'x', # one\n  # comment line\n  'y'\n\n]\n", `a=["x"{2:3},"y"{4:3}]@1:5`},
		{"newline before comma", "a = [ 1\n , 2 ]", `a=[1{1:7},2{2:4}]@1:5`},
		{"nested list", "a = [ [1, 2], ['x'] ]", `a=[[1{1:8},2{1:11}]{1:7},["x"{1:16}]{1:15}]@1:5`},
		{"append", "disk = ['a']\ndisk += ['b']\n", `disk=["a"{1:9}]@1:8 | disk+=["b"{2:10}]@2:9`},
		{"escapes", `a = "q\"\'\\\a\b\f\n\r\t\v"`, `a="q\"'\\\x07\x08\x0c\n\r\t\x0b"@1:5`},
		{"hex escape", `a = "\x41\x7e"`, `a="A~"@1:5`},
		{"octal escape", `a = "\101\0\7x"`, `a="A\x00\x07x"@1:5`},
		{"other quote inside", `a = "it's"; b = 'say "hi"'`, `a="it's"@1:5 | b="say \"hi\""@1:17`},
		{"last line without newline", "a = 1\nb = 'x'", `a=1@1:5 | b="x"@2:5`},
		{"carriage return in string", "a = 'x\ry'", `a="x\ry"@1:5`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ss, err := ParseSettings("t.cfg", []byte(tt.src))
			if err != nil {
				t.Fatalf("ParseSettings(%q): %v", tt.src, err)
			}
			if got := render(ss); got != tt.want {
				t.Errorf("ParseSettings(%q)\n got %s\nwant %s", tt.src, got, tt.want)
			}
		})
	}
}

func TestParseSettingsErrors(t *testing.T) {
	tests := []struct {
		name, src string
		line, col int
		msg       string // substring of the message
	}{
		{"missing =", `name "x"`, 1, 6, `expected '=' or '+=' after key "name", found string "x"`},
		{"missing value", "name =\n", 1, 7, `expected a value for "name" (a quoted string, a number or a [list]), found newline`},
		{"missing value at EOF", "name =", 1, 7, `found end of file`},
		{"bare word value", "type = pv\n", 1, 8, `found bare word "pv": strings must be quoted ("pv")`},
		{"two values", "a = 1 2\n", 1, 7, `expected newline or ';' after the value of "a", found number 2`},
		{"value then string", "a = 'x' 'y'\n", 1, 9, `expected newline or ';' after the value of "a", found string "y"`},
		{"no key", "= 1\n", 1, 1, `expected a key`},
		{"string as key", "'a' = 1\n", 1, 1, `expected a key (lower case: a-z, 0-9, '.', '_'), found string "a"`},
		{"upper-case key", "\nKernel = 'x'\n", 2, 1, `unexpected "Kernel": keys are lower case`},
		{"unterminated string", "a = 'abc\nb = 1\n", 1, 5, `unterminated string: expected closing ' before end of line`},
		{"unterminated at EOF", `a = "abc`, 1, 5, `unterminated string`},
		{"bad escape", `a = "x\qy"`, 1, 7, `invalid escape \q in string`},
		{"short hex escape", `a = "\x4"`, 1, 6, `invalid \x escape in string: expected two hex digits`},
		{"octal escape too big", `a = "\777"`, 1, 6, `octal escape \777 in string is larger than \377`},
		{"backslash newline", "a = 'x\\\n'", 1, 7, `backslash at end of line`},
		{"unclosed list", "a = [ 1,\n 2\n", 3, 1, `expected ']' to close the list opened at 1:5, found end of file`},
		{"list missing comma", "a = [ 1 2 ]", 1, 9, `expected ',' or ']' in the list opened at 1:5, found number 2`},
		{"list leading comma", "a = [ , 1 ]", 1, 7, `expected a value for "a"`},
		{"list double comma", "a = [ 1,, 2 ]", 1, 9, `expected a value for "a"`},
		{"number suffix", "memory = 128M\n", 1, 13, `unexpected "M"`},
		{"python paren", "a = (1, 2)\n", 1, 5, `unexpected '(' (xl config files are not Python`},
		{"python concat", "a = 'x' + 'y'\n", 1, 9, `unexpected '+'`},
		{"python dot call", "import os\n", 1, 8, `expected '=' or '+=' after key "import", found bare word "os"`},
		{"minus without digit", "a = -x\n", 1, 5, `unexpected '-'`},
		{"non-ascii", "a = 1\nb = \xc3\xa9\n", 2, 5, `unexpected character byte 0xc3`},
		{"lone CR", "a = 1\rb = 2", 1, 6, `unexpected character '\r'`},
		{"control char", "a = \x01", 1, 5, `unexpected character '\x01'`},
		{"add list to string", "a = 'x'\na += ['y']\n", 2, 6, `can't add a list to the string value of "a" with '+='`},
		{"add string to list", "a = ['x']\na += 'y'\n", 2, 6, `can't add a string to the list value of "a" with '+='`},
		{"error on later line", "a = 1\nb = 2\nc = = 3\n", 3, 5, `expected a value for "c"`},
		{"close bracket at top", "a = ]\n", 1, 5, `expected a value for "a"`},
		{"bool as key", "True = 1\n", 1, 1, `expected a key`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSettings("t.cfg", []byte(tt.src))
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("ParseSettings(%q) = %v, want *SyntaxError", tt.src, err)
			}
			if se.Line != tt.line || se.Col != tt.col || !strings.Contains(se.Msg, tt.msg) {
				t.Errorf("ParseSettings(%q) error\n got %d:%d: %s\nwant %d:%d: ...%s...", tt.src, se.Line, se.Col, se.Msg, tt.line, tt.col, tt.msg)
			}
			if !errors.Is(err, ErrSyntax) {
				t.Errorf("errors.Is(%v, ErrSyntax) = false", err)
			}
			want := fmt.Sprintf("t.cfg:%d:%d: ", tt.line, tt.col)
			if !strings.HasPrefix(err.Error(), want) {
				t.Errorf("Error() = %q, want prefix %q", err.Error(), want)
			}
		})
	}
}

func TestDeepNesting(t *testing.T) {
	src := "a = " + strings.Repeat("[", 10000) + strings.Repeat("]", 10000)
	_, err := ParseSettings("t.cfg", []byte(src))
	var se *SyntaxError
	if !errors.As(err, &se) || !strings.Contains(se.Msg, "nested more than") {
		t.Fatalf("got %v, want a nesting error", err)
	}
	ok := "a = " + strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth)
	if _, err := ParseSettings("t.cfg", []byte(ok)); err != nil {
		t.Fatalf("%d levels: %v", maxDepth, err)
	}
}

func TestLookup(t *testing.T) {
	src := `
disk = [ 'a' ]
disk += [ 'b', 'c' ]
extra = "x"
extra += " y"
name = "first"
name = "second"
only += "z"
memory = 128
memory += 1
l = ['p']
l = ['q']
l += ['r']
`
	ss, err := ParseSettings("t.cfg", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		key  string
		want string
		op   Op
		line int
	}{
		{"disk", `["a"{2:10},"b"{3:11},"c"{3:16}]`, OpAppend, 3},
		{"extra", `"x y"`, OpAppend, 5},
		{"name", `"second"`, OpAssign, 7},
		{"only", `"z"`, OpAppend, 8},
		{"memory", `"1281"`, OpAppend, 10},
		{"l", `["q"{12:6},"r"{13:7}]`, OpAppend, 13},
	}
	for _, tt := range tests {
		s, ok := ss.Lookup(tt.key)
		if !ok {
			t.Errorf("Lookup(%q) not found", tt.key)
			continue
		}
		if got := renderValue(s.Value); got != tt.want || s.Op != tt.op || s.Pos.Line != tt.line {
			t.Errorf("Lookup(%q) = %s %v line %d, want %s %v line %d", tt.key, got, s.Op, s.Pos.Line, tt.want, tt.op, tt.line)
		}
	}
	if _, ok := ss.Lookup("nothere"); ok {
		t.Error("Lookup(nothere) found")
	}
	if got, want := strings.Join(ss.Keys(), ","), "disk,extra,name,only,memory,l"; got != want {
		t.Errorf("Keys() = %s, want %s", got, want)
	}
	// The lists given to Lookup must not be changed by it.
	if s, _ := ss.Lookup("disk"); len(s.Value.List) != 3 {
		t.Fatal("bad disk")
	}
	if len(ss[0].Value.List) != 1 {
		t.Errorf("Lookup modified the first statement's list: %v", ss[0].Value)
	}
}

func TestStrtol(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"128", 128, true}, {"0x1", 1, true}, {"0X1f", 31, true},
		{"010", 8, true}, {"-5", -5, true}, {"+7", 7, true}, {"  12", 12, true},
		{"0x", 0, false}, {"08", 0, false}, {"12 ", 0, false}, {"", 0, false},
		{"1e", 0, false}, {"-", 0, false}, {"0x-1", 0, false}, {"1_000", 0, false},
		{"9223372036854775807", 9223372036854775807, true},
		{"9223372036854775808", 0, false},
		{"-9223372036854775808", -9223372036854775808, true},
		{"-9223372036854775809", 0, false},
	}
	for _, tt := range tests {
		got, err := strtol(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("strtol(%q) = %d, %v; want %d, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestValueConversions(t *testing.T) {
	ss, err := ParseSettings("t.cfg", []byte("a = 1\nb = 0\nc = '0x10'\nd = True\ne = [1]\nf = 'yes'\ng = False\n"))
	if err != nil {
		t.Fatal(err)
	}
	get := func(k string) Value { s, _ := ss.Lookup(k); return s.Value }
	if n, err := get("c").Int(); err != nil || n != 16 {
		t.Errorf("c.Int() = %d, %v", n, err)
	}
	for _, tt := range []struct {
		k    string
		want bool
		ok   bool
	}{{"a", true, true}, {"b", false, true}, {"c", true, true}, {"d", true, true}, {"g", false, true}, {"e", false, false}, {"f", false, false}} {
		got, err := get(tt.k).Bool()
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("%s.Bool() = %v, %v; want %v ok=%v", tt.k, got, err, tt.want, tt.ok)
		}
	}
	if _, err := get("d").Int(); err == nil {
		t.Error("True.Int() succeeded")
	}
	if _, err := get("e").Int(); err == nil {
		t.Error("[1].Int() succeeded")
	}
}

func TestPosAt(t *testing.T) {
	ss, err := ParseSettings("t.cfg", []byte(`a = 'ab,cd'`+"\n"+`b = "\x41,\tz"`+"\n"+`c = "a\x41"`+"\nc += 'x'\n"))
	if err != nil {
		t.Fatal(err)
	}
	a, b := ss[0].Value, ss[1].Value
	if p := a.PosAt(5); p.Col != 11 {
		t.Errorf("a.PosAt(5) (closing quote) = %v, want col 11", p)
	}
	if p := ss[2].Value.PosAt(2); p.Col != 11 {
		t.Errorf(`"a\x41".PosAt(2) (closing quote) = %v, want col 11`, p)
	}
	// A string joined by += has no offsets: its position is the first part's.
	if c, _ := ss.Lookup("c"); c.Value.PosAt(3) != c.Value.Pos || c.Value.Pos.Line != 3 {
		t.Errorf("joined PosAt(3) = %v, want %v on line 3", c.Value.PosAt(3), c.Value.Pos)
	}
	// 'ab,cd' opens at column 5: 'c' (byte 3) is at column 9.
	if p := a.PosAt(3); p.Line != 1 || p.Col != 9 {
		t.Errorf("a.PosAt(3) = %v, want 1:9", p)
	}
	// "\x41,\tz": byte 0 'A' at col 6, byte 1 ',' at col 10, byte 2 '\t' at col 11,
	// byte 3 'z' at col 13, the closing quote at col 14.
	for i, col := range []int{6, 10, 11, 13, 14} {
		if p := b.PosAt(i); p.Col != col {
			t.Errorf("b.PosAt(%d) = %v, want col %d", i, p, col)
		}
	}
}
