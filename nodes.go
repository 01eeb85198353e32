package zklock

import (
	"bytes"
	"context"
	"errors"

	"github.com/go-zookeeper/zk"

	"github.com/zklock/zklock/internal/znode"
)

func (s *Session) abs(op, p string) (string, error) {
	if err := znode.Validate(p); err != nil {
		return "", errorf("zklock: %s: %w: %w", op, ErrInvalidPath, err)
	}
	return znode.Join(s.cfg.chroot, p), nil
}

// Create creates node p holding data, with the Session's ACL. flags is 0
// (persistent) or zk.FlagEphemeral; sequential nodes are not offered,
// because a sequential create whose reply is lost leaves a node nobody can
// name (the recipes use protected creates for that). If the parent does not
// exist the error wraps zk.ErrNoNode; if p exists, zk.ErrNodeExists.
//
// Create first reads the parent's stat: one request more than ZooKeeper's
// own create, so that a create whose reply is lost can be checked instead of
// sent again blindly (a blind retry could re-create a node another client
// deleted in between). After a lost reply Create syncs and reads the parent
// and the node again, on the ZooKeeper session the create was sent in, and
// decides from the parent's count of child changes:
//   - nothing created or deleted under the parent since, or one change while
//     the node is absent: the create did not happen; it is sent again;
//   - the node is an ephemeral of the current ZooKeeper session: this call
//     created it (or another call on this Session did); nil;
//   - the node exists and is provably another's (an ephemeral of another
//     session, or a persistent node never written whose data differs), and
//     that creation is the only change since: the error wraps
//     zk.ErrNodeExists;
//   - otherwise the error wraps ErrOutcomeUnknown, and zk.ErrNodeExists if
//     the node exists. A persistent node holding our data is the common case:
//     another client may have created it with the same data. Unique data
//     (an id of the writer) lets the caller tell.
//
// So nil means this call created the node, once. If ctx ends, or the
// ZooKeeper session ends, after the create was sent and before it could be
// checked, the error wraps ErrOutcomeUnknown and ctx.Err() or the session's
// end (ErrSessionExpired, ErrSessionClosed); an ephemeral node made in a
// ZooKeeper session that ended vanishes with it.
func (s *Session) Create(ctx context.Context, p string, data []byte, flags int32) error {
	full, err := s.abs("create", p)
	if err != nil {
		return err
	}
	if flags != 0 && flags != zk.FlagEphemeral {
		return errorf("zklock: create %q: %w: flags %d (want 0 or zk.FlagEphemeral)", p, ErrInvalidOption, flags)
	}
	if err := checkSize(createSize(full, data, s.cfg.acl), s.cfg.maxBuf); err != nil {
		return errorf("zklock: create %q: %w", p, err)
	}
	parent := znode.Parent(full)
	ephemeral := flags == zk.FlagEphemeral
	_, err = writeOnce(ctx, s.gens, write[none]{
		sync: parent,
		read: func(c *zk.Conn) (*zk.Stat, error) { return stat(c, parent) },
		send: func(c *zk.Conn) (none, error) {
			_, err := c.Create(full, data, flags, s.cfg.acl)
			return none{}, err
		},
		check: func(c *zk.Conn, ref *zk.Stat) (verdict[none], error) {
			pst, err := stat(c, parent)
			if err != nil && !errors.Is(err, zk.ErrNoNode) {
				return verdict[none]{}, err
			}
			got, st, err := c.Get(full)
			if err != nil && !errors.Is(err, zk.ErrNoNode) {
				return verdict[none]{}, err
			}
			exists := err == nil
			if pst == nil || pst.Czxid != ref.Czxid {
				return unknown[none]("the parent was deleted or replaced since")
			}
			var exist error // what the caller learns besides
			if exists {
				exist = zk.ErrNodeExists
			}
			// Every create or delete of a child adds one to Cversion.
			switch changes := int64(pst.Cversion) - int64(ref.Cversion); {
			case changes == 0 && exists:
				return done(none{}, exist) // it was there before the create
			case changes == 0, changes == 1 && !exists:
				return resend[none](pst) // ours would have left a node
			case exists && ephemeral && st.EphemeralOwner == c.SessionID():
				return done(none{}, nil)
			case exists && changes == 1 && (ephemeral || st.EphemeralOwner != 0 || st.Version == 0 && !bytes.Equal(got, data)):
				return done(none{}, exist) // the one creation was another's
			case exists:
				return unknown[none]("%w, maybe created by this call", exist)
			default:
				return unknown[none]("the node is absent, but nodes were created and deleted under its parent since, maybe this one")
			}
		},
	})
	if err != nil {
		return errorf("zklock: create %q: %w", p, err)
	}
	return nil
}

