package evtchn

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/xenvmm/xenvmm/xenabi/abi"
)

// The fuzzer runs a program of operations from its input against a
// two-vCPU table: hypercalls with arbitrary command and argument bytes
// (native and compat), the VMM's calls (endpoints, VIRQs, polls), and a
// hostile guest scribbling on the shared pages. After each step the
// result must be 0 or an errno Xen can return, and the table's invariants
// must hold.

// Program opcodes (first byte of each step).
const (
	fzCompat   = 0xd0 // HypercallCompat(next 28 bytes)
	fzAlloc    = 0xe0 // AllocBackend
	fzListen   = 0xe1 // ListenBackend
	fzBind     = 0xe2 // BindBackend(u32)
	fzNotify   = 0xe3 // endpoints[u8].Notify
	fzClose    = 0xe4 // endpoints[u8].Close
	fzVIRQ     = 0xe5 // RaiseVIRQ(u8, u8)
	fzPoll     = 0xe6 // Poll(u8, u32 ports[u8%4])
	fzStopPoll = 0xe7 // StopPoll(u8)
	fzScribble = 0xe8 // write u64 at u16 offset of frame u8 (0: shared_info)
	fzMoved    = 0xe9 // VCPUInfoMoved(u8)
	// Anything else: Hypercall(op & 0x0f, next ArgSize bytes).
)

var knownErrnos = map[int64]bool{0: true}

func init() {
	for _, e := range []abi.Errno{abi.EINVAL, abi.ENOSPC, abi.ENOENT, abi.EEXIST, abi.ESRCH, abi.EPERM,
		abi.EBUSY, abi.ENOSYS, abi.EFAULT, abi.EOPNOTSUPP, abi.EACCES} {
		knownErrnos[-int64(e)] = true
	}
}

type fuzzReader struct{ b []byte }

