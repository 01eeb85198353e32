package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zklock/zklock"
)

// impl is a lock implementation under measurement.
type impl int

const (
	implZklock impl = iota // this module's Mutex
	implZK                 // go-zookeeper's zk.Lock
)

func (i impl) String() string {
	if i == implZK {
		return "zk.Lock"
	}
	return "zklock"
}

// sessionTimeout is what both implementations ask for, so neither pings
// more often than the other.
const sessionTimeout = 10 * time.Second

// client is one ZooKeeper session of either implementation, with a count
// of the requests it writes.
type client interface {
	newLocker(path string) locker
	requests() requestCounts
	outstanding() int64
	close()
}

// locker is one lock holder.
type locker interface {
	lock(ctx context.Context) error
	unlock(ctx context.Context) error
}

func connect(ctx context.Context, which impl, servers []string) (client, error) {
	rc := newRequestCounter()
	if which == implZK {
		conn, err := rawConn(ctx, servers, countingDialer(rc))
		if err != nil {
			return nil, err
		}
		return &zkClient{conn: conn, rc: rc}, nil
	}
	s, err := zklock.Connect(ctx, servers, zklock.WithDialer(countingDialer(rc)), zklock.WithSessionTimeout(sessionTimeout))
	if err != nil {
		return nil, err
	}
	return &zklockClient{s: s, rc: rc}, nil
}

// connectAll opens n clients, closing them all if one fails.
func connectAll(ctx context.Context, which impl, servers []string, n int) ([]client, error) {
	cls := make([]client, 0, n)
	for range n {
		cl, err := connect(ctx, which, servers)
		if err != nil {
			closeAll(cls)
			return nil, err
		}
		cls = append(cls, cl)
	}
	return cls, nil
}

func closeAll(cls []client) {
	for _, cl := range cls {
		cl.close()
	}
}

func sumRequests(cls []client) requestCounts {
	sum := requestCounts{}
	for _, cl := range cls {
		sum.add(cl.requests())
	}
	return sum
}

type zklockClient struct {
	s  *zklock.Session
	rc *requestCounter
}

func (c *zklockClient) newLocker(p string) locker {
	return zklockLocker{zklock.NewMutex(c.s, p, zklock.WithData([]byte("zklock-bench")))}
}
func (c *zklockClient) requests() requestCounts { return c.rc.snapshot() }
func (c *zklockClient) outstanding() int64      { return c.rc.outstanding() }
func (c *zklockClient) close()                  { c.s.Close() }

type zklockLocker struct{ m *zklock.Mutex }

func (l zklockLocker) lock(ctx context.Context) error   { return l.m.Lock(ctx) }
func (l zklockLocker) unlock(ctx context.Context) error { return l.m.Unlock(ctx) }

type zkClient struct {
	conn *zk.Conn
	rc   *requestCounter
}

func (c *zkClient) newLocker(p string) locker {
	return zkLocker{zk.NewLock(c.conn, p, zk.WorldACL(zk.PermAll))}
}
func (c *zkClient) requests() requestCounts { return c.rc.snapshot() }
func (c *zkClient) outstanding() int64      { return c.rc.outstanding() }
func (c *zkClient) close()                  { c.conn.Close() }

// zkLocker adapts zk.Lock, which takes no context: its calls end only when
// the server answers or the connection closes.
type zkLocker struct{ l *zk.Lock }

func (l zkLocker) lock(context.Context) error   { return l.l.Lock() }
func (l zkLocker) unlock(context.Context) error { return l.l.Unlock() }

// quietLogger drops go-zookeeper's connection chatter, which would
// interleave with the progress lines.
type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}

// rawConn opens a plain go-zookeeper connection through dial (nil: plain
// TCP) and waits until it has a session, so the first timed request does
// not include the handshake.
func rawConn(ctx context.Context, servers []string, dial zk.Dialer) (*zk.Conn, error) {
	if dial == nil {
		dial = net.DialTimeout
	}
	conn, ev, err := zk.Connect(servers, sessionTimeout,
		zk.WithDialer(dial), zk.WithLogInfo(false), zk.WithLogger(quietLogger{}))
	if err != nil {
		return nil, err
	}
	for conn.State() != zk.StateHasSession {
		select {
		case <-ev:
		case <-ctx.Done():
			conn.Close()
			return nil, fmt.Errorf("connecting to %v: %w", servers, ctx.Err())
		}
	}
	return conn, nil
}

// ensurePath creates p and its missing parents as persistent nodes.
func ensurePath(conn *zk.Conn, p string) error {
	if p == "/" {
		return nil
	}
	_, err := conn.Create(p, nil, 0, zk.WorldACL(zk.PermAll))
	if errors.Is(err, zk.ErrNoNode) {
		if err := ensurePath(conn, path.Dir(p)); err != nil {
			return err
		}
		_, err = conn.Create(p, nil, 0, zk.WorldACL(zk.PermAll))
	}
	if err != nil && !errors.Is(err, zk.ErrNodeExists) {
		return fmt.Errorf("create %s: %w", p, err)
	}
	return nil
}

// removeAll deletes p and everything below it; a node already gone is
// fine (containers vanish on their own).
func removeAll(conn *zk.Conn, p string) error {
	kids, _, err := conn.Children(p)
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list %s: %w", p, err)
	}
	for _, k := range kids {
		if err := removeAll(conn, path.Join(p, k)); err != nil {
			return err
		}
	}
	if err := conn.Delete(p, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
		return fmt.Errorf("delete %s: %w", p, err)
	}
	return nil
}
