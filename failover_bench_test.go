package zklock_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zklock/zklock"
	"github.com/zklock/zklock/internal/interop"
	"github.com/zklock/zklock/internal/zktest"
)

// BenchmarkFailover measures how long leadership takes to move, against the
// floor ZooKeeper sets: the latency of a watch notification for the deleted
// node. Each sub-benchmark reports p50 and max in milliseconds over b.N
// handovers:
//
//   - notify-delete / zklock-resign / curator-latch-close: the leader gives
//     up (deletes its node) and the next candidate is told;
//   - notify-close / zklock-close: the leader's session is closed;
//   - notify-kill / zklock-kill: the leader goes silent (its connection is
//     blackholed, as when its process is killed) and the server expires
//     its session (timeout 1s).
//
// Run: go test -run '^$' -bench Failover -benchtime 20x
func BenchmarkFailover(b *testing.B) {
	if testing.Short() {
		b.Skip("needs ZooKeeper")
	}
	zc := zktest.Shared(b)
	const kill = time.Second

	b.Run("notify-delete", func(b *testing.B) { runFailover(b, zc, notifyHandover(zc, handoverDelete, 0)) })
	b.Run("zklock-resign", func(b *testing.B) { runFailover(b, zc, electionHandover(zc, handoverDelete, 0)) })
	b.Run("curator-latch-close", func(b *testing.B) { curatorFailover(b, zc) })
	b.Run("notify-close", func(b *testing.B) { runFailover(b, zc, notifyHandover(zc, handoverClose, 0)) })
	b.Run("zklock-close", func(b *testing.B) { runFailover(b, zc, electionHandover(zc, handoverClose, 0)) })
	b.Run("notify-kill", func(b *testing.B) { runFailover(b, zc, notifyHandover(zc, handoverKill, kill)) })
	b.Run("zklock-kill", func(b *testing.B) { runFailover(b, zc, electionHandover(zc, handoverKill, kill)) })
}

type handoverKind int

const (
	handoverDelete handoverKind = iota
	handoverClose
	handoverKill
)

// handover prepares one leader and one follower, then returns a function
// that makes the leader go and returns how long the follower took to learn
// it leads.
type handover func(b *testing.B, root string) func() time.Duration

func runFailover(b *testing.B, zc *zktest.Cluster, h handover) {
	root := zc.Root(b)
	var samples []time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		fire := h(b, fmt.Sprintf("%s/%d", root, i))
		b.StartTimer()
		samples = append(samples, fire())
	}
	report(b, samples)
}

func report(b *testing.B, samples []time.Duration) {
	slices.Sort(samples)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(samples[len(samples)/2]), "p50-ms")
	b.ReportMetric(ms(samples[len(samples)-1]), "max-ms")
	b.ReportMetric(0, "ns/op") // wall time per op includes setup; the percentiles are the result
}

func rawConn(b *testing.B, servers []string, timeout time.Duration) *zk.Conn {
	conn, ev, err := zk.Connect(servers, timeout, zk.WithLogInfo(false), zk.WithLogger(quietLogger{}))
	if err != nil {
		b.Fatal(err)
	}
	deadline := time.After(zktest.Timeout)
	for conn.State() != zk.StateHasSession {
		select {
		case <-ev:
		case <-deadline:
			b.Fatal("raw connection did not get a session")
		}
	}
	return conn
}

