package demo

import (
	"context"
	"fmt"
	"sync"
)

// Monitor is a mutex whose holders can wake the goroutines waiting for a
// condition on what it guards: change the state with it locked, then call
// Broadcast. The zero value is ready to use.
type Monitor struct {
	sync.Mutex
	changed chan struct{} // closed by Broadcast; nil while nobody waits
}

// Broadcast wakes every WaitUntil to evaluate its condition again. The
// Monitor must be locked.
func (m *Monitor) Broadcast() {
	if m.changed != nil {
		close(m.changed)
		m.changed = nil
	}
}

// WaitUntil waits until cond, evaluated with m locked, holds. It fails with
// the cause of ctx's end, saying it was waiting for what.
func (m *Monitor) WaitUntil(ctx context.Context, what string, cond func() bool) error {
	for {
		m.Lock()
		ok := cond()
		if !ok && m.changed == nil {
			m.changed = make(chan struct{})
		}
		ch := m.changed
		m.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, context.Cause(ctx))
		}
	}
}
