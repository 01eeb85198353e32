// Command election shows leader election with zklock and what happens when
// the leader dies.
//
// Three candidates campaign on one path, each with its own Session through
// its own fault proxies, as if they were separate processes. An observer
// with a separate Session prints every change of leader with its term
// token. Then, round after round, the leader is killed:
//
//   - -kill crash (the default): its proxies go silent, as if its process
//     had died. ZooKeeper expires its session after the session timeout and
//     the next candidate leads; the dead leader's own loss signal
//     (Election.Done) fires before that, at its safe loss deadline.
//   - -kill close: it closes its Session, as a process does on a clean
//     exit; its node goes at once and so does the failover.
//
// For every round the demo prints when the leader was killed, when its own
// loss signal fired, when the next leader's Campaign returned and how long
// the failover took; then the killed candidate comes back and queues again.
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
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zklock/zklock"
	"github.com/zklock/zklock/examples/internal/demo"
	"github.com/zklock/zklock/zktesting"
)

// Kill modes.
const (
	killCrash = "crash"
	killClose = "close"
)

// candidates is how many candidates campaign.
const candidates = 3

// config is what the flags set.
type config struct {
	rounds         int
	kill           string
	sessionTimeout time.Duration
	pause          time.Duration
	path           string
	// servers overrides ZK_SERVERS and the local server (tests set it).
	servers []string
}

func main() {
	cfg := config{}
	flag.IntVar(&cfg.rounds, "rounds", 2, "how many times to kill the leader")
	flag.StringVar(&cfg.kill, "kill", killCrash,
		`how to kill the leader: "crash" (its network goes silent and its session expires, as if its process died) or "close" (it closes its Session: a clean exit)`)
	flag.DurationVar(&cfg.sessionTimeout, "session-timeout", 2*time.Second, "ZooKeeper session timeout the candidates request")
	flag.DurationVar(&cfg.pause, "pause", time.Second, "how long each leader leads before it is killed")
	flag.StringVar(&cfg.path, "path", fmt.Sprintf("/zklock-demo/election-%d", os.Getpid()), "ZooKeeper path of the election")
	demo.Main("election", "Three candidates elect a leader with zklock; the leader is killed a few\n"+
		"times and each failover is timed.",
		func(ctx context.Context) error { return run(ctx, cfg, os.Stdout) })
}

func (c config) validate() error {
	switch {
	case c.rounds < 1:
		return errors.New("-rounds must be at least 1")
	case c.kill != killCrash && c.kill != killClose:
		return fmt.Errorf(`-kill must be "crash" or "close", not %q`, c.kill)
	case c.sessionTimeout <= 0:
		return errors.New("-session-timeout must be positive")
	case c.pause < 0:
		return errors.New("-pause must not be negative")
	}
	return nil
}

// candidate is one contender for leadership, standing for a process.
type candidate struct {
	id   int
	name string
	net  *zktesting.Proxies
}

// incarnation is a candidate's current Session and Election; a restart
// after a clean exit gets new ones.
type incarnation struct {
	s *zklock.Session
	e *zklock.Election
}

// round is the record of one killed leader.
type round struct {
	n        int
	old, new string
	killAt   time.Time
	lossAt   time.Time // the old leader's own loss signal
	wonAt    time.Time // the next leader's Campaign returned
	lateLoss bool      // crash: the loss signal came after the next leader
}

// electionDemo is the shared state of one run.
type electionDemo struct {
	cfg   config
	con   *demo.Console
	cands []*candidate

	// leading is the id of the candidate that believes it leads, 0 for
	// none: set when Campaign returns, cleared when leadership ends or, for
	// a clean exit, before the Session is closed. Finding it taken when
	// Campaign returns means two leaderships overlapped.
	leading atomic.Int32

	sessMu   sync.Mutex // guards sessions
	sessions []*zklock.Session

	// mu guards everything below. Lines about the changes it guards are
	// printed while it is held, so the output keeps their order.
	mu       demo.Monitor
	leader   *candidate // the latest winner
	live     map[*candidate]incarnation
	wonAt    time.Time
	term     int64
	overlaps int
	observed int    // leader changes the observer saw
	lastObs  int64  // the observer's latest term token
	obsKey   string // the observer's latest leader node
	termErrs int    // observed terms that did not increase
	killed   *candidate
	lossAt   time.Time // the killed leader's loss signal, after killAt
	killLate bool      // the next leader won before that signal
	lateLoss int
	rounds   []round
}

