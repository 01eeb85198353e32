package wiretap

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// zkConn is one connection of a go-zookeeper connection through a Tap:
// the client side as go-zookeeper uses it, and the server side.
type zkConn struct {
	c      net.Conn // through the tap
	server net.Conn
}

func connectReqFor(sid int64) []byte {
	return frame(int32(0), int64(0), int32(10000), sid, make([]byte, 16))
}

// dial connects through tap and completes a handshake that asks for
// session ask and is answered with session got.
func dial(t *testing.T, tap *Tap, ask, got int64) *zkConn {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	z := &zkConn{c: tap.Wrap(a), server: b}
	z.write(t, connectReqFor(ask))
	go func() { _, _ = z.server.Write(connectResp(4000, got)) }()
	// As go-zookeeper reads it: the length, then the rest.
	_, err := io.ReadFull(z.c, make([]byte, 4))
	require.NoError(t, err)
	_, err = io.ReadFull(z.c, make([]byte, len(connectResp(4000, got))-4))
	require.NoError(t, err)
	return z
}

// write writes a request as go-zookeeper does; the server drains it.
func (z *zkConn) write(t *testing.T, b []byte) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := io.ReadFull(z.server, make([]byte, len(b)))
		done <- err
	}()
	_, err := z.c.Write(b)
	require.NoError(t, err)
	require.NoError(t, <-done)
}

// serve has the server send frames, in the background.
func (z *zkConn) serve(frames ...[]byte) {
	go func() {
		for _, f := range frames {
			if _, err := z.server.Write(f); err != nil {
				return
			}
		}
	}()
}

// recv reads one frame as go-zookeeper's receive loop does, in the
// background.
func (z *zkConn) recv() <-chan error {
	res := make(chan error, 1)
	go func() {
		var n [4]byte
		if _, err := io.ReadFull(z.c, n[:]); err != nil {
			res <- err
			return
		}
		_, err := io.ReadFull(z.c, make([]byte, int(n[0])<<24|int(n[1])<<16|int(n[2])<<8|int(n[3])))
		res <- err
	}()
	return res
}

func passes(t *testing.T, res <-chan error, what string) {
	t.Helper()
	select {
	case err := <-res:
		require.NoError(t, err, what)
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: held", what)
	}
}

func waits(t *testing.T, res <-chan error, what string) {
	t.Helper()
	select {
	case err := <-res:
		t.Fatalf("%s: passed (%v), want it held", what, err)
	case <-time.After(50 * time.Millisecond):
	}
}

func existsW(xid int32, path string) []byte {
	return request(xid, opExists, []byte(path), true)
}

func setWatches(xid int32) []byte {
	return request(xid, opSetWatches, int64(7), int32(0), int32(0), int32(0))
}

func replyErr(xid int32, zxid int64, code int32) []byte {
	return frame(xid, zxid, code, []byte("body"))
}

func event(typ int32, path string) []byte {
	return frame(int32(xidNotification), int64(-1), int32(0), typ, int32(3), []byte(path))
}

// watching returns a tap whose session (id 7) has a watch on /w, set on a
// first connection that is then closed.
func watching(t *testing.T) *Tap {
	tap := New(nil)
	z := dial(t, tap, 0, 7)
	z.write(t, existsW(1, "/w"))
	z.serve(reply(1, 10))
	passes(t, z.recv(), "a new session's reply")
	require.NoError(t, z.c.Close())
	return tap
}

type quietLog struct{}

func (quietLog) Printf(string, ...any) {}

func TestGateHoldsUntilSetWatches(t *testing.T) {
	tap := watching(t)
	z := dial(t, tap, 7, 7)
	z.write(t, request(2, 9, []byte("/"))) // a sync queued while down
	z.serve(frame(int32(xidPing), int64(0), int32(0)), replyErr(3, 0, 0), reply(2, 11), reply(4, 12))
	passes(t, z.recv(), "a ping's reply")
	passes(t, z.recv(), "a reply without zxid (resent credentials)")
	res := z.recv()
	waits(t, res, "a reply with a zxid before setWatches")
	z.write(t, request(5, 9, []byte("/")))
	waits(t, res, "a reply with a zxid after another request")
	z.write(t, setWatches(4))
	passes(t, res, "the reply once setWatches is written")
	passes(t, z.recv(), "the setWatches reply")
}

