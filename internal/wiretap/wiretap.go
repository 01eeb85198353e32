// Package wiretap reads two facts off a ZooKeeper client connection that
// go-zookeeper keeps private: the session timeout the server negotiated, and
// the send time of the latest request the server has answered.
//
// Together they bound when the server can expire the session: it cannot do
// so earlier than the negotiated timeout after it last heard from the client,
// and it heard from the client no earlier than the send time of a request it
// answered.
//
// It also holds back replies on a connection that resumes a session with
// watches until go-zookeeper has written its setWatches request, which keeps
// go-zookeeper v1.0.4 free of a data race (see gate.go).
package wiretap

import (
	"cmp"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"time"
)

// Reply and request header fields that matter here (jute encoding, big
// endian): a request starts with xid int32, opcode int32; a reply with xid
// int32, zxid int64, err int32. The connect request and response have no
// header; the response starts protocolVersion int32, timeOut int32,
// sessionId int64.
const (
	xidNotification = -1 // watch event pushed by the server, not a reply
	xidPing         = -2
	headerBytes     = 16
	opCreate        = 1
	// maxPath is the longest path the tap follows.
	maxPath = 4096
	// maxCapture covers what the tap reads of a frame: a request's header
	// and path (a length and bytes) and the watch flag after the path of a
	// read request; a watch event's header, type, state and path.
	maxCapture = headerBytes + 4 + 4 + 4 + maxPath
)

// Tap accumulates what it reads off every connection of one ZooKeeper
// session. It is safe for concurrent use.
type Tap struct {
	now func() time.Time

	mu          sync.Mutex // guards every field below
	lastAck     time.Time  // send time of the latest answered request
	connectSent time.Time  // send time of the latest answered connect request
	timeout     time.Duration
	sessionID   int64
	requests    uint64           // requests written, pings and connect requests excluded
	expired     bool             // the server answered a connect request with session id 0
	maxZxid     int64            // the largest zxid in a reply header
	ops         map[int32]uint64 // requests written by opcode, as requests
	traces      map[string]*CreateTrace
	gate        gate
}

// CreateTrace follows one create request through the connection. go-zookeeper
// keeps the reply's zxid to itself; for a create it is the transaction that
// created the node, so the node's czxid.
type CreateTrace struct {
	path string
	sent chan struct{} // closed once the request's bytes are written
	zxid int64         // guarded by Tap.mu; 0 until a successful reply is read
}

// Sent is closed once the create's bytes have been written to the server:
// a request issued on the same session afterwards is handled after it.
func (tr *CreateTrace) Sent() <-chan struct{} { return tr.sent }

// TraceCreate starts following the next create request for path. Call
// Untrace when done.
func (t *Tap) TraceCreate(path string) *CreateTrace {
	tr := &CreateTrace{path: path, sent: make(chan struct{})}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.traces == nil {
		t.traces = make(map[string]*CreateTrace)
	}
	t.traces[path] = tr
	return tr
}

// Untrace stops following tr.
func (t *Tap) Untrace(tr *CreateTrace) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.traces[tr.path] == tr {
		delete(t.traces, tr.path)
	}
}

// Zxid returns the zxid of the traced create's successful reply.
func (t *Tap) Zxid(tr *CreateTrace) (int64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return tr.zxid, tr.zxid != 0
}

// trace claims the trace for a create request's path, if any.
func (t *Tap) trace(path string) *CreateTrace {
	t.mu.Lock()
	defer t.mu.Unlock()
	tr := t.traces[path]
	delete(t.traces, path)
	return tr
}

func (t *Tap) created(tr *CreateTrace, zxid int64) {
	t.mu.Lock()
	tr.zxid = zxid
	t.mu.Unlock()
}

// New returns a Tap that timestamps with now (time.Now when nil).
func New(now func() time.Time) *Tap {
	if now == nil {
		now = time.Now
	}
	return &Tap{now: now, gate: newGate()}
}

