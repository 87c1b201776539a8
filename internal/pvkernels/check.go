package pvkernels

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Verdicts of the last protocol line.
const (
	VerdictPass = "PASS"
	VerdictFail = "FAIL"
)

// Line is one "ok N - text" or "not ok N - text" line.
type Line struct {
	N  int
	OK bool
	// Text is what follows "N - ": the description, and for a failed
	// check ": details" after it.
	Text string
}

// Result is a kernel's console output read as the test protocol
// (package documentation). Lines that are not part of the protocol (a
// VMM's own log lines, say) are skipped.
type Result struct {
	Lines       []Line
	Diagnostics []string // "# ..." lines, without "# "
	Bail        string   // the reason after "Bail out!", or ""
	// Verdict is VerdictPass or VerdictFail from the last
	// "xenvmm-test: ..." line, or "" when there was none.
	Verdict string
	// Verdicts counts the "xenvmm-test: PASS|FAIL" lines seen.
	Verdicts int
}

const verdictPrefix = "xenvmm-test: "

// Parse reads output line by line. It never fails: whatever is not
// protocol is ignored, and Check decides what is missing.
func Parse(output string) Result {
	var r Result
	for _, line := range strings.Split(output, "\n") {
		line = strings.TrimRight(line, "\r")
		switch {
		case strings.HasPrefix(line, "ok "):
			if l, ok := parseResult(line[len("ok "):], true); ok {
				r.Lines = append(r.Lines, l)
			}
		case strings.HasPrefix(line, "not ok "):
			if l, ok := parseResult(line[len("not ok "):], false); ok {
				r.Lines = append(r.Lines, l)
			}
		case line == "#" || strings.HasPrefix(line, "# "):
			r.Diagnostics = append(r.Diagnostics, strings.TrimPrefix(strings.TrimPrefix(line, "#"), " "))
		case strings.HasPrefix(line, "Bail out!"):
			if r.Bail == "" {
				r.Bail = strings.TrimSpace(line[len("Bail out!"):])
				if r.Bail == "" {
					r.Bail = "(no reason given)"
				}
			}
		case line == verdictPrefix+VerdictPass || line == verdictPrefix+VerdictFail:
			r.Verdict = line[len(verdictPrefix):]
			r.Verdicts++
		}
	}
	return r
}

// parseResult reads "N - text".
func parseResult(s string, ok bool) (Line, bool) {
	num, text, found := strings.Cut(s, " - ")
	if !found || num == "" || len(num) > 9 {
		return Line{}, false
	}
	n, err := strconv.Atoi(num)
	if err != nil || n <= 0 || strconv.Itoa(n) != num {
		return Line{}, false
	}
	return Line{N: n, OK: ok, Text: text}, true
}

// ErrMismatch is wrapped by every *CheckError.
var ErrMismatch = errors.New("kernel output does not match its expectations")

// CheckError lists everything wrong with a kernel's output.
type CheckError struct {
	Kernel   string
	Problems []string
}

func (e *CheckError) Error() string {
	return fmt.Sprintf("pvkernels: %s: %s", e.Kernel, strings.Join(e.Problems, "; "))
}

func (e *CheckError) Unwrap() error { return ErrMismatch }

// Check reports whether output is exactly what k prints on a hypervisor
// that behaves like Xen: the lines "ok 1 - Want[0]" ... "ok N - Want[N-1]"
// in order and nothing else of the protocol but diagnostics, no bail-out,
// and one final "xenvmm-test: PASS". The error is a *CheckError.
func (k Kernel) Check(output string) error {
	r := Parse(output)
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	if r.Bail != "" {
		add("bailed out: %s", r.Bail)
	}
	for i, want := range k.Want {
		if i >= len(r.Lines) {
			add("missing %q and %d more", "ok "+strconv.Itoa(i+1)+" - "+want, len(k.Want)-i-1)
			break
		}
		l := r.Lines[i]
		switch {
		case l.N != i+1:
			add("check %d is numbered %d", i+1, l.N)
		case !l.OK && (l.Text == want || strings.HasPrefix(l.Text, want+": ")):
			add("not ok %d - %s", l.N, l.Text)
		case !l.OK:
			add("not ok %d - %s (want %q)", l.N, l.Text, want)
		case l.Text != want:
			add("ok %d is %q, want %q", l.N, l.Text, want)
		}
	}
	for _, l := range r.Lines[min(len(r.Lines), len(k.Want)):] {
		add("unexpected extra check %d: %q", l.N, l.Text)
	}
	switch {
	case r.Verdicts == 0:
		add("no %q line", verdictPrefix+VerdictPass)
	case r.Verdicts > 1:
		add("%d verdict lines", r.Verdicts)
	case r.Verdict != VerdictPass:
		add("verdict %s", r.Verdict)
	}
	if problems != nil {
		return &CheckError{Kernel: k.Name, Problems: problems}
	}
	return nil
}

// CheckRing reports whether ring (what the PV console backend received
// from the guest) holds k.Ring, each line ending in "\n", contiguously
// and in order. Other output around it is allowed: a guest whose
// console_io is refused prints its protocol lines there too.
func (k Kernel) CheckRing(ring string) error {
	if len(k.Ring) == 0 {
		return nil
	}
	want := strings.Join(k.Ring, "\n") + "\n"
	if strings.Contains(strings.ReplaceAll(ring, "\r\n", "\n"), want) {
		return nil
	}
	// Say where it first differs, to make failures readable.
	got := strings.ReplaceAll(ring, "\r\n", "\n")
	start := strings.Index(got, k.Ring[0])
	if start < 0 {
		return &CheckError{Kernel: k.Name, Problems: []string{fmt.Sprintf("console ring output lacks %q", k.Ring[0])}}
	}
	lines := strings.Split(got[start:], "\n")
	for i, w := range k.Ring {
		if i >= len(lines) || lines[i] != w {
			g := "(end of output)"
			if i < len(lines) {
				g = strconv.Quote(lines[i])
			}
			return &CheckError{Kernel: k.Name, Problems: []string{fmt.Sprintf("console ring line %d is %s, want %q", i+1, g, w)}}
		}
	}
	return &CheckError{Kernel: k.Name, Problems: []string{"console ring output ends without its final newline"}}
}
