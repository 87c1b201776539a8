package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v3"
	"github.com/xenvmm/xenvmm/internal/sandbox"
	"github.com/xenvmm/xenvmm/internal/testenv"
)

func testCommand(log *slog.Logger) *cli.Command {
	return &cli.Command{
		Name:      "test",
		Usage:     "build the test binaries of packages that have KVM tests and run them inside the sandbox",
		ArgsUsage: "[PACKAGES] (default ./...)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "run", Value: "^TestKVM", Usage: "which tests run inside (go test -run)"},
			&cli.IntFlag{Name: "min", Value: 1, Usage: "fail unless at least this many KVM tests pass inside"},
			&cli.StringFlag{Name: "test-timeout", Value: "15m", Usage: "go test -timeout for each test binary"},
			&cli.BoolFlag{Name: "v", Usage: "go test -v output for every test (PASS lines are always counted)"},
			&cli.IntFlag{Name: "count", Value: 1, Usage: "run each test this many times (go test -count)"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			return runTests(ctx, cmd, log)
		},
	}
}

type testPkg struct{ importPath, dir, rel string }

// testFunc finds top-level test functions in a test file.
var testFunc = regexp.MustCompile(`(?m)^func (Test\w*)\(`)

// kvmPackages lists the packages with a test function whose name run
// matches (as go test -run matches top-level tests).
func kvmPackages(patterns []string, run *regexp.Regexp) ([]testPkg, error) {
	args := append([]string{"list", "-f", "{{.ImportPath}}|{{.Dir}}|{{join .TestGoFiles \",\"}}|{{join .XTestGoFiles \",\"}}"}, patterns...)
	c := exec.Command("go", args...)
	c.Dir = testenv.RepoRoot()
	c.Stderr = os.Stderr
	out, err := c.Output()
	if err != nil {
		return nil, fmt.Errorf("go list: %w", err)
	}
	var pkgs []testPkg
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "|")
		if len(f) != 4 {
			continue
		}
		files := strings.Split(f[2]+","+f[3], ",")
		for _, tf := range files {
			if tf == "" {
				continue
			}
			src, err := os.ReadFile(filepath.Join(f[1], tf))
			if err == nil && anyMatch(run, testFunc.FindAllSubmatch(src, -1)) {
				rel, _ := filepath.Rel(testenv.RepoRoot(), f[1])
				pkgs = append(pkgs, testPkg{importPath: f[0], dir: f[1], rel: filepath.ToSlash(rel)})
				break
			}
		}
	}
	return pkgs, nil
}

func anyMatch(run *regexp.Regexp, funcs [][][]byte) bool {
	for _, m := range funcs {
		if run.Match(m[1]) {
			return true
		}
	}
	return false
}

