package netback

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/xenvmm/xenvmm/config"
	"github.com/xenvmm/xenvmm/devices/tap"
)

func TestConnectErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		nodes   map[string]string
		mapFail string
		want    error
	}{
		{name: "no request-rx-copy", nodes: map[string]string{"request-rx-copy": ""}, want: ErrNoRxCopy},
		{name: "request-rx-copy 0", nodes: map[string]string{"request-rx-copy": "0"}, want: ErrNoRxCopy},
		{name: "request-rx-copy garbage", nodes: map[string]string{"request-rx-copy": "yes"}, want: ErrNoRxCopy},
		{name: "zero queues", nodes: map[string]string{"multi-queue-num-queues": "0"}, want: ErrFrontend},
		{name: "too many queues", nodes: map[string]string{"multi-queue-num-queues": "5"}, want: ErrFrontend},
		{name: "queue count garbage", nodes: map[string]string{"multi-queue-num-queues": "two"}, want: ErrFrontend},
		{name: "two queues, nodes of one", nodes: map[string]string{"multi-queue-num-queues": "2"}},
		{name: "no tx-ring-ref", nodes: map[string]string{"tx-ring-ref": ""}},
		{name: "rx ring unmappable", mapFail: "rx-ring-ref"},
		{name: "no event channel", nodes: map[string]string{"event-channel": ""}},
		{name: "tx ring ref garbage", nodes: map[string]string{"tx-ring-ref": "-1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nf := newNetfront(t, tc.nodes)
			nf.fe.mapFail = tc.mapFail
			v, _ := testVif(t, nil, Options{})
			err := v.connect(context.Background(), nf.fe)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("connect = %v, want %v", err, tc.want)
			}
			// A second Connect before Disconnect is refused; Disconnect
			// undoes what the failed one set up.
			if err := v.connect(context.Background(), nf.fe); !errors.Is(err, ErrConnected) {
				t.Errorf("second connect = %v", err)
			}
			if err := v.Disconnect(); err != nil {
				t.Errorf("Disconnect: %v", err)
			}
			for node, p := range nf.fe.ports {
				if !p.closed {
					t.Errorf("port %s left open", node)
				}
			}
			if tc.mapFail == "rx-ring-ref" && nf.fe.unmaps != 1 {
				t.Errorf("%d unmaps, want the TX ring's", nf.fe.unmaps)
			}
		})
	}
}

