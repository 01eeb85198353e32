package zklock_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zklock/zklock"
	"github.com/zklock/zklock/zktesting"
)

// lockAsyncLocker starts l.Lock and returns a channel that receives once it
// has returned.
func lockAsyncLocker(l *zklock.Locker) <-chan result {
	return async(func() error {
		l.Lock()
		return nil
	})
}

// recovered runs f and returns the value it panicked with, nil if it did
// not panic.
func recovered(f func()) (v any) {
	defer func() { v = recover() }()
	f()
	return nil
}

// panicError runs f, which must panic with an error, and returns the error.
func panicError(t testing.TB, f func(), what string) error {
	t.Helper()
	v := recovered(f)
	require.NotNil(t, v, "%s panics", what)
	err, ok := v.(error)
	require.True(t, ok, "%s panics with an error, not %T %v", what, v, v)
	assert.True(t, strings.HasPrefix(err.Error(), "zklock: "), "the panic carries the package prefix: %q", err)
	return err
}

// Lockers on different Sessions, and goroutines sharing one Locker, hold the
// lock one at a time, and leave no node behind.
func TestIntegration_LockerExcludes(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	const sessions, goroutines, rounds = 3, 2, 8

	var inside atomic.Int32
	var held atomic.Int32
	errs := make(chan error, sessions*goroutines)
	var wg sync.WaitGroup
	for range sessions {
		m := zklock.NewMutex(connect(t, zc.Servers(), zklock.WithChroot(root)), "/lock")
		l := zklock.NewLocker(m)
		for range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range rounds {
					l.Lock()
					if n := inside.Add(1); n != 1 {
						errs <- fmt.Errorf("%d holders at once", n)
					}
					if err := m.Err(); err != nil {
						errs <- fmt.Errorf("Lock returned without the lock: %w", err)
					}
					held.Add(1)
					inside.Add(-1)
					l.Unlock()
				}
			}()
		}
	}
	finished := make(chan struct{})
	go func() {
		wg.Wait()
		close(finished)
	}()
	await(t, finished, "every Locker's rounds")
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	assert.Equal(t, int32(sessions*goroutines*rounds), held.Load(), "every Lock was granted")
	assert.Empty(t, children(t, zc.Admin(t), root+"/lock"), "no node left")
}

// A Lock waiting behind another holder rides out cut connections and
// holds once the other holder releases.
func TestIntegration_LockerAcrossCut(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	ps := zc.NewProxies(t)
	admin := zc.Admin(t)
	holder := zklock.NewMutex(connect(t, zc.Servers(), zklock.WithChroot(root)), "/lock")
	s := connect(t, ps.Addrs(), zklock.WithChroot(root), zklock.WithSessionTimeout(10*time.Second))
	sub := s.Subscribe()
	defer sub.Stop()
	first := waitState(t, sub, zklock.StateConnected)
	m := zklock.NewMutex(s, "/lock")
	l := zklock.NewLocker(m)
	require.NoError(t, holder.Lock(bounded(t, zktesting.Timeout)))

	locked := lockAsyncLocker(l)
	waitChildren(t, admin, root+"/lock", 2)
	for range 2 {
		ps.Cut()
		waitState(t, sub, zklock.StateSuspended)
		waitState(t, sub, zklock.StateConnected)
	}
	stillBlocked(t, locked, "the Locker's Lock, while the lock is held")
	require.NoError(t, holder.Unlock(bounded(t, zktesting.Timeout)))
	await(t, locked, "the Locker's Lock")
	assert.NoError(t, m.Err(), "Lock returns holding the lock")
	assert.Equal(t, first.SessionID, s.SessionID(), "the same ZooKeeper session: the cuts did not expire it")
	assert.Greater(t, m.Token(), holder.Token(), "a later holder has a larger token")
	l.Unlock()
	waitChildren(t, admin, root+"/lock", 0)
}

// A Lock waiting when its ZooKeeper session expires queues again in the
// Session's next one and holds there.
func TestIntegration_LockerAcrossExpiry(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	ps := zc.NewProxies(t)
	admin := zc.Admin(t)
	holder := zklock.NewMutex(connect(t, zc.Servers(), zklock.WithChroot(root)), "/lock")
	s := connect(t, ps.Addrs(), zklock.WithChroot(root), zklock.WithSessionTimeout(2*time.Second))
	sub := s.Subscribe()
	defer sub.Stop()
	first := waitState(t, sub, zklock.StateConnected)
	m := zklock.NewMutex(s, "/lock")
	l := zklock.NewLocker(m)
	require.NoError(t, holder.Lock(bounded(t, zktesting.Timeout)))

	locked := lockAsyncLocker(l)
	waitChildren(t, admin, root+"/lock", 2)
	expire(t, ps, sub)
	next := waitState(t, sub, zklock.StateConnected)
	require.NotEqual(t, first.SessionID, next.SessionID, "a new ZooKeeper session")
	waitChildren(t, admin, root+"/lock", 2) // queued again in it
	stillBlocked(t, locked, "the Locker's Lock, while the lock is held")

	require.NoError(t, holder.Unlock(bounded(t, zktesting.Timeout)))
	await(t, locked, "the Locker's Lock")
	assert.NoError(t, m.Err(), "Lock returns holding the lock")
	l.Unlock()
	waitChildren(t, admin, root+"/lock", 0)
}

