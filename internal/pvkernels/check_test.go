package pvkernels

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

var sample = Kernel{Name: "sample", Want: []string{"first thing", "second: with a colon"}}

func passing(k Kernel) string {
	var b strings.Builder
	b.WriteString("# xenvmm-test kernel sample\n")
	for i, w := range k.Want {
		fmt.Fprintf(&b, "ok %d - %s\n", i+1, w)
		b.WriteString("# some diagnostic\n")
	}
	b.WriteString("xenvmm-test: PASS\n")
	return b.String()
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name   string
		output string
		want   []string // substrings of the error; nil = passes
	}{
		{"pass", passing(sample), nil},
		{"pass with CRLF and VMM noise", "vmm: starting\r\n" + strings.ReplaceAll(passing(sample), "\n", "\r\n") + "vmm: domain shut down\n", nil},
		{"not ok", "ok 1 - first thing\nnot ok 2 - second: with a colon: returned -22 (-EINVAL), want 0 (0)\nxenvmm-test: FAIL\n",
			[]string{"not ok 2 - second: with a colon: returned -22", "verdict FAIL"}},
		{"missing line", "ok 1 - first thing\nxenvmm-test: PASS\n", []string{`missing "ok 2 - second: with a colon" and 0 more`}},
		{"no verdict", "ok 1 - first thing\nok 2 - second: with a colon\n", []string{`no "xenvmm-test: PASS" line`}},
		{"two verdicts", passing(sample) + "xenvmm-test: PASS\n", []string{"2 verdict lines"}},
		{"wrong text", "ok 1 - first thing\nok 2 - something else\nxenvmm-test: PASS\n",
			[]string{`ok 2 is "something else", want "second: with a colon"`}},
		{"wrong number", "ok 1 - first thing\nok 3 - second: with a colon\nxenvmm-test: PASS\n", []string{"check 2 is numbered 3"}},
		{"extra line", strings.Replace(passing(sample), "xenvmm-test: PASS", "ok 3 - bonus\nxenvmm-test: PASS", 1),
			[]string{`unexpected extra check 3: "bonus"`}},
		{"bail out", "ok 1 - first thing\nBail out! set_trap_table returned -14\nxenvmm-test: FAIL\n",
			[]string{"bailed out: set_trap_table returned -14", "missing"}},
		{"empty", "", []string{"missing", "no \"xenvmm-test: PASS\" line"}},
		{"indented lines are not protocol", "  ok 1 - first thing\n  ok 2 - second: with a colon\n  xenvmm-test: PASS\n",
			[]string{"missing", "no \"xenvmm-test: PASS\""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := sample.Check(tc.output)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			var ce *CheckError
			if !errors.As(err, &ce) || !errors.Is(err, ErrMismatch) || ce.Kernel != "sample" {
				t.Fatalf("got %v, want a *CheckError for sample", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestParse(t *testing.T) {
	r := Parse("ok 1 - a\nnot ok 2 - b: c\n# diag\n#\nok x - bad number\nok 03 - leading zero\nok 4 -missing space\nBail out! why\nBail out! second\nxenvmm-test: FAIL\n")
	want := []Line{{1, true, "a"}, {2, false, "b: c"}}
	if len(r.Lines) != len(want) {
		t.Fatalf("lines %+v", r.Lines)
	}
	for i := range want {
		if r.Lines[i] != want[i] {
			t.Errorf("line %d = %+v, want %+v", i, r.Lines[i], want[i])
		}
	}
	if len(r.Diagnostics) != 2 || r.Diagnostics[0] != "diag" || r.Diagnostics[1] != "" {
		t.Errorf("diagnostics %q", r.Diagnostics)
	}
	if r.Bail != "why" || r.Verdict != VerdictFail || r.Verdicts != 1 {
		t.Errorf("bail %q, verdict %q (%d)", r.Bail, r.Verdict, r.Verdicts)
	}
}

func TestCheckEveryKernelsPassingOutput(t *testing.T) {
	for _, k := range Kernels {
		if err := k.Check(passing(k)); err != nil {
			t.Errorf("%s: %v", k.Name, err)
		}
		// Dropping any one line is noticed.
		out := passing(k)
		if err := k.Check(strings.Replace(out, "ok 1 - "+k.Want[0]+"\n", "", 1)); err == nil {
			t.Errorf("%s: output without its first line passes", k.Name)
		}
	}
}

func TestCheckRing(t *testing.T) {
	k, _ := Lookup("console")
	ring := strings.Join(k.Ring, "\n") + "\n"
	for _, tc := range []struct {
		name, ring, want string
	}{
		{"exact", ring, ""},
		{"surrounded and CRLF", "ok 1 - x\r\n" + strings.ReplaceAll(ring, "\n", "\r\n") + "xenvmm-test: PASS\n", ""},
		{"absent", "nothing here\n", "lacks"},
		{"line changed", strings.Replace(ring, "line 07 of 40", "line 7 of 40", 1), "console ring line 7 is"},
		{"truncated", ring[:len(ring)-200], "console ring line"},
		{"no final newline", strings.TrimSuffix(ring, "\n"), "final newline"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := k.CheckRing(tc.ring)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if err := sample.CheckRing("anything"); err != nil {
		t.Errorf("a kernel without ring output: %v", err)
	}
}

// Parse reads guest output: it must take anything, and report only
// lines that really are in the input.
func FuzzParse(f *testing.F) {
	f.Add(passing(sample))
	f.Add("not ok 1 - x: y\nBail out!\nxenvmm-test: FAIL\n")
	f.Add("ok 99999999999 - huge\nok -1 - negative\nok 1 -\n# \x00\xff\n")
	f.Add("\r\n\r\nok 1 - a\r")
	f.Fuzz(func(t *testing.T, s string) {
		r := Parse(s)
		for _, l := range r.Lines {
			prefix := "ok "
			if !l.OK {
				prefix = "not ok "
			}
			if l.N <= 0 || !strings.Contains(s, fmt.Sprintf("%s%d - %s", prefix, l.N, l.Text)) {
				t.Fatalf("line %+v is not in the input", l)
			}
		}
		if r.Verdicts > strings.Count(s, verdictPrefix) {
			t.Fatalf("%d verdicts from %d prefixes", r.Verdicts, strings.Count(s, verdictPrefix))
		}
		_ = sample.Check(s)
		k, _ := Lookup("console")
		_ = k.CheckRing(s)
	})
}
