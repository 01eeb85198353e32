package zklock

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeClock advances only when a retry waits, so retries run instantly.
type fakeClock struct {
	now   time.Time
	waits []time.Duration
}

func (c *fakeClock) Now() time.Time { return c.now }

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.waits = append(c.waits, d)
	c.now = c.now.Add(d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

var testPolicy = Backoff{Initial: 100 * time.Millisecond, Max: time.Second, Multiplier: 2, Jitter: 0}

func TestRetryableClassification(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{zk.ErrConnectionClosed, true},
		{zk.ErrNoServer, true},
		{zk.ErrSessionMoved, true},
		{fmt.Errorf("get: %w", zk.ErrConnectionClosed), true},
		{errGenerationEnded, true},
		{zk.ErrSessionExpired, false},
		{zk.ErrClosing, false},
		{zk.ErrNoAuth, false},
		{zk.ErrAuthFailed, false},
		{zk.ErrBadArguments, false},
		{zk.ErrNoNode, false},
		{ErrSessionClosed, false},
		{permanent(zk.ErrConnectionClosed), false},
		{context.Canceled, false},
		{context.DeadlineExceeded, false},
		{nil, false},
	} {
		t.Run(fmt.Sprint(tc.err), func(t *testing.T) {
			assert.Equal(t, tc.want, retryable(tc.err))
		})
	}
}

func TestRetryOnConnectionLoss(t *testing.T) {
	clk := &fakeClock{now: time.Unix(0, 0)}
	calls := 0
	err := retry(context.Background(), testPolicy, clk, func(context.Context) error {
		calls++
		if calls < 5 {
			return zk.ErrConnectionClosed
		}
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, 5, calls)
	assert.Equal(t, []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond}, clk.waits,
		"waits double from Initial")
}

func TestRetryCapsAtMax(t *testing.T) {
	clk := &fakeClock{now: time.Unix(0, 0)}
	calls := 0
	_ = retry(context.Background(), testPolicy, clk, func(context.Context) error {
		calls++
		if calls < 8 {
			return zk.ErrNoServer
		}
		return nil
	})
	assert.Equal(t, time.Second, clk.waits[len(clk.waits)-1])
}

func TestRetryStopsOnPermanentError(t *testing.T) {
	for _, perm := range []error{zk.ErrSessionExpired, zk.ErrNoAuth, zk.ErrClosing, zk.ErrBadArguments, permanent(zk.ErrConnectionClosed)} {
		t.Run(perm.Error(), func(t *testing.T) {
			clk := &fakeClock{now: time.Unix(0, 0)}
			calls := 0
			err := retry(context.Background(), testPolicy, clk, func(context.Context) error {
				calls++
				return perm
			})
			assert.Equal(t, 1, calls, "a permanent error is not retried")
			assert.Empty(t, clk.waits)
			var p *permanentError
			assert.False(t, errors.As(err, &p), "the permanent marker is removed")
			want := perm
			if errors.As(perm, &p) {
				want = p.err
			}
			assert.Equal(t, want, err)
		})
	}
}

func TestRetryHonoursDeadline(t *testing.T) {
	// A real deadline a second away; the fake clock reaches it without waiting.
	start := time.Now()
	clk := &fakeClock{now: start}
	ctx, cancel := context.WithDeadline(context.Background(), start.Add(time.Second))
	defer cancel()
	calls := 0
	err := retry(ctx, testPolicy, clk, func(context.Context) error {
		calls++
		return zk.ErrConnectionClosed
	})
	require.Error(t, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.ErrorIs(t, err, zk.ErrConnectionClosed, "the last error is kept")
	// 100+200+400 = 700ms fit in the second; the next 800ms wait would not.
	assert.Equal(t, 4, calls)
	assert.LessOrEqual(t, clk.now.Sub(start), time.Second, "never waits past the deadline")
}

func TestRetryCancelled(t *testing.T) {
	clk := &fakeClock{now: time.Unix(0, 0)}
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	err := retry(ctx, testPolicy, clk, func(context.Context) error {
		calls++
		cancel()
		return zk.ErrConnectionClosed
	})
	assert.ErrorIs(t, err, context.Canceled)
	assert.ErrorIs(t, err, zk.ErrConnectionClosed)
	assert.Equal(t, 1, calls)
}

func TestBackoffValidate(t *testing.T) {
	for _, b := range []Backoff{
		{Initial: 0, Max: time.Second, Multiplier: 2},
		{Initial: time.Second, Max: time.Millisecond, Multiplier: 2},
		{Initial: time.Second, Max: time.Second, Multiplier: 0.5},
		{Initial: time.Second, Max: time.Second, Multiplier: 2, Jitter: 1},
	} {
		err := b.validate()
		assert.ErrorIs(t, err, ErrInvalidOption, "%+v", b)
	}
	assert.NoError(t, DefaultBackoff().validate())
}
