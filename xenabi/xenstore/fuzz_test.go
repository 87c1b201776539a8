package xenstore

import (
	"encoding/binary"
	"testing"
)

func msg(typ MsgType, tx uint32, payload []byte) []byte {
	return Message{Header: Header{Type: typ, ReqID: 1, TxID: tx}, Payload: payload}.Encode()
}

func cat(bs ...[]byte) []byte {
	var out []byte
	for _, b := range bs {
		out = append(out, b...)
	}
	return out
}

// wireSeeds are request streams touching every message type.
func wireSeeds() [][]byte {
	return [][]byte{
		msg(TypeRead, 0, args("/local/domain/5/data")),
		cat(msg(TypeWrite, 0, append(args("data/a/b"), "v"...)), msg(TypeRead, 0, args("data/a/b"))),
		cat(msg(TypeWatch, 0, args("data", "t")), msg(TypeWrite, 0, append(args("data/x"), 0, 1)),
			msg(TypeUnwatch, 0, args("data", "t"))),
		cat(msg(TypeWatch, 0, args("@releaseDomain", "t", "1")), msg(TypeResetWatches, 0, nil)),
		cat(msg(TypeTransactionStart, 0, args("")), msg(TypeWrite, 1, append(args("data/t"), "1"...)),
			msg(TypeRm, 1, args("data")), msg(TypeTransactionEnd, 1, args("T"))),
		cat(msg(TypeMkdir, 0, args("data/m/n")), msg(TypeDirectory, 0, args("data")),
			msg(TypeDirectoryPart, 0, args("data", "0")), msg(TypeGetPerms, 0, args("data/m")),
			msg(TypeSetPerms, 0, args("data/m", "n5", "r0"))),
		cat(msg(TypeGetDomainPath, 0, args("5")), msg(TypeGetFeature, 0, nil),
			msg(TypeControl, 0, args("quota")), msg(TypeGetQuota, 0, nil),
			msg(TypeSetQuota, 0, args("5", "nodes", "3")), msg(TypeIntroduce, 0, args("9", "1", "2")),
			msg(TypeRelease, 0, args("9")), msg(TypeIsDomainIntroduced, 0, args("5")),
			msg(TypeResume, 0, args("5")), msg(TypeSetTarget, 0, args("5", "0")),
			msg(TypeSetFeature, 0, args("9", "1"))),
		{0xff, 0xff, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff},
		msg(TypeRead, 0, []byte("no-nul")),
		msg(TypeWrite, 0, []byte("//bad\x00x")),
	}
}

// FuzzWire feeds arbitrary bytes to a guest's and to dom0's connection. The
// daemon must not panic, the tree must stay consistent, and a fresh
// connection must still be served.
func FuzzWire(f *testing.F) {
	for _, s := range wireSeeds() {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, data []byte, privileged bool) {
		d := New(Options{})
		_, g := guestSetup(t, d, 5)
		c := g
		if privileged {
			c = wireConn(t, d, 0)
		}
		c.feed(data)
		checkStore(t, d)
		fresh := wireConn(t, d, 0)
		if got := fresh.read("/local/domain/0/name"); got != "Domain-0" {
			t.Fatalf("read after fuzz: %q", got)
		}
		fresh.write("/after", "ok")
		if got := fresh.read("/after"); got != "ok" {
			t.Fatalf("write after fuzz: %q", got)
		}
	})
}

// FuzzRing lets the guest put anything in its ring page, indices and status
// words included. The daemon must not panic or write outside the page's
// response area, must leave consistent indices behind, and must serve the
// guest again after a reconnection.
func FuzzRing(f *testing.F) {
	seed := func(reqCons, reqProd, rspCons, rspProd, conn uint32, req []byte) []byte {
		p := make([]byte, interfaceSize)
		copy(p[offReq:offReq+RingSize], req)
		binary.LittleEndian.PutUint32(p[offReqCons:], reqCons)
		binary.LittleEndian.PutUint32(p[offReqProd:], reqProd)
		binary.LittleEndian.PutUint32(p[offRspCons:], rspCons)
		binary.LittleEndian.PutUint32(p[offRspProd:], rspProd)
		binary.LittleEndian.PutUint32(p[offConnection:], conn)
		return p
	}
	for _, s := range wireSeeds() {
		n := uint32(min(len(s), RingSize))
		f.Add(seed(0, n, 0, 0, 0, s))
		f.Add(seed(1000, 1000+n, 7, 7, 0, cat(make([]byte, 1000), s)))
	}
	f.Add(seed(0, 5000, 0, 0, 0, nil))
	f.Add(seed(0, 0, 0, 2000, 0, nil))
	f.Add(seed(0xfffffff0, 0x10, 0xfffffff0, 0xfffffff0, 0, nil))
	f.Add(seed(0, 0, 0, 0, 1, nil))
	f.Fuzz(func(t *testing.T, contents []byte) {
		d := New(Options{})
		cl := d.NewClient()
		defer cl.Close()
		if err := cl.Mkdir("/local/domain/5/data"); err != nil {
			t.Fatal(err)
		}
		if err := cl.SetPerms("/local/domain/5/data", Perm{5, AccessNone}); err != nil {
			t.Fatal(err)
		}
		// The page is followed by a guard area the daemon must not touch.
		mem := make([]byte, 8192)
		for i := 4096; i < len(mem); i++ {
			mem[i] = 0xa5
		}
		page := mem[:4096:4096]
		copy(page, contents)
		req := append([]byte(nil), page[offReq:offReq+RingSize]...)
		// A reconnection request makes the daemon clear both queues.
		reconnecting := binary.LittleEndian.Uint32(page[offConnection:]) == StateReconnect
		rspSane := binary.LittleEndian.Uint32(page[offRspProd:])-binary.LittleEndian.Uint32(page[offRspCons:]) <= RingSize
		g := &fakeGuest{t: t, page: page}
		r, err := d.Introduce(5, page, func() { g.kicks++ })
		if err != nil {
			t.Fatal(err)
		}
		g.r = r
		r.HandleEvent()
		cl.WriteString("/local/domain/5/data/poke", "x") // may queue events
		r.HandleEvent()
		for i := 4096; i < len(mem); i++ {
			if mem[i] != 0xa5 {
				t.Fatalf("daemon wrote past the page at %d", i)
			}
		}
		for i := range RingSize {
			if !reconnecting && page[offReq+i] != req[i] {
				t.Fatalf("daemon wrote into the request ring at %d", i)
			}
		}
		if rspSane && g.idx(offError) == ErrorNone {
			// Sane indices stay sane in the daemon's hands.
			if g.idx(offRspProd)-g.idx(offRspCons) > RingSize {
				t.Fatalf("response indices broken: %d %d", g.idx(offRspCons), g.idx(offRspProd))
			}
		}
		checkStore(t, d)
		// Reconnect and talk normally.
		g.setIdx(offConnection, StateReconnect)
		r.HandleEvent()
		if g.idx(offConnection) != StateConnected || g.idx(offError) != ErrorNone {
			t.Fatalf("reconnect: connection %d error %d", g.idx(offConnection), g.idx(offError))
		}
		reply := g.call(TypeGetDomainPath, args("5"))
		if string(reply.Payload) != "/local/domain/5\x00" {
			t.Fatalf("after reconnect: %v %q", reply.Type, reply.Payload)
		}
	})
}
