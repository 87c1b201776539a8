package guestxenbus

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// fakeBus answers each request with the reply queued for it.
type fakeBus struct {
	sent    bytes.Buffer
	replies bytes.Buffer
}

func (f *fakeBus) Write(p []byte) (int, error) { return f.sent.Write(p) }
func (f *fakeBus) Read(p []byte) (int, error)  { return f.replies.Read(p) }

func reply(b *bytes.Buffer, typ, id uint32, payload string) {
	var hdr [16]byte
	binary.LittleEndian.PutUint32(hdr[0:], typ)
	binary.LittleEndian.PutUint32(hdr[4:], id)
	binary.LittleEndian.PutUint32(hdr[12:], uint32(len(payload)))
	b.Write(hdr[:])
	b.WriteString(payload)
}

func TestReadWriteAndErrors(t *testing.T) {
	var f fakeBus
	reply(&f.replies, xsRead, 1, "cli-test")
	reply(&f.replies, xsWrite, 2, "OK\x00")
	reply(&f.replies, xsError, 3, "ENOENT\x00")
	c := New(&f)
	if v, err := c.Read("name"); err != nil || v != "cli-test" {
		t.Fatalf("Read = %q, %v", v, err)
	}
	if err := c.Write("data/x", "1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read("missing"); err == nil || err.Error() != "ENOENT" {
		t.Fatalf("Read of a missing node: %v, want ENOENT", err)
	}
	want := []struct {
		typ     uint32
		payload string
	}{{xsRead, "name\x00"}, {xsWrite, "data/x\x001"}, {xsRead, "missing\x00"}}
	for i, w := range want {
		var hdr [16]byte
		f.sent.Read(hdr[:])
		if typ, id := binary.LittleEndian.Uint32(hdr[0:]), binary.LittleEndian.Uint32(hdr[4:]); typ != w.typ || id != uint32(i+1) {
			t.Errorf("request %d: type %d id %d, want %d %d", i, typ, id, w.typ, i+1)
		}
		p := make([]byte, binary.LittleEndian.Uint32(hdr[12:]))
		f.sent.Read(p)
		if string(p) != w.payload {
			t.Errorf("request %d payload %q, want %q", i, p, w.payload)
		}
	}
	reply(&f.replies, xsRead, 4, string(make([]byte, 0)))
	binary.LittleEndian.PutUint32(f.replies.Bytes()[12:], 1<<20)
	if _, err := c.Read("big"); err == nil {
		t.Error("a 1 MiB reply length was accepted")
	}
}