func run(ctx context.Context, cfg config, stdout io.Writer) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	d := &electionDemo{cfg: cfg, con: demo.NewConsole(stdout), live: map[*candidate]incarnation{}}

	servers, stopServer, err := demo.ZooKeeper(ctx, cfg.servers, d.con)
	if err != nil {
		return err
	}
	defer stopServer()

	// Joined before the sessions close, so no goroutine of ours uses one
	// after it is gone.
	var wg sync.WaitGroup
	runCtx, stopRun := context.WithCancel(ctx)
	defer func() {
		stopRun()
		wg.Wait()
		// Heal first, so a crashed candidate's Session closes promptly.
		for _, c := range d.cands {
			c.net.Heal()
		}
		d.sessMu.Lock()
		for _, s := range d.sessions {
			s.Close()
		}
		d.sessMu.Unlock()
		for _, c := range d.cands {
			c.net.Close()
		}
	}()

	for i := range candidates {
		c := &candidate{id: i + 1, name: fmt.Sprintf("candidate-%d", i+1)}
		if c.net, err = zktesting.OpenProxies(servers); err != nil {
			return err
		}
		d.cands = append(d.cands, c)
	}
	observer, err := d.connect(ctx, servers)
	if err != nil {
		return fmt.Errorf("observer: connect: %w", err)
	}
	obs := zklock.NewElection(observer, cfg.path)
	d.con.Note("election %s; %d candidates, each with its own Session through its own proxies; kill mode %q; %d round(s)",
		cfg.path, candidates, cfg.kill, cfg.rounds)
	d.con.StartClock()
	wg.Go(func() { d.observe(runCtx, obs) })

	// A bound on every wait, generous enough for session expiry on servers
	// that raise the requested timeout.
	waitFor := 30*time.Second + 5*cfg.sessionTimeout

	err = d.play(runCtx, &wg, observer, waitFor)
	if err != nil && ctx.Err() == nil {
		return err
	}
	stopRun()
	wg.Wait()
	if err != nil {
		d.con.Event(time.Now(), "interrupted: every candidate has stopped and resigned")
	} else {
		d.con.Event(time.Now(), "done: every candidate has stopped and resigned")
	}
	return d.summary()
}

// play starts the candidates and kills the leader cfg.rounds times.
func (d *electionDemo) play(ctx context.Context, wg *sync.WaitGroup, observer *zklock.Session, waitFor time.Duration) error {
	// Start the candidates one by one, so the queue order is their order.
	for i, c := range d.cands {
		if err := d.start(ctx, wg, c); err != nil {
			return err
		}
		if err := d.waitQueue(ctx, observer, i+1, waitFor); err != nil {
			return err
		}
	}
	if err := d.showQueue(ctx, observer); err != nil {
		return err
	}
	for n := 1; n <= d.cfg.rounds; n++ {
		if !demo.Sleep(ctx, d.cfg.pause) {
			return ctx.Err()
		}
		if err := d.round(ctx, wg, observer, n, waitFor); err != nil {
			return err
		}
	}
	if !demo.Sleep(ctx, d.cfg.pause/2) {
		return ctx.Err()
	}
	return nil
}

// connect opens a Session and keeps it for closing at the end.
func (d *electionDemo) connect(ctx context.Context, addrs []string) (*zklock.Session, error) {
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	s, err := zklock.Connect(cctx, addrs, zklock.WithSessionTimeout(d.cfg.sessionTimeout))
	if err != nil {
		return nil, err
	}
	d.sessMu.Lock()
	d.sessions = append(d.sessions, s)
	d.sessMu.Unlock()
	return s, nil
}

// start connects c with a new Session, as a (re)started process would,
// and campaigns.
func (d *electionDemo) start(ctx context.Context, wg *sync.WaitGroup, c *candidate) error {
	s, err := d.connect(ctx, c.net.Addrs())
	if err != nil {
		return fmt.Errorf("%s: connect: %w", c.name, err)
	}
	e := zklock.NewElection(s, d.cfg.path, zklock.WithValue([]byte(c.name)))
	d.mu.Lock()
	d.live[c] = incarnation{s, e}
	d.mu.Unlock()
	d.con.Event(time.Now(), "%s connected (ZooKeeper session 0x%x, timeout %v) and campaigns",
		c.name, s.SessionID(), s.NegotiatedTimeout())
	// Shows a crashed leader's suspension, expiry and new session.
	wg.Go(func() { demo.TraceSession(ctx, d.con, c.name, s, "it campaigns again") })
	wg.Go(func() { d.campaign(ctx, c, s, e) })
	return nil
}

