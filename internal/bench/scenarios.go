package bench

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zklock/zklock"
)

// tally is what one measured window of one implementation produced.
type tally struct {
	ops     int
	elapsed time.Duration
	lat     map[string]*series
	reqs    requestCounts
	cpu     time.Duration // this process's CPU time over the window
}

func newTally() *tally {
	return &tally{lat: make(map[string]*series), reqs: requestCounts{}}
}

// series returns the named latency series, creating it on first use; call
// it before starting goroutines that record into it.
func (t *tally) series(name string) *series {
	s, ok := t.lat[name]
	if !ok {
		s = &series{}
		t.lat[name] = s
	}
	return s
}

func (t *tally) merge(o *tally) {
	t.ops += o.ops
	t.elapsed += o.elapsed
	for name, s := range o.lat {
		t.series(name).merge(s)
	}
	t.reqs.add(o.reqs)
	t.cpu += o.cpu
}

// cpuPerOp is the client's CPU time per operation, in microseconds.
func (t *tally) cpuPerOp() float64 {
	if t.ops == 0 {
		return 0
	}
	return float64(t.cpu.Microseconds()) / float64(t.ops)
}

func (t *tally) perSec() float64 {
	if t.elapsed <= 0 {
		return 0
	}
	return float64(t.ops) / t.elapsed.Seconds()
}

func (t *tally) summary(name string) Latency { return t.series(name).summary() }

// measureFunc measures one implementation for d after a warm-up.
type measureFunc func(ctx context.Context, which impl, d time.Duration) (*tally, error)

// alternate runs measure for every implementation, rounds times, each turn
// for Duration/rounds, reversing the order every round (ABBA) so slow
// drift of a shared machine weighs on both alike. It returns each
// implementation's merged tally.
func (b *bench) alternate(ctx context.Context, name string, measure measureFunc) (map[impl]*tally, error) {
	out := make(map[impl]*tally, len(b.impls))
	d := b.cfg.Duration / rounds
	for r := range rounds {
		order := b.impls
		if r%2 == 1 {
			order = reversed(order)
		}
		for _, which := range order {
			t, err := measure(ctx, which, d)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", which, err)
			}
			b.logf("%s, %s, round %d/%d: %d in %.2fs, %.0f/s", name, which, r+1, rounds, t.ops, t.elapsed.Seconds(), t.perSec())
			if out[which] == nil {
				out[which] = newTally()
			}
			out[which].merge(t)
		}
	}
	return out, nil
}

func reversed(in []impl) []impl {
	out := make([]impl, len(in))
	for i, v := range in {
		out[len(in)-1-i] = v
	}
	return out
}

// path returns a fresh path for one scenario and implementation. zk.Lock
// requires a path used only by itself, so the two never share one.
func (b *bench) path(scenario string, which impl, more ...string) string {
	p := b.root + "/" + scenario + "/" + implDir(which)
	for _, m := range more {
		p += "/" + m
	}
	return p
}

func implDir(which impl) string {
	if which == implZK {
		return "zk"
	}
	return "zklock"
}

// cleanup removes a scenario's nodes. zk.Lock leaves its persistent parent
// nodes behind; zklock's containers go by themselves, but not at once.
func (b *bench) cleanup(scenario string) error {
	return removeAll(b.admin, b.root+"/"+scenario)
}

// uncontended: one session, one path, Lock then Unlock in a loop.
func (b *bench) uncontended(ctx context.Context, rep *Report) error {
	ts, err := b.alternate(ctx, "uncontended", b.measureUncontended)
	if err != nil {
		return err
	}
	fig := func(t *tally) UncontendedFigures {
		return UncontendedFigures{
			Cycles:    t.ops,
			Seconds:   t.elapsed.Seconds(),
			OpsPerSec: t.perSec(),
			Acquire:   t.summary("acquire"),
			Release:   t.summary("release"),
			Requests:  t.reqs.perCycle(t.ops),
			CPUMicros: t.cpuPerOp(),
		}
	}
	rep.Uncontended.Zklock = fig(ts[implZklock])
	if t := ts[implZK]; t != nil {
		f := fig(t)
		rep.Uncontended.ZkLock = &f
	}
	return b.cleanup("uncontended")
}

