package evtchn

import (
	"testing"

	"github.com/xenvmm/xenvmm/xenabi/abi"
)

// opCase is one hypercall against a table prepared by setup, with the
// return value Xen gives and, on success, a check of the result.
type opCase struct {
	name  string
	cfg   func(*Config)
	setup func(t *testing.T, tb *Table, g *fakeGuest)
	cmd   uint32
	in    any
	want  int64
	check func(t *testing.T, tb *Table, g *fakeGuest, out any)
}

func runOpCases(t *testing.T, cases []opCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tb, g := newTable(t, 2, c.cfg)
			if c.setup != nil {
				c.setup(t, tb, g)
			}
			out := newLike(c.in)
			got := call(t, tb, c.cmd, c.in, out)
			if got != c.want {
				t.Fatalf("rc = %d, want %d", got, c.want)
			}
			if c.check != nil {
				c.check(t, tb, g, out)
			}
			if err := checkInvariants(tb); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func newLike(v any) any {
	switch v.(type) {
	case *AllocUnbound:
		return &AllocUnbound{}
	case *BindInterdomain:
		return &BindInterdomain{}
	case *BindVIRQ:
		return &BindVIRQ{}
	case *BindPIRQ:
		return &BindPIRQ{}
	case *BindIPI:
		return &BindIPI{}
	case *Close:
		return &Close{}
	case *Send:
		return &Send{}
	case *Status:
		return &Status{}
	case *BindVCPU:
		return &BindVCPU{}
	case *Unmask:
		return &Unmask{}
	case *Reset:
		return &Reset{}
	case *InitControl:
		return &InitControl{}
	case *ExpandArray:
		return &ExpandArray{}
	case *SetPriority:
		return &SetPriority{}
	}
	panic("unknown argument type")
}

func maxPort(n uint32) func(*Config) { return func(c *Config) { c.MaxPort = n } }

// fill allocates unbound ports until the table is full.
func fill(t *testing.T, tb *Table, _ *fakeGuest) {
	for {
		if rc := call(t, tb, abi.EVTCHNOP_alloc_unbound, &AllocUnbound{Dom: abi.DOMID_SELF}, nil); rc != 0 {
			if rc != ret(abi.ENOSPC) {
				t.Fatalf("filling: %d", rc)
			}
			return
		}
	}
}

func wantStatus(port uint32, want Status) func(*testing.T, *Table, *fakeGuest, any) {
	return func(t *testing.T, tb *Table, _ *fakeGuest, _ any) {
		t.Helper()
		got := status(t, tb, port)
		got.Dom, got.Port = 0, 0
		if got != want {
			t.Fatalf("status(%d) = %+v, want %+v", port, got, want)
		}
	}
}

func TestAllocUnbound(t *testing.T) {
	runOpCases(t, []opCase{
		{name: "self remote 0", cmd: abi.EVTCHNOP_alloc_unbound, in: &AllocUnbound{Dom: abi.DOMID_SELF, RemoteDom: 0},
			check: func(t *testing.T, tb *Table, g *fakeGuest, out any) {
				if p := out.(*AllocUnbound).Port; p != 1 {
					t.Fatalf("port %d, want 1 (lowest free)", p)
				}
				wantStatus(1, Status{Status: abi.EVTCHNSTAT_unbound, U0: 0})(t, tb, g, out)
			}},
		{name: "own id, remote self", cmd: abi.EVTCHNOP_alloc_unbound, in: &AllocUnbound{Dom: 1, RemoteDom: abi.DOMID_SELF},
			check: wantStatus(1, Status{Status: abi.EVTCHNSTAT_unbound, U0: 1})},
		{name: "remote any domain", cmd: abi.EVTCHNOP_alloc_unbound, in: &AllocUnbound{Dom: 1, RemoteDom: 42},
			check: wantStatus(1, Status{Status: abi.EVTCHNSTAT_unbound, U0: 42})},
		{name: "in domain 0", cmd: abi.EVTCHNOP_alloc_unbound, in: &AllocUnbound{Dom: 0}, want: ret(abi.EPERM)},
		{name: "no such domain", cmd: abi.EVTCHNOP_alloc_unbound, in: &AllocUnbound{Dom: 7}, want: ret(abi.ESRCH)},
		{name: "DOMID_IO", cmd: abi.EVTCHNOP_alloc_unbound, in: &AllocUnbound{Dom: abi.DOMID_IO}, want: ret(abi.ESRCH)},
		{name: "full", cfg: maxPort(3), setup: fill, cmd: abi.EVTCHNOP_alloc_unbound, in: &AllocUnbound{Dom: abi.DOMID_SELF}, want: ret(abi.ENOSPC),
			check: func(t *testing.T, tb *Table, g *fakeGuest, _ any) {
				if n := len(tb.Channels()); n != 3 {
					t.Fatalf("%d ports with MaxPort 3", n)
				}
			}},
		{name: "lowest free after close", setup: func(t *testing.T, tb *Table, g *fakeGuest) {
			allocUnbound(t, tb, 0)
			allocUnbound(t, tb, 0)
			call(t, tb, abi.EVTCHNOP_close, &Close{Port: 1}, nil)
		}, cmd: abi.EVTCHNOP_alloc_unbound, in: &AllocUnbound{Dom: abi.DOMID_SELF},
			check: func(t *testing.T, _ *Table, _ *fakeGuest, out any) {
				if p := out.(*AllocUnbound).Port; p != 1 {
					t.Fatalf("port %d, want 1", p)
				}
			}},
	})
}

func TestAllocGrowsInBuckets(t *testing.T) {
	tb, _ := newTable(t, 1, nil)
	for i := 1; i < portsPerBucket; i++ {
		allocUnbound(t, tb, 0)
	}
	// Port 64 is not valid yet: EINVAL, while a free port below is
	// valid (close of a free port is EINVAL too, unmask succeeds).
	if rc := call(t, tb, abi.EVTCHNOP_unmask, &Unmask{Port: 64}, nil); rc != ret(abi.EINVAL) {
		t.Fatalf("unmask(64) before growth = %d", rc)
	}
	if p := allocUnbound(t, tb, 0); p != 64 {
		t.Fatalf("port %d", p)
	}
	for _, p := range []uint32{65, 127} {
		if rc := call(t, tb, abi.EVTCHNOP_unmask, &Unmask{Port: p}, nil); rc != 0 {
			t.Fatalf("unmask(%d) after growth = %d", p, rc)
		}
		if s := status(t, tb, p); s.Status != abi.EVTCHNSTAT_closed {
			t.Fatalf("status(%d) = %+v", p, s)
		}
	}
	if rc := call(t, tb, abi.EVTCHNOP_unmask, &Unmask{Port: 128}, nil); rc != ret(abi.EINVAL) {
		t.Fatalf("unmask(128) = %d", rc)
	}
}

func TestMaxPortLimits(t *testing.T) {
	// 2-level: at most 4096 ports, whatever MaxPort says.
	tb, _ := newTable(t, 1, maxPort(10000))
	n := 0
	for call(t, tb, abi.EVTCHNOP_alloc_unbound, &AllocUnbound{Dom: abi.DOMID_SELF}, nil) == 0 {
		n++
	}
	if n != abi.NR_EVENT_CHANNELS_2L-1 {
		t.Fatalf("2-level domain allocated %d ports, want %d", n, abi.NR_EVENT_CHANNELS_2L-1)
	}
	// Default: libxl's event_channels = 1023.
	tb, _ = newTable(t, 1, nil)
	n = 0
	for call(t, tb, abi.EVTCHNOP_alloc_unbound, &AllocUnbound{Dom: abi.DOMID_SELF}, nil) == 0 {
		n++
	}
	if n != DefaultMaxPort {
		t.Fatalf("default domain allocated %d ports, want %d", n, DefaultMaxPort)
	}
}

func TestBindInterdomain(t *testing.T) {
	unboundSelf := func(t *testing.T, tb *Table, g *fakeGuest) { allocUnbound(t, tb, abi.DOMID_SELF) }
	runOpCases(t, []opCase{
		{name: "loopback", setup: unboundSelf, cmd: abi.EVTCHNOP_bind_interdomain,
			in: &BindInterdomain{RemoteDom: abi.DOMID_SELF, RemotePort: 1},
			check: func(t *testing.T, tb *Table, g *fakeGuest, out any) {
				l := out.(*BindInterdomain).LocalPort
				if l != 2 {
					t.Fatalf("local port %d", l)
				}
				wantStatus(1, Status{Status: abi.EVTCHNSTAT_interdomain, U0: 1, U1: 2})(t, tb, g, out)
				wantStatus(2, Status{Status: abi.EVTCHNSTAT_interdomain, U0: 1, U1: 1})(t, tb, g, out)
				// Xen makes the binder's port pending.
				if !g.pending(2) || g.pending(1) {
					t.Fatalf("pending after bind: local %v remote %v", g.pending(2), g.pending(1))
				}
			}},
		{name: "loopback by own id", setup: unboundSelf, cmd: abi.EVTCHNOP_bind_interdomain,
			in: &BindInterdomain{RemoteDom: 1, RemotePort: 1}},
		{name: "no such domain", setup: unboundSelf, cmd: abi.EVTCHNOP_bind_interdomain,
			in: &BindInterdomain{RemoteDom: 3, RemotePort: 1}, want: ret(abi.ESRCH)},
		{name: "remote waits for domain 0", setup: func(t *testing.T, tb *Table, g *fakeGuest) { allocUnbound(t, tb, 0) },
			cmd: abi.EVTCHNOP_bind_interdomain, in: &BindInterdomain{RemoteDom: abi.DOMID_SELF, RemotePort: 1}, want: ret(abi.EINVAL)},
		{name: "remote port invalid", setup: unboundSelf, cmd: abi.EVTCHNOP_bind_interdomain,
			in: &BindInterdomain{RemoteDom: abi.DOMID_SELF, RemotePort: 5000}, want: ret(abi.EINVAL)},
		{name: "remote port free", setup: unboundSelf, cmd: abi.EVTCHNOP_bind_interdomain,
			in: &BindInterdomain{RemoteDom: abi.DOMID_SELF, RemotePort: 9}, want: ret(abi.EINVAL)},
		{name: "remote port is the one being allocated", cmd: abi.EVTCHNOP_bind_interdomain,
			in: &BindInterdomain{RemoteDom: abi.DOMID_SELF, RemotePort: 1}, want: ret(abi.EINVAL)},
		{name: "remote port reserved", cmd: abi.EVTCHNOP_bind_interdomain,
			in: &BindInterdomain{RemoteDom: abi.DOMID_SELF, RemotePort: 0}, want: ret(abi.EINVAL)},
		{name: "remote already connected", setup: func(t *testing.T, tb *Table, g *fakeGuest) {
			bindLoopback(t, tb, allocUnbound(t, tb, abi.DOMID_SELF))
		}, cmd: abi.EVTCHNOP_bind_interdomain, in: &BindInterdomain{RemoteDom: abi.DOMID_SELF, RemotePort: 1}, want: ret(abi.EINVAL)},
		{name: "remote is an IPI", setup: func(t *testing.T, tb *Table, g *fakeGuest) { bindIPI(t, tb, 0) },
			cmd: abi.EVTCHNOP_bind_interdomain, in: &BindInterdomain{RemoteDom: abi.DOMID_SELF, RemotePort: 1}, want: ret(abi.EINVAL)},
		{name: "no local port left", cfg: maxPort(1), setup: unboundSelf, cmd: abi.EVTCHNOP_bind_interdomain,
			in: &BindInterdomain{RemoteDom: abi.DOMID_SELF, RemotePort: 1}, want: ret(abi.ENOSPC)},
		{name: "domain 0 endpoint", setup: func(t *testing.T, tb *Table, g *fakeGuest) {
			if _, err := tb.ListenBackend(nil); err != nil {
				t.Fatal(err)
			}
		}, cmd: abi.EVTCHNOP_bind_interdomain, in: &BindInterdomain{RemoteDom: 0, RemotePort: 1},
			check: wantStatus(1, Status{Status: abi.EVTCHNSTAT_interdomain, U0: 0, U1: 1})},
		{name: "domain 0 port free", cmd: abi.EVTCHNOP_bind_interdomain,
			in: &BindInterdomain{RemoteDom: 0, RemotePort: 1}, want: ret(abi.EINVAL)},
		{name: "domain 0 port connected", setup: func(t *testing.T, tb *Table, g *fakeGuest) {
			if _, err := tb.AllocBackend(nil); err != nil {
				t.Fatal(err)
			}
		}, cmd: abi.EVTCHNOP_bind_interdomain, in: &BindInterdomain{RemoteDom: 0, RemotePort: 1}, want: ret(abi.EINVAL)},
	})
}

func TestBindVIRQ(t *testing.T) {
	bound := func(virq, vcpu uint32) func(*testing.T, *Table, *fakeGuest) {
		return func(t *testing.T, tb *Table, g *fakeGuest) { bindVIRQ(t, tb, virq, vcpu) }
	}
	console := func(c *Config) { c.GlobalVIRQs = []uint32{abi.VIRQ_CONSOLE, abi.VIRQ_DOM_EXC} }
	v := func(virq, vcpu uint32) *BindVIRQ { return &BindVIRQ{VIRQ: virq, VCPU: vcpu} }
	cmd := uint32(abi.EVTCHNOP_bind_virq)
	runOpCases(t, []opCase{
		{name: "timer vcpu 0", cmd: cmd, in: v(abi.VIRQ_TIMER, 0),
			check: wantStatus(1, Status{Status: abi.EVTCHNSTAT_virq, VCPU: 0, U0: abi.VIRQ_TIMER})},
		{name: "timer vcpu 1", cmd: cmd, in: v(abi.VIRQ_TIMER, 1),
			check: wantStatus(1, Status{Status: abi.EVTCHNSTAT_virq, VCPU: 1, U0: abi.VIRQ_TIMER})},
		{name: "timer on both vcpus", setup: bound(abi.VIRQ_TIMER, 0), cmd: cmd, in: v(abi.VIRQ_TIMER, 1)},
		{name: "timer twice", setup: bound(abi.VIRQ_TIMER, 1), cmd: cmd, in: v(abi.VIRQ_TIMER, 1), want: ret(abi.EEXIST)},
		{name: "debug no such vcpu", cmd: cmd, in: v(abi.VIRQ_DEBUG, 2), want: ret(abi.ENOENT)},
		{name: "xenoprof vcpu 1", cmd: cmd, in: v(abi.VIRQ_XENOPROF, 1)},
		{name: "xenpmu vcpu 1", cmd: cmd, in: v(abi.VIRQ_XENPMU, 1)},
		{name: "virq 24", cmd: cmd, in: v(24, 0), want: ret(abi.EINVAL)},
		{name: "virq -1", cmd: cmd, in: v(0xffffffff, 0), want: ret(abi.EINVAL)},
		{name: "global not handler", cmd: cmd, in: v(abi.VIRQ_CONSOLE, 0), want: ret(abi.EBUSY)},
		{name: "global on vcpu 1", cfg: console, cmd: cmd, in: v(abi.VIRQ_CONSOLE, 1), want: ret(abi.EINVAL)},
		{name: "global on absent vcpu", cfg: console, cmd: cmd, in: v(abi.VIRQ_CONSOLE, 9), want: ret(abi.EINVAL)},
		{name: "global handler", cfg: console, cmd: cmd, in: v(abi.VIRQ_CONSOLE, 0),
			check: wantStatus(1, Status{Status: abi.EVTCHNSTAT_virq, U0: abi.VIRQ_CONSOLE})},
		{name: "dom_exc handler", cfg: console, cmd: cmd, in: v(abi.VIRQ_DOM_EXC, 0)},
		{name: "global twice", cfg: console, setup: bound(abi.VIRQ_CONSOLE, 0), cmd: cmd, in: v(abi.VIRQ_CONSOLE, 0), want: ret(abi.EEXIST)},
		{name: "global twice after bind_vcpu", cfg: console, setup: func(t *testing.T, tb *Table, g *fakeGuest) {
			p := bindVIRQ(t, tb, abi.VIRQ_CONSOLE, 0)
			if rc := call(t, tb, abi.EVTCHNOP_bind_vcpu, &BindVCPU{Port: p, VCPU: 1}, nil); rc != 0 {
				t.Fatal(rc)
			}
		}, cmd: cmd, in: v(abi.VIRQ_CONSOLE, 0), want: ret(abi.EEXIST)},
		{name: "arch virq is global", cmd: cmd, in: v(abi.VIRQ_ARCH_0, 0), want: ret(abi.EBUSY)},
		{name: "undefined virq 5 is global", cmd: cmd, in: v(5, 0), want: ret(abi.EBUSY)},
		{name: "argo per domain", cmd: cmd, in: v(abi.VIRQ_ARGO, 0)},
		{name: "argo on vcpu 1", cmd: cmd, in: v(abi.VIRQ_ARGO, 1), want: ret(abi.EINVAL)},
		{name: "full", cfg: maxPort(1), setup: bound(abi.VIRQ_TIMER, 0), cmd: cmd, in: v(abi.VIRQ_DEBUG, 0), want: ret(abi.ENOSPC)},
		{name: "rebind after close", setup: func(t *testing.T, tb *Table, g *fakeGuest) {
			p := bindVIRQ(t, tb, abi.VIRQ_TIMER, 1)
			if rc := call(t, tb, abi.EVTCHNOP_close, &Close{Port: p}, nil); rc != 0 {
				t.Fatal(rc)
			}
		}, cmd: cmd, in: v(abi.VIRQ_TIMER, 1)},
	})
	if _, err := New(newFakeGuest(1), Config{DomID: 1, GlobalVIRQs: []uint32{abi.VIRQ_TIMER}}); err == nil {
		t.Fatal("New accepted a per-vCPU VIRQ as global")
	}
}

func TestBindIPIAndPIRQ(t *testing.T) {
	runOpCases(t, []opCase{
		{name: "ipi vcpu 1", cmd: abi.EVTCHNOP_bind_ipi, in: &BindIPI{VCPU: 1},
			check: wantStatus(1, Status{Status: abi.EVTCHNSTAT_ipi, VCPU: 1})},
		{name: "ipi absent vcpu", cmd: abi.EVTCHNOP_bind_ipi, in: &BindIPI{VCPU: 2}, want: ret(abi.ENOENT)},
		{name: "ipi full", cfg: maxPort(1), setup: func(t *testing.T, tb *Table, g *fakeGuest) { bindIPI(t, tb, 0) },
			cmd: abi.EVTCHNOP_bind_ipi, in: &BindIPI{VCPU: 0}, want: ret(abi.ENOSPC)},
		{name: "pirq 0", cmd: abi.EVTCHNOP_bind_pirq, in: &BindPIRQ{PIRQ: 0}, want: ret(abi.EPERM)},
		{name: "pirq last", cmd: abi.EVTCHNOP_bind_pirq, in: &BindPIRQ{PIRQ: DefaultNrPIRQs - 1, Flags: BindPIRQWillShare}, want: ret(abi.EPERM)},
		{name: "pirq beyond nr_pirqs", cmd: abi.EVTCHNOP_bind_pirq, in: &BindPIRQ{PIRQ: DefaultNrPIRQs}, want: ret(abi.EINVAL)},
		{name: "pirq configured", cfg: func(c *Config) { c.NrPIRQs = 8 }, cmd: abi.EVTCHNOP_bind_pirq, in: &BindPIRQ{PIRQ: 8}, want: ret(abi.EINVAL)},
	})
}

func TestClose(t *testing.T) {
	cmd := uint32(abi.EVTCHNOP_close)
	runOpCases(t, []opCase{
		{name: "reserved port 0", cmd: cmd, in: &Close{Port: 0}, want: ret(abi.EINVAL)},
		{name: "free valid port", cmd: cmd, in: &Close{Port: 5}, want: ret(abi.EINVAL)},
		{name: "invalid port", cmd: cmd, in: &Close{Port: 64}, want: ret(abi.EINVAL)},
		{name: "huge port", cmd: cmd, in: &Close{Port: 0xffffffff}, want: ret(abi.EINVAL)},
		{name: "twice", setup: func(t *testing.T, tb *Table, g *fakeGuest) {
			p := bindIPI(t, tb, 0)
			call(t, tb, cmd, &Close{Port: p}, nil)
		}, cmd: cmd, in: &Close{Port: 1}, want: ret(abi.EINVAL)},
		{name: "unbound", setup: func(t *testing.T, tb *Table, g *fakeGuest) { allocUnbound(t, tb, 0) },
			cmd: cmd, in: &Close{Port: 1}, check: wantStatus(1, Status{Status: abi.EVTCHNSTAT_closed})},
		{name: "ipi resets vcpu and pending", setup: func(t *testing.T, tb *Table, g *fakeGuest) {
			p := bindIPI(t, tb, 1)
			send(t, tb, p)
			if !g.pending(p) {
				t.Fatal("IPI not pending")
			}
		}, cmd: cmd, in: &Close{Port: 1}, check: func(t *testing.T, tb *Table, g *fakeGuest, out any) {
			wantStatus(1, Status{Status: abi.EVTCHNSTAT_closed, VCPU: 0})(t, tb, g, out)
			if g.pending(1) {
				t.Fatal("close left the port pending")
			}
		}},
		{name: "virq frees the binding", setup: func(t *testing.T, tb *Table, g *fakeGuest) { bindVIRQ(t, tb, abi.VIRQ_TIMER, 1) },
			cmd: cmd, in: &Close{Port: 1}, check: func(t *testing.T, tb *Table, g *fakeGuest, _ any) {
				if tb.VIRQBound(abi.VIRQ_TIMER, 1) {
					t.Fatal("VIRQ still bound")
				}
			}},
		{name: "loopback leaves remote unbound", setup: func(t *testing.T, tb *Table, g *fakeGuest) {
			bindLoopback(t, tb, allocUnbound(t, tb, abi.DOMID_SELF))
		}, cmd: cmd, in: &Close{Port: 2}, check: func(t *testing.T, tb *Table, g *fakeGuest, out any) {
			wantStatus(1, Status{Status: abi.EVTCHNSTAT_unbound, U0: 1})(t, tb, g, out)
			wantStatus(2, Status{Status: abi.EVTCHNSTAT_closed})(t, tb, g, out)
			// The unbound end can be bound again.
			if p := bindLoopback(t, tb, 1); p != 2 {
				t.Fatalf("rebound at %d", p)
			}
		}},
		{name: "loopback other end", setup: func(t *testing.T, tb *Table, g *fakeGuest) {
			bindLoopback(t, tb, allocUnbound(t, tb, abi.DOMID_SELF))
		}, cmd: cmd, in: &Close{Port: 1}, check: wantStatus(2, Status{Status: abi.EVTCHNSTAT_unbound, U0: 1})},
	})
}

func TestSend(t *testing.T) {
	cmd := uint32(abi.EVTCHNOP_send)
	runOpCases(t, []opCase{
		{name: "reserved", cmd: cmd, in: &Send{Port: 0}, want: ret(abi.EINVAL)},
		{name: "free", cmd: cmd, in: &Send{Port: 3}, want: ret(abi.EINVAL)},
		{name: "invalid", cmd: cmd, in: &Send{Port: 64}, want: ret(abi.EINVAL)},
		{name: "virq", setup: func(t *testing.T, tb *Table, g *fakeGuest) { bindVIRQ(t, tb, abi.VIRQ_TIMER, 0) },
			cmd: cmd, in: &Send{Port: 1}, want: ret(abi.EINVAL)},
		{name: "unbound is dropped", setup: func(t *testing.T, tb *Table, g *fakeGuest) { allocUnbound(t, tb, 0) },
			cmd: cmd, in: &Send{Port: 1}, check: func(t *testing.T, tb *Table, g *fakeGuest, _ any) {
				if g.pending(1) || len(g.takeKicks()) != 0 {
					t.Fatal("send on unbound port delivered something")
				}
			}},
		{name: "ipi", setup: func(t *testing.T, tb *Table, g *fakeGuest) { bindIPI(t, tb, 1) },
			cmd: cmd, in: &Send{Port: 1}, check: func(t *testing.T, tb *Table, g *fakeGuest, _ any) {
				if !g.pending(1) || !g.upcall(1) || g.upcall(0) {
					t.Fatal("IPI not delivered on vcpu 1")
				}
			}},
		{name: "loopback", setup: func(t *testing.T, tb *Table, g *fakeGuest) {
			bindLoopback(t, tb, allocUnbound(t, tb, abi.DOMID_SELF))
			g.clearPending(2)
		}, cmd: cmd, in: &Send{Port: 2}, check: func(t *testing.T, tb *Table, g *fakeGuest, _ any) {
			if !g.pending(1) || g.pending(2) {
				t.Fatalf("loopback send: pending 1=%v 2=%v", g.pending(1), g.pending(2))
			}
		}},
	})
}

func TestStatus(t *testing.T) {
	cmd := uint32(abi.EVTCHNOP_status)
	runOpCases(t, []opCase{
		{name: "closed port", cmd: cmd, in: &Status{Dom: abi.DOMID_SELF, Port: 7},
			check: func(t *testing.T, _ *Table, _ *fakeGuest, out any) {
				if s := out.(*Status); s.Status != abi.EVTCHNSTAT_closed || s.VCPU != 0 {
					t.Fatalf("%+v", s)
				}
			}},
		{name: "reserved port", cmd: cmd, in: &Status{Dom: 1, Port: 0}},
		{name: "invalid port", cmd: cmd, in: &Status{Dom: abi.DOMID_SELF, Port: 64}, want: ret(abi.EINVAL)},
		{name: "no such domain", cmd: cmd, in: &Status{Dom: 2, Port: 1}, want: ret(abi.ESRCH)},
		{name: "domain 0 invalid port", cmd: cmd, in: &Status{Dom: 0, Port: portsPerBucket}, want: ret(abi.EINVAL)},
		{name: "domain 0 valid free port", cmd: cmd, in: &Status{Dom: 0, Port: 1}, want: ret(abi.EPERM)},
		{name: "domain 0 port in use", setup: func(t *testing.T, tb *Table, g *fakeGuest) { tb.AllocBackend(nil) },
			cmd: cmd, in: &Status{Dom: 0, Port: 1}, want: ret(abi.EPERM)},
		{name: "interdomain to domain 0", setup: func(t *testing.T, tb *Table, g *fakeGuest) {
			tb.ListenBackend(nil)
			tb.AllocBackend(nil)
		}, cmd: cmd, in: &Status{Dom: abi.DOMID_SELF, Port: 1},
			check: func(t *testing.T, _ *Table, _ *fakeGuest, out any) {
				if s := out.(*Status); s.Status != abi.EVTCHNSTAT_interdomain || s.U0 != 0 || s.U1 != 2 {
					t.Fatalf("%+v", s)
				}
			}},
	})
}

func TestBindVCPU(t *testing.T) {
	cmd := uint32(abi.EVTCHNOP_bind_vcpu)
	console := func(c *Config) { c.GlobalVIRQs = []uint32{abi.VIRQ_CONSOLE} }
	runOpCases(t, []opCase{
		{name: "absent vcpu", setup: func(t *testing.T, tb *Table, g *fakeGuest) { allocUnbound(t, tb, 0) },
			cmd: cmd, in: &BindVCPU{Port: 1, VCPU: 2}, want: ret(abi.ENOENT)},
		{name: "absent vcpu before bad port", cmd: cmd, in: &BindVCPU{Port: 999, VCPU: 2}, want: ret(abi.ENOENT)},
		{name: "invalid port", cmd: cmd, in: &BindVCPU{Port: 999, VCPU: 1}, want: ret(abi.EINVAL)},
		{name: "free port", cmd: cmd, in: &BindVCPU{Port: 3, VCPU: 1}, want: ret(abi.EINVAL)},
		{name: "unbound", setup: func(t *testing.T, tb *Table, g *fakeGuest) { allocUnbound(t, tb, 0) },
			cmd: cmd, in: &BindVCPU{Port: 1, VCPU: 1}, check: wantStatus(1, Status{Status: abi.EVTCHNSTAT_unbound, VCPU: 1})},
		{name: "interdomain", setup: func(t *testing.T, tb *Table, g *fakeGuest) { bindLoopback(t, tb, allocUnbound(t, tb, abi.DOMID_SELF)) },
			cmd: cmd, in: &BindVCPU{Port: 2, VCPU: 1}},
		{name: "ipi", setup: func(t *testing.T, tb *Table, g *fakeGuest) { bindIPI(t, tb, 0) },
			cmd: cmd, in: &BindVCPU{Port: 1, VCPU: 1}, want: ret(abi.EINVAL)},
		{name: "per-vcpu virq", setup: func(t *testing.T, tb *Table, g *fakeGuest) { bindVIRQ(t, tb, abi.VIRQ_TIMER, 0) },
			cmd: cmd, in: &BindVCPU{Port: 1, VCPU: 1}, want: ret(abi.EINVAL)},
		{name: "global virq", cfg: console, setup: func(t *testing.T, tb *Table, g *fakeGuest) { bindVIRQ(t, tb, abi.VIRQ_CONSOLE, 0) },
			cmd: cmd, in: &BindVCPU{Port: 1, VCPU: 1}, check: wantStatus(1, Status{Status: abi.EVTCHNSTAT_virq, VCPU: 1, U0: abi.VIRQ_CONSOLE})},
		{name: "domain virq", setup: func(t *testing.T, tb *Table, g *fakeGuest) { bindVIRQ(t, tb, abi.VIRQ_ARGO, 0) },
			cmd: cmd, in: &BindVCPU{Port: 1, VCPU: 1}},
	})
}

func TestUnmaskResetPriorityErrors(t *testing.T) {
	runOpCases(t, []opCase{
		{name: "unmask reserved", cmd: abi.EVTCHNOP_unmask, in: &Unmask{Port: 0}},
		{name: "unmask free", cmd: abi.EVTCHNOP_unmask, in: &Unmask{Port: 63}},
		{name: "unmask invalid", cmd: abi.EVTCHNOP_unmask, in: &Unmask{Port: 64}, want: ret(abi.EINVAL)},
		{name: "reset domain 0", cmd: abi.EVTCHNOP_reset, in: &Reset{Dom: 0}, want: ret(abi.EPERM)},
		{name: "reset no such domain", cmd: abi.EVTCHNOP_reset, in: &Reset{Dom: 4}, want: ret(abi.ESRCH)},
		{name: "reset self", setup: func(t *testing.T, tb *Table, g *fakeGuest) {
			bindIPI(t, tb, 1)
			bindVIRQ(t, tb, abi.VIRQ_TIMER, 0)
			bindLoopback(t, tb, allocUnbound(t, tb, abi.DOMID_SELF))
		}, cmd: abi.EVTCHNOP_reset, in: &Reset{Dom: abi.DOMID_SELF}, check: func(t *testing.T, tb *Table, g *fakeGuest, _ any) {
			if ch := tb.Channels(); len(ch) != 0 {
				t.Fatalf("after reset: %+v", ch)
			}
			if tb.VIRQBound(abi.VIRQ_TIMER, 0) {
				t.Fatal("VIRQ still bound")
			}
			if p := bindIPI(t, tb, 0); p != 1 {
				t.Fatalf("first port after reset %d", p)
			}
		}},
		{name: "reset own id", cmd: abi.EVTCHNOP_reset, in: &Reset{Dom: 1}},
		{name: "reset_cont with none in progress", cmd: abi.EVTCHNOP_reset_cont, in: &Reset{Dom: abi.DOMID_SELF}, want: ret(abi.EBUSY)},
		{name: "reset_cont domain 0", cmd: abi.EVTCHNOP_reset_cont, in: &Reset{Dom: 0}, want: ret(abi.EPERM)},
		{name: "set_priority 2-level", setup: func(t *testing.T, tb *Table, g *fakeGuest) { bindIPI(t, tb, 0) },
			cmd: abi.EVTCHNOP_set_priority, in: &SetPriority{Port: 1, Priority: 3}, want: ret(abi.ENOSYS)},
		{name: "set_priority invalid port first", cmd: abi.EVTCHNOP_set_priority, in: &SetPriority{Port: 100, Priority: 3}, want: ret(abi.EINVAL)},
		{name: "expand_array 2-level", cmd: abi.EVTCHNOP_expand_array, in: &ExpandArray{ArrayGFN: 1}, want: ret(abi.EOPNOTSUPP)},
		{name: "init_control without FIFO", cfg: func(c *Config) { c.NoFIFO = true },
			cmd: abi.EVTCHNOP_init_control, in: &InitControl{ControlGFN: 1}, want: ret(abi.EOPNOTSUPP)},
		{name: "init_control bad gfn", cmd: abi.EVTCHNOP_init_control, in: &InitControl{ControlGFN: 99}, want: ret(abi.EINVAL),
			check: func(t *testing.T, tb *Table, g *fakeGuest, out any) {
				if out.(*InitControl).LinkBits != 0 {
					t.Fatal("link_bits written on failure")
				}
				if tb.FIFO() {
					t.Fatal("failed init_control switched to FIFO")
				}
			}},
		{name: "init_control absent vcpu", cmd: abi.EVTCHNOP_init_control, in: &InitControl{ControlGFN: 1, VCPU: 2}, want: ret(abi.ENOENT)},
		{name: "init_control offset crosses page", setup: addPages(1), cmd: abi.EVTCHNOP_init_control,
			in: &InitControl{ControlGFN: 1, Offset: abi.XEN_PAGE_SIZE - ControlBlockSize + 8}, want: ret(abi.EINVAL)},
		{name: "init_control offset last", setup: addPages(1), cmd: abi.EVTCHNOP_init_control,
			in: &InitControl{ControlGFN: 1, Offset: abi.XEN_PAGE_SIZE - ControlBlockSize},
			check: func(t *testing.T, tb *Table, g *fakeGuest, out any) {
				if out.(*InitControl).LinkBits != abi.EVTCHN_FIFO_LINK_BITS {
					t.Fatalf("link_bits %d", out.(*InitControl).LinkBits)
				}
			}},
		{name: "init_control offset misaligned", setup: addPages(1), cmd: abi.EVTCHNOP_init_control,
			in: &InitControl{ControlGFN: 1, Offset: 4}, want: ret(abi.EINVAL)},
		{name: "init_control twice", setup: func(t *testing.T, tb *Table, g *fakeGuest) {
			g.addPage(1)
			if rc := call(t, tb, abi.EVTCHNOP_init_control, &InitControl{ControlGFN: 1}, nil); rc != 0 {
				t.Fatal(rc)
			}
		}, cmd: abi.EVTCHNOP_init_control, in: &InitControl{ControlGFN: 1}, want: ret(abi.EINVAL)},
	})
}

func addPages(gfns ...uint64) func(*testing.T, *Table, *fakeGuest) {
	return func(t *testing.T, tb *Table, g *fakeGuest) {
		for _, gfn := range gfns {
			g.addPage(gfn)
		}
	}
}

func TestNewValidates(t *testing.T) {
	for _, c := range []struct {
		name string
		g    Guest
		cfg  Config
	}{
		{"nil guest", nil, Config{DomID: 1}},
		{"dom0", newFakeGuest(1), Config{DomID: 0}},
		{"reserved id", newFakeGuest(1), Config{DomID: abi.DOMID_SELF}},
		{"no vcpus", newFakeGuest(0), Config{DomID: 1}},
		{"short shared_info", &fakeGuest{shared: make([]byte, 100), n: 1}, Config{DomID: 1}},
		{"bad global virq", newFakeGuest(1), Config{DomID: 1, GlobalVIRQs: []uint32{30}}},
	} {
		if _, err := New(c.g, c.cfg); err == nil {
			t.Errorf("%s: New succeeded", c.name)
		}
	}
}
