package zklock

import (
	"context"

	"errors"
	"go.opentelemetry.io/otel/metric"
	"strings"
	"sync"
	"time"
)

// Session is a managed ZooKeeper session: it reconnects after a lost
// connection, opens a new ZooKeeper session after expiry, and tells recipes
// when a hold can no longer be trusted. Build it with Connect; the zero
// value is not usable. It is safe for concurrent use.
//
// A Session lives until Close, whatever happens to the connection.
//
// # Node operations
//
// Create, Get, Set, Delete, Exists, Children and Multi apply the Session's
// chroot (WithChroot) and ACL (WithACL), wait for a usable ZooKeeper
// session, and retry per the backoff policy (WithBackoff) when the
// connection is lost, until their ctx ends. A write whose reply was lost
// is not resent blindly: Create, Set and Delete read the node first and
// resend only when that read proves the write did not happen, and
// otherwise return what it proves or an error wrapping ErrOutcomeUnknown;
// Multi is never resent. Errors wrap go-zookeeper's sentinels
// (zk.ErrNoNode, zk.ErrNoAuth, zk.ErrBadVersion, ...), so errors.Is works on
// them; an error the server decided is returned at once, never retried. An
// invalid path returns an error wrapping ErrInvalidPath without any
// request.
type Session struct {
	cfg     sessionConfig
	clk     clock
	own     owner        // every goroutine the Session starts
	states  *states      // the state and its subscribers
	gens    *generations // the ZooKeeper sessions, one after another
	cleaner *cleaner
	tel     *telemetry
	metrics metric.Registration // unregistered at Close
	newID   func() string       // protected-create ids; replaced in tests

	life       context.Context // ends at Close; bounds the Session's own work
	cancelLife context.CancelFunc
	closing    chan struct{}
	closeOnce  sync.Once
}

// owner starts goroutines and joins them: the one way any part of the
// package starts a goroutine the Session owns, so Close can wait for all.
type owner struct {
	mu     sync.Mutex // guards closed; orders every Add before the final Wait
	closed bool
	wg     sync.WaitGroup
}

// spawn runs f in a goroutine the owner joins, or returns ErrSessionClosed
// once the owner is closing.
func (o *owner) spawn(f func()) error {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return ErrSessionClosed
	}
	o.wg.Add(1)
	o.mu.Unlock()
	go func() {
		defer o.wg.Done()
		f()
	}()
	return nil
}

// refuse makes every later spawn fail.
func (o *owner) refuse() {
	o.mu.Lock()
	o.closed = true
	o.mu.Unlock()
}

// join waits for every goroutine spawned.
func (o *owner) join() { o.wg.Wait() }

// Connect establishes a ZooKeeper session with one of servers ("host:port")
// and returns once the session is usable. ctx bounds only the connect; the
// Session then lives until Close.
//
// Servers are tried in a random order; each name is resolved when it is
// dialled, so a name that does not resolve costs one failed attempt, not
// the connect. A server that accepts a connection but does not answer is
// given T/(2n) to answer, with T the requested session timeout and n the
// number of servers (Java's client allows T/n; half of it keeps a round
// through unanswering servers inside the time a hold survives a lost
// connection).
//
// If no server answers before ctx ends, Connect returns an error that
// matches ctx.Err() and carries the last connection error; it returns at
// most Close's bound after ctx ends. Invalid servers or options return an
// error wrapping ErrInvalidOption.
func Connect(ctx context.Context, servers []string, opts ...SessionOption) (*Session, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if err := errors.Join(append([]error{validateServers(servers)}, cfg.errs...)...); err != nil {
		return nil, err
	}
	if cfg.tls != nil {
		cfg.dialer = tlsDialer(cfg.dialer, cfg.tls)
	}
	tel, err := newTelemetry(cfg.meters, cfg.tracers)
	if err != nil {
		return nil, err
	}
	s := &Session{
		cfg:     cfg,
		clk:     realClock{},
		tel:     tel,
		states:  newStates(cfg.logger, tel),
		closing: make(chan struct{}),
		newID:   newID,
	}
	s.life, s.cancelLife = context.WithCancel(context.Background())
	s.cleaner = newCleaner(cfg.backoff, s.clk, cfg.timeout, cfg.logger)
	s.gens = newGenerations(&s.cfg, append([]string(nil), servers...), s.clk, &s.own, s.states, s.closing)
	if s.metrics, err = tel.observe(s.gens.requests, s.cleaner.pending); err != nil {
		return nil, err
	}
	ready := s.gens.ready
	g, err := s.gens.open()
	if err != nil {
		s.metrics.Unregister()
		return nil, err
	}
	// Owner: the Session. Stopped by Close (closing, life), joined by Close.
	s.own.spawn(func() { s.gens.run(g) })
	s.own.spawn(func() { s.cleaner.run(s.life) })
	select {
	case <-ready:
		if err := s.gens.connectErr(); err != nil {
			s.Close()
			return nil, errorf("zklock: connect: %w", err)
		}
		return s, nil
	case <-ctx.Done():
		s.Close()
		return nil, errorf("zklock: connect to %s: %w (last connection error: %w)",
			strings.Join(servers, ","), ctx.Err(), s.gens.lastError())
	}
}

