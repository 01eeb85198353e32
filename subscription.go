package zklock

import (
	"context"
	"sync"
)

// Subscription delivers every state change of a Session, in order, without
// ever making the Session wait for the subscriber: changes queue up until
// Next takes them. Call Stop when done with it. It is safe for concurrent
// use, though concurrent Next calls each get different changes.
type Subscription struct {
	s      *Session
	signal chan struct{} // capacity 1: the queue grew

	mu      sync.Mutex // guards queue, stopped, final
	queue   []StateChange
	stopped bool
	final   bool // StateClosed was queued
}

// Subscribe returns a Subscription whose first change is the current state.
func (s *Session) Subscribe() *Subscription {
	sub := &Subscription{s: s, signal: make(chan struct{}, 1)}
	s.mu.Lock()
	defer s.mu.Unlock()
	sub.push(s.last)
	if !sub.final {
		s.subs[sub] = struct{}{}
	}
	return sub
}

func (sub *Subscription) push(c StateChange) {
	sub.mu.Lock()
	sub.queue = append(sub.queue, c)
	sub.final = sub.final || c.State == StateClosed
	sub.mu.Unlock()
	select {
	case sub.signal <- struct{}{}:
	default:
	}
}

// Next returns the next state change, waiting for one until ctx ends. After
// the StateClosed change has been returned it returns ErrSessionClosed; after
// Stop, ErrSubscriptionStopped. When ctx ends it returns ctx.Err().
func (sub *Subscription) Next(ctx context.Context) (StateChange, error) {
	for {
		sub.mu.Lock()
		switch {
		case sub.stopped:
			sub.mu.Unlock()
			return StateChange{}, ErrSubscriptionStopped
		case len(sub.queue) > 0:
			c := sub.queue[0]
			sub.queue = sub.queue[1:]
			sub.mu.Unlock()
			return c, nil
		case sub.final:
			sub.mu.Unlock()
			return StateChange{}, ErrSessionClosed
		}
		sub.mu.Unlock()
		select {
		case <-sub.signal:
		case <-ctx.Done():
			return StateChange{}, ctx.Err()
		}
	}
}

// Stop ends the subscription and releases its queue. Pending and later Next
// calls return ErrSubscriptionStopped. Stop is idempotent.
func (sub *Subscription) Stop() {
	sub.s.mu.Lock()
	delete(sub.s.subs, sub)
	sub.s.mu.Unlock()
	sub.mu.Lock()
	sub.stopped, sub.queue = true, nil
	sub.mu.Unlock()
	select {
	case sub.signal <- struct{}{}:
	default:
	}
}
