package vmm

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// lineRecorder is a console writer that keeps each line with the host
// time it arrived, and can echo to the test log.
type lineRecorder struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	lines []recLine
	echo  io.Writer
}

type recLine struct {
	at   time.Time
	text string
}

func (r *lineRecorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.echo != nil {
		r.echo.Write(p)
	}
	r.buf.Write(p)
	for {
		i := bytes.IndexByte(r.buf.Bytes(), '\n')
		if i < 0 {
			break
		}
		line := strings.TrimRight(string(r.buf.Next(i+1)), "\r\n")
		r.lines = append(r.lines, recLine{at: time.Now(), text: line})
	}
	return len(p), nil
}

// find returns the first line matching re and its submatches.
func (r *lineRecorder) find(re *regexp.Regexp) (recLine, []string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range r.lines {
		if m := re.FindStringSubmatch(l.text); m != nil {
			return l, m, true
		}
	}
	return recLine{}, nil, false
}

func (r *lineRecorder) all() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, l := range r.lines {
		b.WriteString(l.text)
		b.WriteByte('\n')
	}
	b.Write(r.buf.Bytes())
	return b.String()
}

// tail is the last n lines, for failure messages.
func (r *lineRecorder) tail(n int) string {
	s := strings.Split(strings.TrimRight(r.all(), "\n"), "\n")
	if len(s) > n {
		s = s[len(s)-n:]
	}
	return strings.Join(s, "\n")
}

// testLogger sends the VMM's logs to the test log.
func testLogger(t *testing.T) *slog.Logger {
	lvl := slog.LevelInfo
	if os.Getenv("XENVMM_DEBUG") == "1" {
		lvl = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(tlogWriter{t}, &slog.HandlerOptions{Level: lvl}))
}

type tlogWriter struct{ t *testing.T }

func (w tlogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