func TestOffloadNegotiation(t *testing.T) {
	for _, tc := range []struct {
		name     string
		features map[string]string
		want     int
	}{
		{"Linux 6.1 netfront", linuxFeatures, tap.OffloadCsum | tap.OffloadTSO4 | tap.OffloadTSO6},
		{"NetBSD 5.1 xennet", netbsd51Features, tap.OffloadCsum},
		{"modern NetBSD xennet", map[string]string{"feature-rx-notify": "1", "feature-sg": "1", "feature-ipv6-csum-offload": "1"}, tap.OffloadCsum},
		{"no checksum offload", map[string]string{"feature-no-csum-offload": "1", "feature-sg": "1", "feature-gso-tcpv4": "1"}, 0},
		{"IPv6 checksums only", map[string]string{"feature-no-csum-offload": "1", "feature-ipv6-csum-offload": "1", "feature-sg": "1", "feature-gso-tcpv4": "1", "feature-gso-tcpv6": "1"}, tap.OffloadCsum | tap.OffloadTSO6},
		{"GSO without SG", map[string]string{"feature-gso-tcpv4": "1"}, tap.OffloadCsum},
		{"malformed feature node", map[string]string{"feature-sg": "x", "feature-gso-tcpv4": "1"}, tap.OffloadCsum},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nf := newNetfront(t, tc.features)
			v, link := testVif(t, nf, Options{})
			if err := v.Disconnect(); err != nil {
				t.Fatal(err)
			}
			if want := []int{tc.want, 0}; !equalInts(link.offload, want) {
				t.Errorf("offloads set %v, want %v", link.offload, want)
			}
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestSplitEventChannels: TX is kicked and notified on event-channel-tx,
// RX on event-channel-rx.
func TestSplitEventChannels(t *testing.T) {
	nf := newNetfrontQueues(t, linuxFeatures, 1, true)[0]
	_, link := testVif(t, nf, Options{})
	nf.postRx(4)
	nf.sendTx([]txFrag{{data: ether(0x88b5, fill(60, 1)), id: 1}}, nil, true)
	if r := nf.txResponses(1); r[0] != (TxResponse{ID: 1}) {
		t.Errorf("TX response %v", r)
	}
	link.written(t, 1)
	link.in <- vnet(tap.VnetHdr{}, ether(0x88b5, fill(60, 2)))
	if p := nf.rxPackets(1)[0]; !bytes.Equal(p.data, ether(0x88b5, fill(60, 2))) {
		t.Error("RX frame differs")
	}
}

// TestMultiQueue: two queues with split event channels; each TX ring is
// served, and RX frames are spread by flow, in order within a flow.
func TestMultiQueue(t *testing.T) {
	qs := newNetfrontQueues(t, linuxFeatures, 2, true)
	_, link := testVif(t, qs[0], Options{MaxQueues: 2})
	for i, q := range qs {
		q.postRx(100)
		q.sendTx([]txFrag{{data: ether(0x88b5, fill(60, byte(i))), id: 9}}, nil, true)
		if r := q.txResponses(1); r[0] != (TxResponse{ID: 9}) {
			t.Errorf("queue %d: TX response %v", i, r)
		}
	}
	link.written(t, 2)
	// 40 flows (source ports), 2 frames each.
	perQueue := map[int]int{}
	want := map[uint32][]byte{}
	for port := range 40 {
		for k := range 2 {
			f := ether(etherTypeIPv4, ipv4(protoUDP, udp(fill(50, byte(k)))))
			f[14+20] = byte(port)
			f[14+20+8] = byte(k) // payload marks the order
			link.in <- vnet(tap.VnetHdr{}, f)
			perQueue[int(flowHash(f)%2)]++
			want[flowHash(f)] = f
		}
	}
	seen := map[uint32]int{}
	for i, q := range qs {
		for _, p := range q.rxPackets(perQueue[i]) {
			h := flowHash(p.data)
			if int(h%2) != i {
				t.Errorf("flow %#x on queue %d", h, i)
			}
			if int(p.data[14+20+8]) != seen[h] {
				t.Errorf("flow %#x out of order", h)
			}
			seen[h]++
		}
	}
	if perQueue[0] == 0 || perQueue[1] == 0 {
		t.Errorf("flows on one queue only: %v", perQueue)
	}
}

// TestReconnect: after Disconnect the frontend can set up fresh rings
// and connect again (module reload, kexec).
func TestReconnect(t *testing.T) {
	nf := newNetfront(t, linuxFeatures)
	v, link := testVif(t, nf, Options{})
	nf.sendTx([]txFrag{{data: ether(0x88b5, fill(60, 1)), id: 1}}, nil, true)
	nf.txResponses(1)
	if err := v.Disconnect(); err != nil {
		t.Fatal(err)
	}
	if err := v.Disconnect(); err != nil {
		t.Errorf("second Disconnect: %v", err)
	}
	// Frames from the host are dropped while disconnected.
	link.in <- vnet(tap.VnetHdr{}, ether(0x88b5, fill(60, 2)))
	nf2 := newNetfront(t, linuxFeatures) // fresh rings and buffers
	if err := v.connect(context.Background(), nf2.fe); err != nil {
		t.Fatal(err)
	}
	nf2.sendTx([]txFrag{{data: ether(0x88b5, fill(60, 3)), id: 1}}, nil, true)
	nf2.txResponses(1)
	if out := link.written(t, 2); !bytes.Equal(out[1][tap.VnetHdrLen:], ether(0x88b5, fill(60, 3))) {
		t.Error("second connection's frame differs")
	}
	v.Close()
	if err := v.connect(context.Background(), nf2.fe); !errors.Is(err, ErrClosed) {
		t.Errorf("connect after Close = %v", err)
	}
}

type zeroReader struct{}

func (zeroReader) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = 0xff
	}
	return len(b), nil
}

