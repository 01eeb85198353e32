package zklock_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/zklock/zklock"
	"github.com/zklock/zklock/internal/interop"
	"github.com/zklock/zklock/zktesting"
)

// BenchmarkFailover measures how long leadership takes to move, against the
// floor ZooKeeper sets: the watch notification for the leader's deleted
// node. Every handover is watched by a plain go-zookeeper client too, so
// both figures come from the same events. Reported, over b.N handovers:
// next-p50-ms / next-max-ms (the next leader learns it leads),
// notify-p50-ms (the plain watch fires) and ratio (next-p50 / notify-p50).
//
//   - resign: the leader deletes its node (zklock Resign; Curator latch close);
//   - close: the leader's session is closed;
//   - kill: the leader goes silent (its connection is blackholed, as when its
//     process is killed) and the server expires its session (timeout 1s).
//
// Run: go test -run '^$' -bench Failover -benchtime 50x
func BenchmarkFailover(b *testing.B) {
	integration(b)
	zc := zktesting.Shared(b)
	b.Run("zklock-resign", func(b *testing.B) { runFailover(b, zc, handoverResign, 0) })
	b.Run("zklock-close", func(b *testing.B) { runFailover(b, zc, handoverClose, 0) })
	b.Run("zklock-kill", func(b *testing.B) { runFailover(b, zc, handoverKill, time.Second) })
	b.Run("curator-latch-close", func(b *testing.B) { curatorFailover(b, zc) })
}

type handoverKind int

const (
	handoverResign handoverKind = iota
	handoverClose
	handoverKill
)

// report adds the handover figures to the benchmark's results.
func report(b *testing.B, next, notify []time.Duration) {
	slices.Sort(next)
	slices.Sort(notify)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	p50, n50 := next[len(next)/2], notify[len(notify)/2]
	b.ReportMetric(ms(p50), "next-p50-ms")
	b.ReportMetric(ms(next[len(next)-1]), "next-max-ms")
	b.ReportMetric(ms(n50), "notify-p50-ms")
	b.ReportMetric(float64(p50)/float64(n50), "ratio")
	b.ReportMetric(0, "ns/op") // wall time per op includes setup
}

func runFailover(b *testing.B, zc *zktesting.Cluster, kind handoverKind, timeout time.Duration) {
	root := zc.Root(b)
	watcher := plainConn(b, zc.Servers())
	var next, notify []time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dir := fmt.Sprintf("%s/%d", root, i)
		ctx := bounded(b, zktesting.Timeout)
		ps := zc.NewProxies(b)
		var opts []zklock.SessionOption
		if timeout > 0 {
			opts = append(opts, zklock.WithSessionTimeout(timeout))
		}
		ls := connect(b, ps.Addrs(), opts...)
		fs := connect(b, zc.Servers())
		leader := zklock.NewElection(ls, dir, zklock.WithValue([]byte("leader")))
		follower := zklock.NewElection(fs, dir, zklock.WithValue([]byte("follower")))
		require.NoError(b, leader.Campaign(ctx))
		won := campaignAsync(ctx, follower)
		waitChildren(b, zc.Admin(b), dir, 2)
		gone := watchGone(b, watcher, leader.Key())
		b.StartTimer()

		start := time.Now()
		switch kind {
		case handoverResign:
			require.NoError(b, leader.Resign(ctx))
		case handoverClose:
			ls.Close()
		case handoverKill:
			ps.Blackhole()
		}
		r := await(b, won, "the next leader")
		require.NoError(b, r.err)
		next = append(next, r.at.Sub(start))
		notify = append(notify, await(b, gone, "the plain notification").Sub(start))

		b.StopTimer()
		require.NoError(b, follower.Resign(ctx))
		ls.Close()
		fs.Close()
	}
	report(b, next, notify)
}

// curatorFailover: two Curator LeaderLatch peers hand leadership back and
// forth by closing the leading latch. Its next-leader times include one
// line each way over the peers' pipes (tens of microseconds).
func curatorFailover(b *testing.B, zc *zktesting.Cluster) {
	root := zc.Root(b)
	ctx := bounded(b, 5*zktesting.Timeout)
	work := b.TempDir()
	var peers [2]*interop.Peer
	for i := range peers {
		peers[i] = startPeer(b, interop.StartCurator, zc.Direct(), work)
	}
	watcher := plainConn(b, zc.Servers())
	do := func(p *interop.Peer, cmd, reply string) {
		_, err := p.Do(ctx, cmd, reply)
		require.NoError(b, err)
	}
	var next, notify []time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		path := fmt.Sprintf("%s/%d", root, i)
		lead, follow := peers[i%2], peers[(i+1)%2]
		do(lead, "latch "+path+" a", "latch-started "+path)
		_, err := lead.Expect(ctx, "leader "+path)
		require.NoError(b, err)
		do(follow, "latch "+path+" b", "latch-started "+path)
		kids := waitChildren(b, zc.Admin(b), path, 2)
		gone := watchGone(b, watcher, path+"/"+firstBySeq(kids))
		b.StartTimer()

		start := time.Now()
		require.NoError(b, lead.Send("latch-close "+path))
		_, err = follow.Expect(ctx, "leader "+path)
		require.NoError(b, err)
		next = append(next, time.Since(start))
		notify = append(notify, await(b, gone, "the plain notification").Sub(start))

		b.StopTimer()
		_, err = lead.Expect(ctx, "latch-closed "+path)
		require.NoError(b, err)
		do(follow, "latch-close "+path, "latch-closed "+path)
	}
	report(b, next, notify)
}