func TestGateWatchSet(t *testing.T) {
	tap := New(nil)
	z := dial(t, tap, 0, 7)
	z.write(t, existsW(1, "/a"))                               // exists, node there: data watch
	z.write(t, existsW(2, "/b"))                               // exists, no node: exist watch
	z.write(t, request(3, opGetData, []byte("/c"), true))      // get: data watch
	z.write(t, request(4, opGetChildren2, []byte("/d"), true)) // children: child watch
	z.write(t, request(5, opGetData, []byte("/e"), false))     // no watch
	z.write(t, request(6, opGetData, []byte("/f"), true))      // fails: no watch
	z.write(t, request(7, opGetChildren2, []byte("/g"), true)) // fails: no watch
	z.serve(reply(1, 1), replyErr(2, 1, errNoNode), reply(3, 1), reply(4, 1), reply(5, 1),
		replyErr(6, 1, errNoNode), replyErr(7, 1, errNoNode))
	for range 7 {
		passes(t, z.recv(), "reply")
	}
	keys := func() []string {
		tap.mu.Lock()
		defer tap.mu.Unlock()
		var out []string
		for k := range tap.gate.watches {
			out = append(out, fmt.Sprintf("%s:%d", k.path, k.typ))
		}
		return out
	}
	assert.ElementsMatch(t, []string{"/a:0", "/b:1", "/c:0", "/d:2"}, keys())

	z.serve(event(eventNodeDataChanged, "/a"), event(eventNodeCreated, "/b"), event(eventNodeChildrenChanged, "/d"))
	for range 3 {
		passes(t, z.recv(), "event")
	}
	assert.ElementsMatch(t, []string{"/c:0"}, keys())
	z.serve(event(eventNodeDeleted, "/c"))
	passes(t, z.recv(), "event")
	assert.Empty(t, keys())

	// No watches: a resumed connection's replies pass.
	require.NoError(t, z.c.Close())
	z = dial(t, tap, 7, 7)
	z.serve(reply(8, 2))
	passes(t, z.recv(), "a resumed session without watches")
}

func TestGateNewAndExpiredSessions(t *testing.T) {
	tap := watching(t)
	z := dial(t, tap, 7, 0) // expired
	require.NoError(t, z.c.Close())
	z = dial(t, tap, 0, 8)
	z.serve(reply(1, 20))
	passes(t, z.recv(), "a new session after expiry has no watches")
}

func TestGateOvertakenSetWatches(t *testing.T) {
	tap := watching(t)
	// The first resumed connection dies before its setWatches is written.
	z := dial(t, tap, 7, 7)
	z.serve(reply(2, 11))
	res := z.recv()
	waits(t, res, "held")
	require.NoError(t, z.c.Close())
	assert.ErrorIs(t, <-res, net.ErrClosed)

	// Its setWatches is written first on the next one: not this one's.
	z = dial(t, tap, 7, 7)
	z.serve(reply(3, 12))
	res = z.recv()
	z.write(t, setWatches(10))
	waits(t, res, "after the dead connection's setWatches")
	z.write(t, setWatches(11))
	passes(t, res, "after its own")
}

func TestGateUnwrittenSetWatchesFails(t *testing.T) {
	tap := watching(t)
	log := tap.Logger(quietLog{})
	z := dial(t, tap, 7, 7)
	require.NoError(t, z.c.Close())

	z = dial(t, tap, 7, 7)
	z.serve(reply(3, 12))
	res := z.recv()
	z.write(t, setWatches(11))
	waits(t, res, "one of two expected setWatches written")
	log.Printf(setWatchesFailed, errors.New("zk: could not connect to a server"))
	passes(t, res, "the other failed unwritten")
}

func TestGateWrittenSetWatchesFails(t *testing.T) {
	tap := watching(t)
	log := tap.Logger(quietLog{})
	// Written, then the connection dies before the reply: its failure
	// is logged, and is not an unwritten one.
	z := dial(t, tap, 7, 7)
	z.write(t, setWatches(10))
	require.NoError(t, z.c.Close())
	log.Printf(setWatchesFailed, errors.New("zk: connection closed"))

	z = dial(t, tap, 7, 7)
	z.serve(reply(3, 12))
	res := z.recv()
	waits(t, res, "its own setWatches not written yet")
	z.write(t, setWatches(11))
	passes(t, res, "after its own")
}

func TestGateDeadlineAndClose(t *testing.T) {
	tap := watching(t)
	z := dial(t, tap, 7, 7)
	z.serve(reply(2, 11))
	require.NoError(t, z.c.SetReadDeadline(time.Now().Add(100*time.Millisecond)))
	err := <-z.recv()
	assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
}

func TestGateBlindOnLongPath(t *testing.T) {
	tap := watching(t)
	z := dial(t, tap, 7, 7)
	z.write(t, setWatches(2))
	long := "/" + strings.Repeat("x", maxCapture)
	z.write(t, existsW(3, long))
	z.serve(reply(3, 11))
	passes(t, z.recv(), "reply")
	require.NoError(t, z.c.Close())
	z = dial(t, tap, 7, 7)
	z.serve(reply(4, 12))
	passes(t, z.recv(), "a blind tap holds nothing")
}
