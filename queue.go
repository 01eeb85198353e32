package zklock

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"path"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zklock/zklock/internal/seqnode"
	"github.com/zklock/zklock/internal/znode"
)

// cleanupTimeout bounds the synchronous delete of a node a recipe no longer
// wants; past it the delete goes to the Session's cleaner.
const cleanupTimeout = 2 * time.Second

// newID returns a random (version 4) UUID in its 36-character text form.
func newID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand doc)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:16])
	return string(s[:])
}

// queue is the contenders' queue under one directory: every ZooKeeper
// operation of the lock-node protocol. Contenders are ephemeral sequential
// children with protected names; the order is their parsed sequence
// numbers (internal/seqnode).
type queue struct {
	dir     string                  // full path, chroot applied
	prefix  func(id string) string  // the name our nodes get before the sequence number
	queues  func(seqnode.Kind) bool // which children queue with ours
	cfg     *sessionConfig          // the chroot, the ACL of our nodes, the servers' jute.maxbuffer
	newID   func() string
	gens    *generations
	cleaner *cleaner
}

// key returns the path of child name as callers see it, under the chroot.
func (q *queue) key(name string) string { return znode.Strip(q.cfg.chroot, q.dir+"/"+name) }

// checkCreate refuses node data that would make our create longer than the
// servers accept.
func (q *queue) checkCreate(data []byte) error {
	name := q.prefix("00000000-0000-0000-0000-000000000000") + "0000000000"
	return checkSize(createSize(q.dir+"/"+name, data, q.cfg.acl), q.cfg.maxBuf)
}

// listing is a directory's children as read, and the watch on them the
// read set, if it set one.
type listing struct {
	kids  []string
	watch <-chan zk.Event
}

// queued is a node enqueue created, and, when the create went through at
// the first try, what the listing pipelined behind it saw.
type queued struct {
	name  string
	kids  []string        // the parent's children just after the create; nil if unknown
	czxid int64           // from the create's reply; 0 if unknown (no node has czxid 0)
	watch <-chan zk.Event // a watch on the children set by that listing, if asked for
	// behindCreate says kids is the listing right behind the create, which
	// proves our node is ours and existed then.
	behindCreate bool
}

// selfCheck is what an ExistsW on our own node returned.
type selfCheck struct {
	ok    bool
	st    *zk.Stat
	watch <-chan zk.Event
}

// enqueue creates our ephemeral sequential node on generation g, named
// prefix(id) plus ZooKeeper's sequence number, creating the directory and
// its parents as container nodes when missing.
//
// The directory's children are listed in the same round trip: the listing
// is sent as soon as the create's bytes are written, so the server handles
// it after the create, and an uncontended caller learns it is first without
// waiting for a second reply.
//
// A create whose reply is lost may still have happened. enqueue then looks
// the node up by its id, and accepts a node only if g's session owns it: a
// node with the same id left by another session is never taken as ours.
// If enqueue fails after a create may have happened, it leaves the cleaner
// the duty to delete whatever node carries the id. The result is in c.
//
// With watchDir, the listing also sets a watch on the children (see
// createAndList).
func (q *queue) enqueue(ctx context.Context, g *generation, data []byte, watchDir bool, c *creation) error {
	*c = creation{q: q, g: g, id: q.newID(), data: data, watchDir: watchDir}
	c.full = q.dir + "/" + q.prefix(c.id)
	err := retryAfter(ctx, g.policy, g.clk, c.try(ctx), c.try)
	if err != nil && c.maybeCreated && !g.ended() {
		q.dropID(g, c.id, c.inflight)
	}
	if err != nil {
		c.queued = queued{}
	}
	// Not kept while a contender waits.
	c.id, c.full, c.data, c.inflight = "", "", nil, nil
	return err
}

// creation is one enqueue: our node's create, tried until it is known to
// have happened or not, and its result. The caller provides it, so that a
// caller that goes on to wait keeps it in its own frame, not in a deeper
// one its stack must also make room for.
type creation struct {
	queued
	q            *queue
	g            *generation
	id, full     string // the protected id, and the path before the sequence number
	data         []byte
	watchDir     bool
	maybeCreated bool // a create was sent and its outcome is not known
	// inflight is the outcome of a create given up on while in flight.
	inflight <-chan outcome[string]
}

