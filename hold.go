package zklock

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// hold is one tenure of a lock or of leadership. It ends exactly once: on
// release, or when lost; its channel, context and error change together.
type hold struct {
	g       *generation
	name    string // our node
	key     string // our node's path under the chroot
	seq     int32
	token   int64        // czxid of our node
	version atomic.Int32 // our node's data version: 0 until written (Proclaim)
	lostAs  error        // what a loss wraps: ErrLockLost, ErrLeadershipLost

	done   chan struct{}
	ctx    context.Context
	cancel context.CancelCauseFunc

	mu       sync.Mutex // guards err, released
	err      error
	released bool // Unlock or Resign has claimed it

	unhook func()             // unregisters the hold from its generation's end
	start  time.Time          // when the hold began
	report func(error)        // told the hold's end, once; set before the hold is shared
	stop   context.CancelFunc // stops the monitor
	exited chan struct{}      // closed when the monitor has returned
}

// newHold starts a hold; its context carries parent's values.
func newHold(parent context.Context, g *generation, name, key string, seq int32, token int64, lostAs error) *hold {
	h := &hold{g: g, name: name, key: key, seq: seq, token: token, lostAs: lostAs, start: time.Now(),
		done: make(chan struct{}), exited: make(chan struct{})}
	inner, cancel := context.WithCancelCause(context.WithoutCancel(parent))
	h.ctx, h.cancel = holdContext{inner, h}, cancel
	return h
}

// end finishes the hold with err unless it has already ended; it reports
// whether this call ended it.
func (h *hold) end(err error) bool {
	h.mu.Lock()
	if h.err != nil {
		h.mu.Unlock()
		return false
	}
	h.err = err
	h.cancel(err)
	close(h.done)
	report := h.report
	h.mu.Unlock()
	if report != nil {
		report(err)
	}
	return true
}

// lose ends the hold as lost, for cause.
func (h *hold) lose(cause error) { h.end(errorf("%w: %w", h.lostAs, cause)) }

// check ends the hold if its generation's loss deadline has passed, whether
// or not the timer that ends the generation has run yet. Every pull-style
// look at a hold (Done, Err, Context) checks first.
func (h *hold) check() {
	if h.cause() == nil && h.g.pastDeadline() {
		h.lose(errPastDeadline)
	}
}

func (h *hold) cause() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

// claim marks the hold as being released by its owner; false if it already
// was.
func (h *hold) claim() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.released {
		return false
	}
	h.released = true
	return true
}

// holdContext is a hold's context: its Done and Err check the loss deadline
// first, like the hold's own Done and Err.
type holdContext struct {
	context.Context
	h *hold
}

func (c holdContext) Done() <-chan struct{} {
	c.h.check()
	return c.Context.Done()
}

func (c holdContext) Err() error {
	c.h.check()
	return c.Context.Err()
}

// closedChan is returned by Done before any hold exists.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()