func (b *bench) measureUncontended(ctx context.Context, which impl, d time.Duration) (*tally, error) {
	cl, err := connect(ctx, which, b.servers)
	if err != nil {
		return nil, err
	}
	defer cl.close()
	lk := cl.newLocker(b.path("uncontended", which))
	t := newTally()
	acq, rel := t.series("acquire"), t.series("release")

	warmEnd := time.Now().Add(b.warmup)
	var start, end, last time.Time
	var before requestCounts
	var cpu0 time.Duration
	measuring := false
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		t0 := time.Now()
		if !measuring && !t0.Before(warmEnd) {
			// The window starts on a cycle boundary, so the request count
			// covers whole cycles only.
			measuring, start, end = true, t0, t0.Add(d)
			before = cl.requests()
			cpu0 = processCPU()
		}
		if measuring && !t0.Before(end) {
			break
		}
		if err := lk.lock(ctx); err != nil {
			return nil, fmt.Errorf("lock: %w", err)
		}
		t1 := time.Now()
		if err := lk.unlock(ctx); err != nil {
			return nil, fmt.Errorf("unlock: %w", err)
		}
		t2 := time.Now()
		if measuring {
			acq.add(t1.Sub(t0))
			rel.add(t2.Sub(t1))
			t.ops++
			last = t2
		}
	}
	t.elapsed = last.Sub(start)
	t.reqs = cl.requests().sub(before)
	t.cpu = processCPU() - cpu0
	return t, nil
}

// contended: N sessions loop Lock→Unlock on one path.
func (b *bench) contended(ctx context.Context, rep *Report) error {
	for _, n := range b.cfg.Sessions {
		ts, err := b.alternate(ctx, "contended "+strconv.Itoa(n), func(ctx context.Context, which impl, d time.Duration) (*tally, error) {
			return b.measureContended(ctx, which, n, d)
		})
		if err != nil {
			return err
		}
		fig := func(t *tally) ContendedFigures {
			return ContendedFigures{
				Acquisitions:       t.ops,
				Seconds:            t.elapsed.Seconds(),
				AcquisitionsPerSec: t.perSec(),
				AcquireWait:        t.summary("wait"),
				Handoff:            t.summary("handoff"),
				Requests:           t.reqs.perCycle(t.ops),
				CPUMicros:          t.cpuPerOp(),
			}
		}
		c := Contended{Sessions: n, Zklock: fig(ts[implZklock])}
		if t := ts[implZK]; t != nil {
			f := fig(t)
			c.ZkLock = &f
		}
		rep.Contended = append(rep.Contended, c)
		if err := b.cleanup("contended-" + strconv.Itoa(n)); err != nil {
			return err
		}
	}
	return nil
}

// measureContended times each acquisition's wait, and the hand-off: every
// holder stores the moment it starts its release in one shared place before
// releasing, and the next holder, whose Lock can only return after that
// release, subtracts it from the moment its Lock returned. Only one
// goroutine holds at a time, so no other store can come in between.
func (b *bench) measureContended(ctx context.Context, which impl, n int, d time.Duration) (*tally, error) {
	cls, err := connectAll(ctx, which, b.servers, n)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	var stopOnce sync.Once
	// zk.Lock takes no context: closing the connections is what ends its
	// waits when a peer fails or ctx ends.
	stop := func() {
		stopOnce.Do(func() {
			cancel()
			closeAll(cls)
		})
	}
	defer stop()
	unhook := context.AfterFunc(ctx, stop)
	defer unhook()

	dir := b.path("contended-"+strconv.Itoa(n), which)
	t := newTally()
	wait, hand := t.series("wait"), t.series("handoff")
	base := time.Now()
	since := func() time.Duration { return time.Since(base) }
	from, to := b.warmup, b.warmup+d
	var lastRelease atomic.Int64 // since(base) when the latest release started
	lastRelease.Store(-1)
	var acquired atomic.Int64
	var firstErr error
	var errOnce sync.Once

	var wg sync.WaitGroup
	for _, cl := range cls {
		lk := cl.newLocker(dir)
		wg.Go(func() {
			fail := func(err error) {
				errOnce.Do(func() { firstErr = err })
				stop()
			}
			for ctx.Err() == nil {
				t0 := since()
				if t0 >= to {
					return
				}
				if err := lk.lock(ctx); err != nil {
					fail(fmt.Errorf("lock: %w", err))
					return
				}
				t1 := since()
				if t1 >= from && t1 < to {
					acquired.Add(1)
					wait.add(t1 - t0)
					if rel := lastRelease.Load(); rel >= 0 {
						hand.add(t1 - time.Duration(rel))
					}
				}
				lastRelease.Store(int64(since()))
				if err := lk.unlock(ctx); err != nil {
					fail(fmt.Errorf("unlock: %w", err))
					return
				}
			}
		})
	}
	reqs, cpu := requestsIn(ctx, cls, base.Add(from), base.Add(to))
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	t.ops = int(acquired.Load())
	t.elapsed = d
	t.reqs, t.cpu = reqs, cpu
	return t, nil
}

