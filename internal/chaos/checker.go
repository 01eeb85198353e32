package chaos

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/zklock/zklock"
)

// Config holds the bounds the checker judges a History by.
type Config struct {
	// Bound is how long, once faults have stopped, a final-round Lock may
	// take and how long the election may go without a single leader: the
	// session timeout plus 5s.
	Bound time.Duration
	// RevocationBound is how soon a holder must see that an operator
	// deleted its node.
	RevocationBound time.Duration
	// Limits caps the shared holds (Event.Shared) on a lock that may be
	// open at once: a Semaphore's leases. A lock without an entry lets any
	// number share it (readers).
	Limits map[string]int
}

// Properties a Violation can break.
const (
	PropMutex      = "mutual exclusion"
	PropFencing    = "fencing"
	PropLiveness   = "liveness"
	PropHoldEnds   = "hold ends"
	PropRevocation = "revocation noticed"
	PropObserve    = "observed terms"
	PropExpiry     = "no expiry while trusted"
	PropCloseEnds  = "close ends holds"
	PropLimit      = "lease limit"
)

// Violation is one broken property, with the slice of History that shows it.
type Violation struct {
	Property string
	Detail   string
	Events   []Event
	// Omitted counts the events of the slice left out of Events: accepted
	// writes, which only repeat that a hold was in use, and the middle of a
	// long slice.
	Omitted int
}

// Format renders v with times relative to base.
func (v Violation) Format(base time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "VIOLATION of %s: %s\n", v.Property, v.Detail)
	for _, e := range v.Events {
		b.WriteString("  ")
		b.WriteString(e.String(base))
		b.WriteByte('\n')
	}
	if v.Omitted > 0 {
		fmt.Fprintf(&b, "  (%d more events in this span not shown)\n", v.Omitted)
	}
	return b.String()
}

// Stats are the counters of one resource.
type Stats struct {
	Acquisitions int
	Writes       int // accepted writes
	// FencedOff counts writes the resource rejected from holds an operator
	// had revoked, which the holder could not yet know: fencing at work.
	FencedOff int
	// RevokedOverlaps counts holds that began while a revoked holder had
	// not yet seen its loss.
	RevokedOverlaps int
	// Ends counts how holds ended, by Cause.
	Ends map[string]int
	// MaxRecovery is the longest time, after a fault was removed, until a
	// hold was in place again; MaxRecoveryFault is that fault's ID.
	MaxRecovery      time.Duration
	MaxRecoveryFault int
	// SlowestFinal is the longest final-round Lock.
	SlowestFinal time.Duration
	// Closes counts Session.Close calls on the resource's clients, and
	// ClosedHolds the holds open when they were called.
	Closes      int
	ClosedHolds int
	// Losses counts holds lost rather than released or closed.
	// ClosestGrant is the least time from a lost hold's end to the start of
	// the next hold, over the GrantsAfterLoss losses that had one: the
	// margin by which the loss signal beat the next grant.
	Losses          int
	GrantsAfterLoss int
	ClosestGrant    time.Duration
}

// Report is the checker's verdict on a History.
type Report struct {
	Start      time.Time // the first event's time, the base for printing
	Violations []Violation
	Faults     map[FaultKind]int
	Res        map[string]*Stats
}

// Summary renders the counters, one line per item.
func (r *Report) Summary() string {
	var b strings.Builder
	var faults []string
	total := 0
	for _, k := range AllFaults {
		faults = append(faults, fmt.Sprintf("%s=%d", k, r.Faults[k]))
		total += r.Faults[k]
	}
	fmt.Fprintf(&b, "faults: %d (%s)\n", total, strings.Join(faults, " "))
	for _, res := range slices.Sorted(maps.Keys(r.Res)) {
		s := r.Res[res]
		var ends []string
		for _, c := range slices.Sorted(maps.Keys(s.Ends)) {
			ends = append(ends, fmt.Sprintf("%s=%d", c, s.Ends[c]))
		}
		fmt.Fprintf(&b, "%s: acquisitions=%d writes=%d fenced-off=%d revoked-overlaps=%d\n",
			res, s.Acquisitions, s.Writes, s.FencedOff, s.RevokedOverlaps)
		fmt.Fprintf(&b, "%s: hold ends: %s\n", res, strings.Join(ends, " "))
		if s.Closes > 0 {
			fmt.Fprintf(&b, "%s: Session.Close calls: %d, on %d open holds\n", res, s.Closes, s.ClosedHolds)
		}
		if s.GrantsAfterLoss > 0 {
			fmt.Fprintf(&b, "%s: closest grant after a lost hold: %v (over %d of %d losses)\n",
				res, s.ClosestGrant.Round(time.Microsecond), s.GrantsAfterLoss, s.Losses)
		}
		fmt.Fprintf(&b, "%s: max recovery after a fault: %v (fault#%d); slowest final-round lock: %v\n",
			res, s.MaxRecovery.Round(time.Millisecond), s.MaxRecoveryFault, s.SlowestFinal.Round(time.Millisecond))
	}
	fmt.Fprintf(&b, "violations: %d", len(r.Violations))
	return b.String()
}

