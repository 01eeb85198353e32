// Command contention shows several workers taking turns on one zklock Mutex.
//
// Each worker has its own Session, connected through its own fault proxy in
// front of every server, so one worker's network can fail alone. Workers
// queue for the lock, hold it for a while doing fenced writes, release it
// and queue again; every acquisition is printed with its fencing token, wait
// time and sequence number, and the queue as the holder sees it.
//
// Halfway through, the next worker to take the lock is cut off while holding
// it: its proxies go silent, as if its network failed, and its job keeps
// running. Its Session gives up the hold at the safe loss deadline, before
// ZooKeeper expires the session and lets the next worker in; the output
// shows by how much. Then the network heals, the worker's Session opens a
// new ZooKeeper session and the worker queues again.
//
// An in-process check watches that no two holds ever overlap and that
// fencing tokens strictly increase; the summary reports both, and the exit
// status is 1 if either was violated.
//
// It uses the servers in ZK_SERVERS, or starts a local ZooKeeper from the
// zookeeper package (or ZOOKEEPER_HOME) when that is unset.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zklock/zklock"
	"github.com/zklock/zklock/examples/internal/demo"
	"github.com/zklock/zklock/zktesting"
)

// config is what the flags set.
type config struct {
	workers        int
	duration       time.Duration
	holdMin        time.Duration
	holdMax        time.Duration
	pause          time.Duration
	sessionTimeout time.Duration
	path           string
	// servers overrides ZK_SERVERS and the local server (tests set it).
	servers []string
	// status draws a live status line; only sensible on a terminal.
	status bool
}

func main() {
	cfg := config{}
	flag.IntVar(&cfg.workers, "workers", 4, "number of workers contending for the lock (at least 2)")
	flag.DurationVar(&cfg.duration, "duration", 20*time.Second, "how long to run; one holder is cut off at half time")
	flag.DurationVar(&cfg.holdMin, "hold-min", 200*time.Millisecond, "shortest time a worker holds the lock")
	flag.DurationVar(&cfg.holdMax, "hold-max", 800*time.Millisecond, "longest time a worker holds the lock")
	flag.DurationVar(&cfg.pause, "pause", 300*time.Millisecond, "longest wait between a worker's holds")
	flag.DurationVar(&cfg.sessionTimeout, "session-timeout", 2*time.Second,
		"ZooKeeper session timeout the workers request; a cut-off holder loses its hold within it")
	flag.StringVar(&cfg.path, "path", fmt.Sprintf("/zklock-demo/contention-%d", os.Getpid()), "ZooKeeper path of the lock")
	demo.Main("contention", "Workers contend for one zklock Mutex; halfway through, a holder is cut off\n"+
		"and its loss is shown to come before the next acquisition.",
		func(ctx context.Context) error {
			cfg.status = demo.IsTerminal(os.Stdout)
			return run(ctx, cfg, os.Stdout)
		})
}

func (c config) validate() error {
	switch {
	case c.workers < 2:
		return errors.New("-workers must be at least 2")
	case c.duration <= 0:
		return errors.New("-duration must be positive")
	case c.holdMin <= 0 || c.holdMax < c.holdMin:
		return errors.New("need 0 < -hold-min <= -hold-max")
	case c.pause < 0:
		return errors.New("-pause must not be negative")
	case c.sessionTimeout <= 0:
		return errors.New("-session-timeout must be positive")
	}
	return nil
}

// workStep is how often a holder writes to the fenced resource.
const workStep = 50 * time.Millisecond

// worker is one contender: its own proxies, Session and Mutex, as if it
// were a separate process.
type worker struct {
	id   int
	name string
	net  *zktesting.Proxies
	sess *zklock.Session
	m    *zklock.Mutex

	// Read and written under lockDemo.mu.
	acquisitions int
	waitTotal    time.Duration
	waitMax      time.Duration
	lost         int
}

// loss is one hold that ended without Unlock.
type loss struct {
	worker string
	at     time.Time
	err    error
}