// Wrap returns c instrumented for t. Wrap every connection of the
// go-zookeeper connection, and no other: the tap follows its watches.
func (t *Tap) Wrap(c net.Conn) net.Conn {
	return &conn{Conn: c, tap: t, pending: make(map[int32]time.Time), creates: make(map[int32]*CreateTrace),
		watchReqs: make(map[int32]watchReq), setWatches: make(map[int32]bool), done: make(chan struct{}),
		wr: Frames{Max: maxCapture}, rd: Frames{Max: maxCapture}}
}

// ConnectSent returns the send time of the connect request whose response
// was read last (zero before any).
func (t *Tap) ConnectSent() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.connectSent
}

// LastAck returns the send time of the latest request, ping or connect
// request that the server has answered; zero before any.
func (t *Tap) LastAck() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lastAck
}

// Timeout returns the session timeout from the latest connect response; zero
// before any.
func (t *Tap) Timeout() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.timeout
}

// SessionID returns the session id from the latest connect response.
func (t *Tap) SessionID() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sessionID
}

// Expired reports whether a server refused to resume the session.
func (t *Tap) Expired() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.expired
}

// Ops returns how many requests of each opcode were written, pings and
// connect requests excluded.
func (t *Tap) Ops() map[int32]uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[int32]uint64, len(t.ops))
	for op, n := range t.ops {
		out[op] = n
	}
	return out
}

// MaxZxid returns the largest zxid a reply carried: the server's latest
// transaction when it answered; zero before any reply.
func (t *Tap) MaxZxid() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.maxZxid
}

// Requests returns how many requests were written, pings and connect
// requests excluded.
func (t *Tap) Requests() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.requests
}

func (t *Tap) ack(sent time.Time) {
	t.mu.Lock()
	if sent.After(t.lastAck) {
		t.lastAck = sent
	}
	t.mu.Unlock()
}

func (t *Tap) connected(sent time.Time, timeout time.Duration, sessionID int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if sessionID == 0 {
		t.expired = true
		return
	}
	t.timeout = timeout
	t.sessionID = sessionID
	t.connectSent = sent
	if sent.After(t.lastAck) {
		t.lastAck = sent
	}
}

// conn parses both directions of one connection. The send loop writes and the
// receive loop reads concurrently.
type conn struct {
	net.Conn
	tap *Tap

	wmu sync.Mutex // serialises writers' parsing
	wr  Frames

	// The reading side: go-zookeeper reads the connect response, then its
	// receive loop reads; rmu serialises them.
	rmu  sync.Mutex
	rd   Frames
	peek []byte    // read from the server, not yet handed to go-zookeeper
	rf   readFrame // the frame being handed to go-zookeeper

	mu          sync.Mutex // guards pending, pings, connectSent, creates, watchReqs, session
	pending     map[int32]time.Time
	pings       []time.Time // pings share one xid; the server answers them in order
	connectSent time.Time
	creates     map[int32]*CreateTrace // traced creates awaiting their reply
	watchReqs   map[int32]watchReq     // read requests that set a watch, awaiting their reply
	session     int64                  // the connect request's session id: 0 asks for a new session

	// Guarded by tap.mu.
	held       bool           // replies wait for go-zookeeper's setWatches request (gate.go)
	setWatches map[int32]bool // written setWatches requests awaiting their reply: counted as failed
	dead       bool           // no more replies will be handed to go-zookeeper
	deadline   time.Time      // the read deadline go-zookeeper set

	done      chan struct{} // closed by Close
	closeOnce sync.Once
}

func (c *conn) Write(p []byte) (int, error) {
	// Timestamp before the bytes leave: the server hears from us no earlier.
	sent := c.tap.now()
	var traced []*CreateTrace
	var setWatches []int32
	c.wmu.Lock()
	c.wr.Feed(p, func(first bool, h []byte) {
		tr, sw := c.sent(sent, first, h)
		if tr != nil {
			traced = append(traced, tr)
		}
		if sw {
			setWatches = append(setWatches, int32(binary.BigEndian.Uint32(h)))
		}
	})
	c.wmu.Unlock()
	n, err := c.Conn.Write(p)
	if err == nil {
		for _, tr := range traced {
			close(tr.sent)
		}
	} else if len(setWatches) > 0 {
		c.setWatchesFailed(setWatches)
	}
	return n, err
}