// try is one attempt: look for our node if an earlier create may have
// made it, else create it (and the directory, if missing).
func (c *creation) try(ctx context.Context) error {
	if c.maybeCreated {
		n, err := c.q.findOwn(ctx, c.g, c.id)
		if err != nil || n != "" {
			c.queued = queued{name: n}
			return err
		}
	}
	for range 3 { // a missing parent, or a container emptied and removed under us
		c.maybeCreated = true
		err := c.createAndList(ctx)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, zk.ErrNoNode):
			c.maybeCreated = false
			if err := c.q.ensureDir(ctx, c.g); err != nil {
				return err
			}
			continue
		case c.g.ended():
			return permanent(c.g.err)
		}
		return err
	}
	return errorf("zklock: parent %q keeps disappearing", c.q.dir)
}

// dropID leaves the cleaner the duty to delete whatever node of g carries
// the protected id. If the create was given up on in flight, the duty
// first waits for its outcome: a search sent before the create is handled
// would find nothing, and the node, created after it, would be left to
// block every contender behind it.
func (q *queue) dropID(g *generation, id string, inflight <-chan outcome[string]) {
	var created string // the node the create made, once known
	q.cleaner.add(duty{g: g, what: q.dir + "/" + q.prefix(id) + "*", del: func(ctx context.Context) error {
		if inflight != nil {
			select {
			case o := <-inflight:
				inflight = nil
				created = o.v // "" if it failed: it may have landed all the same
			case <-ctx.Done():
				return ctx.Err()
			case <-g.done:
				return nil // the session's ephemeral nodes end with it
			}
		}
		_, err := call(ctx, g, func(c *zk.Conn) (none, error) {
			if created != "" {
				return none{}, deleteIfThere(c, created)
			}
			// Sync first: a server we reconnected to may not have applied
			// the create yet, though the leader has.
			if _, err := c.Sync(q.dir); err != nil {
				return none{}, err
			}
			names, err := ownedWithID(c, q.dir, id, g.sessionID)
			for _, n := range names {
				if err == nil {
					err = deleteIfThere(c, q.dir+"/"+n)
				}
			}
			return none{}, err
		})
		return err
	}})
}

// createAndList sends the create, then the listing of the directory right
// behind it. With watchDir the listing sets a watch on the children: a
// contender that expects to be alone keeps it as its hold's watch, which
// tells of its node's deletion (a change of the children) without a request
// of its own; a contender that finds others ahead leaves it, to fire once
// at the queue's next change.
func (c *creation) createAndList(ctx context.Context) error {
	// Copies: the requests may outlive this call, and the creation with it.
	q, g, full, data, watchDir := c.q, c.g, c.full, c.data, c.watchDir
	tr := g.tap.TraceCreate(full)
	defer g.tap.Untrace(tr)
	createDone := make(chan struct{})
	listed, err := start(g, func(conn *zk.Conn) (l listing, err error) {
		// The listing is sent once the create's bytes are written, so the
		// server handles it after the create; if the create was not sent,
		// neither is the listing.
		select {
		case <-tr.Sent():
		case <-createDone:
			// The create may have been sent all the same, and answered
			// before this goroutine ran (many acquisitions at once).
			select {
			case <-tr.Sent():
			default:
				return l, errNotListed
			}
		}
		if watchDir {
			l.kids, _, l.watch, err = conn.ChildrenW(q.dir)
		} else {
			l.kids, _, err = conn.Children(q.dir)
		}
		return l, err
	})
	if err != nil {
		return err
	}
	c.inflight = nil
	if err := ctx.Err(); err != nil {
		close(createDone)
		return err // nothing is sent once ctx has ended
	}
	res, err := start(g, func(conn *zk.Conn) (string, error) {
		return conn.Create(full, data, zk.FlagEphemeral|zk.FlagSequence, q.cfg.acl)
	})
	var created string
	if err == nil {
		created, err = wait(ctx, g, res)
		if ctx.Err() != nil && err == ctx.Err() {
			// Given up on while in flight: the create may still land, after
			// anything sent from here on (goroutines give no order), so
			// whoever cleans up must wait for its outcome first.
			c.inflight = res
		}
	}
	close(createDone)
	l, lerr := wait(ctx, g, listed)
	if err != nil {
		return err
	}
	// A copy: the name alone, not the whole path, is kept while waiting.
	c.queued = queued{name: strings.Clone(path.Base(created))}
	if czxid, ok := g.tap.Zxid(tr); ok && lerr == nil {
		c.kids, c.czxid, c.watch, c.behindCreate = l.kids, czxid, l.watch, true
	}
	return nil
}

