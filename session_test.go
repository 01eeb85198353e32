package zklock_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zklock/zklock"
	"github.com/zklock/zklock/zktesting"
)

func TestIntegration_ConnectStandalone(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	s := connect(t, zc.Servers(), zklock.WithChroot(root), zklock.WithSessionTimeout(4*time.Second))
	assert.Equal(t, zklock.StateConnected, s.State())
	assert.NotZero(t, s.SessionID())
	assert.Equal(t, 4*time.Second, s.NegotiatedTimeout())
	require.NoError(t, s.Create(bounded(t, zktesting.Timeout), "/node", []byte("x"), zk.FlagEphemeral))
	assert.True(t, exists(t, zc.Admin(t), root+"/node"), "the chroot prefixes every path")
	data, _, err := s.Get(bounded(t, zktesting.Timeout), "/node")
	require.NoError(t, err)
	assert.Equal(t, "x", string(data))
}

func TestIntegration_ConnectEnsembleSurvivesServerStop(t *testing.T) {
	integration(t)
	zc := zktesting.Start(t, 3)
	root := zc.Root(t)
	s := connect(t, zc.Servers(), zklock.WithChroot(root), zklock.WithSessionTimeout(10*time.Second))
	sub := s.Subscribe()
	defer sub.Stop()
	first := waitState(t, sub, zklock.StateConnected)
	require.NoError(t, s.Create(bounded(t, zktesting.Timeout), "/eph", nil, zk.FlagEphemeral))

	i := zc.Index(s.Server())
	require.GreaterOrEqual(t, i, 0, "server %s is one of the ensemble", s.Server())
	zc.StopServer(t, i)

	waitState(t, sub, zklock.StateSuspended)
	again := waitState(t, sub, zklock.StateConnected)
	assert.Equal(t, first.SessionID, again.SessionID, "the same ZooKeeper session resumes on another server")
	assert.Equal(t, first.Generation, again.Generation)
	assert.NotEqual(t, i, zc.Index(s.Server()))
	assert.True(t, exists(t, zc.Admin(t), root+"/eph"), "the session's ephemeral node survives")
	require.NoError(t, s.Delete(bounded(t, zktesting.Timeout), "/eph", -1))
}

func TestIntegration_ExpiryOpensNewSession(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	ps := zc.NewProxies(t)
	s := connect(t, ps.Addrs(), zklock.WithChroot(root), zklock.WithSessionTimeout(2*time.Second))
	sub := s.Subscribe()
	defer sub.Stop()
	first := waitState(t, sub, zklock.StateConnected)
	require.NoError(t, s.Create(bounded(t, zktesting.Timeout), "/eph", nil, zk.FlagEphemeral))

	expired := expire(t, ps, sub)
	assert.ErrorIs(t, expired.Err, zklock.ErrSessionExpired)
	assert.Equal(t, first.SessionID, expired.SessionID, "the expired change names the session that ended")

	next := waitState(t, sub, zklock.StateConnected)
	assert.NotEqual(t, first.SessionID, next.SessionID, "a new ZooKeeper session")
	assert.Equal(t, first.Generation+1, next.Generation)
	assert.Equal(t, next.SessionID, s.SessionID())
	waitGone(t, zc.Admin(t), root+"/eph")

	// The healed Session works.
	require.NoError(t, s.Create(bounded(t, zktesting.Timeout), "/eph2", nil, zk.FlagEphemeral))
	require.NoError(t, s.Delete(bounded(t, zktesting.Timeout), "/eph2", -1))
}

