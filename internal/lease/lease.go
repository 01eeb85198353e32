// Package lease bounds, from the client, how long the ZooKeeper ensemble's
// leader will keep a session alive.
//
// The leader alone expires sessions. It expires one a timeout T after it
// last learned that the client was active. A client connected to a follower
// touches the session there; the follower passes its touches on only when
// the leader pings it, every half tick, and the leader's expiry thread acts
// on whatever it has learned. While the leader runs, its view lags by about
// half a tick. When it stalls (a long garbage-collection pause, SIGSTOP),
// followers keep answering the client's pings for up to
// syncLimit×tickTime, and the waking leader expires at once every session
// whose last reported touch is more than T old. A lease counted from the
// client's latest answered ping would then outlive the session.
//
// A sync request, by contrast, is answered only after the leader has
// processed it. The client sends one every Interval(T), without waiting for
// the previous one, so the follower also sees a touch at least that often.
// The answers come back in order. A leader stall of length D leaves a gap
// of about D between two answers; without a stall, the leader's view lags
// by half a tick (plus scheduling), and a resumed leader has either
// expired the session at once, so later syncs fail, or caught up within
// half a tick. So when the sync sent at s is answered, and g is the longest
// gap between answers arriving from Window(T) before s until this one, the
// leader cannot expire the session before
//
//	s − g + T − Allowance(T)
//
// where the allowance covers a tick (half for the lag, half for a leader
// that resumed just before it answered) and the interval between syncs,
// provided T is at least five ticks (a tick ≤ T/5). Failed syncs prove
// nothing; the gap they leave counts. Delays the client itself adds (its
// own pauses, scheduling) only widen the gaps it measures.
//
// zklock's safe loss deadline is this bound less a margin, the time a holder
// needs to stop acting on a lost hold plus clock-rate differences and
// network delay (zklock.WithLossMargin; default T/10, at most T/2, never
// cut down):
//
//	deadline = s − g + T − (T/5 + T/40) − margin
//
// The first proof is the send time of the connect request, with no gap. A
// T shorter than five ticks needs the difference, tickTime − T/5, added to
// the margin. This is the one place the derivation is written; the rest of
// zklock's documentation refers here.
package lease

import (
	"slices"
	"sync"
	"time"
)

// Interval is the time between the sends of successive syncs.
func Interval(t time.Duration) time.Duration { return t / 40 }

// Window is how far back from a sync's send time answer gaps count: more
// than half a tick plus the time a resumed leader takes to expire sessions
// or hear from the followers.
func Window(t time.Duration) time.Duration { return t / 5 }

// Allowance is how far the leader's knowledge of the session can trail a
// sync's send time less the gap: a tick (at most T/5) plus the interval
// between syncs.
func Allowance(t time.Duration) time.Duration { return t/5 + Interval(t) }

// Lease is the proof so far. It is safe for concurrent use.
type Lease struct {
	window time.Duration

	mu      sync.Mutex  // guards basis and answers
	basis   time.Time   // the latest proof: a send time less a gap
	answers []time.Time // arrival times of recent answers, ascending
}

// New returns the lease of a session with negotiated timeout t whose
// creation was requested at created: the leader created it no earlier, with
// a full timeout, and its answer arrived later, so the first gap counts from
// there.
func New(t time.Duration, created time.Time) *Lease {
	return &Lease{window: Window(t), basis: created, answers: []time.Time{created}}
}

// Probed records a sync sent at sent whose outcome arrived at arrived:
// answered if ok, failed otherwise. Outcomes must be recorded in the order
// the syncs were sent.
func (l *Lease) Probed(sent, arrived time.Time, ok bool) {
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	// Answers are read in order; a timestamp taken a little late must not
	// make the next gap look shorter than it was.
	if last := l.answers[len(l.answers)-1]; arrived.Before(last) {
		arrived = last
	}
	l.answers = append(l.answers, arrived)
	from := sent.Add(-l.window)
	// Keep the answers from the window on, and the one before them, which
	// opens the window's first gap. Later syncs were sent later, so their
	// windows start later.
	i, _ := slices.BinarySearchFunc(l.answers, from, time.Time.Compare)
	if i > 1 {
		l.answers = slices.Delete(l.answers, 0, i-1)
		i = 1
	}
	var gap time.Duration
	for j := max(i, 1); j < len(l.answers); j++ {
		gap = max(gap, l.answers[j].Sub(l.answers[j-1]))
	}
	if c := sent.Add(-gap); c.After(l.basis) {
		l.basis = c
	}
}

// Basis returns the latest proof: the leader cannot expire the session
// before Basis + T − Allowance(T). It never moves back.
func (l *Lease) Basis() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.basis
}
