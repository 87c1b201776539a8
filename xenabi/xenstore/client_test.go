package xenstore

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func recvEvent(t *testing.T, w *Watch) WatchEvent {
	t.Helper()
	select {
	case ev, ok := <-w.Events():
		if !ok {
			t.Fatal("watch channel closed")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no watch event")
	}
	return WatchEvent{}
}

func noEvent(t *testing.T, w *Watch) {
	t.Helper()
	select {
	case ev := <-w.Events():
		t.Fatalf("unexpected event %v", ev)
	case <-time.After(20 * time.Millisecond):
	}
}

func TestClientBasics(t *testing.T) {
	d := New(Options{})
	cl := d.NewClient()
	defer cl.Close()
	if err := cl.WriteString("/c/a", "1"); err != nil {
		t.Fatal(err)
	}
	if v, err := cl.ReadString("/c/a"); err != nil || v != "1" {
		t.Fatalf("%q %v", v, err)
	}
	_, err := cl.Read("/c/none")
	var oe *OpError
	if !errors.Is(err, syscall.ENOENT) || !errors.As(err, &oe) || oe.Op != "read" || oe.Path != "/c/none" {
		t.Fatalf("missing node: %v", err)
	}
	if !strings.Contains(err.Error(), "ENOENT") {
		t.Fatalf("message %q", err)
	}
	if err := cl.Mkdir("/c/m"); err != nil {
		t.Fatal(err)
	}
	if ch, err := cl.Directory("/c"); err != nil || !slices.Equal(ch, []string{"a", "m"}) {
		t.Fatalf("%v %v", ch, err)
	}
	if err := cl.SetPerms("/c/a", Perm{3, AccessNone}, Perm{4, AccessRead}); err != nil {
		t.Fatal(err)
	}
	if p, err := cl.GetPerms("/c/a"); err != nil || FormatPerms(p) != "n3,r4" {
		t.Fatalf("%v %v", p, err)
	}
	if err := cl.Rm("/c"); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Read("/c/a"); !errors.Is(err, syscall.ENOENT) {
		t.Fatal(err)
	}
	// Values must fit a wire message.
	if err := cl.Write("/big", make([]byte, PayloadMax)); !errors.Is(err, syscall.E2BIG) {
		t.Fatalf("oversized value: %v", err)
	}
	if err := cl.WriteString("relative", "x"); err != nil {
		t.Fatal(err)
	}
	if v, _ := cl.ReadString("/local/domain/0/relative"); v != "x" {
		t.Fatalf("relative path landed elsewhere: %q", v)
	}
	cl.Close()
	if _, err := cl.Read("/"); !errors.Is(err, ErrClosed) {
		t.Fatalf("after close: %v", err)
	}
}

func TestClientWatch(t *testing.T) {
	d := New(Options{})
	cl := d.NewClient()
	other := d.NewClient()
	w, err := cl.Watch("/w", "tok")
	if err != nil {
		t.Fatal(err)
	}
	if ev := recvEvent(t, w); ev != (WatchEvent{"/w", "tok"}) {
		t.Fatalf("initial %v", ev)
	}
	// Events queue without a reader and arrive in order.
	for i := range 100 {
		if err := other.WriteString("/w/"+itoa(uint32(i)), ""); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 100 {
		if ev := recvEvent(t, w); ev.Path != "/w/"+itoa(uint32(i)) {
			t.Fatalf("event %d: %v", i, ev)
		}
	}
	if _, err := cl.Watch("/w", "tok"); !errors.Is(err, syscall.EEXIST) {
		t.Fatalf("duplicate: %v", err)
	}
	w.Close()
	if _, ok := <-w.Events(); ok {
		t.Fatal("channel open after Close")
	}
	// The watch is gone: the same watch can be set again.
	w2, err := cl.WatchDepth("/w", "tok", 0)
	if err != nil {
		t.Fatal(err)
	}
	recvEvent(t, w2)
	other.WriteString("/w/deep", "")
	noEvent(t, w2)
	other.WriteString("/w", "v")
	if ev := recvEvent(t, w2); ev.Path != "/w" {
		t.Fatalf("depth 0: %v", ev)
	}
	// A watch that calls back into the store from its reader must not
	// deadlock: events are delivered outside the daemon's lock.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ev := range w2.Events() {
			// Events still queued when cl.Close below runs meet a
			// closed client: ErrClosed, not a failure.
			if _, err := cl.Read(ev.Path); err != nil && !errors.Is(err, syscall.ENOENT) && !errors.Is(err, ErrClosed) {
				t.Error(err)
			}
		}
	}()
	for range 10 {
		other.WriteString("/w", "again")
	}
	cl.Close() // closes w2's channel, ending the reader
	wg.Wait()
}