// Get returns a node's data and stat.
func (s *Session) Get(ctx context.Context, p string) ([]byte, *zk.Stat, error) {
	full, err := s.abs("get", p)
	if err != nil {
		return nil, nil, err
	}
	r, err := do(ctx, s.gens, func(c *zk.Conn) (dataStat, error) {
		data, st, err := c.Get(full)
		return dataStat{data, st}, err
	})
	if err != nil {
		return nil, nil, errorf("zklock: get %q: %w", p, err)
	}
	return r.data, r.st, nil
}

// Set writes data to node p if its version is version (-1 matches any
// version) and returns the node's new stat. If there is no node the error
// wraps zk.ErrNoNode; if its version differs, zk.ErrBadVersion.
//
// Set first reads the node's stat: one request more than ZooKeeper's own
// call, so that a write whose reply is lost can be checked instead of sent
// again blindly (a blind retry could report a landed compare-and-set as
// zk.ErrBadVersion, or overwrite a later writer's data with ours). After a
// lost reply Set syncs and reads the node again, on the ZooKeeper session
// the write was sent in:
//   - the node was not written since (its version is still the one read
//     first, or with a version, not past version): the write did not
//     happen; it is sent again;
//   - with a version: if the node was past version before the write was
//     sent, or is at version+1 holding other data, the write failed; the
//     error wraps zk.ErrBadVersion. If it is at version+1 holding our data,
//     the error wraps ErrOutcomeUnknown: another client's compare-and-set may
//     have written the same bytes, and two clients told that the same
//     compare-and-set succeeded is what it exists to prevent;
//   - with -1: if the node holds our data, Set returns its stat and nil: the
//     node holds the bytes asked for, written once by this call or by
//     another writer of the same bytes. If exactly one write happened and
//     the node holds other data, that write was another's; ours is sent
//     again;
//   - otherwise (the node was deleted or replaced, or written more than
//     once since, by us or others) the error wraps ErrOutcomeUnknown:
//     writing again could undo a later writer's data.
//
// So nil means the node held data after this call wrote it at most once
// (exactly once with a version). If ctx ends, or the ZooKeeper session ends,
// after the write was sent and before it could be checked, the error wraps
// ErrOutcomeUnknown and ctx.Err() or the session's end.
func (s *Session) Set(ctx context.Context, p string, data []byte, version int32) (*zk.Stat, error) {
	full, err := s.abs("set", p)
	if err != nil {
		return nil, err
	}
	if err := checkSize(setSize(full, data), s.cfg.maxBuf); err != nil {
		return nil, errorf("zklock: set %q: %w", p, err)
	}
	st, err := writeOnce(ctx, s.gens, write[*zk.Stat]{
		sync: full,
		read: func(c *zk.Conn) (*zk.Stat, error) { return stat(c, full) },
		send: func(c *zk.Conn) (*zk.Stat, error) { return c.Set(full, data, version) },
		check: func(c *zk.Conn, ref *zk.Stat) (verdict[*zk.Stat], error) {
			got, st, err := c.Get(full)
			switch {
			case errors.Is(err, zk.ErrNoNode):
				return unknown[*zk.Stat]("the node was deleted since")
			case err != nil:
				return verdict[*zk.Stat]{}, err
			case st.Czxid != ref.Czxid:
				return unknown[*zk.Stat]("the node was replaced since")
			}
			ours := bytes.Equal(got, data)
			cur, was, want := int64(st.Version), int64(ref.Version), int64(version)
			if version >= 0 {
				switch {
				case was > want:
					return done[*zk.Stat](nil, zk.ErrBadVersion)
				case cur <= want:
					return resend[*zk.Stat](st)
				case cur == want+1 && !ours:
					return done[*zk.Stat](nil, zk.ErrBadVersion)
				case cur == want+1:
					return unknown[*zk.Stat]("the node is at version %d holding the data written, by this call or another", cur)
				default:
					return unknown[*zk.Stat]("the node was written %d times since version %d", cur-want, want)
				}
			}
			switch {
			case cur == was:
				return resend[*zk.Stat](st)
			case ours:
				return done(st, nil)
			case cur == was+1:
				return resend[*zk.Stat](st) // the one write was another's
			default:
				return unknown[*zk.Stat]("the node was written %d times since, maybe once by this call", cur-was)
			}
		},
	})
	if err != nil {
		return nil, errorf("zklock: set %q: %w", p, err)
	}
	return st, nil
}

