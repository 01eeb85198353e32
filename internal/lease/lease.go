// Package lease bounds, from the client, how long the ZooKeeper ensemble's
// leader will keep a session alive.
//
// The leader alone expires sessions. It expires one a timeout T after it
// last learned that the client was active. A client connected to a follower
// touches the session there; the follower passes its touches on only when
// the leader pings it, every half tick, and the leader's expiry thread acts
// on whatever it has learned. So the leader's view lags the follower's by
// half a tick while it runs, and by much more when it stalls (a long
// garbage-collection pause, SIGSTOP): followers keep answering the client's
// pings for up to syncLimit×tickTime of leader silence, and a leader waking
// from such a stall expires at once every session whose last reported touch
// is more than T old. A lease counted from the client's latest answered ping
// would then outlive the session.
//
// A sync request, by contrast, is answered only after the leader has
// processed it. The client sends one every Interval(T), one at a time. A
// sync answered within Fast(T) of being sent shows that the leader was
// running right after the send; the leader had then heard of the client's
// touches up to half a tick plus the gap between syncs before it, so it
// cannot expire the session before
//
//	send time + T − Allowance(T)
//
// provided the negotiated timeout T is at least five ticks (half a tick ≤
// T/10). A slow or failed sync proves nothing, and it may have waited out a
// leader stall: the leader may be expiring the session just as it resumes,
// and a fast sync sent in that instant could still slip through before the
// closing is recorded. So after one, syncs sent within Quarantine(T) of its
// end prove nothing either; by then the leader has either recorded the
// session as closing, and every later sync fails, or received fresh
// touches from the followers.
//
// Stalls shorter than Fast(T) can hide between syncs; the allowance covers
// them.
package lease

import (
	"sync"
	"time"
)

// Interval is the time between the sends of successive syncs.
func Interval(t time.Duration) time.Duration { return t / 40 }

// Fast is the longest round trip of a sync that proves the leader current.
func Fast(t time.Duration) time.Duration { return t / 40 }

// Quarantine is how long after a slow or failed sync no sync proves anything:
// more than half a tick plus the time the leader's threads take to run
// again after a stall.
func Quarantine(t time.Duration) time.Duration { return t / 5 }

// Allowance is how far behind a proving sync's send time the leader's
// knowledge of the session can be: half a tick (at most T/10), plus the
// longest gap between syncs (Interval + Fast), which also covers a stall
// that fell between two syncs.
func Allowance(t time.Duration) time.Duration { return t/10 + Interval(t) + Fast(t) }

// Lease is the proof so far. It is safe for concurrent use.
type Lease struct {
	fast, quarantine time.Duration

	mu    sync.Mutex // guards basis and quiet
	basis time.Time  // send time of the latest proving sync
	quiet time.Time  // syncs sent before this prove nothing
}

// New returns the lease of a session with negotiated timeout t whose
// creation was requested at created: the leader created it no earlier, with
// a full timeout.
func New(t time.Duration, created time.Time) *Lease {
	return &Lease{fast: Fast(t), quarantine: Quarantine(t), basis: created}
}

// Probed records a sync sent at sent that was answered (ok) or failed at
// end.
func (l *Lease) Probed(sent, end time.Time, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !ok || end.Sub(sent) > l.fast {
		if q := end.Add(l.quarantine); q.After(l.quiet) {
			l.quiet = q
		}
		return
	}
	if sent.Before(l.quiet) || !sent.After(l.basis) {
		return
	}
	l.basis = sent
}

// Basis returns the send time of the latest proving sync, or the creation
// time if none has proved anything yet. It never moves back.
func (l *Lease) Basis() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.basis
}
