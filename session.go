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

// State is the state of a Session.
type State int

// The states of a Session. A Session starts Connected (Connect returns only
// then) and ends Closed; in between it moves between Connected, Suspended
// and Expired as connections and ZooKeeper sessions come and go.
const (
	// StateConnected: a ZooKeeper session is established and a server
	// answers.
	StateConnected State = iota + 1
	// StateSuspended: the connection is lost but the ZooKeeper session may
	// still be alive; holds survive until the loss deadline.
	StateSuspended
	// StateExpired: the ZooKeeper session is over, every hold made under it
	// has ended, and a new ZooKeeper session is being opened.
	StateExpired
	// StateClosed: Close was called. Final.
	StateClosed
)

func (s State) String() string {
	switch s {
	case StateConnected:
		return "connected"
	case StateSuspended:
		return "suspended"
	case StateExpired:
		return "expired"
	case StateClosed:
		return "closed"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// StateChange is one transition of a Session.
type StateChange struct {
	State State
	// SessionID is the ZooKeeper session the transition concerns: for
	// StateExpired and StateClosed, the one that ended.
	SessionID int64
	// Generation counts the ZooKeeper sessions the Session has established;
	// it grows by one with each new one.
	Generation uint64
	// Time is when the Session observed the transition.
	Time time.Time
	// Err says why a ZooKeeper session ended (StateExpired, StateClosed).
	Err error
}

func (c StateChange) String() string {
	s := fmt.Sprintf("%s session=0x%x generation=%d", c.State, c.SessionID, c.Generation)
	if c.Err != nil {
		s += ": " + c.Err.Error()
	}
	return s
}

// Session is a managed ZooKeeper session: it reconnects after a lost
// connection, opens a new ZooKeeper session after expiry, and tells recipes
// when a hold can no longer be trusted. It is safe for concurrent use.
//
// A Session lives until Close, whatever happens to the connection.
type Session struct {
	cfg     sessionConfig
	servers []string
	clk     clock

	mu     sync.Mutex // guards gen, ready, last, subs, closed
	gen    *generation
	ready  chan struct{} // closed once gen is set
	last   StateChange
	subs   map[*Subscription]struct{}
	closed bool // no goroutine may be added to wg once set

	inboxMu sync.Mutex // guards inbox
	inbox   []inboxEvent
	wake    chan struct{} // capacity 1: a pending inbox

	genSeq  atomic.Uint64
	lastErr atomic.Pointer[error]
	newID   func() string // protected-create ids; replaced in tests

	dutyMu   sync.Mutex // guards duties
	duties   []duty
	dutyWake chan struct{} // capacity 1: duties were added

	life       context.Context // ends at Close; bounds the Session's own work
	cancelLife context.CancelFunc

	closing   chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup // run, connection closers, in-flight requests
}

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
// session before the lease's proof plus T minus the lease's allowance (see
// internal/lease). The margin leaves the holder time to stop.
func (g *generation) lossDeadline() time.Time {
	t := g.tap.Timeout()
	m := g.margin
	if m == 0 {
		m = t / 10
	}
	m = min(m, t/2)
	return g.lease.Basis().Add(t - lease.Allowance(t) - m)
}

type inboxEvent struct {
	gen   uint64
	state zk.State
	auth  bool // an authentication attempt finished, with err
	err   error
}

// Connect establishes a ZooKeeper session with one of servers ("host:port")
// and returns once the session is usable. ctx bounds only the connect; the
// Session then lives until Close.
//
// If no server answers before ctx ends, Connect returns an error that
// matches ctx.Err() and carries the last connection error.
func Connect(ctx context.Context, servers []string, opts ...SessionOption) (*Session, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if err := errors.Join(append([]error{validateServers(servers)}, cfg.errs...)...); err != nil {
		return nil, err
	}
	s := &Session{
		cfg:      cfg,
		servers:  append([]string(nil), servers...),
		clk:      realClock{},
		ready:    make(chan struct{}),
		subs:     make(map[*Subscription]struct{}),
		wake:     make(chan struct{}, 1),
		closing:  make(chan struct{}),
		newID:    newID,
		dutyWake: make(chan struct{}, 1),
	}
	s.life, s.cancelLife = context.WithCancel(context.Background())
	ready := s.ready
	g, err := s.open()
	if err != nil {
		return nil, err
	}
	// Owners: the Session. Stopped by Close (closing), joined by Close (wg).
	s.wg.Add(2)
	go s.run(g)
	go s.clean()
	select {
	case <-ready:
		return s, nil
	case <-ctx.Done():
		s.Close()
		last := errors.New("none yet")
		if p := s.lastErr.Load(); p != nil {
			last = *p
		}
		return nil, fmt.Errorf("zklock: connect to %s: %w (last connection error: %w)",
			strings.Join(servers, ","), ctx.Err(), last)
	}
}

// open starts a go-zookeeper connection for a new ZooKeeper session. It does
// no I/O itself: go-zookeeper dials in its own goroutine.
func (s *Session) open() (*generation, error) {
	id := s.genSeq.Add(1)
	g := &generation{id: id, tap: wiretap.New(nil), margin: s.cfg.margin, done: make(chan struct{})}
	dial := func(network, addr string, timeout time.Duration) (net.Conn, error) {
		c, err := s.cfg.dialer(network, addr, timeout)
		if err != nil {
			s.setLastErr(fmt.Errorf("dial %s: %w", addr, err))
			return nil, err
		}
		return g.tap.Wrap(c), nil
	}
	// go-zookeeper calls this from its connection goroutine: it must not
	// block, so it only queues (go-zookeeper's own channel drops events).
	onEvent := func(ev zk.Event) {
		if ev.Type == zk.EventSession {
			s.post(inboxEvent{gen: id, state: ev.State})
		}
	}
	conn, events, err := zk.Connect(s.servers, s.cfg.timeout,
		zk.WithDialer(dial), zk.WithEventCallback(onEvent),
		zk.WithLogger(zkLogger{s}), zk.WithLogInfo(false))
	if err != nil {
		return nil, fmt.Errorf("zklock: %w", err)
	}
	g.conn, g.events = conn, events
	return g, nil
}

func (s *Session) post(e inboxEvent) {
	s.inboxMu.Lock()
	s.inbox = append(s.inbox, e)
	s.inboxMu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Session) drain() []inboxEvent {
	s.inboxMu.Lock()
	defer s.inboxMu.Unlock()
	evs := s.inbox
	s.inbox = nil
	return evs
}

func (s *Session) setLastErr(err error) { s.lastErr.Store(&err) }

// run owns the generations: it turns go-zookeeper's events into state
// changes, ends a generation on expiry or at the loss deadline, and opens
// the next one with backoff.
func (s *Session) run(g *generation) {
	defer s.wg.Done()
	var lease, heal timer
	defer lease.stop()
	defer heal.stop()
	bo := s.cfg.backoff.newBackOff(s.clk)

	endAndHeal := func(err error) {
		s.end(g, err)
		g = nil
		lease.stop()
		heal.set(bo.NextBackOff())
	}
	for {
		select {
		case <-s.closing:
			s.end(g, ErrSessionClosed)
			return

		case <-s.wake:
			for _, e := range s.drain() {
				if g == nil || e.gen != g.id {
					continue // from a generation already ended
				}
				switch {
				case e.auth && e.err != nil:
					s.cfg.logger.Warn("zklock: authentication failed; opening a new session", "err", e.err)
					endAndHeal(fmt.Errorf("%w: authentication: %w", ErrSessionExpired, e.err))
				case e.auth:
					s.markReady(g)
					bo.Reset()
					lease.set(time.Until(g.lossDeadline()))
				case e.state == zk.StateHasSession && !g.ready:
					s.authenticate(g)
				case e.state == zk.StateHasSession:
					s.transition(g, StateConnected, nil)
				case e.state == zk.StateDisconnected && g.ready:
					s.transition(g, StateSuspended, nil)
				case e.state == zk.StateExpired:
					endAndHeal(ErrSessionExpired)
				case e.state == zk.StateAuthFailed:
					endAndHeal(fmt.Errorf("%w: authentication failed", ErrSessionExpired))
				}
			}

		case <-lease.c:
			if dl := g.lossDeadline(); time.Now().Before(dl) {
				lease.set(time.Until(dl))
				continue
			}
			s.cfg.logger.Warn("zklock: no proof from the ZooKeeper leader before the safe loss deadline; presuming the session expired",
				"session", fmt.Sprintf("0x%x", g.sessionID))
			endAndHeal(fmt.Errorf("%w: %w", ErrSessionExpired, ErrLossDeadline))

		case <-heal.c:
			next, err := s.open()
			if err != nil { // inputs were validated; only a bug gets here
				s.cfg.logger.Error("zklock: reopening session", "err", err)
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
func (s *Session) authenticate(g *generation) {
	if len(s.cfg.auth) == 0 {
		s.post(inboxEvent{gen: g.id, auth: true})
		return
	}
	// Owner: run. It ends when AddAuth returns, at the latest when the
	// connection is closed; joined by Close (wg).
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		var err error
		for _, cred := range s.cfg.auth {
			if err = g.conn.AddAuth("digest", []byte(cred)); err != nil {
				break
			}
		}
		s.post(inboxEvent{gen: g.id, auth: true, err: err})
	}()
}

func (s *Session) markReady(g *generation) {
	g.ready = true
	g.sessionID = g.tap.SessionID()
	g.lease = lease.New(g.tap.Timeout(), g.tap.ConnectSent())
	// Owner: run, which is itself joined by Close. Ends with g or at Close;
	// joined by Close (wg).
	s.wg.Add(1)
	go s.probe(g)
	s.mu.Lock()
	s.gen = g
	close(s.ready)
	s.mu.Unlock()
	s.transition(g, StateConnected, nil)
}

// probe sends a sync every lease.Interval, without waiting for answers,
// to prove g's session current at the ZooKeeper leader (see
// internal/lease); answered pings prove nothing there.
func (s *Session) probe(g *generation) {
	defer s.wg.Done()
	type probe struct {
		sent time.Time
		res  <-chan outcome[time.Time] // when the answer was read
	}
	every := lease.Interval(g.tap.Timeout())
	// Syncs held up longer than the timeout can no longer matter: the
	// deadline will have passed. Bounding them bounds the goroutines.
	maxPending := int(g.tap.Timeout()/every) + 1
	tick := time.NewTicker(every)
	defer tick.Stop()
	var pending []probe
	for {
		var next <-chan outcome[time.Time]
		if len(pending) > 0 {
			next = pending[0].res
		}
		select {
		case <-tick.C:
			if len(pending) >= maxPending {
				continue
			}
			sent := time.Now()
			res, err := start(s, g, func(c *zk.Conn) (time.Time, error) {
				_, err := c.Sync("/")
				return time.Now(), err
			})
			if err != nil { // closed
				return
			}
			pending = append(pending, probe{sent, res})
		case o := <-next:
			g.lease.Probed(pending[0].sent, o.v, o.err == nil)
			pending = pending[1:]
		case <-g.done:
			return
		case <-s.closing:
			return
		}
	}
}

// end closes g's done channel and its connection. Closing the connection
// sends ZooKeeper a close request when it can, which deletes the session's
// ephemeral nodes at once.
func (s *Session) end(g *generation, err error) {
	if g == nil {
		if errors.Is(err, ErrSessionClosed) {
			s.transition(nil, StateClosed, err)
		}
		return
	}
	g.err = err
	close(g.done)
	s.mu.Lock()
	if s.gen == g {
		s.gen = nil
		s.ready = make(chan struct{})
	}
	s.mu.Unlock()
	shut := func() {
		g.conn.Close()
		for range g.events { // go-zookeeper closes it when its goroutines are done
		}
	}
	if errors.Is(err, ErrSessionClosed) {
		shut()
		s.transition(g, StateClosed, err)
		return
	}
	if g.ready {
		s.transition(g, StateExpired, err)
	}
	// Owner: run. Ends when go-zookeeper has shut down; joined by Close (wg).
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		shut()
	}()
}

func (s *Session) transition(g *generation, st State, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last.State == st && st != StateExpired {
		return
	}
	c := StateChange{State: st, Time: time.Now(), Err: err, SessionID: s.last.SessionID, Generation: s.last.Generation}
	if g != nil {
		c.SessionID, c.Generation = g.sessionID, g.id
	}
	s.last = c
	for sub := range s.subs {
		sub.push(c)
	}
	s.cfg.logger.Info("zklock: session "+st.String(), "session", fmt.Sprintf("0x%x", c.SessionID), "generation", c.Generation, "err", err)
}

// Close ends the Session: it closes the ZooKeeper session, so its ephemeral
// nodes vanish at once, ends every hold, and returns after every goroutine
// the Session started has exited. Close is idempotent and always returns
// nil.
func (s *Session) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.closeOnce.Do(func() {
		close(s.closing)
		s.cancelLife()
	})
	s.wg.Wait()
	return nil
}

// State returns the current state.
func (s *Session) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last.State
}

// SessionID returns the id of the current ZooKeeper session, or 0 while
// there is none (after expiry, before the next one is established).
func (s *Session) SessionID() int64 {
	if g := s.currentNow(); g != nil {
		return g.sessionID
	}
	return 0
}

// Server returns the address of the server the Session is connected to or
// trying, "" while there is no ZooKeeper session.
func (s *Session) Server() string {
	if g := s.currentNow(); g != nil {
		return g.conn.Server()
	}
	return ""
}

// NegotiatedTimeout returns the session timeout the server granted, which
// may differ from the requested one; 0 while there is no ZooKeeper session.
func (s *Session) NegotiatedTimeout() time.Duration {
	if g := s.currentNow(); g != nil {
		return g.tap.Timeout()
	}
	return 0
}

// LossDeadline returns the safe loss deadline of the current ZooKeeper
// session, before which the ZooKeeper leader cannot have expired it, so no
// other client can have been granted a lock this session holds. The
// Session proves the session current at the leader with a sync request
// every T/40 (T the negotiated timeout); the deadline is the send time of
// the latest answered sync, less the longest gap between answers just
// before it, plus T, minus an allowance of T/5 + T/40 for the leader's view
// lagging behind, minus the loss margin (WithLossMargin); see the package
// documentation. While the leader answers, the deadline moves forward; when
// the connection is lost or the leader stalls, it stops. If it passes, the
// Session presumes the ZooKeeper session expired, ends it and every hold
// made under it, and opens a new one. Zero while there is no ZooKeeper
// session.
func (s *Session) LossDeadline() time.Time {
	if g := s.currentNow(); g != nil {
		return g.lossDeadline()
	}
	return time.Time{}
}

func (s *Session) currentNow() *generation {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gen
}

// current waits for a usable ZooKeeper session.
func (s *Session) current(ctx context.Context) (*generation, error) {
	for {
		s.mu.Lock()
		g, ready, closed := s.gen, s.ready, s.closed
		s.mu.Unlock()
		switch {
		case closed:
			return nil, ErrSessionClosed
		case g != nil && !g.ended():
			return g, nil
		case g != nil:
			// Ended but not yet replaced: wait for the next one.
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.closing:
			return nil, ErrSessionClosed
		}
	}
}

// call runs op on g's connection. go-zookeeper's calls take no context, so
// op runs in a goroutine the Session owns; when ctx ends or g ends first,
// call returns and the request completes in the background, at the latest
// when the connection is closed. op's results reach the caller only through
// call's return values, so a request abandoned here can never overwrite the
// results of a later attempt.
func call[T any](ctx context.Context, s *Session, g *generation, op func(*zk.Conn) (T, error)) (T, error) {
	res, err := start(s, g, op)
	if err != nil {
		var zero T
		return zero, err
	}
	return wait(ctx, g, res)
}

// outcome is what an operation started by start returned.
type outcome[T any] struct {
	v   T
	err error
}

// start runs op on g's connection in a goroutine the Session owns, like
// call, and returns at once, so several requests can be in flight together
// (goroutines give no order: a caller that needs one enforces it inside op).
// The channel gets op's outcome; wait takes it.
func start[T any](s *Session, g *generation, op func(*zk.Conn) (T, error)) (<-chan outcome[T], error) {
	res := make(chan outcome[T], 1) // never blocks the goroutine
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrSessionClosed
	}
	s.wg.Add(1)
	s.mu.Unlock()
	// Owner: the Session; ends when go-zookeeper answers or fails the
	// request; joined by Close (wg).
	go func() {
		defer s.wg.Done()
		v, err := op(g.conn)
		res <- outcome[T]{v, err}
	}()
	return res, nil
}

// wait returns the outcome of an operation started on g, unless ctx or g
// ends first.
func wait[T any](ctx context.Context, g *generation, res <-chan outcome[T]) (T, error) {
	var zero T
	select {
	case r := <-res:
		return r.v, r.err
	case <-ctx.Done():
		return zero, ctx.Err()
	case <-g.done:
		return zero, fmt.Errorf("%w: %w", errGenerationEnded, g.err)
	}
}

// do runs op on the current ZooKeeper session, retrying per the backoff
// policy on a lost connection, and on the next ZooKeeper session if the
// current one ends. op must be safe to repeat.
func do[T any](ctx context.Context, s *Session, op func(*zk.Conn) (T, error)) (T, error) {
	var out T
	err := retry(ctx, s.cfg.backoff, s.clk, func(ctx context.Context) error {
		g, err := s.current(ctx)
		if err != nil {
			return permanent(err)
		}
		v, err := call(ctx, s, g, op)
		if err != nil && ctx.Err() == nil && g.ended() && !errors.Is(err, errGenerationEnded) {
			err = fmt.Errorf("%w: %w", errGenerationEnded, err)
		}
		if err == nil {
			out = v
		}
		return err
	})
	return out, err
}

// doOn runs op on generation g, retrying on a lost connection. If g ends,
// it fails with g's cause: whatever op was for is void in a new ZooKeeper
// session.
func doOn[T any](ctx context.Context, s *Session, g *generation, op func(*zk.Conn) (T, error)) (T, error) {
	var out T
	err := retry(ctx, s.cfg.backoff, s.clk, func(ctx context.Context) error {
		v, err := call(ctx, s, g, op)
		if err != nil && g.ended() && ctx.Err() == nil {
			return permanent(g.err)
		}
		if err == nil {
			out = v
		}
		return err
	})
	return out, err
}

// none is the result type of operations that return only an error.
type none = struct{}

// zkLogger passes go-zookeeper's messages to the Session's logger and keeps
// the latest failure for Connect's error.
type zkLogger struct{ s *Session }

func (l zkLogger) Printf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if strings.Contains(msg, "fail") {
		l.s.setLastErr(errors.New(msg))
	}
	l.s.cfg.logger.Debug(msg, "source", "go-zookeeper")
}

// timer is a resettable one-shot timer whose channel is nil when unset, for
// use in a select loop.
type timer struct {
	t *time.Timer
	c <-chan time.Time
}

func (t *timer) set(d time.Duration) {
	t.stop()
	t.t = time.NewTimer(max(d, 0))
	t.c = t.t.C
}

func (t *timer) stop() {
	if t.t != nil {
		t.t.Stop()
	}
	t.t, t.c = nil, nil
}