// findOwn returns the name of g's node in the queue that carries id, or "".
func (q *queue) findOwn(ctx context.Context, g *generation, id string) (string, error) {
	found, err := call(ctx, g, func(c *zk.Conn) ([]string, error) {
		// Sync first: the server we reconnected to may not have applied
		// our create yet, though the leader has.
		if _, err := c.Sync(q.dir); err != nil {
			return nil, err
		}
		return ownedWithID(c, q.dir, id, g.sessionID)
	})
	if err != nil {
		if g.ended() {
			return "", permanent(g.err)
		}
		return "", err
	}
	if len(found) == 0 {
		return "", nil
	}
	nodes := seqnode.Contenders(found, func(seqnode.Kind) bool { return true })
	for _, extra := range nodes[1:] { // only possible if a retried create landed twice
		q.handOver(g, extra.Name)
	}
	return nodes[0].Name, nil
}

// ownedWithID lists the children of dir that carry protected id and are
// ephemeral nodes of session sid.
func ownedWithID(c *zk.Conn, dir, id string, sid int64) ([]string, error) {
	kids, _, err := c.Children(dir)
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil // the directory went, and our node with it
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, k := range kids {
		if !seqnode.HasID(k, id) {
			continue
		}
		ok, st, err := c.Exists(dir + "/" + k)
		if err != nil {
			return nil, err
		}
		if ok && st.EphemeralOwner == sid {
			out = append(out, k)
		}
	}
	return out, nil
}

// ensureDir creates the directory and missing parents as container nodes,
// which ZooKeeper removes once they are empty, so lock directories do not
// pile up.
func (q *queue) ensureDir(ctx context.Context, g *generation) error {
	var mk func(p string) error
	mk = func(p string) error {
		if p == "/" {
			return nil
		}
		_, err := call(ctx, g, func(c *zk.Conn) (string, error) {
			return c.CreateContainer(p, nil, zk.FlagContainer, q.cfg.acl)
		})
		if errors.Is(err, zk.ErrNoNode) {
			if err := mk(znode.Parent(p)); err != nil {
				return err
			}
			return mk(p)
		}
		if errors.Is(err, zk.ErrNodeExists) {
			return nil
		}
		return err
	}
	return mk(q.dir)
}

// list lists the contenders and sets a watch on the children. A listing
// that shows our node first proves the grant: our node existed and nothing
// blocked it when the server read the children. The watch then becomes the
// hold's, as in createAndList; a contender still behind others leaves it.
func (q *queue) list(ctx context.Context, g *generation) ([]string, <-chan zk.Event, error) {
	l, err := doOn(ctx, g, func(c *zk.Conn) (listing, error) {
		kids, _, w, err := c.ChildrenW(q.dir)
		return listing{kids, w}, err
	})
	return l.kids, l.watch, err
}

// watchNode sets a watch on the node name (the one ahead of ours), which
// fires when it is deleted or changed. A nil channel means it is gone
// already.
func (q *queue) watchNode(ctx context.Context, g *generation, name string) (<-chan zk.Event, error) {
	return doOn(ctx, g, func(c *zk.Conn) (<-chan zk.Event, error) {
		// GetW, not ExistsW: on a node already gone ExistsW would leave a
		// watch for its creation, which never comes, in the server and in
		// go-zookeeper until the session ends.
		_, _, ev, err := c.GetW(q.dir + "/" + name)
		if errors.Is(err, zk.ErrNoNode) {
			return nil, nil
		}
		return ev, err
	})
}

// watchChildren lists the contenders and sets a watch that fires when
// the children change. A directory that is gone is an empty listing.
func (q *queue) watchChildren(ctx context.Context, g *generation) ([]string, <-chan zk.Event, error) {
	kids, watch, err := q.list(ctx, g)
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil, nil
	}
	return kids, watch, err
}

// setData writes our node's data if its version is still version, on
// generation g, and returns the new version. A write whose reply is lost
// is not resent: the error says so (ErrOutcomeUnknown).
func (q *queue) setData(ctx context.Context, g *generation, name string, data []byte, version int32) (int32, error) {
	st, err := call(ctx, g, func(c *zk.Conn) (*zk.Stat, error) {
		return c.Set(q.dir+"/"+name, data, version)
	})
	switch {
	case err == nil:
		return st.Version, nil
	case errors.Is(err, zk.ErrConnectionClosed) || errors.Is(err, errGenerationEnded) || ctx.Err() != nil:
		return 0, errorf("%w: %w", ErrOutcomeUnknown, err)
	}
	return 0, err
}

// watchSelf checks our node and sets a watch on it, which fires when it is
// deleted or changed. A read made after a notification sees the state after
// the change notified, so it shows whether our node survived that change.
func (q *queue) watchSelf(ctx context.Context, g *generation, name string) (selfCheck, error) {
	return doOn(ctx, g, func(c *zk.Conn) (selfCheck, error) {
		ok, st, w, err := c.ExistsW(q.dir + "/" + name)
		return selfCheck{ok, st, w}, err
	})
}

