package zklock

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zklock/zklock/internal/connguard"
	"github.com/zklock/zklock/internal/lease"
	"github.com/zklock/zklock/internal/wiretap"
)

// generation is one ZooKeeper session. The go-zookeeper connection is never
// reused for the next session: a request queued on it can then never land
// in a session it was not meant for.
type generation struct {
	id     uint64
	conn   *zk.Conn
	events <-chan zk.Event // closed by go-zookeeper once its goroutines exit
	tap    *wiretap.Tap
	guard  *connguard.Guard // every socket of g
	margin time.Duration
	lease  *lease.Lease // set by markReady, before the generation is published

	// What its requests need (request.go): who runs them, how they retry.
	own    *owner
	policy Backoff
	clk    clock

	inbox  *mailbox[inboxEvent] // to tell run the deadline was seen passed
	doomed atomic.Bool          // the deadline was seen passed: g must end

	done chan struct{} // closed when the ZooKeeper session ends for us
	err  error         // why; written before done is closed

	hookMu   sync.Mutex // guards hooks, nextHook, hooksRun
	hooks    map[int]func(error)
	nextHook int
	hooksRun bool

	// Written by run before the generation is published, read-only after.
	sessionID int64

	ready       bool // run only
	zxidChecked bool // set by markReady, before the probe starts
}

func (g *generation) ended() bool {
	select {
	case <-g.done:
		return true
	default:
		return false
	}
}

// change is a state change of g to st.
func (g *generation) change(st State, err error) StateChange {
	c := StateChange{State: st, SessionID: g.sessionID, Generation: g.id, Err: err}
	if st == StateConnected {
		c.Timeout, c.Server = g.tap.Timeout(), g.conn.Server()
	}
	return c
}

// marginFits reports a loss margin (0: the default, T/10) over half the
// negotiated timeout t: the deadline would leave holds too little of the
// session, and the margin is never cut down silently.
func marginFits(margin, t time.Duration) error {
	if margin > t/2 {
		return errorf("%w: loss margin %v is over half the negotiated session timeout %v; ask for a session timeout of at least %v, or a smaller margin",
			ErrInvalidOption, margin, t, 2*margin)
	}
	return nil
}

// onEnd registers f to run when g ends, with g's cause, before the server
// is asked to end the ZooKeeper session: a hold made under g has ended
// before anyone else can be granted its place. It returns a function that
// unregisters f, or false if g has already ended (f is then not called).
// f must not block.
func (g *generation) onEnd(f func(error)) (unregister func(), ok bool) {
	g.hookMu.Lock()
	defer g.hookMu.Unlock()
	if g.hooksRun {
		return nil, false
	}
	if g.hooks == nil {
		g.hooks = make(map[int]func(error))
	}
	id := g.nextHook
	g.nextHook++
	g.hooks[id] = f
	return func() {
		g.hookMu.Lock()
		defer g.hookMu.Unlock()
		delete(g.hooks, id)
	}, true
}

func (g *generation) runHooks() {
	g.hookMu.Lock()
	hooks := g.hooks
	g.hooks, g.hooksRun = nil, true
	g.hookMu.Unlock()
	for _, f := range hooks {
		f(g.err)
	}
}

// pastDeadline reports whether g's safe loss deadline has passed. It
// compares the clock itself, so a process resuming from a pause longer
// than the deadline learns of the loss on its first check, before the
// timer that ends g has run; g is then doomed, and run ends it.
func (g *generation) pastDeadline() bool {
	if g.doomed.Load() || g.ended() {
		return true
	}
	if time.Now().Before(g.lossDeadline()) {
		return false
	}
	if !g.doomed.Swap(true) {
		g.inbox.push(inboxEvent{gen: g.id, doomed: true})
	}
	return true
}

// errPastDeadline is why a generation ends at its loss deadline.
var errPastDeadline = errorf("%w: %w", ErrSessionExpired, ErrLossDeadline)

