package evtchn

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/xenvmm/xenvmm/xenabi/abi"
)

func TestHypercallUnknownAndShort(t *testing.T) {
	tb, _ := newTable(t, 1, nil)
	for _, cmd := range []uint32{15, 99, 0xffffffff} {
		if rc := tb.Hypercall(cmd, nil); rc != ret(abi.ENOSYS) {
			t.Errorf("cmd %d: %d", cmd, rc)
		}
	}
	for cmd := uint32(0); cmd <= abi.EVTCHNOP_reset_cont; cmd++ {
		n := ArgSize(cmd)
		if n == 0 {
			t.Fatalf("cmd %d has no size", cmd)
		}
		if rc := tb.Hypercall(cmd, make([]byte, n-1)); rc != ret(abi.EFAULT) {
			t.Errorf("cmd %d with %d bytes: %d, want EFAULT", cmd, n-1, rc)
		}
	}
	if len(tb.Channels()) != 0 {
		t.Fatal("short arguments changed the table")
	}
}

func TestHypercallOutOnlyOnSuccess(t *testing.T) {
	tb, _ := newTable(t, 1, nil)
	arg := make([]byte, BindIPISize)
	le.PutUint32(arg[0:], 5)          // absent vcpu
	le.PutUint32(arg[4:], 0xdeadbeef) // port: OUT
	if rc := tb.Hypercall(abi.EVTCHNOP_bind_ipi, arg); rc != ret(abi.ENOENT) {
		t.Fatal(rc)
	}
	if le.Uint32(arg[4:]) != 0xdeadbeef {
		t.Fatal("OUT field written on failure")
	}
	// A longer buffer is fine; bytes past the struct are left alone.
	arg = bytes.Repeat([]byte{0xaa}, 32)
	le.PutUint32(arg[0:], 0)
	if rc := tb.Hypercall(abi.EVTCHNOP_bind_ipi, arg); rc != 0 {
		t.Fatal(rc)
	}
	if le.Uint32(arg[4:]) != 1 || !bytes.Equal(arg[8:], bytes.Repeat([]byte{0xaa}, 24)) {
		t.Fatalf("arg after bind_ipi: %x", arg)
	}
}

// compatOp builds struct evtchn_op: cmd, then the argument in the union.
func compatOp(t *testing.T, cmd uint32, in any) []byte {
	var buf bytes.Buffer
	binary.Write(&buf, binary.LittleEndian, cmd)
	binary.Write(&buf, binary.LittleEndian, in)
	b := make([]byte, CompatOpSize)
	copy(b, buf.Bytes())
	return b
}

func TestHypercallCompat(t *testing.T) {
	tb, g := newTable(t, 2, nil)
	op := compatOp(t, abi.EVTCHNOP_bind_ipi, &BindIPI{VCPU: 1})
	if rc := tb.HypercallCompat(op); rc != 0 {
		t.Fatal(rc)
	}
	port := le.Uint32(op[4+4:])
	if port != 1 {
		t.Fatalf("port %d", port)
	}
	op = compatOp(t, abi.EVTCHNOP_status, &Status{Dom: abi.DOMID_SELF, Port: port})
	if rc := tb.HypercallCompat(op); rc != 0 {
		t.Fatal(rc)
	}
	var s Status
	binary.Read(bytes.NewReader(op[4:]), binary.LittleEndian, &s)
	if s.Status != abi.EVTCHNSTAT_ipi || s.VCPU != 1 {
		t.Fatalf("status %+v", s)
	}
	if rc := tb.HypercallCompat(compatOp(t, abi.EVTCHNOP_send, &Send{Port: port})); rc != 0 || !g.pending(port) {
		t.Fatalf("send: %d", rc)
	}
	// Errors come through unchanged.
	if rc := tb.HypercallCompat(compatOp(t, abi.EVTCHNOP_close, &Close{Port: 40})); rc != ret(abi.EINVAL) {
		t.Fatalf("close: %d", rc)
	}
	// Only the ten original operations exist in the compat hypercall.
	for _, cmd := range []uint32{abi.EVTCHNOP_reset, abi.EVTCHNOP_init_control, abi.EVTCHNOP_expand_array,
		abi.EVTCHNOP_set_priority, abi.EVTCHNOP_reset_cont, 15, 0xffffffff} {
		if rc := tb.HypercallCompat(compatOp(t, cmd, &Reset{Dom: abi.DOMID_SELF})); rc != ret(abi.ENOSYS) {
			t.Errorf("compat cmd %d: %d", cmd, rc)
		}
	}
	// The whole struct evtchn_op is read, whatever the command.
	if rc := tb.HypercallCompat(compatOp(t, abi.EVTCHNOP_send, &Send{Port: port})[:CompatOpSize-1]); rc != ret(abi.EFAULT) {
		t.Fatalf("short compat: %d", rc)
	}
	if len(tb.Channels()) != 1 {
		t.Fatal("compat calls changed more than expected")
	}
}