// Delete deletes node p if its version is version (-1 matches any
// version). If there is no node the error wraps zk.ErrNoNode; if its version
// differs, zk.ErrBadVersion; if it has children, zk.ErrNotEmpty.
//
// Delete first reads the node's stat: one request more than ZooKeeper's own
// call, to learn which node it deletes (its creation zxid), so that a delete
// whose reply is lost can be checked instead of sent again blindly (a blind
// retry could delete a node another client created in between). After a
// lost reply Delete syncs and reads again, on the ZooKeeper session the
// delete was sent in: if that node is gone (no node, or one created since),
// Delete returns nil, whether this call or another client deleted it; if
// it is still there, the delete did not happen and is sent again.
//
// So nil means the node Delete found is gone and Delete deleted no other
// node. (ZooKeeper cannot delete by creation zxid: a node replaced at the
// same version between that read and the delete sent again is deleted
// instead, as any delete racing with a re-create may do.) If ctx ends, or
// the ZooKeeper session ends, after the delete was sent and before it could
// be checked, the error wraps ErrOutcomeUnknown and ctx.Err() or the
// session's end.
func (s *Session) Delete(ctx context.Context, p string, version int32) error {
	full, err := s.abs("delete", p)
	if err != nil {
		return err
	}
	_, err = writeOnce(ctx, s.gens, write[none]{
		sync: full,
		read: func(c *zk.Conn) (*zk.Stat, error) { return stat(c, full) },
		send: func(c *zk.Conn) (none, error) { return none{}, c.Delete(full, version) },
		check: func(c *zk.Conn, ref *zk.Stat) (verdict[none], error) {
			st, err := stat(c, full)
			switch {
			case errors.Is(err, zk.ErrNoNode):
				return done(none{}, nil)
			case err != nil:
				return verdict[none]{}, err
			case st.Czxid != ref.Czxid:
				return done(none{}, nil)
			}
			return resend[none](st)
		},
	})
	if err != nil {
		return errorf("zklock: delete %q: %w", p, err)
	}
	return nil
}

// Exists reports whether a node exists, with its stat when it does.
func (s *Session) Exists(ctx context.Context, p string) (bool, *zk.Stat, error) {
	full, err := s.abs("exists", p)
	if err != nil {
		return false, nil, err
	}
	st, err := do(ctx, s.gens, func(c *zk.Conn) (*zk.Stat, error) {
		ok, st, err := c.Exists(full)
		if !ok {
			st = nil
		}
		return st, err
	})
	if err != nil {
		return false, nil, errorf("zklock: exists %q: %w", p, err)
	}
	return st != nil, st, nil
}

// Children returns the names of a node's children, unsorted.
func (s *Session) Children(ctx context.Context, p string) ([]string, error) {
	full, err := s.abs("children", p)
	if err != nil {
		return nil, err
	}
	names, err := do(ctx, s.gens, func(c *zk.Conn) ([]string, error) {
		names, _, err := c.Children(full)
		return names, err
	})
	if err != nil {
		return nil, errorf("zklock: children %q: %w", p, err)
	}
	return names, nil
}

