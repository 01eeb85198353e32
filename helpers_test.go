package zklock_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/require"

	"github.com/zklock/zklock"
	"github.com/zklock/zklock/internal/interop"
	"github.com/zklock/zklock/zktesting"
)

// integration skips a test that needs a ZooKeeper server under -short.
func integration(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test; needs ZooKeeper")
	}
}

// bounded returns a context that ends with the test or after d.
func bounded(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// connect returns a Session on servers that is closed when the test ends.
func connect(t testing.TB, servers []string, opts ...zklock.SessionOption) *zklock.Session {
	t.Helper()
	s, err := zklock.Connect(bounded(t, zktesting.Timeout), servers, opts...)
	require.NoError(t, err, "connect")
	t.Cleanup(func() { s.Close() })
	return s
}

// plainConn returns a go-zookeeper connection with a session, standing for
// another application; it is closed when the test ends.
func plainConn(t testing.TB, servers []string) *zk.Conn {
	t.Helper()
	conn, ev, err := zk.Connect(servers, 10*time.Second, zk.WithLogInfo(false), zk.WithLogger(quietLogger{}))
	require.NoError(t, err)
	t.Cleanup(conn.Close)
	deadline := time.After(zktesting.Timeout)
	for conn.State() != zk.StateHasSession {
		select {
		case <-ev:
		case <-deadline:
			t.Fatalf("go-zookeeper client got no session within %v", zktesting.Timeout)
		}
	}
	return conn
}

// quietLogger discards go-zookeeper's log messages.
type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}

// nextState reads sub until a change to want arrives, and returns it.
func nextState(ctx context.Context, sub *zklock.Subscription, want zklock.State) (zklock.StateChange, error) {
	for {
		c, err := sub.Next(ctx)
		if err != nil || c.State == want {
			return c, err
		}
	}
}

// waitState reads sub until a change to want arrives, and returns it.
func waitState(t testing.TB, sub *zklock.Subscription, want zklock.State) zklock.StateChange {
	t.Helper()
	c, err := nextState(bounded(t, zktesting.Timeout), sub, want)
	require.NoError(t, err, "waiting for state %s", want)
	return c
}

// expire makes the server expire the ZooKeeper session of a Session
// connected through ps (zktest's ExpireSession), sub being a subscription to
// that Session, and returns the StateExpired change that reported it.
func expire(t testing.TB, ps *zktesting.Proxies, sub *zklock.Subscription) zklock.StateChange {
	t.Helper()
	var expired zklock.StateChange
	ps.ExpireSession(t, func(ctx context.Context) error {
		var err error
		expired, err = nextState(ctx, sub, zklock.StateExpired)
		return err
	})
	return expired
}

// waitGone waits until p does not exist, as seen by another client.
func waitGone(t testing.TB, admin *zk.Conn, p string) {
	t.Helper()
	deadline := time.After(zktesting.Timeout)
	for {
		ok, _, ev, err := admin.ExistsW(p)
		require.NoError(t, err)
		if !ok {
			return
		}
		select {
		case <-ev:
		case <-deadline:
			t.Fatalf("%s still exists after %v", p, zktesting.Timeout)
		}
	}
}

// exists reports whether p exists now (after a sync, so the view is
// current).
func exists(t testing.TB, admin *zk.Conn, p string) bool {
	t.Helper()
	_, err := admin.Sync(p)
	require.NoError(t, err)
	ok, _, err := admin.Exists(p)
	require.NoError(t, err)
	return ok
}

// waitChildren waits until dir has exactly n children, seen by another
// client, and returns them.
func waitChildren(t testing.TB, admin *zk.Conn, dir string, n int) []string {
	t.Helper()
	deadline := time.After(zktesting.Timeout)
	for {
		kids, _, ev, err := admin.ChildrenW(dir)
		if errors.Is(err, zk.ErrNoNode) {
			if n == 0 {
				return nil
			}
			var ok bool
			ok, _, ev, err = admin.ExistsW(dir) // wait for the directory
			require.NoError(t, err)
			if ok {
				continue
			}
		} else {
			require.NoError(t, err)
		}
		if len(kids) == n {
			return kids
		}
		select {
		case <-ev:
		case <-deadline:
			t.Fatalf("%s has children %v, want %d of them", dir, kids, n)
		}
	}
}

