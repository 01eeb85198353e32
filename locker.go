package zklock

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"github.com/cenkalti/backoff/v4"
	"github.com/go-zookeeper/zk"
)

// Locker adapts a Mutex to sync.Locker, for code that takes one (a
// library, a cache, a pool) and cannot pass a context or handle an error.
// Prefer the Mutex itself wherever a context and an error can be had:
// Locker trades them for the interface.
//
// Lock blocks until the Mutex holds the lock, retrying whatever the Session
// can recover from, and panics only on misuse that no retry can mend.
// Unlock releases the lock within a bounded time. Lockers on different
// Sessions exclude each other like Mutexes on the same path; goroutines
// sharing one Locker also exclude each other, as with a sync.Mutex, and
// Unlock may be called from another goroutine than the Lock it ends.
// A Locker is safe for concurrent use and is not reentrant: a goroutine
// that calls Lock twice without Unlock waits for ever, as with a
// sync.Mutex.
//
// The limits, which come with the interface:
//
//   - There is no context: Lock may wait for ever for a holder that never
//     releases, as any sync.Locker may, and nothing but the lock being
//     free, or a panic, ends it.
//   - There is no error: a lock held can still be lost at any time (see
//     the package documentation, Safety), and Locker cannot say so. Watch
//     the Mutex: Done, Err and Context report the loss, and the Mutex's
//     Token and Guard fence writes. Code that writes to a shared resource
//     under a Locker should still send Token with every write, because
//     the code that took the Locker never hears of a loss.
//   - Give the Mutex only to one Locker, and lock and unlock it only
//     through that Locker: a Lock that finds the Mutex held or being taken
//     by other code panics (ErrBusy), and so does an Unlock that finds it
//     unlocked by other code.
//
// Build it with NewLocker; the zero value is not usable.
type Locker struct {
	m       *Mutex
	turn    chan struct{} // capacity 1: full from the start of a Lock to the end of its Unlock
	logger  *slog.Logger
	policy  Backoff
	clk     clock
	closing <-chan struct{} // closed by Session.Close

	mu   sync.Mutex // guards held
	held bool       // a Lock has returned and no Unlock has been called since
}

var _ sync.Locker = (*Locker)(nil)

// NewLocker returns a Locker that locks and unlocks m. It does no I/O.
//
// It takes a Mutex, not a Session and a path, so that the caller keeps the
// Mutex to watch the hold and fence writes with (Done, Err, Context, Token,
// Guard), which the sync.Locker interface has no room for; and it returns
// the concrete *Locker, which is a sync.Locker, so the documentation of
// Lock and Unlock (when they panic, how long they take) is found where
// they are called. NewLocker panics if m is nil.
func NewLocker(m *Mutex) *Locker {
	if m == nil {
		panic(errorf("NewLocker: nil Mutex"))
	}
	gs := m.r.gens
	return &Locker{
		m: m, turn: make(chan struct{}, 1),
		logger: gs.cfg.logger, policy: gs.cfg.backoff, clk: gs.clk, closing: gs.closing,
	}
}

// Lock blocks until the Mutex holds the lock: it never returns without it.
// It first waits for any other goroutine holding or taking this Locker
// (unless the Session closes: then it panics, as below), then takes the lock as Mutex.Lock does, without a deadline. What the
// Session recovers from, Lock retries, with the Session's backoff policy
// (WithBackoff) between attempts: lost connections, an expired ZooKeeper
// session (the Session opens a new one), a hold lost before Lock could
// return it, and refusals by the server that an operator can end (below).
// Each failed attempt is logged through the Session's logger (WithLogger):
// a lost connection or hold as a warning, a refusal by the server as an
// error.
//
// Lock panics, with an error that wraps the cause (errors.Is works on a
// recovered value), only on misuse that no retry can mend:
//
//   - the Session was closed (ErrSessionClosed), before or during Lock:
//     close the Session only after every goroutine that may call Lock has
//     stopped;
//   - the Mutex's path is invalid (ErrInvalidPath);
//   - its node data is over the servers' limit (ErrTooLarge);
//   - the Session's ACL is one the server rejects (zk.ErrInvalidACL; see
//     WithACL and WithDigestAuth);
//   - the Mutex is held or being taken by other code than this Locker,
//     including the other side of the same RWMutex (ErrBusy).
//
// A permission refusal (zk.ErrNoAuth: the Session may not create the lock
// node or its directory) is not a panic but retried: it depends on ACLs,
// which an operator can change while the process runs, so a retry can
// succeed.
func (l *Locker) Lock() {
	select {
	case l.turn <- struct{}{}:
	case <-l.closing:
		// The goroutine holding the Locker may never unlock it: waiting
		// for it would outlast the Session for a lock no longer to be had.
		panic(errorf("lock %s: %w", l.m.r.path, ErrSessionClosed))
	}
	if err := l.acquire(); err != nil {
		<-l.turn // a recovered panic leaves the Locker usable
		panic(err)
	}
	l.mu.Lock()
	l.held = true
	l.mu.Unlock()
}