// Causes of a hold's end, as Cause names them.
const (
	CauseReleased       = "released"        // Unlock or Resign
	CauseLossDeadline   = "loss-deadline"   // ErrLossDeadline
	CauseSessionExpired = "session-expired" // ErrSessionExpired, from the server
	CauseNodeDeleted    = "node-deleted"    // ErrNodeDeleted
	CauseSessionClosed  = "session-closed"  // ErrSessionClosed
	CauseRunStopped     = "run-stopped"     // the Run context ended (elections)
	CauseWithMember     = "with-member"     // ErrMemberEnded
	CauseOther          = "other"
)

// ErrMemberEnded is the harness's cause for a MultiLock member whose own
// hold went on when the MultiLock's hold ended: another member was lost.
var ErrMemberEnded = errors.New("the multi-lock's hold ended with another member's")

// Cause names why a hold ended, from the error it ended with.
// ErrLossDeadline is tested before ErrSessionExpired, which it also wraps.
func Cause(err error) string {
	switch {
	case errors.Is(err, ErrMemberEnded):
		return CauseWithMember
	case errors.Is(err, zklock.ErrLossDeadline):
		return CauseLossDeadline
	case errors.Is(err, zklock.ErrSessionExpired):
		return CauseSessionExpired
	case errors.Is(err, zklock.ErrNodeDeleted):
		return CauseNodeDeleted
	case errors.Is(err, zklock.ErrSessionClosed):
		return CauseSessionClosed
	case errors.Is(err, zklock.ErrNotLocked), errors.Is(err, zklock.ErrNotLeader), errors.Is(err, zklock.ErrNotHeld):
		return CauseReleased
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return CauseRunStopped
	}
	return CauseOther
}

// hold is one hold reconstructed from a History.
type hold struct {
	begin    Event  // OpLockOK
	end      *Event // OpHoldEnd; nil if Done was never seen closed
	unlock   *Event // OpUnlockCall
	revoke   *Event // OpFaultStart of an effective FaultDeleteNode on it
	lastSeen Event  // the hold's latest event, for excerpts
}

// ended is when the holder stopped acting as one: the earlier of its Done
// closing and its Unlock call. Zero if neither happened.
func (h *hold) ended() time.Time {
	var t time.Time
	if h.end != nil {
		t = h.end.At
	}
	if h.unlock != nil && (t.IsZero() || h.unlock.At.Before(t)) {
		t = h.unlock.At
	}
	return t
}

// exclusiveUntil is when the hold stopped excluding others: when it ended,
// or earlier when an operator revoked it, since a revoked holder cannot
// learn of the deletion before the server tells it, while the next holder
// may be told first.
func (h *hold) exclusiveUntil() time.Time {
	t := h.ended()
	if h.revoke != nil && (t.IsZero() || h.revoke.At.Before(t)) {
		t = h.revoke.At
	}
	return t
}

func (h *hold) events() []Event {
	out := []Event{h.begin}
	for _, e := range []*Event{h.revoke, h.unlock, h.end} {
		if e != nil {
			out = append(out, *e)
		}
	}
	return out
}

