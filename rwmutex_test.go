package zklock_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zklock/zklock"
	"github.com/zklock/zklock/zktesting"
)

// rwRig returns a new RWMutex on its own Session at /rw, each call.
func rwRig(t *testing.T) (root string, newRW func() *zklock.RWMutex) {
	zc := zktesting.Shared(t)
	root = zc.Root(t)
	return root, func() *zklock.RWMutex {
		return zklock.NewRWMutex(connect(t, zc.Servers(), zklock.WithChroot(root)), "/rw")
	}
}

// Readers share; a writer waits for them and excludes everyone; a reader
// queued behind a waiting writer waits for it (no writer starvation).
func TestIntegration_RWMutexSharesReadsAndQueuesFairly(t *testing.T) {
	integration(t)
	root, newRW := rwRig(t)
	admin := zktesting.Shared(t).Admin(t)
	ctx := bounded(t, zktesting.Timeout)

	r1, r2, w, r3 := newRW(), newRW(), newRW(), newRW()
	require.NoError(t, r1.RLock(ctx))
	require.NoError(t, r2.RLock(ctx), "readers share the lock")
	wres := async(func() error { return w.Lock(ctx) })
	waitChildren(t, admin, root+"/rw", 3)
	stillBlocked(t, wres, "the writer, behind two readers")
	r3res := async(func() error { return r3.RLock(ctx) })
	waitChildren(t, admin, root+"/rw", 4)
	stillBlocked(t, r3res, "the reader queued behind the waiting writer")

	require.NoError(t, r1.RUnlock(ctx))
	stillBlocked(t, wres, "the writer, behind one reader")
	require.NoError(t, r2.RUnlock(ctx))
	require.NoError(t, await(t, wres, "the writer").err)
	stillBlocked(t, r3res, "the reader, while the writer holds")
	assert.NoError(t, w.Writer().Err())
	require.NoError(t, w.Unlock(ctx))
	require.NoError(t, await(t, r3res, "the reader after the writer").err)
	assert.Greater(t, r3.Reader().Token(), w.Writer().Token(), "tokens increase across holders")
	assert.Contains(t, r3.Reader().Key(), "-__READ__")
	assert.Contains(t, w.Writer().Key(), "-__WRIT__")
	require.NoError(t, r3.RUnlock(ctx))
	waitChildren(t, admin, root+"/rw", 0)
}

// A Mutex on the same path is a writer.
func TestIntegration_RWMutexAndMutexShareAPath(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	admin := zc.Admin(t)
	ctx := bounded(t, zktesting.Timeout)
	m := zklock.NewMutex(connect(t, zc.Servers(), zklock.WithChroot(root)), "/rw")
	rw := zklock.NewRWMutex(connect(t, zc.Servers(), zklock.WithChroot(root)), "/rw")
	require.NoError(t, m.Lock(ctx))
	assert.ErrorIs(t, rw.TryRLock(ctx), zklock.ErrLocked, "a held Mutex excludes readers")
	res := async(func() error { return rw.RLock(ctx) })
	waitChildren(t, admin, root+"/rw", 2)
	stillBlocked(t, res, "the reader behind the Mutex")
	require.NoError(t, m.Unlock(ctx))
	require.NoError(t, await(t, res, "the reader").err)
	assert.ErrorIs(t, m.TryLock(ctx), zklock.ErrLocked, "a reader excludes a Mutex")
	require.NoError(t, rw.RUnlock(ctx))
	waitChildren(t, admin, root+"/rw", 0)
}

