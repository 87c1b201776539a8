package sandbox

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
)

// KVMModules are the modules that give the sandbox /dev/kvm on QEMU's
// emulated AMD CPU (design/pv-on-kvm.md §1); their dependencies
// (irqbypass, ccp, ...) are found from each module's .modinfo.
var KVMModules = []string{"kvm_amd"}

// NetModules give the sandbox what the network tests build their
// namespaces from: tap devices, bridges and veth pairs (stp and llc come
// from bridge's .modinfo).
var NetModules = []string{"tun", "bridge", "veth"}

// HostRootModules are the modules that mount the host's root file system
// shared over virtio-9p (Plan.HostRoot): the virtio PCI transport (a bus
// driver, so no other module names it in its "depends=") and the 9p
// file system over virtio; netfs, fscache, 9pnet, virtio and virtio_ring
// come from their .modinfo.
var HostRootModules = []string{"virtio_pci", "9pnet_virtio", "9p"}

// ResolveModules finds the named modules under dir (a lib/modules/<ver>
// tree) and returns their paths with every dependency first, read from
// the "depends=" entry of each module's .modinfo section.
func ResolveModules(dir string, names []string) ([]string, error) {
	index := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".ko") {
			index[modName(strings.TrimSuffix(d.Name(), ".ko"))] = p
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sandbox: index modules: %w", err)
	}
	var order []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(name string, from string) error
	visit = func(name, from string) error {
		name = modName(name)
		switch state[name] {
		case 2:
			return nil
		case 1:
			return fmt.Errorf("sandbox: module dependency cycle at %s", name)
		}
		p, ok := index[name]
		if !ok {
			if from != "" {
				return fmt.Errorf("sandbox: module %s (needed by %s) not found under %s", name, from, dir)
			}
			return fmt.Errorf("sandbox: module %s not found under %s", name, dir)
		}
		state[name] = 1
		deps, err := moduleDepends(p)
		if err != nil {
			return err
		}
		for _, d := range deps {
			if err := visit(d, name); err != nil {
				return err
			}
		}
		state[name] = 2
		order = append(order, p)
		return nil
	}
	for _, n := range names {
		if err := visit(n, ""); err != nil {
			return nil, err
		}
	}
	return order, nil
}

func modName(s string) string { return strings.ReplaceAll(s, "-", "_") }

func moduleDepends(path string) ([]string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("sandbox: %s: %w", path, err)
	}
	defer f.Close()
	s := f.Section(".modinfo")
	if s == nil {
		return nil, nil
	}
	data, err := s.Data()
	if err != nil {
		return nil, fmt.Errorf("sandbox: %s: .modinfo: %w", path, err)
	}
	for _, kv := range bytes.Split(data, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("depends=")); ok {
			if len(v) == 0 {
				return nil, nil
			}
			return strings.Split(string(v), ","), nil
		}
	}
	return nil, nil
}
