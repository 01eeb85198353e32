package zklock

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"path"
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
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// queued is a node enqueue created, and, when the create went through at
// the first try, what the requests pipelined behind it saw.
type queued struct {
	name  string
	kids  []string   // the parent's children just after the create; nil if unknown
	czxid int64      // from the create's reply; valid with kids
	self  *selfCheck // a watch set on our node right behind the create, if any
}

// seqGuess is the sequence number a create is expected to get, if any.
type seqGuess struct {
	seq int32
	ok  bool
}

// enqueue creates an ephemeral sequential node under dir (a full path) on
// generation g, named prefix(id) plus ZooKeeper's sequence number, creating
// dir and its parents as container nodes when missing.
//
// The parent's children are listed in the same round trip: the listing is
// sent as soon as the create's bytes are written, so the server handles it
// after the create, and an uncontended caller learns it is first without
// waiting for a second reply.
//
// A create whose reply is lost may still have happened. enqueue then looks
// the node up by its id, and accepts a node only if g's session owns it: a
// node with the same id left by another session is never taken as ours.
// If enqueue fails after a create may have happened, it leaves the Session's
// cleaner the duty to delete whatever node carries the id.
//
// With a guess of the sequence number, a watch on the node by that name is
// set in the same round trip; q.self has it if the guess was right.
func (s *Session) enqueue(ctx context.Context, g *generation, dir string, prefix func(id string) string, data []byte, guess seqGuess) (queued, error) {
	id := s.newID()
	full := dir + "/" + prefix(id)
	var q queued
	maybeCreated := false
	err := retry(ctx, s.cfg.backoff, s.clk, func(ctx context.Context) error {
		if maybeCreated {
			n, err := s.findOwn(ctx, g, dir, id)
			if err != nil || n != "" {
				q = queued{name: n}
				return err
			}
		}
		for range 3 { // a missing parent, or a container emptied and removed under us
			maybeCreated = true
			created, err := s.createAndList(ctx, g, full, dir, data, guess)
			switch {
			case err == nil:
				q = created
				return nil
			case errors.Is(err, zk.ErrNoNode):
				maybeCreated = false
				if err := s.ensureDir(ctx, g, dir); err != nil {
					return err
				}
				continue
			case g.ended():
				return permanent(g.err)
			}
			return err
		}
		return fmt.Errorf("zklock: parent %q keeps disappearing", dir)
	})
	if err != nil {
		if maybeCreated && !g.ended() {
			s.addDuty(duty{g: g, dir: dir, id: id})
		}
		return queued{}, err
	}
	return q, nil
}

// createAndList sends the create, then the listing of dir right behind
// it, and with a guess of the sequence number a watch on the node by that
// name: the guessed name carries this create's random id, so only this
// create can have made it. Without the guess, the watch on our node would
// take a request of its own once the lock is granted, which would sit
// ahead of the release's delete.
func (s *Session) createAndList(ctx context.Context, g *generation, full, dir string, data []byte, guess seqGuess) (queued, error) {
	tr := g.tap.TraceCreate(full)
	defer g.tap.Untrace(tr)
	createDone := make(chan struct{})
	// behind runs op once the create's bytes are written, so the server
	// handles it after the create; if the create was not sent, op is not
	// sent either.
	behind := func(op func(*zk.Conn) error) error {
		select {
		case <-tr.Sent():
		case <-createDone:
			// The create may have been sent all the same, and answered
			// before this goroutine ran (many acquisitions at once).
			select {
			case <-tr.Sent():
			default:
				return errNotListed
			}
		}
		return op(g.conn)
	}
	listed, err := start(s, g, func(c *zk.Conn) (kids []string, err error) {
		err = behind(func(c *zk.Conn) error {
			kids, _, err = c.Children(dir)
			return err
		})
		return kids, err
	})
	if err != nil {
		return queued{}, err
	}
	guessed := ""
	var checked <-chan outcome[selfCheck]
	if guess.ok {
		guessed = fmt.Sprintf("%s%010d", full, guess.seq)
		checked, err = start(s, g, func(c *zk.Conn) (sc selfCheck, err error) {
			err = behind(func(c *zk.Conn) error {
				// GetW sets no watch on a node that does not exist.
				_, st, w, err := c.GetW(guessed)
				if err == nil {
					sc = selfCheck{ok: true, st: st, watch: w}
				}
				return err
			})
			return sc, err
		})
		if err != nil {
			close(createDone)
			return queued{}, err
		}
	}
	created, err := call(ctx, s, g, func(c *zk.Conn) (string, error) {
		return c.Create(full, data, zk.FlagEphemeral|zk.FlagSequence, s.cfg.acl)
	})
	close(createDone)
	kids, lerr := wait(ctx, g, listed)
	var sc selfCheck
	var serr error = errNotListed
	if checked != nil {
		sc, serr = wait(ctx, g, checked)
	}
	if err != nil {
		return queued{}, err
	}
	q := queued{name: path.Base(created)}
	if czxid, ok := g.tap.Zxid(tr); ok && lerr == nil {
		q.kids, q.czxid = kids, czxid
	}
	if serr == nil && sc.ok && created == guessed {
		q.self = &sc
	}
	return q, nil
}