// Unlock after the hold was lost returns, whatever ended the hold, and the
// Locker locks again.
func TestIntegration_LockerUnlockAfterLoss(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	ps := zc.NewProxies(t)
	logs := &recordingHandler{}
	s := connect(t, ps.Addrs(), zklock.WithChroot(root), zklock.WithSessionTimeout(2*time.Second),
		zklock.WithLogger(slog.New(logs)))
	sub := s.Subscribe()
	defer sub.Stop()
	m := zklock.NewMutex(s, "/lock")
	l := zklock.NewLocker(m)

	l.Lock()
	expire(t, ps, sub)
	await(t, m.Done(), "the hold to end at expiry")
	require.ErrorIs(t, m.Err(), zklock.ErrSessionExpired)
	require.NotPanics(t, l.Unlock, "Unlock after expiry")

	l.Lock() // in the Session's next ZooKeeper session
	require.NoError(t, m.Err())
	zc.DeleteNode(t, root+m.Key())
	await(t, m.Done(), "the hold to end when its node is deleted")
	require.ErrorIs(t, m.Err(), zklock.ErrNodeDeleted)
	require.NotPanics(t, l.Unlock, "Unlock after the node was deleted")

	lost := 0
	for _, msg := range logs.messages() {
		if strings.Contains(msg, "lost before Locker.Unlock") {
			lost++
		}
	}
	assert.Equal(t, 2, lost, "each lost hold is logged at Unlock: %q", logs.messages())
	l.Lock()
	l.Unlock()
	assert.Empty(t, children(t, zc.Admin(t), root+"/lock"), "no node left")
}

// Unlock with the connection down returns at once and leaves the delete to
// the Session's cleaner, which removes the node once the connection is
// back, in the same ZooKeeper session.
func TestIntegration_LockerUnlockWhileDisconnected(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	ps := zc.NewProxies(t)
	s := connect(t, ps.Addrs(), zklock.WithChroot(root), zklock.WithSessionTimeout(20*time.Second))
	l := zklock.NewLocker(zklock.NewMutex(s, "/lock"))
	other := zklock.NewMutex(connect(t, zc.Servers(), zklock.WithChroot(root)), "/lock")
	l.Lock()
	sid := s.SessionID()
	ores := lockAsync(bounded(t, zktesting.Timeout), other)
	waitChildren(t, zc.Admin(t), root+"/lock", 2)

	ps.Blackhole()
	unlocked := async(func() error {
		l.Unlock()
		return nil
	})
	await(t, unlocked, "Unlock with the connection down")
	stillBlocked(t, ores, "the other contender's Lock, while our node still exists")

	ps.Heal()
	require.NoError(t, await(t, ores, "the other Lock after the cleaner deleted our node").err)
	assert.Equal(t, sid, s.SessionID(), "same ZooKeeper session: the cleaner, not expiry, removed the node")
	require.NoError(t, other.Unlock(bounded(t, zktesting.Timeout)))
}

// Misuse panics with an error carrying the package prefix and the cause;
// a recovered panic leaves the Locker usable.
func TestIntegration_LockerMisuse(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	s := connect(t, zc.Servers(), zklock.WithChroot(root))
	ctx := bounded(t, zktesting.Timeout)
	m := zklock.NewMutex(s, "/lock")
	l := zklock.NewLocker(m)

	require.PanicsWithError(t, "zklock: unlock of unlocked Locker on /lock: not locked", l.Unlock,
		"unlock of an unlocked Locker, like sync.Mutex's")
	l.Lock()
	l.Unlock()
	err := panicError(t, l.Unlock, "a second Unlock")
	assert.ErrorIs(t, err, zklock.ErrNotLocked)

	// The Mutex used behind the Locker's back.
	require.NoError(t, m.Lock(ctx))
	err = panicError(t, l.Lock, "Lock while the Mutex is held without the Locker")
	assert.ErrorIs(t, err, zklock.ErrBusy)
	require.NoError(t, m.Unlock(ctx))
	l.Lock()
	require.NoError(t, m.Unlock(ctx))
	err = panicError(t, l.Unlock, "Unlock after the Mutex was unlocked without the Locker")
	assert.ErrorIs(t, err, zklock.ErrNotLocked)
	l.Lock() // the Locker is usable after the recovered panics
	l.Unlock()

	for _, p := range []string{"", "lock", "/a//b", "/"} {
		err := panicError(t, zklock.NewLocker(zklock.NewMutex(s, p)).Lock, fmt.Sprintf("Lock on path %q", p))
		assert.ErrorIs(t, err, zklock.ErrInvalidPath, "path %q", p)
	}
	err = panicError(t, zklock.NewLocker(zklock.NewMutex(s, "/big", zklock.WithData(make([]byte, 2<<20)))).Lock,
		"Lock with node data over the servers' limit")
	assert.ErrorIs(t, err, zklock.ErrTooLarge)
	err = panicError(t, func() { zklock.NewLocker(nil) }, "NewLocker(nil)")
	assert.ErrorContains(t, err, "nil Mutex")

	closed := connect(t, zc.Servers(), zklock.WithChroot(root))
	cl := zklock.NewLocker(zklock.NewMutex(closed, "/lock"))
	require.NoError(t, closed.Close())
	err = panicError(t, cl.Lock, "Lock on a closed Session")
	assert.ErrorIs(t, err, zklock.ErrSessionClosed)
	assert.Empty(t, children(t, zc.Admin(t), root+"/lock"), "no node left")
}

