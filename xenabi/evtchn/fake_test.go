package evtchn

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sort"
	"sync"
	"testing"

	"github.com/xenvmm/xenvmm/xenabi/abi"
	"github.com/xenvmm/xenvmm/xenabi/guestmem"
)

// fakeGuest is a Guest over plain byte slices: a shared_info page, vcpu_info
// overrides (VCPUOP_register_vcpu_info), guest frames by gfn, and a record
// of Kicks.
type fakeGuest struct {
	shared []byte
	n      int

	mu    sync.Mutex
	vi    map[int][]byte
	pages map[uint64][]byte
	kicks []int
}

func newFakeGuest(n int) *fakeGuest {
	return &fakeGuest{shared: make([]byte, abi.XEN_PAGE_SIZE), n: n, vi: map[int][]byte{}, pages: map[uint64][]byte{}}
}

func (g *fakeGuest) SharedInfo() []byte { return g.shared }
func (g *fakeGuest) NumVCPUs() int      { return g.n }

func (g *fakeGuest) VCPUInfo(v int) []byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	if b, ok := g.vi[v]; ok {
		return b
	}
	if v < abi.XEN_LEGACY_MAX_VCPUS {
		return g.shared[v*abi.VCPUInfoSize : (v+1)*abi.VCPUInfoSize]
	}
	return nil
}

func (g *fakeGuest) Kick(v int) {
	g.mu.Lock()
	g.kicks = append(g.kicks, v)
	g.mu.Unlock()
}

func (g *fakeGuest) Page(gfn uint64) ([]byte, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if p, ok := g.pages[gfn]; ok {
		return p, nil
	}
	return nil, fmt.Errorf("no frame %#x", gfn)
}

func (g *fakeGuest) addPage(gfn uint64) []byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	p := make([]byte, abi.XEN_PAGE_SIZE)
	g.pages[gfn] = p
	return p
}

// takeKicks returns the Kicks since the last call, sorted.
func (g *fakeGuest) takeKicks() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	k := g.kicks
	g.kicks = nil
	sort.Ints(k)
	return k
}

// Guest-side views of the 2-level state.

func (g *fakeGuest) bit(base uint64, port uint32) bool {
	w, _ := guestmem.Load64(g.shared, base+uint64(port/64)*8)
	return w&(1<<(port%64)) != 0
}
func (g *fakeGuest) pending(port uint32) bool { return g.bit(abi.SharedInfoEvtchnPending, port) }
func (g *fakeGuest) masked(port uint32) bool  { return g.bit(abi.SharedInfoEvtchnMask, port) }
func (g *fakeGuest) setMask(port uint32) {
	guestmem.Or64(g.shared, abi.SharedInfoEvtchnMask+uint64(port/64)*8, 1<<(port%64))
}
func (g *fakeGuest) clearPending(port uint32) {
	guestmem.And64(g.shared, abi.SharedInfoEvtchnPending+uint64(port/64)*8, ^uint64(1<<(port%64)))
}
func (g *fakeGuest) sel(v int) uint64 {
	s, _ := guestmem.Load64(g.VCPUInfo(v), abi.VCPUInfoPendingSel)
	return s
}
func (g *fakeGuest) upcall(v int) bool { return g.VCPUInfo(v)[abi.VCPUInfoUpcallPending] != 0 }

// ack is what a guest's upcall handler does first: clear
// evtchn_upcall_pending and take the selector.
func (g *fakeGuest) ack(v int) uint64 {
	vi := g.VCPUInfo(v)
	guestmem.Store8(vi, abi.VCPUInfoUpcallPending, 0)
	s, _ := guestmem.Load64(vi, abi.VCPUInfoPendingSel)
	guestmem.Store64(vi, abi.VCPUInfoPendingSel, 0)
	return s
}

