package xenstore

import (
	"bytes"
	"errors"
	"syscall"
	"testing"
)

func TestHeaderRoundTrip(t *testing.T) {
	m := Message{Header: Header{Type: TypeRead, ReqID: 0x01020304, TxID: 7}, Payload: []byte("/a\x00")}
	b := m.Encode()
	want := []byte{2, 0, 0, 0, 4, 3, 2, 1, 7, 0, 0, 0, 3, 0, 0, 0, '/', 'a', 0}
	if !bytes.Equal(b, want) {
		t.Fatalf("Encode = %v", b)
	}
	h, err := ParseHeader(b)
	if err != nil || h != (Header{Type: TypeRead, ReqID: 0x01020304, TxID: 7, Len: 3}) {
		t.Fatalf("ParseHeader = %+v, %v", h, err)
	}
	if _, err := ParseHeader(b[:15]); !errors.Is(err, ErrShortHeader) {
		t.Fatalf("short header: %v", err)
	}
}

func TestErrnoNames(t *testing.T) {
	// The xsd_errors table of xs_wire.h, in order.
	want := []string{"EINVAL", "EACCES", "EEXIST", "EISDIR", "ENOENT", "ENOMEM", "ENOSPC", "EIO",
		"ENOTEMPTY", "ENOSYS", "EROFS", "EBUSY", "EAGAIN", "EISCONN", "E2BIG", "EPERM"}
	if len(xsdErrors) != len(want) {
		t.Fatalf("%d errors", len(xsdErrors))
	}
	for i, w := range want {
		if xsdErrors[i].name != w {
			t.Errorf("entry %d: %s, want %s", i, xsdErrors[i].name, w)
		}
		e, ok := ParseErrno(append([]byte(w), 0))
		if !ok || ErrnoName(e) != w {
			t.Errorf("round trip of %s: %v %v", w, e, ok)
		}
	}
	if got := ErrnoName(syscall.ENOTDIR); got != "EINVAL" {
		t.Errorf("untranslatable errno sent as %s, want EINVAL", got)
	}
}

func TestDecoderSplitsAnywhere(t *testing.T) {
	var stream []byte
	for i, p := range []string{"/a", "/bb", ""} {
		m := Message{Header: Header{Type: TypeRead, ReqID: uint32(i)}, Payload: []byte(p)}
		stream = append(stream, m.Encode()...)
	}
	for chunk := 1; chunk <= len(stream); chunk++ {
		var dec decoder
		var got []string
		for off := 0; off < len(stream); off += chunk {
			p := stream[off:min(off+chunk, len(stream))]
			for len(p) > 0 {
				n, m, err := dec.feed(p)
				if err != nil {
					t.Fatal(err)
				}
				if n == 0 {
					t.Fatal("no progress")
				}
				p = p[n:]
				if m != nil {
					got = append(got, string(m.Payload))
				}
			}
		}
		if len(got) != 3 || got[0] != "/a" || got[1] != "/bb" || got[2] != "" {
			t.Fatalf("chunk %d: %q", chunk, got)
		}
		if dec.partial() {
			t.Fatalf("chunk %d: decoder holds a partial message", chunk)
		}
	}
}

func TestMalformedWire(t *testing.T) {
	d := New(Options{})
	c := wireConn(t, d, 0)
	c.write("/a", "v")

	// A short header is just buffered: no reply until the rest comes.
	m := Message{Header: Header{Type: TypeRead, ReqID: 9}, Payload: args("/a")}
	b := m.Encode()
	if rs, err := c.feed(b[:7]); err != nil || len(rs) != 0 {
		t.Fatalf("partial header: %v %v", rs, err)
	}
	rs, err := c.feed(b[7:])
	if err != nil || len(rs) != 1 || string(rs[0].Payload) != "v" || rs[0].ReqID != 9 {
		t.Fatalf("completed: %v %v", rs, err)
	}

	// Strings without their NUL, extra strings, empty payloads.
	c.wantErr(syscall.EINVAL, TypeRead, 0, []byte("/a"))
	c.wantErr(syscall.EINVAL, TypeMkdir, 0, []byte("/a\x00/b"))
	c.wantErr(syscall.EINVAL, TypeRm, 0, nil)
	c.wantErr(syscall.EINVAL, TypeDirectory, 0, []byte("/a\x00\x00"))
	c.wantErr(syscall.EINVAL, TypeTransactionEnd, 0, []byte("T"))
	c.wantErr(syscall.EINVAL, TypeSetPerms, 0, []byte("/a\x00n0")) // the perm lacks its NUL
	c.wantErr(syscall.EINVAL, TypeGetDomainPath, 0, []byte("1"))
	c.wantErr(syscall.EINVAL, TypeWatch, 0, []byte("/a\x00tok"))
	// Bad paths.
	for _, p := range []string{"a//b", "/a/", "/a*", "@x"} {
		c.wantErr(syscall.EINVAL, TypeRead, 0, args(p))
	}

	// len > XENSTORE_PAYLOAD_MAX is a protocol violation.
	h := make([]byte, HeaderSize)
	Header{Type: TypeRead, Len: PayloadMax + 1}.Put(h)
	if _, err := c.feed(h); !errors.Is(err, ErrPayloadTooLong) {
		t.Fatalf("oversized: %v", err)
	}
	// Exactly PayloadMax is fine.
	big := Message{Header: Header{Type: TypeWrite, ReqID: 1}, Payload: append(args("/big"), make([]byte, PayloadMax-5)...)}
	var dec decoder
	if _, msg, err := dec.feed(big.Encode()); err != nil || msg == nil || len(msg.Payload) != PayloadMax {
		t.Fatalf("max payload: %v", err)
	}
}

// TestRingLayout checks struct xenstore_domain_interface's offsets against
// the table in docs/misc/xenstore-ring.txt.
func TestRingLayout(t *testing.T) {
	for _, c := range []struct {
		name     string
		got, off int
	}{
		{"req", offReq, 0},
		{"rsp", offRsp, 1024},
		{"req_cons", offReqCons, 2048},
		{"req_prod", offReqProd, 2052},
		{"rsp_cons", offRspCons, 2056},
		{"rsp_prod", offRspProd, 2060},
		{"server_features", offServerFeatures, 2064},
		{"connection", offConnection, 2068},
		{"error", offError, 2072},
		{"evtchn_port", offEvtchnPort, 2076},
		{"sizeof", interfaceSize, 2080},
	} {
		if c.got != c.off {
			t.Errorf("%s at %d, want %d", c.name, c.got, c.off)
		}
	}
	if HeaderSize != 16 || RingSize != 1024 || PayloadMax != 4096 || AbsPathMax != 3072 || RelPathMax != 2048 {
		t.Error("xs_wire.h sizes")
	}
}
