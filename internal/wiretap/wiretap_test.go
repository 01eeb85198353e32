package wiretap

import (
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// frame encodes a length-prefixed frame of big-endian fields.
func frame(fields ...any) []byte {
	var b []byte
	for _, f := range fields {
		switch v := f.(type) {
		case int32:
			b = binary.BigEndian.AppendUint32(b, uint32(v))
		case int64:
			b = binary.BigEndian.AppendUint64(b, uint64(v))
		case []byte:
			b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
			b = append(b, v...)
		case bool:
			b = append(b, 0)
			if v {
				b[len(b)-1] = 1
			}
		}
	}
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...)
}

// Byte layouts as go-zookeeper writes and ZooKeeper 3.8 answers them.
var (
	connectReq  = frame(int32(0), int64(0), int32(10000), int64(0), make([]byte, 16))
	connectResp = func(timeoutMs int32, sid int64) []byte {
		return frame(int32(0), timeoutMs, sid, make([]byte, 16))
	}
	request = func(xid, op int32, body ...any) []byte {
		return frame(append([]any{xid, op}, body...)...)
	}
	reply = func(xid int32, zxid int64) []byte {
		return frame(xid, zxid, int32(0), []byte("payload-after-header"))
	}
)

// fakeClock hands out the given instants in order.
type fakeClock struct{ t []time.Time }

func (c *fakeClock) now() time.Time { n := c.t[0]; c.t = c.t[1:]; return n }

type pipe struct {
	tap          *Tap
	client, peer net.Conn
}

func newPipe(t *testing.T, clk *fakeClock) *pipe {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	tap := New(clk.now)
	return &pipe{tap: tap, client: tap.Wrap(a), peer: b}
}

// write sends client bytes through the tap; the peer drains them.
func (p *pipe) write(t *testing.T, b []byte) {
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, len(b))
		_, err := readFull(p.peer, buf)
		done <- err
	}()
	_, err := p.client.Write(b)
	require.NoError(t, err)
	require.NoError(t, <-done)
}

// read delivers server bytes to the client in chunks of the given size.
func (p *pipe) read(t *testing.T, b []byte, chunk int) {
	done := make(chan error, 1)
	go func() { _, err := p.peer.Write(b); done <- err }()
	buf := make([]byte, chunk)
	for got := 0; got < len(b); {
		n, err := p.client.Read(buf[:min(chunk, len(b)-got)])
		require.NoError(t, err)
		got += n
	}
	require.NoError(t, <-done)
}

