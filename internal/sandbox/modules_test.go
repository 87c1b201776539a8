package sandbox

import (
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/xenvmm/xenvmm/internal/testenv"
)

// debianModules returns the lib/modules/<version> tree of the Debian
// kernel that scripts/setup.sh unpacked.
func debianModules(t *testing.T) string {
	t.Helper()
	dirs, _ := filepath.Glob(filepath.Join(testenv.CacheDir(), "kernel", "lib", "modules", "*"))
	if len(dirs) == 0 {
		testenv.Missing(t, "Debian's kernel modules (under "+filepath.Join(testenv.CacheDir(), "kernel", "lib", "modules")+")")
	}
	sort.Strings(dirs)
	return dirs[len(dirs)-1]
}

// TestResolveModules resolves the sandbox's module lists against Debian's
// kernel: every module the lists need is there, each after what its
// .modinfo says it depends on, none twice.
func TestResolveModules(t *testing.T) {
	dir := debianModules(t)
	for _, tt := range []struct {
		name  string
		names []string
		want  []string // must be present (the named ones and known dependencies)
	}{
		{"kvm", KVMModules, []string{"kvm_amd", "kvm", "irqbypass", "ccp"}},
		{"host root", HostRootModules, []string{"virtio_pci", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio", "virtio_ring", "9pnet_virtio", "9pnet", "9p", "netfs", "fscache"}},
		{"net", NetModules, []string{"tun", "bridge", "stp", "llc", "veth"}},
		{"both", append(append([]string{}, KVMModules...), HostRootModules...), []string{"kvm_amd", "9p"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			paths, err := ResolveModules(dir, tt.names)
			if err != nil {
				t.Fatal(err)
			}
			pos := map[string]int{}
			for i, p := range paths {
				n := modName(strings.TrimSuffix(filepath.Base(p), ".ko"))
				if _, dup := pos[n]; dup {
					t.Errorf("%s listed twice", n)
				}
				pos[n] = i
			}
			for _, w := range tt.want {
				if _, ok := pos[w]; !ok {
					t.Errorf("%s missing from %v", w, paths)
				}
			}
			for i, p := range paths {
				deps, err := moduleDepends(p)
				if err != nil {
					t.Fatal(err)
				}
				for _, d := range deps {
					if j, ok := pos[modName(d)]; !ok || j > i {
						t.Errorf("%s depends on %s, which is not loaded before it", filepath.Base(p), d)
					}
				}
			}
		})
	}
	if _, err := ResolveModules(dir, []string{"no_such_module"}); err == nil {
		t.Error("ResolveModules of a missing module succeeded")
	}
}
