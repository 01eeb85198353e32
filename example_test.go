package zklock_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"path"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/zklock/zklock"
)

func ExampleConnect() {
	// servers lists your ensemble: []string{"zk1:2181", "zk2:2181", "zk3:2181"}.
	// The ctx bounds only the connect: if no server answers in time,
	// Connect fails. The Session then lives until Close, reconnecting and
	// renewing its ZooKeeper session as needed.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	s, err := zklock.Connect(ctx, servers, zklock.WithSessionTimeout(10*time.Second))
	cancel()
	if err != nil {
		log.Fatal(err)
	}
	// Close ends the ZooKeeper session: its locks are released at once.
	defer s.Close()

	fmt.Println(s.State())
	// Output:
	// connected
}

func ExampleMutex_Lock() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := zklock.Connect(ctx, servers)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	m := zklock.NewMutex(s, "/examples/report-job")
	if err := m.Lock(ctx); err != nil {
		log.Fatal(err)
	}
	// The lock can be lost at any time: do the work under m.Context(), which
	// ends with the hold, and send m.Token() with every write so the
	// resource can reject a former holder's late writes.
	work := m.Context()
	fmt.Println("holding:", work.Err() == nil, "token > 0:", m.Token() > 0)

	if err := m.Unlock(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("after Unlock:", work.Err())
	// Output:
	// holding: true token > 0: true
	// after Unlock: context canceled
}

func ExampleMutex_TryLock() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Two instances of a job, each with its own Session.
	a, err := zklock.Connect(ctx, servers)
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()
	b, err := zklock.Connect(ctx, servers)
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()

	first := zklock.NewMutex(a, "/examples/nightly")
	second := zklock.NewMutex(b, "/examples/nightly")
	if err := first.TryLock(ctx); err != nil {
		log.Fatal(err)
	}
	// Someone else runs it: skip instead of queueing.
	err = second.TryLock(ctx)
	fmt.Println("someone else runs it:", errors.Is(err, zklock.ErrLocked))
	if err := first.Unlock(ctx); err != nil {
		log.Fatal(err)
	}
	// Output:
	// someone else runs it: true
}

// A fenced write: the guard makes the write fail unless the writer still
// holds the lock, so a holder that lost it (its session expired while it
// was paused, say) cannot overwrite a newer holder's data.
func ExampleMutex_Guard() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := zklock.Connect(ctx, servers)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	// The resource: a node that only the lock's holder may change.
	const config = "/examples-config"
	if err := s.Create(ctx, config, []byte("v1"), 0); err != nil {
		log.Fatal(err)
	}

	m := zklock.NewMutex(s, "/examples/config-lock")
	if err := m.Lock(ctx); err != nil {
		log.Fatal(err)
	}
	guard := m.Guard()
	_, err = s.Multi(ctx, guard, &zk.SetDataRequest{Path: config, Data: []byte("v2"), Version: -1})
	fmt.Println("write while holding:", err)

	if err := m.Unlock(ctx); err != nil {
		log.Fatal(err)
	}
	// The same write with the old guard, as from a former holder, fails.
	_, err = s.Multi(ctx, guard, &zk.SetDataRequest{Path: config, Data: []byte("v3"), Version: -1})
	fmt.Println("write after the hold ended fails:", errors.Is(err, zk.ErrNoNode))

	data, _, err := s.Get(ctx, config)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("config:", string(data))
	if err := s.Delete(ctx, config, -1); err != nil {
		log.Fatal(err)
	}
	// Output:
	// write while holding: <nil>
	// write after the hold ended fails: true
	// config: v2
}

func ExampleElection_Campaign() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := zklock.Connect(ctx, servers)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	e := zklock.NewElection(s, "/examples/scheduler", zklock.WithValue([]byte("me")))
	// Campaign blocks until this candidate leads.
	if err := e.Campaign(ctx); err != nil {
		log.Fatal(err)
	}
	// Leadership can be lost at any time: lead under e.Context(), which
	// ends with it, and fence writes with e.Token() or e.Guard().
	term, err := e.Leader(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("leader:", string(term.Value), "- this term:", term.Token == e.Token())

	// Resign hands leadership to the next candidate at once.
	if err := e.Resign(ctx); err != nil {
		log.Fatal(err)
	}
	_, err = e.Leader(ctx)
	fmt.Println("no leader now:", errors.Is(err, zklock.ErrNoLeader))
	// Output:
	// leader: me - this term: true
	// no leader now: true
}

func ExampleElection_Run() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := zklock.Connect(ctx, servers)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	// A service runs until it is told to stop, typically by a ctx from
	// signal.NotifyContext; here the first term's work stops it.
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	e := zklock.NewElection(s, "/examples/compactor", zklock.WithValue([]byte("me")))
	err = e.Run(ctx, func(leaderCtx context.Context) error {
		// Work only while leaderCtx lasts: it ends when leadership is lost
		// or Run's ctx ends. Run campaigns again after each term.
		fmt.Println("leading")
		stop()
		<-leaderCtx.Done()
		return nil
	})
	fmt.Println("Run stopped:", errors.Is(err, context.Canceled))
	// Output:
	// leading
	// Run stopped: true
}

