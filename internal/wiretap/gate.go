package wiretap

import (
	"encoding/binary"
	"net"
	"os"
	"time"
)

// The gate.
//
// When go-zookeeper v1.0.4 resumes a session on a new connection, its
// connection goroutine starts the receive loop, then reads lastZxid to
// re-register the session's watches (sendSetWatches), which queues a
// setWatches request; the receive loop writes lastZxid for every reply that
// carries a zxid. Nothing orders the two (go-zookeeper/zk#35): requests
// queued while the connection was down are written on the new connection
// before the setWatches request, and their replies race with the read.
//
// The tap orders them. It records every request it sees written under its
// mutex, and takes the mutex again before it hands a reply over, so the
// read of lastZxid, which precedes the setWatches request's write, happens
// before every reply handed over after that write is recorded. On a
// connection that resumes a session with watches the gate therefore holds
// every reply that would write lastZxid (and every watch event, which would
// change the watches) until that connection's setWatches request is written.
// Pings' replies and zxid-less replies (to the credentials go-zookeeper
// resends before it starts sending) pass.
//
// To know whether go-zookeeper will write a setWatches request, the tap
// keeps go-zookeeper's set of watches, from the wire: a read request with
// its watch flag set adds one when its reply is handed over (exists also on
// NoNode), a watch event removes those it fires, and an expired session
// clears them. While replies are held nothing can change the set, so at the
// connect response it is the set go-zookeeper's sendSetWatches finds.
//
// A setWatches request queued for a connection that died first is written
// on a later one, possibly ahead of that connection's own; or it fails
// unwritten, and go-zookeeper logs the failure. The gate counts the
// requests it expects (one per resumed connection with watches), those
// written, and the failures: it opens once every expected request has been
// written or has failed. The connection's own has then been written, or its
// failure logged, both after go-zookeeper read lastZxid for it. Failures
// come from go-zookeeper's log (Tap.Logger); a written request that fails
// also logs, so only failures beyond those of written requests count as
// unwritten ones.
//
// The gate cannot order a reply that sets the first watch of a connection
// whose set was empty at its connect response (a new session's first
// connection among them), if go-zookeeper's connection goroutine has not yet
// reached sendSetWatches when the reply is handed over: sendSetWatches then
// reads lastZxid for a request the gate did not expect, while the receive
// loop goes on. That goroutine has just started the receive loop then, and
// the reply answers a request written on the new connection. Nor can it follow
// paths longer than maxPath, or more watches than one setWatches request
// carries: the gate then stops holding replies (blind), as before it
// existed.

// ZooKeeper opcodes, error codes and field offsets the gate reads.
const (
	opExists       = 3
	opGetData      = 4
	opGetChildren  = 8
	opGetChildren2 = 12
	opSetWatches   = 101
	errNoNode      = -101

	// A connect request's payload: protocol version int32, last zxid
	// int64, timeout int32, session id int64, ...
	connectSessionOffset = 4 + 8 + 4

	// go-zookeeper puts every watch in one setWatches request up to this
	// size: a fixed part, then each path as a length and bytes.
	setWatchesLimit    = 128 * 1024
	setWatchesOverhead = 28

	// setWatchesFailed is the message go-zookeeper v1.0.4 logs when a
	// setWatches request fails.
	setWatchesFailed = "Failed to set previous watches: %v"
)

// Watch event types (zk.EventType).
const (
	eventNodeCreated         = 1
	eventNodeDeleted         = 2
	eventNodeDataChanged     = 3
	eventNodeChildrenChanged = 4
)

type watchType int

// go-zookeeper's kinds of watches.
const (
	watchData watchType = iota
	watchExist
	watchChild
)

type watchKey struct {
	path string
	typ  watchType
}

// watchReq is a read request that sets a watch, awaiting its reply.
type watchReq struct {
	op   int32
	path string
}

// readFrame is what the tap read of the frame it is handing over.
type readFrame struct {
	ok      bool // its header was read
	first   bool // the connect response
	session int64
	xid     int32
	errCode int32
	event   watchEvent // xid == xidNotification
}

type watchEvent struct {
	ok   bool // the path was read
	typ  int32
	path string
}

