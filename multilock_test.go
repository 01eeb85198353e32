package zklock_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zklock/zklock"
	"github.com/zklock/zklock/zktesting"
)

// Two MultiLocks over overlapping paths, given in opposite orders, loop
// against each other and a single Mutex: no deadlock, no overlap on a
// member path.
func TestIntegration_MultiLockNeverDeadlocksNorOverlaps(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	admin := zc.Admin(t)
	ctx := bounded(t, zktesting.Timeout)
	var holders [3]atomic.Int32 // per path /a /b /c
	var overlaps atomic.Int32
	enter := func(idx ...int) {
		for _, i := range idx {
			if holders[i].Add(1) != 1 {
				overlaps.Add(1)
			}
		}
	}
	leave := func(idx ...int) {
		for _, i := range idx {
			holders[i].Add(-1)
		}
	}
	run := func(paths []string, idx []int) <-chan result {
		l := zklock.NewMultiLock(connect(t, zc.Servers(), zklock.WithChroot(root)), paths)
		return async(func() error {
			for range 10 {
				if err := l.Lock(ctx); err != nil {
					return err
				}
				enter(idx...)
				leave(idx...)
				if err := l.Unlock(ctx); err != nil {
					return err
				}
			}
			return nil
		})
	}
	single := zklock.NewMutex(connect(t, zc.Servers(), zklock.WithChroot(root)), "/b")
	r1 := run([]string{"/a", "/b", "/c"}, []int{0, 1, 2})
	r2 := run([]string{"/c", "/b"}, []int{2, 1})
	r3 := async(func() error {
		for range 10 {
			if err := single.Lock(ctx); err != nil {
				return err
			}
			enter(1)
			leave(1)
			if err := single.Unlock(ctx); err != nil {
				return err
			}
		}
		return nil
	})
	for _, r := range []<-chan result{r1, r2, r3} {
		require.NoError(t, await(t, r, "a contender's rounds").err)
	}
	assert.Zero(t, overlaps.Load(), "no two holders on one path")
	for _, p := range []string{"/a", "/b", "/c"} {
		waitChildren(t, admin, root+p, 0)
	}
}

// All or none: a TryLock or a cancelled Lock that cannot take every path
// leaves no node on any; a member's loss ends the hold; tokens are per
// path.
func TestIntegration_MultiLockAllOrNone(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	admin := zc.Admin(t)
	ctx := bounded(t, zktesting.Timeout)
	s := connect(t, zc.Servers(), zklock.WithChroot(root))
	other := zklock.NewMutex(connect(t, zc.Servers(), zklock.WithChroot(root)), "/y")
	require.NoError(t, other.Lock(ctx))

	l := zklock.NewMultiLock(s, []string{"/z", "/y", "/x"})
	assert.ErrorIs(t, l.Err(), zklock.ErrNotLocked, "before the first Lock")
	assert.ErrorIs(t, l.TryLock(ctx), zklock.ErrLocked)
	for _, p := range []string{"/x", "/z"} {
		waitChildren(t, admin, root+p, 0) // taken, then released
	}
	assert.Len(t, children(t, admin, root+"/y"), 1, "only the other holder's node")

	cctx, cancel := context.WithCancel(ctx)
	res := async(func() error { return l.Lock(cctx) })
	waitChildren(t, admin, root+"/y", 2)
	cancel()
	assert.ErrorIs(t, await(t, res, "the cancelled Lock").err, context.Canceled)
	for _, p := range []string{"/x", "/z"} {
		waitChildren(t, admin, root+p, 0)
	}
	waitChildren(t, admin, root+"/y", 1)

	require.NoError(t, other.Unlock(ctx))
	require.NoError(t, l.Lock(ctx))
	require.NoError(t, l.Err())
	var paths []string
	for _, m := range l.Mutexes() {
		paths = append(paths, m.Key()[:2])
		assert.Positive(t, m.Token())
	}
	assert.Equal(t, []string{"/x", "/y", "/z"}, paths, "the canonical order")
	assert.Len(t, l.Guards(), 3)

	zc.DeleteNode(t, root+l.Mutexes()[1].Key())
	await(t, l.Done(), "the hold to end with its member")
	assert.ErrorIs(t, l.Err(), zklock.ErrLockLost)
	assert.ErrorIs(t, l.Err(), zklock.ErrNodeDeleted)
	err := l.Unlock(ctx)
	assert.ErrorIs(t, err, zklock.ErrLockLost, "Unlock reports the lost member")
	for _, p := range []string{"/x", "/y", "/z"} {
		waitChildren(t, admin, root+p, 0)
	}

	for _, bad := range [][]string{nil, {"/x", "/x"}, {"/x", "y"}, {"/x", "/b/"}} {
		err := zklock.NewMultiLock(s, bad).Lock(ctx)
		assert.Error(t, err, fmt.Sprint(bad))
	}
	// An invalid member is reported before any member is waited for.
	require.NoError(t, other.Lock(ctx))
	err = zklock.NewMultiLock(s, []string{"/y", "/b/"}).Lock(ctx)
	assert.ErrorIs(t, err, zklock.ErrInvalidPath)
	// Unlock during a running Lock leaves its members to it.
	res = async(func() error { return l.Lock(ctx) })
	waitChildren(t, admin, root+"/y", 2)
	assert.ErrorIs(t, l.Unlock(ctx), zklock.ErrNotLocked)
	require.NoError(t, other.Unlock(ctx))
	require.NoError(t, await(t, res, "the Lock").err)
	assert.NoError(t, l.Err(), "the Lock that returned nil holds every member")
	require.NoError(t, l.Unlock(ctx))
	for _, p := range []string{"/x", "/y", "/z"} {
		waitChildren(t, admin, root+p, 0)
	}
}
