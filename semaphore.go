package zklock

import (
	"context"
	"errors"

	"github.com/go-zookeeper/zk"

	"github.com/zklock/zklock/internal/seqnode"
	"github.com/zklock/zklock/internal/znode"
)

// Semaphore lets at most n holders hold a lease on a ZooKeeper path at
// once, compatible with Curator's InterProcessSemaphoreV2 on the same path.
//
// The layout is Curator's: an acquirer takes the internal lock at
// "<path>/locks" (a Mutex), creates its lease node
// "<path>/leases/_c_<UUID>-lease-<sequence>", holds a lease when its node is
// among the first n, and otherwise waits, still holding the internal lock,
// for the leases to change; it releases the internal lock once it has a
// lease or gives up. So only one acquirer waits at a time, and a lease
// released wakes only it.
//
// Each lease is a hold, like a Mutex's: Done, Err and Context signal its
// loss (session expiry, the loss deadline, its node deleted) before the
// server can give its place to anyone else; a lost lease frees its place
// only when the server has removed its node. The lease's Token is its
// node's creation zxid, and its Guard fences writes.
//
// All holders of a path must agree on n: neither layout stores it, so a
// holder with a larger n can exceed a smaller one's limit, and that cannot
// be detected. kazoo's Semaphore uses another layout (a sibling lock path,
// the limit stored in the path's data) and does not share a path with this
// one. Build it with NewSemaphore; the zero value is not usable. It is safe
// for concurrent use: each Acquire gets its own lease.
type Semaphore struct {
	s    *Session
	path string
	n    int
	opts []MutexOption
	perr error
}

// leaseKind: lease nodes, of which the first limit hold.
func leaseKind(n int) kind {
	return kind{
		op:     "acquire",
		prefix: seqnode.LeasePrefix,
		queues: func(k seqnode.Kind) bool { return k == seqnode.Lease },
		lost:   ErrLeaseLost,
		free:   ErrNotHeld,
		limit:  n,
	}
}

// NewSemaphore returns a Semaphore with n leases at path (under the
// Session's chroot). The options (WithData) set the lease nodes' data. It
// does no I/O; an invalid path, or n < 1, is reported by Acquire.
func NewSemaphore(s *Session, path string, n int, opts ...MutexOption) *Semaphore {
	sem := &Semaphore{s: s, path: path, n: n, opts: opts}
	if err := znode.Validate(path); err != nil {
		sem.perr = errorf("zklock: semaphore: %w: %w", ErrInvalidPath, err)
	} else if path == "/" {
		sem.perr = errorf("zklock: semaphore: %w: the root cannot hold a semaphore", ErrInvalidPath)
	} else if n < 1 {
		sem.perr = errorf("zklock: semaphore %s: %w: %d leases (want at least 1)", path, ErrInvalidOption, n)
	}
	return sem
}

// Acquire waits until it holds a lease, or ctx ends. It keeps waiting
// across lost connections and session expiry. When ctx ends first it
// returns an error matching ctx.Err() and leaves no node behind.
//
// Once Acquire returns, the lease can be lost at any time (see the package
// documentation, Safety): watch its Done or Context.
func (sem *Semaphore) Acquire(ctx context.Context) (*Lease, error) { return sem.acquire(ctx, true) }

// TryAcquire takes a lease if one is free and no other acquirer holds the
// internal lock (one is taking a lease, or waiting for one), and otherwise
// returns ErrLocked at once, leaving no node behind.
func (sem *Semaphore) TryAcquire(ctx context.Context) (*Lease, error) {
	return sem.acquire(ctx, false)
}

func (sem *Semaphore) acquire(ctx context.Context, wait bool) (*Lease, error) {
	if sem.perr != nil {
		return nil, sem.perr
	}
	for {
		l, err := sem.attempt(ctx, wait)
		if errors.Is(err, errInternalLockLost) && ctx.Err() == nil {
			continue // the internal lock went with its session: take it again
		}
		if err != nil {
			return nil, errorf("zklock: semaphore %s: %w", sem.path, err)
		}
		return l, nil
	}
}

// errInternalLockLost: the semaphore's internal lock ended while its
// holder waited for a lease.
var errInternalLockLost = errors.New("zklock: the semaphore's internal lock was lost")

// attempt takes the internal lock, then a lease while the internal lock
// holds: a lease is never waited for by anyone who does not hold the
// internal lock, so one acquirer waits at a time, in any session.
func (sem *Semaphore) attempt(ctx context.Context, wait bool) (*Lease, error) {
	lock := NewMutex(sem.s, znode.Join(sem.path, "/locks"), sem.opts...)
	take := (*Mutex).Lock
	if !wait {
		take = (*Mutex).TryLock
	}
	if err := take(lock, ctx); err != nil {
		return nil, err
	}
	// Released however the acquisition ends; a release that cannot reach
	// the server goes to the cleaner.
	defer lock.Unlock(context.WithoutCancel(ctx))

	held, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(lock.Context(), func() { cancel(errInternalLockLost) })
	defer stop()
	m := newMutex(sem.s, znode.Join(sem.path, "/leases"), leaseKind(sem.n), sem.opts)
	if err := take(m, held); err != nil {
		if ctx.Err() == nil && context.Cause(held) == errInternalLockLost {
			return nil, errInternalLockLost
		}
		return nil, err
	}
	return &Lease{m: m}, nil
}

// Lease is one lease of a Semaphore, held from Acquire until Release or its
// loss.
type Lease struct {
	m *Mutex
}

// Release gives the lease back: the hold ends (Done closes, Err returns
// ErrNotHeld) and its node is deleted, through the Session's cleaner if the
// connection is down; see Mutex.Unlock. It returns ErrNotHeld if the lease
// was already released or lost (wrapping the loss).
func (l *Lease) Release(ctx context.Context) error { return l.m.Unlock(ctx) }

// Done returns a channel closed when the lease ends, for any reason.
func (l *Lease) Done() <-chan struct{} { return l.m.Done() }

// Err returns nil while the lease is held; afterwards ErrNotHeld after
// Release, or an error wrapping ErrLeaseLost and its cause.
func (l *Lease) Err() error { return l.m.Err() }

// Context returns a context cancelled when the lease ends, with Err's
// value as its cause.
func (l *Lease) Context() context.Context { return l.m.Context() }

// Token returns the lease's fencing token: its node's creation zxid.
func (l *Lease) Token() int64 { return l.m.Token() }

// Key returns the path of the lease's node, under the Session's chroot.
func (l *Lease) Key() string { return l.m.Key() }

// Seq returns the sequence number of the lease's node.
func (l *Lease) Seq() int32 { return l.m.Seq() }

// Guard returns an operation for Session.Multi that fails once the lease's
// node is gone.
func (l *Lease) Guard() *zk.CheckVersionRequest { return l.m.Guard() }