func (r *fuzzReader) bytes(n int) []byte {
	if n > len(r.b) {
		n = len(r.b)
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *fuzzReader) u8() uint8 {
	if b := r.bytes(1); len(b) == 1 {
		return b[0]
	}
	return 0
}

func (r *fuzzReader) u32() uint32 {
	var b [4]byte
	copy(b[:], r.bytes(4))
	return le.Uint32(b[:])
}

func FuzzHypercall(f *testing.F) {
	enc := func(parts ...any) []byte {
		var buf bytes.Buffer
		for _, p := range parts {
			binary.Write(&buf, binary.LittleEndian, p)
		}
		return buf.Bytes()
	}
	op := func(cmd uint8) uint8 { return cmd }
	f.Add(enc(op(abi.EVTCHNOP_alloc_unbound), &AllocUnbound{Dom: abi.DOMID_SELF, RemoteDom: abi.DOMID_SELF},
		op(abi.EVTCHNOP_bind_interdomain), &BindInterdomain{RemoteDom: abi.DOMID_SELF, RemotePort: 1},
		op(abi.EVTCHNOP_send), &Send{Port: 2}, op(abi.EVTCHNOP_close), &Close{Port: 1},
		op(abi.EVTCHNOP_status), &Status{Dom: abi.DOMID_SELF, Port: 2}))
	f.Add(enc(op(abi.EVTCHNOP_bind_virq), &BindVIRQ{VIRQ: abi.VIRQ_TIMER, VCPU: 1},
		op(abi.EVTCHNOP_bind_virq), &BindVIRQ{VIRQ: abi.VIRQ_CONSOLE},
		op(abi.EVTCHNOP_bind_vcpu), &BindVCPU{Port: 2, VCPU: 1},
		uint8(fzVIRQ), uint8(abi.VIRQ_TIMER), uint8(1), uint8(fzVIRQ), uint8(abi.VIRQ_CONSOLE), uint8(0),
		op(abi.EVTCHNOP_close), &Close{Port: 2}, op(abi.EVTCHNOP_reset), &Reset{Dom: abi.DOMID_SELF}))
	f.Add(enc(op(abi.EVTCHNOP_bind_ipi), &BindIPI{VCPU: 1}, uint8(fzPoll), uint8(1), uint8(1), uint32(1),
		op(abi.EVTCHNOP_send), &Send{Port: 1}, uint8(fzStopPoll), uint8(1),
		op(abi.EVTCHNOP_unmask), &Unmask{Port: 1}, op(abi.EVTCHNOP_bind_pirq), &BindPIRQ{PIRQ: 3}))
	f.Add(enc(uint8(fzAlloc), uint8(fzListen), op(abi.EVTCHNOP_bind_interdomain), &BindInterdomain{RemoteDom: 0, RemotePort: 2},
		uint8(fzNotify), uint8(0), op(abi.EVTCHNOP_send), &Send{Port: 2}, op(abi.EVTCHNOP_close), &Close{Port: 1},
		uint8(fzClose), uint8(1), op(abi.EVTCHNOP_alloc_unbound), &AllocUnbound{Dom: abi.DOMID_SELF},
		uint8(fzBind), uint32(3), uint8(fzNotify), uint8(2)))
	f.Add(enc(op(abi.EVTCHNOP_bind_ipi), &BindIPI{}, op(abi.EVTCHNOP_bind_ipi), &BindIPI{VCPU: 1},
		op(abi.EVTCHNOP_init_control), &InitControl{ControlGFN: 1}, op(abi.EVTCHNOP_init_control), &InitControl{ControlGFN: 2, Offset: 64, VCPU: 1},
		op(abi.EVTCHNOP_expand_array), &ExpandArray{ArrayGFN: 3}, op(abi.EVTCHNOP_unmask), &Unmask{Port: 1},
		op(abi.EVTCHNOP_set_priority), &SetPriority{Port: 2, Priority: 1}, op(abi.EVTCHNOP_unmask), &Unmask{Port: 2},
		op(abi.EVTCHNOP_send), &Send{Port: 1}, op(abi.EVTCHNOP_send), &Send{Port: 2},
		uint8(fzScribble), uint8(3), uint16(4), uint64(0xffffffff), op(abi.EVTCHNOP_send), &Send{Port: 1},
		op(abi.EVTCHNOP_close), &Close{Port: 1}, op(abi.EVTCHNOP_bind_ipi), &BindIPI{},
		op(abi.EVTCHNOP_reset), &Reset{Dom: abi.DOMID_SELF}))
	f.Add(enc(uint8(fzCompat), uint32(abi.EVTCHNOP_bind_ipi), &BindIPI{VCPU: 1}, [20]byte{},
		uint8(fzCompat), uint32(abi.EVTCHNOP_send), &Send{Port: 1}, [20]byte{},
		uint8(fzScribble), uint8(0), uint16(abi.SharedInfoEvtchnMask), uint64(0xffff), uint8(fzMoved), uint8(1)))
	f.Add([]byte{abi.EVTCHNOP_close, 1})

	f.Fuzz(func(t *testing.T, data []byte) {
		g := newFakeGuest(2)
		for gfn := uint64(1); gfn <= 4; gfn++ {
			g.addPage(gfn)
		}
		tb, err := New(g, Config{DomID: 1, MaxPort: 200, GlobalVIRQs: []uint32{abi.VIRQ_CONSOLE}})
		if err != nil {
			t.Fatal(err)
		}
		var eps []*Endpoint
		ep := func(i uint8) *Endpoint {
			if len(eps) == 0 {
				return nil
			}
			return eps[int(i)%len(eps)]
		}
		r := &fuzzReader{data}
		for step := 0; len(r.b) > 0 && step < 256; step++ {
			code := r.u8()
			var rc int64
			switch code {
			case fzCompat:
				arg := make([]byte, CompatOpSize)
				copy(arg, r.bytes(CompatOpSize))
				rc = tb.HypercallCompat(arg)
			case fzAlloc:
				if e, err := tb.AllocBackend(nil); err == nil {
					eps = append(eps, e)
				}
			case fzListen:
				if e, err := tb.ListenBackend(nil); err == nil {
					eps = append(eps, e)
				}
			case fzBind:
				if e, err := tb.BindBackend(r.u32(), nil); err == nil {
					eps = append(eps, e)
				}
			case fzNotify:
				if e := ep(r.u8()); e != nil {
					e.Notify()
				}
			case fzClose:
				if e := ep(r.u8()); e != nil {
					e.Close()
				}
			case fzVIRQ:
				tb.RaiseVIRQ(uint32(r.u8()), int(r.u8()))
			case fzPoll:
				v := int(r.u8())
				ports := make([]uint32, r.u8()%4)
				for i := range ports {
					ports[i] = r.u32()
				}
				tb.Poll(v%3, ports)
			case fzStopPoll:
				tb.StopPoll(int(r.u8()) % 3)
			case fzScribble:
				frame := r.u8() % 5
				var o [2]byte
				var val [8]byte
				copy(o[:], r.bytes(2))
				copy(val[:], r.bytes(8))
				off := uint64(le.Uint16(o[:])) % (abi.XEN_PAGE_SIZE - 8) &^ 7
				var page []byte
				if frame == 0 {
					page = g.shared
				} else {
					page, _ = g.Page(uint64(frame))
				}
				copy(page[off:], val[:])
			case fzMoved:
				tb.VCPUInfoMoved(int(r.u8()) % 3)
			default:
				cmd := uint32(code & 0x0f)
				n := ArgSize(cmd)
				if n == 0 {
					n = 8
				}
				arg := append([]byte(nil), r.bytes(n)...)
				rc = tb.Hypercall(cmd, arg)
			}
			if !knownErrnos[rc] {
				t.Fatalf("step %d (op %#x): rc %d", step, code, rc)
			}
			if err := checkInvariants(tb); err != nil {
				t.Fatalf("step %d (op %#x): %v", step, code, err)
			}
		}
		// Everything still answers, and a reset empties the table.
		tb.Channels()
		if rc := tb.Hypercall(abi.EVTCHNOP_reset, []byte{0xf0, 0x7f}); rc != 0 {
			t.Fatalf("final reset: %d", rc)
		}
		if len(tb.Channels()) != 0 || tb.FIFO() {
			t.Fatal("reset left ports or FIFO")
		}
		for _, e := range eps {
			if st, _ := e.State(); st == EndpointConnected {
				t.Fatalf("endpoint %d still connected after reset", e.Port())
			}
		}
		if err := checkInvariants(tb); err != nil {
			t.Fatal(err)
		}
	})
}
