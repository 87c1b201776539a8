package pvkernels

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/xenvmm/xenvmm/internal/testenv"
)

// CFlags are the gcc flags every kernel is built with: a freestanding,
// non-PIC kernel in the top 2 GiB (mcmodel=kernel, linked at
// 0xffffffff80000000 by linker.ld), no red zone (Xen pushes bounce frames
// right below the interrupted RSP), no SSE/x87 code, no stack protector,
// no unwind tables or build-id notes.
var CFlags = []string{
	"-std=gnu11", "-O2", "-Wall", "-Wextra",
	"-ffreestanding", "-nostdlib", "-static", "-fno-pic", "-fno-pie", "-no-pie",
	"-mcmodel=kernel", "-mno-red-zone", "-mgeneral-regs-only",
	"-fno-stack-protector", "-fno-asynchronous-unwind-tables", "-fcf-protection=none",
	"-Icommon",
	"-Wl,-T,linker.ld", "-Wl,--build-id=none", "-Wl,-z,max-page-size=4096", "-Wl,-z,noexecstack",
}

// Errors of Build.
var (
	// ErrNoCompiler: gcc ($CC) is not installed.
	ErrNoCompiler = errors.New("pvkernels: no C compiler (gcc, or $CC) to build the PV test kernels")
	// ErrNoSources: the source directory is missing or incomplete.
	ErrNoSources = errors.New("pvkernels: PV test kernel sources not found")
)

// BuildError is a failed compilation of one kernel.
type BuildError struct {
	Kernel string
	Cmd    string
	Output string
	Err    error
}

func (e *BuildError) Error() string {
	return fmt.Sprintf("pvkernels: building %s: %v\n%s\n%s", e.Kernel, e.Err, e.Cmd, e.Output)
}

func (e *BuildError) Unwrap() error { return e.Err }

// SourceDir is where the kernels' sources are: $XENVMM_PVKERNELS_SRC, or
// testdata/pvkernels in the checkout.
func SourceDir() string {
	if d := os.Getenv("XENVMM_PVKERNELS_SRC"); d != "" {
		return d
	}
	return filepath.Join(testenv.RepoRoot(), "testdata", "pvkernels")
}

// compiler is $CC, or gcc.
func compiler() string {
	if cc := os.Getenv("CC"); cc != "" {
		return cc
	}
	return "gcc"
}

// Build compiles every kernel in Kernels from SourceDir into a directory
// under cacheDir named after a hash of the sources, the flags and the
// compiler's version, and returns the path of each ELF by kernel name.
// Kernels built before from the same inputs are reused as they are.
func Build(cacheDir string) (map[string]string, error) {
	return BuildFrom(SourceDir(), cacheDir)
}

// BuildFrom is Build with the sources taken from srcDir.
func BuildFrom(srcDir, cacheDir string) (map[string]string, error) {
	cc, err := exec.LookPath(compiler())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoCompiler, err)
	}
	key, err := inputsHash(srcDir, cc)
	if err != nil {
		return nil, err
	}
	outDir := filepath.Join(cacheDir, "pvkernels", key)
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, fmt.Errorf("pvkernels: cache directory: %w", err)
	}
	paths := make(map[string]string, len(Kernels))
	for _, k := range Kernels {
		out := filepath.Join(outDir, k.Name)
		paths[k.Name] = out
		if fi, err := os.Stat(out); err == nil && fi.Mode().IsRegular() && fi.Size() > 0 {
			continue
		}
		if err := compile(cc, srcDir, k.Name, out); err != nil {
			return nil, err
		}
	}
	return paths, nil
}

// sources lists the files every kernel is built from (relative to srcDir,
// sorted), and the kernel's own file.
func sources(srcDir string) (common []string, err error) {
	err = filepath.WalkDir(filepath.Join(srcDir, "common"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, err := filepath.Rel(srcDir, p)
			if err != nil {
				return err
			}
			common = append(common, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoSources, err)
	}
	sort.Strings(common)
	return common, nil
}

func kernelSource(name string) string { return "kernels/" + name + ".c" }

// inputsHash is the cache key: everything that can change an ELF.
func inputsHash(srcDir, cc string) (string, error) {
	common, err := sources(srcDir)
	if err != nil {
		return "", err
	}
	files := append([]string{"linker.ld"}, common...)
	for _, k := range Kernels {
		files = append(files, kernelSource(k.Name))
	}
	h := sha256.New()
	version, err := exec.Command(cc, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%w: %s --version: %w", ErrNoCompiler, cc, err)
	}
	fmt.Fprintf(h, "cc %s\n%s\nflags %q\n", cc, version, CFlags)
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(srcDir, filepath.FromSlash(f)))
		if err != nil {
			return "", fmt.Errorf("%w: %w", ErrNoSources, err)
		}
		fmt.Fprintf(h, "file %s %d\n", f, len(data))
		h.Write(data)
	}
	return hex.EncodeToString(h.Sum(nil))[:20], nil
}

// compile builds one kernel: the common .S and .c files and its own
// source, linked by linker.ld. It writes to a temporary name and renames,
// so a concurrent or interrupted build never leaves half an ELF behind.
func compile(cc, srcDir, name, out string) error {
	common, err := sources(srcDir)
	if err != nil {
		return err
	}
	args := append([]string{}, CFlags...)
	for _, f := range common {
		if strings.HasSuffix(f, ".c") || strings.HasSuffix(f, ".S") {
			args = append(args, f)
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), name+".tmp*")
	if err != nil {
		return fmt.Errorf("pvkernels: %w", err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	args = append(args, kernelSource(name), "-o", tmp.Name())
	cmd := exec.Command(cc, args...)
	cmd.Dir = srcDir
	output, err := cmd.CombinedOutput()
	if err != nil {
		return &BuildError{Kernel: name, Cmd: cc + " " + strings.Join(args, " "), Output: string(output), Err: err}
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return fmt.Errorf("pvkernels: %w", err)
	}
	return nil
}

// BuildT returns the built kernels for a test: from $XENVMM_PVKERNELS
// when set (a directory of prebuilt ELFs named after the kernels, for
// places without gcc such as the nested-KVM sandbox), else built by Build
// into testenv.CacheDir(). Without gcc or the sources it skips t (fails
// it under CI, testenv.Missing); a compilation error fails t.
func BuildT(t testing.TB) map[string]string {
	t.Helper()
	if dir := os.Getenv("XENVMM_PVKERNELS"); dir != "" {
		paths := make(map[string]string, len(Kernels))
		for _, k := range Kernels {
			p := filepath.Join(dir, k.Name)
			if _, err := os.Stat(p); err != nil {
				t.Fatalf("XENVMM_PVKERNELS=%s: %v", dir, err)
			}
			paths[k.Name] = p
		}
		return paths
	}
	paths, err := Build(testenv.CacheDir())
	switch {
	case errors.Is(err, ErrNoCompiler):
		testenv.Missing(t, "gcc (to build the PV test kernels)")
	case errors.Is(err, ErrNoSources):
		testenv.Missing(t, "the PV test kernel sources ("+SourceDir()+")")
	case err != nil:
		t.Fatal(err)
	}
	return paths
}