func (c *conn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	// Never read past the connect response, nor past a frame while
	// replies are held: what follows may have to wait.
	held := c.rd.count > 0 && c.isHeld()
	if held && len(c.peek) == 0 && c.rd.atBoundary() {
		if err := c.peekHeader(); err != nil {
			c.readEnded()
			return 0, err
		}
	}
	var n int
	var err error
	if len(c.peek) > 0 {
		n = copy(p, c.peek)
		c.peek = c.peek[n:]
	} else {
		if held || c.rd.count == 0 {
			p = p[:min(len(p), c.rd.left())]
		}
		n, err = c.Conn.Read(p)
	}
	if n > 0 {
		c.rd.FeedFrames(p[:n], c.received, c.frameEnd)
	}
	if err != nil {
		c.readEnded()
	}
	return n, err
}

// peekHeader reads the next reply's length and header into c.peek, and
// waits while the gate holds such a reply.
func (c *conn) peekHeader() error {
	var b [4 + headerBytes]byte
	if _, err := io.ReadFull(c.Conn, b[:]); err != nil {
		return err
	}
	c.peek = b[:]
	size := int32(binary.BigEndian.Uint32(b[:4]))
	xid := int32(binary.BigEndian.Uint32(b[4:]))
	zxid := int64(binary.BigEndian.Uint64(b[8:]))
	if size >= headerBytes && holds(xid, zxid) {
		return c.waitOpen()
	}
	return nil
}

// SetReadDeadline also bounds how long the gate holds replies.
func (c *conn) SetReadDeadline(t time.Time) error {
	c.setDeadline(t)
	return c.Conn.SetReadDeadline(t)
}

// SetDeadline also bounds how long the gate holds replies.
func (c *conn) SetDeadline(t time.Time) error {
	c.setDeadline(t)
	return c.Conn.SetDeadline(t)
}

func (c *conn) Close() error {
	c.closeOnce.Do(func() {
		c.readEnded()
		close(c.done)
	})
	return c.Conn.Close()
}

// sent records a request; it returns the trace of a traced create, and
// whether it is a setWatches request.
func (c *conn) sent(at time.Time, first bool, h []byte) (*CreateTrace, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if first {
		c.connectSent = at
		if len(h) >= connectSessionOffset+8 {
			c.session = int64(binary.BigEndian.Uint64(h[connectSessionOffset:]))
		}
		return nil, false
	}
	if len(h) < 8 {
		return nil, false
	}
	xid := int32(binary.BigEndian.Uint32(h))
	if xid == xidPing {
		c.pings = append(c.pings, at)
		return nil, false
	}
	c.pending[xid] = at
	c.tap.mu.Lock()
	c.tap.requests++
	if len(h) >= 8 {
		if c.tap.ops == nil {
			c.tap.ops = make(map[int32]uint64)
		}
		c.tap.ops[int32(binary.BigEndian.Uint32(h[4:]))]++
	}
	c.tap.mu.Unlock()
	switch op := int32(binary.BigEndian.Uint32(h[4:])); op {
	case opSetWatches:
		c.setWatchesWritten(xid)
		return nil, true
	case opExists, opGetData, opGetChildren, opGetChildren2:
		c.readRequest(xid, op, h[8:])
		return nil, false
	case opCreate:
	default:
		return nil, false
	}
	path, ok := juteString(h[8:])
	if !ok {
		return nil, false
	}
	tr := c.tap.trace(path)
	if tr != nil {
		c.creates[xid] = tr
	}
	return tr, false
}

// juteString decodes a length-prefixed string at the start of b.
func juteString(b []byte) (string, bool) {
	if len(b) < 4 {
		return "", false
	}
	n := int(int32(binary.BigEndian.Uint32(b)))
	if n < 0 || 4+n > len(b) {
		return "", false
	}
	return string(b[4 : 4+n]), true
}

