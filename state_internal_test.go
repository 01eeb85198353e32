package zklock

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A Subscription's Next returns ErrSessionClosed after the StateClosed
// change, whichever way the reader and the fan-out interleave: a reader
// waiting when the change comes back for the end.
func TestSubscriptionEndsAfterClosed(t *testing.T) {
	for i := range 5000 {
		st := newStates(nil, nil)
		st.last = StateChange{State: StateConnected}
		sub := st.subscribe()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		got := make(chan error, 1)
		go func() {
			for {
				c, err := sub.Next(ctx)
				if err != nil {
					got <- err
					return
				}
				_ = c
			}
		}()
		st.mu.Lock()
		c := StateChange{State: StateClosed}
		st.last = c
		for s := range st.subs {
			s.push(c)
		}
		st.mu.Unlock()
		err := <-got
		cancel()
		require.Truef(t, errors.Is(err, ErrSessionClosed), "iteration %d: Next ended with %v, want ErrSessionClosed", i, err)
	}
}
