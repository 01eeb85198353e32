package zklock_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zklock/zklock"
	"github.com/zklock/zklock/internal/interop"
	"github.com/zklock/zklock/zktesting"
)

func TestIntegration_ElectionFailoverInQueueOrder(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	admin := zc.Admin(t)
	const n = 5
	sessions := make([]*zklock.Session, n)
	elections := make([]*zklock.Election, n)
	results := make([]<-chan result, n)
	for i := range n {
		sessions[i] = connect(t, zc.Servers(), zklock.WithChroot(root))
		elections[i] = zklock.NewElection(sessions[i], "/election", zklock.WithValue(fmt.Appendf(nil, "c%d", i)))
		results[i] = campaignAsync(bounded(t, zktesting.Timeout), elections[i])
		waitChildren(t, admin, root+"/election", i+1) // queue order = index order
	}
	observer := zklock.NewElection(connect(t, zc.Servers(), zklock.WithChroot(root)), "/election")
	obs, err := observer.Observe(bounded(t, zktesting.Timeout))
	require.NoError(t, err)

	var lastToken int64
	for i := range n {
		r := await(t, results[i], fmt.Sprintf("c%d's Campaign", i))
		require.NoError(t, r.err)
		assert.Equal(t, n-1-i, pending(results[i+1:]), "exactly one leader: the others still wait")
		term := nextTerm(t, obs)
		assert.Equal(t, fmt.Sprintf("c%d", i), string(term.Value), "Observe follows the queue")
		assert.Equal(t, elections[i].Key(), term.Key)
		assert.Equal(t, elections[i].Token(), term.Token)
		assert.Greater(t, term.Token, lastToken, "terms strictly increase")
		lastToken = term.Token
		v, err := observer.Leader(bounded(t, zktesting.Timeout))
		require.NoError(t, err)
		assert.Equal(t, term, v, "Leader agrees with Observe")
		require.NoError(t, sessions[i].Close()) // kill the leader's session
		await(t, elections[i].Done(), "the closed leader's loss signal")
		assert.ErrorIs(t, elections[i].Err(), zklock.ErrLeadershipLost)
		assert.ErrorIs(t, elections[i].Err(), zklock.ErrSessionClosed)
	}
	_, err = observer.Leader(bounded(t, zktesting.Timeout))
	assert.ErrorIs(t, err, zklock.ErrNoLeader)
}

func TestIntegration_ElectionLossSignalledBeforeNextLeader(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	ps := zc.NewProxies(t)
	ls := connect(t, ps.Addrs(), zklock.WithChroot(root), zklock.WithSessionTimeout(2*time.Second))
	sub := ls.Subscribe()
	defer sub.Stop()
	leader := zklock.NewElection(ls, "/election", zklock.WithValue([]byte("a")))
	next := zklock.NewElection(connect(t, zc.Servers(), zklock.WithChroot(root)), "/election", zklock.WithValue([]byte("b")))
	require.NoError(t, leader.Campaign(bounded(t, zktesting.Timeout)))
	lost := make(chan time.Time, 1)
	done := leader.Done()
	go func() { <-done; lost <- time.Now() }()
	nres := campaignAsync(bounded(t, zktesting.Timeout), next)
	waitChildren(t, zc.Admin(t), root+"/election", 2)

	expire(t, ps, sub)
	lostAt := await(t, lost, "the leader's loss signal")
	r := await(t, nres, "the next Campaign")
	require.NoError(t, r.err)
	assert.True(t, lostAt.Before(r.at), "leadership ends (%v) before the next leader starts (%v)",
		lostAt.Format(time.StampMicro), r.at.Format(time.StampMicro))
	assert.ErrorIs(t, leader.Err(), zklock.ErrSessionExpired)
	assert.Greater(t, next.Token(), leader.Token())
	require.NoError(t, next.Resign(bounded(t, zktesting.Timeout)))
}

