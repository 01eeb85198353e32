package zklock

import (
	"context"

	"github.com/go-zookeeper/zk"

	"github.com/zklock/zklock/internal/seqnode"
)

// Mutex is a distributed exclusive lock on a ZooKeeper path, compatible with
// Curator's InterProcessMutex, kazoo's Lock and go-zookeeper's zk.Lock on the
// same path.
//
// Contenders queue as ephemeral sequential children of the path, named
// "_c_<UUID>-lock-<sequence>" with the holder identity as data; the lowest
// sequence holds the lock and each waiter watches only the node just ahead
// of it. Children of other recipes' lock shapes (Curator "lock-",
// "__WRIT__", "__READ__"; kazoo "__lock__", "__rlock__") are queued by their
// sequence numbers; other children are ignored.
//
// A Mutex is safe for concurrent use, but it is not reentrant: it holds its
// lock at most once at a time. Use one Mutex per holder. Build it with
// NewMutex; the zero value is not usable.
type Mutex struct {
	r    *recipe
	data []byte
}

// mutexKind: lock nodes, queued with every lock shape a peer writes.
var mutexKind = kind{
	op:     "lock",
	prefix: seqnode.LockPrefix,
	queues: func(k seqnode.Kind) bool { return k == seqnode.Exclusive || k == seqnode.Shared },
	lost:   ErrLockLost,
	free:   ErrNotLocked,
}

// MutexOption configures a Mutex.
type MutexOption func(*Mutex)

// WithData sets the data of the Mutex's lock nodes, so operators and the
// holders command can tell who holds or waits. The default is
// "<hostname>:<pid>".
func WithData(data []byte) MutexOption {
	return func(m *Mutex) { m.data = data }
}

// NewMutex returns a Mutex for the lock at path (a ZooKeeper path under the
// Session's chroot). It does no I/O; an invalid path is reported by Lock and
// TryLock.
func NewMutex(s *Session, path string, opts ...MutexOption) *Mutex {
	return newMutex(s, path, mutexKind, opts)
}

func newMutex(s *Session, path string, k kind, opts []MutexOption) *Mutex {
	m := &Mutex{
		r:    newRecipe(s, path, k),
		data: defaultIdentity(),
	}
	for _, o := range opts {
		o(m)
	}
	return m
}

// Lock blocks until the Mutex holds the lock or ctx ends. It keeps waiting
// across lost connections, and across session expiry by queueing again in
// the new ZooKeeper session.
//
// Once Lock returns nil, the lock can be lost at any time (see the package
// documentation, Safety): the loss is signalled by Done, Err and Context
// before the server can grant the lock to anyone else, provided the
// negotiated session timeout is at least five server ticks and the loss
// margin covers the holder's reaction time (WithLossMargin).
//
// When ctx ends first, Lock returns an error matching ctx.Err() and deletes
// its node (through the Session's cleaner if the connection is down), so it
// never blocks the contenders behind it. Lock returns ErrBusy if the Mutex
// already holds the lock or another Lock or TryLock is running.
func (m *Mutex) Lock(ctx context.Context) error { return m.r.acquire(ctx, m.data, true) }

// TryLock takes the lock if no one holds or waits for it, and otherwise
// returns ErrLocked at once, leaving no node behind. Like Lock it waits for a
// usable ZooKeeper session, bounded by ctx.
func (m *Mutex) TryLock(ctx context.Context) error { return m.r.acquire(ctx, m.data, false) }

// Unlock releases the lock: it ends the hold (Done closes, Err returns
// ErrNotLocked) and deletes the lock node. If the node cannot be deleted
// before ctx ends, for instance because the connection is down, the delete
// is handed to the Session's cleaner, which retries it until it succeeds or
// the ZooKeeper session ends, and Unlock returns nil: the Mutex can be locked
// again at once.
//
// Unlock returns ErrNotLocked if the Mutex does not hold the lock; if the
// hold was lost, the error also wraps the loss (ErrLockLost and its cause).
// If the server refuses the delete (an ACL without the delete permission
// on the lock's path), the hold has ended but Unlock returns the refusal
// (zk.ErrNoAuth): the node stays until the ZooKeeper session ends, and
// blocks every contender behind it, this Session's next Lock included;
// Session.Close removes it.
func (m *Mutex) Unlock(ctx context.Context) error { return m.r.release(ctx) }

// Done returns a channel that is closed when the current hold ends, for any
// reason: Unlock, session expiry, the loss deadline, Session.Close, or the
// node deleted by someone else. Before the first Lock it returns a closed
// channel. Each hold has its own channel; call Done again after a new Lock.
func (m *Mutex) Done() <-chan struct{} { return m.r.done() }

// Err returns nil while the Mutex holds the lock. After the hold ends it
// returns why: ErrNotLocked after Unlock, or an error wrapping ErrLockLost
// and its cause (ErrSessionExpired, ErrLossDeadline, ErrSessionClosed or
// ErrNodeDeleted). Before the first Lock it returns ErrNotLocked.
func (m *Mutex) Err() error { return m.r.err() }

// Context returns a context that is cancelled when the current hold ends,
// with Err's value as its cause (context.Cause). It carries the values of
// the ctx passed to Lock. Pass it to the work done under the lock. Before
// the first Lock it returns an already cancelled context.
func (m *Mutex) Context() context.Context { return m.r.context() }

// Token returns the fencing token of the current or latest hold: the
// creation zxid (czxid) of its lock node. Tokens strictly increase across
// successive holders of one path, including holders using Curator or kazoo,
// across ZooKeeper leader changes and when the lock directory is deleted and
// created again, because every ZooKeeper write gets a larger zxid. (The
// sequence number would not do: it restarts with the directory and wraps at
// 2^31.) Give it to the resource with every write and have the resource
// reject tokens lower than the highest it has seen. Zero before the first
// Lock.
//
// The limit: zxids only grow while the ensemble keeps its data. An ensemble
// restarted with empty data directories, or restored from an older
// snapshot, starts again below earlier zxids, and tokens go backwards with
// it; a resource that rejects lower tokens then refuses every new holder.
// The Session detects this when its next ZooKeeper session starts and
// reports it (ErrZxidRegression); recovering needs the operator, for
// example by resetting the resource's highest token.
func (m *Mutex) Token() int64 { return m.r.token() }

// Key returns the path of the current or latest hold's lock node, under the
// Session's chroot; "" before the first Lock.
func (m *Mutex) Key() string { return m.r.key() }

// Seq returns the sequence number of the current or latest hold's lock node.
func (m *Mutex) Seq() int32 { return m.r.seq() }

// Guard returns an operation for Session.Multi that succeeds only while the
// current hold's lock node exists unchanged: a multi carrying it fails with
// zk.ErrNoNode once the lock was lost and released by the server, so a late
// write from a former holder cannot land. Nil before the first Lock.
func (m *Mutex) Guard() *zk.CheckVersionRequest { return m.r.guard() }
