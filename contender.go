package zklock

import (
	"context"
	"errors"

	"github.com/go-zookeeper/zk"

	"github.com/zklock/zklock/internal/seqnode"
)

// contender is one acquisition's way to the front of its queue, taken in
// steps between waits: start and next run until the contender must wait
// for a watch to fire, or is done, and the caller (recipe.queueUp) makes
// the waits. Many Locks may wait at once, for long; making the waits in
// the caller's frame, with the contender's state on the heap, keeps a
// waiting goroutine's stack small enough for the runtime to shrink it.
//
// A grant rests on a read that shows our node there and first: a listing,
// or, when only one node was ahead and its deletion is notified, a read of
// our node made after the notification. The notification alone does not
// prove it: one transaction (a multi, such as a recursive delete) can
// delete our node with the one ahead, and go-zookeeper hands out the
// events of one transaction one by one.
type contender struct {
	r    *recipe
	data []byte

	g     *generation     // the ZooKeeper session of this try
	node  creation        // our node, and the latest listing not yet decided on
	index int             // our node's index in the listing decided on last
	h     *hold           // the grant, once done without error
	watch <-chan zk.Event // the hold's watch (see recipe.monitor); nil: none yet

	tel acquisition // the acquisition's span and clock
	err error       // the acquisition's outcome, once settled

	woke  zk.EventType // what ended the latest wait
	ahead bool         // the wait is on the node ahead (else on the children)
	wait  bool         // wait behind others; false: fail with ErrLocked
	// expectAlone asks for a watch on the children with the listing behind
	// the create: a contender that is alone keeps it as its hold's watch
	// and needs no request of its own to watch its node.
	expectAlone bool
}

// try starts a try on the current generation.
func (c *contender) try(ctx context.Context) (<-chan zk.Event, error) {
	g, err := c.r.gens.current(ctx)
	if err != nil {
		c.g = nil // no generation to try again in: settle ends the acquisition
		return nil, err
	}
	return c.start(ctx, g)
}

