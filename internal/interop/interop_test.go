package interop

import (
	"context"
	"errors"
	"path"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zklock/zklock/internal/zktest"
	"github.com/zklock/zklock/zktesting"
)

// timeout bounds every wait; JVMs take seconds to start on a small machine.
const timeout = zktesting.Timeout

func TestMain(m *testing.M) { zktest.Main(m) }

// servers returns the addresses of the package's shared test server.
func servers(t *testing.T) []string {
	t.Helper()
	return zktesting.Shared(t).Direct()
}

// waitCtx bounds one wait.
func waitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}

// startPeers starts n peers concurrently, since each JVM start is slow, and
// closes them when the test ends. A missing dependency fails the test: these
// tests exist to prove interoperability, so skipping would hide the gap.
func startPeers(t *testing.T, n int, start func(context.Context, []string, string) (*Peer, error)) []*Peer {
	t.Helper()
	addrs := servers(t)
	dir := t.TempDir()
	ctx := waitCtx(t)
	peers := make([]*Peer, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { peers[i], errs[i] = start(ctx, addrs, dir) })
	}
	wg.Wait()
	for _, p := range peers {
		if p != nil {
			t.Cleanup(func() {
				if err := p.Close(); err != nil {
					t.Errorf("closing %v: %v", p, err)
				}
			})
		}
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return peers
}

