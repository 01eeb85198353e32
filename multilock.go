package zklock

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"

	"github.com/go-zookeeper/zk"

	"github.com/zklock/zklock/internal/znode"
)

// MultiLock holds several Mutexes as one: Lock takes every lock or none,
// under one ctx. The locks are always taken in one canonical order (their
// full paths, sorted), so two MultiLocks over overlapping paths, on any
// hosts, never deadlock; a Lock that gives up releases what it took, and
// no node is left on any path.
//
// The hold ends when any member's hold ends: Done, Err and Context follow
// the first member lost. The other members still hold their locks until
// Unlock releases them. Each member has its own fencing token and Guard
// (Mutexes, Guards). Build it with NewMultiLock; the zero value is not
// usable. It is safe for concurrent use, but not reentrant.
type MultiLock struct {
	ms   []*Mutex // in the canonical order
	perr error    // the paths are unusable

	mu        sync.Mutex // guards acquiring, ctx, cancel, stops
	acquiring bool       // a Lock or TryLock runs
	ctx       context.Context
	cancel    context.CancelCauseFunc
	stops     []func() bool
}

// NewMultiLock returns a MultiLock over paths (under the Session's chroot);
// the options (WithData) apply to every member. It does no I/O; an invalid
// path, or a path given twice, is reported by Lock and TryLock.
func NewMultiLock(s *Session, paths []string, opts ...MutexOption) *MultiLock {
	l := &MultiLock{}
	sorted := slices.Clone(paths)
	slices.SortFunc(sorted, func(a, b string) int {
		return strings.Compare(znode.Join(s.cfg.chroot, a), znode.Join(s.cfg.chroot, b))
	})
	for i, p := range sorted {
		m := NewMutex(s, p, opts...)
		switch {
		case m.r.perr != nil && l.perr == nil:
			l.perr = errorf("zklock: multi-lock: %w", m.r.perr) // before any member is taken
		case i > 0 && p == sorted[i-1]:
			l.perr = errorf("zklock: multi-lock: %w: path %q given twice", ErrInvalidOption, p)
		}
		l.ms = append(l.ms, m)
	}
	if len(paths) == 0 {
		l.perr = errorf("zklock: multi-lock: %w: no paths", ErrInvalidOption)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(ErrNotLocked)
	l.ctx, l.cancel = ctx, cancel
	return l
}

// Lock takes every lock, in the canonical order, waiting for each until
// ctx ends. If ctx ends or a member fails first, Lock releases the locks
// it took and returns the error (matching ctx.Err() when ctx ended). It
// returns ErrBusy while the MultiLock holds its locks or another Lock or
// TryLock runs.
func (l *MultiLock) Lock(ctx context.Context) error { return l.acquire(ctx, (*Mutex).Lock) }

// TryLock takes every lock if each is free, and otherwise releases what it
// took and returns ErrLocked, leaving no node behind.
func (l *MultiLock) TryLock(ctx context.Context) error { return l.acquire(ctx, (*Mutex).TryLock) }

func (l *MultiLock) acquire(ctx context.Context, take func(*Mutex, context.Context) error) error {
	if l.perr != nil {
		return l.perr
	}
	l.mu.Lock()
	if l.acquiring {
		l.mu.Unlock()
		return errorf("zklock: multi-lock: %w", ErrBusy)
	}
	l.acquiring = true
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.acquiring = false
		l.mu.Unlock()
	}()
	for i, m := range l.ms {
		if err := take(m, ctx); err != nil {
			if !errors.Is(err, ErrBusy) || i > 0 {
				l.release(context.WithoutCancel(ctx), l.ms[:i])
			}
			return errorf("zklock: multi-lock: %w", err)
		}
	}
	hold, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	var stops []func() bool
	for _, m := range l.ms {
		mctx := m.Context()
		stops = append(stops, context.AfterFunc(mctx, func() { cancel(context.Cause(mctx)) }))
	}
	l.mu.Lock()
	l.ctx, l.cancel, l.stops = hold, cancel, stops
	l.mu.Unlock()
	return nil
}

// release unlocks ms in reverse order and joins their errors.
func (l *MultiLock) release(ctx context.Context, ms []*Mutex) error {
	var errs []error
	for _, m := range slices.Backward(ms) {
		if err := m.Unlock(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Unlock releases every lock the MultiLock holds, in reverse order: the
// hold ends (Done closes, Err returns ErrNotLocked) and every member's node
// is deleted (see Mutex.Unlock). It returns ErrNotLocked if no member was
// held, or while a Lock or TryLock is running (it leaves their members to
// them), and otherwise the members' errors, joined (a member lost before
// Unlock reports its loss).
func (l *MultiLock) Unlock(ctx context.Context) error {
	l.mu.Lock()
	if l.acquiring {
		// The members belong to the running Lock, which releases what it
		// took if it fails; it must not find them released under it.
		l.mu.Unlock()
		return errorf("zklock: multi-lock: %w: a Lock or TryLock is running", ErrNotLocked)
	}
	for _, stop := range l.stops {
		stop()
	}
	l.stops = nil
	l.cancel(ErrNotLocked)
	l.mu.Unlock()
	held := false
	for _, m := range l.ms {
		if m.Err() == nil {
			held = true
		}
	}
	err := l.release(ctx, l.ms)
	if !held {
		return errorf("zklock: multi-lock: %w", ErrNotLocked)
	}
	if err != nil {
		return errorf("zklock: multi-lock: %w", err)
	}
	return nil
}

// check ends the hold at once if a member's hold has ended, so a look
// after a pause is right before the members' signals have propagated.
func (l *MultiLock) check() (context.Context, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ctx.Err() == nil {
		for _, m := range l.ms {
			if err := m.Err(); err != nil {
				l.cancel(err)
				break
			}
		}
	}
	return l.ctx, context.Cause(l.ctx)
}

// Done returns a channel closed when the hold ends: Unlock, or the first
// member's loss. Before the first Lock it is closed.
func (l *MultiLock) Done() <-chan struct{} {
	ctx, _ := l.check()
	return ctx.Done()
}

// Err returns nil while every member holds its lock; after the hold ends,
// ErrNotLocked after Unlock, or the first lost member's error (wrapping
// ErrLockLost and its cause).
func (l *MultiLock) Err() error {
	_, err := l.check()
	return err
}

// Context returns a context cancelled when the hold ends, with Err's value
// as its cause, carrying the values of the ctx passed to Lock.
func (l *MultiLock) Context() context.Context {
	ctx, _ := l.check()
	return ctx
}

// Mutexes returns the members, in the canonical order in which they are
// locked: each has its own Token, Key and Guard.
func (l *MultiLock) Mutexes() []*Mutex { return slices.Clone(l.ms) }

// Guards returns every member's Guard, for one Session.Multi whose writes
// must depend on holding all the locks. Nil entries stand for members not
// yet locked.
func (l *MultiLock) Guards() []*zk.CheckVersionRequest {
	out := make([]*zk.CheckVersionRequest, len(l.ms))
	for i, m := range l.ms {
		out[i] = m.Guard()
	}
	return out
}