// Closing the Session while a Lock waits breaks Lock's precondition: the
// waiting Lock panics with ErrSessionClosed rather than return without the
// lock.
func TestIntegration_LockerSessionClosedWhileWaiting(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	admin := zc.Admin(t)
	holder := zklock.NewMutex(connect(t, zc.Servers(), zklock.WithChroot(root)), "/lock")
	require.NoError(t, holder.Lock(bounded(t, zktesting.Timeout)))
	s := connect(t, zc.Servers(), zklock.WithChroot(root))
	l := zklock.NewLocker(zklock.NewMutex(s, "/lock"))

	panicked := make(chan any, 1)
	go func() { panicked <- recovered(l.Lock) }()
	waitChildren(t, admin, root+"/lock", 2)
	require.NoError(t, s.Close())
	v := await(t, panicked, "the waiting Lock to panic")
	err, ok := v.(error)
	require.True(t, ok, "Lock panics with an error, not %T %v", v, v)
	assert.ErrorIs(t, err, zklock.ErrSessionClosed)
	waitChildren(t, admin, root+"/lock", 1) // the waiter's node went with its session
	require.NoError(t, holder.Unlock(bounded(t, zktesting.Timeout)))
}

// A Lock that waits for the Locker's other goroutine, not for ZooKeeper,
// also panics when the Session closes, or is closed already: the holder may
// never unlock, and the Lock would wait for ever for a lock it can no
// longer get.
func TestIntegration_LockerSessionClosedWhileHeld(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	s := connect(t, zc.Servers(), zklock.WithChroot(root))
	l := zklock.NewLocker(zklock.NewMutex(s, "/lock"))
	l.Lock()

	during := recoveredAsync(l.Lock)
	require.NoError(t, s.Close())
	for _, ch := range []<-chan any{during, recoveredAsync(l.Lock)} {
		v := await(t, ch, "the Lock behind the holder to panic")
		err, ok := v.(error)
		require.True(t, ok, "Lock panics with an error, not %T %v", v, v)
		assert.ErrorIs(t, err, zklock.ErrSessionClosed)
	}
	require.NotPanics(t, l.Unlock, "the holder's Unlock after Close")
	assert.Empty(t, children(t, zc.Admin(t), root+"/lock"), "no node left")
}

// recoveredAsync runs f in a goroutine of its own and returns a channel
// that receives the value it panicked with, nil if it did not panic.
func recoveredAsync(f func()) <-chan any {
	ch := make(chan any, 1)
	go func() { ch <- recovered(f) }()
	return ch
}

// signalHandler closes its channel at the first record at or above level
// whose message contains match.
type signalHandler struct {
	level slog.Level
	match string
	once  sync.Once
	seen  chan struct{}
}

func (h *signalHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }
func (h *signalHandler) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, h.match) {
		h.once.Do(func() { close(h.seen) })
	}
	return nil
}
func (h *signalHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *signalHandler) WithGroup(string) slog.Handler      { return h }

// A Lock the server refuses (no create permission on the lock's
// directory) is retried, each refusal logged as an error, and takes the
// lock once an operator fixes the ACL.
func TestIntegration_LockerRetriesRefusal(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	admin := zc.Admin(t)
	_, err := admin.Create(root+"/lock", nil, 0, zk.WorldACL(zk.PermRead|zk.PermAdmin))
	require.NoError(t, err)
	refused := &signalHandler{level: slog.LevelError, match: "Locker could not take the lock", seen: make(chan struct{})}
	s := connect(t, zc.Servers(), zklock.WithChroot(root), zklock.WithLogger(slog.New(refused)))
	m := zklock.NewMutex(s, "/lock")
	l := zklock.NewLocker(m)

	locked := lockAsyncLocker(l)
	await(t, refused.seen, "the refusal logged as an error")
	stillBlocked(t, locked, "the Locker's Lock, while the server refuses it")
	_, err = admin.SetACL(root+"/lock", zk.WorldACL(zk.PermAll), -1)
	require.NoError(t, err)
	await(t, locked, "the Locker's Lock once the ACL allows it")
	assert.NoError(t, m.Err(), "Lock returns holding the lock")
	l.Unlock()
	waitChildren(t, admin, root+"/lock", 0)
	require.NoError(t, admin.Delete(root+"/lock", -1))
}

// A *Locker is what code taking a sync.Locker accepts.
var _ sync.Locker = (*zklock.Locker)(nil)
