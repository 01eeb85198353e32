package zktest

import (
	"encoding/binary"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ZooKeeper opcodes of the creates a Cutter can target.
const (
	opCreate          = 1
	opCreateContainer = 19
)

// Cutter is a dialer that breaks one connection at a chosen moment around a
// create request, to test what a client does when it cannot know whether
// its create happened.
type Cutter struct {
	mu       sync.Mutex // guards everything below
	match    string     // path substring of the create to act on; "" disarmed
	dropReq  bool       // cut before the request leaves instead of dropping its reply
	fired    chan struct{}
	firedSet bool
}

// NewCutter returns a disarmed Cutter.
func NewCutter() *Cutter { return &Cutter{fired: make(chan struct{})} }

// DropReply arms the Cutter: the next create whose path contains match is
// sent and processed by the server, and the connection is cut just before
// its reply reaches the client.
func (c *Cutter) DropReply(match string) { c.arm(match, false) }

// DropRequest arms the Cutter: the connection is cut instead of sending the
// next create whose path contains match.
func (c *Cutter) DropRequest(match string) { c.arm(match, true) }

func (c *Cutter) arm(match string, dropReq bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.match, c.dropReq = match, dropReq
}

// Fired is closed once the Cutter has cut a connection.
func (c *Cutter) Fired() <-chan struct{} { return c.fired }

// Dial is a go-zookeeper Dialer.
func (c *Cutter) Dial(network, addr string, timeout time.Duration) (net.Conn, error) {
	conn, err := net.DialTimeout(network, addr, timeout)
	if err != nil {
		return nil, err
	}
	return &cutConn{Conn: conn, c: c, target: -1}, nil
}

// claim disarms the Cutter if path matches; it reports whether this create
// is the one to act on and how.
func (c *Cutter) claim(path string) (hit, dropReq bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.match == "" || !strings.Contains(path, c.match) {
		return false, false
	}
	c.match = ""
	return true, c.dropReq
}

func (c *Cutter) fire() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.firedSet {
		c.firedSet = true
		close(c.fired)
	}
}

// errCut looks to the client like the connection reset it stands for.
var errCut = &net.OpError{Op: "cut", Net: "tcp", Err: syscall.ECONNRESET}

// cutConn reads whole frames so it can drop one reply; go-zookeeper writes
// one whole frame per Write.
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
	// Frame: length, xid, opcode, then for creates the path (length + bytes).
	if !first && len(p) >= 16 {
		xid := int32(binary.BigEndian.Uint32(p[4:]))
		op := int32(binary.BigEndian.Uint32(p[8:]))
		if op == opCreate || op == opCreateContainer {
			n := int(binary.BigEndian.Uint32(p[12:]))
			if n >= 0 && 16+n <= len(p) {
				if hit, dropReq := cc.c.claim(string(p[16 : 16+n])); hit {
					if dropReq {
						cc.Conn.Close()
						cc.c.fire()
						return 0, errCut
					}
					cc.wmu.Lock()
					cc.target = xid
					cc.wmu.Unlock()
				}
			}
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
				cc.Conn.Close()
				cc.c.fire()
				return 0, errCut
			}
		}
		cc.rbuf = frame
	}
	n := copy(p, cc.rbuf)
	cc.rbuf = cc.rbuf[n:]
	return n, nil
}