// Check judges events (a complete History: every Session closed) against
// the properties in the package documentation. It is pure: it reads only
// its arguments.
func Check(events []Event, cfg Config) *Report {
	evs := slices.Clone(events)
	slices.SortStableFunc(evs, func(a, b Event) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return cmp.Compare(a.Index, b.Index)
	})
	r := &Report{Faults: make(map[FaultKind]int), Res: make(map[string]*Stats)}
	if len(evs) > 0 {
		r.Start = evs[0].At
	}
	stats := func(res string) *Stats {
		s := r.Res[res]
		if s == nil {
			s = &Stats{Ends: make(map[string]int)}
			r.Res[res] = s
		}
		return s
	}
	c := &checker{all: evs, cfg: cfg, r: r}

	holds := make(map[int]*hold)
	byKey := make(map[string]*hold)
	var order []*hold
	faultStarts := make(map[int]Event)
	var faultEnds []Event
	type who struct {
		res    string
		client int
	}
	closeCalls := make(map[who]Event)
	var closes []closing
	for i := range evs {
		e := evs[i]
		if e.Hold != 0 {
			if h := holds[e.Hold]; h != nil {
				h.lastSeen = e
			}
		}
		switch e.Op {
		case OpLockOK:
			h := &hold{begin: e, lastSeen: e}
			holds[e.Hold] = h
			if e.Key != "" {
				byKey[e.Key] = h
			}
			order = append(order, h)
			stats(e.on()).Acquisitions++
		case OpHoldEnd:
			if h := holds[e.Hold]; h != nil && h.end == nil {
				h.end = &evs[i]
				stats(h.begin.on()).Ends[Cause(e.Err)]++
			}
		case OpUnlockCall:
			if h := holds[e.Hold]; h != nil && h.unlock == nil {
				h.unlock = &evs[i]
			}
		case OpFaultStart:
			if e.Fault != nil {
				r.Faults[e.Fault.Kind]++
				faultStarts[e.Fault.ID] = e
			}
		case OpFaultEnd:
			if e.Fault == nil {
				continue
			}
			faultEnds = append(faultEnds, e)
			start, started := faultStarts[e.Fault.ID]
			if !e.OK || !started {
				continue
			}
			switch e.Fault.Kind {
			case FaultDeleteNode:
				if h := holds[e.Fault.Hold]; h != nil {
					h.revoke = &start
				}
			case FaultDeleteDir:
				// Every contender node deleted with the directory: held
				// ones are revoked, as by FaultDeleteNode.
				for _, k := range e.Fault.Keys {
					if h := byKey[k]; h != nil && h.revoke == nil {
						h.revoke = &start
					}
				}
			}
		case OpCloseCall:
			closeCalls[who{e.Res, e.Client}] = e
		case OpCloseDone:
			if call, ok := closeCalls[who{e.Res, e.Client}]; ok {
				closes = append(closes, closing{call: call, done: e})
				delete(closeCalls, who{e.Res, e.Client})
			}
		}
	}

	// Holds are judged by the lock they are on.
	byRes := make(map[string][]*hold)
	for _, h := range order {
		byRes[h.begin.on()] = append(byRes[h.begin.on()], h)
	}
	c.closeOpen(closes)
	for _, res := range slices.Sorted(maps.Keys(byRes)) {
		hs := byRes[res]
		slices.SortStableFunc(hs, func(a, b *hold) int {
			if c := a.begin.At.Compare(b.begin.At); c != 0 {
				return c
			}
			return cmp.Compare(a.begin.Hold, b.begin.Hold)
		})
		c.holdsEnd(hs)
		c.exclusion(hs, cfg.Limits[res], stats(res))
		c.margins(hs, stats(res))
		c.tokens(hs)
		c.revocations(hs)
		c.expiries(hs)
		c.recovery(hs, faultEnds, stats(res))
		c.closeEnds(hs, closes, stats(res))
	}
	c.writes(holds, stats)
	c.finalRounds(stats)
	c.leaderChecks(byRes)
	c.observed()
	return r
}

type checker struct {
	all []Event // sorted by time
	cfg Config
	r   *Report
}

// maxExcerpt caps the events shown for one violation: half from its start,
// half from its end.
const maxExcerpt = 80