func TestIntegration_ElectionShortCutKeepsLeader(t *testing.T) {
	integration(t)
	zc := zktesting.Start(t, 3)
	root := zc.Root(t)
	ps := zc.NewProxies(t)
	s := connect(t, ps.Addrs(), zklock.WithChroot(root), zklock.WithSessionTimeout(10*time.Second))
	leader := zklock.NewElection(s, "/election", zklock.WithValue([]byte("a")))
	other := zklock.NewElection(connect(t, zc.Servers(), zklock.WithChroot(root)), "/election", zklock.WithValue([]byte("b")))
	require.NoError(t, leader.Campaign(bounded(t, zktesting.Timeout)))
	ores := campaignAsync(bounded(t, zktesting.Timeout), other)
	waitChildren(t, zc.Admin(t), root+"/election", 2)
	sub := s.Subscribe()
	defer sub.Stop()
	waitState(t, sub, zklock.StateConnected)

	ps.Cut() // every connection reset; the client reconnects to some server
	waitState(t, sub, zklock.StateSuspended)
	waitState(t, sub, zklock.StateConnected)
	v, err := other.Leader(bounded(t, zktesting.Timeout))
	require.NoError(t, err)
	assert.Equal(t, "a", string(v.Value))
	require.False(t, isClosed(leader.Done()), "leadership survives a short cut: %v", leader.Err())
	stillBlocked(t, ores, "the other candidate's Campaign, while the leader leads")
	require.NoError(t, leader.Resign(bounded(t, zktesting.Timeout)))
	require.NoError(t, await(t, ores, "the other Campaign").err)
	require.NoError(t, other.Resign(bounded(t, zktesting.Timeout)))
}

func TestIntegration_ElectionRunRecampaignsAfterExpiry(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	ps := zc.NewProxies(t)
	s := connect(t, ps.Addrs(), zklock.WithChroot(root), zklock.WithSessionTimeout(2*time.Second))
	sub := s.Subscribe()
	defer sub.Stop()
	e := zklock.NewElection(s, "/election", zklock.WithValue([]byte("runner")))

	var running atomic.Int32
	var overlaps atomic.Int32
	type term struct {
		token     int64
		sessionID int64
	}
	started := make(chan term, 16)
	ended := make(chan error, 16)
	ctx, cancel := context.WithCancel(t.Context())
	runDone := make(chan error, 1)
	go func() {
		runDone <- e.Run(ctx, func(lctx context.Context) error {
			if running.Add(1) != 1 {
				overlaps.Add(1)
			}
			defer running.Add(-1)
			started <- term{e.Token(), s.SessionID()}
			<-lctx.Done()
			ended <- context.Cause(lctx)
			return nil
		})
	}()

	first := await(t, started, "the first term")
	prev := first
	for range 3 {
		expire(t, ps, sub)
		cause := await(t, ended, "fn's context to end on loss")
		assert.ErrorIs(t, cause, zklock.ErrLeadershipLost)
		next := await(t, started, "the next term")
		assert.NotEqual(t, prev.sessionID, next.sessionID, "the new term runs in a new ZooKeeper session")
		assert.Greater(t, next.token, prev.token)
		prev = next
	}
	cancel()
	err := await(t, runDone, "Run to return")
	assert.ErrorIs(t, err, context.Canceled)
	assert.ErrorIs(t, await(t, ended, "the last term to end"), context.Canceled, "fn is stopped when Run's ctx ends")
	assert.Zero(t, overlaps.Load(), "fn never runs twice at once")
	waitChildren(t, zc.Admin(t), root+"/election", 0)
}