// Multi runs ops atomically: all succeed or none does. ops are
// *zk.CreateRequest, *zk.DeleteRequest, *zk.SetDataRequest and
// *zk.CheckVersionRequest with paths under the Session's chroot (a create
// with a nil ACL gets the Session's); they are not modified. Put a lock's
// Guard among them to make the writes depend on still holding the lock.
//
// A multi is sent once and never retried, because no read afterwards can
// tell its writes from other clients' in general. If its reply never comes
// (the connection or the ZooKeeper session is lost, or ctx ends after it
// was sent), the error wraps ErrOutcomeUnknown and the cause
// (zk.ErrConnectionClosed, ctx.Err(), ...): the writes may all have
// happened or none. Read the nodes to find out; a create or unique data in
// the multi makes its effect recognisable.
func (s *Session) Multi(ctx context.Context, ops ...any) ([]zk.MultiResponse, error) {
	rewritten := make([]any, len(ops))
	for i, op := range ops {
		var p *string
		switch o := op.(type) {
		case *zk.CreateRequest:
			c := *o
			if c.Acl == nil {
				c.Acl = s.cfg.acl
			}
			if c.Flags&zk.FlagSequence != 0 {
				// The server checks a sequential path with its number
				// appended: "/queue/" is valid, and under a chroot it is
				// "<chroot>/queue/", never the chroot itself.
				if err := znode.ValidateSequential(c.Path); err != nil {
					return nil, errorf("zklock: multi: %w: %w", ErrInvalidPath, err)
				}
				c.Path = s.cfg.chroot + c.Path
				rewritten[i] = &c
				continue
			}
			p, rewritten[i] = &c.Path, &c
		case *zk.DeleteRequest:
			c := *o
			p, rewritten[i] = &c.Path, &c
		case *zk.SetDataRequest:
			c := *o
			p, rewritten[i] = &c.Path, &c
		case *zk.CheckVersionRequest:
			c := *o
			p, rewritten[i] = &c.Path, &c
		default:
			return nil, errorf("zklock: multi: %w: op %d has unsupported type %T", ErrInvalidOption, i, op)
		}
		full, err := s.abs("multi", *p)
		if err != nil {
			return nil, err
		}
		*p = full
	}
	if err := checkSize(multiSize(rewritten), s.cfg.maxBuf); err != nil {
		return nil, errorf("zklock: multi: %w", err)
	}
	// Sent once: a multi that was sent is never sent again. One that
	// go-zookeeper failed before sending it (no server) waits for the next
	// connection, like the other node operations.
	var res []zk.MultiResponse
	unknown := false
	err := retry(ctx, s.cfg.backoff, s.clk, func(ctx context.Context) error {
		g, err := s.gens.current(ctx)
		if err != nil {
			return permanent(err)
		}
		if err := ctx.Err(); err != nil {
			return permanent(err) // not sent
		}
		r, err := call(ctx, g, func(c *zk.Conn) ([]zk.MultiResponse, error) {
			return c.Multi(rewritten...)
		})
		switch {
		case err == nil:
			res = r
			return nil
		case errors.Is(err, zk.ErrNoServer):
			return err
		case !settled(err) && sent(err):
			unknown = true
		}
		res = r
		return permanent(err)
	})
	for i := range res {
		if res[i].String != "" {
			res[i].String = znode.Strip(s.cfg.chroot, res[i].String)
		}
	}
	switch {
	case err != nil && unknown:
		return res, errorf("zklock: multi: %w: %w", ErrOutcomeUnknown, err)
	case err != nil:
		return res, errorf("zklock: multi: %w", err)
	}
	return res, nil
}

type dataStat struct {
	data []byte
	st   *zk.Stat
}

// stat returns a node's stat, or an error wrapping zk.ErrNoNode.
func stat(c *zk.Conn, p string) (*zk.Stat, error) {
	ok, st, err := c.Exists(p)
	if err == nil && !ok {
		return nil, zk.ErrNoNode
	}
	return st, err
}

// write is a ZooKeeper write that must not take effect twice, with the reads
// that check it.
type write[T any] struct {
	sync string                           // path synced before check, so it reads the server's latest state
	read func(*zk.Conn) (*zk.Stat, error) // the state before the first send, to check against
	send func(*zk.Conn) (T, error)
	// check looks at the state after a send whose reply was lost, compares
	// it with ref (the state read before that send) and decides.
	check func(c *zk.Conn, ref *zk.Stat) (verdict[T], error)
}

// verdict is what a check concludes.
type verdict[T any] struct {
	resend bool     // the write did not happen: send it again
	ref    *zk.Stat // with resend: the state to check the next send against
	v      T        // otherwise: the outcome
	err    error
}

