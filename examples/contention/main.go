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
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/zklock/zklock"
	"github.com/zklock/zklock/internal/faultproxy"
	"github.com/zklock/zklock/internal/zkserver"
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
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage: contention [flags]\n\n"+
			"Workers contend for one zklock Mutex; halfway through, a holder is cut off\n"+
			"and its loss is shown to come before the next acquisition.\n"+
			"Uses the servers in ZK_SERVERS (host:port,...), or starts a local ZooKeeper.\n\nFlags:\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	cfg.status = isTerminal(os.Stdout)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, cfg, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "contention: %v\n", err)
		os.Exit(1)
	}
}

// isTerminal reports whether f is a character device, so ANSI control
// sequences are not written into files or pipes.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0 && os.Getenv("TERM") != "dumb"
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
	id      int
	name    string
	proxies []*faultproxy.Proxy
	sess    *zklock.Session
	m       *zklock.Mutex

	// Read and written under demo.mu.
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

// demo is the shared state of one run.
type demo struct {
	cfg     config
	con     *console
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

	mu        sync.Mutex // guards everything below and the workers' counters
	changed   chan struct{}
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

// broadcast wakes everyone waiting in waitUntil; d.mu must be held.
func (d *demo) broadcast() {
	close(d.changed)
	d.changed = make(chan struct{})
}

// waitUntil waits until cond, evaluated under d.mu, holds, or ctx ends.
func (d *demo) waitUntil(ctx context.Context, cond func() bool) bool {
	for {
		d.mu.Lock()
		ok, ch := cond(), d.changed
		d.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
	}
}

func run(ctx context.Context, cfg config, stdout io.Writer) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	d := &demo{cfg: cfg, changed: make(chan struct{})}
	d.con = newConsole(stdout)

	servers, stopServer, err := zookeeper(ctx, cfg.servers, d.con)
	if err != nil {
		return err
	}
	defer stopServer()

	// Tear down in reverse: heal every network so sessions close promptly,
	// close sessions (their nodes vanish), then the proxies.
	defer func() {
		for _, w := range d.workers {
			for _, p := range w.proxies {
				p.Heal()
			}
		}
		for _, w := range d.workers {
			if w.sess != nil {
				w.sess.Close()
			}
		}
		for _, w := range d.workers {
			for _, p := range w.proxies {
				p.Close()
			}
		}
	}()

	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for i := range cfg.workers {
		w := &worker{id: i + 1, name: fmt.Sprintf("worker-%d", i+1)}
		d.workers = append(d.workers, w)
		var addrs []string
		for _, s := range servers {
			p, err := faultproxy.New(s)
			if err != nil {
				return err
			}
			w.proxies = append(w.proxies, p)
			addrs = append(addrs, p.Addr())
		}
		if w.sess, err = zklock.Connect(cctx, addrs, zklock.WithSessionTimeout(cfg.sessionTimeout)); err != nil {
			return fmt.Errorf("%s: connect: %w", w.name, err)
		}
		// The node data names the worker, so the queue can be shown by name.
		w.m = zklock.NewMutex(w.sess, cfg.path, zklock.WithData([]byte(w.name)))
	}
	d.con.note("%d workers, each with its own Session through its own proxies; negotiated session timeout %v",
		cfg.workers, d.workers[0].sess.NegotiatedTimeout())
	d.con.note("lock %s; holds of %v-%v; running for %v, one holder is cut off at %v",
		cfg.path, cfg.holdMin, cfg.holdMax, cfg.duration, (cfg.duration / 2).Round(time.Millisecond))
	d.con.start = time.Now()
	if cfg.status {
		d.con.status = d.statusLine
	}

	runCtx, stopRun := context.WithTimeout(ctx, cfg.duration)
	defer stopRun()
	var wg sync.WaitGroup
	for _, w := range d.workers {
		wg.Go(func() { d.work(runCtx, w) })
		wg.Go(func() { d.watchSession(runCtx, w) })
	}
	wg.Go(func() { d.inject(runCtx) })
	if cfg.status {
		wg.Go(func() { d.con.refresh(runCtx) })
	}
	wg.Wait()
	d.con.clearStatus()
	d.con.event(time.Now(), "run over: every worker has stopped and released the lock")

	return d.summary()
}