// lossDeadline is the safe loss deadline: the leader cannot expire the
// session before the lease's proof plus T minus the lease's allowance (the
// derivation is in the internal/lease package doc). The margin leaves the
// holder time to stop.
func (g *generation) lossDeadline() time.Time {
	t := g.tap.Timeout()
	m := g.margin
	if m == 0 {
		m = t / 10
	}
	return g.lease.Basis().Add(t - lease.Allowance(t) - m)
}

// generations opens the Session's ZooKeeper sessions one after another:
// it turns go-zookeeper's events into state changes, proves the current
// session alive at the leader, ends it on expiry or at the loss deadline,
// and opens the next with backoff.
type generations struct {
	cfg     *sessionConfig
	servers []string
	clk     clock
	own     *owner
	states  *states
	closing <-chan struct{} // closed by Session.Close

	inbox   *mailbox[inboxEvent]
	seq     atomic.Uint64
	lastErr atomic.Pointer[error]
	highest atomic.Int64 // the largest zxid seen in ZooKeeper sessions that ended

	mu        sync.Mutex // guards cur, ready, published, firstErr, pastOps
	cur       *generation
	ready     chan struct{}    // closed once cur is set
	published bool             // a generation has been published
	firstErr  error            // what Connect refuses in the first one published
	pastOps   map[int32]uint64 // requests sent in ZooKeeper sessions that ended, by opcode
}

type inboxEvent struct {
	gen    uint64
	state  zk.State
	auth   bool // an authentication attempt finished, with err
	err    error
	doomed bool // a check saw the loss deadline passed
}

func newGenerations(cfg *sessionConfig, servers []string, clk clock, own *owner, st *states, closing <-chan struct{}) *generations {
	return &generations{
		cfg: cfg, servers: servers, clk: clk, own: own, states: st, closing: closing,
		inbox: newMailbox[inboxEvent](),
		ready: make(chan struct{}),
	}
}

// now returns the current generation, nil while there is none.
func (gs *generations) now() *generation {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	return gs.cur
}

// current waits for a usable ZooKeeper session.
func (gs *generations) current(ctx context.Context) (*generation, error) {
	for {
		select {
		case <-gs.closing:
			return nil, ErrSessionClosed
		default:
		}
		gs.mu.Lock()
		g, ready := gs.cur, gs.ready
		gs.mu.Unlock()
		if g != nil && !g.ended() {
			return g, nil
		}
		// None yet, or ended but not yet replaced: wait for the next one.
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-gs.closing:
			return nil, ErrSessionClosed
		}
	}
}

// requests counts the requests sent in every ZooKeeper session so far, by
// opcode.
func (gs *generations) requests() map[int32]uint64 {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	out := make(map[int32]uint64, len(gs.pastOps))
	for op, n := range gs.pastOps {
		out[op] = n
	}
	if gs.cur != nil {
		for op, n := range gs.cur.tap.Ops() {
			out[op] += n
		}
	}
	return out
}

// connectErr is why Connect must refuse the first ZooKeeper session, once
// it is ready.
func (gs *generations) connectErr() error {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	return gs.firstErr
}

// suspended reports whether the connection of the current ZooKeeper
// session is down.
func (gs *generations) suspended() bool { return gs.states.current() == StateSuspended }

// lastError is the latest connection failure, for Connect's error.
func (gs *generations) lastError() error {
	if p := gs.lastErr.Load(); p != nil {
		return *p
	}
	return errors.New("none yet")
}

func (gs *generations) setLastErr(err error) { gs.lastErr.Store(&err) }