func TestIntegration_ElectionResignAndObserve(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	admin := zc.Admin(t)
	names := []string{"a", "b", "c"}
	var es []*zklock.Election
	var rs []<-chan result
	for i, name := range names {
		e := zklock.NewElection(connect(t, zc.Servers(), zklock.WithChroot(root)), "/election", zklock.WithValue([]byte(name)))
		es = append(es, e)
		rs = append(rs, campaignAsync(bounded(t, zktesting.Timeout), e))
		waitChildren(t, admin, root+"/election", i+1)
	}
	observer := zklock.NewElection(connect(t, zc.Servers(), zklock.WithChroot(root)), "/election")
	octx, stop := context.WithCancel(t.Context())
	obs, err := observer.Observe(octx)
	require.NoError(t, err)
	for i, name := range names {
		require.NoError(t, await(t, rs[i], "Campaign").err)
		term := nextTerm(t, obs)
		assert.Equal(t, name, string(term.Value), "leaders are observed in order")
		require.NoError(t, es[i].Resign(bounded(t, zktesting.Timeout)), "resign hands over")
		assert.ErrorIs(t, es[i].Err(), zklock.ErrNotLeader)
	}
	waitChildren(t, admin, root+"/election", 0)
	assert.ErrorIs(t, es[0].Resign(bounded(t, zktesting.Timeout)), zklock.ErrNotLeader)
	stop()
	for term := range obs {
		t.Errorf("observed a leader twice or out of turn: %s", term.Value)
	}
}

func TestIntegration_ElectionCancelAndOperatorDelete(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	admin := zc.Admin(t)
	leader := zklock.NewElection(connect(t, zc.Servers(), zklock.WithChroot(root)), "/election", zklock.WithValue([]byte("a")))
	waiter := zklock.NewElection(connect(t, zc.Servers(), zklock.WithChroot(root)), "/election", zklock.WithValue([]byte("b")))
	require.NoError(t, leader.Campaign(bounded(t, zktesting.Timeout)))

	ctx, cancel := context.WithCancel(t.Context())
	wres := campaignAsync(ctx, waiter)
	waitChildren(t, admin, root+"/election", 2)
	cancel()
	assert.ErrorIs(t, await(t, wres, "the cancelled Campaign").err, context.Canceled)
	waitChildren(t, admin, root+"/election", 1)

	zc.DeleteNode(t, root+leader.Key())
	await(t, leader.Done(), "leadership to end")
	assert.ErrorIs(t, leader.Err(), zklock.ErrLeadershipLost)
	assert.ErrorIs(t, leader.Err(), zklock.ErrNodeDeleted)
	require.NoError(t, leader.Campaign(bounded(t, zktesting.Timeout)), "a candidate whose leadership was lost can campaign again")
	require.NoError(t, leader.Resign(bounded(t, zktesting.Timeout)))
}

func TestIntegration_ElectionCuratorLeaderLatch(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	admin := zc.Admin(t)
	latch := startPeer(t, interop.StartCurator, zc.Direct(), t.TempDir())
	path := root + "/election"
	ctx := bounded(t, zktesting.Timeout)

	// Curator leads; zklock follows and agrees.
	_, err := latch.Do(ctx, "latch "+path+" curator-1", "latch-started "+path)
	require.NoError(t, err)
	_, err = latch.Expect(ctx, "leader "+path)
	require.NoError(t, err)
	e := zklock.NewElection(connect(t, zc.Servers(), zklock.WithChroot(root)), "/election", zklock.WithValue([]byte("zklock-1")))
	v, err := e.Leader(ctx)
	require.NoError(t, err)
	assert.Equal(t, "curator-1", string(v.Value))
	res := campaignAsync(ctx, e)
	waitChildren(t, admin, path, 2)
	line, err := latch.Do(ctx, "leader-id "+path, "leader-id "+path)
	require.NoError(t, err)
	assert.True(t, strings.HasSuffix(line, " curator-1"), line)
	_, err = latch.Do(ctx, "latch-close "+path, "latch-closed "+path)
	require.NoError(t, err)
	require.NoError(t, await(t, res, "zklock's Campaign after the latch closed").err)

	// zklock leads; Curator follows and agrees.
	_, err = latch.Do(ctx, "latch "+path+" curator-2", "latch-started "+path)
	require.NoError(t, err)
	waitChildren(t, admin, path, 2)
	line, err = latch.Do(ctx, "leader-id "+path, "leader-id "+path)
	require.NoError(t, err)
	assert.True(t, strings.HasSuffix(line, " zklock-1"), "Curator sees the zklock leader: %s", line)
	assert.NotContains(t, latch.Pending(), "leader "+path, "Curator does not also lead")
	require.NoError(t, e.Resign(ctx))
	_, err = latch.Expect(ctx, "leader "+path)
	require.NoError(t, err, "Curator leads once zklock resigns")
	v, err = e.Leader(ctx)
	require.NoError(t, err)
	assert.Equal(t, "curator-2", string(v.Value))
	_, err = latch.Do(ctx, "latch-close "+path, "latch-closed "+path)
	require.NoError(t, err)
	waitChildren(t, admin, path, 0)
}

