package chaos

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"
	"time"
)

// Resources the scenarios contend for; they name an Event's Res.
const (
	ResLock     = "lock"     // the Mutex scenario
	ResElection = "election" // the Election scenario
	ResRW       = "rw"       // the RWMutex scenario
	ResSem      = "sem"      // the Semaphore scenario
	// ResMulti is the MultiLock scenario, and the second lock its clients
	// take: each MultiLock holds the Mutex scenario's lock and its own.
	ResMulti = "multi"
)

// Phases the harness marks in the History for the checker.
const (
	// PhaseFinalRound starts the last round of the Mutex scenario, after
	// the faults: every client Locks once, within Config.Bound.
	PhaseFinalRound = "final-round"
	// PhaseLeaderCheck is the moment the harness confirmed a single leader
	// after the faults (OK), or gave up waiting for one (not OK). Key is the
	// leader's node.
	PhaseLeaderCheck = "leader-check"
)

// Op is what an Event records.
type Op int

// The operations a History records.
const (
	OpLockCall   Op = iota + 1 // a client calls Lock
	OpLockOK                   // Lock returned nil, or a term began: a hold starts
	OpLockErr                  // Lock returned an error
	OpWrite                    // a holder wrote to the fenced resource
	OpHoldEnd                  // the hold's Done was seen closed; Err is its cause
	OpUnlockCall               // the holder calls Unlock
	OpUnlockDone               // Unlock returned
	OpState                    // a client's Session changed state
	OpObserve                  // the observer saw a new leader (Observe)
	OpFaultStart               // the nemesis starts a fault
	OpFaultEnd                 // the nemesis has removed a fault
	OpPhase                    // a phase marker for the checker
	OpCloseCall                // the harness calls the client's Session.Close
	OpCloseDone                // Session.Close returned; Open lists holds still open
	OpRead                     // a reader read the fenced resource
)

var opNames = map[Op]string{
	OpLockCall:   "lock-call",
	OpLockOK:     "lock-ok",
	OpLockErr:    "lock-err",
	OpWrite:      "write",
	OpHoldEnd:    "hold-end",
	OpUnlockCall: "unlock-call",
	OpUnlockDone: "unlock-done",
	OpState:      "state",
	OpObserve:    "observe",
	OpFaultStart: "fault-start",
	OpFaultEnd:   "fault-end",
	OpPhase:      "phase",
	OpCloseCall:  "close-call",
	OpCloseDone:  "close-done",
	OpRead:       "read",
}

func (o Op) String() string {
	if s, ok := opNames[o]; ok {
		return s
	}
	return fmt.Sprintf("Op(%d)", int(o))
}

// Event is one entry of a History. Fields that do not apply to its Op are
// zero.
type Event struct {
	Index  int       // position in the History, set by Add
	At     time.Time // when it happened, with a monotonic reading
	Op     Op
	Res    string // the client's scenario (ResLock, ResElection, ...); "" for faults
	Client int    // the client's number within Res; -1 when no client
	Hold   int    // the hold the event belongs to; 0 for none
	Token  int64  // fencing token (OpLockOK, OpWrite, OpRead, OpObserve)
	// On is the lock a hold is on, when it is not Res's own: a MultiLock
	// holds several, one hold each (OpLockOK, OpWrite, OpRead).
	On string
	// Shared marks a hold that others may share: a read hold, or a lease
	// (OpLockOK).
	Shared bool
	Key    string // node path under the chroot (OpLockOK, OpObserve, OpPhase)
	OK     bool   // OpWrite: accepted; OpFaultEnd: took effect; OpPhase: condition met
	Err    error  // OpLockErr, OpUnlockDone: returned error; OpHoldEnd: the hold's cause
	Fault  *Fault // OpFaultStart, OpFaultEnd
	Phase  string // OpPhase
	Note   string // free text for people reading the History
	// OpCloseDone: the client's holds whose Done had not closed when Close
	// returned (looked at right then, not as their watchers report).
	Open []int
}