// resource stands for what the lock protects. Like a storage service that
// honours fencing, it refuses writes carrying a token lower than the
// highest it has seen, so a holder that kept writing after losing the lock
// would be caught here.
type resource struct {
	mu       sync.Mutex
	highest  int64
	accepted int
	rejected int
}

func (r *resource) write(token int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if token < r.highest {
		r.rejected++
		return false
	}
	r.highest = token
	r.accepted++
	return true
}

// lockDemo is the shared state of one run.
type lockDemo struct {
	cfg     config
	con     *demo.Console
	workers []*worker
	res     resource

	// holder is the id of the worker that believes it holds the lock, 0 for
	// none: set right after Lock returns and cleared before Unlock or as
	// soon as the hold is lost. Finding it taken on acquisition means two
	// holds overlapped.
	holder atomic.Int32

	// For the status line, which must not wait for mu.
	liveHolds atomic.Int32
	liveLost  atomic.Int32
	cutOff    atomic.Pointer[worker] // the victim while its network is down

	mu        demo.Monitor // guards everything below and the workers' counters
	overlaps  int
	lastToken int64
	holds     int
	tokenErrs int
	losses    []loss
	unlockErr int // Unlock after a loss did not report ErrNotLocked

	// The fault: armed at half time, the next acquirer becomes the victim.
	armed       bool
	victim      *worker
	victimReady bool      // the victim has shown the queue and is working
	cutAt       time.Time // its proxies were blackholed
	victimLost  time.Time // its loss signal was seen
	nextAt      time.Time // the first acquisition by anyone else after the cut
	nextBy      string
	nextShown   bool // and it has been printed
	lateLoss    bool // the next acquisition came before the loss was seen
}

func run(ctx context.Context, cfg config, stdout io.Writer) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	d := &lockDemo{cfg: cfg, con: demo.NewConsole(stdout)}

	servers, stopServer, err := demo.ZooKeeper(ctx, cfg.servers, d.con)
	if err != nil {
		return err
	}
	defer stopServer()

	// Tear down in reverse: heal every network so sessions close promptly,
	// close sessions (their nodes vanish), then the proxies.
	defer func() {
		for _, w := range d.workers {
			w.net.Heal()
		}
		for _, w := range d.workers {
			if w.sess != nil {
				w.sess.Close()
			}
		}
		for _, w := range d.workers {
			w.net.Close()
		}
	}()

	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for i := range cfg.workers {
		w := &worker{id: i + 1, name: fmt.Sprintf("worker-%d", i+1)}
		if w.net, err = zktesting.OpenProxies(servers); err != nil {
			return err
		}
		d.workers = append(d.workers, w)
		if w.sess, err = zklock.Connect(cctx, w.net.Addrs(), zklock.WithSessionTimeout(cfg.sessionTimeout)); err != nil {
			return fmt.Errorf("%s: connect: %w", w.name, err)
		}
		// The node data names the worker, so the queue can be shown by name.
		w.m = zklock.NewMutex(w.sess, cfg.path, zklock.WithData([]byte(w.name)))
	}
	d.con.Note("%d workers, each with its own Session through its own proxies; negotiated session timeout %v",
		cfg.workers, d.workers[0].sess.NegotiatedTimeout())
	d.con.Note("lock %s; holds of %v-%v; running for %v, one holder is cut off at %v",
		cfg.path, cfg.holdMin, cfg.holdMax, cfg.duration, (cfg.duration / 2).Round(time.Millisecond))
	d.con.StartClock()

	runCtx, stopRun := context.WithTimeout(ctx, cfg.duration)
	defer stopRun()
	var wg sync.WaitGroup
	for _, w := range d.workers {
		wg.Go(func() { d.work(runCtx, w) })
		// Shows the cut-off worker's suspension, expiry and new session.
		wg.Go(func() { demo.TraceSession(runCtx, d.con, w.name, w.sess, "it queues again") })
	}
	wg.Go(func() { d.inject(runCtx) })
	if cfg.status {
		wg.Go(func() { d.con.Status(runCtx, d.statusLine) })
	}
	wg.Wait()
	d.con.Event(time.Now(), "run over: every worker has stopped and released the lock")

	return d.summary()
}

