package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"

	"github.com/urfave/cli/v3"
	"github.com/xenvmm/xenvmm/internal/pvkernels"
	"github.com/xenvmm/xenvmm/internal/sandbox"
	"github.com/xenvmm/xenvmm/internal/testenv"
)

// baseOptions finds the kernel and modules that scripts/setup.sh unpacked
// and builds guestinit into dir.
func baseOptions(cmd *cli.Command, dir string, log *slog.Logger) (sandbox.Options, error) {
	cache := cmd.String("cache")
	if cache == "" {
		cache = testenv.CacheDir()
	}
	kernels, _ := filepath.Glob(filepath.Join(cache, "kernel", "boot", "vmlinuz-*"))
	if len(kernels) == 0 {
		return sandbox.Options{}, fmt.Errorf("no Debian kernel under %s/kernel/boot: run scripts/setup.sh", cache)
	}
	sort.Strings(kernels)
	kernel := kernels[len(kernels)-1]
	ver := filepath.Base(kernel)[len("vmlinuz-"):]
	mods := filepath.Join(cache, "kernel", "lib", "modules", ver)
	initBin := filepath.Join(dir, "guestinit")
	if err := goBuild(initBin, "./internal/sandbox/guestinit"); err != nil {
		return sandbox.Options{}, err
	}
	return sandbox.Options{
		Kernel: kernel, ModulesDir: mods, Init: initBin,
		MemoryMiB: int(cmd.Int("memory")), CPUs: int(cmd.Int("cpus")),
		Timeout: cmd.Duration("timeout"), Log: log, KernelLog: cmd.Bool("kernel-log"),
		Files: map[string]string{},
		Plan:  sandbox.Plan{HostRoot: cmd.Bool("host-root")},
	}, nil
}

// goBuild builds a static binary of pkg (relative to the repository root).
func goBuild(out, pkg string) error {
	c := exec.Command("go", "build", "-o", out, pkg)
	c.Dir = testenv.RepoRoot()
	c.Env = append(os.Environ(), "CGO_ENABLED=0")
	c.Stdout, c.Stderr = os.Stderr, os.Stderr
	if err := c.Run(); err != nil {
		return fmt.Errorf("go build %s: %w", pkg, err)
	}
	return nil
}

// buildGuestProgs builds every testdata/guestprogs/NAME statically into
// dir and puts them at /sandbox/guestbin/NAME.
func buildGuestProgs(opts *sandbox.Options, env *[]string, dir string) error {
	ents, err := os.ReadDir(testenv.GuestProgsDir())
	if err != nil {
		return nil
	}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		out := filepath.Join(dir, "guestbin", e.Name())
		if err := goBuild(out, "./testdata/guestprogs/"+e.Name()); err != nil {
			return err
		}
		opts.Files["/sandbox/guestbin/"+e.Name()] = out
	}
	*env = append(*env, "XENVMM_GUESTBIN=/sandbox/guestbin")
	return nil
}

// buildPVKernels builds xenvmm's PV test kernels with the host's gcc (the
// sandbox has none) and puts them at /sandbox/pvkernels.
func buildPVKernels(opts *sandbox.Options, env *[]string) error {
	paths, err := pvkernels.Build(testenv.CacheDir())
	if err != nil {
		return fmt.Errorf("building the PV test kernels: %w", err)
	}
	for name, p := range paths {
		opts.Files["/sandbox/pvkernels/"+name] = p
	}
	*env = append(*env, "XENVMM_PVKERNELS=/sandbox/pvkernels")
	return nil
}

// addGuestData puts the test inputs that testenv looks for into the
// sandbox: Debian's vmlinuz and the real guest kernels, when present.
func addGuestData(opts *sandbox.Options, env *[]string) {
	cache := testenv.CacheDir()
	if ks, _ := filepath.Glob(filepath.Join(cache, "kernel", "boot", "vmlinuz-*")); len(ks) > 0 {
		sort.Strings(ks)
		opts.Files["/sandbox/data/vmlinuz"] = ks[len(ks)-1]
		*env = append(*env, "XENVMM_LINUX=/sandbox/data/vmlinuz")
	}
	// Debian's modules that guests load (xen-blkfront, ext4, ...), at their
	// paths under lib/modules/<version>.
	if mods, _ := filepath.Glob(filepath.Join(cache, "kernel", "lib", "modules", "*")); len(mods) > 0 {
		sort.Strings(mods)
		root := mods[len(mods)-1]
		if files, err := sandbox.ResolveModules(root, testenv.GuestModules); err == nil {
			inside := "/sandbox/data/modules/" + filepath.Base(root)
			for _, f := range files {
				rel, _ := filepath.Rel(root, f)
				opts.Files[inside+"/"+filepath.ToSlash(rel)] = f
			}
			*env = append(*env, "XENVMM_LINUX_MODULES="+inside)
		}
	}
	if ents, err := os.ReadDir(testenv.GuestsDir()); err == nil {
		for _, e := range ents {
			if e.Type().IsRegular() {
				opts.Files["/sandbox/guests/"+e.Name()] = filepath.Join(testenv.GuestsDir(), e.Name())
			}
		}
		*env = append(*env, "XENVMM_GUESTS=/sandbox/guests")
	}
	for _, k := range []string{"CI", "XENVMM_REQUIRE_ALL", "XENVMM_DEBUG"} {
		if v, ok := os.LookupEnv(k); ok {
			*env = append(*env, k+"="+v)
		}
	}
}
