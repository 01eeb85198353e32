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
		dir: full, chroot: s.cfg.chroot, prefix: k.prefix, queues: k.queues,
		acl: s.cfg.acl, maxBuf: s.cfg.maxBuf, newID: s.newID, gens: s.gens, cleaner: s.cleaner,
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
// on its stack, so they are kept small: the work before and after the wait
// is in methods of its own.
func (r *recipe) acquire(ctx context.Context, data []byte, wait bool) error {
	a := r.tel.startAcquire(ctx, &r.k, r.path)
	err := r.queueUp(ctx, data, wait)
	a.end(r.token(), err)
	return err
}

// queueUp is acquire without its telemetry.
func (r *recipe) queueUp(ctx context.Context, data []byte, wait bool) error {
	prev, expectAlone, err := r.begin(data)
	if err != nil {
		return err
	}
	if prev != nil {
		<-prev.exited // the previous hold's monitor is done
	}
	for {
		var g *generation
		if g, err = r.gens.current(ctx); err != nil {
			err = errorf("zklock: %s %s: %w", r.k.op, r.path, err)
			break
		}
		h, watch, aerr := r.attempt(ctx, g, data, wait, expectAlone)
		if aerr == nil {
			if r.hold(g, h, watch) {
				break
			}
			continue // g ended as we were granted: queue again in the next
		}
		if g.ended() && ctx.Err() == nil && !errors.Is(aerr, ErrLocked) && !errors.Is(aerr, ErrSessionClosed) {
			continue // queue again in the next ZooKeeper session
		}
		err = errorf("zklock: %s %s: %w", r.k.op, r.path, aerr)
		break
	}
	r.finish()
	return err
}

