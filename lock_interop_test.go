package zklock_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zklock/zklock"
	"github.com/zklock/zklock/internal/interop"
	"github.com/zklock/zklock/internal/zktest"
)

// peerLock drives a foreign lock implementation on the same path.
type peerLock interface {
	lock(t *testing.T)                  // blocks until held
	lockAsync(t *testing.T) func() bool // starts waiting; the func reports whether it now holds
	unlock(t *testing.T)
}

type processPeer struct {
	p    *interop.Peer
	path string
}

func (pp processPeer) lock(t *testing.T) {
	_, err := pp.p.Do(bounded(t, zktest.Timeout), "lock "+pp.path, "locked "+pp.path)
	require.NoError(t, err)
}

func (pp processPeer) lockAsync(t *testing.T) func() bool {
	require.NoError(t, pp.p.Send("lock "+pp.path))
	return func() bool {
		_, err := pp.p.Expect(bounded(t, zktest.Timeout), "locked "+pp.path)
		require.NoError(t, err)
		return true
	}
}

func (pp processPeer) unlock(t *testing.T) {
	_, err := pp.p.Do(bounded(t, zktest.Timeout), "unlock "+pp.path, "unlocked "+pp.path)
	require.NoError(t, err)
}

// goZKLock is go-zookeeper's own zk.Lock on its own connection.
type goZKLock struct{ l *zk.Lock }

func (g goZKLock) lock(t *testing.T) { require.NoError(t, g.l.Lock()) }
func (g goZKLock) lockAsync(t *testing.T) func() bool {
	done := make(chan error, 1)
	go func() { done <- g.l.Lock() }()
	return func() bool { require.NoError(t, await(t, done, "zk.Lock")); return true }
}
func (g goZKLock) unlock(t *testing.T) { require.NoError(t, g.l.Unlock()) }

func TestIntegration_MutexInterop(t *testing.T) {
	integration(t)
	zc := zktest.Shared(t)
	root := zc.Root(t)
	work := t.TempDir()
	for _, tc := range []struct {
		name string
		peer func(t *testing.T, path string) peerLock
	}{
		{"curator", func(t *testing.T, path string) peerLock {
			p, err := interop.StartCurator(bounded(t, zktest.Timeout), zc.Direct(), work)
			skipIfMissing(t, err)
			require.NoError(t, err)
			t.Cleanup(func() { p.Close() })
			return processPeer{p, path}
		}},
		{"kazoo", func(t *testing.T, path string) peerLock {
			p, err := interop.StartKazoo(bounded(t, zktest.Timeout), zc.Direct(), work)
			skipIfMissing(t, err)
			require.NoError(t, err)
			t.Cleanup(func() { p.Close() })
			return processPeer{p, path}
		}},
		{"go-zookeeper", func(t *testing.T, path string) peerLock {
			conn, _, err := zk.Connect(zc.Direct(), 10*time.Second, zk.WithLogInfo(false), zk.WithLogger(quietLogger{}))
			require.NoError(t, err)
			t.Cleanup(conn.Close)
			return goZKLock{zk.NewLock(conn, path, zk.WorldACL(zk.PermAll))}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := "/" + tc.name
			peer := tc.peer(t, root+path)
			s := connect(t, zc.Servers(), zklock.WithChroot(root))
			m := zklock.NewMutex(s, path)
			ctx := bounded(t, zktest.Timeout)
			admin := zc.Admin(t)

			// They hold; we wait.
			peer.lock(t)
			assert.ErrorIs(t, m.TryLock(ctx), zklock.ErrLocked, "we see the %s holder", tc.name)
			res := lockAsync(ctx, m)
			waitChildren(t, admin, root+path, 2)
			select {
			case r := <-res:
				t.Fatalf("Lock returned while %s holds the lock: %v", tc.name, r.err)
			default:
			}
			peer.unlock(t)
			require.NoError(t, await(t, res, "Lock after the peer unlocked").err)

			// We hold; they wait.
			held := peer.lockAsync(t)
			kids := waitChildren(t, admin, root+path, 2)
			assert.True(t, strings.HasSuffix(m.Key(), minSeqName(kids)), "we are first in the queue")
			require.NoError(t, m.Unlock(ctx))
			assert.True(t, held(), "%s gets the lock after we release it", tc.name)
			peer.unlock(t)
			waitChildren(t, admin, root+path, 0)
		})
	}
}

// minSeqName returns the child with the lowest ten-digit sequence suffix.
func minSeqName(kids []string) string {
	best := ""
	for _, k := range kids {
		if best == "" || k[len(k)-10:] < best[len(best)-10:] {
			best = k
		}
	}
	return best
}

type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}

// skipIfMissing skips an interoperability test, saying why, when the other
// library is not installed (.ci/run installs it).
func skipIfMissing(t *testing.T, err error) {
	t.Helper()
	if errors.Is(err, interop.ErrNotInstalled) {
		t.Skipf("interoperability peer unavailable: %v", err)
	}
}
