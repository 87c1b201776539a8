package xenstore

import (
	"bytes"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestInitialTree(t *testing.T) {
	d := New(Options{})
	c := wireConn(t, d, 0)
	if got := c.read("/local/domain/0/name"); got != "Domain-0" {
		t.Fatalf("dom0 name %q", got)
	}
	if got := c.getPerms("@releaseDomain"); got != "n0,r"+itoa(DomidAny) {
		t.Fatalf("@releaseDomain perms %q", got)
	}
	if got := string(c.ok(TypeDirectory, 0, args("/"))); got != "tool\x00local\x00" {
		t.Fatalf("root children %q", got)
	}
	checkStore(t, d)
}

func TestReadWrite(t *testing.T) {
	d := New(Options{})
	c := wireConn(t, d, 0)
	c.wantErr(syscall.ENOENT, TypeRead, 0, args("/a"))
	c.write("/a/b/c", "hello")
	if got := c.read("/a/b/c"); got != "hello" {
		t.Fatalf("read %q", got)
	}
	// WRITE creates the parents, empty.
	if got := c.read("/a/b"); got != "" {
		t.Fatalf("parent value %q", got)
	}
	// Values are binary, NULs included; the empty value is allowed.
	c.ok(TypeWrite, 0, append(args("/bin"), 0, 1, 0, 2))
	if got := c.ok(TypeRead, 0, args("/bin")); !bytes.Equal(got, []byte{0, 1, 0, 2}) {
		t.Fatalf("binary value %q", got)
	}
	c.ok(TypeWrite, 0, args("/empty"))
	if got := c.read("/empty"); got != "" {
		t.Fatalf("empty value %q", got)
	}
	// Overwrite.
	c.write("/a/b/c", "bye")
	if got := c.read("/a/b/c"); got != "bye" {
		t.Fatalf("overwrite %q", got)
	}
	// Relative paths of dom0 are below /local/domain/0.
	c.write("rel/x", "1")
	if got := c.read("/local/domain/0/rel/x"); got != "1" {
		t.Fatalf("relative %q", got)
	}
	// WRITE needs a NUL after the path; READ exactly one NUL at the end.
	c.wantErr(syscall.EINVAL, TypeWrite, 0, []byte("/nonul"))
	c.wantErr(syscall.EINVAL, TypeRead, 0, []byte("/a"))
	c.wantErr(syscall.EINVAL, TypeRead, 0, args("/a", "b"))
	c.wantErr(syscall.EINVAL, TypeRead, 0, nil)
	checkStore(t, d)
}

func TestPaths(t *testing.T) {
	d := New(Options{})
	c := wireConn(t, d, 0)
	long := "/" + strings.Repeat("a", AbsPathMax-1)
	c.write(long, "x")
	for _, p := range []string{
		"", "/a/", "//a", "/a//b", "/a b", "/a.b", "/ä", "@introduceDomain", "/a\x01",
		long + "a",
	} {
		c.wantErr(syscall.EINVAL, TypeWrite, 0, append(args(p), 'v'))
		c.wantErr(syscall.EINVAL, TypeRead, 0, args(p))
	}
	// "/" itself is fine to read and list.
	c.ok(TypeRead, 0, args("/"))
	c.write("/a-b_c@d/E9", "ok")
}

func TestPathMaxForGuests(t *testing.T) {
	d := New(Options{})
	_, g := guestSetup(t, d, 3)
	// Segments keep each node under the node-size quota.
	rel := "data"
	for len(rel)+100 < RelPathMax {
		rel += "/" + strings.Repeat("x", 99)
	}
	rel += "/" + strings.Repeat("y", RelPathMax-len(rel)-1)
	g.write(rel, "1") // exactly path-max below the home: allowed
	g.wantErr(syscall.EINVAL, TypeWrite, 0, append(args(rel+"y"), '1'))
	g.wantErr(syscall.EINVAL, TypeRead, 0, args("/local/domain/3/"+rel+"y"))
}

func TestMkdir(t *testing.T) {
	d := New(Options{})
	c := wireConn(t, d, 0)
	c.write("/m", "keep")
	c.ok(TypeMkdir, 0, args("/m"))
	if got := c.read("/m"); got != "keep" {
		t.Fatalf("MKDIR changed the value: %q", got)
	}
	c.ok(TypeMkdir, 0, args("/m/x/y"))
	if got := string(c.ok(TypeDirectory, 0, args("/m/x"))); got != "y\x00" {
		t.Fatalf("dir %q", got)
	}
	c.wantErr(syscall.EINVAL, TypeMkdir, 0, args("/m/"))
}

func TestRm(t *testing.T) {
	d := New(Options{})
	c := wireConn(t, d, 0)
	c.write("/r/a/b", "1")
	c.write("/r/a/c", "2")
	c.write("/r/z", "3")
	c.ok(TypeRm, 0, args("/r/a"))
	c.wantErr(syscall.ENOENT, TypeRead, 0, args("/r/a/b"))
	c.wantErr(syscall.ENOENT, TypeRead, 0, args("/r/a"))
	if got := string(c.ok(TypeDirectory, 0, args("/r"))); got != "z\x00" {
		t.Fatalf("after rm %q", got)
	}
	// Missing node with an existing parent: fine. Missing parent: ENOENT.
	c.ok(TypeRm, 0, args("/r/a"))
	c.wantErr(syscall.ENOENT, TypeRm, 0, args("/r/a/b"))
	c.wantErr(syscall.EINVAL, TypeRm, 0, args("/"))
	checkStore(t, d)
}

func TestDirectory(t *testing.T) {
	d := New(Options{})
	c := wireConn(t, d, 0)
	for _, n := range []string{"c", "a", "b"} {
		c.write("/d/"+n, "")
	}
	// Creation order, as xenstored.
	if got := string(c.ok(TypeDirectory, 0, args("/d"))); got != "c\x00a\x00b\x00" {
		t.Fatalf("children %q", got)
	}
	if got := c.ok(TypeDirectory, 0, args("/d/a")); len(got) != 0 {
		t.Fatalf("leaf children %q", got)
	}
	c.wantErr(syscall.ENOENT, TypeDirectory, 0, args("/nope"))
	// A reply over XENSTORE_PAYLOAD_MAX is E2BIG.
	for i := range 200 {
		c.write("/big/"+strings.Repeat("n", 30)+strconv.Itoa(i), "")
	}
	c.wantErr(syscall.E2BIG, TypeDirectory, 0, args("/big"))
}

func TestDirectoryPart(t *testing.T) {
	d := New(Options{})
	c := wireConn(t, d, 0)
	var want []string
	for i := range 300 {
		n := strings.Repeat("k", 20) + strconv.Itoa(i)
		want = append(want, n)
		c.write("/big/"+n, "")
	}
	var got []string
	var gen string
	off := 0
	for round := 0; ; round++ {
		if round > 10 {
			t.Fatal("DIRECTORY_PART does not terminate")
		}
		r := c.ok(TypeDirectoryPart, 0, args("/big", strconv.Itoa(off)))
		if len(r) > PayloadMax {
			t.Fatalf("reply of %d bytes", len(r))
		}
		i := bytes.IndexByte(r, 0)
		g := string(r[:i])
		if gen == "" {
			gen = g
		} else if g != gen {
			t.Fatalf("generation changed %s -> %s without a change", gen, g)
		}
		body := r[i+1:]
		done := bytes.HasSuffix(body, []byte{0, 0}) || (len(body) == 1 && body[0] == 0)
		if done {
			body = body[:len(body)-1]
		}
		part := nulStrings(body)
		got = append(got, part...)
		off += len(body)
		if done {
			break
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("children differ: got %d, want %d", len(got), len(want))
	}
	// Offset past the end: gencnt and an empty list.
	r := c.ok(TypeDirectoryPart, 0, args("/big", "999999"))
	if string(r) != gen+"\x00\x00" {
		t.Fatalf("past end %q", r)
	}
	// Any change moves the generation.
	c.write("/big/new", "")
	r = c.ok(TypeDirectoryPart, 0, args("/big", "0"))
	if string(r[:bytes.IndexByte(r, 0)]) == gen {
		t.Fatal("generation unchanged after adding a child")
	}
	c.wantErr(syscall.EINVAL, TypeDirectoryPart, 0, args("/big"))
	c.wantErr(syscall.ENOENT, TypeDirectoryPart, 0, args("/none", "0"))
}

func TestGetSetPerms(t *testing.T) {
	d := New(Options{})
	c := wireConn(t, d, 0)
	c.write("/p", "")
	if got := c.getPerms("/p"); got != "n0" {
		t.Fatalf("inherited %q", got)
	}
	c.setPerms("/p", "r5", "b7", "w0x9", "n010")
	if got := c.getPerms("/p"); got != "r5,b7,w9,n8" {
		t.Fatalf("perms %q", got)
	}
	// New nodes inherit the parent's list; dom0 keeps the owner.
	c.write("/p/q", "")
	if got := c.getPerms("/p/q"); got != "r5,b7,w9,n8" {
		t.Fatalf("inherited %q", got)
	}
	for _, bad := range [][]string{{"/p"}, {"/p", "x1"}, {"/p", "r"}, {"/p", "r1a"}, {"/p", "r70000"}, {"/p", "r-1"}} {
		c.wantErr(syscall.EINVAL, TypeSetPerms, 0, args(bad...))
	}
	c.wantErr(syscall.ENOENT, TypeSetPerms, 0, args("/none", "n0"))
	// Special nodes take permissions too.
	c.setPerms("@introduceDomain", "n0", "r4")
	if got := c.getPerms("@introduceDomain"); got != "n0,r4" {
		t.Fatalf("special %q", got)
	}
}

func TestUnknownAndClientOnlyTypes(t *testing.T) {
	d := New(Options{})
	c := wireConn(t, d, 0)
	for _, typ := range []MsgType{TypeWatchEvent, TypeError, typeRestrict, TypeCount, 99, TypeInvalid} {
		c.wantErr(syscall.ENOSYS, typ, 0, args("/"))
	}
}

func TestTransactionIDChecks(t *testing.T) {
	d := New(Options{})
	c := wireConn(t, d, 0)
	c.wantErr(syscall.ENOENT, TypeRead, 42, args("/"))
	c.wantErr(syscall.ENOENT, TypeTransactionEnd, 0, args("T"))
	id := txStart(t, c)
	c.wantErr(syscall.EBUSY, TypeTransactionStart, id, args(""))
	c.wantErr(syscall.EINVAL, TypeTransactionEnd, id, args("X"))
	c.ok(TypeTransactionEnd, id, args("F"))
	c.wantErr(syscall.ENOENT, TypeTransactionEnd, id, args("F"))
	// Transaction ids are per connection.
	o := wireConn(t, d, 0)
	id = txStart(t, c)
	o.wantErr(syscall.ENOENT, TypeRead, id, args("/"))
	// WATCH ignores the tx_id.
	o.ok(TypeWatch, 999, args("/", "t"))
}

func txStart(t testing.TB, c *tconn) uint32 {
	t.Helper()
	r := c.ok(TypeTransactionStart, 0, args(""))
	if len(r) < 2 || r[len(r)-1] != 0 {
		t.Fatalf("TRANSACTION_START reply %q", r)
	}
	id, err := strconv.ParseUint(string(r[:len(r)-1]), 10, 32)
	if err != nil || id == 0 {
		t.Fatalf("TRANSACTION_START reply %q", r)
	}
	return uint32(id)
}

func TestDomainMessages(t *testing.T) {
	d := New(Options{})
	c := wireConn(t, d, 0)
	if got := string(c.ok(TypeGetDomainPath, 0, args("7"))); got != "/local/domain/7\x00" {
		t.Fatalf("GET_DOMAIN_PATH %q", got)
	}
	c.wantErr(syscall.EINVAL, TypeGetDomainPath, 0, args("70000"))
	c.wantErr(syscall.EINVAL, TypeGetDomainPath, 0, args("x"))
	if got := string(c.ok(TypeIsDomainIntroduced, 0, args("7"))); got != "F\x00" {
		t.Fatalf("IS_DOMAIN_INTRODUCED %q", got)
	}
	if got := string(c.ok(TypeIsDomainIntroduced, 0, args(itoa(DomidSelf)))); got != "T\x00" {
		t.Fatalf("IS_DOMAIN_INTRODUCED(DOMID_SELF) %q", got)
	}
	page := make([]byte, 4096)
	if _, err := d.Introduce(7, page, nil); err != nil {
		t.Fatal(err)
	}
	if got := string(c.ok(TypeIsDomainIntroduced, 0, args("7"))); got != "T\x00" {
		t.Fatalf("IS_DOMAIN_INTRODUCED %q", got)
	}
	c.ok(TypeResume, 0, args("7"))
	c.wantErr(syscall.ENOENT, TypeResume, 0, args("8"))
	c.wantErr(syscall.EINVAL, TypeResume, 0, args("0"))
	c.wantErr(syscall.ENOENT, TypeSetTarget, 0, args("7", "8"))
	// INTRODUCE of a new domain needs a ring mapper.
	c.wantErr(syscall.EINVAL, TypeIntroduce, 0, args("8", "1234", "3"))
	c.wantErr(syscall.EINVAL, TypeIntroduce, 0, args("8", "1234"))
	c.wantErr(syscall.EINVAL, TypeIntroduce, 0, args("0", "1234", "3"))
	// INTRODUCE of a connected domain resets it.
	c.ok(TypeIntroduce, 0, args("7", "1234", "3"))
	c.ok(TypeRelease, 0, args("7"))
	if got := string(c.ok(TypeIsDomainIntroduced, 0, args("7"))); got != "F\x00" {
		t.Fatalf("after RELEASE %q", got)
	}
	c.wantErr(syscall.ENOENT, TypeRelease, 0, args("7"))
	c.wantErr(syscall.EINVAL, TypeRelease, 0, args("0"))
}

func TestIntroduceWithMapper(t *testing.T) {
	page := make([]byte, 4096)
	var mapped []uint64
	d := New(Options{MapRing: func(domid uint32, gfn uint64, port uint32) ([]byte, func(), error) {
		mapped = append(mapped, uint64(domid), gfn, uint64(port))
		return page, nil, nil
	}})
	c := wireConn(t, d, 0)
	c.watch("@introduceDomain", "i")
	c.takeEvents()
	c.ok(TypeIntroduce, 0, args("9", "4660", "5"))
	if len(mapped) != 3 || mapped[0] != 9 || mapped[1] != 4660 || mapped[2] != 5 {
		t.Fatalf("mapper called with %v", mapped)
	}
	c.wantEvents(evs("@introduceDomain", "i")...)
	if w := newRingWordsMust(t, page); w.load(offServerFeatures) != SupportedFeatures {
		t.Fatalf("server_features %#x", w.load(offServerFeatures))
	}
}

func newRingWordsMust(t testing.TB, page []byte) ringWords {
	t.Helper()
	w, err := newRingWords(page)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestPrivilegedOnlyTypes(t *testing.T) {
	d := New(Options{})
	_, g := guestSetup(t, d, 3)
	for _, m := range []struct {
		typ MsgType
		p   []byte
	}{
		{TypeControl, args("check")},
		{TypeIntroduce, args("4", "1", "1")},
		{TypeRelease, args("3")},
		{TypeIsDomainIntroduced, args("3")},
		{TypeResume, args("3")},
		{TypeSetTarget, args("3", "4")},
		{TypeSetFeature, args("3", "0")},
		{TypeGetQuota, nil},
		{TypeSetQuota, args("nodes", "5")},
		{TypeGetFeature, args("3")},
	} {
		g.wantErr(syscall.EACCES, m.typ, 0, m.p)
	}
	// Open to guests.
	if got := string(g.ok(TypeGetDomainPath, 0, args("3"))); got != "/local/domain/3\x00" {
		t.Fatalf("GET_DOMAIN_PATH %q", got)
	}
	if got := string(g.ok(TypeGetFeature, 0, nil)); got != strconv.Itoa(int(SupportedFeatures))+"\x00" {
		t.Fatalf("GET_FEATURE %q", got)
	}
}

func TestFeatures(t *testing.T) {
	d := New(Options{})
	c := wireConn(t, d, 0)
	c.ok(TypeSetFeature, 0, args("4", "2"))
	if got := string(c.ok(TypeGetFeature, 0, args("4"))); got != "2\x00" {
		t.Fatalf("GET_FEATURE %q", got)
	}
	c.wantErr(syscall.EINVAL, TypeSetFeature, 0, args("4", "16"))
	page := make([]byte, 4096)
	if _, err := d.Introduce(4, page, nil); err != nil {
		t.Fatal(err)
	}
	if got := newRingWordsMust(t, page).load(offServerFeatures); got != 2 {
		t.Fatalf("server_features %d", got)
	}
	c.wantErr(syscall.EBUSY, TypeSetFeature, 0, args("4", "2"))
	// Without WATCHDEPTH the third WATCH parameter is refused.
	g := &tconn{t: t, d: d, c: d.domains[4].conn}
	d.domains[4].conn.tr = nopTransport{}
	g.wantErr(syscall.EINVAL, TypeWatch, 0, args("/", "t", "1"))
}

func TestControl(t *testing.T) {
	d := New(Options{})
	c := wireConn(t, d, 0)
	if got := string(c.ok(TypeControl, 0, args("check"))); got != "OK\x00" {
		t.Fatalf("check %q", got)
	}
	if got := string(c.ok(TypeDebug, 0, args("help"))); !strings.Contains(got, "quota") {
		t.Fatalf("help %q", got)
	}
	c.ok(TypeControl, 0, args("print", "hello"))
	c.wantErr(syscall.EINVAL, TypeControl, 0, args("live-update", "-a"))
	c.wantErr(syscall.EINVAL, TypeControl, 0, nil)
	got := string(c.ok(TypeControl, 0, args("quota")))
	if !strings.Contains(got, "Quota settings:") || !strings.Contains(got, "nodes") || !strings.Contains(got, "1000") {
		t.Fatalf("quota %q", got)
	}
	c.ok(TypeControl, 0, args("quota", "set", "nodes", "50"))
	if got := string(c.ok(TypeGetQuota, 0, args("nodes"))); got != "50\x00" {
		t.Fatalf("after set %q", got)
	}
	c.wantErr(syscall.EINVAL, TypeControl, 0, args("quota", "set", "nodes", "0"))
	c.wantErr(syscall.EINVAL, TypeControl, 0, args("quota", "set", "bogus", "3"))
	c.wantErr(syscall.ENOENT, TypeControl, 0, args("quota", "12"))
	_, _ = guestSetup(t, d, 12)
	g := wireConn(t, d, 12)
	g.write("data/x", "1")
	got = string(c.ok(TypeControl, 0, args("quota", "12")))
	if !strings.Contains(got, "Domain 12:") || !strings.Contains(got, "nodes") {
		t.Fatalf("quota 12 %q", got)
	}
}

func TestGetSetQuota(t *testing.T) {
	d := New(Options{})
	c := wireConn(t, d, 0)
	if got := string(c.ok(TypeGetQuota, 0, nil)); !strings.HasPrefix(got, "nodes watches") {
		t.Fatalf("names %q", got)
	}
	if got := string(c.ok(TypeGetQuota, 0, args("watches"))); got != "128\x00" {
		t.Fatalf("watches %q", got)
	}
	c.ok(TypeSetQuota, 0, args("5", "watches", "3"))
	if got := string(c.ok(TypeGetQuota, 0, args("5", "watches"))); got != "3\x00" {
		t.Fatalf("domain watches %q", got)
	}
	if got := string(c.ok(TypeGetQuota, 0, args("watches"))); got != "128\x00" {
		t.Fatalf("global changed: %q", got)
	}
	c.wantErr(syscall.EINVAL, TypeGetQuota, 0, args("bogus"))
	c.wantErr(syscall.EINVAL, TypeSetQuota, 0, args("watches"))
	c.wantErr(syscall.EINVAL, TypeSetQuota, 0, args("watches", "x"))
	c.wantErr(syscall.EINVAL, TypeGetQuota, 0, args("1", "2", "3"))
}
