package zktest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/zklock/zklock/zktesting"
)

// ZooKeeper opcodes of the creates DropReply and DropRequest target.
const (
	opCreate          = 1
	opCreateContainer = 19
)

// Cutter is a dialer that breaks one connection at a chosen request, to
// test what a client does when it cannot know whether a write happened:
// the request is sent and its reply dropped, or it is not sent at all. An
// action can run at the cut, before the client notices it: what other
// clients do while the reply is missing.
type Cutter struct {
	mu       sync.Mutex // guards everything below
	op       int32      // opcode of the request to act on; 0 any create
	match    string     // what that request's bytes contain; "" disarmed
	dropReq  bool       // cut before the request leaves instead of dropping its reply
	at       func() error
	done     chan struct{} // closed once the armed cut is over
	atErr    error
	fired    chan struct{} // closed at the first cut
	firedSet bool
}

// NewCutter returns a disarmed Cutter.
func NewCutter() *Cutter { return &Cutter{fired: make(chan struct{})} }

// DropReply arms the Cutter: the next create whose path contains match is
// sent and processed by the server, and the connection is cut just before
// its reply reaches the client.
func (c *Cutter) DropReply(match string) { c.Arm(0, match, false, nil) }

// DropRequest arms the Cutter: the connection is cut instead of sending the
// next create whose path contains match.
func (c *Cutter) DropRequest(match string) { c.Arm(0, match, true, nil) }

// Arm arms the Cutter for the next request with opcode op (0: a create of
// either kind) whose bytes contain match: with dropRequest the connection
// is cut instead of sending it, otherwise its reply is dropped. at, if not
// nil, runs at the cut, before the connection breaks.
func (c *Cutter) Arm(op int32, match string, dropRequest bool, at func() error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.op, c.match, c.dropReq, c.at = op, match, dropRequest, at
	c.done, c.atErr = make(chan struct{}), nil
}

// Fired is closed once the Cutter has cut a connection.
func (c *Cutter) Fired() <-chan struct{} { return c.fired }

// Wait waits, at most zktesting.Timeout, for the armed cut to be over, and returns
// the error of its action.
func (c *Cutter) Wait() error {
	c.mu.Lock()
	done := c.done
	c.mu.Unlock()
	select {
	case <-done:
	case <-time.After(zktesting.Timeout):
		return fmt.Errorf("zktest: the armed request was not cut within %v", zktesting.Timeout)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.atErr
}

// Dial is a go-zookeeper Dialer.
func (c *Cutter) Dial(network, addr string, timeout time.Duration) (net.Conn, error) {
	conn, err := net.DialTimeout(network, addr, timeout)
	if err != nil {
		return nil, err
	}
	return &cutConn{Conn: conn, c: c, target: -1}, nil
}

// claim disarms the Cutter if the request (opcode op, body after the
// header) is the armed one; it reports whether to act on it and how.
func (c *Cutter) claim(op int32, body []byte) (hit, dropReq bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.match == "" {
		return false, false
	}
	switch {
	case c.op == 0:
		// A create: its body starts with the path (length, bytes).
		if op != opCreate && op != opCreateContainer || len(body) < 4 {
			return false, false
		}
		n := int(binary.BigEndian.Uint32(body))
		if n < 0 || 4+n > len(body) || !bytes.Contains(body[4:4+n], []byte(c.match)) {
			return false, false
		}
	case op != c.op || !bytes.Contains(body, []byte(c.match)):
		return false, false
	}
	c.match = ""
	return true, c.dropReq
}

// cut runs the armed action, then breaks conn.
func (c *Cutter) cut(conn net.Conn) error {
	c.mu.Lock()
	at := c.at
	c.mu.Unlock()
	var err error
	if at != nil {
		err = at()
	}
	conn.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.atErr = err
	close(c.done) // Arm made it; claim lets one cut through per Arm
	if !c.firedSet {
		c.firedSet = true
		close(c.fired)
	}
	return errCut
}

// errCut looks to the client like the connection reset it stands for.
var errCut = &net.OpError{Op: "cut", Net: "tcp", Err: syscall.ECONNRESET}

// cutConn reads whole frames so it can drop one reply; go-zookeeper writes
// one whole frame per Write. A request frame is length, xid, opcode, body;
// a reply frame length, xid, zxid, err, body. The first frame each way is
// the connect request or response, without those headers.
type cutConn struct {
	net.Conn
	c *Cutter

	wmu    sync.Mutex // guards target, writes
	target int32      // xid whose reply is to be dropped; -1 none
	writes int

	rbuf   []byte // rest of the frame being handed to the reader
	frames int
}

func (cc *cutConn) Write(p []byte) (int, error) {
	cc.wmu.Lock()
	first := cc.writes == 0
	cc.writes++
	cc.wmu.Unlock()
	if !first && len(p) >= 12 {
		xid := int32(binary.BigEndian.Uint32(p[4:]))
		if hit, dropReq := cc.c.claim(int32(binary.BigEndian.Uint32(p[8:])), p[12:]); hit {
			if dropReq {
				return 0, cc.c.cut(cc.Conn)
			}
			cc.wmu.Lock()
			cc.target = xid
			cc.wmu.Unlock()
		}
	}
	return cc.Conn.Write(p)
}

func (cc *cutConn) Read(p []byte) (int, error) {
	if len(cc.rbuf) == 0 {
		var hdr [4]byte
		if _, err := io.ReadFull(cc.Conn, hdr[:]); err != nil {
			return 0, err
		}
		frame := make([]byte, 4+int(binary.BigEndian.Uint32(hdr[:])))
		copy(frame, hdr[:])
		if _, err := io.ReadFull(cc.Conn, frame[4:]); err != nil {
			return 0, err
		}
		cc.frames++
		if cc.frames > 1 && len(frame) >= 8 {
			xid := int32(binary.BigEndian.Uint32(frame[4:]))
			cc.wmu.Lock()
			hit := cc.target >= 0 && xid == cc.target
			cc.wmu.Unlock()
			if hit {
				return 0, cc.c.cut(cc.Conn)
			}
		}
		cc.rbuf = frame
	}
	n := copy(p, cc.rbuf)
	cc.rbuf = cc.rbuf[n:]
	return n, nil
}