// campaign is one candidate's life: campaign, lead until leadership ends,
// campaign again, until its Session is closed or the demo ends.
func (d *electionDemo) campaign(ctx context.Context, c *candidate, s *zklock.Session, e *zklock.Election) {
	for {
		if err := e.Campaign(ctx); err != nil {
			if ctx.Err() != nil || errors.Is(err, zklock.ErrSessionClosed) {
				return
			}
			d.con.Event(time.Now(), "%s: Campaign failed, retrying: %v", c.name, err)
			if !demo.Sleep(ctx, 500*time.Millisecond) {
				return
			}
			continue
		}
		d.won(c, e)
		select {
		case <-e.Done():
			d.lost(c, e)
		case <-ctx.Done():
			d.leading.CompareAndSwap(int32(c.id), 0)
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			err := e.Resign(rctx)
			cancel()
			if err != nil {
				d.con.Event(time.Now(), "%s: Resign: %v", c.name, err)
			}
			return
		}
	}
}

// won records that c's Campaign returned.
func (d *electionDemo) won(c *candidate, e *zklock.Election) {
	at := time.Now()
	overlap := !d.leading.CompareAndSwap(0, int32(c.id))
	d.mu.Lock()
	d.leader, d.wonAt, d.term = c, at, e.Token()
	var notes []string
	if overlap {
		d.overlaps++
		notes = append(notes, fmt.Sprintf("VIOLATION: candidate-%d still believed it led", d.leading.Load()))
	}
	if k := d.killed; k != nil && k != c && d.cfg.kill == killCrash && d.lossAt.IsZero() {
		d.lateLoss++
		d.killLate = true
		notes = append(notes, fmt.Sprintf("VIOLATION: %s's loss signal has not fired yet", k.name))
	}
	// Printed before waking the round, so the output follows the events.
	d.con.Block(at, fmt.Sprintf("%s's Campaign returned: it leads (term %#x)", c.name, e.Token()), notes...)
	d.mu.Broadcast()
	d.mu.Unlock()
}

// lost records that c's leadership ended under it.
func (d *electionDemo) lost(c *candidate, e *zklock.Election) {
	at := time.Now()
	d.leading.CompareAndSwap(int32(c.id), 0) // first: it must stop acting as leader now
	d.mu.Lock()
	if c == d.killed && d.lossAt.IsZero() {
		d.lossAt = at
	}
	d.con.Event(at, "%s's own loss signal fired (Election.Done): %v", c.name, e.Err())
	d.mu.Broadcast()
	d.mu.Unlock()
}

// observe prints every leader change the observer's Session sees.
func (d *electionDemo) observe(ctx context.Context, obs *zklock.Election) {
	terms, err := obs.Observe(ctx)
	if err != nil {
		d.con.Event(time.Now(), "observer: %v", err)
		return
	}
	for t := range terms {
		d.mu.Lock()
		d.observed++
		ok := t.Token > d.lastObs
		if !ok {
			d.termErrs++
		}
		d.lastObs = max(d.lastObs, t.Token)
		d.obsKey = t.Key
		var notes []string
		if !ok {
			notes = append(notes, "VIOLATION: this term token is not above the previous one")
		}
		d.con.Block(time.Now(), fmt.Sprintf("observer: %s leads (term %#x)", t.Value, t.Token), notes...)
		d.mu.Broadcast()
		d.mu.Unlock()
	}
}

