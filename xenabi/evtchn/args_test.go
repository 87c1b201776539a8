package evtchn

import (
	"bytes"
	"encoding/binary"
	"math/rand"
	"reflect"
	"testing"
)

// TestArgLayouts checks each argument struct against the size a C compiler
// printed for struct evtchn_* of event_channel.h (x86-64), and checks that
// the hand-written decode reads exactly what encoding/binary writes for the
// Go mirror struct, so the offsets in args.go match the field order.
func TestArgLayouts(t *testing.T) {
	type coder interface{ decode([]byte) }
	cases := []struct {
		name string
		v    coder
		size int
	}{
		{"evtchn_alloc_unbound", &AllocUnbound{}, AllocUnboundSize},
		{"evtchn_bind_interdomain", &BindInterdomain{}, BindInterdomainSize},
		{"evtchn_bind_virq", &BindVIRQ{}, BindVIRQSize},
		{"evtchn_bind_pirq", &BindPIRQ{}, BindPIRQSize},
		{"evtchn_bind_ipi", &BindIPI{}, BindIPISize},
		{"evtchn_close", &Close{}, CloseSize},
		{"evtchn_send", &Send{}, SendSize},
		{"evtchn_status", &Status{}, StatusSize},
		{"evtchn_bind_vcpu", &BindVCPU{}, BindVCPUSize},
		{"evtchn_unmask", &Unmask{}, UnmaskSize},
		{"evtchn_reset", &Reset{}, ResetSize},
		{"evtchn_init_control", &InitControl{}, InitControlSize},
		{"evtchn_expand_array", &ExpandArray{}, ExpandArraySize},
		{"evtchn_set_priority", &SetPriority{}, SetPrioritySize},
	}
	r := rand.New(rand.NewSource(1))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := binary.Size(c.v); got != c.size {
				t.Fatalf("binary.Size = %d, C sizeof = %d", got, c.size)
			}
			for i := 0; i < 20; i++ {
				// A random value of the mirror type, written by
				// encoding/binary (padding as zeros).
				want := reflect.New(reflect.TypeOf(c.v).Elem())
				for f := 0; f < want.Elem().NumField(); f++ {
					fv := want.Elem().Field(f)
					if !fv.CanSet() {
						continue
					}
					fv.SetUint(r.Uint64())
				}
				var buf bytes.Buffer
				if err := binary.Write(&buf, binary.LittleEndian, want.Interface()); err != nil {
					t.Fatal(err)
				}
				got := reflect.New(want.Elem().Type()).Interface().(coder)
				got.decode(buf.Bytes())
				if !reflect.DeepEqual(got, want.Interface()) {
					t.Fatalf("decode(%x) = %+v, want %+v", buf.Bytes(), got, want.Interface())
				}
			}
		})
	}
	if ArgSize(99) != 0 {
		t.Fatal("ArgSize of an unknown command")
	}
}

// TestEncodeOutFields checks that encode writes the OUT fields at the
// offsets encoding/binary uses and leaves the IN fields alone.
func TestEncodeOutFields(t *testing.T) {
	enc := func(v any) []byte {
		var buf bytes.Buffer
		binary.Write(&buf, binary.LittleEndian, v)
		return buf.Bytes()
	}
	check := func(name string, in any, encode func([]byte), want any) {
		b := enc(in)
		encode(b)
		if !bytes.Equal(b, enc(want)) {
			t.Errorf("%s: encode gave %x, want %x", name, b, enc(want))
		}
	}
	check("alloc_unbound", &AllocUnbound{Dom: 1, RemoteDom: 2, Port: 3},
		(&AllocUnbound{Port: 77}).encode, &AllocUnbound{Dom: 1, RemoteDom: 2, Port: 77})
	check("bind_interdomain", &BindInterdomain{RemoteDom: 5, RemotePort: 6},
		(&BindInterdomain{LocalPort: 9}).encode, &BindInterdomain{RemoteDom: 5, RemotePort: 6, LocalPort: 9})
	check("bind_virq", &BindVIRQ{VIRQ: 1, VCPU: 2}, (&BindVIRQ{Port: 3}).encode, &BindVIRQ{VIRQ: 1, VCPU: 2, Port: 3})
	check("bind_pirq", &BindPIRQ{PIRQ: 1, Flags: 1}, (&BindPIRQ{Port: 3}).encode, &BindPIRQ{PIRQ: 1, Flags: 1, Port: 3})
	check("bind_ipi", &BindIPI{VCPU: 4}, (&BindIPI{Port: 8}).encode, &BindIPI{VCPU: 4, Port: 8})
	check("init_control", &InitControl{ControlGFN: 0x1234, Offset: 8, VCPU: 1},
		(&InitControl{LinkBits: 17}).encode, &InitControl{ControlGFN: 0x1234, Offset: 8, VCPU: 1, LinkBits: 17})
	// Status: the union bytes a status does not use keep the guest's.
	in := &Status{Dom: 0x7ff0, Port: 3, Status: 9, VCPU: 9, U0: 0xaaaaaaaa, U1: 0xbbbbbbbb}
	check("status unbound", in, (&Status{Status: 1, VCPU: 2, U0: 5}).encode,
		&Status{Dom: 0x7ff0, Port: 3, Status: 1, VCPU: 2, U0: 0xaaaa0005, U1: 0xbbbbbbbb})
	check("status interdomain", in, (&Status{Status: 2, VCPU: 0, U0: 1, U1: 42}).encode,
		&Status{Dom: 0x7ff0, Port: 3, Status: 2, VCPU: 0, U0: 0xaaaa0001, U1: 42})
	check("status virq", in, (&Status{Status: 4, VCPU: 1, U0: 3}).encode,
		&Status{Dom: 0x7ff0, Port: 3, Status: 4, VCPU: 1, U0: 3, U1: 0xbbbbbbbb})
	check("status ipi", in, (&Status{Status: 5, VCPU: 1}).encode,
		&Status{Dom: 0x7ff0, Port: 3, Status: 5, VCPU: 1, U0: 0xaaaaaaaa, U1: 0xbbbbbbbb})
}