func TestNodes(t *testing.T) {
	v, err := New(config.Vif{MAC: "aa:00:00:50:02:f0", Bridge: "bridge0", IP: "10.0.0.2", Script: "vif-bridge", MTU: 9000},
		Options{DomID: 3, Index: 1, Link: newFakeLink(), MaxQueues: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if v.Name() != "vif3.1" || v.DevID() != 1 || v.MAC().String() != "aa:00:00:50:02:f0" || v.Type() != "vif" {
		t.Errorf("name %s devid %d mac %s", v.Name(), v.DevID(), v.MAC())
	}
	want := map[string]string{
		"handle": "1", "mac": "aa:00:00:50:02:f0", "type": "vif", "mtu": "9000",
		"bridge": "bridge0", "ip": "10.0.0.2", "script": "vif-bridge",
		"feature-sg": "1", "feature-gso-tcpv4": "1", "feature-gso-tcpv6": "1",
		"feature-ipv6-csum-offload": "1", "feature-rx-copy": "1", "feature-rx-flip": "0",
		"feature-split-event-channels": "1", "multi-queue-max-queues": "2", "hotplug-status": "connected",
	}
	if got := v.BackendNodes(); !maps.Equal(got, want) {
		t.Errorf("BackendNodes:\n got %v\nwant %v", got, want)
	}
	if got := v.FrontendNodes(); !maps.Equal(got, map[string]string{"handle": "1", "mac": "aa:00:00:50:02:f0"}) {
		t.Errorf("FrontendNodes %v", got)
	}
	if got := v.ReadOnlyFrontendNodes(); !maps.Equal(got, map[string]string{"mtu": "9000", "trusted": "1"}) {
		t.Errorf("ReadOnlyFrontendNodes %v", got)
	}

	// No mac=: xl's 00:16:3e with the fourth octet's top bit clear.
	no := false
	v2, err := New(config.Vif{VifName: "guest0", Trusted: &no, DevID: ptr(4)}, Options{DomID: 3, Link: newFakeLink(), Rand: zeroReader{}})
	if err != nil {
		t.Fatal(err)
	}
	defer v2.Close()
	if v2.MAC().String() != "00:16:3e:7f:ff:ff" || v2.Name() != "guest0" || v2.DevID() != 4 {
		t.Errorf("mac %s name %s devid %d", v2.MAC(), v2.Name(), v2.DevID())
	}
	n := v2.BackendNodes()
	if n["vifname"] != "guest0" || n["mtu"] != "1500" || n["multi-queue-max-queues"] != "4" || n["bridge"] != "" {
		t.Errorf("BackendNodes %v", n)
	}
	if v2.ReadOnlyFrontendNodes()["trusted"] != "0" {
		t.Error("trusted=0 not passed on")
	}
}

func TestNewErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		v    config.Vif
		o    Options
		want string
	}{
		{"multicast mac", config.Vif{MAC: "01:00:5e:00:00:01"}, Options{}, "multicast"},
		{"bad vifname", config.Vif{VifName: "much-too-long-name"}, Options{}, "invalid interface name"},
		{"driver domain", config.Vif{Backend: "netdom"}, Options{}, "driver domains"},
		{"negative devid", config.Vif{DevID: ptr(-1)}, Options{}, "devid"},
		{"bad queue count", config.Vif{}, Options{MaxQueues: -1}, "MaxQueues"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.Link = newFakeLink()
			v, err := New(tc.v, tc.o)
			if err == nil {
				v.Close()
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New = %v, want %q", err, tc.want)
			}
		})
	}
}