// begin checks that an acquisition with data may start and marks one
// running. It returns the previous hold, if any, and whether the latest
// acquisition found the queue empty.
func (r *recipe) begin(data []byte) (prev *hold, expectAlone bool, err error) {
	if r.perr != nil {
		return nil, false, r.perr
	}
	if err := r.q.checkCreate(data); err != nil {
		return nil, false, errorf("zklock: %s %s: %w", r.k.op, r.path, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.activeLocked() {
		return nil, false, ErrBusy
	}
	if r.sibling != nil && r.sibling.activeLocked() {
		// Our node would queue behind the sibling's, which waits for ours
		// or is never released while we wait.
		return nil, false, errorf("zklock: %s %s: %w: the %s is held or being taken by the same RWMutex", r.k.op, r.path, ErrBusy, r.sibling.k.op)
	}
	r.busy = true
	return r.held, r.alone, nil
}

// finish marks the acquisition begin started as over.
func (r *recipe) finish() {
	r.mu.Lock()
	r.busy = false
	r.mu.Unlock()
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

// attempt queues on generation g and waits to be first. On success it
// returns the hold and a watch that fires when the hold's node may have
// gone (on the node, or on its directory's children; nil if the monitor
// must set one). On failure our node, if any, is deleted.
//
// A grant rests on a read that shows our node there and first: a listing,
// or, when only one node was ahead and its deletion is notified, a read of
// our node made after the notification. The notification alone does not
// prove it: one transaction (a multi, such as a recursive delete) can
// delete our node with the one ahead, and go-zookeeper hands out the
// events of one transaction one by one.
//
// expectAlone asks for a watch on the children with the listing behind the
// create: a contender that is alone keeps it as its hold's watch and needs
// no request of its own to watch its node.
func (r *recipe) attempt(ctx context.Context, g *generation, data []byte, wait, expectAlone bool) (_ *hold, _ <-chan zk.Event, err error) {
	var p creation // our node, and the latest listing of its queue not yet decided on
	defer func() {
		if err != nil && p.name != "" {
			r.q.discard(ctx, g, p.name)
		}
	}()
	// The waiting goroutine's stack holds this frame while it waits, so the
	// work of each step is in a method of its own.
	if err := r.q.enqueue(ctx, g, data, expectAlone, &p); err != nil {
		return nil, nil, err
	}
	for {
		if p.kids == nil {
			if err := p.list(ctx, r.q, g, data); err != nil {
				return nil, nil, err
			}
		}
		index, pred, first, err := p.position(r.k)
		if err != nil { // our node is gone: queue again
			if err := r.q.enqueue(ctx, g, data, false, &p); err != nil {
				return nil, nil, err
			}
			continue
		}
		if first {
			h, w, err := r.front(ctx, g, &p)
			if errors.Is(err, errRequeue) {
				err = r.q.enqueue(ctx, g, data, false, &p)
				if err == nil {
					continue
				}
			}
			return h, w, err
		}
		if !wait {
			return nil, nil, ErrLocked
		}
		if r.k.limit > 0 {
			// Any node ahead leaving moves us up, so the children are
			// watched; a semaphore lets only the holder of its internal
			// lock wait here, so a change wakes one waiter.
			if err := p.awaitChildren(ctx, r.q, g, r.k); err != nil {
				return nil, nil, err
			}
			continue
		}
		// The node just ahead is the only one we watch, so a deletion
		// wakes one waiter.
		gone, err := awaitGone(ctx, r.q, g, pred)
		if err != nil {
			return nil, nil, err
		}
		if gone && index == 1 {
			// The one node ahead of ours when we listed is gone, and nodes
			// ahead can only go, never come (sequence numbers grow): we are
			// first if our node is still there.
			h, w, err := r.grantOnRead(ctx, g, p.name)
			if !errors.Is(err, errRequeue) {
				return h, w, err
			}
			if err := r.q.enqueue(ctx, g, data, false, &p); err != nil {
				return nil, nil, err
			}
		}
		// Otherwise list again.
	}
}

// list lists the queue again; a directory deleted with our node in it
// means queueing again, which makes the directory anew.
func (p *creation) list(ctx context.Context, q *queue, g *generation, data []byte) error {
	if err := ctx.Err(); err != nil {
		// Cancelled as a watch fired: a listing would be for nothing.
		return err
	}
	kids, watch, err := q.list(ctx, g)
	if errors.Is(err, zk.ErrNoNode) {
		return q.enqueue(ctx, g, data, false, p)
	}
	p.kids, p.watch, p.behindCreate = kids, watch, false
	return err
}

// position decides on the latest listing and drops it: with many waiters,
// each keeping the whole queue's names would cost memory quadratic in the
// queue's length. It returns errRequeue if our node is not in it.
func (p *creation) position(k kind) (index int, pred seqnode.Node, first bool, err error) {
	nodes := seqnode.Contenders(p.kids, k.queues)
	alone := p.behindCreate && len(p.kids) == 1
	p.kids = nil
	index, pred, first, found := seqnode.Position(nodes, p.name)
	if !found {
		return 0, seqnode.Node{}, false, errRequeue // deleted under us while waiting
	}
	if k.limit > 0 {
		first = index < k.limit
	}
	if !first {
		p.watch = nil // left to fire once, unread
	}
	p.behindCreate = alone // read by front
	return index, pred, first, nil
}

// front grants our node, first in the listing just decided on.
func (r *recipe) front(ctx context.Context, g *generation, p *creation) (*hold, <-chan zk.Event, error) {
	r.mu.Lock()
	r.alone = p.behindCreate
	r.mu.Unlock()
	if p.czxid == 0 {
		// Our node was found again after a lost reply: read it for its
		// creation zxid.
		return r.grantOnRead(ctx, g, p.name)
	}
	// The listing shows our node, which g's session created (its name
	// carries this attempt's random id), there and first.
	return r.grant(ctx, g, p.name, g.sessionID, p.czxid, p.watch)
}

// awaitChildren waits until the children change while our node is not
// among the first k.limit, and keeps the listing that shows the change.
func (p *creation) awaitChildren(ctx context.Context, q *queue, g *generation, k kind) error {
	listing, ev, err := q.watchChildren(ctx, g)
	if err != nil {
		return err
	}
	if index, found := seqnode.Index(seqnode.Contenders(listing, k.queues), p.name); !found || index < k.limit {
		p.kids = listing // changed since the last look: decide on it
		return nil
	}
	select {
	case <-ev:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-g.done:
		return g.err
	}
}

// awaitGone watches the node ahead and waits for it to change; gone
// reports that it was deleted (or already was).
func awaitGone(ctx context.Context, q *queue, g *generation, ahead seqnode.Node) (gone bool, err error) {
	ev, err := q.watchNode(ctx, g, ahead.Name)
	if err != nil || ev == nil {
		return err == nil, err
	}
	select {
	case e := <-ev:
		return e.Type == zk.EventNodeDeleted, nil
	case <-ctx.Done():
		return false, ctx.Err()
	case <-g.done:
		return false, g.err
	}
}

// errRequeue tells attempt that our node is gone and must be made anew.
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
				lost(ErrNodeDeleted)
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
				lost(ErrNodeDeleted)
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
	// The hold has ended, so whatever the monitor sees from here on (our
	// own delete among it) changes nothing: the delete need not wait for
	// the monitor to stop.
	derr := r.q.release(ctx, h.g, h.name)
	h.stop()
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