func TestIntegration_RetryAcrossCut(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	ps := zc.NewProxies(t)
	s := connect(t, ps.Addrs(), zklock.WithChroot(root), zklock.WithSessionTimeout(8*time.Second))
	sub := s.Subscribe()
	defer sub.Stop()
	first := waitState(t, sub, zklock.StateConnected)

	// All connections reset, and no new one gets through for 2 seconds.
	ps.Blackhole()
	ps.Cut()
	heal := time.AfterFunc(2*time.Second, ps.Heal)
	defer heal.Stop()
	err := s.Create(bounded(t, zktesting.Timeout), "/across-cut", []byte("v"), 0)
	require.NoError(t, err, "the create is retried until the connection is back")

	waitState(t, sub, zklock.StateSuspended)
	back := waitState(t, sub, zklock.StateConnected)
	assert.Equal(t, first.SessionID, back.SessionID)
	data, _, err := zc.Admin(t).Get(root + "/across-cut")
	require.NoError(t, err)
	assert.Equal(t, "v", string(data))
	require.NoError(t, s.Delete(bounded(t, zktesting.Timeout), "/across-cut", -1))
}

func TestIntegration_CloseRemovesEphemerals(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	s, err := zklock.Connect(bounded(t, zktesting.Timeout), zc.Servers(), zklock.WithChroot(root))
	require.NoError(t, err)
	sub := s.Subscribe()
	defer sub.Stop()
	require.NoError(t, s.Create(bounded(t, zktesting.Timeout), "/eph", nil, zk.FlagEphemeral))

	require.NoError(t, s.Close())
	assert.False(t, exists(t, zc.Admin(t), root+"/eph"), "gone as soon as Close returns")
	assert.NoError(t, s.Close(), "a second Close is harmless")
	assert.Equal(t, zklock.StateClosed, s.State())
	closed := waitState(t, sub, zklock.StateClosed)
	assert.ErrorIs(t, closed.Err, zklock.ErrSessionClosed)
	_, err = sub.Next(bounded(t, time.Second))
	assert.ErrorIs(t, err, zklock.ErrSessionClosed)
	_, _, err = s.Get(bounded(t, zktesting.Timeout), "/")
	assert.ErrorIs(t, err, zklock.ErrSessionClosed)
}

func TestIntegration_NegotiatedTimeout(t *testing.T) {
	integration(t)
	zc := zktesting.Start(t, 1, zktesting.WithMaxSessionTimeout(2*time.Second))
	before := time.Now()
	s := connect(t, zc.Servers(), zklock.WithSessionTimeout(30*time.Second))
	const negotiated = 2 * time.Second
	assert.Equal(t, negotiated, s.NegotiatedTimeout(), "the server's maxSessionTimeout wins")

	// The deadline lies T − (T/5 + T/40) − margin after the send time of an
	// answered request (the package documentation's formula, with the
	// default margin T/10), and that request was sent during this test.
	const T = negotiated
	sent := s.LossDeadline().Add(-(T - (T/5 + T/40) - T/10))
	now := time.Now()
	assert.False(t, sent.Before(before),
		"the deadline counts from a request sent after Connect was called, not %v before", before.Sub(sent))
	assert.False(t, sent.After(now),
		"the deadline counts from a request already answered, with the negotiated 2s, not the requested 30s: it would be sent %v from now", sent.Sub(now))
}

func TestIntegration_DigestACL(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	owner := connect(t, zc.Servers(), zklock.WithChroot(root),
		zklock.WithDigestAuth("alice", "secret"), zklock.WithACL(zk.AuthACL(zk.PermAll)...))
	ctx := bounded(t, zktesting.Timeout)
	require.NoError(t, owner.Create(ctx, "/private", nil, 0))
	require.NoError(t, owner.Create(ctx, "/private/data", []byte("x"), 0))

	for name, opts := range map[string][]zklock.SessionOption{
		"anonymous":   {zklock.WithChroot(root)},
		"wrong-creds": {zklock.WithChroot(root), zklock.WithDigestAuth("mallory", "guess")},
	} {
		t.Run(name, func(t *testing.T) {
			other := connect(t, zc.Servers(), opts...)
			ctx := bounded(t, zktesting.Timeout)
			_, _, err := other.Get(ctx, "/private/data")
			assert.ErrorIs(t, err, zk.ErrNoAuth, "read refused")
			assert.ErrorContains(t, err, "/private/data")
			_, err = other.Set(ctx, "/private/data", []byte("y"), -1)
			assert.ErrorIs(t, err, zk.ErrNoAuth, "write refused")
			err = other.Delete(ctx, "/private/data", -1)
			assert.ErrorIs(t, err, zk.ErrNoAuth, "delete refused")
			assert.NoError(t, ctx.Err(), "refusals are final, not retried until the deadline")
		})
	}
	data, _, err := owner.Get(ctx, "/private/data")
	require.NoError(t, err)
	assert.Equal(t, "x", string(data))
	require.NoError(t, owner.Delete(ctx, "/private/data", -1))
	require.NoError(t, owner.Delete(ctx, "/private", -1))
}