// acquire takes the lock, retrying until it holds it; it returns only the
// misuse that Lock panics with.
//
// A permission refusal (zk.ErrNoAuth) is retried: it depends on ACLs, which
// an operator can change while the process runs (setAcl on the lock's path
// or a parent), so it is not permanent by construction, and it is a
// deployment fault, not a fault of the calling code. A panic would take
// the process down over something fixed without a restart; a caller of a
// sync.Locker already accepts that Lock may block for long. Each refusal
// is logged as an error.
func (l *Locker) acquire() error {
	var bo *backoff.ExponentialBackOff
	for {
		err := l.m.Lock(context.Background())
		if err == nil {
			// Granted, but lost already (the loss deadline passed, the node
			// was deleted): returning would lie to the caller.
			if err = l.m.Err(); err == nil {
				return nil
			}
		}
		if errors.Is(err, ErrBusy) {
			return errorf("lock %s: %w: the Mutex is held or being taken without its Locker", l.m.r.path, err)
		}
		if misuse(err) {
			return err
		}
		if bo == nil {
			bo = l.policy.newBackOff(l.clk)
		}
		wait := bo.NextBackOff()
		level := slog.LevelWarn
		if settled(err) {
			level = slog.LevelError // the server refused: waiting alone will not mend it
		}
		l.logger.Log(context.Background(), level, "zklock: Locker could not take the lock; retrying",
			"path", l.m.r.path, "err", err, "retry_in", wait)
		select {
		case <-l.clk.After(wait):
		case <-l.closing:
			return errorf("lock %s: %w", l.m.r.path, ErrSessionClosed)
		}
	}
}

// misuse reports a Lock error that no retry can mend: each depends only on
// the Session's and the Mutex's configuration, which never changes, or on
// the Session being closed, which is final.
func misuse(err error) bool {
	for _, e := range []error{ErrSessionClosed, ErrInvalidPath, ErrTooLarge, zk.ErrInvalidACL} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Unlock releases the lock, as Mutex.Unlock does, and lets the next Lock
// of this Locker go on. It is bounded: it gives the delete of the lock
// node two seconds, and does not wait for a lost connection to come back.
//
// The lock node is always removed eventually: if the delete cannot finish
// in that time or the connection is down, it is handed to the Session's
// cleaner, which retries it in the background until it succeeds or the
// ZooKeeper session ends, which removes the node too. The one exception is a
// delete the server refuses (zk.ErrNoAuth: an ACL without the delete
// permission on the lock's path), logged as an error: the node stays
// until its ZooKeeper session ends, and blocks every contender until then,
// this Locker's next Lock included; Session.Close removes it.
//
// A hold already lost (session expiry, the loss deadline, the node deleted
// by someone else) is not misuse: Unlock logs a warning and returns. Unlock
// panics, with an error wrapping ErrNotLocked, if the Locker is not locked
// (as sync.Mutex's "unlock of unlocked mutex"), or if other code unlocked
// the Mutex while the Locker held it.
func (l *Locker) Unlock() {
	l.mu.Lock()
	if !l.held {
		l.mu.Unlock()
		panic(errorf("unlock of unlocked Locker on %s: %w", l.m.r.path, ErrNotLocked))
	}
	l.held = false
	l.mu.Unlock()
	defer func() { <-l.turn }()

	// The two seconds the documentation promises; past them, or with the
	// connection down, Mutex.Unlock hands the delete to the cleaner.
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	err := l.m.Unlock(ctx)
	switch {
	case err == nil:
	case errors.Is(err, ErrLockLost):
		l.logger.Warn("zklock: the lock was lost before Locker.Unlock", "path", l.m.r.path, "err", err)
	case errors.Is(err, ErrNotLocked):
		panic(errorf("unlock of Locker on %s: the Mutex was unlocked without its Locker: %w", l.m.r.path, err))
	default:
		l.logger.Error("zklock: the server refused to delete the lock node; it stays until its session ends",
			"path", l.m.r.path, "node", l.m.Key(), "err", err)
	}
}
