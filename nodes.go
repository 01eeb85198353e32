package zklock

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/go-zookeeper/zk"

	"github.com/zklock/zklock/internal/znode"
)

func (s *Session) abs(op, p string) (string, error) {
	if err := znode.Validate(p); err != nil {
		return "", fmt.Errorf("zklock: %s: %w: %w", op, ErrInvalidPath, err)
	}
	return znode.Join(s.cfg.chroot, p), nil
}

// Create creates a node with the Session's ACL. flags is 0 (persistent) or
// zk.FlagEphemeral; sequential nodes are not offered because a create whose
// reply is lost cannot be told apart from one that never happened (the
// recipes use protected creates for that). A retried create that finds the
// node already there succeeds only if the node is an ephemeral of the current
// session; otherwise the error wraps zk.ErrNodeExists. The parent must exist.
func (s *Session) Create(ctx context.Context, p string, data []byte, flags int32) error {
	full, err := s.abs("create", p)
	if err != nil {
		return err
	}
	if flags != 0 && flags != zk.FlagEphemeral {
		return fmt.Errorf("zklock: create %q: %w: flags %d (want 0 or zk.FlagEphemeral)", p, ErrInvalidOption, flags)
	}
	var attempts atomic.Int32 // an abandoned attempt may still run
	_, err = do(ctx, s.gens, func(c *zk.Conn) (none, error) {
		retried := attempts.Add(1) > 1
		_, err := c.Create(full, data, flags, s.cfg.acl)
		if errors.Is(err, zk.ErrNodeExists) && retried && flags == zk.FlagEphemeral {
			_, st, serr := c.Exists(full)
			if serr == nil && st != nil && st.EphemeralOwner == c.SessionID() {
				return none{}, nil // our earlier attempt landed
			}
		}
		return none{}, err
	})
	if err != nil {
		return fmt.Errorf("zklock: create %q: %w", p, err)
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
		return nil, nil, fmt.Errorf("zklock: get %q: %w", p, err)
	}
	return r.data, r.st, nil
}

// Set writes a node's data if its version matches (-1 matches any).
func (s *Session) Set(ctx context.Context, p string, data []byte, version int32) (*zk.Stat, error) {
	full, err := s.abs("set", p)
	if err != nil {
		return nil, err
	}
	st, err := do(ctx, s.gens, func(c *zk.Conn) (*zk.Stat, error) {
		return c.Set(full, data, version)
	})
	if err != nil {
		return nil, fmt.Errorf("zklock: set %q: %w", p, err)
	}
	return st, nil
}

// Delete deletes a node if its version matches (-1 matches any). A retried
// delete that finds no node succeeds: the earlier attempt landed.
func (s *Session) Delete(ctx context.Context, p string, version int32) error {
	full, err := s.abs("delete", p)
	if err != nil {
		return err
	}
	var attempts atomic.Int32
	_, err = do(ctx, s.gens, func(c *zk.Conn) (none, error) {
		retried := attempts.Add(1) > 1
		err := c.Delete(full, version)
		if errors.Is(err, zk.ErrNoNode) && retried {
			return none{}, nil
		}
		return none{}, err
	})
	if err != nil {
		return fmt.Errorf("zklock: delete %q: %w", p, err)
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
		return false, nil, fmt.Errorf("zklock: exists %q: %w", p, err)
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
		return nil, fmt.Errorf("zklock: children %q: %w", p, err)
	}
	return names, nil
}

// Multi runs ops atomically: all succeed or none does. ops are
// *zk.CreateRequest, *zk.DeleteRequest, *zk.SetDataRequest and
// *zk.CheckVersionRequest with paths under the Session's chroot (a create
// with a nil ACL gets the Session's); they are not modified. Put a lock's
// Guard among them to make the writes depend on still holding the lock.
//
// A multi is not retried: if the connection is lost before the reply, the
// error wraps zk.ErrConnectionClosed and the caller cannot tell whether the
// writes happened.
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
			return nil, fmt.Errorf("zklock: multi: %w: op %d has unsupported type %T", ErrInvalidOption, i, op)
		}
		full, err := s.abs("multi", *p)
		if err != nil {
			return nil, err
		}
		*p = full
	}
	g, err := s.gens.current(ctx)
	if err != nil {
		return nil, fmt.Errorf("zklock: multi: %w", err)
	}
	res, err := call(ctx, g, func(c *zk.Conn) ([]zk.MultiResponse, error) {
		return c.Multi(rewritten...)
	})
	if err != nil {
		return res, fmt.Errorf("zklock: multi: %w", err)
	}
	return res, nil
}

type dataStat struct {
	data []byte
	st   *zk.Stat
}
