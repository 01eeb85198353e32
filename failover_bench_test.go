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
	if testing.Short() {
		b.Skip("needs ZooKeeper")
	}
	zc := zktest.Shared(b)
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

// watchGone sets a plain watch on p and returns when its notification
// arrived.
func watchGone(b *testing.B, w *zk.Conn, p string) <-chan time.Time {
	ok, _, ev, err := w.ExistsW(p)
	if err != nil || !ok {
		b.Fatalf("watch %s: %v %v", p, ok, err)
	}
	at := make(chan time.Time, 1)
	go func() {
		<-ev
		at <- time.Now()
	}()
	return at
}

func awaitTime(b *testing.B, ch <-chan time.Time, what string) time.Time {
	select {
	case t := <-ch:
		return t
	case <-time.After(zktest.Timeout):
		b.Fatalf("timed out waiting for %s", what)
	}
	return time.Time{}
}

func runFailover(b *testing.B, zc *zktest.Cluster, kind handoverKind, timeout time.Duration) {
	root := zc.Root(b)
	watcher := rawConn(b, zc.Servers())
	defer watcher.Close()
	var next, notify []time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dir := fmt.Sprintf("%s/%d", root, i)
		ctx, cancel := context.WithTimeout(context.Background(), zktest.Timeout)
		ps := zc.NewProxies(b)
		var opts []zklock.SessionOption
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
		leader := zklock.NewElection(ls, dir, zklock.WithValue([]byte("leader")))
		follower := zklock.NewElection(fs, dir, zklock.WithValue([]byte("follower")))
		if err := leader.Campaign(ctx); err != nil {
			b.Fatal(err)
		}
		won := make(chan time.Time, 1)
		go func() {
			if err := follower.Campaign(ctx); err != nil {
				b.Error(err)
			}
			won <- time.Now()
		}()
		waitQueued(b, zc.Admin(b), dir, 2)
		gone := watchGone(b, watcher, root+leader.Key()[len(root):])
		b.StartTimer()

		start := time.Now()
		switch kind {
		case handoverResign:
			if err := leader.Resign(ctx); err != nil {
				b.Fatal(err)
			}
		case handoverClose:
			ls.Close()
		case handoverKill:
			ps.Blackhole()
		}
		next = append(next, awaitTime(b, won, "the next leader").Sub(start))
		notify = append(notify, awaitTime(b, gone, "the plain notification").Sub(start))

		b.StopTimer()
		follower.Resign(ctx)
		ls.Close()
		fs.Close()
		cancel()
	}
	report(b, next, notify)
}

func rawConn(b *testing.B, servers []string) *zk.Conn {
	conn, ev, err := zk.Connect(servers, 10*time.Second, zk.WithLogInfo(false), zk.WithLogger(quietLogger{}))
	if err != nil {
		b.Fatal(err)
	}
	deadline := time.After(zktest.Timeout)
	for conn.State() != zk.StateHasSession {
		select {
		case <-ev:
		case <-deadline:
			b.Fatal("plain client got no session")
		}
	}
	return conn
}

func waitQueued(b *testing.B, admin *zk.Conn, dir string, n int) {
	deadline := time.After(zktest.Timeout)
	for {
		kids, _, ev, err := admin.ChildrenW(dir)
		if err == nil && len(kids) == n {
			return
		}
		if err != nil {
			_, _, ev, err = admin.ExistsW(dir)
			if err != nil {
				b.Fatal(err)
			}
		}
		select {
		case <-ev:
		case <-deadline:
			b.Fatalf("%s never had %d contenders", dir, n)
		}
	}
}

// curatorFailover: two Curator LeaderLatch peers hand leadership back and
// forth by closing the leading latch. Its next-leader times include one
// line each way over the peers' pipes (tens of microseconds).
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
	watcher := rawConn(b, zc.Servers())
	defer watcher.Close()
	do := func(p *interop.Peer, cmd, reply string) string {
		line, err := p.Do(ctx, cmd, reply)
		if err != nil {
			b.Fatal(err)
		}
		return line
	}
	var next, notify []time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		path := fmt.Sprintf("%s/%d", root, i)
		lead, follow := peers[i%2], peers[(i+1)%2]
		do(lead, "latch "+path+" a", "latch-started "+path)
		if _, err := lead.Expect(ctx, "leader "+path); err != nil {
			b.Fatal(err)
		}
		do(follow, "latch "+path+" b", "latch-started "+path)
		waitQueued(b, zc.Admin(b), path, 2)
		kids, _, err := watcher.Children(path)
		if err != nil {
			b.Fatal(err)
		}
		slices.SortFunc(kids, func(x, y string) int { return compareSuffix(x, y) })
		gone := watchGone(b, watcher, path+"/"+kids[0])
		b.StartTimer()

		start := time.Now()
		if err := lead.Send("latch-close " + path); err != nil {
			b.Fatal(err)
		}
		if _, err := follow.Expect(ctx, "leader "+path); err != nil {
			b.Fatal(err)
		}
		next = append(next, time.Since(start))
		notify = append(notify, awaitTime(b, gone, "the plain notification").Sub(start))

		b.StopTimer()
		if _, err := lead.Expect(ctx, "latch-closed "+path); err != nil {
			b.Fatal(err)
		}
		do(follow, "latch-close "+path, "latch-closed "+path)
	}
	report(b, next, notify)
}

// compareSuffix orders sequential node names by their 10-digit suffix.
func compareSuffix(x, y string) int {
	a, c := x[len(x)-10:], y[len(y)-10:]
	switch {
	case a < c:
		return -1
	case a > c:
		return 1
	}
	return 0
}