// open starts a go-zookeeper connection for a new ZooKeeper session. It does
// no I/O itself: go-zookeeper dials in its own goroutine.
func (gs *generations) open() (*generation, error) {
	id := gs.seq.Add(1)
	g := &generation{
		id: id, tap: wiretap.New(nil), margin: gs.cfg.margin,
		guard: connguard.New(handshakeBudget(gs.cfg.timeout, len(gs.servers))),
		own:   gs.own, policy: gs.cfg.backoff, clk: gs.clk,
		inbox: gs.inbox, done: make(chan struct{}),
	}
	// Names are resolved here, by the dialer, at each attempt: a name that
	// does not resolve costs one failed dial, and a host that moved is
	// found at its new address.
	dial := func(network, addr string, timeout time.Duration) (net.Conn, error) {
		if g.ended() {
			return nil, connguard.ErrClosed
		}
		c, err := gs.cfg.dialer(network, addr, timeout)
		if err != nil {
			gs.setLastErr(errorf("dial %s: %w", addr, err))
			gs.cfg.logger.Debug("zklock: dial failed", "server", addr, "err", err)
			return nil, err
		}
		return g.guard.Wrap(g.tap.Wrap(c))
	}
	// go-zookeeper calls this from its connection goroutine: it must not
	// block, so it only queues (go-zookeeper's own channel drops events).
	onEvent := func(ev zk.Event) {
		if ev.Type == zk.EventSession {
			gs.inbox.push(inboxEvent{gen: id, state: ev.State})
		}
	}
	conn, events, err := zk.Connect(gs.servers, gs.cfg.timeout,
		zk.WithDialer(dial), zk.WithHostProvider(&connguard.Hosts{}), zk.WithEventCallback(onEvent),
		zk.WithLogger(g.tap.Logger(zkLogger{gs})), zk.WithLogInfo(false))
	if err != nil {
		return nil, errorf("zklock: %w", err)
	}
	g.conn, g.events = conn, events
	return g, nil
}

// run owns the generations, from g on, until the Session closes.
func (gs *generations) run(g *generation) {
	var expiry, heal timer
	defer expiry.stop()
	defer heal.stop()
	bo := gs.cfg.backoff.newBackOff(gs.clk)

	endAndHeal := func(err error) {
		gs.end(g, err)
		g = nil
		expiry.stop()
		heal.set(bo.NextBackOff())
	}
	for {
		select {
		case <-gs.closing:
			gs.end(g, ErrSessionClosed)
			return

		case <-gs.inbox.wakeup():
			for _, e := range gs.inbox.drain() {
				if g == nil || e.gen != g.id {
					continue // from a generation already ended
				}
				switch {
				case e.doomed:
					gs.cfg.logger.Warn("zklock: safe loss deadline seen passed; presuming the session expired",
						"session", fmt.Sprintf("0x%x", g.sessionID))
					endAndHeal(errPastDeadline)
				case e.auth && e.err != nil:
					gs.cfg.logger.Warn("zklock: authentication failed; opening a new session", "err", e.err)
					endAndHeal(errorf("%w: authentication: %w", ErrSessionExpired, e.err))
				case e.auth:
					gs.markReady(g)
					bo.Reset()
					expiry.set(time.Until(g.lossDeadline()))
				case e.state == zk.StateHasSession && !g.ready:
					gs.authenticate(g)
				case e.state == zk.StateHasSession:
					gs.states.transition(g.change(StateConnected, nil))
				case e.state == zk.StateDisconnected && g.ready:
					gs.states.transition(g.change(StateSuspended, nil))
				case e.state == zk.StateExpired:
					endAndHeal(ErrSessionExpired)
				case e.state == zk.StateAuthFailed:
					endAndHeal(errorf("%w: authentication failed", ErrSessionExpired))
				}
			}

		case <-expiry.c:
			if dl := g.lossDeadline(); !g.doomed.Load() && time.Now().Before(dl) {
				expiry.set(time.Until(dl))
				continue
			}
			gs.cfg.logger.Warn("zklock: no proof from the ZooKeeper leader before the safe loss deadline; presuming the session expired",
				"session", fmt.Sprintf("0x%x", g.sessionID))
			endAndHeal(errPastDeadline)

		case <-heal.c:
			next, err := gs.open()
			if err != nil {
				gs.setLastErr(err)
				gs.cfg.logger.Warn("zklock: opening a session failed; retrying", "err", err)
				heal.set(bo.NextBackOff())
				continue
			}
			g = next
		}
	}
}

