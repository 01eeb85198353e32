package zklock_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zklock/zklock"
	"github.com/zklock/zklock/zktesting"
)

// Never more than n leases at once, under a loop of many sessions; every
// lease released leaves nothing behind.
func TestIntegration_SemaphoreLimit(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	admin := zc.Admin(t)
	ctx := bounded(t, zktesting.Timeout)
	const n, clients, rounds = 3, 7, 6
	var inside, most, violations atomic.Int32
	done := make([]<-chan result, clients)
	for i := range clients {
		s := connect(t, zc.Servers(), zklock.WithChroot(root))
		sem := zklock.NewSemaphore(s, "/sem", n)
		done[i] = async(func() error {
			for range rounds {
				l, err := sem.Acquire(ctx)
				if err != nil {
					return err
				}
				now := inside.Add(1)
				if now > n {
					violations.Add(1)
				}
				for m := most.Load(); now > m && !most.CompareAndSwap(m, now); m = most.Load() {
				}
				// Hold the lease for a few round trips, so holds overlap.
				for range 10 {
					if _, _, err := s.Exists(ctx, l.Key()); err != nil {
						return err
					}
				}
				inside.Add(-1)
				if err := l.Release(ctx); err != nil {
					return err
				}
			}
			return nil
		})
	}
	for i := range clients {
		require.NoError(t, await(t, done[i], "a client's rounds").err)
	}
	assert.Zero(t, violations.Load(), "never more than %d leases at once", n)
	t.Logf("at most %d leases were held at once", most.Load())
	waitChildren(t, admin, root+"/sem/leases", 0)
	waitChildren(t, admin, root+"/sem/locks", 0)
}

// n leases are held at once; the next acquirer waits until one is
// released; TryAcquire and a cancelled Acquire leave nothing behind; a lost
// lease is signalled to its holder before its place is given away.
func TestIntegration_SemaphoreLeases(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	admin := zc.Admin(t)
	ps := zc.NewProxies(t)
	ctx := bounded(t, zktesting.Timeout)
	hs := connect(t, ps.Addrs(), zklock.WithChroot(root), zklock.WithSessionTimeout(2*time.Second))
	sub := hs.Subscribe()
	defer sub.Stop()
	holder := zklock.NewSemaphore(hs, "/sem", 2)
	other := zklock.NewSemaphore(connect(t, zc.Servers(), zklock.WithChroot(root)), "/sem", 2)

	a, err := holder.Acquire(ctx)
	require.NoError(t, err)
	b, err := other.Acquire(ctx)
	require.NoError(t, err, "two leases at once")
	assert.Contains(t, a.Key(), "/sem/leases/_c_")
	assert.Contains(t, a.Key(), "-lease-")
	assert.Greater(t, b.Token(), a.Token())

	_, err = other.TryAcquire(ctx)
	assert.ErrorIs(t, err, zklock.ErrLocked, "no third lease")
	assert.Len(t, children(t, admin, root+"/sem/leases"), 2, "TryAcquire left nothing")

	cctx, cancel := context.WithCancel(ctx)
	res := async(func() error { _, err := other.Acquire(cctx); return err })
	waitChildren(t, admin, root+"/sem/leases", 3)
	stillBlocked(t, res, "the third acquirer")
	cancel()
	assert.ErrorIs(t, await(t, res, "the cancelled Acquire").err, context.Canceled)
	waitChildren(t, admin, root+"/sem/leases", 2)
	waitChildren(t, admin, root+"/sem/locks", 0)

	// The next acquirer waits; the holder's lease is lost by expiry; the
	// holder learns it before the waiter gets the place.
	lost := make(chan time.Time, 1)
	adone := a.Done()
	go func() {
		<-adone
		lost <- time.Now()
	}()
	var next *zklock.Lease
	res = async(func() error { var err error; next, err = other.Acquire(ctx); return err })
	waitChildren(t, admin, root+"/sem/leases", 3)
	expire(t, ps, sub)
	lostAt := await(t, lost, "the lost lease's signal")
	r := await(t, res, "the waiting Acquire")
	require.NoError(t, r.err)
	assert.True(t, lostAt.Before(r.at), "the holder learns of the loss before its place is given away")
	assert.ErrorIs(t, a.Err(), zklock.ErrLeaseLost)
	assert.ErrorIs(t, a.Err(), zklock.ErrSessionExpired)
	assert.ErrorIs(t, a.Release(ctx), zklock.ErrNotHeld)

	require.NoError(t, b.Release(ctx))
	require.NoError(t, next.Release(ctx))
	assert.ErrorIs(t, next.Release(ctx), zklock.ErrNotHeld)
	waitChildren(t, admin, root+"/sem/leases", 0)

	for _, tc := range []struct {
		path string
		n    int
		want error
	}{{"/sem", 0, zklock.ErrInvalidOption}, {"x", 1, zklock.ErrInvalidPath}, {"/", 1, zklock.ErrInvalidPath}} {
		_, err := zklock.NewSemaphore(hs, tc.path, tc.n).Acquire(ctx)
		assert.ErrorIs(t, err, tc.want, "%q, %d", tc.path, tc.n)
	}
}