func (c *conn) received(first bool, h []byte) {
	if len(h) < headerBytes {
		c.rf = readFrame{}
		return
	}
	c.rf = readFrame{first: first, ok: true}
	if first {
		c.rf.session = int64(binary.BigEndian.Uint64(h[8:]))
	} else {
		c.rf.xid = int32(binary.BigEndian.Uint32(h))
		c.rf.errCode = int32(binary.BigEndian.Uint32(h[12:]))
		if c.rf.xid == xidNotification {
			c.rf.event = watchEventOf(h[headerBytes:])
		}
	}
	c.mu.Lock()
	if first {
		sent := c.connectSent
		c.mu.Unlock()
		timeout := time.Duration(int32(binary.BigEndian.Uint32(h[4:]))) * time.Millisecond
		c.tap.connected(sent, timeout, int64(binary.BigEndian.Uint64(h[8:])))
		return
	}
	var sent time.Time
	var ok bool
	xid := int32(binary.BigEndian.Uint32(h))
	if zxid := int64(binary.BigEndian.Uint64(h[4:])); xid != xidNotification && zxid > 0 {
		c.tap.mu.Lock()
		c.tap.maxZxid = max(c.tap.maxZxid, zxid)
		c.tap.mu.Unlock()
	}
	switch xid {
	case xidNotification:
	case xidPing:
		if len(c.pings) > 0 {
			sent, ok = c.pings[0], true
			c.pings = c.pings[1:]
		}
	default:
		sent, ok = c.pending[xid]
		delete(c.pending, xid)
		if tr := c.creates[xid]; tr != nil {
			delete(c.creates, xid)
			if int32(binary.BigEndian.Uint32(h[12:])) == 0 { // no error
				c.tap.created(tr, int64(binary.BigEndian.Uint64(h[4:])))
			}
		}
	}
	c.mu.Unlock()
	if ok {
		c.tap.ack(sent)
	}
}

// Frames splits a byte stream of ZooKeeper's length-prefixed frames, which
// may arrive in any pieces, and hands the first Max bytes of each frame's
// payload (fewer if the frame is shorter) to a callback, without buffering
// payloads. The zero value captures 16 bytes, a reply header.
type Frames struct {
	Max   int // payload bytes to capture, at most 4124; 16 when 0
	buf   [4 + maxCapture]byte
	n     int // bytes collected in buf
	want  int // payload header bytes wanted
	rest  int // payload bytes after the header, discarded once it is complete
	skip  int // payload bytes still to discard
	count int // frames seen
}

// Feed parses p; fn gets each frame's captured bytes and whether it is the
// stream's first frame (the connect request or response, which has no
// request or reply header).
func (f *Frames) Feed(p []byte, fn func(first bool, header []byte)) {
	f.FeedFrames(p, fn, nil)
}

// FeedFrames is Feed, and calls end (when not nil) once each frame's last
// byte has been parsed.
func (f *Frames) FeedFrames(p []byte, fn func(first bool, header []byte), end func()) {
	for len(p) > 0 {
		if f.skip > 0 {
			k := min(f.skip, len(p))
			f.skip -= k
			p = p[k:]
			if f.skip == 0 && end != nil {
				end()
			}
			continue
		}
		if f.n < 4 {
			k := copy(f.buf[f.n:4], p)
			f.n += k
			p = p[k:]
			if f.n < 4 {
				return
			}
			size := int(int32(binary.BigEndian.Uint32(f.buf[:4])))
			if size < 0 {
				size = 0
			}
			f.want = min(size, cmp.Or(f.Max, headerBytes))
			f.rest = size - f.want
		}
		k := copy(f.buf[f.n:4+f.want], p)
		f.n += k
		p = p[k:]
		if f.n < 4+f.want {
			return
		}
		fn(f.count == 0, f.buf[4:4+f.want])
		f.count++
		f.n = 0
		f.skip = f.rest
		if f.skip == 0 && end != nil {
			end()
		}
	}
}

// atBoundary reports whether the next byte starts a frame.
func (f *Frames) atBoundary() bool { return f.n == 0 && f.skip == 0 }

// left returns how many bytes the current frame has yet to bring: the rest
// of its length while that is incomplete, else the rest of the frame.
func (f *Frames) left() int {
	switch {
	case f.skip > 0:
		return f.skip
	case f.n < 4:
		return 4 - f.n
	default:
		return 4 + f.want - f.n + f.rest
	}
}
