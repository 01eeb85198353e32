package zktesting_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zklock/zklock"
	"github.com/zklock/zklock/zktesting"
)

func TestKillSessionGoZookeeper(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	ps := zc.NewProxies(t)
	// A long timeout: the expiry seen below is KillSession's, not a timeout's.
	c := dial(t, ps.Addrs(), 30*time.Second)
	_, err := c.conn.Create(root+"/e", nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
	require.NoError(t, err)
	require.Equal(t, []int64{c.conn.SessionID()}, ps.Sessions())

	ps.KillSession(t)
	c.await(t, zk.StateExpired)
	ok, _, err := zc.Admin(t).Exists(root + "/e")
	require.NoError(t, err)
	assert.False(t, ok, "the killed session's ephemeral node is gone")
	assert.Empty(t, ps.Sessions())
	ps.KillSession(t) // nothing left to kill
}

// KillSession from several goroutines at once kills the session once, and
// none of them fails: the others find it gone.
func TestKillSessionConcurrent(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	ps := zc.NewProxies(t)
	c := dial(t, ps.Addrs(), 30*time.Second)
	_, err := c.conn.Create(root+"/e", nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
	require.NoError(t, err)

	const killers = 4
	errs := make(chan error, killers)
	for range killers {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), zktesting.Timeout)
			defer cancel()
			errs <- ps.KillSessions(ctx)
		}()
	}
	for range killers {
		assert.NoError(t, <-errs)
	}
	c.await(t, zk.StateExpired)
	ok, _, err := zc.Admin(t).Exists(root + "/e")
	require.NoError(t, err)
	assert.False(t, ok, "the killed session's ephemeral node is gone")
}

func TestKillSessionZklock(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	ps := zc.NewProxies(t)
	ctx, cancel := context.WithTimeout(t.Context(), zktesting.Timeout)
	defer cancel()
	s, err := zklock.Connect(ctx, ps.Addrs(), zklock.WithChroot(root), zklock.WithSessionTimeout(30*time.Second))
	require.NoError(t, err)
	defer s.Close()
	m := zklock.NewMutex(s, "/lock")
	require.NoError(t, m.Lock(ctx))

	ps.KillSession(t)
	select {
	case <-m.Done():
	case <-ctx.Done():
		t.Fatal("the hold outlived its killed session")
	}
	assert.ErrorIs(t, m.Err(), zklock.ErrLockLost)
	assert.ErrorIs(t, m.Err(), zklock.ErrSessionExpired)
	assert.NotErrorIs(t, m.Err(), zklock.ErrLossDeadline, "the server, not the client's deadline, ended it")
}

func TestExpireSessionByPartition(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	admin := zc.Admin(t)
	ps := zc.NewProxies(t)
	c := dial(t, ps.Addrs(), time.Second)
	_, err := c.conn.Create(root+"/e", nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
	require.NoError(t, err)
	// go-zookeeper hears of the expiry only once it reconnects; the
	// server's side shows first, as the session's node going.
	ps.ExpireSession(t, func(ctx context.Context) error {
		for {
			ok, _, gone, err := admin.ExistsW(root + "/e")
			if err != nil || !ok {
				return err
			}
			select {
			case <-gone:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	})
	c.await(t, zk.StateExpired)
}

func TestDeleteNode(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	c := dial(t, zc.Servers(), 10*time.Second)
	_, err := c.conn.Create(root+"/e", nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
	require.NoError(t, err)
	ok, _, watch, err := c.conn.ExistsW(root + "/e")
	require.NoError(t, err)
	require.True(t, ok)

	zc.DeleteNode(t, root+"/e")
	select {
	case ev := <-watch:
		assert.Equal(t, zk.EventNodeDeleted, ev.Type)
	case <-time.After(zktesting.Timeout):
		t.Fatal("no watch event for the deleted node")
	}
	assert.Equal(t, zk.StateHasSession, c.conn.State(), "the owner's session lives on")
}

// fakeTB records what a helper reports, and runs the cleanups it registers
// when asked, so a test can see a check fail without failing itself.
type fakeTB struct {
	testing.TB
	cleanups []func()
	errors   []string
	skipped  bool
}

func (f *fakeTB) Helper()           {}
func (f *fakeTB) Cleanup(fn func()) { f.cleanups = append(f.cleanups, fn) }
func (f *fakeTB) Error(args ...any) { f.errors = append(f.errors, fmt.Sprint(args...)) }
func (f *fakeTB) Errorf(format string, a ...any) {
	f.errors = append(f.errors, fmt.Sprintf(format, a...))
}
func (f *fakeTB) Failed() bool                   { return len(f.errors) > 0 }
func (f *fakeTB) Logf(string, ...any)            {}
func (f *fakeTB) Skipf(format string, a ...any)  { f.skipped = true; runtime.Goexit() }
func (f *fakeTB) Fatalf(format string, a ...any) { f.Errorf(format, a...); runtime.Goexit() }
func (f *fakeTB) Fatal(args ...any)              { f.Error(args...); runtime.Goexit() }

// run calls fn with f on a goroutine of its own (Fatal and Skip end it),
// then the cleanups, last first.
func (f *fakeTB) run(fn func(testing.TB)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
}

func TestRootReportsLeftovers(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	admin := zc.Admin(t)
	var root string
	f := &fakeTB{TB: t}
	f.run(func(tb testing.TB) {
		root = zc.Root(tb)
		_, err := admin.Create(root+"/left", nil, 0, zk.WorldACL(zk.PermAll))
		require.NoError(t, err)
		// A lock directory, emptied, is not counted.
		_, err = admin.Create(root+"/dir", nil, 0, zk.WorldACL(zk.PermAll))
		require.NoError(t, err)
		_, err = admin.Create(root+"/dir/n", nil, 0, zk.WorldACL(zk.PermAll))
		require.NoError(t, err)
		require.NoError(t, admin.Delete(root+"/dir/n", -1))
	})
	require.Len(t, f.errors, 1)
	assert.Contains(t, f.errors[0], root+"/left")
	assert.NotContains(t, f.errors[0], root+"/dir")
	ok, _, err := admin.Exists(root)
	require.NoError(t, err)
	assert.False(t, ok, "the root is removed all the same")

	clean := &fakeTB{TB: t}
	clean.run(func(tb testing.TB) { zc.Root(tb) })
	assert.Empty(t, clean.errors)
}
