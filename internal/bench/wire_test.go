package bench

import (
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// frame encodes a length-prefixed frame of big-endian int32 fields plus
// payload bytes.
func frame(payload []byte, fields ...int32) []byte {
	var b []byte
	for _, f := range fields {
		b = binary.BigEndian.AppendUint32(b, uint32(f))
	}
	b = append(b, payload...)
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...)
}

func cat(frames ...[]byte) []byte {
	var out []byte
	for _, f := range frames {
		out = append(out, f...)
	}
	return out
}

// Frames as go-zookeeper writes them.
var (
	connectFrame = frame(make([]byte, 28), 0) // protocol version, then timeout, session id, password
	createFrame  = frame([]byte("/lock/_c_x-lock-\x00\x00\x00\x00"), 1, 1)
	existsFrame  = frame([]byte("/lock/_c_x-lock-0000000001\x01"), 2, 3)
	pingFrame    = frame(nil, -2, 11)
	deleteFrame  = frame([]byte("/lock/_c_x-lock-0000000001\xff\xff\xff\xff"), 3, 2)
)

func TestFrameSplitter(t *testing.T) {
	stream := cat(connectFrame, createFrame, pingFrame, existsFrame, deleteFrame)
	want := []frameHeader{
		{index: 0, xid: 0, op: 0, ok: true}, // connect request: no header, first 8 bytes read as one
		{index: 1, xid: 1, op: 1, ok: true},
		{index: 2, xid: -2, op: 11, ok: true},
		{index: 3, xid: 2, op: 3, ok: true},
		{index: 4, xid: 3, op: 2, ok: true},
	}
	for _, tc := range []struct {
		name   string
		chunks func([]byte) [][]byte
	}{
		{"one write", func(b []byte) [][]byte { return [][]byte{b} }},
		{"frame by frame", func([]byte) [][]byte {
			return [][]byte{connectFrame, createFrame, pingFrame, existsFrame, deleteFrame}
		}},
		{"byte by byte", func(b []byte) [][]byte {
			out := make([][]byte, len(b))
			for i := range b {
				out[i] = b[i : i+1]
			}
			return out
		}},
		{"split inside length and header", func(b []byte) [][]byte {
			n := len(connectFrame)
			return [][]byte{b[:2], b[2 : n+3], b[n+3 : n+9], b[n+9:]}
		}},
		{"odd chunks", func(b []byte) [][]byte {
			var out [][]byte
			for i := 0; i < len(b); i += 7 {
				out = append(out, b[i:min(i+7, len(b))])
			}
			return out
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var fs frameSplitter
			var got []frameHeader
			for _, c := range tc.chunks(stream) {
				fs.feed(c, func(h frameHeader) { got = append(got, h) })
			}
			assert.Equal(t, want, got)
		})
	}
}

func TestFrameSplitterShortFrames(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want []frameHeader
	}{
		{"empty frame", cat(frame(nil), createFrame), []frameHeader{{index: 0}, {index: 1, xid: 1, op: 1, ok: true}}},
		{"four-byte frame", cat(frame(nil, 5), createFrame), []frameHeader{{index: 0}, {index: 1, xid: 1, op: 1, ok: true}}},
		{"incomplete frame reports nothing", createFrame[:9], nil},
		{"nothing", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var fs frameSplitter
			var got []frameHeader
			fs.feed(tc.in, func(h frameHeader) { got = append(got, h) })
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestIsRequest(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    frameHeader
		want bool
	}{
		{"connect request", frameHeader{index: 0, xid: 0, op: 0, ok: true}, false},
		{"first frame even if it looks like a request", frameHeader{index: 0, xid: 1, op: 1, ok: true}, false},
		{"create", frameHeader{index: 1, xid: 1, op: 1, ok: true}, true},
		{"delete", frameHeader{index: 9, xid: 8, op: 2, ok: true}, true},
		{"ping", frameHeader{index: 3, xid: -2, op: 11, ok: true}, false},
		{"set watches after reconnect", frameHeader{index: 1, xid: -8, op: 101, ok: true}, true},
		{"short frame", frameHeader{index: 2}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, isRequest(tc.h))
		})
	}
}

func TestRequestCounts(t *testing.T) {
	before := requestCounts{1: 5, 2: 5}
	after := requestCounts{1: 9, 2: 5, 12: 4}
	d := after.sub(before)
	assert.Equal(t, requestCounts{1: 4, 12: 4}, d)
	assert.Equal(t, uint64(8), d.total())
	r := d.perCycle(4)
	assert.InDelta(t, 2.0, r.PerCycle, 1e-9)
	assert.Equal(t, map[string]float64{"create": 1, "getChildren2": 1}, r.ByOp)
	assert.Zero(t, d.perCycle(0).PerCycle)
	assert.Equal(t, "op77", opName(77))
}

// Replies as ZooKeeper sends them: xid, zxid, err, then the body.
func reply(xid int32, body []byte) []byte {
	return frame(append(binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint32(nil, 0), 42), body...), xid)
}

// TestCountingDialer counts through a real TCP connection, with the
// connect request and a ping excluded, starts afresh on a new connection,
// and tracks the requests still awaiting a reply.
func TestCountingDialer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	// The server answers the connect request, requests 1 and 2 and the
	// ping, and sends a watch notification; request 3 stays unanswered.
	answers := cat(
		frame(make([]byte, 36), 0), // connect response
		reply(1, []byte("/lock/_c_x-lock-0000000001")),
		reply(-1, []byte("notification")), // a watch event
		reply(-2, nil),                    // ping reply
		reply(2, nil),
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write(answers)
			_, _ = io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	rc := newRequestCounter()
	dial := countingDialer(rc)
	for i := range 2 {
		c, err := dial("tcp", ln.Addr().String(), time.Second)
		require.NoError(t, err)
		stream := cat(connectFrame, createFrame, pingFrame, existsFrame, deleteFrame)
		_, err = c.Write(stream[:11])
		require.NoError(t, err)
		_, err = c.Write(stream[11:])
		require.NoError(t, err)
		// Read in odd pieces, as a TCP stream may deliver them.
		buf := make([]byte, 5)
		for got := 0; got < len(answers); {
			n, err := c.Read(buf)
			require.NoError(t, err)
			got += n
		}
		assert.Equal(t, int64(i+1), rc.outstanding(), "request 3 of each connection is unanswered")
		require.NoError(t, c.Close())
	}
	assert.Equal(t, requestCounts{1: 2, 2: 2, 3: 2}, rc.snapshot())
	ln.Close()
	<-done
}