// authenticate adds the configured credentials before the generation is
// published, so no request of ours runs unauthenticated. go-zookeeper
// resends them on reconnects within the session.
func (gs *generations) authenticate(g *generation) {
	// Owner: the Session. Ends when AddAuth and Sync return, at the latest
	// when the connection is closed; joined by Close. Refused only while
	// closing.
	gs.own.spawn(func() {
		var err error
		for _, cred := range gs.cfg.auth {
			if err = g.conn.AddAuth("digest", []byte(cred)); err != nil {
				break
			}
		}
		if err == nil {
			// The answer to a sync carries the ensemble's zxid, which
			// markReady compares with earlier sessions' before anything can
			// be granted in this one. If it fails, the lease's first proof
			// does the comparison.
			g.conn.Sync("/")
		}
		gs.inbox.push(inboxEvent{gen: g.id, auth: true, err: err})
	})
}

// markReady publishes g once it is established and authenticated, and
// starts proving it current at the leader.
func (gs *generations) markReady(g *generation) {
	g.ready = true
	g.sessionID = g.tap.SessionID()
	g.lease = lease.New(g.tap.Timeout(), g.tap.ConnectSent())
	checked, zerr := gs.checkZxid(g)
	g.zxidChecked = checked
	// Owner: the Session. Ends with g or at Close; joined by Close.
	gs.own.spawn(func() { gs.probe(g) })
	err := marginFits(gs.cfg.margin, g.tap.Timeout())
	if err != nil {
		// Connect refuses the first session; a later one, whose server
		// granted less, keeps the margin whole (holds end sooner) and says so.
		gs.cfg.logger.Error("zklock: the loss margin does not fit the negotiated session timeout", "err", err)
	}
	gs.mu.Lock()
	gs.cur = g
	if !gs.published {
		gs.published, gs.firstErr = true, err
	}
	// The state first: Connect returns once ready is closed, and a
	// Subscribe right after it must find the session connected.
	gs.states.transition(g.change(StateConnected, errors.Join(err, zerr)))
	close(gs.ready)
	gs.mu.Unlock()
}

// probe sends a sync every lease.Interval, without waiting for answers,
// to prove g's session current at the ZooKeeper leader (see
// internal/lease); answered pings prove nothing there.
func (gs *generations) probe(g *generation) {
	type answer struct {
		at  time.Time // when the answer was read
		err error
	}
	type probe struct {
		sent time.Time
		res  chan answer // capacity 1: never blocks the sender
	}
	every := lease.Interval(g.tap.Timeout())
	// Syncs held up longer than the timeout can no longer matter: the
	// deadline will have passed. Bounding them bounds the goroutines.
	maxPending := int(g.tap.Timeout()/every) + 1
	tick := time.NewTicker(every)
	defer tick.Stop()
	var pending []probe
	checked := g.zxidChecked // the ensemble's zxid was compared with earlier sessions'
	for {
		var next <-chan answer
		if len(pending) > 0 {
			next = pending[0].res
		}
		select {
		case <-tick.C:
			if len(pending) >= maxPending {
				continue
			}
			p := probe{time.Now(), make(chan answer, 1)}
			// Owner: the Session; ends when go-zookeeper answers or fails
			// the sync; joined by Close.
			err := gs.own.spawn(func() {
				_, err := g.conn.Sync("/")
				p.res <- answer{time.Now(), err}
			})
			if err != nil { // closed
				return
			}
			pending = append(pending, p)
		case a := <-next:
			g.lease.Probed(pending[0].sent, a.at, a.err == nil)
			pending = pending[1:]
			if !checked && a.err == nil {
				var err error
				if checked, err = gs.checkZxid(g); err != nil {
					gs.states.transition(g.change(StateConnected, err))
				}
			}
		case <-g.done:
			return
		case <-gs.closing:
			return
		}
	}
}