// errNotListed: the pipelined listing was not sent; the caller lists again.
var errNotListed = errors.New("zklock: listing not sent")

// findOwn returns the name of g's node under dir that carries id, or "".
func (s *Session) findOwn(ctx context.Context, g *generation, dir, id string) (string, error) {
	found, err := call(ctx, s, g, func(c *zk.Conn) ([]string, error) {
		// Sync first: the server we reconnected to may not have applied
		// our create yet, though the leader has.
		if _, err := c.Sync(dir); err != nil {
			return nil, err
		}
		return ownedWithID(c, dir, id, g.sessionID)
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
		s.addDuty(duty{g: g, dir: dir, name: extra.Name})
	}
	return nodes[0].Name, nil
}

// ensureDir creates dir and missing parents as container nodes, which
// ZooKeeper removes once they are empty, so lock directories do not pile up.
func (s *Session) ensureDir(ctx context.Context, g *generation, dir string) error {
	var mk func(p string) error
	mk = func(p string) error {
		if p == "/" {
			return nil
		}
		_, err := call(ctx, s, g, func(c *zk.Conn) (string, error) {
			return c.CreateContainer(p, nil, zk.FlagContainer, s.cfg.acl)
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
	return mk(dir)
}

// discard deletes a node of g that is no longer wanted: at once when it
// can, else through the Session's cleaner. An ended generation's ephemeral
// nodes go with its ZooKeeper session.
func (s *Session) discard(ctx context.Context, g *generation, dir, name string) {
	if g.ended() {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if err := s.deleteOn(ctx, g, dir+"/"+name); err != nil {
		s.addDuty(duty{g: g, dir: dir, name: name})
	}
}

// release deletes the node of a hold being given up, bounded by ctx and
// cleanupTimeout; if that does not succeed, the cleaner takes over. A
// release never waits for a connection to come back.
func (s *Session) release(ctx context.Context, g *generation, dir, name string) {
	if g.ended() {
		return
	}
	if s.State() == StateSuspended {
		s.addDuty(duty{g: g, dir: dir, name: name})
		return
	}
	ctx, cancel := context.WithTimeout(ctx, cleanupTimeout)
	defer cancel()
	if err := s.deleteOn(ctx, g, dir+"/"+name); err != nil && !g.ended() {
		s.addDuty(duty{g: g, dir: dir, name: name})
	}
}

// deleteOn deletes p on generation g; a node already gone counts as
// deleted.
func (s *Session) deleteOn(ctx context.Context, g *generation, p string) error {
	_, err := doOn(ctx, s, g, func(c *zk.Conn) (none, error) {
		err := c.Delete(p, -1)
		if errors.Is(err, zk.ErrNoNode) {
			return none{}, nil
		}
		return none{}, err
	})
	return err
}

// ownedWithID lists the children of dir that carry protected id and are
// ephemeral nodes of session sid.
func ownedWithID(c *zk.Conn, dir, id string, sid int64) ([]string, error) {
	kids, _, err := c.Children(dir)
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