func TestClientTransaction(t *testing.T) {
	d := New(Options{})
	cl := d.NewClient()
	other := d.NewClient()
	cl.WriteString("/n", "0")
	// A conflicting change between reads and commit makes Transaction
	// retry the function.
	runs := 0
	err := cl.Transaction(func(tx *Tx) error {
		runs++
		v, err := tx.ReadString("/n")
		if err != nil {
			return err
		}
		if runs == 1 {
			other.WriteString("/n", "10")
		}
		return tx.WriteString("/n", v+"+1")
	})
	if err != nil || runs != 2 {
		t.Fatalf("err %v runs %d", err, runs)
	}
	if v, _ := cl.ReadString("/n"); v != "10+1" {
		t.Fatalf("n = %q", v)
	}
	// An error from the function aborts.
	boom := errors.New("boom")
	if err := cl.Transaction(func(tx *Tx) error {
		tx.WriteString("/n", "lost")
		return boom
	}); err != boom {
		t.Fatal(err)
	}
	if v, _ := cl.ReadString("/n"); v != "10+1" {
		t.Fatalf("aborted write leaked: %q", v)
	}
	// Explicit Begin/Commit and Abort; operations on an ended Tx fail.
	tx, err := cl.Begin()
	if err != nil {
		t.Fatal(err)
	}
	tx.Mkdir("/tx/dir")
	tx.SetPerms("/tx/dir", Perm{5, AccessNone})
	if ch, _ := tx.Directory("/tx"); !slices.Equal(ch, []string{"dir"}) {
		t.Fatalf("in tx: %v", ch)
	}
	if p, _ := tx.GetPerms("/tx/dir"); FormatPerms(p) != "n5" {
		t.Fatalf("in tx: %v", p)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rm("/tx"); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("ended tx: %v", err)
	}
	tx, _ = cl.Begin()
	tx.Rm("/tx")
	tx.Abort()
	if _, err := cl.Read("/tx/dir"); err != nil {
		t.Fatal(err)
	}
}