// requestsIn counts the requests cls send between from and to, and this
// process's CPU time meanwhile, read at the window's edges: the cycles in
// flight there are a rounding error over thousands of cycles. Zero if ctx
// ends first.
func requestsIn(ctx context.Context, cls []client, from, to time.Time) (requestCounts, time.Duration) {
	if !sleepCtx(ctx, time.Until(from)) {
		return requestCounts{}, 0
	}
	before, cpu0 := sumRequests(cls), processCPU()
	if !sleepCtx(ctx, time.Until(to)) {
		return requestCounts{}, 0
	}
	return sumRequests(cls).sub(before), processCPU() - cpu0
}

// sleepCtx sleeps for d; false if ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// manyLocks: one session, many goroutines, each looping on its own path.
func (b *bench) manyLocks(ctx context.Context, rep *Report) error {
	ts, err := b.alternate(ctx, "many locks", b.measureManyLocks)
	if err != nil {
		return err
	}
	fig := func(t *tally) ManyLocksFigures {
		return ManyLocksFigures{
			Cycles:    t.ops,
			Seconds:   t.elapsed.Seconds(),
			OpsPerSec: t.perSec(),
			Cycle:     t.summary("cycle"),
			CPUMicros: t.cpuPerOp(),
		}
	}
	rep.ManyLocks = ManyLocks{Goroutines: manyLockGoroutines, Zklock: fig(ts[implZklock])}
	if t := ts[implZK]; t != nil {
		f := fig(t)
		rep.ManyLocks.ZkLock = &f
	}
	return b.cleanup("many")
}

func (b *bench) measureManyLocks(ctx context.Context, which impl, d time.Duration) (*tally, error) {
	cl, err := connect(ctx, which, b.servers)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	var stopOnce sync.Once
	stop := func() { stopOnce.Do(func() { cancel(); cl.close() }) }
	defer stop()
	unhook := context.AfterFunc(ctx, stop)
	defer unhook()

	t := newTally()
	cycle := t.series("cycle")
	base := time.Now()
	since := func() time.Duration { return time.Since(base) }
	from, to := b.warmup, b.warmup+d
	var done atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	for i := range manyLockGoroutines {
		lk := cl.newLocker(b.path("many", which, strconv.Itoa(i)))
		wg.Go(func() {
			for ctx.Err() == nil {
				t0 := since()
				if t0 >= to {
					return
				}
				err := lk.lock(ctx)
				if err == nil {
					err = lk.unlock(ctx)
				}
				if err != nil {
					errOnce.Do(func() { firstErr = err })
					stop()
					return
				}
				if t1 := since(); t1 >= from && t1 < to {
					done.Add(1)
					cycle.add(t1 - t0)
				}
			}
		})
	}
	_, t.cpu = requestsIn(ctx, []client{cl}, base.Add(from), base.Add(to))
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	t.ops = int(done.Load())
	t.elapsed = d
	return t, nil
}