// watchSession prints every state change of w's Session after the first,
// so the cut-off worker's suspension, expiry and new session show.
func (d *demo) watchSession(ctx context.Context, w *worker) {
	sub := w.sess.Subscribe()
	defer sub.Stop()
	first, err := sub.Next(ctx) // the current state
	if err != nil {
		return
	}
	gen := first.Generation
	for {
		c, err := sub.Next(ctx)
		if err != nil {
			return
		}
		note := ""
		if c.State == zklock.StateConnected && c.Generation > gen {
			gen, note = c.Generation, "; a new ZooKeeper session: it queues again"
		}
		d.con.event(c.Time, "%s session: %v%s", w.name, c, note)
	}
}

// work is one worker's loop: queue, hold, release, pause.
func (d *demo) work(ctx context.Context, w *worker) {
	for {
		asked := time.Now()
		if err := w.m.Lock(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			d.con.event(time.Now(), "%s: Lock failed, retrying: %v", w.name, err)
			if !sleep(ctx, 500*time.Millisecond) {
				return
			}
			continue
		}
		got := time.Now()
		d.hold(ctx, w, d.acquired(w, got.Sub(asked), got))
		if !sleep(ctx, randDuration(0, d.cfg.pause)) {
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
func (d *demo) acquired(w *worker, waited time.Duration, at time.Time) acquisition {
	token, seq := w.m.Token(), w.m.Seq()
	overlap := !d.holder.CompareAndSwap(0, int32(w.id))
	a := acquisition{at: at, header: fmt.Sprintf("%s acquired  token %#x  seq %d  waited %v", w.name, token, seq, ms(waited))}

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
				d.victim.name, ms(at.Sub(d.victimLost))))
		}
	}
	return a
}

// queue describes the lock's contenders as the holder's Session sees them,
// in queue order. It reads under the hold's context, so a lost hold stops
// it.
func (d *demo) queue(w *worker) string {
	ctx, cancel := context.WithTimeout(w.m.Context(), 5*time.Second)
	defer cancel()
	names, err := w.sess.Children(ctx, d.cfg.path)
	if err != nil {
		return fmt.Sprintf("queue: unavailable: %v", err)
	}
	slices.SortFunc(names, compareSeq)
	var parts []string
	for i, n := range names {
		data, _, err := w.sess.Get(ctx, d.cfg.path+"/"+n)
		who := string(data)
		if err != nil {
			who = "(gone)" // released between the listing and the read
		}
		part := fmt.Sprintf("%s #%d", who, suffix(n))
		if i == 0 {
			part = "holder " + part
		}
		parts = append(parts, part)
	}
	if len(parts) == 1 {
		return fmt.Sprintf("queue: %s; nobody waiting", parts[0])
	}
	return fmt.Sprintf("queue: %s; waiting: %s", parts[0], strings.Join(parts[1:], ", "))
}

// suffix is the 10-digit sequence number ZooKeeper appends to a sequential
// node's name, or -1 if the name has none.
func suffix(name string) int64 {
	if len(name) < 10 {
		return -1
	}
	n, err := strconv.ParseInt(name[len(name)-10:], 10, 64)
	if err != nil {
		return -1
	}
	return n
}

func compareSeq(a, b string) int {
	if c := suffix(a) - suffix(b); c != 0 {
		return int(max(-1, min(1, c)))
	}
	return strings.Compare(a, b)
}

