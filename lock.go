package zklock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/go-zookeeper/zk"

	"github.com/zklock/zklock/internal/seqnode"
	"github.com/zklock/zklock/internal/znode"
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
// lock at most once at a time. Use one Mutex per holder.
type Mutex struct {
	s    *Session
	path string // as given
	full string // chroot applied
	perr error  // the path is invalid
	data []byte

	mu   sync.Mutex // guards busy, hold
	busy bool       // a Lock or TryLock is running
	hold *hold      // the current or latest hold; nil before the first
}

// MutexOption configures a Mutex.
type MutexOption func(*Mutex)

// WithData sets the data of the Mutex's lock nodes, so operators and the
// holders command can tell who holds or waits. The default is
// "<hostname>:<pid>".
func WithData(data []byte) MutexOption {
	return func(m *Mutex) { m.data = data }
}

// defaultIdentity is the default node data: hostname and pid.
func defaultIdentity() []byte {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	return fmt.Appendf(nil, "%s:%d", host, os.Getpid())
}

// NewMutex returns a Mutex for the lock at path (a ZooKeeper path under the
// Session's chroot). It does no I/O; an invalid path is reported by Lock and
// TryLock.
func NewMutex(s *Session, path string, opts ...MutexOption) *Mutex {
	m := &Mutex{s: s, path: path, data: defaultIdentity()}
	if err := znode.Validate(path); err != nil {
		m.perr = fmt.Errorf("zklock: mutex: %w: %w", ErrInvalidPath, err)
	} else if path == "/" {
		m.perr = fmt.Errorf("zklock: mutex: %w: the root cannot be a lock path", ErrInvalidPath)
	}
	m.full = znode.Join(s.cfg.chroot, path)
	for _, o := range opts {
		o(m)
	}
	return m
}

// Lock blocks until the Mutex holds the lock or ctx ends. It keeps waiting
// across lost connections, and across session expiry by queueing again in
// the new ZooKeeper session.
//
// When ctx ends first, Lock returns an error matching ctx.Err() and deletes
// its node (through the Session's cleaner if the connection is down), so it
// never blocks the contenders behind it. Lock returns ErrMutexBusy if the
// Mutex already holds the lock or another Lock or TryLock is running.
func (m *Mutex) Lock(ctx context.Context) error { return m.acquire(ctx, true) }

// TryLock takes the lock if no one holds or waits for it, and otherwise
// returns ErrLocked at once, leaving no node behind. Like Lock it waits for a
// usable ZooKeeper session, bounded by ctx.
func (m *Mutex) TryLock(ctx context.Context) error { return m.acquire(ctx, false) }

func (m *Mutex) acquire(ctx context.Context, wait bool) error {
	if m.perr != nil {
		return m.perr
	}
	m.mu.Lock()
	prev := m.hold
	if m.busy || (prev != nil && prev.cause() == nil) {
		m.mu.Unlock()
		return ErrMutexBusy
	}
	m.busy = true
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		m.busy = false
		m.mu.Unlock()
	}()
	if prev != nil {
		<-prev.exited // the previous hold's monitor is done
	}

	for {
		g, err := m.s.current(ctx)
		if err != nil {
			return fmt.Errorf("zklock: lock %s: %w", m.path, err)
		}
		h, watch, err := m.attempt(ctx, g, wait)
		if err == nil {
			mctx, stop := context.WithCancel(m.s.life)
			h.stop = stop
			// Owner: the Mutex. Stopped by Unlock (h.stop) or by the end of
			// the hold; joined by Unlock and by the next Lock (h.exited).
			go m.monitor(mctx, h, watch)
			m.mu.Lock()
			m.hold = h
			m.mu.Unlock()
			return nil
		}
		if g.ended() && ctx.Err() == nil && !errors.Is(err, ErrLocked) && !errors.Is(err, ErrSessionClosed) {
			continue // queue again in the next ZooKeeper session
		}
		return fmt.Errorf("zklock: lock %s: %w", m.path, err)
	}
}