// notifyHandover: the bare floor. A raw client's ephemeral node goes; a
// second raw client's exists-watch fires.
func notifyHandover(zc *zktest.Cluster, kind handoverKind, timeout time.Duration) handover {
	return func(b *testing.B, dir string) func() time.Duration {
		ps := zc.NewProxies(b)
		if timeout == 0 {
			timeout = 10 * time.Second
		}
		leader := rawConn(b, ps.Addrs(), timeout)
		watcher := rawConn(b, zc.Servers(), 10*time.Second)
		if _, err := watcher.Create(dir, nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
			b.Fatal(err)
		}
		node, err := leader.Create(dir+"/n", nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
		if err != nil {
			b.Fatal(err)
		}
		ok, _, ev, err := watcher.ExistsW(node)
		if err != nil || !ok {
			b.Fatal(ok, err)
		}
		return func() time.Duration {
			start := time.Now()
			switch kind {
			case handoverDelete:
				if err := leader.Delete(node, -1); err != nil {
					b.Fatal(err)
				}
			case handoverClose:
				leader.Close()
			case handoverKill:
				ps.Blackhole()
			}
			select {
			case <-ev:
			case <-time.After(zktest.Timeout):
				b.Fatal("no notification")
			}
			d := time.Since(start)
			leader.Close()
			watcher.Delete(dir, -1)
			watcher.Close()
			return d
		}
	}
}

// electionHandover: a zklock leader goes; the follower's Campaign returns.
func electionHandover(zc *zktest.Cluster, kind handoverKind, timeout time.Duration) handover {
	return func(b *testing.B, dir string) func() time.Duration {
		ctx, cancel := context.WithTimeout(context.Background(), zktest.Timeout)
		ps := zc.NewProxies(b)
		opts := []zklock.Option{}
		if timeout > 0 {
			opts = append(opts, zklock.WithSessionTimeout(timeout))
		}
		ls, err := zklock.Connect(ctx, ps.Addrs(), opts...)
		if err != nil {
			b.Fatal(err)
		}
		fs, err := zklock.Connect(ctx, zc.Servers())
		if err != nil {
			b.Fatal(err)
		}
		leader := zklock.NewElection(ls, dir)
		follower := zklock.NewElection(fs, dir)
		if err := leader.Campaign(ctx, []byte("leader")); err != nil {
			b.Fatal(err)
		}
		won := make(chan time.Time, 1)
		go func() {
			if err := follower.Campaign(ctx, []byte("follower")); err != nil {
				b.Error(err)
			}
			won <- time.Now()
		}()
		admin := zc.Admin(b)
		for {
			kids, _, ev, err := admin.ChildrenW(dir)
			if err == nil && len(kids) == 2 {
				break
			}
			select {
			case <-ev:
			case <-ctx.Done():
				b.Fatal("follower never queued")
			}
		}
		return func() time.Duration {
			start := time.Now()
			switch kind {
			case handoverDelete:
				if err := leader.Resign(ctx); err != nil {
					b.Fatal(err)
				}
			case handoverClose:
				ls.Close()
			case handoverKill:
				ps.Blackhole()
			}
			var at time.Time
			select {
			case at = <-won:
			case <-ctx.Done():
				b.Fatal("follower never led")
			}
			d := at.Sub(start)
			follower.Resign(ctx)
			ls.Close()
			fs.Close()
			cancel()
			return d
		}
	}
}

// curatorFailover: two Curator LeaderLatch peers hand leadership back and
// forth by closing the leading latch. Times include one line each way over
// the peers' pipes.
func curatorFailover(b *testing.B, zc *zktest.Cluster) {
	root := zc.Root(b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*zktest.Timeout)
	defer cancel()
	work := b.TempDir()
	var peers [2]*interop.Peer
	for i := range peers {
		p, err := interop.StartCurator(ctx, zc.Direct(), work)
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close()
		peers[i] = p
	}
	admin := zc.Admin(b)
	do := func(p *interop.Peer, cmd, reply string) {
		if _, err := p.Do(ctx, cmd, reply); err != nil {
			b.Fatal(err)
		}
	}
	var samples []time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		path := fmt.Sprintf("%s/%d", root, i)
		lead, follow := peers[i%2], peers[(i+1)%2]
		do(lead, "latch "+path+" a", "latch-started "+path)
		if _, err := lead.Expect(ctx, "leader "+path); err != nil {
			b.Fatal(err)
		}
		do(follow, "latch "+path+" b", "latch-started "+path)
		for {
			kids, _, ev, err := admin.ChildrenW(path)
			if err == nil && len(kids) == 2 {
				break
			}
			select {
			case <-ev:
			case <-ctx.Done():
				b.Fatal("follower latch never queued")
			}
		}
		b.StartTimer()
		start := time.Now()
		if err := lead.Send("latch-close " + path); err != nil {
			b.Fatal(err)
		}
		if _, err := follow.Expect(ctx, "leader "+path); err != nil {
			b.Fatal(err)
		}
		samples = append(samples, time.Since(start))
		b.StopTimer()
		if _, err := lead.Expect(ctx, "latch-closed "+path); err != nil {
			b.Fatal(err)
		}
		do(follow, "latch-close "+path, "latch-closed "+path)
	}
	report(b, samples)
}