// work is one worker's loop: queue, hold, release, pause.
func (d *lockDemo) work(ctx context.Context, w *worker) {
	for {
		asked := time.Now()
		if err := w.m.Lock(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			d.con.Event(time.Now(), "%s: Lock failed, retrying: %v", w.name, err)
			if !demo.Sleep(ctx, 500*time.Millisecond) {
				return
			}
			continue
		}
		got := time.Now()
		d.hold(ctx, w, d.acquired(w, got.Sub(asked), got))
		if !demo.Sleep(ctx, randDuration(0, d.cfg.pause)) {
			return
		}
	}
}

// acquisition is one Lock that returned, as acquired recorded it.
type acquisition struct {
	at     time.Time
	header string
	notes  []string // violations and the fault's outcome, printed below
	victim bool     // this hold is the one to be cut off
	next   bool     // the first acquisition by another worker after the cut
}

// acquired records a new hold and runs the in-process safety checks.
func (d *lockDemo) acquired(w *worker, waited time.Duration, at time.Time) acquisition {
	token, seq := w.m.Token(), w.m.Seq()
	overlap := !d.holder.CompareAndSwap(0, int32(w.id))
	a := acquisition{at: at, header: fmt.Sprintf("%s acquired  token %#x  seq %d  waited %v", w.name, token, seq, demo.Ms(waited))}

	d.mu.Lock()
	defer d.mu.Unlock()
	w.acquisitions++
	w.waitTotal += waited
	w.waitMax = max(w.waitMax, waited)
	d.holds++
	d.liveHolds.Add(1)
	if overlap {
		d.overlaps++
		a.notes = append(a.notes, fmt.Sprintf("VIOLATION: worker-%d still held the lock", d.holder.Load()))
	}
	if token <= d.lastToken {
		d.tokenErrs++
		a.notes = append(a.notes, fmt.Sprintf("VIOLATION: token %#x is not above the previous holder's %#x", token, d.lastToken))
	}
	d.lastToken = max(d.lastToken, token)
	if d.armed {
		d.armed, d.victim, a.victim = false, w, true
	}
	if !d.cutAt.IsZero() && d.nextAt.IsZero() && w != d.victim {
		d.nextAt, d.nextBy, a.next = at, w.name, true
		if d.victimLost.IsZero() {
			d.lateLoss = true
			a.notes = append(a.notes, fmt.Sprintf("VIOLATION: %s's loss had not been reported yet", d.victim.name))
		} else {
			a.notes = append(a.notes, fmt.Sprintf("%s's loss was reported %v before this acquisition",
				d.victim.name, demo.Ms(at.Sub(d.victimLost))))
		}
	}
	return a
}

// queue describes the lock's contenders as the holder's Session sees them,
// in queue order. It reads under the hold's context, so a lost hold stops
// it.
func (d *lockDemo) queue(w *worker) string {
	ctx, cancel := context.WithTimeout(w.m.Context(), 5*time.Second)
	defer cancel()
	q, err := demo.Queue(ctx, w.sess, d.cfg.path)
	switch {
	case err != nil:
		return fmt.Sprintf("queue: unavailable: %v", err)
	case len(q) == 0:
		return "queue: empty"
	case len(q) == 1:
		return fmt.Sprintf("queue: holder %s; nobody waiting", q[0])
	}
	return fmt.Sprintf("queue: holder %s; waiting: %s", q[0], strings.Join(q[1:], ", "))
}

