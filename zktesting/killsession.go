package zktesting

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"testing"
	"time"
)

// ZooKeeper's wire protocol, as much as closing a session by id needs: a
// connect request and response, then a closeSession request. Every message
// is framed by a 4-byte big-endian length. opCloseSession is a variable so
// that its conversion to the unsigned field wraps.
var opCloseSession int32 = -11

const (
	// connectResponseMax bounds what a session reader keeps of a
	// connection's first bytes: the frame length, protocol version,
	// timeout, session id, password (16 bytes, length-prefixed) and the
	// read-only flag take 41.
	connectResponseMax = 64
	// killRequestTimeout is the session timeout asked for when reopening
	// a session to close it; the server may grant another.
	killRequestTimeout = 10 * time.Second
)

// newSessionReader returns a reader, for one connection through the
// proxies, of the connect response that opens the server's side of it, and
// records the session id and password it carries.
func (ps *Proxies) newSessionReader() func([]byte) {
	var buf []byte
	done := false
	return func(b []byte) {
		if done {
			return
		}
		buf = append(buf, b[:min(len(b), connectResponseMax-len(buf))]...)
		id, passwd, ok, complete := parseConnectResponse(buf)
		if !complete && len(buf) < connectResponseMax {
			return
		}
		done = true
		if ok {
			ps.mu.Lock()
			ps.sessions[id] = passwd
			ps.mu.Unlock()
		}
	}
}

// parseConnectResponse reads a connect response frame from the start of b.
// complete is false while b is too short to tell; ok is false for a
// response that opens no session (an expired or refused one).
func parseConnectResponse(b []byte) (id int64, passwd []byte, ok, complete bool) {
	const head = 4 + 4 + 4 + 8 + 4 // length, version, timeout, session id, password length
	if len(b) < head {
		return 0, nil, false, false
	}
	// A connection that is not a client's (a four-letter word) starts
	// with no such frame: its length gives it away.
	size := int(binary.BigEndian.Uint32(b))
	if size < head-4 || size > connectResponseMax {
		return 0, nil, false, true
	}
	timeout := int32(binary.BigEndian.Uint32(b[8:]))
	id = int64(binary.BigEndian.Uint64(b[12:]))
	n := int(int32(binary.BigEndian.Uint32(b[20:])))
	if n < 0 || head-4+n > size {
		return 0, nil, false, true
	}
	if len(b) < head+n {
		return 0, nil, false, false
	}
	return id, slices.Clone(b[head : head+n]), timeout > 0 && id != 0, true
}

// Sessions returns the ids of the ZooKeeper sessions set up through the
// proxies and not yet closed by KillSession (some may have expired since).
func (ps *Proxies) Sessions() []int64 {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	var ids []int64
	for id := range ps.sessions {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// KillSession ends, at once, every ZooKeeper session that a client set up
// through the proxies, as a session timeout would but without waiting for
// one: the server deletes the sessions' ephemeral nodes and fires their
// watches, and a client that reconnects is told its session has expired.
// It does it the way ZooKeeper's own test tools do: with the session's id
// and password, read from the connect response as it passed through the
// proxies, it opens the session on a second connection straight to a
// server and closes it there. The proxies drop the clients' traffic while
// it does (so that a client cannot take its session back in between), then
// reset their connections, so the clients reconnect and learn of the
// expiry right away. It returns once the server has closed the sessions;
// the clients may see it a moment later. A session that has already
// expired is passed over. It fails the test on error; it works with
// ZK_SERVERS too.
func (ps *Proxies) KillSession(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	if err := ps.KillSessions(ctx); err != nil {
		t.Fatal(err)
	}
}

// KillSessions is KillSession for a program that has no testing.TB, bounded
// by ctx. It returns an error if a session could not be closed; the
// sessions closed before it stay closed.
func (ps *Proxies) KillSessions(ctx context.Context) error {
	// One at a time: a second kill would reopen a session the first is
	// closing, which makes the server drop the first's connection, and its
	// Heal would let the clients back in before the first is done.
	select {
	case ps.killing <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("zktesting: waiting for another KillSessions: %w", ctx.Err())
	}
	defer func() { <-ps.killing }()
	ps.Blackhole()
	defer ps.Heal()
	ps.mu.Lock()
	sessions := make(map[int64][]byte, len(ps.sessions))
	for id, pw := range ps.sessions {
		sessions[id] = pw
	}
	ps.mu.Unlock()
	var errs []error
	for id, passwd := range sessions {
		if err := closeSession(ctx, ps.targets, id, passwd); err != nil {
			errs = append(errs, err)
			continue
		}
		ps.mu.Lock()
		delete(ps.sessions, id)
		ps.mu.Unlock()
	}
	return errors.Join(errs...)
}

// closeSession reopens session id on the first of servers that answers and
// closes it. A session the server no longer knows is no error.
func closeSession(ctx context.Context, servers []string, id int64, passwd []byte) error {
	var errs []error
	for _, s := range servers {
		err := closeSessionAt(ctx, s, id, passwd)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return fmt.Errorf("zktesting: closing session 0x%x: %w", uint64(id), errors.Join(errs...))
}

func closeSessionAt(ctx context.Context, server string, id int64, passwd []byte) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", server)
	if err != nil {
		return err
	}
	defer conn.Close()
	// Unblocks the reads and writes below when ctx ends.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()

	req := binary.BigEndian.AppendUint32(nil, 0) // protocol version
	req = binary.BigEndian.AppendUint64(req, 0)  // last zxid seen
	req = binary.BigEndian.AppendUint32(req, uint32(killRequestTimeout.Milliseconds()))
	req = binary.BigEndian.AppendUint64(req, uint64(id))
	req = binary.BigEndian.AppendUint32(req, uint32(len(passwd)))
	req = append(req, passwd...)
	if err := writeFrame(conn, req); err != nil {
		return err
	}
	resp, err := readFrame(conn)
	if err != nil {
		return fmt.Errorf("reopening the session at %s: %w", server, err)
	}
	if len(resp) < 16 {
		return fmt.Errorf("short connect response from %s", server)
	}
	if int32(binary.BigEndian.Uint32(resp[4:])) <= 0 || binary.BigEndian.Uint64(resp[8:]) == 0 {
		return nil // expired already
	}
	closeReq := binary.BigEndian.AppendUint32(nil, 1) // xid
	closeReq = binary.BigEndian.AppendUint32(closeReq, uint32(opCloseSession))
	if err := writeFrame(conn, closeReq); err != nil {
		return err
	}
	reply, err := readFrame(conn)
	if err != nil {
		return fmt.Errorf("closing the session at %s: %w", server, err)
	}
	if len(reply) < 16 {
		return fmt.Errorf("short closeSession reply from %s", server)
	}
	if code := int32(binary.BigEndian.Uint32(reply[12:])); code != 0 {
		return fmt.Errorf("closeSession at %s answered error %d", server, code)
	}
	return nil
}

func writeFrame(w io.Writer, b []byte) error {
	_, err := w.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...))
	return err
}

// readFrame reads one length-prefixed message, of at most 1 MiB.
func readFrame(r io.Reader) ([]byte, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	size := binary.BigEndian.Uint32(n[:])
	if size > 1<<20 {
		return nil, fmt.Errorf("message of %d bytes", size)
	}
	b := make([]byte, size)
	_, err := io.ReadFull(r, b)
	return b, err
}
