package zklock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/go-zookeeper/zk"

	"github.com/zklock/zklock/internal/seqnode"
	"github.com/zklock/zklock/internal/znode"
)

// kind is what sets one recipe's contenders apart from another's on the
// same kind of queue: the names they write, the names they queue behind,
// and the words of their errors.
type kind struct {
	op     string                  // "lock" or "campaign", for errors
	prefix func(id string) string  // our node's name before the sequence number
	queues func(seqnode.Kind) bool // which children queue with us
	lost   error                   // the cause of a hold lost: ErrLockLost, ErrLeadershipLost
	free   error                   // no hold: ErrNotLocked, ErrNotLeader
	// limit, when > 0, lets the first limit contenders hold at once (a
	// semaphore's leases); 0 is a lock's queue, where a contender holds
	// when no node ahead blocks it.
	limit int
}

// recipe is one contender of a queue: it acquires a place at the front
// (create, wait behind the node ahead, confirm before granting), holds it
// while a monitor watches for its loss, and releases it. Mutex and Election
// are thin wrappers around one.
type recipe struct {
	k    kind
	gens *generations
	tel  *telemetry
	q    *queue
	path string // as given
	perr error  // the path is invalid

	mu      *sync.Mutex // guards busy, held, alone, here and in sibling
	sibling *recipe     // the other side of a read-write lock, if any
	busy    bool        // an acquisition is running
	held    *hold       // the current or latest hold; nil before the first
	alone   bool        // the latest acquisition found no one else queued
}

func newRecipe(s *Session, path string, k kind) *recipe {
	r := &recipe{k: k, gens: s.gens, tel: s.tel, path: path, mu: new(sync.Mutex)}
	full := znode.Join(s.cfg.chroot, path)
	if err := znode.Validate(path); err != nil {
		r.perr = errorf("zklock: %s: %w: %w", k.op, ErrInvalidPath, err)
	} else if path == "/" {
		r.perr = errorf("zklock: %s: %w: the root cannot hold contenders", k.op, ErrInvalidPath)
	} else if full == "/zookeeper" || strings.HasPrefix(full, "/zookeeper/") {
		r.perr = errorf("zklock: %s: %w: %q is under /zookeeper, which ZooKeeper reserves", k.op, ErrInvalidPath, path)
	}
	r.q = &queue{
		dir: full, prefix: k.prefix, queues: k.queues,
		cfg: &s.cfg, newID: s.newID, gens: s.gens, cleaner: s.cleaner,
	}
	return r
}

// defaultIdentity is the default node data: hostname and pid.
func defaultIdentity() []byte {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	return fmt.Appendf(nil, "%s:%d", host, os.Getpid())
}

// acquire queues with data until first, in the current ZooKeeper session and
// again in the next one if it ends, until ctx ends. Without wait it gives up
// with ErrLocked when anyone is ahead.
//
// A waiting caller's goroutine keeps the frames from here down to the wait
// on its stack, so the waits are made here, in a frame kept small, and the
// rest of the work is in methods of the contender (see contender).
func (r *recipe) acquire(ctx context.Context, data []byte, wait bool) error {
	c, err := r.begin(ctx, data, wait)
	if err != nil {
		return err
	}
	for {
		ev, err := c.try(ctx)
		for ev != nil {
			ev, err = c.next(ctx, c.await(ctx, ev))
		}
		if c.settle(ctx, err) {
			return r.finish(c)
		}
	}
}

// begin checks that an acquisition with data may start, marks one
// running, and starts its telemetry. It waits for the previous hold's
// monitor to be done.
func (r *recipe) begin(ctx context.Context, data []byte, wait bool) (*contender, error) {
	a := r.tel.startAcquire(ctx, &r.k, r.path)
	prev, err := r.mark(data)
	if err != nil {
		a.end(0, err)
		return nil, err
	}
	// Returned, the contender is on the heap, not on the waiting
	// goroutine's stack.
	c := &contender{r: r, data: data, wait: wait, tel: a}
	r.mu.Lock()
	c.expectAlone = r.alone
	r.mu.Unlock()
	if prev != nil {
		<-prev.exited // the previous hold's monitor is done
	}
	return c, nil
}