// round kills the leader, reports the failover and brings the killed
// candidate back.
func (d *electionDemo) round(ctx context.Context, wg *sync.WaitGroup, observer *zklock.Session, n int, waitFor time.Duration) error {
	d.mu.Lock()
	old, term, inc := d.leader, d.term, d.live[d.leader]
	d.mu.Unlock()

	how := "its network goes silent, as if its process had died"
	if d.cfg.kill == killClose {
		how = "it closes its Session, as on a clean exit"
	}
	killAt := time.Now()
	d.con.Event(killAt, "ROUND %d: killing the leader %s (term %#x): %s", n, old.name, term, how)
	d.mu.Lock()
	d.killed, d.lossAt, d.killLate = old, time.Time{}, false
	d.mu.Unlock()
	switch d.cfg.kill {
	case killCrash:
		old.net.Blackhole()
	case killClose:
		// A process exiting cleanly stops acting as leader before it
		// closes its Session.
		d.leading.CompareAndSwap(int32(old.id), 0)
		inc.s.Close()
	}

	wctx, cancel := context.WithTimeoutCause(ctx, waitFor, errors.New("timed out"))
	defer cancel()
	var next *candidate
	err := d.mu.WaitUntil(wctx, "the next leader", func() bool {
		if d.leader == old || !d.wonAt.After(killAt) || d.obsKey != d.live[d.leader].e.Key() {
			return false
		}
		next = d.leader
		return true
	})
	if err != nil {
		return err
	}
	if d.cfg.kill == killCrash {
		// Normally long since fired; waited for so a late one is reported.
		if err := d.mu.WaitUntil(wctx, old.name+"'s loss signal", func() bool { return !d.lossAt.IsZero() }); err != nil {
			return err
		}
	}

	d.mu.Lock()
	r := round{n: n, old: old.name, new: next.name, killAt: killAt, lossAt: d.lossAt, wonAt: d.wonAt,
		lateLoss: d.killLate}
	d.rounds = append(d.rounds, r)
	d.killed = nil
	d.mu.Unlock()
	d.con.Block(time.Now(), fmt.Sprintf("failover %d: %s -> %s took %v", n, r.old, r.new, demo.Ms(r.wonAt.Sub(r.killAt))), r.describe(d.con.Since)...)

	switch d.cfg.kill {
	case killCrash:
		old.net.Heal()
		d.con.Event(time.Now(), "healing %s's network: its Session opens a new ZooKeeper session and it campaigns again", old.name)
	case killClose:
		d.con.Event(time.Now(), "restarting %s", old.name)
		if err := d.start(ctx, wg, old); err != nil {
			return err
		}
	}
	if err := d.waitQueue(wctx, observer, candidates, waitFor); err != nil {
		return err
	}
	return d.showQueue(ctx, observer)
}

// describe lists a round's timeline relative to the kill.
func (r round) describe(since func(time.Time) string) []string {
	lines := []string{fmt.Sprintf("killed at %s", since(r.killAt))}
	if !r.lossAt.IsZero() {
		l := fmt.Sprintf("%s's own loss signal at %s, %v after the kill", r.old, since(r.lossAt), demo.Ms(r.lossAt.Sub(r.killAt)))
		if r.lossAt.Before(r.wonAt) {
			l += fmt.Sprintf(", %v before the next leader", demo.Ms(r.wonAt.Sub(r.lossAt)))
		}
		lines = append(lines, l)
	}
	lines = append(lines, fmt.Sprintf("%s's Campaign returned at %s", r.new, since(r.wonAt)))
	if r.lateLoss {
		lines = append(lines, "VIOLATION: the old leader's loss signal came after the next leader started")
	}
	return lines
}

// waitQueue waits until n candidates are queued on the election path, as
// the observer's Session sees it. Polling is enough here: it only paces
// the demo.
func (d *electionDemo) waitQueue(ctx context.Context, observer *zklock.Session, n int, waitFor time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, waitFor)
	defer cancel()
	for {
		names, err := observer.Children(ctx, d.cfg.path)
		if err != nil && !errors.Is(err, zk.ErrNoNode) {
			return fmt.Errorf("waiting for %d candidates: %w", n, err)
		}
		if len(names) >= n {
			return nil
		}
		if !demo.Sleep(ctx, 50*time.Millisecond) {
			return fmt.Errorf("waiting for %d candidates: %w", n, ctx.Err())
		}
	}
}

// showQueue prints the candidates in queue order, leader first.
func (d *electionDemo) showQueue(ctx context.Context, observer *zklock.Session) error {
	who, err := demo.Queue(ctx, observer, d.cfg.path)
	if err != nil {
		return err
	}
	if len(who) > 0 {
		who[0] += " (leader)"
	}
	d.con.Event(time.Now(), "queue: %s", strings.Join(who, ", "))
	return nil
}

// summary prints the results and returns an error if any safety check
// failed.
func (d *electionDemo) summary() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.con
	c.Note("")
	c.Note("summary (kill mode %q)", d.cfg.kill)
	for _, r := range d.rounds {
		loss := ""
		if d.cfg.kill == killCrash && !r.lossAt.IsZero() {
			loss = fmt.Sprintf("; own loss signal %v after the kill", demo.Ms(r.lossAt.Sub(r.killAt)))
		}
		c.Note("  round %d: %s -> %s, failover %v%s", r.n, r.old, r.new, demo.Ms(r.wonAt.Sub(r.killAt)), loss)
	}
	c.Note("leader changes observed: %d; term tokens strictly increasing: %s", d.observed, demo.YesNo(d.termErrs == 0))
	c.Note("overlapping leaderships observed: %d", d.overlaps)
	violations := d.overlaps + d.termErrs + d.lateLoss
	c.Note("violations: %d", violations)
	if violations > 0 {
		return fmt.Errorf("%d safety violation(s) observed", violations)
	}
	return nil
}