// Close ends the Session: it ends every hold made under it (Done closed,
// Err set), then asks the server to close the ZooKeeper session, so its
// ephemeral nodes vanish at once, and returns after every goroutine the
// Session started, go-zookeeper's included, has exited. Close is
// idempotent and always returns nil.
//
// Close is bounded whatever the servers and the network do: it waits at
// most about a second for the server to answer the close request (up to
// three when the connection is down), then closes every connection of the
// Session, which ends whatever go-zookeeper is waiting on; a dial in
// progress takes at most its own timeout of a second.
func (s *Session) Close() error {
	s.own.refuse()
	s.closeOnce.Do(func() {
		close(s.closing)
		s.cancelLife()
	})
	s.own.join()
	s.metrics.Unregister()
	return nil
}

// Done returns a channel that is closed when Close is called: the Session
// is ending, with every hold made under it. A lost connection or an expired
// ZooKeeper session does not end a Session, which opens a new ZooKeeper
// session; Subscribe reports those.
func (s *Session) Done() <-chan struct{} { return s.closing }

// Subscribe returns a Subscription whose first change is the current state.
func (s *Session) Subscribe() *Subscription { return s.states.subscribe() }

// State returns the current state.
func (s *Session) State() State { return s.states.current() }

// SessionID returns the id of the current ZooKeeper session, or 0 while
// there is none (after expiry, before the next one is established).
func (s *Session) SessionID() int64 {
	if g := s.gens.now(); g != nil {
		return g.sessionID
	}
	return 0
}

// Server returns the address of the server the Session is connected to or
// trying, "" while there is no ZooKeeper session.
func (s *Session) Server() string {
	if g := s.gens.now(); g != nil {
		return g.conn.Server()
	}
	return ""
}

// NegotiatedTimeout returns the session timeout the server granted, which
// may differ from the requested one (WithSessionTimeout); 0 while there is
// no ZooKeeper session.
func (s *Session) NegotiatedTimeout() time.Duration {
	if g := s.gens.now(); g != nil {
		return g.tap.Timeout()
	}
	return 0
}

// LossDeadline returns the safe loss deadline of the current ZooKeeper
// session: before it, the ZooKeeper leader cannot have expired the session,
// so no other client can have been granted a lock this session holds. It
// moves forward while the leader answers the Session's sync requests, and
// stops when the connection is lost or the leader stalls. If it passes, the
// Session presumes the ZooKeeper session expired, ends it and every hold
// made under it, and opens a new one. Zero while there is no ZooKeeper
// session.
//
// The deadline counts from the send time of the latest sync the leader
// answered, less the longest recent gap between answers, plus the
// negotiated timeout T, less an allowance of T/5 + T/40 for the leader's
// view lagging behind and the loss margin (WithLossMargin). It holds when T
// is at least five server ticks. The derivation is written out in the
// package documentation of internal/lease
// (https://pkg.go.dev/github.com/zklock/zklock/internal/lease).
func (s *Session) LossDeadline() time.Time {
	if g := s.gens.now(); g != nil {
		return g.lossDeadline()
	}
	return time.Time{}
}

// pendingDuties reports how many deletes the cleaner has yet to finish.
func (s *Session) pendingDuties() int { return s.cleaner.pending() }