// mark checks that an acquisition with data may start and marks one
// running; it returns the previous hold, if any.
func (r *recipe) mark(data []byte) (*hold, error) {
	if r.perr != nil {
		return nil, r.perr
	}
	if err := r.q.checkCreate(data); err != nil {
		return nil, errorf("zklock: %s %s: %w", r.k.op, r.path, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.activeLocked() {
		return nil, ErrBusy
	}
	if r.sibling != nil && r.sibling.activeLocked() {
		// Our node would queue behind the sibling's, which waits for ours
		// or is never released while we wait.
		return nil, errorf("zklock: %s %s: %w: the %s is held or being taken by the same RWMutex", r.k.op, r.path, ErrBusy, r.sibling.k.op)
	}
	r.busy = true
	return r.held, nil
}

// finish ends the acquisition c and returns its outcome.
func (r *recipe) finish(c *contender) error {
	r.mu.Lock()
	r.busy = false
	r.mu.Unlock()
	c.tel.end(r.token(), c.err)
	return c.err
}

// hold makes h, granted on g, the current hold and starts its monitor; false
// if g ended as h was granted.
func (r *recipe) hold(g *generation, h *hold, watch <-chan zk.Event) bool {
	// The hold ends with g, before g's connection is closed.
	h.report = func(err error) { r.tel.holdEnded(&r.k, h.start, err) }
	unhook, ok := g.onEnd(h.lose)
	if !ok {
		return false
	}
	h.unhook = unhook
	// Not derived from the Session's life: at Close the monitor must see
	// the session end and report the loss, not just stop.
	mctx, stop := context.WithCancel(context.Background())
	h.stop = stop
	// Owner: the recipe. Stopped by release (h.stop) or by the end of the
	// hold; joined by release and the next acquire (h.exited).
	go r.monitor(mctx, h, watch)
	r.mu.Lock()
	r.held = h
	r.mu.Unlock()
	return true
}

// errRequeue says that our node is gone and must be made anew.
var errRequeue = errors.New("zklock: our node is gone")

// grantOnRead grants our first node name if a read of it, made after
// whatever made it first and setting the hold's watch, finds it; if it is
// gone, it returns errRequeue.
func (r *recipe) grantOnRead(ctx context.Context, g *generation, name string) (*hold, <-chan zk.Event, error) {
	sc, err := r.q.watchSelf(ctx, g, name)
	if err != nil {
		return nil, nil, err
	}
	if !sc.ok {
		return nil, nil, errRequeue
	}
	return r.grant(ctx, g, name, sc.st.EphemeralOwner, sc.st.Czxid, sc.watch)
}

// grant turns our first node into a hold, after checking it belongs to g's
// ZooKeeper session and that session has not ended.
func (r *recipe) grant(ctx context.Context, g *generation, name string, owner, czxid int64, watch <-chan zk.Event) (*hold, <-chan zk.Event, error) {
	if owner != g.sessionID {
		return nil, nil, errorf("zklock: node %s/%s belongs to session 0x%x, not ours (0x%x)",
			r.q.dir, name, owner, g.sessionID)
	}
	if g.ended() {
		return nil, nil, g.err
	}
	n, _ := seqnode.Parse(name)
	return newHold(ctx, g, name, r.q.key(name), n.Seq, czxid, r.k.lost), watch, nil
}

// monitor ends the hold when it is lost: the ZooKeeper session ends (expiry,
// loss deadline, Close) or the node is deleted. The watch it starts with
// is on our node, or on the directory's children (a lone holder's, which
// a deletion of our node fires too); when a watch fires for anything but
// our node's deletion, it reads our node and watches it from then on.
func (r *recipe) monitor(ctx context.Context, h *hold, watch <-chan zk.Event) {
	defer close(h.exited)
	defer h.unhook()
	lost := h.lose
	// deleted ends the hold for its node's deletion, unless something
	// came first: a deletion seen past the loss deadline (the process was
	// paused, say, and the server expired the session meanwhile) is
	// reported as the deadline, and one seen as the session ended as that
	// end.
	deleted := func() {
		if h.g.ended() {
			lost(h.g.err)
			return
		}
		h.check()
		lost(ErrNodeDeleted)
	}
	self := r.q.dir + "/" + h.name
	rewatch := watch == nil // granted without a watch: set one now
	for {
		if rewatch {
			rewatch = false
			if h.cause() != nil {
				return // released (or lost) meanwhile: nothing to watch for
			}
			sc, err := r.q.watchSelf(ctx, h.g, h.name)
			if err == nil && !sc.ok {
				deleted()
				return
			}
			watch = sc.watch // nil on error: ctx or g ended, the select decides
		}
		select {
		case <-ctx.Done():
			return
		case <-h.g.done:
			lost(h.g.err)
			return
		case ev := <-watch:
			switch {
			case ev.Type == zk.EventNodeDeleted && ev.Path == self:
				deleted()
				return
			case ev.Type == zk.EventNotWatching:
				watch = nil // the session is ending; g.done follows
			default:
				// Our node's data changed, or the children did (one came,
				// one went, or the directory went): watches fire once, so
				// read our node and set one on it.
				rewatch = true
			}
		}
	}
}

// release ends the current hold and deletes its node, handing the delete to
// the cleaner if it cannot finish before ctx ends or the connection is down.
func (r *recipe) release(ctx context.Context) (err error) {
	h := r.current()
	if h != nil {
		done := r.tel.startRelease(ctx, &r.k, r.path, h.token)
		defer func() { done(err) }()
	}
	if h == nil || !h.claim() {
		return r.k.free
	}
	if !h.end(r.k.free) {
		h.stop()
		<-h.exited
		return errorf("%w: %w", r.k.free, h.cause())
	}
	// The hold has ended, so whatever the monitor would see from here on
	// (our own delete among it) changes nothing: it is stopped now, and
	// exits while the delete is under way.
	h.stop()
	derr := r.q.release(ctx, h.g, h.name)
	<-h.exited
	if derr != nil {
		return errorf("zklock: delete %s: %w", h.key, derr)
	}
	return nil
}

// pair makes r and s the two sides of a read-write lock: neither acquires
// while the other holds or acquires.
func pair(r, s *recipe) {
	s.mu = r.mu
	r.sibling, s.sibling = s, r
}

// activeLocked reports whether the recipe holds its place or is acquiring
// one; r.mu is held.
func (r *recipe) activeLocked() bool {
	return r.busy || (r.held != nil && r.held.cause() == nil)
}

func (r *recipe) current() *hold {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.held
}

func (r *recipe) done() <-chan struct{} {
	if h := r.current(); h != nil {
		h.check()
		return h.done
	}
	return closedChan
}

func (r *recipe) err() error {
	if h := r.current(); h != nil {
		h.check()
		return h.cause()
	}
	return r.k.free
}

func (r *recipe) context() context.Context {
	if h := r.current(); h != nil {
		h.check()
		return h.ctx
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(r.k.free)
	return ctx
}

func (r *recipe) token() int64 {
	if h := r.current(); h != nil {
		return h.token
	}
	return 0
}

func (r *recipe) seq() int32 {
	if h := r.current(); h != nil {
		return h.seq
	}
	return 0
}

func (r *recipe) key() string {
	if h := r.current(); h != nil {
		return h.key
	}
	return ""
}

func (r *recipe) guard() *zk.CheckVersionRequest {
	h := r.current()
	if h == nil {
		return nil
	}
	// Contender nodes are created with their data and written only by
	// their holder (Proclaim), which keeps the version.
	return &zk.CheckVersionRequest{Path: h.key, Version: h.version.Load()}
}

// setData replaces the data of the current hold's node, if the hold is on.
func (r *recipe) setData(ctx context.Context, data []byte) error {
	if err := r.q.checkCreate(data); err != nil {
		return errorf("zklock: %s %s: %w", r.k.op, r.path, err)
	}
	h := r.current()
	if h == nil {
		return r.k.free
	}
	h.check()
	if err := h.cause(); err != nil {
		return errorf("%w: %w", r.k.free, err)
	}
	// A compare-and-set on the version we wrote last: a write by anyone
	// else is not overwritten, and the Guard stays exact.
	v, err := r.q.setData(ctx, h.g, h.name, data, h.version.Load())
	if err != nil {
		return errorf("zklock: %s %s: set data: %w", r.k.op, r.path, err)
	}
	h.version.Store(v)
	return nil
}