func TestClientConcurrent(t *testing.T) {
	d := New(Options{})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := d.NewClient()
			defer cl.Close()
			p := "/conc/" + itoa(uint32(i))
			for j := range 100 {
				if err := cl.Transaction(func(tx *Tx) error {
					v, _ := tx.ReadString("/conc/counter")
					if err := tx.WriteString("/conc/counter", v+"x"); err != nil {
						return err
					}
					return tx.WriteString(p, itoa(uint32(j)))
				}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	cl := d.NewClient()
	v, _ := cl.ReadString("/conc/counter")
	if len(v) != 800 {
		t.Fatalf("counter has %d increments, want 800: lost updates", len(v))
	}
	checkStore(t, d)
}

func TestPopulateDomU(t *testing.T) {
	d := New(Options{})
	cl := d.NewClient()
	u := DomU{
		Domid: 3, Name: "guest", UUID: "01234567-89ab-cdef-0123-456789abcdef",
		MaxMemKiB: 262144, TargetMemKiB: 262144, VCPUs: 2, OnlineVCPUs: 1,
		StorePort: 1, StoreRingRef: 4660, ConsolePort: 2, ConsoleRingRef: 4661,
		Kernel: "/boot/vmlinuz", Cmdline: "console=hvc0",
	}
	if err := cl.PopulateDomU(u); err != nil {
		t.Fatal(err)
	}
	// Populating again (a reboot) starts from scratch without error.
	cl.WriteString("/local/domain/3/stale", "x")
	if err := cl.PopulateDomU(u); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Read("/local/domain/3/stale"); !errors.Is(err, syscall.ENOENT) {
		t.Fatal("old tree kept")
	}
	for path, want := range map[string]string{
		"/local/domain/3/name":                            "guest",
		"/local/domain/3/domid":                           "3",
		"/local/domain/3/vm":                              "/vm/" + u.UUID,
		"/local/domain/3/memory/target":                   "262144",
		"/local/domain/3/memory/static-max":               "262144",
		"/local/domain/3/cpu/0/availability":              "online",
		"/local/domain/3/cpu/1/availability":              "offline",
		"/local/domain/3/store/port":                      "1",
		"/local/domain/3/store/ring-ref":                  "4660",
		"/local/domain/3/console/port":                    "2",
		"/local/domain/3/console/ring-ref":                "4661",
		"/local/domain/3/console/limit":                   "1048576",
		"/local/domain/3/console/type":                    "xenconsoled",
		"/local/domain/3/console/output":                  "pty",
		"/local/domain/3/control/shutdown":                "",
		"/vm/" + u.UUID + "/name":                         "guest",
		"/vm/" + u.UUID + "/uuid":                         u.UUID,
		"/vm/" + u.UUID + "/image/kernel":                 "/boot/vmlinuz",
		"/vm/" + u.UUID + "/image/cmdline":                "console=hvc0",
		"/local/domain/0/backend/console/3/0/frontend-id": "3",
	} {
		if v, err := cl.ReadString(path); err != nil || v != want {
			t.Errorf("%s = %q, %v; want %q", path, v, err, want)
		}
	}
	for path, want := range map[string]string{
		"/local/domain/3":                          "n0,r3",
		"/vm/" + u.UUID:                            "n0,r3",
		"/local/domain/3/cpu":                      "n0,r3",
		"/local/domain/3/control":                  "n0,r3",
		"/local/domain/3/control/shutdown":         "n3",
		"/local/domain/3/control/feature-poweroff": "n3",
		"/local/domain/3/device":                   "n0,r3",
		"/local/domain/3/data":                     "n3",
		"/local/domain/3/console":                  "n0,r3",
		"/local/domain/3/console/ring-ref":         "n0,r3",
		"/local/domain/3/console/backend-id":       "n3,r0",
		"/libxl/3":                                 "n0",
	} {
		if p, err := cl.GetPerms(path); err != nil || FormatPerms(p) != want {
			t.Errorf("perms of %s = %v, %v; want %s", path, FormatPerms(p), err, want)
		}
	}
	// What the guest may do with it.
	g := newGuest(t, d, 3, 0)
	for _, c := range []struct {
		typ   MsgType
		p     []byte
		errno syscall.Errno // 0: success
	}{
		{TypeRead, args("name"), 0},
		{TypeRead, args("console/ring-ref"), 0},
		{TypeWrite, append(args("control/shutdown"), ""...), 0},
		{TypeWrite, append(args("control/feature-poweroff"), "1"...), 0},
		{TypeWrite, append(args("data/updated"), "1"...), 0},
		{TypeWrite, append(args("device/vbd/768/state"), "1"...), syscall.EACCES},
		// Not created (see PopulateDomU), and device/ is not the guest's.
		{TypeWrite, append(args("device/suspend/event-channel"), "5"...), syscall.EACCES},
		{TypeWrite, append(args("memory/target"), "1"...), syscall.EACCES},
		{TypeWrite, append(args("console/ring-ref"), "1"...), syscall.EACCES},
		{TypeWrite, append(args("name"), "evil"...), syscall.EACCES},
		{TypeRead, args("/libxl/3/type"), syscall.EACCES},
		{TypeRead, args("/vm/" + u.UUID + "/name"), 0}, // inherits n0,r3 as under xl
	} {
		r := g.call(c.typ, c.p)
		if c.errno == 0 && r.Type == TypeError {
			t.Errorf("guest %v %q: %q", c.typ, c.p, r.Payload)
		}
		if c.errno != 0 {
			if e, _ := ParseErrno(r.Payload); r.Type != TypeError || e != c.errno {
				t.Errorf("guest %v %q: %v %q, want %s", c.typ, c.p, r.Type, r.Payload, ErrnoName(c.errno))
			}
		}
	}
	checkStore(t, d)
}
