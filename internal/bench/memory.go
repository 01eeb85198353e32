package bench

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
)

// Parked detection: the waiters are parked once every node is queued, no
// request of the waiters' session awaits its reply, and the process's
// goroutine count has held still for a while. A waiter that is not parked
// has a request in flight or is about to send one within microseconds.
const (
	parkedPoll   = 100 * time.Millisecond
	parkedStable = 5 // polls
	quietPoll    = 5 * time.Millisecond
)

// waiterBatch is how many waiters start together; see measureMemory.
const waiterBatch = 100

// progressEvery is how many waiters queue or drain between progress lines.
const progressEvery = 10 * waiterBatch

// memory: Config.Waiters Lock calls from one session wait on one path held
// by another session. Heap and goroutines are read before and after with
// every waiter parked; then the waiters are ended and every waiter node must
// be gone before the bench moves on.
func (b *bench) memory(ctx context.Context, rep *Report) error {
	rep.Memory = &Memory{Waiters: b.cfg.Waiters}
	for _, which := range b.impls {
		b.logf("memory, %s: queueing %d waiters in batches of %d", which, b.cfg.Waiters, waiterBatch)
		f, err := b.measureMemory(ctx, which)
		if err != nil {
			return fmt.Errorf("%s: %w", which, err)
		}
		b.logf("memory, %s: %d waiters, %.0f B each (heap %.0f, stacks %.0f), %.2f library goroutines each; queued in %.1fs, drained in %.1fs",
			which, b.cfg.Waiters, f.BytesPerWaiter, f.HeapBytesPerWaiter, f.StackBytesPerWaiter, f.LibraryGoroutinesPerWaiter,
			f.QueueSeconds, f.DrainSeconds)
		if which == implZK {
			rep.Memory.ZkLock = &f
		} else {
			rep.Memory.Zklock = f
		}
		if err := b.cleanup("memory"); err != nil {
			return err
		}
	}
	return nil
}

func (b *bench) measureMemory(ctx context.Context, which impl) (MemoryFigures, error) {
	n := b.cfg.Waiters
	dir := b.path("memory", which)
	holder, err := connect(ctx, which, b.servers)
	if err != nil {
		return MemoryFigures{}, err
	}
	defer holder.close()
	hl := holder.newLocker(dir)
	if err := hl.lock(ctx); err != nil {
		return MemoryFigures{}, fmt.Errorf("holder: %w", err)
	}
	var released atomic.Bool
	var releaseOnce sync.Once
	var releaseErr error
	release := func() error {
		releaseOnce.Do(func() {
			released.Store(true)
			releaseErr = hl.unlock(context.WithoutCancel(ctx))
		})
		return releaseErr
	}
	waiters, err := connect(ctx, which, b.servers)
	if err != nil {
		return MemoryFigures{}, err
	}
	defer waiters.close()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var wg sync.WaitGroup
	errs := make(chan error, n) // allocated before the baseline reading: it is the bench's, not a waiter's
	var before, after runtime.MemStats
	settle()
	runtime.ReadMemStats(&before)
	g0 := runtime.NumGoroutine()

	// Every exit from here on ends the waiters and joins them, bounded so
	// that a client that never returns fails the run instead of hanging it.
	var batches []context.CancelFunc
	var joinErr error
	joined := false
	// zk.Lock takes no context, and closing its connection while waiters
	// wake up can wedge go-zookeeper v1.0.4 (a second error sent to a full
	// reply channel in flushRequests); so its waiters are ended by
	// releasing the holder, each taking the lock and releasing it in turn.
	end := func() error {
		if !joined {
			joined = true
			cancel()
			if which == implZK {
				_ = release()
			}
			joinErr = join(ctx, &wg, drainTimeout)
		}
		return joinErr
	}
	defer end()

	start := time.Now()
	// Waiters queue in batches, each settled before the next starts: every
	// new waiter lists all queued nodes once, and thousands of listings of
	// thousands of names in flight at once would pile up in the server's
	// memory.
	for launched := 0; launched < n; {
		k := min(waiterBatch, n-launched)
		bctx, bcancel := context.WithCancel(wctx)
		batches = append(batches, bcancel)
		for range k {
			wg.Go(func() {
				l := waiters.newLocker(dir)
				if err := l.lock(bctx); err == nil {
					_ = l.unlock(context.WithoutCancel(ctx))
					if !released.Load() {
						errs <- fmt.Errorf("a waiter was granted the lock while it was held")
					}
				}
			})
		}
		launched += k
		if err := waitQuiet(ctx, b.admin, dir, launched+1, waiters.outstanding); err != nil {
			return MemoryFigures{}, err
		}
		if launched%progressEvery == 0 && launched < n {
			b.logf("memory, %s: %d of %d waiters queued in %.1fs", which, launched, n, time.Since(start).Seconds())
		}
	}
	if err := waitParked(ctx, b.admin, dir, n+1, waiters.outstanding); err != nil {
		return MemoryFigures{}, err
	}
	queued := time.Since(start)
	settle()
	runtime.ReadMemStats(&after)
	g1 := runtime.NumGoroutine()
	select {
	case err := <-errs:
		return MemoryFigures{}, err
	default:
	}

	f := MemoryFigures{
		HeapBytesPerWaiter:         perWaiter(int64(after.HeapAlloc)-int64(before.HeapAlloc), n),
		StackBytesPerWaiter:        perWaiter(int64(after.StackInuse)-int64(before.StackInuse), n),
		GoroutinesPerWaiter:        perWaiter(int64(g1-g0), n),
		LibraryGoroutinesPerWaiter: perWaiter(int64(g1-g0-n), n),
		QueueSeconds:               queued.Seconds(),
	}
	f.BytesPerWaiter = f.HeapBytesPerWaiter + f.StackBytesPerWaiter

	drainStart := time.Now()
	if which == implZK {
		f.Drain = "holder released; each waiter took the lock and released it in turn (zk.Lock takes no context)"
	} else {
		// Newest batch first: a cancelled Lock deletes its node, which wakes
		// the waiter behind it, and that waiter would list the whole queue
		// again unless it was cancelled before.
		f.Drain = "waiters' contexts cancelled, newest batch first"
		for i := len(batches) - 1; i >= 0; i-- {
			batches[i]()
			if err := waitQuiet(ctx, b.admin, dir, i*waiterBatch+1, waiters.outstanding); err != nil {
				return MemoryFigures{}, fmt.Errorf("draining waiters: %w", err)
			}
			if left := i * waiterBatch; left > 0 && left%progressEvery == 0 {
				b.logf("memory, %s: %d waiters left to drain", which, left)
			}
		}
	}
	if err := end(); err != nil {
		return MemoryFigures{}, err
	}
	if err := release(); err != nil {
		return MemoryFigures{}, fmt.Errorf("holder: %w", err)
	}
	if err := waitChildrenAtMost(ctx, b.admin, dir, 0); err != nil {
		return MemoryFigures{}, fmt.Errorf("draining waiters: %w", err)
	}
	f.DrainSeconds = time.Since(drainStart).Seconds()
	select {
	case err := <-errs:
		return MemoryFigures{}, err
	default:
	}
	return f, nil
}

