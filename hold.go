package zklock

import (
	"context"
	"sync"
)

// hold is one tenure of a lock or of leadership. It ends exactly once: on
// release, or when lost; its channel, context and error change together.
type hold struct {
	g     *generation
	name  string // our node
	key   string // our node's path under the chroot
	seq   int32
	token int64 // czxid of our node

	done   chan struct{}
	ctx    context.Context
	cancel context.CancelCauseFunc

	mu       sync.Mutex // guards err, released
	err      error
	released bool // Unlock or Resign has claimed it

	stop   context.CancelFunc // stops the monitor
	exited chan struct{}      // closed when the monitor has returned
}

// newHold starts a hold; its context carries parent's values.
func newHold(parent context.Context, g *generation, name, key string, seq int32, token int64) *hold {
	h := &hold{g: g, name: name, key: key, seq: seq, token: token, done: make(chan struct{}), exited: make(chan struct{})}
	h.ctx, h.cancel = context.WithCancelCause(context.WithoutCancel(parent))
	return h
}

// end finishes the hold with err unless it has already ended; it reports
// whether this call ended it.
func (h *hold) end(err error) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err != nil {
		return false
	}
	h.err = err
	h.cancel(err)
	close(h.done)
	return true
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

// closedChan is returned by Done before any hold exists.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()