// Many sessions in a loop: never a writer beside anyone else.
func TestIntegration_RWMutexConcurrencyLimits(t *testing.T) {
	integration(t)
	root, newRW := rwRig(t)
	admin := zktesting.Shared(t).Admin(t)
	ctx := bounded(t, zktesting.Timeout)
	var readers, writers, violations atomic.Int32
	const clients, rounds = 6, 5
	done := make([]<-chan result, clients)
	for i := range clients {
		rw := newRW()
		done[i] = async(func() error {
			for n := range rounds {
				if (i+n)%3 == 0 {
					if err := rw.Lock(ctx); err != nil {
						return err
					}
					if writers.Add(1) != 1 || readers.Load() != 0 {
						violations.Add(1)
					}
					writers.Add(-1)
					if err := rw.Unlock(ctx); err != nil {
						return err
					}
					continue
				}
				if err := rw.RLock(ctx); err != nil {
					return err
				}
				readers.Add(1)
				if writers.Load() != 0 {
					violations.Add(1)
				}
				readers.Add(-1)
				if err := rw.RUnlock(ctx); err != nil {
					return err
				}
			}
			return nil
		})
	}
	for i := range clients {
		require.NoError(t, await(t, done[i], "a client's rounds").err)
	}
	assert.Zero(t, violations.Load(), "no writer overlapped a reader or a writer")
	waitChildren(t, admin, root+"/rw", 0)
}

// Misuse: upgrades and downgrades are refused, not deadlocked; a cancelled
// waiter leaves nothing behind.
func TestIntegration_RWMutexMisuseAndCancel(t *testing.T) {
	integration(t)
	root, newRW := rwRig(t)
	admin := zktesting.Shared(t).Admin(t)
	ctx := bounded(t, zktesting.Timeout)
	rw := newRW()
	require.NoError(t, rw.RLock(ctx))
	err := rw.Lock(ctx)
	assert.ErrorIs(t, err, zklock.ErrBusy, "no upgrade")
	assert.True(t, strings.Count(err.Error(), "zklock: ") == 1, err.Error())
	assert.ErrorIs(t, rw.TryLock(ctx), zklock.ErrBusy)
	assert.ErrorIs(t, rw.RLock(ctx), zklock.ErrBusy, "one read hold at a time")
	require.NoError(t, rw.RUnlock(ctx))
	require.NoError(t, rw.Lock(ctx))
	assert.ErrorIs(t, rw.RLock(ctx), zklock.ErrBusy, "no downgrade")

	cctx, cancel := context.WithCancel(ctx)
	waiter := newRW()
	res := async(func() error { return waiter.RLock(cctx) })
	waitChildren(t, admin, root+"/rw", 2)
	cancel()
	assert.ErrorIs(t, await(t, res, "the cancelled reader").err, context.Canceled)
	waitChildren(t, admin, root+"/rw", 1)
	require.NoError(t, rw.Unlock(ctx))
	waitChildren(t, admin, root+"/rw", 0)
}

// A reader whose session is lost learns it before a writer is granted.
func TestIntegration_RWMutexLossSignalledBeforeNextWriter(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	ps := zc.NewProxies(t)
	rs := connect(t, ps.Addrs(), zklock.WithChroot(root), zklock.WithSessionTimeout(2*time.Second))
	sub := rs.Subscribe()
	defer sub.Stop()
	reader := zklock.NewRWMutex(rs, "/rw")
	writer := zklock.NewRWMutex(connect(t, zc.Servers(), zklock.WithChroot(root)), "/rw")
	require.NoError(t, reader.RLock(bounded(t, zktesting.Timeout)))
	lost := make(chan time.Time, 1)
	done := reader.Reader().Done()
	go func() {
		<-done
		lost <- time.Now()
	}()
	wres := async(func() error { return writer.Lock(bounded(t, zktesting.Timeout)) })
	waitChildren(t, zc.Admin(t), root+"/rw", 2)
	expire(t, ps, sub)
	lostAt := await(t, lost, "the reader's loss signal")
	r := await(t, wres, "the writer")
	require.NoError(t, r.err)
	assert.True(t, lostAt.Before(r.at), "the reader learns of the loss before the writer is granted")
	assert.ErrorIs(t, reader.Reader().Err(), zklock.ErrLockLost)
	require.NoError(t, writer.Unlock(bounded(t, zktesting.Timeout)))
}
