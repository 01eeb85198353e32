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
	margin time.Duration
	lease  *lease.Lease // set by markReady, before the generation is published

	// What its requests need (request.go): who runs them, how they retry.
	own    *owner
	policy Backoff
	clk    clock

	done chan struct{} // closed when the ZooKeeper session ends for us
	err  error         // why; written before done is closed

	// Written by run before the generation is published, read-only after.
	sessionID int64

	ready bool // run only
}

func (g *generation) ended() bool {
	select {
	case <-g.done:
		return true
	default:
		return false
	}
}

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
	m = min(m, t/2)
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

	mu    sync.Mutex // guards cur, ready
	cur   *generation
	ready chan struct{} // closed once cur is set
}

type inboxEvent struct {
	gen   uint64
	state zk.State
	auth  bool // an authentication attempt finished, with err
	err   error
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
		own: gs.own, policy: gs.cfg.backoff, clk: gs.clk,
		done: make(chan struct{}),
	}
	dial := func(network, addr string, timeout time.Duration) (net.Conn, error) {
		c, err := gs.cfg.dialer(network, addr, timeout)
		if err != nil {
			gs.setLastErr(fmt.Errorf("dial %s: %w", addr, err))
			return nil, err
		}
		return g.tap.Wrap(c), nil
	}
	// go-zookeeper calls this from its connection goroutine: it must not
	// block, so it only queues (go-zookeeper's own channel drops events).
	onEvent := func(ev zk.Event) {
		if ev.Type == zk.EventSession {
			gs.inbox.push(inboxEvent{gen: id, state: ev.State})
		}
	}
	conn, events, err := zk.Connect(gs.servers, gs.cfg.timeout,
		zk.WithDialer(dial), zk.WithEventCallback(onEvent),
		zk.WithLogger(g.tap.Logger(zkLogger{gs})), zk.WithLogInfo(false))
	if err != nil {
		return nil, fmt.Errorf("zklock: %w", err)
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
				case e.auth && e.err != nil:
					gs.cfg.logger.Warn("zklock: authentication failed; opening a new session", "err", e.err)
					endAndHeal(fmt.Errorf("%w: authentication: %w", ErrSessionExpired, e.err))
				case e.auth:
					gs.markReady(g)
					bo.Reset()
					expiry.set(time.Until(g.lossDeadline()))
				case e.state == zk.StateHasSession && !g.ready:
					gs.authenticate(g)
				case e.state == zk.StateHasSession:
					gs.states.transition(StateConnected, g.sessionID, g.id, nil)
				case e.state == zk.StateDisconnected && g.ready:
					gs.states.transition(StateSuspended, g.sessionID, g.id, nil)
				case e.state == zk.StateExpired:
					endAndHeal(ErrSessionExpired)
				case e.state == zk.StateAuthFailed:
					endAndHeal(fmt.Errorf("%w: authentication failed", ErrSessionExpired))
				}
			}

		case <-expiry.c:
			if dl := g.lossDeadline(); time.Now().Before(dl) {
				expiry.set(time.Until(dl))
				continue
			}
			gs.cfg.logger.Warn("zklock: no proof from the ZooKeeper leader before the safe loss deadline; presuming the session expired",
				"session", fmt.Sprintf("0x%x", g.sessionID))
			endAndHeal(fmt.Errorf("%w: %w", ErrSessionExpired, ErrLossDeadline))

		case <-heal.c:
			next, err := gs.open()
			if err != nil { // inputs were validated; only a bug gets here
				gs.cfg.logger.Error("zklock: reopening session", "err", err)
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
	if len(gs.cfg.auth) == 0 {
		gs.inbox.push(inboxEvent{gen: g.id, auth: true})
		return
	}
	// Owner: the Session. Ends when AddAuth returns, at the latest when the
	// connection is closed; joined by Close. Refused only while closing.
	gs.own.spawn(func() {
		var err error
		for _, cred := range gs.cfg.auth {
			if err = g.conn.AddAuth("digest", []byte(cred)); err != nil {
				break
			}
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
	// Owner: the Session. Ends with g or at Close; joined by Close.
	gs.own.spawn(func() { gs.probe(g) })
	gs.mu.Lock()
	gs.cur = g
	close(gs.ready)
	gs.mu.Unlock()
	gs.states.transition(StateConnected, g.sessionID, g.id, nil)
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
		case <-g.done:
			return
		case <-gs.closing:
			return
		}
	}
}

// end closes g's done channel and its connection. Closing the connection
// sends ZooKeeper a close request when it can, which deletes the session's
// ephemeral nodes at once.
func (gs *generations) end(g *generation, err error) {
	closed := errors.Is(err, ErrSessionClosed)
	if g == nil {
		if closed {
			gs.states.transition(StateClosed, 0, 0, err)
		}
		return
	}
	g.err = err
	close(g.done)
	gs.mu.Lock()
	if gs.cur == g {
		gs.cur = nil
		gs.ready = make(chan struct{})
	}
	gs.mu.Unlock()
	shut := func() {
		g.conn.Close()
		for range g.events { // go-zookeeper closes it when its goroutines are done
		}
	}
	if closed {
		shut()
		gs.states.transition(StateClosed, g.sessionID, g.id, err)
		return
	}
	if g.ready {
		gs.states.transition(StateExpired, g.sessionID, g.id, err)
	}
	// Owner: the Session. Ends when go-zookeeper has shut down; joined by
	// Close. While closing, the shutdown runs here instead.
	if gs.own.spawn(shut) != nil {
		shut()
	}
}

// zkLogger passes go-zookeeper's messages to the Session's logger and keeps
// the latest failure for Connect's error.
type zkLogger struct{ gs *generations }

func (l zkLogger) Printf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if strings.Contains(msg, "fail") {
		l.gs.setLastErr(errors.New(msg))
	}
	l.gs.cfg.logger.Debug(msg, "source", "go-zookeeper")
}