func ExampleElection_Observe() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := zklock.Connect(ctx, servers)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	const path = "/examples/primary"
	// Follow who leads, without standing as a candidate. The channel is
	// closed when watchCtx ends.
	watchCtx, stopWatching := context.WithCancel(ctx)
	terms, err := zklock.NewElection(s, path).Observe(watchCtx)
	if err != nil {
		log.Fatal(err)
	}

	for _, name := range []string{"a", "b"} {
		e := zklock.NewElection(s, path, zklock.WithValue([]byte(name)))
		if err := e.Campaign(ctx); err != nil {
			log.Fatal(err)
		}
		fmt.Println("observed leader:", string((<-terms).Value))
		if err := e.Resign(ctx); err != nil {
			log.Fatal(err)
		}
	}
	stopWatching()
	for range terms { // drain until Observe closes the channel
	}
	// Output:
	// observed leader: a
	// observed leader: b
}

func ExampleSession_Subscribe() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := zklock.Connect(ctx, servers)
	if err != nil {
		log.Fatal(err)
	}
	sub := s.Subscribe()
	defer sub.Stop()

	s.Close()
	for {
		c, err := sub.Next(ctx)
		if err != nil {
			fmt.Println(err)
			break
		}
		fmt.Println(c.State)
	}
	// Output:
	// connected
	// closed
	// zklock: session closed
}

func ExampleRWMutex() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, err := zklock.Connect(ctx, servers)
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()
	b, err := zklock.Connect(ctx, servers)
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()

	// Two readers share the lock; a writer would wait for both.
	r1 := zklock.NewRWMutex(a, "/examples/catalog")
	r2 := zklock.NewRWMutex(b, "/examples/catalog")
	if err := r1.RLock(ctx); err != nil {
		log.Fatal(err)
	}
	if err := r2.RLock(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("two readers:", r1.Reader().Err() == nil && r2.Reader().Err() == nil)
	// An RWMutex does not upgrade its own read lock: that would wait for ever.
	fmt.Println("upgrade refused:", errors.Is(r1.Lock(ctx), zklock.ErrBusy))
	fmt.Println("another writer:", errors.Is(zklock.NewRWMutex(a, "/examples/catalog").TryLock(ctx), zklock.ErrLocked))

	for _, rw := range []*zklock.RWMutex{r1, r2} {
		if err := rw.RUnlock(ctx); err != nil {
			log.Fatal(err)
		}
	}
	if err := r1.Lock(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("writer alone:", r1.Writer().Err() == nil)
	if err := r1.Unlock(ctx); err != nil {
		log.Fatal(err)
	}
	// Output:
	// two readers: true
	// upgrade refused: true
	// another writer: true
	// writer alone: true
}

func ExampleSemaphore() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := zklock.Connect(ctx, servers)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	// At most two workers at once, across every process using the path.
	sem := zklock.NewSemaphore(s, "/examples/workers", 2)
	var leases []*zklock.Lease
	for range 2 {
		l, err := sem.Acquire(ctx)
		if err != nil {
			log.Fatal(err)
		}
		leases = append(leases, l)
	}
	_, err = sem.TryAcquire(ctx)
	fmt.Println("a third lease:", errors.Is(err, zklock.ErrLocked))

	for _, l := range leases {
		// Work under l.Context(), which ends if the lease is lost.
		if err := l.Release(ctx); err != nil {
			log.Fatal(err)
		}
	}
	// Output:
	// a third lease: true
}

func ExampleNewLocker() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := zklock.Connect(ctx, servers)
	if err != nil {
		log.Fatal(err)
	}
	// Close the Session only once no goroutine may call Lock any more:
	// Lock on a closed Session panics.
	defer s.Close()

	// Code written for a sync.Locker, such as a library's.
	guarded := func(mu sync.Locker, f func()) {
		mu.Lock()
		defer mu.Unlock()
		f()
	}

	m := zklock.NewMutex(s, "/examples/cache-refill")
	guarded(zklock.NewLocker(m), func() {
		// The Locker cannot report a loss: the Mutex does. Fence writes
		// with m.Token() and stop when m.Done() closes.
		fmt.Println("holding:", m.Err() == nil, "token > 0:", m.Token() > 0)
	})
	fmt.Println("after Unlock:", m.Err())
	// Output:
	// holding: true token > 0: true
	// after Unlock: zklock: not locked
}

func ExampleMultiLock() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := zklock.Connect(ctx, servers)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	// A transfer between two accounts holds both accounts' locks, or none.
	// Any order of paths is taken in one canonical order, so transfers in
	// opposite directions never deadlock.
	l := zklock.NewMultiLock(s, []string{"/examples/accounts/bob", "/examples/accounts/alice"})
	if err := l.Lock(ctx); err != nil {
		log.Fatal(err)
	}
	for _, m := range l.Mutexes() {
		fmt.Println("holding", path.Dir(m.Key()), "token > 0:", m.Token() > 0)
	}
	if err := l.Unlock(ctx); err != nil {
		log.Fatal(err)
	}
	// Output:
	// holding /examples/accounts/alice token > 0: true
	// holding /examples/accounts/bob token > 0: true
}

func ExampleWithMeterProvider() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// In a service: the MeterProvider your exporter (Prometheus, OTLP)
	// reads from. Here a manual reader collects on demand.
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(ctx)

	s, err := zklock.Connect(ctx, servers, zklock.WithMeterProvider(mp))
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	m := zklock.NewMutex(s, "/examples/metered")
	for range 3 {
		if err := m.Lock(ctx); err != nil {
			log.Fatal(err)
		}
		if err := m.Unlock(ctx); err != nil {
			log.Fatal(err)
		}
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		log.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, metric := range sm.Metrics {
			if metric.Name == "zklock.acquisitions" {
				fmt.Println("acquisitions:", metric.Data.(metricdata.Sum[int64]).DataPoints[0].Value)
			}
		}
	}
	// Output:
	// acquisitions: 3
}