func TestConnectRejectsBadInput(t *testing.T) {
	good := []string{"127.0.0.1:2181"}
	for _, tc := range []struct {
		name    string
		servers []string
		opts    []zklock.SessionOption
		names   string
	}{
		{"no servers", nil, nil, "server list is empty"},
		{"no port", []string{"localhost"}, nil, `"localhost"`},
		{"empty host", []string{":2181"}, nil, `":2181"`},
		{"port zero", []string{"h:0"}, nil, `"0"`},
		{"port too big", []string{"h:65536"}, nil, `"65536"`},
		{"port not a number", []string{"h:zk"}, nil, `"zk"`},
		{"zero timeout", good, []zklock.SessionOption{zklock.WithSessionTimeout(0)}, "session timeout 0s"},
		{"negative timeout", good, []zklock.SessionOption{zklock.WithSessionTimeout(-time.Second)}, "session timeout -1s"},
		{"zero margin", good, []zklock.SessionOption{zklock.WithLossMargin(0)}, "loss margin 0s"},
		{"nil logger", good, []zklock.SessionOption{zklock.WithLogger(nil)}, "logger"},
		{"empty ACL", good, []zklock.SessionOption{zklock.WithACL()}, "ACL"},
		{"relative chroot", good, []zklock.SessionOption{zklock.WithChroot("app")}, `"app"`},
		{"nil dialer", good, []zklock.SessionOption{zklock.WithDialer(nil)}, "dialer"},
		{"empty auth user", good, []zklock.SessionOption{zklock.WithDigestAuth("", "p")}, "digest auth user"},
		{"bad backoff", good, []zklock.SessionOption{zklock.WithBackoff(zklock.Backoff{})}, "backoff Initial"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := zklock.Connect(t.Context(), tc.servers, tc.opts...)
			require.Error(t, err)
			assert.Nil(t, s)
			assert.ErrorIs(t, err, zklock.ErrInvalidOption)
			assert.ErrorContains(t, err, tc.names)
		})
	}
}

func TestConnectUnreachableHonoursContext(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close()) // nothing listens there now

	ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
	defer cancel()
	s, err := zklock.Connect(ctx, []string{addr})
	require.Error(t, err)
	assert.Nil(t, s)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.ErrorContains(t, err, "connection refused", "the last connection error is reported")
}

func TestIntegration_NodeOpsRejectInvalidPaths(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	s := connect(t, zc.Servers(), zklock.WithChroot(root))
	ctx := bounded(t, zktesting.Timeout)
	for _, p := range []string{"", "rel", "/trailing/", "/a//b", "/a/../b"} {
		_, _, err := s.Get(ctx, p)
		assert.ErrorIs(t, err, zklock.ErrInvalidPath, "%q", p)
	}
	err := s.Create(ctx, "/x", nil, zk.FlagSequence)
	assert.ErrorIs(t, err, zklock.ErrInvalidOption, "sequential creates are not offered")
	assert.False(t, exists(t, zc.Admin(t), root+"/x"), "nothing was created")
}