func runTests(ctx context.Context, cmd *cli.Command, log *slog.Logger) error {
	patterns := cmd.Args().Slice()
	if len(patterns) == 0 {
		patterns = []string{"./..."}
	}
	// The top-level part of the pattern (go test -run splits at "/").
	top, _, _ := strings.Cut(cmd.String("run"), "/")
	run, err := regexp.Compile(top)
	if err != nil {
		return fmt.Errorf("--run %q: %w", cmd.String("run"), err)
	}
	pkgs, err := kvmPackages(patterns, run)
	if err != nil {
		return err
	}
	if len(pkgs) == 0 {
		return fmt.Errorf("no package in %v has tests matching %q", patterns, cmd.String("run"))
	}
	dir, err := os.MkdirTemp("", "xenvmm-sandbox-tests-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	opts, err := baseOptions(cmd, dir, log)
	if err != nil {
		return err
	}
	var env []string
	addGuestData(&opts, &env)
	if err := buildGuestProgs(&opts, &env, dir); err != nil {
		return err
	}
	if err := buildPVKernels(&opts, &env); err != nil {
		return err
	}
	env = append(env, "XENVMM_REPO=/sandbox/src")
	for _, p := range pkgs {
		bin := filepath.Join(dir, strings.ReplaceAll(p.rel, "/", "_")+".test")
		log.Info("building test binary", "package", p.importPath)
		c := exec.Command("go", "test", "-c", "-o", bin, p.importPath)
		c.Dir = testenv.RepoRoot()
		c.Env = append(os.Environ(), "CGO_ENABLED=0")
		c.Stdout, c.Stderr = os.Stderr, os.Stderr
		if err := c.Run(); err != nil {
			return fmt.Errorf("go test -c %s: %w", p.importPath, err)
		}
		inside := path.Join("/sandbox/src", p.rel)
		opts.Files[path.Join(inside, "xenvmm.test")] = bin
		if err := addTree(opts.Files, filepath.Join(p.dir, "testdata"), path.Join(inside, "testdata")); err != nil {
			return err
		}
		// One sandbox command per test, so that a sandbox that dies (see
		// below) resumes where it stopped.
		names, err := listTests(bin, cmd.String("run"))
		if err != nil {
			return err
		}
		for _, name := range names {
			argv := []string{path.Join(inside, "xenvmm.test"), "-test.run", "^" + name + "$", "-test.timeout", cmd.String("test-timeout"), "-test.v",
				"-test.count", strconv.Itoa(int(cmd.Int("count")))}
			opts.Plan.Commands = append(opts.Plan.Commands, sandbox.Command{Name: p.importPath + "." + name, Argv: argv, Dir: inside})
		}
	}
	opts.Plan.Env = env
	if len(opts.Plan.Commands) == 0 {
		return fmt.Errorf("no test in %v matches %q", patterns, cmd.String("run"))
	}

	counter := testCounter{synced: make(chan struct{})}
	pr, pw := io.Pipe()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		counter.scan(pr, os.Stdout, cmd.Bool("v"))
	}()
	opts.Console = pw
	// QEMU's emulated SVM has reset the whole sandbox (a triple fault
	// of the sandbox kernel itself) and ended nested guests with triple
	// faults or stalls, though far less since the sandbox runs on a
	// single TCG thread (docs/design.md, "The sandbox: one TCG thread").
	// Should it happen, start a new sandbox for the tests that had not
	// finished, and run a failed test again in a new sandbox; every reset
	// and rerun is reported, reruns with whether a triple fault showed.
	// No test starts more than maxStarts times in all: a failure that
	// repeats fails the run.
	all := opts.Plan.Commands
	full := all
	var res *sandbox.Result
	var runErr error
	var elapsed time.Duration
	resets, tries := 0, map[string]int{}
	var reruns []string
	rerun := func() bool {
		// Let the scanner read all the console output so far.
		fmt.Fprintln(pw, syncLine)
		<-counter.synced
		var again []sandbox.Command
		for _, c := range full {
			name := c.Name[strings.LastIndex(c.Name, ".")+1:]
			failed, triple := counter.failedRun(name)
			if !failed || tries[c.Name] >= maxStarts-1 {
				continue
			}
			tries[c.Name]++
			counter.forget(name)
			if triple {
				name += " (triple fault)"
			}
			reruns = append(reruns, name)
			again = append(again, c)
		}
		if len(again) == 0 {
			return false
		}
		fmt.Printf("\nsandbox: running again in a new sandbox: %s\n", strings.Join(reruns[len(reruns)-len(again):], ", "))
		all = again
		return true
	}
	for len(all) > 0 {
		opts.Plan.Commands = all
		res, runErr = sandbox.Run(ctx, opts)
		if res != nil {
			elapsed += res.Elapsed
		}
		if runErr != nil {
			break
		}
		if res.Done {
			if !res.KVM || !rerun() {
				break
			}
			continue
		}
		done := len(res.Commands)
		if done < len(all) {
			tries[all[done].Name]++
			if tries[all[done].Name] > maxStarts-1 {
				fmt.Printf("\nsandbox: the sandbox reset itself during %s, which started %d times; giving up\n", all[done].Name, maxStarts)
				break
			}
		}
		resets++
		fmt.Printf("\nsandbox: the sandbox reset itself during %s; starting a new one for the %d tests left\n", all[min(done, len(all)-1)].Name, len(all)-done)
		all = all[done:]
		if !res.KVM {
			break
		}
	}
	pw.Close()
	wg.Wait()
	if res != nil {
		res.Elapsed = elapsed
	}
	counter.total()
	fmt.Printf("\nsandbox: %d KVM tests passed, %d failed, %d skipped inside the sandbox", counter.pass, counter.fail, counter.skip)
	if resets > 0 {
		fmt.Printf(" (after %d sandbox resets)", resets)
	}
	if len(reruns) > 0 {
		fmt.Printf(" (%d reruns after a failure: %s)", len(reruns), strings.Join(reruns, ", "))
	}
	if res != nil {
		fmt.Printf(" (kvm=%v, QEMU wall time %.1fs)", res.KVM, res.Elapsed.Seconds())
	}
	fmt.Println()
	if len(counter.failed) > 0 {
		fmt.Printf("sandbox: failed: %s\n", strings.Join(counter.failed, ", "))
	}
	if runErr != nil {
		return runErr
	}
	if err := res.Err(); err != nil {
		return err
	}
	if counter.fail > 0 {
		return fmt.Errorf("%d KVM tests failed", counter.fail)
	}
	if counter.skip > 0 && testenv.Strict() {
		return fmt.Errorf("%d KVM tests skipped inside the sandbox (CI=true: skips are failures)", counter.skip)
	}
	if min := int(cmd.Int("min")); counter.pass < min {
		return fmt.Errorf("only %d KVM tests passed inside the sandbox, want at least %d", counter.pass, min)
	}
	return nil
}