// hold does the work under the lock until its time is up, the run ends, or
// the hold is lost, and then releases the lock.
func (d *lockDemo) hold(ctx context.Context, w *worker, a acquisition) {
	done, token := w.m.Done(), w.m.Token()
	// One block, so the acquisition and its queue stay together.
	d.con.Block(a.at, a.header, append([]string{d.queue(w)}, a.notes...)...)
	if a.next {
		d.mu.Lock()
		d.nextShown = true
		d.mu.Broadcast()
		d.mu.Unlock()
	}
	length := randDuration(d.cfg.holdMin, d.cfg.holdMax)
	if a.victim {
		// A long job, so the hold outlives the session timeout and can only
		// end by being lost; the cap covers a loss signal that never comes.
		length = 5*w.sess.NegotiatedTimeout() + 5*time.Second
		d.mu.Lock()
		d.victimReady = true
		d.mu.Broadcast()
		d.mu.Unlock()
	}
	began := time.Now()
	timer := time.NewTimer(length)
	defer timer.Stop()
	tick := time.NewTicker(workStep)
	defer tick.Stop()
	writes := 0
	for {
		select {
		case <-done:
			d.holdLost(w)
			return
		case <-tick.C:
			// select picks at random among ready cases: look at the loss
			// signal once more right before acting on the resource.
			if isClosed(done) {
				continue
			}
			if d.res.write(token) {
				writes++
			}
		case <-timer.C:
			d.release(ctx, w, began, writes, "")
			return
		case <-ctx.Done():
			d.release(ctx, w, began, writes, " (the run is over)")
			return
		}
	}
}

// release ends a hold that was not lost by calling Unlock.
func (d *lockDemo) release(ctx context.Context, w *worker, began time.Time, writes int, why string) {
	d.holder.CompareAndSwap(int32(w.id), 0)
	// Printed before Unlock: the next holder may be granted before Unlock
	// returns, and its line must come after this one.
	d.con.Event(time.Now(), "%s releases after %v, %d writes%s", w.name, demo.Ms(time.Since(began)), writes, why)
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := w.m.Unlock(uctx)
	switch {
	case err == nil:
	case errors.Is(err, zklock.ErrNotLocked):
		// Lost between the end of the work and Unlock.
		d.recordLoss(w, time.Now())
	default:
		d.con.Line("%s: Unlock: %v", w.name, err)
	}
}

// holdLost stops a worker whose hold ended under it, then shows that
// Unlock reports the loss rather than releasing anything.
func (d *lockDemo) holdLost(w *worker) {
	at := time.Now()
	d.holder.CompareAndSwap(int32(w.id), 0) // first: nothing may act on the hold now
	d.recordLoss(w, at)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := w.m.Unlock(ctx)
	if errors.Is(err, zklock.ErrNotLocked) {
		d.con.Line("%s stopped working; Unlock reports, as expected: %v", w.name, err)
		return
	}
	d.mu.Lock()
	d.unlockErr++
	d.mu.Unlock()
	d.con.Line("VIOLATION: Unlock after the loss returned %v, want an error wrapping ErrNotLocked", err)
}

func (d *lockDemo) recordLoss(w *worker, at time.Time) {
	cause := w.m.Err()
	d.mu.Lock()
	w.lost++
	d.losses = append(d.losses, loss{worker: w.name, at: at, err: cause})
	if w == d.victim && !d.cutAt.IsZero() && d.victimLost.IsZero() {
		d.victimLost = at
	}
	d.mu.Broadcast()
	d.mu.Unlock()
	d.liveLost.Add(1)
	d.con.Event(at, "%s LOST the lock: %v", w.name, cause)
}

// inject cuts off a holder at half time, waits for its loss and the next
// acquisition, and heals its network.
func (d *lockDemo) inject(ctx context.Context) {
	if !demo.Sleep(ctx, d.cfg.duration/2) {
		return
	}
	d.mu.Lock()
	d.armed = true
	d.mu.Unlock()
	d.con.Event(time.Now(), "half time: the next worker to take the lock will be cut off while it holds it")
	if d.mu.WaitUntil(ctx, "the victim's hold", func() bool { return d.victimReady }) != nil {
		return
	}
	v := d.victim
	v.net.Blackhole()
	at := time.Now()
	d.mu.Lock()
	d.cutAt = at
	d.mu.Broadcast()
	d.mu.Unlock()
	d.cutOff.Store(v)
	d.con.Event(at, "FAULT: %s's network goes silent (its proxies drop everything); its job keeps running", v.name)

	healed := false
	heal := func() {
		if !healed {
			healed = true
			v.net.Heal()
			d.cutOff.Store(nil)
		}
	}
	defer heal()
	if d.mu.WaitUntil(ctx, "the loss and the next hold", func() bool { return !d.victimLost.IsZero() && d.nextShown }) != nil {
		return
	}
	heal()
	d.con.Event(time.Now(), "healing %s's network: its Session opens a new ZooKeeper session and it queues again", v.name)
}