// violate records a violation with the History between the earliest and
// latest of the involved events, restricted to the clients involved, the
// faults and the phases.
func (c *checker) violate(prop, detail string, involved ...Event) {
	type who struct {
		res    string
		client int
	}
	clients := make(map[who]bool)
	idx := make(map[int]bool)
	var from, to time.Time
	for i, e := range involved {
		clients[who{e.Res, e.Client}] = true
		idx[e.Index] = true
		if i == 0 || e.At.Before(from) {
			from = e.At
		}
		if i == 0 || e.At.After(to) {
			to = e.At
		}
	}
	var slice []Event
	omitted := 0
	for _, e := range c.all {
		if e.At.Before(from) || e.At.After(to) {
			continue
		}
		switch {
		case idx[e.Index]:
		case e.Res != "" && !clients[who{e.Res, e.Client}]:
			continue
		case e.Op == OpWrite && e.OK:
			omitted++
			continue
		}
		slice = append(slice, e)
	}
	if len(slice) > maxExcerpt {
		omitted += len(slice) - maxExcerpt
		slice = append(slice[:maxExcerpt/2:maxExcerpt/2], slice[len(slice)-maxExcerpt/2:]...)
	}
	c.r.Violations = append(c.r.Violations, Violation{Property: prop, Detail: detail, Events: slice, Omitted: omitted})
}

// holdsEnd: after every Session has closed, every hold's Done has closed.
func (c *checker) holdsEnd(hs []*hold) {
	for _, h := range hs {
		if h.end == nil {
			c.violate(PropHoldEnds, fmt.Sprintf("%s c%d hold %d: its Done never closed",
				h.begin.Res, h.begin.Client, h.begin.Hold), h.begin, h.lastSeen)
		}
	}
}

// exclusion: for any two holds on a lock, one ended before the other's
// Lock returned, unless both are shared; and at most limit shared holds
// are open at once, if limit is set. hs is sorted by start; active keeps
// the earlier holds that may still overlap a later start.
func (c *checker) exclusion(hs []*hold, limit int, s *Stats) {
	var active []*hold
	for _, h := range hs {
		start := h.begin.At
		active = slices.DeleteFunc(active, func(a *hold) bool {
			end := a.ended()
			return !end.IsZero() && end.Before(start)
		})
		var sharing []*hold // the shared holds h overlaps, if h is shared
		for _, a := range active {
			until := a.exclusiveUntil()
			if !until.IsZero() && until.Before(start) {
				s.RevokedOverlaps++ // revoked, not yet told: fencing's case
				continue
			}
			if h.begin.Shared && a.begin.Shared {
				sharing = append(sharing, a)
				continue
			}
			detail := fmt.Sprintf("%s c%d's %s %d (token 0x%x) began at +%.6fs while %s c%d's %s %d (token 0x%x) had not ended",
				h.begin.Res, h.begin.Client, h.kind(), h.begin.Hold, h.begin.Token, start.Sub(c.r.Start).Seconds(),
				a.begin.Res, a.begin.Client, a.kind(), a.begin.Hold, a.begin.Token)
			if end := a.ended(); !end.IsZero() {
				detail += fmt.Sprintf(" (it ended %v later)", end.Sub(start))
			}
			c.violate(PropMutex, detail, append(a.events(), h.begin)...)
		}
		if limit > 0 && len(sharing) >= limit {
			involved := []Event{h.begin}
			var tokens []string
			for _, a := range sharing {
				involved = append(involved, a.begin)
				tokens = append(tokens, fmt.Sprintf("%s c%d hold %d (token 0x%x)", a.begin.Res, a.begin.Client, a.begin.Hold, a.begin.Token))
			}
			c.violate(PropLimit, fmt.Sprintf("%s c%d's %s %d (token 0x%x) began at +%.6fs while %d of %d were open: %s",
				h.begin.Res, h.begin.Client, h.kind(), h.begin.Hold, h.begin.Token, start.Sub(c.r.Start).Seconds(),
				len(sharing), limit, strings.Join(tokens, ", ")), involved...)
		}
		active = append(active, h)
	}
}

// kind names a hold for people: a shared hold is a read hold or a lease,
// which the checker need not tell apart.
func (h *hold) kind() string {
	if h.begin.Shared {
		return "shared hold"
	}
	return "hold"
}