// front is the first contender of the queue, as read by head.
type front struct {
	name  string
	data  []byte
	czxid int64
}

// head reads the first contender on the current ZooKeeper session (any
// one: the reader holds nothing), or errEmptyQueue. With watch set it also
// returns a watch on the children (or on the directory, while it does not
// exist); when the first contender goes while it is read, it returns
// errRelist and the watch, which fires for that change.
func (q *queue) head(ctx context.Context, watch bool) (front, <-chan zk.Event, error) {
	type dataStat struct {
		data []byte
		st   *zk.Stat
	}
	for {
		l, err := do(ctx, q.gens, func(c *zk.Conn) (listing, error) {
			if !watch {
				kids, _, err := c.Children(q.dir)
				if errors.Is(err, zk.ErrNoNode) {
					return listing{}, nil // no queue yet
				}
				return listing{kids: kids}, err
			}
			for {
				kids, _, w, err := c.ChildrenW(q.dir)
				if !errors.Is(err, zk.ErrNoNode) {
					return listing{kids, w}, err
				}
				// No queue yet: watch for the directory to appear.
				ok, _, w, err := c.ExistsW(q.dir)
				if err != nil {
					return listing{}, err
				}
				if !ok {
					return listing{watch: w}, nil
				}
			}
		})
		if err != nil {
			return front{}, nil, err
		}
		nodes := seqnode.Contenders(l.kids, q.queues)
		if len(nodes) == 0 {
			return front{}, l.watch, errEmptyQueue
		}
		name := nodes[0].Name
		r, err := do(ctx, q.gens, func(c *zk.Conn) (dataStat, error) {
			data, st, err := c.Get(q.dir + "/" + name)
			return dataStat{data, st}, err
		})
		if errors.Is(err, zk.ErrNoNode) {
			if watch {
				return front{}, l.watch, errRelist
			}
			continue
		}
		if err != nil {
			return front{}, nil, err
		}
		return front{name: name, data: r.data, czxid: r.st.Czxid}, l.watch, nil
	}
}

// discard deletes a node of g that is no longer wanted: at once when it
// can, else through the cleaner. An ended generation's ephemeral nodes go
// with its ZooKeeper session. A delete the server refuses is logged.
func (q *queue) discard(ctx context.Context, g *generation, name string) {
	if g.ended() {
		return
	}
	if q.gens.suspended() {
		// No wait for a connection: the caller (a Lock whose ctx ended)
		// returns at once, and the cleaner deletes the node later.
		q.handOver(g, name)
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if err := q.deleteOrHandOver(ctx, g, name); err != nil {
		q.cleaner.refused(q.dir+"/"+name, err)
	}
}

// release deletes the node of a hold being given up, bounded by ctx and
// cleanupTimeout; if the connection is down or the time runs out, the
// cleaner takes over. A release never waits for a connection to come
// back. It returns the server's refusal (no auth, ...): the node then
// stays until the ZooKeeper session ends.
func (q *queue) release(ctx context.Context, g *generation, name string) error {
	if g.ended() {
		return nil
	}
	if q.gens.suspended() {
		q.handOver(g, name)
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, cleanupTimeout)
	defer cancel()
	return q.deleteOrHandOver(ctx, g, name)
}

// deleteOrHandOver deletes our node name, handing the delete to the
// cleaner if a lost connection or ctx stops it; it returns only an error
// the server decided.
func (q *queue) deleteOrHandOver(ctx context.Context, g *generation, name string) error {
	if g.ended() {
		return nil
	}
	err := q.deleteOn(ctx, g, name)
	switch {
	case err == nil, g.ended():
		return nil
	case ctx.Err() != nil || retryable(err):
		q.handOver(g, name)
		return nil
	}
	return err
}

// deleteOn deletes our node name on generation g, retrying on a lost
// connection.
func (q *queue) deleteOn(ctx context.Context, g *generation, name string) error {
	_, err := doOn(ctx, g, func(c *zk.Conn) (none, error) {
		return none{}, deleteIfThere(c, q.dir+"/"+name)
	})
	return err
}

// handOver gives the delete of our node name to the cleaner.
func (q *queue) handOver(g *generation, name string) {
	p := q.dir + "/" + name
	q.cleaner.add(duty{g: g, what: p, del: func(ctx context.Context) error {
		_, err := call(ctx, g, func(c *zk.Conn) (none, error) {
			return none{}, deleteIfThere(c, p)
		})
		return err
	}})
}

// deleteIfThere deletes p; a node already gone counts as deleted.
func deleteIfThere(c *zk.Conn, p string) error {
	if err := c.Delete(p, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
		return err
	}
	return nil
}
