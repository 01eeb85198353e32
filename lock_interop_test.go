package zklock_test

import (
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zklock/zklock"
	"github.com/zklock/zklock/internal/interop"
	"github.com/zklock/zklock/zktesting"
)

// peerLock drives a foreign lock implementation on the same path.
type peerLock interface {
	lock(t *testing.T) // blocks until held
	// lockAsync starts waiting for the lock; the channel receives the
	// outcome once the peer holds it, and when the peer reported it.
	lockAsync(t *testing.T) <-chan result
	unlock(t *testing.T)
}

type processPeer struct {
	p    *interop.Peer
	path string
}

func (pp processPeer) lock(t *testing.T) {
	_, err := pp.p.Do(bounded(t, zktesting.Timeout), "lock "+pp.path, "locked "+pp.path)
	require.NoError(t, err)
}

func (pp processPeer) lockAsync(t *testing.T) <-chan result {
	require.NoError(t, pp.p.Send("lock "+pp.path))
	ctx := bounded(t, zktesting.Timeout)
	return async(func() error {
		_, err := pp.p.Expect(ctx, "locked "+pp.path)
		return err
	})
}

func (pp processPeer) unlock(t *testing.T) {
	_, err := pp.p.Do(bounded(t, zktesting.Timeout), "unlock "+pp.path, "unlocked "+pp.path)
	require.NoError(t, err)
}

// goZKLock is go-zookeeper's own zk.Lock on its own connection.
type goZKLock struct{ l *zk.Lock }

func (g goZKLock) lock(t *testing.T) { require.NoError(t, g.l.Lock()) }

func (g goZKLock) lockAsync(*testing.T) <-chan result { return async(g.l.Lock) }

func (g goZKLock) unlock(t *testing.T) { require.NoError(t, g.l.Unlock()) }

func TestIntegration_MutexInterop(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	work := t.TempDir()
	for _, tc := range []struct {
		name string
		peer func(t *testing.T, path string) peerLock
	}{
		{"curator", func(t *testing.T, path string) peerLock {
			return processPeer{startPeer(t, interop.StartCurator, zc.Direct(), work), path}
		}},
		{"kazoo", func(t *testing.T, path string) peerLock {
			return processPeer{startPeer(t, interop.StartKazoo, zc.Direct(), work), path}
		}},
		{"go-zookeeper", func(t *testing.T, path string) peerLock {
			return goZKLock{zk.NewLock(plainConn(t, zc.Direct()), path, zk.WorldACL(zk.PermAll))}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := "/" + tc.name
			peer := tc.peer(t, root+path)
			s := connect(t, zc.Servers(), zklock.WithChroot(root))
			m := zklock.NewMutex(s, path)
			ctx := bounded(t, zktesting.Timeout)
			admin := zc.Admin(t)

			// They hold; we wait.
			peer.lock(t)
			assert.ErrorIs(t, m.TryLock(ctx), zklock.ErrLocked, "we see the %s holder", tc.name)
			res := lockAsync(ctx, m)
			waitChildren(t, admin, root+path, 2)
			stillBlocked(t, res, "our Lock, while "+tc.name+" holds the lock")
			peer.unlock(t)
			require.NoError(t, await(t, res, "Lock after the peer unlocked").err)

			// We hold; they wait.
			held := peer.lockAsync(t)
			kids := waitChildren(t, admin, root+path, 2)
			require.True(t, strings.HasSuffix(m.Key(), firstBySeq(kids)), "we are first in the queue")
			stillBlocked(t, held, tc.name+"'s Lock, while we hold the lock")
			released := time.Now()
			require.NoError(t, m.Unlock(ctx))
			r := await(t, held, tc.name+"'s Lock")
			require.NoError(t, r.err)
			assert.True(t, r.at.After(released), "%s gets the lock only after we release it: released %v, %s reported holding %v",
				tc.name, released.Format(time.StampMicro), tc.name, r.at.Format(time.StampMicro))
			peer.unlock(t)
			waitChildren(t, admin, root+path, 0)
		})
	}
}