func do(t *testing.T, p *Peer, cmd, reply string) string {
	t.Helper()
	l, err := p.Do(waitCtx(t), cmd, reply)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func expect(t *testing.T, p *Peer, prefix string) string {
	t.Helper()
	l, err := p.Expect(waitCtx(t), prefix)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// field returns the i-th space-separated field of a reply line.
func field(t *testing.T, line string, i int) string {
	t.Helper()
	f := strings.Fields(line)
	if i >= len(f) {
		t.Fatalf("reply %q has no field %d", line, i)
	}
	return f[i]
}

// noPending fails if a line starting with prefix has arrived unconsumed.
func noPending(t *testing.T, p *Peer, prefix string) {
	t.Helper()
	for _, l := range p.Pending() {
		if strings.HasPrefix(l, prefix) {
			t.Fatalf("%v printed %q too early", p, l)
		}
	}
}

type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}

// connect opens a plain go-zookeeper session for checking the tree.
func connect(t *testing.T) *zk.Conn {
	t.Helper()
	conn, events, err := zk.Connect(servers(t), 10*time.Second, zk.WithLogger(quietLogger{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	ctx := waitCtx(t)
	for {
		select {
		case ev := <-events:
			if ev.State == zk.StateHasSession {
				return conn
			}
		case <-ctx.Done():
			t.Fatalf("no ZooKeeper session: %v", ctx.Err())
		}
	}
}

// waitChildren waits, by watch rather than polling, until dir has n
// children, and returns them sorted. A missing dir counts as empty: the
// server removes empty containers, as Curator creates its directories.
func waitChildren(t *testing.T, conn *zk.Conn, dir string, n int) []string {
	t.Helper()
	ctx := waitCtx(t)
	for {
		kids, _, ch, err := conn.ChildrenW(dir)
		if errors.Is(err, zk.ErrNoNode) && n == 0 {
			return nil
		}
		if err != nil {
			t.Fatalf("children of %s: %v", dir, err)
		}
		if len(kids) == n {
			slices.Sort(kids)
			return kids
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("%s has children %q, want %d: %v", dir, kids, n, ctx.Err())
		}
	}
}

// checkExclusion runs the shared scenario: a holds dir, b queues behind it
// (two children), and b gets the lock only after a unlocks. lockA and lockB
// are the peers' lock commands, reply their reply word; nodeOK checks a lock
// node's name.
func checkExclusion(t *testing.T, a, b *Peer, dir, lockA, lockB, reply string, nodeOK func(string) bool) {
	t.Helper()
	conn := connect(t)

	aNode := field(t, do(t, a, lockA, reply+" "+dir), 2)
	if path.Dir(aNode) != dir || !nodeOK(path.Base(aNode)) {
		t.Fatalf("first holder's node %q: not a valid lock node under %s", aNode, dir)
	}

	if err := b.Send(lockB); err != nil {
		t.Fatal(err)
	}
	kids := waitChildren(t, conn, dir, 2)
	if !slices.Contains(kids, path.Base(aNode)) {
		t.Fatalf("children %q of %s lack the holder's node %q", kids, dir, aNode)
	}
	// b's node exists, so b is queued; it must not hold the lock yet.
	noPending(t, b, reply)

	do(t, a, "unlock "+dir, "unlocked "+dir)
	bNode := field(t, expect(t, b, reply+" "+dir), 2)
	if bNode == aNode || path.Dir(bNode) != dir || !nodeOK(path.Base(bNode)) || !slices.Contains(kids, path.Base(bNode)) {
		t.Fatalf("second holder's node %q: want the other child of %s among %q", bNode, dir, kids)
	}
	t.Logf("%v held %s, then %v held %s", a, aNode, b, bNode)
	do(t, b, "unlock "+dir, "unlocked "+dir)
	waitChildren(t, conn, dir, 0)
}

// curatorNode is InterProcessMutex's protected node name: "_c_", a UUID,
// "-lock-" and the sequence number.
var curatorNode = regexp.MustCompile(`^_c_[0-9a-f-]{36}-lock-[0-9]{10}$`)

func TestCuratorMutex(t *testing.T) {
	p := startPeers(t, 2, StartCurator)
	checkExclusion(t, p[0], p[1], "/x", "lock /x", "lock /x", "locked", curatorNode.MatchString)
}

func TestKazooLock(t *testing.T) {
	p := startPeers(t, 2, StartKazoo)
	isLock := func(name string) bool { return strings.Contains(name, "__lock__") }
	checkExclusion(t, p[0], p[1], "/kx", "lock /kx a", "lock /kx b", "locked", isLock)

	conn := connect(t)
	node := field(t, do(t, p[0], "rlock /kr reader", "rlocked /kr"), 2)
	if path.Dir(node) != "/kr" || !strings.Contains(path.Base(node), "__rlock__") {
		t.Fatalf("read lock node %q: want a __rlock__ node under /kr", node)
	}
	if ok, _, err := conn.Exists(node); err != nil || !ok {
		t.Fatalf("read lock node %s: exists=%v, err=%v", node, ok, err)
	}
	t.Logf("%v read-locked %s", p[0], node)
	do(t, p[0], "runlock /kr", "runlocked /kr")
	waitChildren(t, conn, "/kr", 0)
}

func TestCuratorLeaderLatch(t *testing.T) {
	p := startPeers(t, 2, StartCurator)
	ids := []string{"peer-a", "peer-b"}
	for i, q := range p {
		if err := q.Send("latch /e " + ids[i]); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range p {
		expect(t, q, "latch-started /e")
	}

	// Whoever gets "leader" first wins; the other wait is then cancelled.
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	won := make(chan int, len(p))
	var wg sync.WaitGroup
	for i, q := range p {
		wg.Go(func() {
			if _, err := q.Expect(ctx, "leader /e"); err == nil {
				won <- i
			}
			cancel()
		})
	}
	wg.Wait()
	close(won)
	var winners []int
	for i := range won {
		winners = append(winners, i)
	}
	if len(winners) != 1 {
		t.Fatalf("peers %v became leader, want exactly one", winners)
	}
	w := winners[0]
	leader, other := p[w], p[1-w]
	t.Logf("%v (%s) leads /e", leader, ids[w])

	// The other peer sees the winner as leader and has not claimed it.
	if got := field(t, do(t, other, "leader-id /e", "leader-id /e"), 2); got != ids[w] {
		t.Fatalf("%v sees leader %q, want %q", other, got, ids[w])
	}
	noPending(t, other, "leader /e")

	do(t, leader, "latch-close /e", "latch-closed /e")
	expect(t, leader, "notleader /e")
	expect(t, other, "leader /e")
	if got := field(t, do(t, other, "leader-id /e", "leader-id /e"), 2); got != ids[1-w] {
		t.Fatalf("after close %v sees leader %q, want itself (%q)", other, got, ids[1-w])
	}
	do(t, other, "latch-close /e", "latch-closed /e")
}

// TestMissingDependencies checks that an absent library reads as an install
// instruction.
func TestMissingDependencies(t *testing.T) {
	addrs := []string{"127.0.0.1:1"}
	lib, py := javaLib, debianPython
	t.Cleanup(func() { javaLib, debianPython = lib, py })

	javaLib = t.TempDir()
	_, err := StartCurator(waitCtx(t), addrs, t.TempDir())
	if !errors.Is(err, ErrNotInstalled) || !strings.Contains(err.Error(), "libcurator-recipes-java") || !strings.Contains(err.Error(), "libzookeeper-java") {
		t.Errorf("StartCurator without jars: err = %v, want ErrNotInstalled naming the packages", err)
	}
	t.Log(err)

	for _, bad := range []string{"/nonexistent/python3", "/bin/false"} {
		debianPython = bad
		_, err := StartKazoo(waitCtx(t), addrs, t.TempDir())
		if !errors.Is(err, ErrNotInstalled) || !strings.Contains(err.Error(), "python3-kazoo") {
			t.Errorf("StartKazoo with %s: err = %v, want ErrNotInstalled naming python3-kazoo", bad, err)
		}
		t.Log(err)
	}
}

// TestPeerProtocol checks Expect, Close and Kill against a shell stand-in,
// which needs neither Java nor Python.
func TestPeerProtocol(t *testing.T) {
	const script = `echo ready
while read cmd arg; do
	case $cmd in
	twice) echo "b $arg"; echo "a $arg" ;;
	fail) echo "error fail $arg: boom" ;;
	die) echo dying >&2; exit 3 ;;
	quit) echo bye; exit 0 ;;
	esac
done`
	run := func(t *testing.T) *Peer {
		p, err := start(waitCtx(t), "sh", t.TempDir(), []string{"/bin/sh", "-c", script})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}

	t.Run("expect", func(t *testing.T) {
		p := run(t)
		if got := do(t, p, "twice 1", "a"); got != "a 1" {
			t.Errorf("Do = %q, want %q", got, "a 1")
		}
		if got := p.Pending(); !slices.Equal(got, []string{"b 1"}) {
			t.Errorf("Pending = %q, want [b 1]", got)
		}
		if got := expect(t, p, "b"); got != "b 1" {
			t.Errorf("Expect from backlog = %q, want %q", got, "b 1")
		}
		if _, err := p.Do(waitCtx(t), "fail x", "ok"); err == nil || !strings.Contains(err.Error(), "boom") {
			t.Errorf("Do of failing command: err = %v, want the peer's error line", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if _, err := p.Expect(ctx, "never"); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "a 1") {
			t.Errorf("Expect past deadline: err = %v, want DeadlineExceeded quoting last lines", err)
		}
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := p.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	})

	t.Run("exit", func(t *testing.T) {
		p := run(t)
		if _, err := p.Do(waitCtx(t), "die", "never"); err == nil || !strings.Contains(err.Error(), "dying") {
			t.Errorf("Expect after exit: err = %v, want one quoting stderr", err)
		}
		if err := p.Close(); err == nil || !strings.Contains(err.Error(), "exit status 3") {
			t.Errorf("Close after exit 3: err = %v", err)
		}
	})

	t.Run("kill", func(t *testing.T) {
		p := run(t)
		if err := p.Kill(); err != nil {
			t.Errorf("Kill: %v", err)
		}
		if err := p.Close(); err != nil {
			t.Errorf("Close after Kill: %v", err)
		}
		if err := p.Send("twice 2"); err == nil {
			t.Error("Send after Kill succeeded")
		}
	})
}

// TestReadWriteLockInterop checks the rlock and wlock commands between two
// peers of one library: reads share, a write waits for every read and
// excludes them, and each side names its nodes as its library does.
func TestReadWriteLockInterop(t *testing.T) {
	for _, tc := range []struct {
		name        string
		start       func(context.Context, []string, string) (*Peer, error)
		read, write *regexp.Regexp
	}{
		{
			name:  "curator",
			start: StartCurator,
			read:  regexp.MustCompile(`^_c_[0-9a-f-]{36}-__READ__[0-9]{10}$`),
			write: regexp.MustCompile(`^_c_[0-9a-f-]{36}-__WRIT__[0-9]{10}$`),
		},
		{
			name:  "kazoo",
			start: StartKazoo,
			read:  regexp.MustCompile(`^[0-9a-f]{32}__rlock__[0-9]{10}$`),
			write: regexp.MustCompile(`^[0-9a-f]{32}__lock__[0-9]{10}$`),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startPeers(t, 2, tc.start)
			a, b := p[0], p[1]
			dir := "/rw-" + tc.name
			conn := connect(t)
			node := func(line string, re *regexp.Regexp) string {
				t.Helper()
				n := field(t, line, 2)
				if path.Dir(n) != dir || !re.MatchString(path.Base(n)) {
					t.Fatalf("node %q: want a child of %s matching %v", n, dir, re)
				}
				return path.Base(n)
			}

			ra := node(do(t, a, "rlock "+dir, "rlocked "+dir), tc.read)
			rb := node(do(t, b, "rlock "+dir, "rlocked "+dir), tc.read)
			if err := a.Send("wlock " + dir); err != nil {
				t.Fatal(err)
			}
			kids := waitChildren(t, conn, dir, 3)
			noPending(t, a, "wlocked")
			do(t, a, "runlock "+dir, "runlocked "+dir)
			waitChildren(t, conn, dir, 2)
			noPending(t, a, "wlocked")
			do(t, b, "runlock "+dir, "runlocked "+dir)
			wa := node(expect(t, a, "wlocked "+dir), tc.write)
			if !slices.Contains(kids, wa) || wa == ra || wa == rb {
				t.Fatalf("write node %q: want the third child among %q", wa, kids)
			}

			if err := b.Send("rlock " + dir); err != nil {
				t.Fatal(err)
			}
			waitChildren(t, conn, dir, 2)
			noPending(t, b, "rlocked")
			do(t, a, "wunlock "+dir, "wunlocked "+dir)
			node(expect(t, b, "rlocked "+dir), tc.read)
			do(t, b, "runlock "+dir, "runlocked "+dir)
			waitChildren(t, conn, dir, 0)
		})
	}
}

// curatorLease is InterProcessSemaphoreV2's protected lease node name.
var curatorLease = regexp.MustCompile(`^_c_[0-9a-f-]{36}-lease-[0-9]{10}$`)

// TestCuratorSemaphoreInterop checks the sem-acquire and sem-release
// commands between two peers on a semaphore of two leases: both hold a
// lease, a third acquire waits until a lease is returned, and a peer can
// return a lease while its own acquire on the path waits.
func TestCuratorSemaphoreInterop(t *testing.T) {
	p := startPeers(t, 2, StartCurator)
	a, b := p[0], p[1]
	const dir = "/sem"
	leases := dir + "/leases"
	conn := connect(t)
	acquired := func(line string) string {
		t.Helper()
		n := field(t, line, 2)
		if path.Dir(n) != leases || !curatorLease.MatchString(path.Base(n)) {
			t.Fatalf("lease node %q: want a child of %s matching %v", n, leases, curatorLease)
		}
		return n
	}
	acquire := "sem-acquire " + dir + " 2"
	release := func(q *Peer, node string) {
		t.Helper()
		do(t, q, "sem-release "+dir+" "+node, "sem-released "+dir+" "+node)
	}

	a1 := acquired(do(t, a, acquire, "sem-acquired "+dir))
	b1 := acquired(do(t, b, acquire, "sem-acquired "+dir))
	if a1 == b1 {
		t.Fatalf("both peers report lease %s", a1)
	}

	// a's second acquire waits, holding the internal lock, until a returns
	// its first lease on the other lane.
	if err := a.Send(acquire); err != nil {
		t.Fatal(err)
	}
	kids := waitChildren(t, conn, leases, 3)
	waitChildren(t, conn, dir+"/locks", 1)
	noPending(t, a, "sem-acquired")
	release(a, a1)
	a2 := acquired(expect(t, a, "sem-acquired "+dir))
	if !slices.Contains(kids, path.Base(a2)) || a2 == b1 || a2 == a1 {
		t.Fatalf("a's second lease %s: want the third child among %q", a2, kids)
	}

	// b's second acquire waits until b returns its first lease.
	if err := b.Send(acquire); err != nil {
		t.Fatal(err)
	}
	waitChildren(t, conn, leases, 3)
	noPending(t, b, "sem-acquired")
	release(b, b1)
	b2 := acquired(expect(t, b, "sem-acquired "+dir))
	t.Logf("leases %s, %s, then %s, %s", a1, b1, a2, b2)

	release(a, a2)
	release(b, b2)
	waitChildren(t, conn, leases, 0)
	waitChildren(t, conn, dir+"/locks", 0)
	if _, err := a.Do(waitCtx(t), "sem-release "+dir+" "+a2, "sem-released"); err == nil || !strings.Contains(err.Error(), "not held") {
		t.Errorf("second release of %s: err = %v, want the peer's error", a2, err)
	}
}