// margins measures how long before the next grant each lost hold ended.
// Holds are sorted by start; the next hold to begin after a loss is the
// first later one starting after its end.
func (c *checker) margins(hs []*hold, s *Stats) {
	for i, h := range hs {
		if h.end == nil || h.unlock != nil && !h.unlock.At.After(h.end.At) {
			continue // released, or never ended
		}
		switch Cause(h.end.Err) {
		case CauseReleased, CauseRunStopped, CauseSessionClosed, CauseWithMember:
			continue // not lost; a member that went on keeps its node until Unlock
		}
		if h.revoke != nil {
			continue // an operator's delete races the next grant by nature
		}
		s.Losses++
		end := h.ended()
		for _, n := range hs[i+1:] {
			if n.begin.At.After(end) {
				gap := n.begin.At.Sub(end)
				if s.GrantsAfterLoss == 0 || gap < s.ClosestGrant {
					s.ClosestGrant = gap
				}
				s.GrantsAfterLoss++
				break
			}
		}
	}
}

// tokens: on a lock, fencing tokens strictly increase in the order holds
// begin, but for two shared holds, which may begin in either order: a
// hold's token is above the token of every earlier hold that it may not
// share the lock with. Shared holds' tokens still differ, and increase
// from one hold of a client to its next.
func (c *checker) tokens(hs []*hold) {
	type who struct {
		res    string
		client int
	}
	var top, excl *hold // the earlier hold with the highest token; the latest exclusive one
	tokens := make(map[int64]*hold)
	last := make(map[who]*hold)
	for _, h := range hs {
		prev := top
		if h.begin.Shared {
			prev = excl
		}
		if prev != nil && h.begin.Token <= prev.begin.Token {
			c.violate(PropFencing, fmt.Sprintf("%s %s %d (c%d) has token 0x%x, not above 0x%x of the %s %d (%s c%d) before it",
				h.begin.Res, h.kind(), h.begin.Hold, h.begin.Client, h.begin.Token, prev.begin.Token,
				prev.kind(), prev.begin.Hold, prev.begin.Res, prev.begin.Client),
				prev.begin, h.begin)
		} else if o := tokens[h.begin.Token]; o != nil {
			c.violate(PropFencing, fmt.Sprintf("%s %s %d (c%d) has the token 0x%x of %s %d (%s c%d)",
				h.begin.Res, h.kind(), h.begin.Hold, h.begin.Client, h.begin.Token, o.kind(), o.begin.Hold, o.begin.Res, o.begin.Client),
				o.begin, h.begin)
		} else if p := last[who{h.begin.Res, h.begin.Client}]; p != nil && h.begin.Token <= p.begin.Token {
			c.violate(PropFencing, fmt.Sprintf("%s c%d's %s %d has token 0x%x, not above 0x%x of its %s %d before it",
				h.begin.Res, h.begin.Client, h.kind(), h.begin.Hold, h.begin.Token, p.begin.Token, p.kind(), p.begin.Hold),
				p.begin, h.begin)
		}
		tokens[h.begin.Token] = h
		last[who{h.begin.Res, h.begin.Client}] = h
		if top == nil || h.begin.Token > top.begin.Token {
			top = h
		}
		if !h.begin.Shared {
			excl = h
		}
	}
}

// closing is one Session.Close: its call and its return.
type closing struct{ call, done Event }

// closeOpen: Session.Close returns only once every hold made under the
// Session has ended; OpCloseDone lists those whose Done was still open
// when Close returned.
func (c *checker) closeOpen(closes []closing) {
	for _, cl := range closes {
		for _, id := range cl.done.Open {
			c.violate(PropCloseEnds, fmt.Sprintf("%s c%d's Session.Close returned while its hold %d had not ended",
				cl.call.Res, cl.call.Client, id), cl.call, cl.done)
		}
	}
}