func newTable(t testing.TB, nvcpus int, mod func(*Config)) (*Table, *fakeGuest) {
	t.Helper()
	g := newFakeGuest(nvcpus)
	cfg := Config{DomID: 1}
	if mod != nil {
		mod(&cfg)
	}
	tb, err := New(g, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tb, g
}

// call runs the hypercall with in (one of the argument structs) encoded by
// encoding/binary, independently of args.go, and decodes the argument
// bytes after the call into out (same type as in) if out is not nil.
func call(t testing.TB, tb *Table, cmd uint32, in, out any) int64 {
	t.Helper()
	var buf bytes.Buffer
	if err := binary.Write(&buf, binary.LittleEndian, in); err != nil {
		t.Fatal(err)
	}
	arg := buf.Bytes()
	rc := tb.Hypercall(cmd, arg)
	if out != nil {
		if err := binary.Read(bytes.NewReader(arg), binary.LittleEndian, out); err != nil {
			t.Fatal(err)
		}
	}
	return rc
}

func ret(e abi.Errno) int64 { return -int64(e) }

// mustPort runs a binding hypercall that must succeed and returns the port
// from its OUT field.
func allocUnbound(t testing.TB, tb *Table, remote uint16) uint32 {
	t.Helper()
	var out AllocUnbound
	if rc := call(t, tb, abi.EVTCHNOP_alloc_unbound, &AllocUnbound{Dom: abi.DOMID_SELF, RemoteDom: remote}, &out); rc != 0 {
		t.Fatalf("alloc_unbound: %d", rc)
	}
	return out.Port
}

func bindIPI(t testing.TB, tb *Table, vcpu uint32) uint32 {
	t.Helper()
	var out BindIPI
	if rc := call(t, tb, abi.EVTCHNOP_bind_ipi, &BindIPI{VCPU: vcpu}, &out); rc != 0 {
		t.Fatalf("bind_ipi: %d", rc)
	}
	return out.Port
}

func bindVIRQ(t testing.TB, tb *Table, virq, vcpu uint32) uint32 {
	t.Helper()
	var out BindVIRQ
	if rc := call(t, tb, abi.EVTCHNOP_bind_virq, &BindVIRQ{VIRQ: virq, VCPU: vcpu}, &out); rc != 0 {
		t.Fatalf("bind_virq(%d, %d): %d", virq, vcpu, rc)
	}
	return out.Port
}

func bindLoopback(t testing.TB, tb *Table, rport uint32) uint32 {
	t.Helper()
	var out BindInterdomain
	if rc := call(t, tb, abi.EVTCHNOP_bind_interdomain, &BindInterdomain{RemoteDom: abi.DOMID_SELF, RemotePort: rport}, &out); rc != 0 {
		t.Fatalf("bind_interdomain(self, %d): %d", rport, rc)
	}
	return out.LocalPort
}

func status(t testing.TB, tb *Table, port uint32) Status {
	t.Helper()
	var out Status
	if rc := call(t, tb, abi.EVTCHNOP_status, &Status{Dom: abi.DOMID_SELF, Port: port}, &out); rc != 0 {
		t.Fatalf("status(%d): %d", port, rc)
	}
	return out
}

func send(t testing.TB, tb *Table, port uint32) {
	t.Helper()
	if rc := call(t, tb, abi.EVTCHNOP_send, &Send{Port: port}, nil); rc != 0 {
		t.Fatalf("send(%d): %d", port, rc)
	}
}

// checkInvariants verifies the table's internal consistency: the links
// between the two ends of every channel, the VIRQ map, and the FIFO state.
func checkInvariants(tb *Table) error {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if len(tb.ch)%portsPerBucket != 0 || len(tb.ch) == 0 {
		return fmt.Errorf("valid ports %d not whole buckets", len(tb.ch))
	}
	if tb.ch[0].state != ecsReserved {
		return fmt.Errorf("port 0 state %d", tb.ch[0].state)
	}
	for p := range tb.ch {
		port := uint32(p)
		c := &tb.ch[p]
		if c.state == ecsFree || c.state == ecsReserved {
			continue
		}
		if port > tb.cfg.MaxPort || port >= tb.maxEvtchns() {
			return fmt.Errorf("port %d in use beyond limits", port)
		}
		if int(c.notify) >= tb.nvcpus {
			return fmt.Errorf("port %d notify vcpu %d", port, c.notify)
		}
		switch c.state {
		case ecsInterdomain:
			if c.remoteDom == 0 {
				ep := tb.dom0Port(c.remotePort)
				if ep == nil || ep.state != EndpointConnected || ep.guestPort != port || ep.port != c.remotePort {
					return fmt.Errorf("port %d: dom0 peer %d inconsistent", port, c.remotePort)
				}
			} else {
				if c.remoteDom != tb.dom || c.remotePort == port || !tb.valid(c.remotePort) {
					return fmt.Errorf("port %d: loopback peer %d/%d", port, c.remoteDom, c.remotePort)
				}
				r := &tb.ch[c.remotePort]
				if r.state != ecsInterdomain || r.remoteDom != tb.dom || r.remotePort != port {
					return fmt.Errorf("port %d: loopback peer %d not linked back", port, c.remotePort)
				}
			}
		case ecsVIRQ:
			v := c.notify
			if getVIRQType(c.virq) != virqVCPU {
				v = 0
			}
			if tb.virqPort[v][c.virq] != port {
				return fmt.Errorf("port %d: VIRQ %d not in vcpu %d's map", port, c.virq, v)
			}
		case ecsPIRQ:
			return fmt.Errorf("port %d bound to a PIRQ", port)
		}
		if tb.fifo != nil && c.priority > abi.EVTCHN_FIFO_PRIORITY_MIN {
			return fmt.Errorf("port %d priority %d", port, c.priority)
		}
	}
	for v := range tb.virqPort {
		for virq, port := range tb.virqPort[v] {
			if port == 0 {
				continue
			}
			if !tb.valid(port) || tb.ch[port].state != ecsVIRQ || tb.ch[port].virq != uint32(virq) {
				return fmt.Errorf("vcpu %d VIRQ %d → port %d not a VIRQ channel", v, virq, port)
			}
		}
	}
	for p, ep := range tb.dom0 {
		if ep == nil {
			continue
		}
		if p == 0 || ep.port != uint32(p) {
			return fmt.Errorf("dom0 port %d holds endpoint %d", p, ep.port)
		}
		if ep.state == EndpointConnected {
			if !tb.valid(ep.guestPort) {
				return fmt.Errorf("dom0 port %d: guest port %d invalid", p, ep.guestPort)
			}
			c := &tb.ch[ep.guestPort]
			if c.state != ecsInterdomain || c.remoteDom != 0 || c.remotePort != ep.port {
				return fmt.Errorf("dom0 port %d: guest port %d not linked back", p, ep.guestPort)
			}
		} else if ep.state != EndpointUnbound {
			return fmt.Errorf("dom0 port %d in table in state %v", p, ep.state)
		}
	}
	for v, on := range tb.pollMask {
		if !on && tb.pollPort[v] != 0 {
			return fmt.Errorf("vcpu %d not polling but poll port %d", v, tb.pollPort[v])
		}
	}
	if f := tb.fifo; f != nil {
		if len(f.pages) > maxEventArrayPages || len(f.vcpus) != tb.nvcpus {
			return fmt.Errorf("fifo: %d pages, %d vcpus", len(f.pages), len(f.vcpus))
		}
		for v := range f.vcpus {
			for q := range f.vcpus[v].q {
				if tail := f.vcpus[v].q[q].tail; uint64(tail) >= uint64(len(f.pages))*eventWordsPerPage && tail != 0 {
					return fmt.Errorf("fifo: vcpu %d queue %d tail %d beyond array", v, q, tail)
				}
			}
		}
	}
	return nil
}
