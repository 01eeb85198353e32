package zklock

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
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
	// Timeout is the session timeout the server granted to the ZooKeeper
	// session, and Server the address it is connected to: set with
	// StateConnected, so a subscriber checks the very session it is told
	// about.
	Timeout time.Duration
	Server  string
	// Err says why a ZooKeeper session ended (StateExpired, StateClosed).
	// With StateConnected it is a warning about the new ZooKeeper session:
	// an error wrapping ErrZxidRegression when the ensemble has lost data.
	Err error
}

func (c StateChange) String() string {
	s := fmt.Sprintf("%s session=0x%x generation=%d", c.State, c.SessionID, c.Generation)
	if c.Err != nil {
		s += ": " + c.Err.Error()
	}
	return s
}

// states records a Session's state and fans each change out to the
// subscriptions, without ever blocking on a subscriber.
type states struct {
	logger *slog.Logger
	tel    *telemetry

	mu   sync.Mutex // guards last, subs
	last StateChange
	subs map[*Subscription]struct{}
}

func newStates(logger *slog.Logger, tel *telemetry) *states {
	return &states{logger: logger, tel: tel, subs: make(map[*Subscription]struct{})}
}

// transition records c, stamped with the time; a c without a Generation
// keeps the last change's ids. Repeating the current state is no change,
// except for expiry, which each ZooKeeper session reports once, and a
// warning (a connected state with an Err).
func (f *states) transition(c StateChange) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, err := c.State, c.Err
	if f.last.State == st && st != StateExpired && err == nil {
		return
	}
	c.Time = time.Now()
	if c.Generation == 0 {
		c.SessionID, c.Generation = f.last.SessionID, f.last.Generation
	}
	f.last = c
	f.tel.transition(st)
	for sub := range f.subs {
		sub.push(c)
	}
	f.logger.Info("zklock: session "+st.String(), "session", fmt.Sprintf("0x%x", c.SessionID), "generation", c.Generation, "err", err)
}

func (f *states) current() State {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last.State
}

func (f *states) subscribe() *Subscription {
	sub := &Subscription{from: f, queue: newMailbox[StateChange]()}
	f.mu.Lock()
	defer f.mu.Unlock()
	sub.push(f.last)
	if !sub.final.Load() {
		f.subs[sub] = struct{}{}
	}
	return sub
}

func (f *states) unsubscribe(sub *Subscription) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.subs, sub)
}

// Subscription delivers every state change of a Session, in order, without
// ever making the Session wait for the subscriber: changes queue up until
// Next takes them. Get one from Session.Subscribe; call Stop when done with
// it. It is safe for concurrent use, though concurrent Next calls each get
// different changes.
type Subscription struct {
	from    *states
	queue   *mailbox[StateChange]
	final   atomic.Bool // StateClosed was queued
	stopped atomic.Bool
}

func (sub *Subscription) push(c StateChange) {
	sub.queue.push(c)
	if c.State == StateClosed {
		// After the push, so Next returns the change before the end; then a
		// wake-up of its own, for a Next that took the push's wake-up with
		// the change and now waits on an empty queue.
		sub.final.Store(true)
		sub.queue.poke()
	}
}

// Next returns the next state change, waiting for one until ctx ends. After
// the StateClosed change has been returned it returns ErrSessionClosed; after
// Stop, ErrSubscriptionStopped. When ctx ends it returns ctx.Err().
func (sub *Subscription) Next(ctx context.Context) (StateChange, error) {
	for {
		if sub.stopped.Load() {
			return StateChange{}, ErrSubscriptionStopped
		}
		if c, ok := sub.queue.pop(); ok {
			return c, nil
		}
		if sub.final.Load() {
			return StateChange{}, ErrSessionClosed
		}
		select {
		case <-sub.queue.wakeup():
		case <-ctx.Done():
			return StateChange{}, ctx.Err()
		}
	}
}

// Stop ends the subscription and releases its queue. Pending and later Next
// calls return ErrSubscriptionStopped. Stop is idempotent.
func (sub *Subscription) Stop() {
	sub.from.unsubscribe(sub)
	sub.stopped.Store(true)
	sub.queue.drain()
	sub.queue.poke()
}

// mailbox is an unbounded FIFO queue whose producers never block: a
// producer that must not wait (go-zookeeper's callback, the state fan-out, a
// recipe handing over a delete) pushes, and the one consumer takes the items
// when wakeup delivers.
type mailbox[T any] struct {
	mu    sync.Mutex // guards items
	items []T
	wake  chan struct{} // capacity 1: items may be waiting
}

func newMailbox[T any]() *mailbox[T] {
	return &mailbox[T]{wake: make(chan struct{}, 1)}
}

func (m *mailbox[T]) push(v T) {
	m.mu.Lock()
	m.items = append(m.items, v)
	m.mu.Unlock()
	m.poke()
}

// poke wakes the consumer without adding an item.
func (m *mailbox[T]) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// pop takes the oldest item, if any.
func (m *mailbox[T]) pop() (T, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var zero T
	if len(m.items) == 0 {
		return zero, false
	}
	v := m.items[0]
	m.items[0] = zero
	m.items = m.items[1:]
	return v, true
}

// drain takes every item.
func (m *mailbox[T]) drain() []T {
	m.mu.Lock()
	defer m.mu.Unlock()
	items := m.items
	m.items = nil
	return items
}

// wakeup receives after a push or poke that the consumer has not yet been
// woken for. A consumer checks the queue after every wakeup and before
// waiting.
func (m *mailbox[T]) wakeup() <-chan struct{} { return m.wake }