// closeEnds: Session.Close ends every hold made under the Session before
// any other client is granted what they held. A hold on a lock is the
// closed Session's if it was open when Close was called (a client holds a
// lock at most once at a time, under its current Session).
func (c *checker) closeEnds(hs []*hold, closes []closing, s *Stats) {
	for _, cl := range closes {
		if !slices.ContainsFunc(hs, func(h *hold) bool { return h.begin.Res == cl.call.Res }) {
			continue
		}
		s.Closes++
		for i, h := range hs {
			if h.begin.Res != cl.call.Res || h.begin.Client != cl.call.Client || !h.begin.At.Before(cl.call.At) {
				continue
			}
			if end := h.ended(); !end.IsZero() && end.Before(cl.call.At) {
				continue // over before Close was called
			}
			s.ClosedHolds++
			end := h.exclusiveUntil()
			if end.IsZero() {
				c.violate(PropCloseEnds, fmt.Sprintf("%s c%d's hold %d never ended, though its Session was closed",
					h.begin.Res, h.begin.Client, h.begin.Hold), h.begin, cl.call, cl.done)
				continue
			}
			// The first grant to another client after Close was called.
			for _, n := range hs[i+1:] {
				if n.begin.Res == h.begin.Res && n.begin.Client == h.begin.Client || !n.begin.At.After(cl.call.At) {
					continue
				}
				if n.begin.Shared && h.begin.Shared {
					continue // sharing the lock is no grant of what h held
				}
				if n.begin.At.Before(end) {
					c.violate(PropCloseEnds, fmt.Sprintf("%s c%d's hold %d (token 0x%x) was granted %v before %s c%d's hold %d, whose Session was being closed, ended",
						n.begin.Res, n.begin.Client, n.begin.Hold, n.begin.Token, end.Sub(n.begin.At), h.begin.Res, h.begin.Client, h.begin.Hold),
						append(h.events(), cl.call, cl.done, n.begin)...)
				}
				break
			}
		}
	}
}

// revocations: a holder whose node an operator deleted sees its loss
// within RevocationBound.
func (c *checker) revocations(hs []*hold) {
	for _, h := range hs {
		if h.revoke == nil {
			continue
		}
		end := h.ended()
		if !end.IsZero() && end.Before(h.revoke.At) {
			continue // released before the delete landed
		}
		if end.IsZero() || end.Sub(h.revoke.At) > c.cfg.RevocationBound {
			lag := "never"
			if !end.IsZero() {
				lag = end.Sub(h.revoke.At).String()
			}
			c.violate(PropRevocation, fmt.Sprintf("%s c%d's hold %d saw the deletion of its node %s (bound %v)",
				h.begin.Res, h.begin.Client, h.begin.Hold, lag, c.cfg.RevocationBound), h.events()...)
		}
	}
}

// expiries: a node is deleted only by its holder's release, an operator,
// or the server expiring the holder's session; the Session presumes its
// session lost at the safe loss deadline, before the server may expire it,
// so a hold that learns of its node's deletion with no operator involved
// was trusted while the server had already expired its session and could
// grant the lock to another.
func (c *checker) expiries(hs []*hold) {
	for _, h := range hs {
		if h.end == nil || h.revoke != nil || Cause(h.end.Err) != CauseNodeDeleted {
			continue
		}
		if h.unlock != nil && !h.unlock.At.After(h.end.At) {
			continue
		}
		c.violate(PropExpiry, fmt.Sprintf("%s c%d's hold %d (token 0x%x) learnt that its node was deleted, and no operator deleted it: "+
			"the server expired the session before the client's safe loss deadline",
			h.begin.Res, h.begin.Client, h.begin.Hold, h.begin.Token), h.events()...)
	}
}

// writes: the fenced resource accepted every write (and read) made inside
// a hold, except a revoked holder's after the revocation.
func (c *checker) writes(holds map[int]*hold, stats func(string) *Stats) {
	for _, e := range c.all {
		if e.Op != OpWrite && e.Op != OpRead {
			continue
		}
		h := holds[e.Hold]
		if e.OK {
			stats(e.on()).Writes++
			continue
		}
		if h != nil && h.revoke != nil && !e.At.Before(h.revoke.At) {
			stats(e.on()).FencedOff++
			continue
		}
		involved := []Event{e}
		if h != nil {
			involved = append(involved, h.begin)
		}
		// Show the first write that raised the resource past this token.
		for _, o := range c.all {
			if o.At.After(e.At) {
				break
			}
			if o.Op == OpWrite && o.on() == e.on() && o.OK && o.Token > e.Token {
				involved = append(involved, o)
				if oh := holds[o.Hold]; oh != nil {
					involved = append(involved, oh.begin)
				}
				break
			}
		}
		c.violate(PropFencing, fmt.Sprintf("%s c%d's %s on %s with token 0x%x inside hold %d was rejected (%s)",
			e.Res, e.Client, e.Op, e.on(), e.Token, e.Hold, e.Note), involved...)
	}
}