func readFull(c net.Conn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		k, err := c.Read(b[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func at(s int) time.Time { return time.Unix(1000+int64(s), 0) }

func TestNegotiatedTimeoutAndConnectAck(t *testing.T) {
	p := newPipe(t, &fakeClock{t: []time.Time{at(1)}})
	p.write(t, connectReq)
	assert.True(t, p.tap.LastAck().IsZero(), "nothing is acknowledged before the connect response")
	assert.True(t, p.tap.ConnectSent().IsZero())
	p.read(t, connectResp(4000, 0x1234), 3)
	assert.Equal(t, at(1), p.tap.ConnectSent(), "the session was requested when the connect request was sent")
	assert.Equal(t, 4*time.Second, p.tap.Timeout())
	assert.Equal(t, int64(0x1234), p.tap.SessionID())
	assert.Equal(t, at(1), p.tap.LastAck(), "the connect response acknowledges the connect request")
	assert.False(t, p.tap.Expired())
}

func TestExpiredConnect(t *testing.T) {
	p := newPipe(t, &fakeClock{t: []time.Time{at(1)}})
	p.write(t, connectReq)
	p.read(t, connectResp(0, 0), 64)
	assert.True(t, p.tap.Expired())
	assert.True(t, p.tap.LastAck().IsZero(), "a refused session acknowledges nothing")
}

func TestAckIsSendTimeOfAnsweredRequest(t *testing.T) {
	clk := &fakeClock{t: []time.Time{at(1), at(2), at(3), at(4), at(5)}}
	p := newPipe(t, clk)
	p.write(t, connectReq)                   // at(1)
	p.read(t, connectResp(6000, 7), 64)      //
	p.write(t, request(1, 4, "/a"))          // at(2) getData
	p.write(t, request(xidPing, 11))         // at(3) ping
	p.write(t, request(2, 1, []byte("/b")))  // at(4) create
	p.read(t, reply(xidNotification, 0), 64) // a watch event acknowledges nothing
	assert.Equal(t, at(1), p.tap.LastAck())  //
	p.read(t, reply(1, 100), 5)              // answers the getData
	assert.Equal(t, at(2), p.tap.LastAck())  //
	p.read(t, reply(xidPing, 100), 1)        // answers the ping
	assert.Equal(t, at(3), p.tap.LastAck())  //
	p.write(t, request(xidPing, 11))         // at(5) second ping, unanswered
	p.read(t, reply(2, 101), 64)             // answers the create
	assert.Equal(t, at(4), p.tap.LastAck())  //
	assert.Equal(t, uint64(2), p.tap.Requests(), "pings and the connect request are not counted")
}

func TestAckNeverMovesBack(t *testing.T) {
	clk := &fakeClock{t: []time.Time{at(1), at(2), at(3)}}
	p := newPipe(t, clk)
	p.write(t, connectReq)
	p.read(t, connectResp(6000, 7), 64)
	p.write(t, request(1, 4))
	p.write(t, request(2, 4))
	p.read(t, reply(2, 1), 64)
	p.read(t, reply(1, 1), 64)
	assert.Equal(t, at(3), p.tap.LastAck())
}

func TestFramesSplitAnywhere(t *testing.T) {
	stream := append(append(reply(5, 9), reply(xidPing, 0)...), frame(int32(7))...)
	for chunk := 1; chunk <= len(stream); chunk++ {
		var f Frames
		var got []int32
		for i := 0; i < len(stream); i += chunk {
			f.Feed(stream[i:min(i+chunk, len(stream))], func(_ bool, h []byte) {
				got = append(got, int32(binary.BigEndian.Uint32(h)))
			})
		}
		assert.Equal(t, []int32{5, xidPing, 7}, got, "chunk %d", chunk)
	}
}

func TestFramesEndAndLeft(t *testing.T) {
	stream := append(append(reply(5, 9), reply(xidPing, 0)...), frame(int32(7))...)
	ends := []int{len(reply(5, 9)), len(reply(5, 9)) + len(reply(xidPing, 0)), len(stream)}
	// Byte by byte, to see where each frame ends; left counts down to it.
	f := Frames{Max: 8}
	var got []int
	for i := range stream {
		next := ends[len(got)]
		if f.n >= 4 || f.skip > 0 {
			assert.Equal(t, next-i, f.left(), "at %d", i)
		}
		f.FeedFrames(stream[i:i+1], func(bool, []byte) {}, func() { got = append(got, i+1) })
	}
	assert.Equal(t, ends, got)
	assert.True(t, f.atBoundary())
	assert.Equal(t, 4, f.left(), "a length first")
	// In any chunks, one end per frame.
	for chunk := 1; chunk <= len(stream); chunk++ {
		var f Frames
		n := 0
		for i := 0; i < len(stream); i += chunk {
			f.FeedFrames(stream[i:min(i+chunk, len(stream))], func(bool, []byte) {}, func() { n++ })
		}
		assert.Equal(t, 3, n, "chunk %d", chunk)
	}
}

func TestCreateTrace(t *testing.T) {
	clk := &fakeClock{t: []time.Time{at(1), at(2), at(3), at(4)}}
	p := newPipe(t, clk)
	p.write(t, connectReq)
	p.read(t, connectResp(6000, 7), 64)

	tr := p.tap.TraceCreate("/d/_c_x-lock-")
	defer p.tap.Untrace(tr)
	select {
	case <-tr.Sent():
		t.Fatal("sent before the request was written")
	default:
	}
	// create: header, path, data, acl count, flags
	p.write(t, request(9, opCreate, []byte("/d/_c_x-lock-"), []byte("data"), int32(0), int32(3)))
	select {
	case <-tr.Sent():
	default:
		t.Fatal("not marked sent after the write")
	}
	_, ok := p.tap.Zxid(tr)
	assert.False(t, ok, "no zxid before the reply")
	p.read(t, frame(int32(9), int64(0x42), int32(0), []byte("/d/_c_x-lock-0000000001")), 7)
	zxid, ok := p.tap.Zxid(tr)
	assert.True(t, ok)
	assert.Equal(t, int64(0x42), zxid, "the create reply's zxid is the node's czxid")

	other := p.tap.TraceCreate("/d/_c_y-lock-")
	defer p.tap.Untrace(other)
	p.write(t, request(10, opCreate, []byte("/d/_c_y-lock-"), []byte{}, int32(0), int32(3)))
	p.read(t, frame(int32(10), int64(0x43), int32(-101)), 64) // NoNode
	_, ok = p.tap.Zxid(other)
	assert.False(t, ok, "a failed create has no czxid")
}