// drainTimeout bounds how long ended waiters may take to return.
const drainTimeout = 5 * time.Minute

// join waits for wg, for at most d or until ctx ends.
func join(ctx context.Context, wg *sync.WaitGroup, d time.Duration) error {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-done:
		return nil
	case <-tm.C:
		return fmt.Errorf("waiters still running %v after they were ended", d)
	case <-ctx.Done():
		return fmt.Errorf("waiting for the waiters to end: %w", ctx.Err())
	}
}

// settle collects garbage twice, so objects freed by finalizers or left
// for the sweeper do not count.
func settle() {
	runtime.GC()
	runtime.GC()
}

func perWaiter(total int64, n int) float64 { return float64(total) / float64(n) }

// waitParked waits until, for parkedStable polls in a row, dir has had want
// children, the waiters' session no outstanding request, and this
// process's goroutine count no change.
func waitParked(ctx context.Context, admin *zk.Conn, dir string, want int, outstanding func() int64) error {
	stable, last := 0, -1
	tick := time.NewTicker(parkedPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d waiters under %s: %w", want-1, dir, ctx.Err())
		case <-tick.C:
		}
		_, st, err := admin.Exists(dir)
		if err != nil {
			return err
		}
		g := runtime.NumGoroutine()
		if st == nil || int(st.NumChildren) != want || outstanding() != 0 || g != last {
			stable, last = 0, g
			continue
		}
		if stable++; stable >= parkedStable {
			return nil
		}
	}
}

// waitQuiet waits until dir has want children and the waiters' session no
// outstanding request: the batch it started has queued and looked.
func waitQuiet(ctx context.Context, admin *zk.Conn, dir string, want int, outstanding func() int64) error {
	tick := time.NewTicker(quietPoll)
	defer tick.Stop()
	for {
		_, st, err := admin.Exists(dir)
		if err != nil {
			return err
		}
		if st != nil && int(st.NumChildren) == want && outstanding() == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			n := int32(-1)
			if st != nil {
				n = st.NumChildren
			}
			return fmt.Errorf("waiting for %d nodes under %s (now %d, %d requests outstanding): %w",
				want, dir, n, outstanding(), ctx.Err())
		case <-tick.C:
		}
	}
}

// waitChildrenAtMost waits until dir has at most n children.
func waitChildrenAtMost(ctx context.Context, admin *zk.Conn, dir string, n int) error {
	tick := time.NewTicker(parkedPoll)
	defer tick.Stop()
	for {
		ok, st, err := admin.Exists(dir)
		if err != nil {
			return err
		}
		if !ok || int(st.NumChildren) <= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s still has %d children: %w", dir, st.NumChildren, ctx.Err())
		case <-tick.C:
		}
	}
}