// attempt queues on generation g and waits to be first. On success it
// returns the hold and a watch on the hold's node.
func (m *Mutex) attempt(ctx context.Context, g *generation, wait bool) (*hold, <-chan zk.Event, error) {
	name, err := m.s.enqueue(ctx, g, m.full, seqnode.LockPrefix, m.data)
	if err != nil {
		return nil, nil, err
	}
	for {
		var kids []string
		err := m.s.doOn(ctx, g, func(c *zk.Conn) (err error) {
			kids, _, err = c.Children(m.full)
			return err
		})
		if err != nil {
			m.s.discard(ctx, g, m.full, name)
			return nil, nil, err
		}
		contenders := seqnode.Contenders(kids, func(k seqnode.Kind) bool { return k != seqnode.Latch })
		_, pred, first, found := seqnode.Position(contenders, name)
		if !found { // deleted under us while waiting: queue again
			if name, err = m.s.enqueue(ctx, g, m.full, seqnode.LockPrefix, m.data); err != nil {
				return nil, nil, err
			}
			continue
		}
		if first {
			h, watch, err := m.confirm(ctx, g, name)
			if err != nil {
				m.s.discard(ctx, g, m.full, name)
				return nil, nil, err
			}
			if h == nil { // gone between the listing and the check
				continue
			}
			return h, watch, nil
		}
		if !wait {
			m.s.discard(ctx, g, m.full, name)
			return nil, nil, ErrLocked
		}
		var ok bool
		var ev <-chan zk.Event
		err = m.s.doOn(ctx, g, func(c *zk.Conn) (err error) {
			ok, _, ev, err = c.ExistsW(m.full + "/" + pred.Name)
			return err
		})
		if err != nil {
			m.s.discard(ctx, g, m.full, name)
			return nil, nil, err
		}
		if !ok {
			continue
		}
		select {
		case <-ev: // deleted or changed: look again
		case <-ctx.Done():
			m.s.discard(ctx, g, m.full, name)
			return nil, nil, ctx.Err()
		case <-g.done:
			return nil, nil, g.err
		}
	}
}

// confirm checks, before granting, that our node exists and belongs to g's
// ZooKeeper session, reads its creation zxid for the fencing token and sets
// the watch that tells the holder if the node is deleted. It returns a nil
// hold if the node is gone.
func (m *Mutex) confirm(ctx context.Context, g *generation, name string) (*hold, <-chan zk.Event, error) {
	var ok bool
	var st *zk.Stat
	var watch <-chan zk.Event
	p := m.full + "/" + name
	err := m.s.doOn(ctx, g, func(c *zk.Conn) (err error) {
		ok, st, watch, err = c.ExistsW(p)
		return err
	})
	switch {
	case err != nil:
		return nil, nil, err
	case !ok:
		return nil, nil, nil
	case st.EphemeralOwner != g.sessionID:
		return nil, nil, fmt.Errorf("zklock: node %s belongs to session 0x%x, not ours (0x%x)", p, st.EphemeralOwner, g.sessionID)
	case g.ended():
		return nil, nil, g.err
	}
	n, _ := seqnode.Parse(name)
	return newHold(ctx, g, m.full, name, znode.Strip(m.s.cfg.chroot, p), n.Seq, st.Czxid), watch, nil
}

// monitor ends the hold when it is lost: the ZooKeeper session ends (expiry,
// loss deadline, Close) or the node is deleted.
func (m *Mutex) monitor(ctx context.Context, h *hold, watch <-chan zk.Event) {
	defer close(h.exited)
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.g.done:
			h.end(fmt.Errorf("%w: %w", ErrLockLost, h.g.err))
			return
		case ev := <-watch:
			switch ev.Type {
			case zk.EventNodeDeleted:
				h.end(fmt.Errorf("%w: %w", ErrLockLost, ErrNodeDeleted))
				return
			case zk.EventNotWatching:
				watch = nil // the session is ending; g.done follows
				continue
			}
			// Data changed: watches fire once, so set it again.
			var ok bool
			err := m.s.doOn(ctx, h.g, func(c *zk.Conn) (err error) {
				ok, _, watch, err = c.ExistsW(h.dir + "/" + h.name)
				return err
			})
			if err == nil && !ok {
				h.end(fmt.Errorf("%w: %w", ErrLockLost, ErrNodeDeleted))
				return
			}
			if err != nil {
				watch = nil // ctx ended or g ended; the select decides
			}
		}
	}
}

