package vmm

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/xenvmm/xenvmm/internal/pvkernels"
	"github.com/xenvmm/xenvmm/internal/testenv"
	"github.com/xenvmm/xenvmm/loader"
	"github.com/xenvmm/xenvmm/xenabi/abi"
)

// runPVKernel boots one of xenvmm's own PV test kernels
// (testdata/pvkernels) and checks its output line by line against what it
// prints on a hypervisor that behaves like Xen.
func runPVKernel(t *testing.T, name string) {
	testenv.RequireKVM(t)
	k, ok := pvkernels.Lookup(name)
	if !ok {
		t.Fatalf("no PV test kernel %q", name)
	}
	path := pvkernels.BuildT(t)[name]
	img, err := loader.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	con := &lineRecorder{}
	if testing.Verbose() {
		con.echo = os.Stdout
	}
	d, err := New(Options{Name: "pvtest-" + name, MemoryMiB: 64, Kernel: img, Cmdline: "xenvmm-test " + name, Console: con, Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	exit, err := d.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := con.all()
	if err := k.Check(out); err != nil {
		t.Errorf("%v\noutput:\n%s", err, out)
	}
	if err := k.CheckRing(out); err != nil {
		t.Errorf("console ring: %v", err)
	}
	if exit.Reason != abi.SHUTDOWN_poweroff {
		t.Errorf("kernel %s ended with %v, want poweroff", name, exit)
	}
}

func TestKVMPVKernelHello(t *testing.T)      { runPVKernel(t, "hello") }
func TestKVMPVKernelTraps(t *testing.T)      { runPVKernel(t, "traps") }
func TestKVMPVKernelUsermode(t *testing.T)   { runPVKernel(t, "usermode") }
func TestKVMPVKernelPagetables(t *testing.T) { runPVKernel(t, "pagetables") }
func TestKVMPVKernelEvents(t *testing.T)     { runPVKernel(t, "events") }
func TestKVMPVKernelConsole(t *testing.T)    { runPVKernel(t, "console") }
func TestKVMPVKernelBadargs(t *testing.T)    { runPVKernel(t, "badargs") }

// TestPVKernelsCoverEveryKernel keeps the KVM tests above in step with
// the kernels that exist.
func TestPVKernelsCoverEveryKernel(t *testing.T) {
	src, err := os.ReadFile("pvkernels_kvm_test.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range pvkernels.Kernels {
		if !containsString(string(src), `runPVKernel(t, "`+k.Name+`")`) {
			t.Errorf("PV test kernel %q has no KVM test", k.Name)
		}
	}
}

func containsString(s, sub string) bool { return strings.Contains(s, sub) }
