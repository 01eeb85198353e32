package bench

import (
	"encoding/binary"
	"maps"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zklock/zklock/internal/wiretap"
)

// The client side of ZooKeeper's wire protocol is a stream of frames, each
// a 4-byte big-endian length and then that many bytes. Every frame but the
// first on a connection (the connect request, which has no header) starts
// with xid int32 and opcode int32.
const (
	xidPing = -2
	opPing  = 11
)

// opNames names the opcodes a lock recipe can send; others print as op<N>.
var opNames = map[int32]string{
	1:   "create",
	2:   "delete",
	3:   "exists",
	4:   "getData",
	5:   "setData",
	8:   "getChildren",
	9:   "sync",
	11:  "ping",
	12:  "getChildren2",
	13:  "check",
	14:  "multi",
	15:  "create2",
	19:  "createContainer",
	21:  "createTTL",
	-11: "closeSession",
	100: "setAuth",
	101: "setWatches",
}

func opName(op int32) string {
	if n, ok := opNames[op]; ok {
		return n
	}
	return "op" + strconv.Itoa(int(op))
}

// frameHeader is what the splitter reports for one frame. ok is false when
// the frame is shorter than a request header, so xid and op are unknown.
type frameHeader struct {
	index   int // 0 for the first frame on the connection
	xid, op int32
	ok      bool
}

// isRequest reports whether a frame the client wrote counts as a request:
// not the connect request (the first frame) and not a ping.
func isRequest(h frameHeader) bool {
	return h.index > 0 && h.ok && h.xid != xidPing && h.op != opPing
}

// frameSplitter reports the request header of each frame in a byte stream
// that may arrive in arbitrary pieces.
type frameSplitter struct {
	f      wiretap.Frames
	frames int // frames reported
}

func (s *frameSplitter) feed(p []byte, fn func(frameHeader)) {
	s.f.Max = 8 // xid and opcode
	s.f.Feed(p, func(_ bool, h []byte) {
		fh := frameHeader{index: s.frames, ok: len(h) == 8}
		if fh.ok {
			fh.xid = int32(binary.BigEndian.Uint32(h[0:4]))
			fh.op = int32(binary.BigEndian.Uint32(h[4:8]))
		}
		fn(fh)
		s.frames++
	})
}

// requestCounter counts the requests written on every connection of one
// client, by opcode, and how many requests await their reply. It is safe
// for concurrent use.
type requestCounter struct {
	mu   sync.Mutex
	byOp map[int32]uint64
	// Requests with a positive xid, written and answered: ordinary
	// requests get one, and the server answers each with the same xid.
	written, answered int64
}

func newRequestCounter() *requestCounter {
	return &requestCounter{byOp: make(map[int32]uint64)}
}

func (c *requestCounter) count(h frameHeader) {
	if !isRequest(h) {
		return
	}
	c.mu.Lock()
	c.byOp[h.op]++
	if h.xid > 0 {
		c.written++
	}
	c.mu.Unlock()
}

// reply notes a frame the server sent. Replies start with the xid of their
// request; watch notifications (-1) and ping replies (-2) do not count, nor
// does the connect response, the first frame.
func (c *requestCounter) reply(h frameHeader) {
	if h.index == 0 || !h.ok || h.xid <= 0 {
		return
	}
	c.mu.Lock()
	c.answered++
	c.mu.Unlock()
}

// outstanding returns how many requests await their reply. A request lost
// with a connection stays counted; the bench reads this only while
// connections are stable.
func (c *requestCounter) outstanding() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.written - c.answered
}

// snapshot returns the counts so far.
func (c *requestCounter) snapshot() requestCounts {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.byOp)
}

// requestCounts is a number of requests by opcode.
type requestCounts map[int32]uint64

// sub returns r − o per opcode.
func (r requestCounts) sub(o requestCounts) requestCounts {
	out := make(requestCounts, len(r))
	for op, n := range r {
		if d := n - o[op]; d > 0 {
			out[op] = d
		}
	}
	return out
}

// add adds o to r in place.
func (r requestCounts) add(o requestCounts) {
	for op, n := range o {
		r[op] += n
	}
}

func (r requestCounts) total() uint64 {
	var t uint64
	for _, n := range r {
		t += n
	}
	return t
}

// perCycle turns counts over cycles acquire+release cycles into Requests.
func (r requestCounts) perCycle(cycles int) Requests {
	out := Requests{ByOp: make(map[string]float64, len(r))}
	if cycles <= 0 {
		return out
	}
	for op, n := range r {
		out.ByOp[opName(op)] = float64(n) / float64(cycles)
	}
	out.PerCycle = float64(r.total()) / float64(cycles)
	return out
}

// countingDialer dials TCP like go-zookeeper's default and counts the
// requests the client writes, and the replies it reads, on each connection
// into c.
func countingDialer(c *requestCounter) zk.Dialer {
	return func(network, addr string, timeout time.Duration) (net.Conn, error) {
		conn, err := net.DialTimeout(network, addr, timeout)
		if err != nil {
			return nil, err
		}
		return &countingConn{Conn: conn, c: c}, nil
	}
}

type countingConn struct {
	net.Conn
	c *requestCounter

	wmu sync.Mutex // serialises parsing; go-zookeeper has one writer, but a net.Conn promises more
	wr  frameSplitter
	rmu sync.Mutex
	rd  frameSplitter
}

func (cc *countingConn) Write(p []byte) (int, error) {
	n, err := cc.Conn.Write(p)
	cc.wmu.Lock()
	cc.wr.feed(p[:n], cc.c.count)
	cc.wmu.Unlock()
	return n, err
}

func (cc *countingConn) Read(p []byte) (int, error) {
	n, err := cc.Conn.Read(p)
	cc.rmu.Lock()
	cc.rd.feed(p[:n], cc.c.reply)
	cc.rmu.Unlock()
	return n, err
}
