// Package connguard keeps a ZooKeeper client library from waiting on its
// connections for ever. go-zookeeper dials through a function the caller
// gives it; wrapping every connection it makes there, a Guard
//
//   - bounds the handshake: the connect response must arrive within a
//     budget, whatever read deadline the library sets (go-zookeeper waits
//     about 6.7 session timeouts for it, on a server that accepts and never
//     answers);
//   - completes a failed write once: a write that fails closes the socket
//     and reports success, so the request fails once, when the library
//     flushes the requests of the dead connection (go-zookeeper completes a
//     request whose write fails twice, and blocks for ever on a reply
//     channel that holds one);
//   - closes every socket, and refuses new ones, when its owner is done,
//     so whatever the library is blocked in returns.
package connguard

import (
	"errors"
	"net"
	"sync"
	"time"
)

// ErrClosed is returned by Wrap after Close.
var ErrClosed = errors.New("connguard: closed")

// Guard tracks the connections of one client. It is safe for concurrent
// use.
type Guard struct {
	handshake time.Duration

	mu     sync.Mutex // guards conns, closed
	conns  map[*Conn]struct{}
	closed bool
}

// New returns a Guard whose connections must complete their handshake, the
// first frame read, within handshake of being wrapped.
func New(handshake time.Duration) *Guard {
	return &Guard{handshake: handshake, conns: make(map[*Conn]struct{})}
}

// Wrap returns c guarded. After Close it closes c and returns ErrClosed.
func (g *Guard) Wrap(c net.Conn) (net.Conn, error) {
	gc := &Conn{Conn: c, g: g, handshakeBy: time.Now().Add(g.handshake), lenLeft: 4}
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		c.Close()
		return nil, ErrClosed
	}
	g.conns[gc] = struct{}{}
	g.mu.Unlock()
	if err := c.SetReadDeadline(gc.handshakeBy); err != nil {
		gc.Close()
		return nil, err
	}
	return gc, nil
}

// Close closes every connection and makes Wrap refuse new ones. It is
// idempotent.
func (g *Guard) Close() {
	g.mu.Lock()
	g.closed = true
	conns := g.conns
	g.conns = map[*Conn]struct{}{}
	g.mu.Unlock()
	for c := range conns {
		c.Conn.Close()
	}
}

// Open reports how many wrapped connections are not yet closed.
func (g *Guard) Open() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.conns)
}

// Conn is a guarded connection.
type Conn struct {
	net.Conn
	g           *Guard
	handshakeBy time.Time

	mu           sync.Mutex // guards the fields below
	lenBuf       [4]byte
	lenLeft      int // bytes of the first frame's length still to read
	bodyLeft     int // bytes of the first frame's body still to read
	handshaken   bool
	readDeadline time.Time // as the library last set it
}

// Read reads, counting the first frame: until it is complete, no read
// waits past the handshake budget.
func (c *Conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.handshaken || n == 0 {
		return n, err
	}
	b := p[:n]
	if c.lenLeft > 0 {
		k := min(c.lenLeft, len(b))
		copy(c.lenBuf[4-c.lenLeft:], b[:k])
		c.lenLeft -= k
		b = b[k:]
		if c.lenLeft == 0 {
			c.bodyLeft = int(int32(uint32(c.lenBuf[0])<<24 | uint32(c.lenBuf[1])<<16 | uint32(c.lenBuf[2])<<8 | uint32(c.lenBuf[3])))
			c.bodyLeft = max(c.bodyLeft, 0)
		}
	}
	if c.lenLeft == 0 {
		c.bodyLeft -= min(c.bodyLeft, len(b))
		if c.bodyLeft == 0 {
			c.handshaken = true
			c.Conn.SetReadDeadline(c.readDeadline)
		}
	}
	return n, err
}

// Write writes p. If the write fails, the connection is closed and the
// write reported done: the request then fails once, with the connection.
func (c *Conn) Write(p []byte) (int, error) {
	if _, err := c.Conn.Write(p); err != nil {
		c.Close()
	}
	return len(p), nil
}

// SetDeadline sets both deadlines; see SetReadDeadline.
func (c *Conn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.Conn.SetWriteDeadline(t)
}

// SetReadDeadline sets the read deadline; before the handshake is
// complete, never later than the handshake budget allows.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.readDeadline = t
	if !c.handshaken && (t.IsZero() || t.After(c.handshakeBy)) {
		t = c.handshakeBy
	}
	return c.Conn.SetReadDeadline(t)
}

// Close closes the connection and forgets it.
func (c *Conn) Close() error {
	c.g.mu.Lock()
	delete(c.g.conns, c)
	c.g.mu.Unlock()
	return c.Conn.Close()
}