// failover: the leader's Session is closed and the next candidate's
// Campaign returns. Each handover is paired with a plain go-zookeeper
// watch on the leader's node, so the floor comes from the same deletion.
// The new leader stays on as leader for the next handover, so each
// handover costs one new Session.
func (b *bench) failover(ctx context.Context, rep *Report) error {
	dir := b.root + "/failover"
	watcher, err := rawConn(ctx, b.servers, nil)
	if err != nil {
		return err
	}
	defer watcher.Close()

	candidate := func(i int) (*zklock.Session, *zklock.Election, error) {
		s, err := zklock.Connect(ctx, b.servers, zklock.WithSessionTimeout(sessionTimeout))
		if err != nil {
			return nil, nil, err
		}
		return s, zklock.NewElection(s, dir, zklock.WithValue([]byte("candidate-"+strconv.Itoa(i)))), nil
	}
	ls, le, err := candidate(0)
	if err != nil {
		return err
	}
	defer func() { ls.Close() }() // whichever Session leads last
	if err := le.Campaign(ctx); err != nil {
		return err
	}

	next, notify := &series{}, &series{}
	start := time.Now()
	// At least one handover, then as many as the duration allows: the
	// duration bounds this scenario like every other.
	for i := 1; i == 1 || time.Since(start) < b.cfg.Duration; i++ {
		fs, fe, err := candidate(i)
		if err != nil {
			return err
		}
		nextAt, notifyAt, err := b.handover(ctx, watcher, dir, ls, le, fs, fe)
		if err != nil {
			fs.Close()
			return err
		}
		next.add(nextAt)
		notify.add(notifyAt)
		ls, le = fs, fe
	}
	f := Failover{Handovers: next.len(), NextLeader: next.summary(), Notification: notify.summary()}
	if f.Notification.P50Ms > 0 {
		f.RatioP50 = f.NextLeader.P50Ms / f.Notification.P50Ms
	}
	rep.Failover = f
	b.logf("failover: %d handovers, next leader p50 %.2fms max %.2fms, plain notification p50 %.2fms",
		f.Handovers, f.NextLeader.P50Ms, f.NextLeader.MaxMs, f.Notification.P50Ms)
	ls.Close()
	return b.cleanup("failover")
}

// followerSettle lets a queued follower, once its node is listed, finish
// setting its watch on the leader's node, so a handover measures the
// notification path and not the follower's own setup racing the close.
const followerSettle = 20 * time.Millisecond

// handover queues follower fe behind leader le, closes the leader's
// Session and returns how long the follower's Campaign and the plain watch
// took from the close.
func (b *bench) handover(ctx context.Context, watcher *zk.Conn, dir string, ls *zklock.Session, le *zklock.Election,
	fs *zklock.Session, fe *zklock.Election) (nextAt, notifyAt time.Duration, err error) {
	type won struct {
		at  time.Time
		err error
	}
	wonc := make(chan won, 1)
	go func() {
		err := fe.Campaign(ctx)
		wonc <- won{time.Now(), err}
	}()
	// The Campaign goroutine ends when it leads, or when ctx ends or fs is
	// closed by the caller on error; it is always joined.
	join := func() won { return <-wonc }
	if err := waitChildren(ctx, b.admin, dir, 2); err != nil {
		fs.Close()
		join()
		return 0, 0, err
	}
	if !sleepCtx(ctx, followerSettle) {
		fs.Close()
		join()
		return 0, 0, ctx.Err()
	}
	gone, err := watchGone(watcher, le.Key())
	if err != nil {
		fs.Close()
		join()
		return 0, 0, err
	}
	t0 := time.Now()
	ls.Close()
	w := join()
	if w.err != nil {
		return 0, 0, fmt.Errorf("campaign: %w", w.err)
	}
	select {
	case at := <-gone:
		return w.at.Sub(t0), at.Sub(t0), nil
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
}

// watchGone sets a plain exists-watch on p and returns a channel that gets
// the arrival time of its notification. The goroutine ends when the watch
// fires, or when the watcher's connection closes.
func watchGone(w *zk.Conn, p string) (<-chan time.Time, error) {
	ok, _, ev, err := w.ExistsW(p)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", p, err)
	}
	if !ok {
		return nil, fmt.Errorf("watch %s: no such node", p)
	}
	at := make(chan time.Time, 1)
	go func() {
		<-ev
		at <- time.Now()
	}()
	return at, nil
}

