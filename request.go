package zklock

import (
	"context"
	"errors"

	"github.com/go-zookeeper/zk"
)

// outcome is what an operation started by start returned.
type outcome[T any] struct {
	v   T
	err error
}

// none is the result type of operations that return only an error.
type none = struct{}

// start runs op on g's connection in a goroutine the Session owns and
// returns at once, so several requests can be in flight together
// (goroutines give no order: a caller that needs one enforces it inside op).
// The channel gets op's outcome; wait takes it. go-zookeeper's calls take no
// context, so the request completes in the background, at the latest when
// the connection is closed, whoever waits for it.
func start[T any](g *generation, op func(*zk.Conn) (T, error)) (<-chan outcome[T], error) {
	res := make(chan outcome[T], 1) // never blocks the goroutine
	// Owner: the Session; ends when go-zookeeper answers or fails the
	// request; joined by Close.
	err := g.own.spawn(func() {
		v, err := op(g.conn)
		res <- outcome[T]{v, err}
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// wait returns the outcome of an operation started on g, unless ctx or g
// ends first.
func wait[T any](ctx context.Context, g *generation, res <-chan outcome[T]) (T, error) {
	var zero T
	select {
	case r := <-res:
		return r.v, r.err
	case <-ctx.Done():
		return zero, ctx.Err()
	case <-g.done:
		return zero, errorf("%w: %w", errGenerationEnded, g.err)
	}
}

// call runs op on g's connection and waits for it, until ctx or g ends.
// op's results reach the caller only through call's return values, so a
// request abandoned here can never overwrite the results of a later
// attempt.
func call[T any](ctx context.Context, g *generation, op func(*zk.Conn) (T, error)) (T, error) {
	if err := ctx.Err(); err != nil {
		var zero T
		return zero, err // nothing is sent once ctx has ended
	}
	res, err := start(g, op)
	if err != nil {
		var zero T
		return zero, err
	}
	return wait(ctx, g, res)
}

// doOn runs op on generation g, retrying on a lost connection. If g ends,
// it fails with g's cause: whatever op was for is void in a new ZooKeeper
// session.
func doOn[T any](ctx context.Context, g *generation, op func(*zk.Conn) (T, error)) (T, error) {
	// The first attempt is made here, outside the retry loop: a waiting
	// Lock's stack then need not make room for the loop's frames.
	out, err := call(ctx, g, op)
	if err == nil {
		return out, nil
	}
	var d drops
	err = retryAfter(ctx, g.policy, g.clk, onAttempt(ctx, g, &d, err), func(ctx context.Context) error {
		v, err := call(ctx, g, op)
		if err == nil {
			out = v
		}
		return onAttempt(ctx, g, &d, err)
	})
	return out, err
}

// onAttempt classifies the error of an attempt of doOn on g.
func onAttempt(ctx context.Context, g *generation, d *drops, err error) error {
	if err != nil && g.ended() && ctx.Err() == nil {
		return permanent(g.err)
	}
	return d.check(err)
}

// do runs op on the current ZooKeeper session, retrying per the backoff
// policy on a lost connection, and on the next ZooKeeper session if the
// current one ends. op must be safe to repeat.
func do[T any](ctx context.Context, gs *generations, op func(*zk.Conn) (T, error)) (T, error) {
	var out T
	var d drops
	err := retry(ctx, gs.cfg.backoff, gs.clk, func(ctx context.Context) error {
		g, err := gs.current(ctx)
		if err != nil {
			return permanent(err)
		}
		v, err := call(ctx, g, op)
		if err != nil && ctx.Err() == nil && g.ended() && !errors.Is(err, errGenerationEnded) {
			err = errorf("%w: %w", errGenerationEnded, err)
		}
		if err == nil {
			out = v
		}
		return d.check(err)
	})
	return out, err
}

// drops counts the attempts of one operation in a row that their
// connection dropped under. A server answers a request it refuses to parse
// by dropping the connection, which a client cannot tell from a network
// fault; retried for ever, such a request would drop the shared connection
// again and again.
type drops int

// maxDrops is how many attempts in a row may end in a dropped connection
// before the operation stops being retried.
const maxDrops = 5

// check counts err and makes it permanent at the maxDrops-th drop in a row.
// The end of a ZooKeeper session is not a drop: the operation is void.
func (d *drops) check(err error) error {
	if !errors.Is(err, zk.ErrConnectionClosed) || errors.Is(err, errGenerationEnded) {
		*d = 0
		return err
	}
	if *d++; *d < maxDrops {
		return err
	}
	return permanent(errorf("%w: the connection dropped during each of %d attempts in a row; the server may be refusing the request", err, maxDrops))
}

// Request sizes, as ZooKeeper's jute encoding lays them out: a server drops
// the connection on a request longer than its jute.maxbuffer, which a
// client cannot tell from a network fault, so requests are measured before
// they are sent.
const (
	headerSize = 8 // xid, opcode
	intSize    = 4
	multiOp    = 4 + 1 + 4 // a multi's per-operation header: type, done, err
)

func bufferSize(b []byte) int { return intSize + len(b) }
func stringSize(s string) int { return intSize + len(s) }

// createSize is the length of a create request.
func createSize(path string, data []byte, acl []zk.ACL) int {
	n := headerSize + stringSize(path) + bufferSize(data) + intSize + intSize // ACL count, flags
	for _, a := range acl {
		n += intSize + stringSize(a.Scheme) + stringSize(a.ID)
	}
	return n
}

// setSize is the length of a set-data request.
func setSize(path string, data []byte) int {
	return headerSize + stringSize(path) + bufferSize(data) + intSize
}

// multiSize is the length of a multi request of ops (rewritten, ready to
// send).
func multiSize(ops []any) int {
	n := headerSize + multiOp // the closing header
	for _, op := range ops {
		n += multiOp
		switch o := op.(type) {
		case *zk.CreateRequest:
			n += createSize(o.Path, o.Data, o.Acl) - headerSize
		case *zk.SetDataRequest:
			n += setSize(o.Path, o.Data) - headerSize
		case *zk.DeleteRequest:
			n += stringSize(o.Path) + intSize
		case *zk.CheckVersionRequest:
			n += stringSize(o.Path) + intSize
		}
	}
	return n
}

// checkSize refuses a request of size bytes that the server would refuse
// by dropping the connection (WithJuteMaxBuffer).
func checkSize(size, limit int) error {
	if size > limit {
		return errorf("%w: %d bytes, over the server's jute.maxbuffer of %d bytes", ErrTooLarge, size, limit)
	}
	return nil
}
