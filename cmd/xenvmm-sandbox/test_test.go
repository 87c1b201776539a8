package main

import (
	"io"
	"regexp"
	"strings"
	"testing"
)

// TestCounterReruns: scan records each top-level result, flags a failure
// whose output showed a nested guest's triple fault, and a test forgotten
// before its rerun counts once, by its last run.
func TestCounterReruns(t *testing.T) {
	c := testCounter{synced: make(chan struct{}, 1)}
	first := `=== RUN   TestA
--- PASS: TestA (1.00s)
=== RUN   TestB
    x_test.go:1: domain ended with killed by xenvmm: vCPU 0: triple fault (KVM_EXIT_SHUTDOWN): rip 0xfff0
--- FAIL: TestB (2.00s)
=== RUN   TestC
    x_test.go:2: console lacks "poweroff"
--- FAIL: TestC (3.00s)
=== RUN   TestD
=== RUN   TestD/sub
    x_test.go:3: triple fault (KVM_EXIT_SHUTDOWN)
    --- FAIL: TestD/sub (1.00s)
--- FAIL: TestD (1.00s)
` + syncLine + "\n"
	c.scan(strings.NewReader(first), io.Discard, true)
	<-c.synced
	for name, want := range map[string][2]bool{"TestA": {false, false}, "TestB": {true, true}, "TestC": {true, false}, "TestD": {true, true}} {
		if f, tf := c.failedRun(name); f != want[0] || tf != want[1] {
			t.Errorf("failedRun(%s) = %v, %v, want %v, %v", name, f, tf, want[0], want[1])
		}
	}
	c.forget("TestB")
	c.scan(strings.NewReader("=== RUN   TestB\n--- PASS: TestB (2.00s)\n"), io.Discard, true)
	if f, tf := c.failedRun("TestB"); f || tf {
		t.Error("TestB still flagged after a passing rerun")
	}
	c.total()
	if c.pass != 2 || c.fail != 2 || c.skip != 0 {
		t.Errorf("pass/fail/skip = %d/%d/%d, want 2/2/0", c.pass, c.fail, c.skip)
	}
	if got := strings.Join(c.failed, ","); got != "TestC,TestD" {
		t.Errorf("failed = %s, want TestC,TestD", got)
	}
}

// TestPackagesByPattern: the packages chosen are those with a test the
// -run pattern matches, alternatives across packages included.
func TestPackagesByPattern(t *testing.T) {
	for _, c := range []struct {
		run  string
		want []string
	}{
		{"TestKVMBlkExt4|TestKVMKill9AfterFsync", []string{"github.com/xenvmm/xenvmm", "github.com/xenvmm/xenvmm/vmm"}},
		{"^TestKVMKickAfterClose$", []string{"github.com/xenvmm/xenvmm/vmm/kvm"}},
		{"^TestKVMNoSuchTest$", nil},
	} {
		pkgs, err := kvmPackages([]string{"./..."}, regexp.MustCompile(c.run))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range pkgs {
			got = append(got, p.importPath)
		}
		if strings.Join(got, " ") != strings.Join(c.want, " ") {
			t.Errorf("-run %q: packages %v, want %v", c.run, got, c.want)
		}
	}
}
