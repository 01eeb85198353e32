package zklock

import (
	"errors"
	"fmt"
	"strings"
)

// ErrLocked is returned by TryLock when another contender holds the lock.
var ErrLocked = errors.New("zklock: locked by another holder")

// ErrNotLocked is returned by Unlock when the Mutex does not hold the lock.
var ErrNotLocked = errors.New("zklock: not locked")

// ErrLockLost is the cause of a hold that ended without Unlock. It is always
// wrapped together with the reason: ErrSessionExpired, ErrLossDeadline,
// ErrNodeDeleted or ErrSessionClosed.
var ErrLockLost = errors.New("zklock: lock lost")

// ErrSessionExpired reports that the ZooKeeper session a hold or operation
// was bound to has ended: the server expired it, or the client presumed it
// expired at the safe loss deadline (then ErrLossDeadline is wrapped too).
var ErrSessionExpired = errors.New("zklock: session expired")

// ErrLossDeadline reports that the safe loss deadline passed without the
// ZooKeeper leader confirming the session (the connection stayed down, or
// the leader stopped answering), after which the leader may already have
// expired it.
var ErrLossDeadline = errors.New("zklock: session unconfirmed past the safe loss deadline")

// ErrSessionClosed is returned by operations on a Session after Close.
var ErrSessionClosed = errors.New("zklock: session closed")

// ErrNodeDeleted reports that a hold's node was deleted by someone else.
var ErrNodeDeleted = errors.New("zklock: lock node deleted by another client")

// ErrNotLeader is returned by Resign when the Election does not lead.
var ErrNotLeader = errors.New("zklock: not leader")

// ErrNoLeader is returned by Leader when no candidate leads.
var ErrNoLeader = errors.New("zklock: no leader")

// ErrInvalidPath reports a znode path that ZooKeeper would reject (its
// rules are applied before any request is sent), or one a recipe cannot use:
// the root, and paths under /zookeeper, which ZooKeeper reserves.
var ErrInvalidPath = errors.New("zklock: invalid path")

// ErrInvalidOption reports an option or argument value that cannot work; the
// error names the value.
var ErrInvalidOption = errors.New("zklock: invalid option")

// ErrSubscriptionStopped is returned by Subscription.Next after Stop.
var ErrSubscriptionStopped = errors.New("zklock: subscription stopped")

// errGenerationEnded marks a failure caused by the end of the ZooKeeper
// session an operation ran on; operations not bound to one session retry on
// the next.
var errGenerationEnded = errors.New("zklock: zookeeper session ended during the operation")

// ErrBusy is returned by Lock and TryLock on a Mutex that already holds its
// lock or is acquiring it, and by Campaign on an Election that already leads
// or is campaigning: neither is reentrant.
var ErrBusy = errors.New("zklock: already held or being acquired")

// ErrLeadershipLost is the cause of a leadership that ended without Resign.
// Like ErrLockLost it is wrapped together with the reason.
var ErrLeadershipLost = errors.New("zklock: leadership lost")

// errNotListed: a request pipelined behind a create was not sent, because
// the create was not; the caller lists again.
var errNotListed = errors.New("zklock: listing not sent")

// errEmptyQueue: a queue has no contender.
var errEmptyQueue = errors.New("zklock: no contender")

// errRelist: the first contender went while it was read; the pending watch
// reports the change.
var errRelist = errors.New("zklock: first contender changed while read")

// ErrOutcomeUnknown reports that a write may or may not have taken effect:
// its request was sent but the reply never came (the connection or the
// ZooKeeper session was lost, or ctx ended), and reading the node afterwards
// could not tell the write's effect apart from other clients' writes. The
// error also wraps its cause, and what is known about the node (for
// example zk.ErrNodeExists when a Create finds the node there). Read the
// node to decide what to do; writing unique data (an id of the writer)
// makes the outcome checkable by comparing it.
var ErrOutcomeUnknown = errors.New("zklock: outcome of the write unknown")

// errorf is fmt.Errorf for the package's errors: the message carries the
// package prefix once, at its start, however many of the package's errors
// it wraps (each sentinel carries it too), and errors.Is and errors.As see
// every error it wraps.
func errorf(format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	w := &prefixedError{msg: prefix + stripPrefixes(err.Error())}
	switch u := err.(type) {
	case interface{ Unwrap() []error }:
		w.errs = u.Unwrap()
	case interface{ Unwrap() error }:
		w.errs = []error{u.Unwrap()}
	}
	return w
}

// prefix starts every message of the package's errors.
const prefix = "zklock: "

// stripPrefixes removes the package prefix where a wrapped error's message
// starts: at the start, after ": ", or after "(" (as in "(last error: ").
// Elsewhere, in a path or a caller's words, it stays.
func stripPrefixes(msg string) string {
	var b strings.Builder
	for i := 0; i < len(msg); {
		if strings.HasPrefix(msg[i:], prefix) && (i == 0 || strings.HasSuffix(msg[:i], ": ") || msg[i-1] == '(') {
			i += len(prefix)
			continue
		}
		b.WriteByte(msg[i])
		i++
	}
	return b.String()
}

// prefixedError is an error made by errorf.
type prefixedError struct {
	msg  string
	errs []error
}

func (e *prefixedError) Error() string   { return e.msg }
func (e *prefixedError) Unwrap() []error { return e.errs }

// ErrZxidRegression reports that a new ZooKeeper session found the
// ensemble's zxid below one seen in an earlier ZooKeeper session: the
// ensemble lost transactions (it was restarted with empty data directories,
// or restored from an older snapshot). Fencing tokens, which are zxids,
// start again below earlier ones, so a resource that rejects lower tokens
// refuses every new holder until an operator intervenes. It reaches
// subscribers as the Err of a StateConnected change, and is logged as an
// error.
var ErrZxidRegression = errors.New("zklock: zxid went backwards")

// ErrTooLarge reports a request larger than the server accepts (its
// jute.maxbuffer; see WithJuteMaxBuffer). It is refused before it is sent:
// the server would drop the connection.
var ErrTooLarge = errors.New("zklock: request too large")

// ErrLeaseLost is the cause of a Semaphore lease that ended without
// Release. Like ErrLockLost it is wrapped together with the reason.
var ErrLeaseLost = errors.New("zklock: lease lost")

// ErrNotHeld is returned by Lease.Release when the lease is no longer held.
var ErrNotHeld = errors.New("zklock: lease not held")