// statusLine is the live status shown under the log on a terminal.
func (d *lockDemo) statusLine() string {
	holder := "nobody"
	if id := d.holder.Load(); id != 0 {
		holder = fmt.Sprintf("worker-%d", id)
	}
	cut := ""
	if v := d.cutOff.Load(); v != nil {
		cut = "  [" + v.name + " cut off]"
	}
	return fmt.Sprintf("%s  holder: %-9s  holds: %d  lost: %d%s",
		d.con.Since(time.Now()), holder, d.liveHolds.Load(), d.liveLost.Load(), cut)
}

// summary prints the results and returns an error if any safety check
// failed.
func (d *lockDemo) summary() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.con
	c.Note("")
	c.Note("summary")
	c.Note("  %-10s %12s %10s %10s %6s", "worker", "acquisitions", "mean wait", "max wait", "lost")
	var all worker
	for _, w := range d.workers {
		c.Note("  %-10s %12d %10v %10v %6d", w.name, w.acquisitions, demo.Ms(mean(w.waitTotal, w.acquisitions)), demo.Ms(w.waitMax), w.lost)
		all.acquisitions += w.acquisitions
		all.waitTotal += w.waitTotal
		all.waitMax = max(all.waitMax, w.waitMax)
		all.lost += w.lost
	}
	c.Note("  %-10s %12d %10v %10v %6d", "all", all.acquisitions, demo.Ms(mean(all.waitTotal, all.acquisitions)), demo.Ms(all.waitMax), all.lost)
	c.Note("holds lost: %d", len(d.losses))
	for _, l := range d.losses {
		c.Note("  %s at %s: %v", l.worker, c.Since(l.at), l.err)
	}
	switch {
	case d.cutAt.IsZero():
		c.Note("fault: not injected (the run ended first)")
	case d.victimLost.IsZero() || d.nextAt.IsZero():
		c.Note("fault: %s cut off at %s; the run ended before its loss and the next acquisition were both seen",
			d.victim.name, c.Since(d.cutAt))
	case d.lateLoss:
		c.Note("fault: %s cut off at %s; VIOLATION: %s acquired at %s, before the loss was reported at %s",
			d.victim.name, c.Since(d.cutAt), d.nextBy, c.Since(d.nextAt), c.Since(d.victimLost))
	default:
		c.Note("fault: %s cut off at %s; loss reported at %s (%v after the cut), next acquisition by %s at %s",
			d.victim.name, c.Since(d.cutAt), c.Since(d.victimLost), demo.Ms(d.victimLost.Sub(d.cutAt)), d.nextBy, c.Since(d.nextAt))
		c.Note("  loss reported %v before the next acquisition", demo.Ms(d.nextAt.Sub(d.victimLost)))
	}
	c.Note("fencing tokens strictly increasing: %s (%d holds)", demo.YesNo(d.tokenErrs == 0), d.holds)
	d.res.mu.Lock()
	c.Note("fenced writes: %d accepted, %d rejected as stale", d.res.accepted, d.res.rejected)
	rejected := d.res.rejected
	d.res.mu.Unlock()
	c.Note("overlapping holds observed: %d", d.overlaps)
	violations := d.overlaps + d.tokenErrs + rejected + d.unlockErr
	if d.lateLoss {
		violations++
	}
	c.Note("violations: %d", violations)
	if violations > 0 {
		return fmt.Errorf("%d safety violation(s) observed", violations)
	}
	if all.acquisitions == 0 {
		return errors.New("no worker ever acquired the lock")
	}
	return nil
}

func mean(total time.Duration, n int) time.Duration {
	if n == 0 {
		return 0
	}
	return total / time.Duration(n)
}

// randDuration returns a uniformly random duration in [lo, hi].
func randDuration(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + rand.N(hi-lo+1)
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