// checkZxid compares the zxid of g's ensemble, read off the answer to a
// sync, with the largest seen in earlier ZooKeeper sessions. Zxids only
// grow, so a smaller one means the ensemble lost transactions (it restarted
// with empty data or from an older snapshot), and fencing tokens, which are
// zxids, went backwards with them.
//
// It reports whether the comparison could be made (a reply carried a zxid),
// and the regression, if any, which it also logs.
func (gs *generations) checkZxid(g *generation) (bool, error) {
	now, before := g.tap.MaxZxid(), gs.highest.Load()
	if now == 0 {
		return false, nil
	}
	if now >= before {
		return true, nil
	}
	err := errorf("%w: the ensemble is at zxid 0x%x, below 0x%x seen before", ErrZxidRegression, now, before)
	gs.cfg.logger.Error("zklock: the ZooKeeper ensemble lost data; fencing tokens went backwards",
		"session", fmt.Sprintf("0x%x", g.sessionID), "err", err)
	return true, err
}

// end closes g's done channel, ends what was held under g (its onEnd
// hooks), and only then closes its connection. Closing the connection sends
// ZooKeeper a close request when it can, which deletes the session's
// ephemeral nodes at once.
func (gs *generations) end(g *generation, err error) {
	closed := errors.Is(err, ErrSessionClosed)
	if g == nil {
		if closed {
			gs.states.transition(StateChange{State: StateClosed, Err: err})
		}
		return
	}
	g.err = err
	close(g.done)
	g.runHooks()
	if z := g.tap.MaxZxid(); z > gs.highest.Load() {
		gs.highest.Store(z) // only run writes it
	}

	gs.mu.Lock()
	if gs.cur == g {
		gs.cur = nil
		gs.ready = make(chan struct{})
	}
	// Counted here from now on, in the same step as it stops being current.
	if gs.pastOps == nil {
		gs.pastOps = make(map[int32]uint64)
	}
	for op, n := range g.tap.Ops() {
		gs.pastOps[op] += n
	}
	gs.mu.Unlock()
	// go-zookeeper's Close sends the close request and waits for its answer
	// for at most a second; then the guard closes every socket and refuses
	// new ones, so whatever go-zookeeper is blocked in returns, and it
	// closes its event channel when its goroutines are done.
	shut := func() {
		g.conn.Close()
		g.guard.Close()
		for range g.events {
		}
	}
	if closed {
		shut()
		gs.states.transition(g.change(StateClosed, err))
		return
	}
	if g.ready {
		gs.states.transition(g.change(StateExpired, err))
	}
	// Owner: the Session. Ends when go-zookeeper has shut down; joined by
	// Close. While closing, the shutdown runs here instead.
	if gs.own.spawn(shut) != nil {
		shut()
	}
}

// handshakeBudget is how long a server may take to answer a connect
// request: the Java client allows T divided by the number of servers; half
// that lets a full round through servers that accept and never answer end
// before T/2, inside the time a hold survives a lost connection (about
// 0.675 T), so one healthy server is reached in time.
func handshakeBudget(t time.Duration, servers int) time.Duration {
	// The floor keeps a tiny requested timeout, which the server raises to
	// its minimum anyway, from leaving no time to answer at all.
	return max(t/time.Duration(2*max(servers, 1)), minHandshake)
}

// minHandshake is the least time a server is given to answer a connect
// request.
const minHandshake = 250 * time.Millisecond

// zkLogger passes go-zookeeper's messages to the Session's logger and keeps
// the latest failure for Connect's error.
type zkLogger struct{ gs *generations }

func (l zkLogger) Printf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	// A failed dial is recorded by the dialer, with its error's type (a
	// *net.DNSError says a name did not resolve); go-zookeeper's message
	// about it would only flatten it.
	if strings.Contains(msg, "fail") && !strings.HasPrefix(msg, "failed to connect to ") {
		l.gs.setLastErr(errors.New(msg))
	}
	l.gs.cfg.logger.Debug(msg, "source", "go-zookeeper")
}
