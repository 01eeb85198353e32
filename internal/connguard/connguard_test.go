package connguard

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func frame(body string) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	return append(b, body...)
}

// A server that accepts and never answers costs the handshake budget, not
// the deadline the library asks for.
func TestHandshakeBudgetBoundsReads(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	g := New(50 * time.Millisecond)
	c, err := g.Wrap(client)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(time.Hour)))
	start := time.Now()
	_, err = c.Read(make([]byte, 4))
	assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
	assert.Less(t, time.Since(start), 10*time.Second, "bounded by the budget")
}

// Once the first frame has been read, the library's own deadlines apply.
func TestHandshakeDoneRestoresDeadlines(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	g := New(100 * time.Millisecond)
	c, err := g.Wrap(client)
	require.NoError(t, err)
	defer c.Close()
	go func() {
		f := frame("hello")
		// In pieces, across the length prefix.
		server.Write(f[:2])
		server.Write(f[2:6])
		server.Write(f[6:])
	}()
	require.NoError(t, c.SetReadDeadline(time.Time{}))
	buf := make([]byte, 9)
	got := 0
	for got < len(buf) {
		n, err := c.Read(buf[got:])
		require.NoError(t, err)
		got += n
	}
	assert.Equal(t, frame("hello"), buf)
	assert.True(t, c.(*Conn).handshaken)
}

// deadlineConn records the read deadlines set on it.
type deadlineConn struct {
	net.Conn
	set []time.Time
}

func (d *deadlineConn) SetReadDeadline(t time.Time) error { d.set = append(d.set, t); return nil }
func (d *deadlineConn) Read(p []byte) (int, error)        { return copy(p, frame("")), nil }

// Before the handshake, deadlines are clamped to the budget; after it, the
// library's own deadline is put back and later ones pass unchanged.
func TestDeadlinesClampedOnlyDuringHandshake(t *testing.T) {
	d := &deadlineConn{}
	g := New(time.Minute)
	c, err := g.Wrap(d)
	require.NoError(t, err)
	by := c.(*Conn).handshakeBy
	require.NoError(t, c.SetReadDeadline(time.Now().Add(time.Hour)))
	require.NoError(t, c.SetReadDeadline(time.Time{}))
	_, err = c.Read(make([]byte, 4)) // the whole (empty) first frame
	require.NoError(t, err)
	later := time.Now().Add(time.Hour)
	require.NoError(t, c.SetReadDeadline(later))
	assert.Equal(t, []time.Time{by, by, by, {}, later}, d.set)
}

type failingConn struct {
	net.Conn
	closed bool
}

func (f *failingConn) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }
func (f *failingConn) Close() error              { f.closed = true; return nil }
func (f *failingConn) SetReadDeadline(time.Time) error {
	return nil
}

// A failed write closes the connection and reports success, so the
// library fails the request once, with the connection.
func TestFailedWriteClosesAndReportsDone(t *testing.T) {
	f := &failingConn{}
	g := New(time.Second)
	c, err := g.Wrap(f)
	require.NoError(t, err)
	n, err := c.Write([]byte("request"))
	assert.NoError(t, err)
	assert.Equal(t, 7, n)
	assert.True(t, f.closed, "the connection is closed")
	assert.Zero(t, g.Open())
}

// Close closes every connection, which ends a blocked read, and refuses new
// ones.
func TestCloseEndsBlockedReadsAndRefusesNewConnections(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	g := New(time.Hour)
	c, err := g.Wrap(client)
	require.NoError(t, err)
	read := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		read <- err
	}()
	g.Close()
	select {
	case err := <-read:
		assert.ErrorIs(t, err, io.ErrClosedPipe)
	case <-time.After(10 * time.Second):
		t.Fatal("the blocked read did not return after Close")
	}
	c2, s2 := net.Pipe()
	defer s2.Close()
	_, err = g.Wrap(c2)
	assert.ErrorIs(t, err, ErrClosed)
	_, err = c2.Write([]byte("x"))
	assert.ErrorIs(t, err, io.ErrClosedPipe, "the refused connection is closed")
}

func TestHostsRotateAndSignalRetryStart(t *testing.T) {
	var h Hosts
	require.NoError(t, h.Init([]string{"a:1", "b:2", "c:3"}))
	assert.Equal(t, 3, h.Len())
	var got []string
	var retries []bool
	for range 7 {
		s, r := h.Next()
		got, retries = append(got, s), append(retries, r)
	}
	assert.Equal(t, []string{"a:1", "b:2", "c:3", "a:1", "b:2", "c:3", "a:1"}, got)
	assert.Equal(t, []bool{false, false, false, true, false, false, true}, retries)
	h.Connected()
	for range 3 {
		_, r := h.Next()
		assert.False(t, r, "after a connection, every server is tried before a retry start")
	}
}
