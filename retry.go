package zklock

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/go-zookeeper/zk"
)

// Backoff is an exponential backoff policy with jitter, used between retries
// of an operation that failed on a lost connection and between attempts to
// open a new ZooKeeper session after expiry.
//
// The n-th wait is Initial·Multiplier^n, capped at Max, then spread uniformly
// by ±Jitter of itself.
type Backoff struct {
	Initial    time.Duration // first wait; must be > 0
	Max        time.Duration // cap on a single wait; must be ≥ Initial
	Multiplier float64       // growth per retry; must be ≥ 1
	Jitter     float64       // randomisation factor in [0, 1)
}

// DefaultBackoff returns the policy a Session uses unless WithBackoff is
// given: waits from 50ms, doubling up to 2s, each spread by ±50%. It returns
// a copy, so callers can start from it and change a field.
func DefaultBackoff() Backoff {
	return Backoff{Initial: 50 * time.Millisecond, Max: 2 * time.Second, Multiplier: 2, Jitter: 0.5}
}

func (b Backoff) validate() error {
	switch {
	case b.Initial <= 0:
		return errorf("%w: backoff Initial %v must be > 0", ErrInvalidOption, b.Initial)
	case b.Max < b.Initial:
		return errorf("%w: backoff Max %v must be ≥ Initial %v", ErrInvalidOption, b.Max, b.Initial)
	case !(b.Multiplier >= 1):
		return errorf("%w: backoff Multiplier %v must be ≥ 1", ErrInvalidOption, b.Multiplier)
	case !(b.Jitter >= 0 && b.Jitter < 1):
		return errorf("%w: backoff Jitter %v must be in [0, 1)", ErrInvalidOption, b.Jitter)
	}
	return nil
}

// newBackOff returns fresh per-call state: backoff's ExponentialBackOff is
// not safe for concurrent use, so it is never shared.
func (b Backoff) newBackOff(clk clock) *backoff.ExponentialBackOff {
	e := &backoff.ExponentialBackOff{
		InitialInterval:     b.Initial,
		RandomizationFactor: b.Jitter,
		Multiplier:          b.Multiplier,
		MaxInterval:         b.Max,
		MaxElapsedTime:      0, // the caller's ctx bounds retries
		Stop:                backoff.Stop,
		Clock:               clk,
	}
	e.Reset()
	return e
}

// clock is the seam that lets tests run retries without waiting.
type clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// permanentError marks an error that must not be retried whatever its kind.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

func permanent(err error) error { return &permanentError{err} }

// retryable classifies errors for every retry in the package. A lost
// connection is worth retrying: the session may still be alive and the
// client reconnects. Anything the server decided (expired session, auth
// failure, bad arguments, no node) and local shutdown are final.
func retryable(err error) bool {
	var p *permanentError
	switch {
	case err == nil, errors.As(err, &p):
		return false
	case errors.Is(err, zk.ErrConnectionClosed),
		errors.Is(err, zk.ErrNoServer),
		errors.Is(err, zk.ErrSessionMoved),
		errors.Is(err, errGenerationEnded):
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// retry runs op until it succeeds, fails with an error retryable rejects, or
// ctx ends. It never starts a wait that would outlast ctx's deadline. When
// ctx ends the error matches ctx.Err() and carries op's last error.
func retry(ctx context.Context, policy Backoff, clk clock, op func(context.Context) error) error {
	return retryAfter(ctx, policy, clk, op(ctx), op)
}

// retryAfter is retry after a first attempt of op that returned err. A
// caller that goes on to wait (a queued Lock) makes the first attempt in
// its own frame, so that the frames of the retry loop are on its stack
// only when a retry is needed.
func retryAfter(ctx context.Context, policy Backoff, clk clock, err error, op func(context.Context) error) error {
	var b *backoff.ExponentialBackOff
	for {
		if !retryable(err) {
			var p *permanentError
			if errors.As(err, &p) {
				return p.err
			}
			return err
		}
		if ctx.Err() != nil {
			return errorf("%w (last error: %w)", ctx.Err(), err)
		}
		if b == nil {
			b = policy.newBackOff(clk)
		}
		wait := b.NextBackOff()
		if dl, ok := ctx.Deadline(); ok && clk.Now().Add(wait).After(dl) {
			return errorf("%w (last error: %w)", context.DeadlineExceeded, err)
		}
		select {
		case <-clk.After(wait):
		case <-ctx.Done():
			return errorf("%w (last error: %w)", ctx.Err(), err)
		}
		err = op(ctx)
	}
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