func resend[T any](ref *zk.Stat) (verdict[T], error) {
	return verdict[T]{resend: true, ref: ref}, nil
}

func done[T any](v T, err error) (verdict[T], error) { return verdict[T]{v: v, err: err}, nil }

func unknown[T any](format string, args ...any) (verdict[T], error) {
	return verdict[T]{err: errorf("%w: "+format, append([]any{ErrOutcomeUnknown}, args...)...)}, nil
}

// writeOnce runs w on the current ZooKeeper session, retrying like do on a
// lost connection and on the next ZooKeeper session, except that it never
// sends w again while an earlier send may have taken effect. After a send
// whose reply never came, it checks on the ZooKeeper session the send went
// out in: ZooKeeper handles a session's requests in order, so a sync and
// reads sent after it see its effect if it had any. Another session's reads
// could overtake it, so if that session ends first, or ctx ends, the
// outcome is unknown.
func writeOnce[T any](ctx context.Context, gs *generations, w write[T]) (T, error) {
	var (
		out    T
		outErr error
		ref    *zk.Stat    // the state the pending or next send is checked against
		sentOn *generation // where a send whose outcome is unknown went; nil if none
		d      drops       // sends in a row the connection dropped under
	)
	err := retry(ctx, gs.cfg.backoff, gs.clk, func(ctx context.Context) error {
		if g := sentOn; g != nil {
			if g.ended() {
				return permanent(errorf("the zookeeper session it was sent in ended: %w", g.err))
			}
			r := ref // op may outlive this attempt: it gets its own copy
			vd, err := call(ctx, g, func(c *zk.Conn) (verdict[T], error) {
				if _, err := c.Sync(w.sync); err != nil {
					return verdict[T]{}, err
				}
				return w.check(c, r)
			})
			if err != nil {
				return err // retryable: check again; otherwise unknown
			}
			sentOn = nil
			if !vd.resend {
				out, outErr = vd.v, vd.err
				return nil
			}
			ref = vd.ref
		}
		g, err := gs.current(ctx)
		if err != nil {
			return permanent(err)
		}
		if ref == nil {
			r, err := call(ctx, g, w.read)
			if err != nil {
				return endedOn(ctx, g, err)
			}
			ref = r
		}
		v, err := call(ctx, g, w.send)
		if settled(err) {
			out, outErr = v, err
			return nil
		}
		if sent(err) {
			sentOn = g
		}
		return d.check(endedOn(ctx, g, err))
	})
	switch {
	case err != nil && sentOn != nil:
		return out, errorf("%w: %w", ErrOutcomeUnknown, err)
	case err != nil:
		return out, err
	}
	return out, outErr
}

// endedOn marks err as caused by the end of g's ZooKeeper session, as do
// does, so that an operation not bound to one session retries on the next.
func endedOn(ctx context.Context, g *generation, err error) error {
	if err != nil && ctx.Err() == nil && g.ended() && !errors.Is(err, errGenerationEnded) {
		return errorf("%w: %w", errGenerationEnded, err)
	}
	return err
}

// settled reports whether a write's outcome is known from its error: nil,
// or a refusal, which only the server's reply or go-zookeeper's checks
// before sending give. Anything else (a lost connection or ZooKeeper
// session, a ctx that ended, a shutdown) may come after the server applied
// the write.
func settled(err error) bool {
	if err == nil {
		return true
	}
	for _, refusal := range []error{
		zk.ErrNoNode, zk.ErrNodeExists, zk.ErrBadVersion, zk.ErrNotEmpty,
		zk.ErrNoAuth, zk.ErrInvalidACL, zk.ErrNoChildrenForEphemerals,
		zk.ErrBadArguments, zk.ErrAPIError, zk.ErrInvalidPath, zk.ErrInvalidFlags,
	} {
		if errors.Is(err, refusal) {
			return true
		}
	}
	return false
}

// sent reports whether a request that failed with err may have been sent:
// every failure but call's refusal to start it once the Session is closed.
func sent(err error) bool {
	if errors.Is(err, zk.ErrNoServer) {
		return false // failed by go-zookeeper before it was written
	}
	return !errors.Is(err, ErrSessionClosed) || errors.Is(err, errGenerationEnded)
}