func TestIntegration_ElectionMisuse(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	s := connect(t, zc.Servers(), zklock.WithChroot(root))
	ctx := bounded(t, zktesting.Timeout)
	e := zklock.NewElection(s, "/never-used", zklock.WithValue([]byte("me")))

	_, err := e.Leader(ctx)
	assert.ErrorIs(t, err, zklock.ErrNoLeader, "no election yet")
	assert.ErrorIs(t, e.Resign(ctx), zklock.ErrNotLeader, "Resign without Campaign")
	assert.ErrorIs(t, e.Err(), zklock.ErrNotLeader)

	octx, stop := context.WithCancel(ctx)
	obs, err := e.Observe(octx)
	require.NoError(t, err)
	require.NoError(t, e.Campaign(ctx))
	assert.Equal(t, "me", string(nextTerm(t, obs).Value), "Observe sees the election's first leader, with its WithValue value")
	stop()
	for range obs {
	}
	assert.ErrorIs(t, e.Campaign(ctx), zklock.ErrBusy, "not reentrant")
	require.NoError(t, e.Resign(ctx))

	for _, p := range []string{"", "x", "/x/", "/"} {
		assert.ErrorIs(t, zklock.NewElection(s, p).Campaign(ctx), zklock.ErrInvalidPath, "path %q", p)
	}
}

// A leader proclaims a new value: Leader reports it, the Guard keeps up
// with the node's version, and a candidate that does not lead is refused.
func TestIntegration_ElectionProclaim(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	s := connect(t, zc.Servers(), zklock.WithChroot(root))
	ctx := bounded(t, zktesting.Timeout)
	e := zklock.NewElection(s, "/election", zklock.WithValue([]byte("v1")))
	assert.ErrorIs(t, e.Proclaim(ctx, []byte("x")), zklock.ErrNotLeader, "not campaigning")
	require.NoError(t, e.Campaign(ctx))
	require.NoError(t, e.Proclaim(ctx, []byte("v2")))
	term, err := zklock.NewElection(s, "/election").Leader(ctx)
	require.NoError(t, err)
	assert.Equal(t, "v2", string(term.Value))
	require.NoError(t, s.Create(ctx, "/fenced", nil, 0))
	_, err = s.Multi(ctx, e.Guard(), &zk.SetDataRequest{Path: "/fenced", Data: []byte("ok"), Version: -1})
	assert.NoError(t, err, "the Guard follows the proclaimed version")
	require.NoError(t, e.Proclaim(ctx, []byte("v3")))
	assert.NoError(t, e.Err(), "a proclaimed value does not end leadership")
	require.NoError(t, e.Resign(ctx))
	assert.ErrorIs(t, e.Proclaim(ctx, []byte("v4")), zklock.ErrNotLeader)
	require.NoError(t, s.Delete(ctx, "/fenced", -1))

	other := connect(t, zc.Servers())
	done := other.Done()
	assert.False(t, isClosed(done))
	require.NoError(t, other.Close())
	assert.True(t, isClosed(done), "Session.Done is closed by Close")
}