// await waits for ev to fire, keeping the event's type in c.woke, unless ctx
// ends first.
//
// The end of the generation needs no case of its own: it closes the
// generation's connection, and go-zookeeper then fires every watch it
// holds with EventNotWatching, after which the next step finds the
// generation ended. Each channel a parked select waits on costs the waiter
// memory while it waits, and many may wait at once.
func (c *contender) await(ctx context.Context, ev <-chan zk.Event) error {
	select {
	case e, ok := <-ev:
		if !ok {
			e.Type = zk.EventNotWatching
		}
		c.woke = e.Type
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// settle decides after a try that ended with err: true when the
// acquisition is over, with c.err its outcome; false to try again, in the
// next generation.
func (c *contender) settle(ctx context.Context, err error) bool {
	r := c.r
	if err == nil {
		if r.hold(c.g, c.h, c.watch) {
			return true
		}
		return false // g ended as we were granted: queue again in the next
	}
	if c.g != nil && c.g.ended() && ctx.Err() == nil && !errors.Is(err, ErrLocked) && !errors.Is(err, ErrSessionClosed) {
		return false // queue again in the next ZooKeeper session
	}
	c.err = errorf("zklock: %s %s: %w", r.k.op, r.path, err)
	return true
}

// start queues our node on generation g and runs to the first wait. A nil
// channel means done: granted (c.h) or failed (the error).
func (c *contender) start(ctx context.Context, g *generation) (<-chan zk.Event, error) {
	c.g, c.h, c.watch = g, nil, nil
	if err := c.r.q.enqueue(ctx, g, c.data, c.expectAlone, &c.node); err != nil {
		return nil, err
	}
	return c.run(ctx)
}

// next goes on after a wait that ended with c.woke, or with err when ctx
// or the generation ended first.
func (c *contender) next(ctx context.Context, err error) (<-chan zk.Event, error) {
	if err != nil {
		return nil, c.fail(ctx, err)
	}
	if c.ahead && c.woke == zk.EventNodeDeleted && c.index == 1 {
		// The one node ahead of ours when we listed is gone, and nodes
		// ahead can only go, never come (sequence numbers grow): we are
		// first if our node is still there.
		granted, err := c.confirm(ctx)
		if err != nil {
			return nil, c.fail(ctx, err)
		}
		if granted {
			return nil, nil
		}
	}
	return c.run(ctx) // list again
}

// run steps until a wait or the end; on failure our node is deleted.
func (c *contender) run(ctx context.Context) (<-chan zk.Event, error) {
	ev, err := c.step(ctx)
	if err != nil {
		return nil, c.fail(ctx, err)
	}
	return ev, nil
}

// fail deletes our node, if any, and returns err.
func (c *contender) fail(ctx context.Context, err error) error {
	if c.node.name != "" {
		c.r.q.discard(ctx, c.g, c.node.name)
		c.node.name = ""
	}
	return err
}

// step decides on listings until the contender is granted, fails, or must
// wait on the returned channel.
func (c *contender) step(ctx context.Context) (<-chan zk.Event, error) {
	r := c.r
	for {
		if c.node.kids == nil {
			if err := c.list(ctx); err != nil {
				return nil, err
			}
		}
		pred, first, found := c.position()
		if !found { // deleted under us while waiting: queue again
			if err := c.requeue(ctx); err != nil {
				return nil, err
			}
			continue
		}
		if first {
			granted, err := c.front(ctx)
			if granted || err != nil {
				return nil, err
			}
			continue
		}
		if !c.wait {
			return nil, ErrLocked
		}
		if r.k.limit > 0 {
			// Any node ahead leaving moves us up, so the children are
			// watched; a semaphore lets only the holder of its internal
			// lock wait here, so a change wakes one waiter.
			listing, ev, err := r.q.watchChildren(ctx, c.g)
			if err != nil {
				return nil, err
			}
			if index, found := seqnode.Index(seqnode.Contenders(listing, r.k.queues), c.node.name); !found || index < r.k.limit {
				c.node.kids = listing // changed since the last look: decide on it
				continue
			}
			c.ahead = false
			return ev, nil
		}
		// The node just ahead is the only one we watch, so a deletion
		// wakes one waiter.
		ev, err := r.q.watchNode(ctx, c.g, pred)
		if err != nil {
			return nil, err
		}
		if ev != nil {
			c.ahead = true
			return ev, nil
		}
		if c.index == 1 { // the one ahead is gone already
			granted, err := c.confirm(ctx)
			if granted || err != nil {
				return nil, err
			}
		}
		// Otherwise list again.
	}
}

// requeue replaces our node, deleted under us.
func (c *contender) requeue(ctx context.Context) error {
	return c.r.q.enqueue(ctx, c.g, c.data, false, &c.node)
}

// list lists the queue again; a directory deleted with our node in it
// means queueing again, which makes the directory anew.
func (c *contender) list(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		// Cancelled as a watch fired: a listing would be for nothing.
		return err
	}
	kids, watch, err := c.r.q.list(ctx, c.g)
	if errors.Is(err, zk.ErrNoNode) {
		return c.requeue(ctx)
	}
	c.node.kids, c.node.watch, c.node.behindCreate = kids, watch, false
	return err
}

// position decides on the latest listing and drops it: with many waiters,
// each keeping the whole queue's names would cost memory quadratic in the
// queue's length. It returns the name of the node to wait for, whether we
// are first, and whether our node is in the listing at all.
func (c *contender) position() (pred string, first, found bool) {
	k, p := &c.r.k, &c.node
	nodes := seqnode.Contenders(p.kids, k.queues)
	alone := p.behindCreate && len(p.kids) == 1
	p.kids = nil
	index, ahead, first, found := seqnode.Position(nodes, p.name)
	if !found {
		return "", false, false
	}
	if k.limit > 0 {
		first = index < k.limit
	}
	if !first {
		p.watch = nil // left to fire once, unread
	}
	p.behindCreate = alone // read by front
	c.index = index
	return ahead.Name, first, true
}

// front grants our node, first in the listing just decided on; false if
// it was gone and is queued again.
func (c *contender) front(ctx context.Context) (bool, error) {
	r, p := c.r, &c.node
	r.mu.Lock()
	r.alone = p.behindCreate
	r.mu.Unlock()
	if p.czxid == 0 {
		// Our node was found again after a lost reply: read it for its
		// creation zxid.
		return c.confirm(ctx)
	}
	// The listing shows our node, which g's session created (its name
	// carries this attempt's random id), there and first.
	var err error
	c.h, c.watch, err = r.grant(ctx, c.g, p.name, c.g.sessionID, p.czxid, p.watch)
	return err == nil, err
}

// confirm grants our first node if a read of it, made after whatever made
// it first and setting the hold's watch, finds it; false if it is gone and
// is queued again.
func (c *contender) confirm(ctx context.Context) (bool, error) {
	h, watch, err := c.r.grantOnRead(ctx, c.g, c.node.name)
	if errors.Is(err, errRequeue) {
		return false, c.requeue(ctx)
	}
	c.h, c.watch = h, watch
	return err == nil, err
}