// String formats e with its time relative to base.
func (e Event) String(base time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%+11.6fs #%-5d", e.At.Sub(base).Seconds(), e.Index)
	who := "nemesis"
	if e.Res != "" {
		who = e.Res
		if e.Client >= 0 {
			who += fmt.Sprintf(" c%d", e.Client)
		}
	}
	fmt.Fprintf(&b, " %-12s %-11s", who, e.Op)
	if e.Hold != 0 {
		fmt.Fprintf(&b, " hold=%d", e.Hold)
	}
	if e.Token != 0 {
		fmt.Fprintf(&b, " token=0x%x", e.Token)
	}
	if e.Key != "" {
		fmt.Fprintf(&b, " key=%s", shortKey(e.Key))
	}
	if e.On != "" {
		fmt.Fprintf(&b, " on=%s", e.On)
	}
	if e.Shared {
		b.WriteString(" shared")
	}
	switch e.Op {
	case OpWrite, OpRead:
		fmt.Fprintf(&b, " accepted=%t", e.OK)
	case OpFaultEnd:
		fmt.Fprintf(&b, " effective=%t", e.OK)
	case OpPhase:
		fmt.Fprintf(&b, " %s ok=%t", e.Phase, e.OK)
	case OpCloseDone:
		if len(e.Open) > 0 {
			fmt.Fprintf(&b, " holds-still-open=%v", e.Open)
		}
	}
	if e.Fault != nil {
		fmt.Fprintf(&b, " %s", e.Fault)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, " err=%q", e.Err.Error())
	}
	if e.Note != "" {
		fmt.Fprintf(&b, " (%s)", e.Note)
	}
	return b.String()
}

// on is the lock e's hold is on: On, or else Res.
func (e Event) on() string {
	if e.On != "" {
		return e.On
	}
	return e.Res
}

// shortKey drops the protected UUID from a contender node's name, which is
// long and tells a reader nothing the sequence number does not.
func shortKey(key string) string {
	dir, name := path.Split(key)
	if strings.HasPrefix(name, "_c_") && len(name) > 3+36 {
		name = "_c_…" + name[3+36:]
	}
	return dir + name
}

// History is the shared, append-only record of a run. It is safe for
// concurrent use.
type History struct {
	mu       sync.Mutex // guards everything below
	events   []Event
	nextHold int
	open     map[int]Event // holds begun and not yet ended, by hold id
	lastObs  Event         // the latest OpObserve
	changed  chan struct{} // closed and replaced by every Add
}

// NewHistory returns an empty History.
func NewHistory() *History {
	return &History{open: make(map[int]Event), changed: make(chan struct{})}
}

// Add appends e, stamping it with the current time unless e.At is set, and
// returns it as stored. Callers that must timestamp an event at the instant
// something happened take time.Now() themselves and pass it in At.
func (h *History) Add(e Event) Event {
	if e.At.IsZero() {
		e.At = time.Now()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	e.Index = len(h.events)
	switch e.Op {
	case OpLockOK:
		if e.Hold == 0 {
			h.nextHold++
			e.Hold = h.nextHold
		}
		h.open[e.Hold] = e
	case OpHoldEnd, OpUnlockCall:
		delete(h.open, e.Hold)
	case OpObserve:
		h.lastObs = e
	}
	h.events = append(h.events, e)
	close(h.changed)
	h.changed = make(chan struct{})
	return e
}

// Begin records the start of a hold (OpLockOK) and returns its hold id.
func (h *History) Begin(e Event) int {
	e.Op = OpLockOK
	return h.Add(e).Hold
}

// Changed returns a channel closed at the next Add, for waiting on events
// instead of polling.
func (h *History) Changed() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.changed
}

// Open returns the OpLockOK events of the holds on res that have begun and
// not yet ended (no OpHoldEnd or OpUnlockCall), in hold order.
func (h *History) Open(res string) []Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []Event
	for _, e := range h.open {
		if e.Res == res {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b Event) int { return a.Hold - b.Hold })
	return out
}

// LastObserved returns the latest OpObserve event, if any.
func (h *History) LastObserved() (Event, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lastObs, h.lastObs.Op == OpObserve
}

// Events returns a copy of the events recorded so far, in the order they
// were added.
func (h *History) Events() []Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.events)
}