// watchEventOf decodes a watch event's body: type, state, path.
func watchEventOf(b []byte) watchEvent {
	if len(b) < 8 {
		return watchEvent{}
	}
	path, ok := juteString(b[8:])
	return watchEvent{ok: ok, typ: int32(binary.BigEndian.Uint32(b)), path: path}
}

// gate is the Tap's state for holding replies, guarded by Tap.mu.
type gate struct {
	watches  map[watchKey]struct{}
	blind    bool // the tap lost track of the watches: it holds nothing
	expected int  // setWatches requests go-zookeeper has queued or will queue
	written  int  // setWatches requests written
	failedW  int  // written ones that failed or will: each logs its failure
	failLogs int  // setWatches failures go-zookeeper logged
	wake     chan struct{}
}

func newGate() gate {
	return gate{watches: make(map[watchKey]struct{}), wake: make(chan struct{})}
}

// outstanding bounds from above how many expected setWatches requests are
// neither written nor failed.
func (g *gate) outstanding() int {
	return g.expected - g.written - max(0, g.failLogs-g.failedW)
}

// changed wakes the held readers.
func (g *gate) changed() {
	close(g.wake)
	g.wake = make(chan struct{})
}

// holds reports whether the gate holds a reply with this header: replies
// that write go-zookeeper's lastZxid, and watch events.
func holds(xid int32, zxid int64) bool {
	return xid == xidNotification || (xid >= 0 && zxid > 0)
}

// isHeld reports whether replies on c still wait.
func (c *conn) isHeld() bool {
	t := c.tap
	t.mu.Lock()
	defer t.mu.Unlock()
	if c.held && (t.gate.blind || t.gate.outstanding() <= 0) {
		c.held = false
	}
	return c.held
}

// waitOpen waits until c's replies may pass, c is closed, or the read
// deadline passes.
func (c *conn) waitOpen() error {
	for {
		t := c.tap
		t.mu.Lock()
		if c.held && (t.gate.blind || t.gate.outstanding() <= 0) {
			c.held = false
		}
		held, wake, deadline := c.held, t.gate.wake, c.deadline
		t.mu.Unlock()
		if !held {
			return nil
		}
		var expire <-chan time.Time
		var timer *time.Timer
		if !deadline.IsZero() {
			d := time.Until(deadline)
			if d <= 0 {
				return os.ErrDeadlineExceeded
			}
			timer = time.NewTimer(d)
			expire = timer.C
		}
		var err error
		select {
		case <-wake:
		case <-expire:
		case <-c.done:
			err = net.ErrClosed
		}
		if timer != nil {
			timer.Stop()
		}
		if err != nil {
			return err
		}
	}
}

func (c *conn) setDeadline(t time.Time) {
	c.tap.mu.Lock()
	c.deadline = t
	if c.held {
		c.tap.gate.changed()
	}
	c.tap.mu.Unlock()
}

// readRequest records a read request that sets a watch. b is the request
// after its header: the path, then the watch flag.
func (c *conn) readRequest(xid, op int32, b []byte) {
	path, ok := juteString(b)
	if !ok || len(b) < 4+len(path)+1 {
		c.tap.mu.Lock()
		c.tap.gate.blind = true
		c.tap.gate.changed()
		c.tap.mu.Unlock()
		return
	}
	if b[4+len(path)] != 0 {
		c.watchReqs[xid] = watchReq{op: op, path: path}
	}
}

// setWatchesWritten records a setWatches request being written.
func (c *conn) setWatchesWritten(xid int32) {
	t := c.tap
	t.mu.Lock()
	defer t.mu.Unlock()
	g := &t.gate
	if g.outstanding() <= 0 {
		g.expected++ // one no connect response foretold
	}
	g.written++
	if c.dead {
		g.failedW++ // no reply will be handed over
		c.setWatches[xid] = true
	} else {
		c.setWatches[xid] = false
	}
	g.changed()
}

// setWatchesFailed records setWatches requests whose write failed.
func (c *conn) setWatchesFailed(xids []int32) {
	t := c.tap
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, xid := range xids {
		if counted, ok := c.setWatches[xid]; ok && !counted {
			c.setWatches[xid] = true
			t.gate.failedW++
		}
	}
	t.gate.changed()
}

