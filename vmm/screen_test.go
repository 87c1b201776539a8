package vmm

import (
	"io"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// screen is an interactive console for tests: it records everything the
// guest prints (a terminal's raw stream, escape sequences included) and
// sends keys to the guest's console input, as expect(1) would. Guests
// that draw with curses (NetBSD's sysinst) or print prompts without a
// newline are matched on the text with terminal escape sequences and
// carriage returns removed.
type screen struct {
	mu      sync.Mutex
	raw     []byte
	changed chan struct{}
	mark    int // text offset after the last match: expect looks after it

	echoMu   sync.Mutex
	echo     io.Writer
	lastEcho byte

	in  *io.PipeReader
	out *io.PipeWriter
}

func newScreen(echo io.Writer) *screen {
	r, w := io.Pipe()
	return &screen{changed: make(chan struct{}), echo: echo, in: r, out: w}
}

// Write records console output.
func (s *screen) Write(p []byte) (int, error) {
	s.mu.Lock()
	s.raw = append(s.raw, p...)
	ch := s.changed
	s.changed = make(chan struct{})
	s.mu.Unlock()
	close(ch)
	if s.echo != nil && len(p) > 0 {
		s.echoMu.Lock()
		s.echo.Write(p)
		s.lastEcho = p[len(p)-1]
		s.echoMu.Unlock()
	}
	return len(p), nil
}

// endLine ends the echoed output with a newline, so that what the test
// prints next ("--- PASS", which the sandbox runner counts) starts a line
// of its own.
func (s *screen) endLine() {
	s.echoMu.Lock()
	defer s.echoMu.Unlock()
	if s.echo != nil && s.lastEcho != 0 && s.lastEcho != '\n' {
		s.echo.Write([]byte("\n"))
		s.lastEcho = '\n'
	}
}

// Input is the reader to give the domain as ConsoleIn.
func (s *screen) Input() io.Reader { return s.in }

// escapes are ANSI/VT100 control sequences: CSI sequences, charset
// designations, and the single-character escapes curses uses.
var escapes = regexp.MustCompile(`\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()*+][0-9A-Za-z]|\x1b[=>78DEHMc]|\r|[\x0e\x0f]`)

// plain is text with escape sequences removed.
func plain(raw []byte) string { return escapes.ReplaceAllString(string(raw), "") }

// text is everything printed so far, escape sequences removed.
func (s *screen) text() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return plain(s.raw)
}

// expect waits until re matches the text printed since the previous
// match and returns the submatches; it fails the test after timeout.
func (s *screen) expect(t *testing.T, re string, timeout time.Duration) []string {
	t.Helper()
	m, err := s.wait(regexp.MustCompile(re), timeout)
	if err != nil {
		t.Fatalf("console: %v; waited %v for %q; last output:\n%s", err, timeout, re, s.tail(30))
	}
	return m
}

type timeoutError struct{}

func (timeoutError) Error() string { return "timed out" }

func (s *screen) wait(re *regexp.Regexp, timeout time.Duration) ([]string, error) {
	deadline := time.After(timeout)
	for {
		s.mu.Lock()
		txt := plain(s.raw)
		ch := s.changed
		if s.mark <= len(txt) {
			if loc := re.FindStringSubmatchIndex(txt[s.mark:]); loc != nil {
				m := make([]string, len(loc)/2)
				for i := range m {
					if loc[2*i] >= 0 {
						m[i] = txt[s.mark+loc[2*i] : s.mark+loc[2*i+1]]
					}
				}
				s.mark += loc[1]
				s.mu.Unlock()
				return m, nil
			}
		}
		s.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			return nil, timeoutError{}
		}
	}
}

// send types keys on the guest's console.
func (s *screen) send(t *testing.T, keys string) {
	t.Helper()
	done := make(chan error, 1)
	go func() { _, err := io.WriteString(s.out, keys); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("console input: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("console input: the guest did not take %q in 30 s", keys)
	}
}

// close ends the console input (the domain's reader sees EOF).
func (s *screen) close() { s.out.Close() }

// tail is the last n lines of text, for failure messages.
func (s *screen) tail(n int) string {
	l := strings.Split(strings.TrimRight(s.text(), "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

func TestScreenExpect(t *testing.T) {
	s := newScreen(nil)
	go func() {
		s.Write([]byte("\x1b[H\x1b[J\x1b[37m\x1b[44mWelcome to \x1b[1msys"))
		time.Sleep(10 * time.Millisecond)
		s.Write([]byte("inst\r\n\x1b)0root device: "))
	}()
	if m := s.expect(t, `Welcome to (\w+)\n`, time.Second); m[1] != "sysinst" {
		t.Fatalf("submatch %q", m[1])
	}
	s.expect(t, `root device: $`, time.Second)
	// A match is consumed: the same text does not match twice.
	if _, err := s.wait(regexp.MustCompile(`Welcome`), 50*time.Millisecond); err == nil {
		t.Fatal("matched text before the mark")
	}
	go func() {
		b := make([]byte, 3)
		io.ReadFull(s.Input(), b)
		s.Write(append([]byte("got "), b...))
	}()
	s.send(t, "ddb")
	s.expect(t, `got ddb`, time.Second)
}