// hold does the work under the lock until its time is up, the run ends, or
// the hold is lost, and then releases the lock.
func (d *demo) hold(ctx context.Context, w *worker, a acquisition) {
	done, token := w.m.Done(), w.m.Token()
	// One block, so the acquisition and its queue stay together.
	d.con.block(a.at, a.header, append([]string{d.queue(w)}, a.notes...)...)
	if a.next {
		d.mu.Lock()
		d.nextShown = true
		d.broadcast()
		d.mu.Unlock()
	}
	length := randDuration(d.cfg.holdMin, d.cfg.holdMax)
	if a.victim {
		// A long job, so the hold outlives the session timeout and can only
		// end by being lost; the cap covers a loss signal that never comes.
		length = 5*w.sess.NegotiatedTimeout() + 5*time.Second
		d.mu.Lock()
		d.victimReady = true
		d.broadcast()
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
func (d *demo) release(ctx context.Context, w *worker, began time.Time, writes int, why string) {
	d.holder.CompareAndSwap(int32(w.id), 0)
	// Printed before Unlock: the next holder may be granted before Unlock
	// returns, and its line must come after this one.
	d.con.event(time.Now(), "%s releases after %v, %d writes%s", w.name, ms(time.Since(began)), writes, why)
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := w.m.Unlock(uctx)
	switch {
	case err == nil:
	case errors.Is(err, zklock.ErrNotLocked):
		// Lost between the end of the work and Unlock.
		d.recordLoss(w, time.Now())
	default:
		d.con.line("%s: Unlock: %v", w.name, err)
	}
}

// holdLost stops a worker whose hold ended under it, then shows that
// Unlock reports the loss rather than releasing anything.
func (d *demo) holdLost(w *worker) {
	at := time.Now()
	d.holder.CompareAndSwap(int32(w.id), 0) // first: nothing may act on the hold now
	d.recordLoss(w, at)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := w.m.Unlock(ctx)
	if errors.Is(err, zklock.ErrNotLocked) {
		d.con.line("%s stopped working; Unlock reports, as expected: %v", w.name, err)
		return
	}
	d.mu.Lock()
	d.unlockErr++
	d.mu.Unlock()
	d.con.line("VIOLATION: Unlock after the loss returned %v, want an error wrapping ErrNotLocked", err)
}

func (d *demo) recordLoss(w *worker, at time.Time) {
	cause := w.m.Err()
	d.mu.Lock()
	w.lost++
	d.losses = append(d.losses, loss{worker: w.name, at: at, err: cause})
	if w == d.victim && !d.cutAt.IsZero() && d.victimLost.IsZero() {
		d.victimLost = at
	}
	d.broadcast()
	d.mu.Unlock()
	d.liveLost.Add(1)
	d.con.event(at, "%s LOST the lock: %v", w.name, cause)
}

// inject cuts off a holder at half time, waits for its loss and the next
// acquisition, and heals its network.
func (d *demo) inject(ctx context.Context) {
	if !sleep(ctx, d.cfg.duration/2) {
		return
	}
	d.mu.Lock()
	d.armed = true
	d.mu.Unlock()
	d.con.event(time.Now(), "half time: the next worker to take the lock will be cut off while it holds it")
	if !d.waitUntil(ctx, func() bool { return d.victimReady }) {
		return
	}
	v := d.victim
	for _, p := range v.proxies {
		p.Blackhole()
	}
	at := time.Now()
	d.mu.Lock()
	d.cutAt = at
	d.broadcast()
	d.mu.Unlock()
	d.cutOff.Store(v)
	d.con.event(at, "FAULT: %s's network goes silent (its proxies drop everything); its job keeps running", v.name)

	healed := false
	heal := func() {
		if !healed {
			healed = true
			for _, p := range v.proxies {
				p.Heal()
			}
			d.cutOff.Store(nil)
		}
	}
	defer heal()
	if !d.waitUntil(ctx, func() bool { return !d.victimLost.IsZero() && d.nextShown }) {
		return
	}
	heal()
	d.con.event(time.Now(), "healing %s's network: its Session opens a new ZooKeeper session and it queues again", v.name)
}

// statusLine is the live status shown under the log on a terminal.
func (d *demo) statusLine() string {
	holder := "nobody"
	if id := d.holder.Load(); id != 0 {
		holder = fmt.Sprintf("worker-%d", id)
	}
	cut := ""
	if v := d.cutOff.Load(); v != nil {
		cut = "  [" + v.name + " cut off]"
	}
	return fmt.Sprintf("%s  holder: %-9s  holds: %d  lost: %d%s",
		d.con.since(time.Now()), holder, d.liveHolds.Load(), d.liveLost.Load(), cut)
}

// summary prints the results and returns an error if any safety check
// failed.
func (d *demo) summary() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.con
	c.note("")
	c.note("summary")
	c.note("  %-10s %12s %10s %10s %6s", "worker", "acquisitions", "mean wait", "max wait", "lost")
	var all worker
	for _, w := range d.workers {
		c.note("  %-10s %12d %10v %10v %6d", w.name, w.acquisitions, ms(mean(w.waitTotal, w.acquisitions)), ms(w.waitMax), w.lost)
		all.acquisitions += w.acquisitions
		all.waitTotal += w.waitTotal
		all.waitMax = max(all.waitMax, w.waitMax)
		all.lost += w.lost
	}
	c.note("  %-10s %12d %10v %10v %6d", "all", all.acquisitions, ms(mean(all.waitTotal, all.acquisitions)), ms(all.waitMax), all.lost)
	c.note("holds lost: %d", len(d.losses))
	for _, l := range d.losses {
		c.note("  %s at %s: %v", l.worker, c.since(l.at), l.err)
	}
	switch {
	case d.cutAt.IsZero():
		c.note("fault: not injected (the run ended first)")
	case d.victimLost.IsZero() || d.nextAt.IsZero():
		c.note("fault: %s cut off at %s; the run ended before its loss and the next acquisition were both seen",
			d.victim.name, c.since(d.cutAt))
	case d.lateLoss:
		c.note("fault: %s cut off at %s; VIOLATION: %s acquired at %s, before the loss was reported at %s",
			d.victim.name, c.since(d.cutAt), d.nextBy, c.since(d.nextAt), c.since(d.victimLost))
	default:
		c.note("fault: %s cut off at %s; loss reported at %s (%v after the cut), next acquisition by %s at %s",
			d.victim.name, c.since(d.cutAt), c.since(d.victimLost), ms(d.victimLost.Sub(d.cutAt)), d.nextBy, c.since(d.nextAt))
		c.note("  loss reported %v before the next acquisition", ms(d.nextAt.Sub(d.victimLost)))
	}
	c.note("fencing tokens strictly increasing: %s (%d holds)", yesNo(d.tokenErrs == 0), d.holds)
	d.res.mu.Lock()
	c.note("fenced writes: %d accepted, %d rejected as stale", d.res.accepted, d.res.rejected)
	rejected := d.res.rejected
	d.res.mu.Unlock()
	c.note("overlapping holds observed: %d", d.overlaps)
	violations := d.overlaps + d.tokenErrs + rejected + d.unlockErr
	if d.lateLoss {
		violations++
	}
	c.note("violations: %d", violations)
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

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "NO"
}

// ms formats d in whole milliseconds, so durations line up and compare at
// a glance.
func ms(d time.Duration) string { return fmt.Sprintf("%dms", d.Round(time.Millisecond).Milliseconds()) }

// randDuration returns a uniformly random duration in [lo, hi].
func randDuration(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + rand.N(hi-lo+1)
}

// sleep waits for d, reporting false if ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// console serialises output lines, stamps them with the time since start,
// and on a terminal keeps a status line below them.
type console struct {
	mu     sync.Mutex
	w      io.Writer
	start  time.Time
	status func() string // nil: plain lines only; must not block
	shown  bool          // the status line is on screen
}

func newConsole(w io.Writer) *console { return &console{w: w, start: time.Now()} }

func (c *console) since(t time.Time) string {
	return fmt.Sprintf("+%.3fs", t.Sub(c.start).Seconds())
}

// event prints a line stamped with when it happened.
func (c *console) event(at time.Time, format string, args ...any) {
	c.print(fmt.Sprintf("%9s  %s", c.since(at), fmt.Sprintf(format, args...)))
}

// line prints a continuation of the previous event.
func (c *console) line(format string, args ...any) {
	c.print(indent + fmt.Sprintf(format, args...))
}

// block prints an event and its continuation lines together.
func (c *console) block(at time.Time, header string, more ...string) {
	lines := []string{fmt.Sprintf("%9s  %s", c.since(at), header)}
	for _, m := range more {
		lines = append(lines, indent+m)
	}
	c.print(strings.Join(lines, "\n"))
}

// indent lines continuation lines up under the event's text.
var indent = strings.Repeat(" ", 13)

// note prints an unstamped line, for setup messages.
func (c *console) note(format string, args ...any) { c.print(fmt.Sprintf(format, args...)) }

func (c *console) print(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.shown {
		io.WriteString(c.w, "\r\x1b[K")
	}
	io.WriteString(c.w, s+"\n")
	if c.status != nil {
		io.WriteString(c.w, c.status())
		c.shown = true
	}
}

// refresh redraws the status line until ctx ends.
func (c *console) refresh(ctx context.Context) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			c.mu.Lock()
			io.WriteString(c.w, "\r\x1b[K"+c.status())
			c.shown = true
			c.mu.Unlock()
		case <-ctx.Done():
			return
		}
	}
}

// clearStatus removes the status line for good.
func (c *console) clearStatus() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.shown {
		io.WriteString(c.w, "\r\x1b[K")
		c.shown = false
	}
	c.status = nil
}

// zookeeper returns the servers to use and a function that stops any it
// started: given servers first, then ZK_SERVERS, else a local server.
func zookeeper(ctx context.Context, given []string, con *console) ([]string, func(), error) {
	if len(given) > 0 {
		con.note("using ZooKeeper at %s", strings.Join(given, ","))
		return given, func() {}, nil
	}
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return zkserver.Ensure(sctx, con.note)
}