// waitChildren waits until dir has exactly n children.
func waitChildren(ctx context.Context, conn *zk.Conn, dir string, n int) error {
	for {
		kids, _, ev, err := conn.ChildrenW(dir)
		if err == nil && len(kids) == n {
			return nil
		}
		if errors.Is(err, zk.ErrNoNode) {
			_, _, ev, err = conn.ExistsW(dir)
		}
		if err != nil {
			return fmt.Errorf("watching %s: %w", dir, err)
		}
		select {
		case <-ev:
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d children of %s: %w", n, dir, ctx.Err())
		}
	}
}

// floor: bare go-zookeeper round trips and a watch notification, the
// costs every lock operation is built from.
func (b *bench) floor(ctx context.Context, rep *Report) error {
	a, err := rawConn(ctx, b.servers, nil)
	if err != nil {
		return err
	}
	defer a.Close()
	w, err := rawConn(ctx, b.servers, nil)
	if err != nil {
		return err
	}
	defer w.Close()
	dir := b.root + "/floor"
	if err := ensurePath(a, dir); err != nil {
		return err
	}
	each := b.cfg.Duration / 3
	warm := b.warmup / 3

	read, err := timeLoop(ctx, warm, each, func() error {
		_, _, err := a.Exists(dir)
		return err
	})
	if err != nil {
		return fmt.Errorf("exists: %w", err)
	}
	data := []byte("zklock-bench")
	write, err := timeLoop(ctx, warm, each, func() error {
		_, err := a.Set(dir, data, -1)
		return err
	})
	if err != nil {
		return fmt.Errorf("set: %w", err)
	}
	del, notify, err := deleteNotify(ctx, a, w, dir+"/n", warm, each)
	if err != nil {
		return err
	}
	rep.Floor = Floor{Read: read.summary(), Write: write.summary(), Delete: del.summary(), DeleteNotify: notify.summary()}
	b.logf("floor: read p50 %.2fms, write p50 %.2fms, delete p50 %.2fms, delete→notification p50 %.2fms",
		rep.Floor.Read.P50Ms, rep.Floor.Write.P50Ms, rep.Floor.Delete.P50Ms, rep.Floor.DeleteNotify.P50Ms)
	return b.cleanup("floor")
}

// minFloorSamples keeps a floor row meaningful when a short run meets a
// slow fsync: the loop goes on past its time until it has this many.
const minFloorSamples = 20

// timeLoop times op back to back for warm, then records it for d and at
// least minFloorSamples times.
func timeLoop(ctx context.Context, warm, d time.Duration, op func() error) (*series, error) {
	s := &series{}
	from := time.Now().Add(warm)
	to := from.Add(d)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		t0 := time.Now()
		if !t0.Before(to) && s.len() >= minFloorSamples {
			return s, nil
		}
		if err := op(); err != nil {
			return nil, err
		}
		if !t0.Before(from) {
			s.add(time.Since(t0))
		}
	}
}

// deleteNotify creates p, puts an exists-watch on it from w, deletes it
// from a and times both the delete's round trip and the notification's
// arrival, each from the start of the delete; for d and at least
// minFloorSamples times.
func deleteNotify(ctx context.Context, a, w *zk.Conn, p string, warm, d time.Duration) (del, notify *series, err error) {
	del, notify = &series{}, &series{}
	from := time.Now().Add(warm)
	to := from.Add(d)
	for {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		if !time.Now().Before(to) && del.len() >= minFloorSamples {
			return del, notify, nil
		}
		if _, err := a.Create(p, nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
			return nil, nil, fmt.Errorf("create %s: %w", p, err)
		}
		gone, err := watchGone(w, p)
		if err != nil {
			return nil, nil, err
		}
		t0 := time.Now()
		if err := a.Delete(p, -1); err != nil {
			return nil, nil, fmt.Errorf("delete %s: %w", p, err)
		}
		t1 := time.Now()
		var t2 time.Time
		select {
		case t2 = <-gone:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
		if !t0.Before(from) {
			del.add(t1.Sub(t0))
			notify.add(t2.Sub(t0))
		}
	}
}