// maxStarts bounds how often one test starts, counting the starts after a
// sandbox reset and the reruns after a nested triple fault.
const maxStarts = 5

// listTests asks a test binary (run on the host: it is static) for the
// names of its tests matching run.
func listTests(bin, run string) ([]string, error) {
	out, err := exec.Command(bin, "-test.list", run).Output()
	if err != nil {
		return nil, fmt.Errorf("%s -test.list: %w", bin, err)
	}
	var names []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.HasPrefix(l, "Test") {
			names = append(names, l)
		}
	}
	return names, nil
}

// testCounter counts top-level go test results in -test.v output, keeping
// only the last run of a test that ran again.
type testCounter struct {
	mu      sync.Mutex
	results map[string][]string // test name -> PASS/FAIL/SKIP of each run
	triple  map[string]bool     // its last failure was a nested triple fault
	current string              // the test whose output is being read
	synced  chan struct{}       // receives when scan reads syncLine

	pass, fail, skip int // set by total
	failed           []string
}

var (
	resultLine = regexp.MustCompile(`^--- (PASS|FAIL|SKIP): (\S+)`)
	runLine    = regexp.MustCompile(`^=== RUN\s+(\S+)$`)
)

// syncLine, written into the console stream, makes scan report that it
// has read everything before it.
const syncLine = "xenvmm-sandbox: sync"

// tripleFaultMark is what xenvmm's vCPU loop reports when KVM ends a guest
// with a triple fault.
const tripleFaultMark = "triple fault (KVM_EXIT_SHUTDOWN)"

// scan copies r to w (all of it when verbose, else everything but the
// per-test "=== RUN"/"--- PASS" chatter) and records results.
func (c *testCounter) scan(r io.Reader, w io.Writer, verbose bool) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	sawTriple := false
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if line == syncLine {
			c.synced <- struct{}{}
			continue
		}
		c.mu.Lock()
		if c.results == nil {
			c.results, c.triple = map[string][]string{}, map[string]bool{}
		}
		if m := runLine.FindStringSubmatch(line); m != nil && !strings.Contains(m[1], "/") {
			c.current, sawTriple = m[1], false
		}
		if strings.Contains(line, tripleFaultMark) {
			sawTriple = true
		}
		if m := resultLine.FindStringSubmatch(line); m != nil && !strings.Contains(m[2], "/") {
			c.results[m[2]] = append(c.results[m[2]], m[1])
			c.triple[m[2]] = m[1] == "FAIL" && sawTriple
			sawTriple = false
		}
		c.mu.Unlock()
		fmt.Fprintln(w, line)
	}
	io.Copy(io.Discard, r)
}

// failedRun reports whether the last run of test name failed, and whether
// its failure showed a nested guest's triple fault.
func (c *testCounter) failedRun(name string) (failed, triple bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.results[name]
	return len(r) > 0 && r[len(r)-1] == "FAIL", c.triple[name]
}

// forget drops the results of test name before it runs again.
func (c *testCounter) forget(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.results, name)
	delete(c.triple, name)
}

// total sets pass, fail, skip and failed from the recorded results.
func (c *testCounter) total() {
	c.mu.Lock()
	defer c.mu.Unlock()
	names := make([]string, 0, len(c.results))
	for n := range c.results {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		for _, r := range c.results[n] {
			switch r {
			case "PASS":
				c.pass++
			case "FAIL":
				c.fail++
				c.failed = append(c.failed, n)
			case "SKIP":
				c.skip++
			}
		}
	}
}

// addTree adds every regular file under host (if it exists) to files at
// the same relative path under inside.
func addTree(files map[string]string, host, inside string) error {
	if _, err := os.Stat(host); err != nil {
		return nil
	}
	return filepath.WalkDir(host, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !d.Type().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(host, p)
		files[path.Join(inside, filepath.ToSlash(rel))] = p
		return nil
	})
}
