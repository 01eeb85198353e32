package chaos

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/zklock/zklock"
	"github.com/zklock/zklock/internal/zktest"
	"github.com/zklock/zklock/zktesting"
)

// TestResumeWithWatches resumes a session that has a watch set, on a new
// connection, with requests queued while it was down (the Session's syncs),
// and holds back the second request written on the new connection, so the
// answer to the first is read before go-zookeeper's setWatches request is
// written. go-zookeeper v1.0.4 reads lastZxid for that request while its
// receive loop writes it for every answer (go-zookeeper/zk#35): under the
// race detector the test fails unless the Session orders the two.
func TestResumeWithWatches(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs ZooKeeper")
	}
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	connect := func(opts ...zklock.SessionOption) *zklock.Session {
		ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
		defer cancel()
		s, err := zklock.Connect(ctx, zc.Servers(), append([]zklock.SessionOption{
			zklock.WithChroot(root), zklock.WithSessionTimeout(4 * time.Second)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	holder := zklock.NewMutex(connect(), lockPath)
	ctx, cancel := context.WithTimeout(context.Background(), joinTimeout)
	defer cancel()
	if err := holder.Lock(ctx); err != nil {
		t.Fatal(err)
	}

	d := &resumeDialer{}
	ws := connect(zklock.WithDialer(d.dial))
	sub := ws.Subscribe()
	defer sub.Stop()
	waiter := zklock.NewMutex(ws, lockPath)
	locked := make(chan error, 1)
	go func() { locked <- waiter.Lock(ctx) }()
	// The waiter watches the holder's node once both are queued; the
	// server says when it holds that watch.
	me := zktest.SessionHex(ws.SessionID())
	zktest.WaitWatched(t, zc.Direct()[0], root+holder.Key(), func(id string) bool { return id == me },
		"the waiter watching the holder's node")

	d.cut(700 * time.Millisecond)
	for _, want := range []zklock.State{zklock.StateSuspended, zklock.StateConnected} {
		for {
			c, err := sub.Next(ctx)
			if err != nil {
				t.Fatalf("waiting for %s: %v", want, err)
			}
			if c.State == zklock.StateExpired || c.State == zklock.StateClosed {
				t.Fatalf("session state %s, want it resumed", c.State)
			}
			if c.State == want {
				break
			}
		}
	}
	if err := holder.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-locked; err != nil {
		t.Fatalf("waiter: %v (its watch did not survive the resumption)", err)
	}
	if err := waiter.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if d.held() == 0 {
		t.Fatal("no request written ahead of setWatches was held: nothing was queued while down")
	}
}

// resumeDialer refuses connections for a while after cut, and delays the
// second request written on a connection that resumes a session.
type resumeDialer struct {
	mu    sync.Mutex
	until time.Time // refuse dials before
	conns []net.Conn
	holds int // second requests delayed
}

const resumeHold = 300 * time.Millisecond

// ZooKeeper wire format: a connect request is length, protocol version
// (int32), last zxid (int64), timeout (int32), session id (int64), ...;
// later requests are length, xid (int32), opcode (int32), ...
const (
	connectSessionIDOffset = 4 + 4 + 8 + 4
	xidPing                = -2
	opSetWatches           = 101
)

func (d *resumeDialer) dial(network, addr string, timeout time.Duration) (net.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if time.Now().Before(d.until) {
		return nil, errors.New("refused by the test")
	}
	c, err := net.DialTimeout(network, addr, timeout)
	if err != nil {
		return nil, err
	}
	rc := &resumeConn{Conn: c, d: d}
	d.conns = append(d.conns, rc)
	return rc, nil
}

// cut closes every connection and refuses new ones for down.
func (d *resumeDialer) cut(down time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.until = time.Now().Add(down)
	for _, c := range d.conns {
		c.Close()
	}
	d.conns = nil
}

func (d *resumeDialer) held() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.holds
}

// resumeConn relies on go-zookeeper writing one whole frame per Write.
type resumeConn struct {
	net.Conn
	d        *resumeDialer
	first    bool // the connect request is written
	resumed  bool
	requests int // written after the connect request, pings excluded
}

func (c *resumeConn) Write(p []byte) (int, error) {
	switch {
	case !c.first:
		c.first = true
		c.resumed = len(p) >= connectSessionIDOffset+8 && binary.BigEndian.Uint64(p[connectSessionIDOffset:]) != 0
	case len(p) >= 12 && int32(binary.BigEndian.Uint32(p[4:])) != xidPing:
		c.requests++
		if c.resumed && c.requests == 2 && int32(binary.BigEndian.Uint32(p[8:])) != opSetWatches {
			c.d.mu.Lock()
			c.d.holds++
			c.d.mu.Unlock()
			time.Sleep(resumeHold)
		}
	}
	return c.Conn.Write(p)
}