// finalRounds: after PhaseFinalRound, each client that calls Lock gets the
// lock within Bound.
func (c *checker) finalRounds(stats func(string) *Stats) {
	for _, p := range c.all {
		if p.Op != OpPhase || p.Phase != PhaseFinalRound {
			continue
		}
		calls := make(map[int]Event)
		oks := make(map[int]Event)
		errs := make(map[int]Event)
		for _, e := range c.all {
			if e.Res != p.Res || e.At.Before(p.At) {
				continue
			}
			switch e.Op {
			case OpLockCall:
				if _, ok := calls[e.Client]; !ok {
					calls[e.Client] = e
				}
			case OpLockOK:
				if _, ok := oks[e.Client]; !ok {
					oks[e.Client] = e
				}
			case OpLockErr:
				if _, ok := errs[e.Client]; !ok {
					errs[e.Client] = e
				}
			}
		}
		for _, cl := range slices.Sorted(maps.Keys(calls)) {
			ok, got := oks[cl]
			if got {
				took := ok.At.Sub(p.At)
				stats(p.Res).SlowestFinal = max(stats(p.Res).SlowestFinal, took)
				if took <= c.cfg.Bound {
					continue
				}
				c.violate(PropLiveness, fmt.Sprintf("%s c%d's final Lock took %v after the faults stopped (bound %v)",
					p.Res, cl, took, c.cfg.Bound), p, calls[cl], ok)
				continue
			}
			involved := []Event{p, calls[cl]}
			if e, failed := errs[cl]; failed {
				involved = append(involved, e)
			}
			c.violate(PropLiveness, fmt.Sprintf("%s c%d never got the lock in the final round (bound %v)", p.Res, cl, c.cfg.Bound),
				involved...)
		}
	}
}

// leaderChecks: at each PhaseLeaderCheck exactly one hold of its resource
// is open, it is the node the harness saw lead, and the observer's latest
// term agrees.
func (c *checker) leaderChecks(byRes map[string][]*hold) {
	for _, p := range c.all {
		if p.Op != OpPhase || p.Phase != PhaseLeaderCheck {
			continue
		}
		if !p.OK {
			c.violate(PropLiveness, fmt.Sprintf("%s: no single leader within %v after the faults stopped: %s", p.Res, c.cfg.Bound, p.Note), p)
			continue
		}
		var open []*hold
		for _, h := range byRes[p.Res] {
			end := h.ended()
			if !h.begin.At.After(p.At) && (end.IsZero() || end.After(p.At)) {
				open = append(open, h)
			}
		}
		if len(open) != 1 || open[0].begin.Key != p.Key {
			involved := []Event{p}
			for _, h := range open {
				involved = append(involved, h.begin)
			}
			c.violate(PropLiveness, fmt.Sprintf("%s: %d terms open at the leader check, want exactly one, on %s",
				p.Res, len(open), shortKey(p.Key)), involved...)
		}
		var last *Event
		for i := range c.all {
			e := &c.all[i]
			if e.Op == OpObserve && e.Res == p.Res && !e.At.After(p.At) {
				last = e
			}
		}
		if last == nil || last.Key != p.Key {
			involved := []Event{p}
			if last != nil {
				involved = append(involved, *last)
			}
			c.violate(PropLiveness, fmt.Sprintf("%s: the observer's latest term is not the leader at the leader check", p.Res), involved...)
		}
	}
}

// observed: the terms Observe reports have strictly increasing tokens.
func (c *checker) observed() {
	last := make(map[string]Event)
	for _, e := range c.all {
		if e.Op != OpObserve {
			continue
		}
		if prev, ok := last[e.Res]; ok && e.Token <= prev.Token {
			c.violate(PropObserve, fmt.Sprintf("%s: observed term with token 0x%x after one with 0x%x", e.Res, e.Token, prev.Token), prev, e)
		}
		last[e.Res] = e
	}
}

// recovery measures, for each fault, the time from its removal until a
// hold was in place: zero if one was open then, else until the next began.
func (c *checker) recovery(hs []*hold, faultEnds []Event, s *Stats) {
	for _, f := range faultEnds {
		at := f.At
		var took time.Duration
		found := false
		for _, h := range hs {
			end := h.ended()
			if !h.begin.At.After(at) && (end.IsZero() || end.After(at)) {
				took, found = 0, true
				break
			}
			if h.begin.At.After(at) {
				took, found = h.begin.At.Sub(at), true
				break
			}
		}
		if found && took > s.MaxRecovery {
			s.MaxRecovery, s.MaxRecoveryFault = took, f.Fault.ID
		}
	}
}