// children lists dir now (after a sync, so the view is current).
func children(t testing.TB, admin *zk.Conn, dir string) []string {
	t.Helper()
	_, err := admin.Sync(dir)
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	require.NoError(t, err)
	kids, _, err := admin.Children(dir)
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	require.NoError(t, err)
	return kids
}

// firstBySeq returns the child with the lowest ten-digit sequence suffix,
// read independently of the library's own ordering.
func firstBySeq(kids []string) string {
	first := ""
	for _, k := range kids {
		if first == "" || k[len(k)-10:] < first[len(first)-10:] {
			first = k
		}
	}
	return first
}

// result is the outcome of a blocking call made in another goroutine, and
// when it returned.
type result struct {
	err error
	at  time.Time
}

// async runs call in a goroutine of its own and returns a channel that
// receives its result. call must return by itself (bounded by a ctx or a
// connection the test closes).
func async(call func() error) <-chan result {
	ch := make(chan result, 1)
	go func() {
		err := call()
		ch <- result{err: err, at: time.Now()}
	}()
	return ch
}

// lockAsync starts m.Lock and returns a channel with its result.
func lockAsync(ctx context.Context, m *zklock.Mutex) <-chan result {
	return async(func() error { return m.Lock(ctx) })
}

// campaignAsync starts e.Campaign and returns a channel with its result.
func campaignAsync(ctx context.Context, e *zklock.Election) <-chan result {
	return async(func() error { return e.Campaign(ctx) })
}

// stillBlocked fails the test if the call behind ch has returned already.
func stillBlocked(t testing.TB, ch <-chan result, what string) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("%s returned (error: %v); it must still be waiting", what, r.err)
	default:
	}
}

// isClosed reports whether a signal channel is closed, without waiting.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// pending counts the results that have not arrived yet.
func pending(results []<-chan result) int {
	n := 0
	for _, ch := range results {
		if len(ch) == 0 {
			n++
		}
	}
	return n
}

// await receives from ch, failing the test if nothing arrives in time.
func await[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(zktesting.Timeout):
		t.Fatalf("timed out waiting for %s", what)
	}
	panic("unreachable")
}

// nextTerm receives the next leader from an Observe channel.
func nextTerm(t testing.TB, obs <-chan zklock.Term) zklock.Term {
	t.Helper()
	select {
	case term, ok := <-obs:
		require.True(t, ok, "Observe channel closed early")
		return term
	case <-time.After(zktesting.Timeout):
		t.Fatal("timed out waiting for a leader change")
	}
	panic("unreachable")
}

// queueRig gives Mutexes on /lock under a fresh root, each on a Session of
// its own, and an admin connection to watch their queue.
func queueRig(t testing.TB) (admin *zk.Conn, root string, newMutex func() *zklock.Mutex) {
	t.Helper()
	zc := zktesting.Shared(t)
	root = zc.Root(t)
	return zc.Admin(t), root, func() *zklock.Mutex {
		return zklock.NewMutex(connect(t, zc.Servers(), zklock.WithChroot(root)), "/lock")
	}
}

// watchGone sets a plain watch on p, which must exist, and returns a
// channel that receives the time its notification arrived.
func watchGone(t testing.TB, w *zk.Conn, p string) <-chan time.Time {
	t.Helper()
	ok, _, ev, err := w.ExistsW(p)
	require.NoError(t, err, "watch %s", p)
	require.True(t, ok, "%s exists", p)
	at := make(chan time.Time, 1)
	go func() {
		<-ev // closed at the latest when w is
		at <- time.Now()
	}()
	return at
}

// startPeer starts a Curator or kazoo peer process (interop.StartCurator,
// interop.StartKazoo) connected to servers, skipping the test if that
// library is not installed, and stops it when the test ends.
func startPeer(t testing.TB, start func(context.Context, []string, string) (*interop.Peer, error), servers []string, dir string) *interop.Peer {
	t.Helper()
	p, err := start(bounded(t, zktesting.Timeout), servers, dir)
	skipIfMissing(t, err)
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	return p
}

// skipIfMissing skips an interoperability test, saying why, when the other
// library is not installed (.ci/run installs it).
func skipIfMissing(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, interop.ErrNotInstalled) {
		t.Skipf("interoperability peer unavailable: %v", err)
	}
}