// Unlock releases the lock: it ends the hold (Done closes, Err returns
// ErrNotLocked) and deletes the lock node. If the node cannot be deleted
// before ctx ends, for instance because the connection is down, the delete
// is handed to the Session's cleaner, which retries it until it succeeds or
// the ZooKeeper session ends, and Unlock returns nil: the Mutex can be locked
// again at once.
//
// Unlock returns ErrNotLocked if the Mutex does not hold the lock; if the
// hold was lost, the error also wraps the loss (ErrLockLost and its cause).
func (m *Mutex) Unlock(ctx context.Context) error {
	m.mu.Lock()
	h := m.hold
	m.mu.Unlock()
	if h == nil || !h.claim() {
		return ErrNotLocked
	}
	h.stop()
	<-h.exited
	if !h.end(ErrNotLocked) {
		return fmt.Errorf("%w: %w", ErrNotLocked, h.cause())
	}
	m.s.release(ctx, h.g, h.dir, h.name)
	return nil
}

func (m *Mutex) current() *hold {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.hold
}

// Done returns a channel that is closed when the current hold ends, for any
// reason: Unlock, session expiry, the loss deadline, Session.Close, or the
// node deleted by someone else. Before the first Lock it returns a closed
// channel. Each hold has its own channel; call Done again after a new Lock.
func (m *Mutex) Done() <-chan struct{} {
	if h := m.current(); h != nil {
		return h.done
	}
	return closedChan
}

// Err returns nil while the Mutex holds the lock. After the hold ends it
// returns why: ErrNotLocked after Unlock, or an error wrapping ErrLockLost
// and its cause (ErrSessionExpired, ErrLossDeadline, ErrSessionClosed or
// ErrNodeDeleted). Before the first Lock it returns ErrNotLocked.
func (m *Mutex) Err() error {
	if h := m.current(); h != nil {
		return h.cause()
	}
	return ErrNotLocked
}

// Context returns a context that is cancelled when the current hold ends,
// with Err's value as its cause (context.Cause). It carries the values of
// the ctx passed to Lock. Pass it to the work done under the lock. Before
// the first Lock it returns an already cancelled context.
func (m *Mutex) Context() context.Context {
	if h := m.current(); h != nil {
		return h.ctx
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(ErrNotLocked)
	return ctx
}

// Token returns the fencing token of the current or latest hold: the
// creation zxid (czxid) of its lock node. Tokens strictly increase across
// successive holders of one path, including holders using Curator or kazoo,
// across ZooKeeper leader changes and when the lock directory is deleted and
// created again, because every ZooKeeper write gets a larger zxid. (The
// sequence number would not do: it restarts with the directory and wraps at
// 2^31.) Give it to the resource with every write and have the resource
// reject tokens lower than the highest it has seen. Zero before the first
// Lock.
func (m *Mutex) Token() int64 {
	if h := m.current(); h != nil {
		return h.token
	}
	return 0
}

// Key returns the path of the current or latest hold's lock node, under the
// Session's chroot; "" before the first Lock.
func (m *Mutex) Key() string {
	if h := m.current(); h != nil {
		return h.key
	}
	return ""
}

// Seq returns the sequence number of the current or latest hold's lock node.
func (m *Mutex) Seq() int32 {
	if h := m.current(); h != nil {
		return h.seq
	}
	return 0
}

// Guard returns an operation for Session.Multi that succeeds only while the
// current hold's lock node exists unchanged: a multi carrying it fails with
// zk.ErrNoNode or zk.ErrBadVersion once the lock was lost and released by
// the server, so a late write from a former holder cannot land. Nil before
// the first Lock.
func (m *Mutex) Guard() *zk.CheckVersionRequest {
	h := m.current()
	if h == nil {
		return nil
	}
	// Lock nodes are created with data and never written, so version 0.
	return &zk.CheckVersionRequest{Path: h.key, Version: 0}
}
