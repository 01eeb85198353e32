package zklock_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zklock/zklock"
	"github.com/zklock/zklock/internal/zktest"
	"github.com/zklock/zklock/zktesting"
)

func TestIntegration_MutexExclusiveFIFO(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	const sessions, rounds = 10, 20

	var inside atomic.Int32
	var mu sync.Mutex
	var seqs []int32
	var tokens []int64
	errs := make(chan error, sessions)
	var wg sync.WaitGroup
	for i := range sessions {
		s := connect(t, zc.Servers(), zklock.WithChroot(root))
		m := zklock.NewMutex(s, "/lock", zklock.WithData(fmt.Appendf(nil, "worker-%d", i)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := bounded(t, 5*zktesting.Timeout)
			for range rounds {
				if err := m.Lock(ctx); err != nil {
					errs <- err
					return
				}
				if n := inside.Add(1); n != 1 {
					errs <- fmt.Errorf("%d holders at once", n)
				}
				mu.Lock()
				seqs = append(seqs, m.Seq())
				tokens = append(tokens, m.Token())
				mu.Unlock()
				inside.Add(-1)
				if err := m.Unlock(ctx); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	require.Len(t, seqs, sessions*rounds)
	for i := 1; i < len(seqs); i++ {
		assert.Less(t, seqs[i-1], seqs[i], "grants follow queue order (FIFO)")
		assert.Less(t, tokens[i-1], tokens[i], "fencing tokens strictly increase")
	}
	assert.Empty(t, children(t, zc.Admin(t), root+"/lock"), "no node left")
}

func TestIntegration_MutexCancelWhileWaiting(t *testing.T) {
	integration(t)
	admin, root, newMutex := queueRig(t)
	a, b, c := newMutex(), newMutex(), newMutex()
	require.NoError(t, a.Lock(bounded(t, zktesting.Timeout)))

	bctx, cancelB := context.WithCancel(t.Context())
	bres := lockAsync(bctx, b)
	waitChildren(t, admin, root+"/lock", 2)
	cres := lockAsync(bounded(t, zktesting.Timeout), c)
	waitChildren(t, admin, root+"/lock", 3)

	cancelB()
	r := await(t, bres, "the cancelled Lock")
	assert.ErrorIs(t, r.err, context.Canceled)
	assert.Len(t, children(t, admin, root+"/lock"), 2, "b's node is deleted before its Lock returns")
	stillBlocked(t, cres, "c's Lock, while a holds the lock")

	require.NoError(t, a.Unlock(bounded(t, zktesting.Timeout)))
	r = await(t, cres, "c's Lock")
	require.NoError(t, r.err, "c takes over from a without waiting for b")
	require.NoError(t, c.Unlock(bounded(t, zktesting.Timeout)))
	require.NoError(t, b.Lock(bounded(t, zktesting.Timeout)), "b's Mutex is usable again")
	require.NoError(t, b.Unlock(bounded(t, zktesting.Timeout)))
}

// TestIntegration_MutexQueueOutOfOrder follows a waiter while the nodes
// ahead of it go out of order: d waits behind a (holding), b and c; c, the
// node d watches, is cancelled, a releases, then b.
func TestIntegration_MutexQueueOutOfOrder(t *testing.T) {
	integration(t)
	admin, root, newMutex := queueRig(t)
	a, b, c, d := newMutex(), newMutex(), newMutex(), newMutex()
	require.NoError(t, a.Lock(bounded(t, zktesting.Timeout)))
	bres := lockAsync(bounded(t, zktesting.Timeout), b)
	waitChildren(t, admin, root+"/lock", 2)
	cctx, cancelC := context.WithCancel(t.Context())
	cres := lockAsync(cctx, c)
	waitChildren(t, admin, root+"/lock", 3)
	dres := lockAsync(bounded(t, zktesting.Timeout), d)
	waitChildren(t, admin, root+"/lock", 4)

	cancelC()
	assert.ErrorIs(t, await(t, cres, "the cancelled Lock").err, context.Canceled)
	waitChildren(t, admin, root+"/lock", 3)

	require.NoError(t, a.Unlock(bounded(t, zktesting.Timeout)))
	require.NoError(t, await(t, bres, "b's Lock").err, "b is next after a")
	stillBlocked(t, dres, "d's Lock, while b holds the lock")
	require.NoError(t, b.Unlock(bounded(t, zktesting.Timeout)))
	require.NoError(t, await(t, dres, "d's Lock").err, "d is next after b")
	require.NoError(t, d.Unlock(bounded(t, zktesting.Timeout)))
	assert.Empty(t, children(t, admin, root+"/lock"), "no node left")
}

func TestIntegration_MutexTryLock(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	a := zklock.NewMutex(connect(t, zc.Servers(), zklock.WithChroot(root)), "/lock")
	b := zklock.NewMutex(connect(t, zc.Servers(), zklock.WithChroot(root)), "/lock")

	require.NoError(t, a.TryLock(bounded(t, zktesting.Timeout)), "a free lock is taken")
	err := b.TryLock(bounded(t, zktesting.Timeout))
	assert.ErrorIs(t, err, zklock.ErrLocked)
	assert.Equal(t, []string{strings.TrimPrefix(a.Key(), "/lock/")}, children(t, zc.Admin(t), root+"/lock"),
		"TryLock leaves no node behind")
	require.NoError(t, a.Unlock(bounded(t, zktesting.Timeout)))
	require.NoError(t, b.TryLock(bounded(t, zktesting.Timeout)))
	require.NoError(t, b.Unlock(bounded(t, zktesting.Timeout)))
}

func TestIntegration_MutexLossSignalledBeforeNextHolder(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	ps := zc.NewProxies(t)
	holderSession := connect(t, ps.Addrs(), zklock.WithChroot(root), zklock.WithSessionTimeout(2*time.Second))
	sub := holderSession.Subscribe()
	defer sub.Stop()
	holder := zklock.NewMutex(holderSession, "/lock")
	waiter := zklock.NewMutex(connect(t, zc.Servers(), zklock.WithChroot(root)), "/lock")

	require.NoError(t, holder.Lock(bounded(t, zktesting.Timeout)))
	lost := make(chan time.Time, 1)
	done := holder.Done()
	go func() {
		<-done
		lost <- time.Now()
	}()
	wres := lockAsync(bounded(t, zktesting.Timeout), waiter)
	waitChildren(t, zc.Admin(t), root+"/lock", 2)

	expire(t, ps, sub)
	lostAt := await(t, lost, "the holder's loss signal")
	r := await(t, wres, "the waiter's Lock")
	require.NoError(t, r.err)
	assert.True(t, lostAt.Before(r.at), "the holder learns of the loss (%v) before the next holder gets the lock (%v)",
		lostAt.Format(time.StampMicro), r.at.Format(time.StampMicro))
	t.Logf("loss signalled %v before the next grant", r.at.Sub(lostAt))

	assert.ErrorIs(t, holder.Err(), zklock.ErrLockLost)
	assert.ErrorIs(t, holder.Err(), zklock.ErrSessionExpired)
	assert.ErrorIs(t, context.Cause(holder.Context()), zklock.ErrLockLost, "the hold's context ends with it")
	assert.ErrorIs(t, holder.Unlock(bounded(t, zktesting.Timeout)), zklock.ErrNotLocked)
	require.NoError(t, waiter.Unlock(bounded(t, zktesting.Timeout)))
	// The healed Session locks again, in a new ZooKeeper session.
	require.NoError(t, holder.Lock(bounded(t, zktesting.Timeout)))
	require.NoError(t, holder.Unlock(bounded(t, zktesting.Timeout)))
}

func TestIntegration_MutexSurvivesServerStop(t *testing.T) {
	integration(t)
	zc := zktesting.Start(t, 3)
	root := zc.Root(t)
	s := connect(t, zc.Servers(), zklock.WithChroot(root), zklock.WithSessionTimeout(10*time.Second))
	m := zklock.NewMutex(s, "/lock")
	require.NoError(t, m.Lock(bounded(t, zktesting.Timeout)))
	sub := s.Subscribe()
	defer sub.Stop()
	waitState(t, sub, zklock.StateConnected)

	zc.StopServer(t, zc.Index(s.Server()))
	waitState(t, sub, zklock.StateSuspended)
	waitState(t, sub, zklock.StateConnected)
	require.False(t, isClosed(m.Done()), "the hold survives a short outage: %v", m.Err())
	assert.NoError(t, m.Err())
	require.NoError(t, m.Unlock(bounded(t, zktesting.Timeout)))
}

func TestIntegration_MutexNodeDeletedByOperator(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	m := zklock.NewMutex(connect(t, zc.Servers(), zklock.WithChroot(root)), "/lock")
	// A first hold's node is watched once it is granted; a lone Mutex's
	// next holds have the watch set along with the create.
	for i := range 3 {
		require.NoError(t, m.Lock(bounded(t, zktesting.Timeout)))
		if i == 1 {
			require.NoError(t, m.Unlock(bounded(t, zktesting.Timeout)))
			continue
		}
		zc.DeleteNode(t, root+m.Key())
		await(t, m.Done(), "the hold to end")
		assert.ErrorIs(t, m.Err(), zklock.ErrLockLost)
		assert.ErrorIs(t, m.Err(), zklock.ErrNodeDeleted)
		assert.ErrorIs(t, m.Unlock(bounded(t, zktesting.Timeout)), zklock.ErrNodeDeleted)
	}
}

func TestIntegration_MutexCreateReplyLost(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	cut := zktest.NewCutter()
	s := connect(t, zc.Servers(), zklock.WithChroot(root), zklock.WithDialer(cut.Dial), zklock.WithSessionTimeout(6*time.Second))
	m := zklock.NewMutex(s, "/lock")
	// Create the directory first so the cut hits the lock node's create.
	require.NoError(t, s.Create(bounded(t, zktesting.Timeout), "/lock", nil, 0))

	cut.DropReply("-lock-")
	require.NoError(t, m.Lock(bounded(t, zktesting.Timeout)))
	require.True(t, isClosed(cut.Fired()), "the create's reply was dropped")
	kids := children(t, zc.Admin(t), root+"/lock")
	require.Len(t, kids, 1, "exactly one node: the create landed once and was found again")
	assert.Equal(t, "/lock/"+kids[0], m.Key())
	require.NoError(t, m.Unlock(bounded(t, zktesting.Timeout)))
	assert.Empty(t, children(t, zc.Admin(t), root+"/lock"))
	require.NoError(t, s.Delete(bounded(t, zktesting.Timeout), "/lock", -1))
}

func TestIntegration_MutexForeignChildren(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	admin := zc.Admin(t)
	s := connect(t, zc.Servers(), zklock.WithChroot(root))
	ctx := bounded(t, zktesting.Timeout)
	require.NoError(t, s.Create(ctx, "/lock", nil, 0))
	for _, n := range []string{"config", "readme"} {
		require.NoError(t, s.Create(ctx, "/lock/"+n, []byte(n), 0))
	}
	m := zklock.NewMutex(s, "/lock")
	require.NoError(t, m.TryLock(ctx), "unknown children are ignored")
	require.NoError(t, m.Unlock(ctx))

	// A kazoo read lock is lock-shaped: it queues ahead of us.
	rlock, err := admin.Create(root+"/lock/3a8d0c9c5e0b4b6f9b1e2d7c6a5f4e3d__rlock__", nil, zk.FlagEphemeral|zk.FlagSequence, zk.WorldACL(zk.PermAll))
	require.NoError(t, err)
	assert.ErrorIs(t, m.TryLock(ctx), zklock.ErrLocked)
	res := lockAsync(ctx, m)
	waitChildren(t, admin, root+"/lock", 4)
	require.NoError(t, admin.Delete(rlock, -1))
	require.NoError(t, await(t, res, "Lock after the reader left").err)
	require.NoError(t, m.Unlock(ctx))
	for _, n := range []string{"config", "readme"} {
		require.NoError(t, s.Delete(ctx, "/lock/"+n, -1))
	}
	require.NoError(t, s.Delete(ctx, "/lock", -1))
}

func TestIntegration_MutexMisuse(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	s := connect(t, zc.Servers(), zklock.WithChroot(root))
	ctx := bounded(t, zktesting.Timeout)
	m := zklock.NewMutex(s, "/lock")

	assert.ErrorIs(t, m.Unlock(ctx), zklock.ErrNotLocked, "Unlock without Lock")
	assert.ErrorIs(t, m.Err(), zklock.ErrNotLocked)
	assert.Zero(t, m.Token())
	assert.Nil(t, m.Guard())
	assert.True(t, isClosed(m.Done()), "Done is closed before the first Lock")

	require.NoError(t, m.Lock(ctx))
	_, st, err := zc.Admin(t).Exists(root + m.Key())
	require.NoError(t, err)
	assert.Equal(t, st.Czxid, m.Token(), "the token is the lock node's czxid")
	assert.ErrorIs(t, m.Lock(ctx), zklock.ErrBusy, "not reentrant")
	assert.ErrorIs(t, m.TryLock(ctx), zklock.ErrBusy)
	require.NoError(t, m.Unlock(ctx))
	assert.ErrorIs(t, m.Unlock(ctx), zklock.ErrNotLocked, "a second Unlock")
	assert.ErrorIs(t, m.Err(), zklock.ErrNotLocked)

	plain := connect(t, zc.Servers()) // no chroot: /zookeeper is ZooKeeper's own
	for _, p := range []string{"", "lock", "/a/", "/a//b", "/", "/zookeeper", "/zookeeper/quota/x"} {
		s := s
		if strings.HasPrefix(p, "/zookeeper") {
			s = plain
		}
		err := zklock.NewMutex(s, p).Lock(ctx)
		assert.ErrorIs(t, err, zklock.ErrInvalidPath, "path %q", p)
		assert.ErrorContains(t, err, "path", "the error says what is wrong with %q", p)
		assert.ErrorIs(t, zklock.NewMutex(s, p).TryLock(ctx), zklock.ErrInvalidPath, "path %q", p)
	}
}

func TestIntegration_MutexGuardFencesWrites(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	s := connect(t, zc.Servers(), zklock.WithChroot(root))
	ctx := bounded(t, zktesting.Timeout)
	require.NoError(t, s.Create(ctx, "/resource", []byte("0"), 0))
	m := zklock.NewMutex(s, "/lock")
	require.NoError(t, m.Lock(ctx))
	guard := m.Guard()
	_, err := s.Multi(ctx, guard, &zk.SetDataRequest{Path: "/resource", Data: []byte("1"), Version: -1})
	require.NoError(t, err, "a holder's guarded write lands")

	zc.DeleteNode(t, root+m.Key()) // the hold is gone, as after an expiry
	await(t, m.Done(), "loss")
	_, err = s.Multi(ctx, guard, &zk.SetDataRequest{Path: "/resource", Data: []byte("2"), Version: -1})
	assert.ErrorIs(t, err, zk.ErrNoNode, "a former holder's guarded write fails")
	data, _, err := s.Get(ctx, "/resource")
	require.NoError(t, err)
	assert.Equal(t, "1", string(data))
	require.NoError(t, s.Delete(ctx, "/resource", -1))
}

func TestIntegration_MutexUnlockWhileDisconnected(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	ps := zc.NewProxies(t)
	s := connect(t, ps.Addrs(), zklock.WithChroot(root), zklock.WithSessionTimeout(20*time.Second))
	m := zklock.NewMutex(s, "/lock")
	other := zklock.NewMutex(connect(t, zc.Servers(), zklock.WithChroot(root)), "/lock")
	require.NoError(t, m.Lock(bounded(t, zktesting.Timeout)))
	sid := s.SessionID()
	ores := lockAsync(bounded(t, zktesting.Timeout), other)
	waitChildren(t, zc.Admin(t), root+"/lock", 2)

	ps.Blackhole()
	unlocked := make(chan error, 1)
	go func() { unlocked <- m.Unlock(context.Background()) }() // no deadline of its own
	require.NoError(t, await(t, unlocked, "Unlock with the connection down"), "Unlock hands the delete to the cleaner")
	assert.ErrorIs(t, m.Err(), zklock.ErrNotLocked)
	stillBlocked(t, ores, "the other contender's Lock, while our node still exists")

	ps.Heal()
	require.NoError(t, await(t, ores, "the other Lock after the cleaner deleted our node").err)
	assert.Equal(t, sid, s.SessionID(), "same ZooKeeper session: the cleaner, not expiry, removed the node")
	require.NoError(t, other.Unlock(bounded(t, zktesting.Timeout)))
}

func TestIntegration_MutexWaitsAcrossExpiry(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	ps := zc.NewProxies(t)
	holder := zklock.NewMutex(connect(t, zc.Servers(), zklock.WithChroot(root)), "/lock")
	ws := connect(t, ps.Addrs(), zklock.WithChroot(root), zklock.WithSessionTimeout(2*time.Second))
	waiter := zklock.NewMutex(ws, "/lock")
	require.NoError(t, holder.Lock(bounded(t, zktesting.Timeout)))
	sub := ws.Subscribe()
	defer sub.Stop()
	first := waitState(t, sub, zklock.StateConnected)

	wres := lockAsync(bounded(t, zktesting.Timeout), waiter)
	waitChildren(t, zc.Admin(t), root+"/lock", 2)
	expire(t, ps, sub)
	next := waitState(t, sub, zklock.StateConnected)
	require.NotEqual(t, first.SessionID, next.SessionID)
	// The waiter queues again in its new session: the old node is gone with
	// the old session, a new one takes its place.
	waitChildren(t, zc.Admin(t), root+"/lock", 2)
	stillBlocked(t, wres, "the waiter's Lock, while the lock is held")
	require.NoError(t, holder.Unlock(bounded(t, zktesting.Timeout)))
	require.NoError(t, await(t, wres, "the waiter's Lock").err)
	require.NoError(t, waiter.Unlock(bounded(t, zktesting.Timeout)))
}

func TestIntegration_MutexTokensIncreaseAcrossRecreateAndLeaderChange(t *testing.T) {
	integration(t)
	zc := zktesting.Start(t, 3)
	root := zc.Root(t)
	zc.RequireControl(t)
	admin := zc.Admin(t)
	ctx := bounded(t, 3*zktesting.Timeout)
	const holders = 100
	var last int64
	for i := range holders {
		switch i {
		case holders / 3:
			// The lock directory goes away and comes back: sequence numbers
			// restart, tokens must not.
			kids, _, err := admin.Children(root + "/lock")
			require.NoError(t, err)
			require.Empty(t, kids)
			require.NoError(t, admin.Delete(root+"/lock", -1))
		case 2 * holders / 3:
			// A ZooKeeper leader change: stop the leader, wait for a new one.
			leader := -1
			for j := range zc.Len() {
				if mode, err := zc.Mode(ctx, j); err == nil && mode == "leader" {
					leader = j
				}
			}
			require.GreaterOrEqual(t, leader, 0, "a leader")
			zc.StopServer(t, leader)
			defer zc.StartServer(t, leader)
		}
		s := connect(t, zc.Servers(), zklock.WithChroot(root))
		m := zklock.NewMutex(s, "/lock")
		require.NoError(t, m.Lock(ctx), "holder %d", i)
		assert.Greater(t, m.Token(), last, "holder %d's token", i)
		last = m.Token()
		require.NoError(t, m.Unlock(ctx))
		require.NoError(t, s.Close())
	}
}

// Locks cancelled while their create is in flight leave no node behind:
// the cleanup of a create given up on waits for its outcome, so it never
// searches before the create lands and leaves a node no one holds at the
// head of the queue. Every third Lock's ctx is cancelled as the Lock
// starts; a Lock that runs into its long deadline queued behind such a
// node.
func TestIntegration_CancelledLocksLeaveNoNodeBehind(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	s := connect(t, zc.Servers(), zklock.WithChroot(root))
	for _, tc := range []struct {
		name string
		lock func(i int) (lock func(context.Context) error, unlock func(context.Context) error)
	}{
		{"mutex", func(int) (func(context.Context) error, func(context.Context) error) {
			m := zklock.NewMutex(s, "/m")
			return m.Lock, m.Unlock
		}},
		{"read-write", func(i int) (func(context.Context) error, func(context.Context) error) {
			rw := zklock.NewRWMutex(s, "/rw")
			if i%2 == 0 {
				return rw.RLock, rw.RUnlock
			}
			return rw.Lock, rw.Unlock
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var wg sync.WaitGroup
			for i := range 10 {
				lock, unlock := tc.lock(i)
				wg.Go(func() {
					for k := range 30 {
						ctx, cancel := context.WithTimeout(context.Background(), zktesting.Timeout/4)
						if k%3 == 0 {
							go cancel()
						}
						if err := lock(ctx); err == nil {
							assert.NoError(t, unlock(bounded(t, zktesting.Timeout)))
						} else if !assert.NotErrorIs(t, err, context.DeadlineExceeded, "a Lock queued behind a node no one holds") {
							cancel()
							return
						}
						cancel()
					}
				})
			}
			wg.Wait()
		})
	}
}
