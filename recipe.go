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

// recipe is the queue protocol Mutex and Election share: protected
// creates, predecessor watches, confirmation before granting, the hold and
// its monitor, and release.
type recipe struct {
	s      *Session
	op     string // "lock" or "campaign", for errors
	path   string // as given
	full   string // chroot applied
	perr   error  // the path is invalid
	prefix func(id string) string
	keep   func(seqnode.Kind) bool // which children queue with us
	lost   error                   // ErrLockLost or ErrLeadershipLost
	free   error                   // ErrNotLocked or ErrNotLeader

	mu   sync.Mutex   // guards busy, hold, lone
	busy bool         // an acquisition is running
	hold *hold        // the current or latest hold; nil before the first
	lone seqnode.Lone // numbering seen while the queue had no one else
}

func newRecipe(s *Session, op, path string, prefix func(string) string, keep func(seqnode.Kind) bool, lost, free error) *recipe {
	r := &recipe{s: s, op: op, path: path, prefix: prefix, keep: keep, lost: lost, free: free}
	if err := znode.Validate(path); err != nil {
		r.perr = fmt.Errorf("zklock: %s: %w: %w", op, ErrInvalidPath, err)
	} else if path == "/" {
		r.perr = fmt.Errorf("zklock: %s: %w: the root cannot hold contenders", op, ErrInvalidPath)
	}
	r.full = znode.Join(s.cfg.chroot, path)
	if r.perr == nil && (r.full == "/zookeeper" || strings.HasPrefix(r.full, "/zookeeper/")) {
		r.perr = fmt.Errorf("zklock: %s: %w: %q is under /zookeeper, which ZooKeeper reserves", op, ErrInvalidPath, path)
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
func (r *recipe) acquire(ctx context.Context, data []byte, wait bool) error {
	if r.perr != nil {
		return r.perr
	}
	r.mu.Lock()
	prev := r.hold
	if r.busy || (prev != nil && prev.cause() == nil) {
		r.mu.Unlock()
		return ErrBusy
	}
	r.busy = true
	seq, ok := r.lone.Next()
	guess := seqGuess{seq: seq, ok: ok}
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.busy = false
		r.mu.Unlock()
	}()
	if prev != nil {
		<-prev.exited // the previous hold's monitor is done
	}

	for {
		g, err := r.s.current(ctx)
		if err != nil {
			return fmt.Errorf("zklock: %s %s: %w", r.op, r.path, err)
		}
		h, watch, err := r.attempt(ctx, g, data, wait, guess)
		guess = seqGuess{} // the guess is void in another generation
		if err == nil {
			// Not derived from the Session's life: at Close the monitor must
			// see the session end and report the loss, not just stop.
			mctx, stop := context.WithCancel(context.Background())
			h.stop = stop
			// Owner: the recipe. Stopped by release (h.stop) or by the end
			// of the hold; joined by release and the next acquire (h.exited).
			go r.monitor(mctx, h, watch)
			r.mu.Lock()
			r.hold = h
			r.mu.Unlock()
			return nil
		}
		if g.ended() && ctx.Err() == nil && !errors.Is(err, ErrLocked) && !errors.Is(err, ErrSessionClosed) {
			continue // queue again in the next ZooKeeper session
		}
		return fmt.Errorf("zklock: %s %s: %w", r.op, r.path, err)
	}
}

// attempt queues on generation g and waits to be first. On success it
// returns the hold and a watch on the hold's node (nil if the monitor must
// set it).
func (r *recipe) attempt(ctx context.Context, g *generation, data []byte, wait bool, guess seqGuess) (*hold, <-chan zk.Event, error) {
	q, err := r.s.enqueue(ctx, g, r.full, r.prefix, data, guess)
	if err != nil {
		return nil, nil, err
	}
	kids := q.kids // nil: list again
	self := q.self // the latest check of our node, if any
	for {
		// Listings are dropped before waiting (kids is reset below): with
		// many waiters, each keeping the whole queue's names would cost
		// memory quadratic in the queue's length.
		behindCreate := q.kids != nil // kids is the listing behind our create
		q.kids = nil
		if kids == nil {
			if err := ctx.Err(); err != nil {
				// Cancelled as a watch fired: a listing would be for nothing.
				r.s.discard(ctx, g, r.full, q.name)
				return nil, nil, err
			}
			if kids, self, err = r.look(ctx, g, q.name, self); err != nil {
				r.s.discard(ctx, g, r.full, q.name)
				return nil, nil, err
			}
		}
		nodes := seqnode.Contenders(kids, r.keep)
		alone := behindCreate && len(kids) == 1
		kids = nil
		index, pred, first, found := seqnode.Position(nodes, q.name)
		if !found || (self != nil && !self.ok) { // deleted under us while waiting: queue again
			if q, err = r.s.enqueue(ctx, g, r.full, r.prefix, data, seqGuess{}); err != nil {
				return nil, nil, err
			}
			kids, self = q.kids, q.self
			continue
		}
		if first {
			n, ok := seqnode.Parse(q.name)
			r.mu.Lock()
			if alone && ok {
				r.lone = r.lone.After(n.Seq)
			} else {
				r.lone = seqnode.Lone{}
			}
			r.mu.Unlock()
			if self == nil {
				// The listing came right after our create on this session:
				// the node existed then and is ours; the create's reply gave
				// its czxid.
				return r.grant(ctx, g, q.name, g.sessionID, q.czxid, nil)
			}
			return r.grant(ctx, g, q.name, self.st.EphemeralOwner, self.st.Czxid, self.watch)
		}
		if !wait {
			r.s.discard(ctx, g, r.full, q.name)
			return nil, nil, ErrLocked
		}
		nodes = nil
		// The node just ahead is the only one we watch, so a deletion
		// wakes one waiter.
		ev, err := r.watchAhead(ctx, g, pred.Name, q.name, &self)
		if err != nil {
			r.s.discard(ctx, g, r.full, q.name)
			return nil, nil, err
		}
		if ev == nil || !self.ok {
			continue // the one ahead is gone already, or we are: look again
		}
		select {
		case e := <-ev:
			// Nodes ahead of ours can only go, never come (sequence numbers
			// grow), so when the only one ahead is deleted we are first.
			// ZooKeeper delivers watch events in the order of the changes,
			// so if our own node's watch has not fired, our node existed
			// when the one ahead went: granting needs no further round trip.
			if index == 1 && e.Type == zk.EventNodeDeleted && self.live() {
				return r.grant(ctx, g, q.name, self.st.EphemeralOwner, self.st.Czxid, self.watch)
			}
			// Otherwise list again; look checks our node again only if its
			// watch has fired.
		case <-ctx.Done():
			r.s.discard(ctx, g, r.full, q.name)
			return nil, nil, ctx.Err()
		case <-g.done:
			return nil, nil, g.err
		}
	}
}

// live reports whether sc is a check of our node that still vouches for it:
// the node existed when checked and its watch has not fired since, so it
// has not been deleted (a deletion fires the watch). Its name, which
// carries this attempt's random id and a sequence number ZooKeeper gives
// out once per directory, was never another node's, so the check's owner
// and czxid are still the node's.
func (sc *selfCheck) live() bool {
	return sc != nil && sc.ok && !fired(sc.watch)
}

// watchAhead watches the node ahead of ours and, unless *self still vouches
// for our own node, checks our node too, in the same round trip. A nil event
// channel means the node ahead is already gone.
func (r *recipe) watchAhead(ctx context.Context, g *generation, ahead, name string, self **selfCheck) (<-chan zk.Event, error) {
	checkSelf := !(*self).live()
	type watched struct {
		ev   <-chan zk.Event
		self selfCheck
	}
	w, err := doOn(ctx, r.s, g, func(c *zk.Conn) (watched, error) {
		var w watched
		var aheadErr, selfErr error
		// GetW, not ExistsW: on a node already gone ExistsW would leave a
		// watch for its creation, which never comes, in the server and in
		// go-zookeeper until the session ends.
		watch := func() {
			_, _, w.ev, aheadErr = c.GetW(r.full + "/" + ahead)
			if errors.Is(aheadErr, zk.ErrNoNode) {
				w.ev, aheadErr = nil, nil
			}
		}
		if !checkSelf {
			watch()
			return w, aheadErr
		}
		var wg sync.WaitGroup
		wg.Add(1)
		// Owner: this call; joined below before it returns. Both requests
		// are sent before either reply arrives.
		go func() {
			defer wg.Done()
			watch()
		}()
		w.self.ok, w.self.st, w.self.watch, selfErr = c.ExistsW(r.full + "/" + name)
		wg.Wait()
		return w, errors.Join(aheadErr, selfErr)
	})
	if err != nil {
		return nil, err
	}
	if checkSelf {
		sc := w.self
		*self = &sc
	}
	return w.ev, nil
}

// fired reports whether a one-shot watch has delivered its event.
func fired(watch <-chan zk.Event) bool {
	select {
	case <-watch:
		return true
	default:
		return false
	}
}

// grant turns our first node into a hold, after checking it belongs to g's
// ZooKeeper session and that session has not ended.
func (r *recipe) grant(ctx context.Context, g *generation, name string, owner, czxid int64, watch <-chan zk.Event) (*hold, <-chan zk.Event, error) {
	if owner != g.sessionID {
		r.s.discard(ctx, g, r.full, name)
		return nil, nil, fmt.Errorf("zklock: node %s/%s belongs to session 0x%x, not ours (0x%x)",
			r.full, name, owner, g.sessionID)
	}
	if g.ended() {
		return nil, nil, g.err
	}
	n, _ := seqnode.Parse(name)
	key := znode.Strip(r.s.cfg.chroot, r.full+"/"+name)
	return newHold(ctx, g, r.full, name, key, n.Seq, czxid), watch, nil
}

// selfCheck is what an ExistsW on our own node returned.
type selfCheck struct {
	ok    bool
	st    *zk.Stat
	watch <-chan zk.Event
}

// look lists the contenders and, unless self still vouches for our own
// node, checks our node in the same round trip: both requests are sent
// before either reply arrives. The check confirms, before granting, that
// our node exists and belongs to g's ZooKeeper session, reads its creation
// zxid for the fencing token, and sets the watch that tells a holder its
// node was deleted. Whichever request the server handles first, a node
// found first in the listing and existing in the check was first while it
// existed. With a live check, the listing alone shows our node still there.
func (r *recipe) look(ctx context.Context, g *generation, name string, self *selfCheck) ([]string, *selfCheck, error) {
	if self.live() {
		kids, err := doOn(ctx, r.s, g, func(c *zk.Conn) ([]string, error) {
			kids, _, err := c.Children(r.full)
			return kids, err
		})
		return kids, self, err
	}
	type looked struct {
		kids []string
		self selfCheck
	}
	l, err := doOn(ctx, r.s, g, func(c *zk.Conn) (looked, error) {
		var l looked
		var listErr, err error
		var wg sync.WaitGroup
		wg.Add(1)
		// Owner: this call; joined below before it returns.
		go func() {
			defer wg.Done()
			l.kids, _, listErr = c.Children(r.full)
		}()
		l.self.ok, l.self.st, l.self.watch, err = c.ExistsW(r.full + "/" + name)
		wg.Wait()
		return l, errors.Join(listErr, err)
	})
	sc := l.self // not &l.self, which would keep the listing as long as the check
	return l.kids, &sc, err
}

// monitor ends the hold when it is lost: the ZooKeeper session ends (expiry,
// loss deadline, Close) or the node is deleted.
func (r *recipe) monitor(ctx context.Context, h *hold, watch <-chan zk.Event) {
	defer close(h.exited)
	if watch == nil { // granted without a check of our own node: watch it now
		sc, err := doOn(ctx, r.s, h.g, func(c *zk.Conn) (selfCheck, error) {
			ok, st, w, err := c.ExistsW(h.dir + "/" + h.name)
			return selfCheck{ok, st, w}, err
		})
		if err == nil && !sc.ok {
			h.end(fmt.Errorf("%w: %w", r.lost, ErrNodeDeleted))
			return
		}
		watch = sc.watch // nil on error: ctx or g ended, the select decides
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.g.done:
			h.end(fmt.Errorf("%w: %w", r.lost, h.g.err))
			return
		case ev := <-watch:
			switch ev.Type {
			case zk.EventNodeDeleted:
				h.end(fmt.Errorf("%w: %w", r.lost, ErrNodeDeleted))
				return
			case zk.EventNotWatching:
				watch = nil // the session is ending; g.done follows
				continue
			}
			// Data changed: watches fire once, so set it again.
			sc, err := doOn(ctx, r.s, h.g, func(c *zk.Conn) (selfCheck, error) {
				ok, st, w, err := c.ExistsW(h.dir + "/" + h.name)
				return selfCheck{ok, st, w}, err
			})
			if err == nil && !sc.ok {
				h.end(fmt.Errorf("%w: %w", r.lost, ErrNodeDeleted))
				return
			}
			watch = sc.watch // nil on error: ctx or g ended, the select decides
		}
	}
}

// release ends the current hold and deletes its node, handing the delete to
// the cleaner if it cannot finish before ctx ends or the connection is down.
func (r *recipe) release(ctx context.Context) error {
	h := r.current()
	if h == nil || !h.claim() {
		return r.free
	}
	if !h.end(r.free) {
		h.stop()
		<-h.exited
		return fmt.Errorf("%w: %w", r.free, h.cause())
	}
	// The hold has ended, so whatever the monitor sees from here on (our
	// own delete among it) changes nothing: the delete need not wait for
	// the monitor to stop.
	r.s.release(ctx, h.g, h.dir, h.name)
	h.stop()
	<-h.exited
	return nil
}

func (r *recipe) current() *hold {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hold
}

func (r *recipe) done() <-chan struct{} {
	if h := r.current(); h != nil {
		return h.done
	}
	return closedChan
}

func (r *recipe) err() error {
	if h := r.current(); h != nil {
		return h.cause()
	}
	return r.free
}

func (r *recipe) context() context.Context {
	if h := r.current(); h != nil {
		return h.ctx
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(r.free)
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
	// Contender nodes are created with their data and never written: version 0.
	return &zk.CheckVersionRequest{Path: h.key, Version: 0}
}
