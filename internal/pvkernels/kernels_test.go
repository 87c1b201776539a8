package pvkernels

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func readSource(t *testing.T, rel string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(SourceDir(), filepath.FromSlash(rel)))
	if err != nil {
		t.Fatalf("kernel source: %v", err)
	}
	return string(data)
}

// cLiteral writes s as the C string literal the kernel sources use.
func cLiteral(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

var (
	checkCall   = regexp.MustCompile(`\bcheck(_ret|_eq)?\(`)
	kernelMacro = regexp.MustCompile(`(?m)^PVK_KERNEL\("([^"]*)", "([^"]*)", (PVK_VIA_SYSCALL|PVK_VIA_PAGE)\);`)
)

// The table says what the C sources do: every expected description is a
// literal of the kernel's source, every check call there has its line in
// Want (each kernel runs each of its checks exactly once when it passes),
// and PVK_KERNEL declares the same name, features and hypercall style.
func TestKernelsMatchSources(t *testing.T) {
	seen := map[string]bool{}
	for _, k := range Kernels {
		t.Run(k.Name, func(t *testing.T) {
			if seen[k.Name] {
				t.Fatalf("kernel %q listed twice", k.Name)
			}
			seen[k.Name] = true
			src := readSource(t, kernelSource(k.Name))

			m := kernelMacro.FindAllStringSubmatch(src, -1)
			if len(m) != 1 {
				t.Fatalf("want exactly one PVK_KERNEL(...) line, found %d", len(m))
			}
			style := map[string]Hypercalls{"PVK_VIA_SYSCALL": ViaSyscall, "PVK_VIA_PAGE": ViaPage}[m[0][3]]
			if m[0][1] != k.Name || m[0][2] != k.Features || style != k.Hypercalls {
				t.Errorf("PVK_KERNEL(%q, %q, %s), table says (%q, %q, %s)", m[0][1], m[0][2], m[0][3],
					k.Name, k.Features, k.Hypercalls)
			}

			if len(k.Want) == 0 {
				t.Fatal("no expected output")
			}
			descs := map[string]bool{}
			for _, w := range k.Want {
				if descs[w] {
					t.Errorf("description %q appears twice", w)
				}
				descs[w] = true
				if !strings.Contains(src, cLiteral(w)) {
					t.Errorf("description %q is not a string literal of %s", w, kernelSource(k.Name))
				}
				if strings.ContainsAny(w, "\r\n") || strings.HasPrefix(w, " ") {
					t.Errorf("description %q would not read back as one protocol line", w)
				}
			}
			if n := len(checkCall.FindAllString(src, -1)); n != len(k.Want) {
				t.Errorf("%s makes %d check calls, Want has %d lines", kernelSource(k.Name), n, len(k.Want))
			}
		})
	}
}

// The ring text the console kernel builds matches ConsoleRingLines.
func TestConsoleRingLines(t *testing.T) {
	src := readSource(t, kernelSource("console"))
	for _, frag := range []string{
		`"xenvmm console ring line %02d of %d: %s\n"`,
		"#define RING_LINES 40",
		cLiteral(consoleRingPattern),
	} {
		if !strings.Contains(src, frag) {
			t.Errorf("console.c lacks %s", frag)
		}
	}
	lines := ConsoleRingLines()
	total := 0
	for _, l := range lines {
		total += len(l) + 1
	}
	if total <= 2048 {
		t.Errorf("ring text is %d bytes, not more than the 2048-byte out ring", total)
	}
	if lines[0] != "xenvmm console ring line 01 of 40: "+consoleRingPattern {
		t.Errorf("first line %q", lines[0])
	}
	k, ok := Lookup("console")
	if !ok || len(k.Ring) != 40 || k.Ring[39] != lines[39] {
		t.Errorf("console kernel's Ring is not ConsoleRingLines()")
	}
	if _, ok := Lookup("no-such-kernel"); ok {
		t.Error("Lookup found a kernel that does not exist")
	}
}