// readEnded records that go-zookeeper will be handed no more replies on c:
// its setWatches requests without a reply fail.
func (c *conn) readEnded() {
	t := c.tap
	t.mu.Lock()
	defer t.mu.Unlock()
	c.dead = true
	for xid, counted := range c.setWatches {
		if !counted {
			c.setWatches[xid] = true
			t.gate.failedW++
		}
	}
	t.gate.changed()
}

// frameEnd applies the frame just handed over in full, which go-zookeeper
// processes next.
func (c *conn) frameEnd() {
	f := c.rf
	c.rf = readFrame{}
	if !f.ok {
		return
	}
	if f.first {
		c.connectResponse(f.session)
		return
	}
	var req watchReq
	var isReq bool
	if f.xid >= 0 {
		c.mu.Lock()
		req, isReq = c.watchReqs[f.xid]
		delete(c.watchReqs, f.xid)
		c.mu.Unlock()
	}
	t := c.tap
	t.mu.Lock()
	defer t.mu.Unlock()
	g := &t.gate
	switch {
	case f.xid == xidNotification:
		if !f.event.ok {
			g.blind = true
			g.changed()
			return
		}
		for _, typ := range firedBy(f.event.typ) {
			delete(g.watches, watchKey{f.event.path, typ})
		}
	case isReq:
		switch {
		case f.errCode == 0 && (req.op == opExists || req.op == opGetData):
			g.watches[watchKey{req.path, watchData}] = struct{}{}
		case f.errCode == 0:
			g.watches[watchKey{req.path, watchChild}] = struct{}{}
		case f.errCode == errNoNode && req.op == opExists:
			g.watches[watchKey{req.path, watchExist}] = struct{}{}
		}
	}
	if counted, ok := c.setWatches[f.xid]; ok && f.xid >= 0 {
		delete(c.setWatches, f.xid)
		switch {
		case counted && f.errCode == 0:
			g.failedW-- // counted as failed when the connection ended
		case !counted && f.errCode != 0:
			g.failedW++
		}
		g.changed()
	}
}

// firedBy returns the kinds of watches an event of type typ fires, as
// go-zookeeper removes them.
func firedBy(typ int32) []watchType {
	switch typ {
	case eventNodeCreated:
		return []watchType{watchExist}
	case eventNodeDataChanged:
		return []watchType{watchExist, watchData}
	case eventNodeChildrenChanged:
		return []watchType{watchChild}
	case eventNodeDeleted:
		return []watchType{watchExist, watchData, watchChild}
	}
	return nil
}

// connectResponse decides, at the connect response, whether c's replies
// wait for a setWatches request.
func (c *conn) connectResponse(session int64) {
	c.mu.Lock()
	resumed := c.session != 0
	c.mu.Unlock()
	t := c.tap
	t.mu.Lock()
	defer t.mu.Unlock()
	g := &t.gate
	switch {
	case session == 0: // expired: go-zookeeper drops its watches
		clear(g.watches)
	case !resumed || len(g.watches) == 0 || g.blind:
	case setWatchesSize(g.watches) > setWatchesLimit:
		g.blind = true
		g.changed()
	default:
		g.expected++
		c.held = true
	}
}

func setWatchesSize(ws map[watchKey]struct{}) int {
	n := setWatchesOverhead
	for k := range ws {
		n += 4 + len(k.path)
	}
	return n
}

// Printfer is go-zookeeper's Logger.
type Printfer interface {
	Printf(format string, args ...any)
}

// Logger returns next, made to also tell the tap when go-zookeeper fails a
// setWatches request. Pass it to zk.WithLogger for the connection whose
// connections the tap wraps: without it, a connection whose setWatches
// request is overtaken by one that fails unwritten holds its replies until
// its read deadline.
func (t *Tap) Logger(next Printfer) Printfer { return tapLogger{t, next} }

type tapLogger struct {
	t    *Tap
	next Printfer
}

func (l tapLogger) Printf(format string, args ...any) {
	if format == setWatchesFailed {
		l.t.mu.Lock()
		l.t.gate.failLogs++
		l.t.gate.changed()
		l.t.mu.Unlock()
	}
	l.next.Printf(format, args...)
}
