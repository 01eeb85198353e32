package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zklock/zklock"
)

// Fixed shape of the recipe scenarios. go-zookeeper has neither a
// read-write lock nor a semaphore, so these measure zklock alone.
const (
	readWriteSessions = 8
	// readPercent of each session's acquisitions are reads: every tenth is
	// a write, staggered across sessions.
	readPercent       = 90
	semaphoreSessions = 8
	semaphoreLeases   = 3
)

// ReadWrite is several sessions looping on one RWMutex path, most of them
// reading: each session's every tenth acquisition is a write.
type ReadWrite struct {
	Sessions           int      `json:"sessions"`
	ReadPercent        int      `json:"read_percent"`
	Reads              int      `json:"reads"`
	Writes             int      `json:"writes"`
	Seconds            float64  `json:"seconds"`
	AcquisitionsPerSec float64  `json:"acquisitions_per_s"` // reads and writes
	ReadWait           Latency  `json:"read_wait"`
	WriteWait          Latency  `json:"write_wait"`
	Requests           Requests `json:"requests"` // per acquisition
}

// SemaphoreFigures are several sessions looping Acquire→Release on one
// Semaphore path with a few leases.
type SemaphoreFigures struct {
	Sessions           int      `json:"sessions"`
	Leases             int      `json:"leases"`
	Acquisitions       int      `json:"acquisitions"`
	Seconds            float64  `json:"seconds"`
	AcquisitionsPerSec float64  `json:"acquisitions_per_s"`
	AcquireWait        Latency  `json:"acquire_wait"`
	Requests           Requests `json:"requests"` // per acquisition
}

// alone runs measure for zklock only, rounds times, each turn for
// Duration/rounds, as alternate does for the lock scenarios, and returns
// the merged tally.
func (b *bench) alone(ctx context.Context, name string, measure measureFunc) (*tally, error) {
	out := newTally()
	d := b.cfg.Duration / rounds
	for r := range rounds {
		t, err := measure(ctx, implZklock, d)
		if err != nil {
			return nil, err
		}
		b.logf("%s, round %d/%d: %d in %.2fs, %.0f/s", name, r+1, rounds, t.ops, t.elapsed.Seconds(), t.perSec())
		out.merge(t)
	}
	return out, nil
}

// readWrite: readWriteSessions sessions on one RWMutex, readPercent reads.
func (b *bench) readWrite(ctx context.Context, rep *Report) error {
	t, err := b.alone(ctx, fmt.Sprintf("read-write %d", readWriteSessions), func(ctx context.Context, _ impl, d time.Duration) (*tally, error) {
		return b.measureRecipe(ctx, "read-write", readWriteSessions, d, func(s *zklock.Session, dir string, i int) cycleFunc {
			rw := zklock.NewRWMutex(s, dir, zklock.WithData([]byte("zklock-bench")))
			n := i // staggers the writes across sessions
			return func(ctx context.Context) (string, func(context.Context) error, error) {
				n++
				lock, unlock, kind := rw.RLock, rw.RUnlock, "read"
				if n%(100/(100-readPercent)) == 0 {
					lock, unlock, kind = rw.Lock, rw.Unlock, "write"
				}
				if err := lock(ctx); err != nil {
					return "", nil, fmt.Errorf("%s lock: %w", kind, err)
				}
				return kind, unlock, nil
			}
		}, "read", "write")
	})
	if err != nil {
		return err
	}
	reads, writes := t.series("read").len(), t.series("write").len()
	rep.ReadWrite = &ReadWrite{
		Sessions:           readWriteSessions,
		ReadPercent:        readPercent,
		Reads:              reads,
		Writes:             writes,
		Seconds:            t.elapsed.Seconds(),
		AcquisitionsPerSec: t.perSec(),
		ReadWait:           t.summary("read"),
		WriteWait:          t.summary("write"),
		Requests:           t.reqs.perCycle(t.ops),
	}
	return b.cleanup("read-write")
}

// semaphore: semaphoreSessions sessions on one Semaphore of
// semaphoreLeases leases.
func (b *bench) semaphore(ctx context.Context, rep *Report) error {
	t, err := b.alone(ctx, fmt.Sprintf("semaphore %d/%d", semaphoreLeases, semaphoreSessions), func(ctx context.Context, _ impl, d time.Duration) (*tally, error) {
		return b.measureRecipe(ctx, "semaphore", semaphoreSessions, d, func(s *zklock.Session, dir string, _ int) cycleFunc {
			sem := zklock.NewSemaphore(s, dir, semaphoreLeases, zklock.WithData([]byte("zklock-bench")))
			return func(ctx context.Context) (string, func(context.Context) error, error) {
				l, err := sem.Acquire(ctx)
				if err != nil {
					return "", nil, fmt.Errorf("acquire: %w", err)
				}
				return "acquire", l.Release, nil
			}
		}, "acquire")
	})
	if err != nil {
		return err
	}
	rep.Semaphore = &SemaphoreFigures{
		Sessions:           semaphoreSessions,
		Leases:             semaphoreLeases,
		Acquisitions:       t.ops,
		Seconds:            t.elapsed.Seconds(),
		AcquisitionsPerSec: t.perSec(),
		AcquireWait:        t.summary("acquire"),
		Requests:           t.reqs.perCycle(t.ops),
	}
	return b.cleanup("semaphore")
}

// cycleFunc acquires once, and returns the latency series the acquisition
// belongs to and the release.
type cycleFunc func(ctx context.Context) (series string, release func(context.Context) error, err error)

// measureRecipe runs n sessions, each looping its cycle (made by mk for
// session i) on one path, and records the wait of each acquisition that
// returns inside the window [warm-up, warm-up+d) in the series the cycle
// names, one of names. Requests are read at the window's edges, as in
// measureContended.
func (b *bench) measureRecipe(ctx context.Context, scenario string, n int, d time.Duration,
	mk func(s *zklock.Session, dir string, i int) cycleFunc, names ...string) (*tally, error) {
	cls, err := connectAll(ctx, implZklock, b.servers, n)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	var stopOnce sync.Once
	stop := func() {
		stopOnce.Do(func() {
			cancel()
			closeAll(cls)
		})
	}
	defer stop()

	dir := b.path(scenario, implZklock)
	t := newTally()
	for _, name := range names {
		t.series(name) // created before the goroutines only read the map
	}
	base := time.Now()
	since := func() time.Duration { return time.Since(base) }
	from, to := b.warmup, b.warmup+d
	var done atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	for i, cl := range cls {
		cycle := mk(cl.(*zklockClient).s, dir, i)
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
				name, release, err := cycle(ctx)
				if err != nil {
					fail(err)
					return
				}
				if t1 := since(); t1 >= from && t1 < to {
					done.Add(1)
					t.lat[name].add(t1 - t0)
				}
				if err := release(ctx); err != nil {
					fail(fmt.Errorf("release: %w", err))
					return
				}
			}
		})
	}
	reqs, _ := requestsIn(ctx, cls, base.Add(from), base.Add(to))
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	t.ops = int(done.Load())
	t.elapsed = d
	t.reqs = reqs
	return t, nil
}
