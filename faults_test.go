package zklock_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zklock/zklock"
	"github.com/zklock/zklock/internal/zktest"
	"github.com/zklock/zklock/zktesting"
)

// Close ends every hold made under the Session before the server is asked
// to end the ZooKeeper session, so no other client can be granted a lock or
// lead while the closed holder's Done is still open, and Close returns
// only after that. Many holds make the window in which a hold could still
// be open wide.
func TestIntegration_CloseEndsHoldsBeforeOthersAreGranted(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	admin := zc.Admin(t)
	other := connect(t, zc.Servers(), zklock.WithChroot(root))
	const holds = 50
	for round := range 3 {
		holder := connect(t, zc.Servers(), zklock.WithChroot(root))
		ctx := bounded(t, zktesting.Timeout)
		var ms []*zklock.Mutex
		for i := range holds {
			m := zklock.NewMutex(holder, fmt.Sprintf("/lock-%d", i))
			require.NoError(t, m.Lock(ctx))
			ms = append(ms, m)
		}
		e := zklock.NewElection(holder, "/election")
		require.NoError(t, e.Campaign(ctx))

		// The waiters look at the holder's Done the moment they are granted.
		type seen struct {
			err        error
			holderDone bool
		}
		var waiters []*zklock.Mutex
		var lockSeen []chan seen
		for i, m := range ms {
			wm := zklock.NewMutex(other, fmt.Sprintf("/lock-%d", i))
			ch := make(chan seen, 1)
			go func() {
				err := wm.Lock(ctx)
				ch <- seen{err, isClosed(m.Done())}
			}()
			waiters, lockSeen = append(waiters, wm), append(lockSeen, ch)
		}
		we := zklock.NewElection(other, "/election")
		leadSeen := make(chan seen, 1)
		go func() {
			err := we.Campaign(ctx)
			leadSeen <- seen{err, isClosed(e.Done())}
		}()
		for i := range ms {
			waitChildren(t, admin, fmt.Sprintf("%s/lock-%d", root, i), 2)
		}
		waitChildren(t, admin, root+"/election", 2)

		require.NoError(t, holder.Close())
		for i, m := range ms {
			assert.True(t, isClosed(m.Done()), "round %d: lock %d's Done is closed when Close returns", round, i)
			assert.ErrorIs(t, m.Err(), zklock.ErrSessionClosed)
		}
		assert.True(t, isClosed(e.Done()), "round %d: the leadership's Done is closed when Close returns", round)
		assert.ErrorIs(t, context.Cause(e.Context()), zklock.ErrSessionClosed)

		for i, ch := range lockSeen {
			s := await(t, ch, "a waiting Lock")
			require.NoError(t, s.err)
			assert.True(t, s.holderDone, "round %d: the closed holder's Done was closed before the next Lock %d returned", round, i)
			require.NoError(t, waiters[i].Unlock(ctx))
		}
		s := await(t, leadSeen, "the waiting Campaign")
		require.NoError(t, s.err)
		assert.True(t, s.holderDone, "round %d: the closed leader's Done was closed before the next Campaign returned", round)
		require.NoError(t, we.Resign(ctx))
	}
}

// recursiveDelete deletes dir and its children in one transaction, as
// ZooKeeper's own deleteall does for a batch.
func recursiveDelete(t *testing.T, admin *zk.Conn, dir string) {
	t.Helper()
	kids, _, err := admin.Children(dir)
	require.NoError(t, err)
	var ops []any
	for _, k := range kids {
		ops = append(ops, &zk.DeleteRequest{Path: dir + "/" + k, Version: -1})
	}
	ops = append(ops, &zk.DeleteRequest{Path: dir, Version: -1})
	_, err = admin.Multi(ops...)
	require.NoError(t, err)
}

// An operator's recursive delete of a queue, holder and waiters in one
// transaction: the holder learns of its loss, and waiting calls keep
// waiting (queueing again) instead of failing; each grant rests on a node
// that exists.
func TestIntegration_RecursiveDeleteWhileQueued(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	admin := zc.Admin(t)

	type contender struct {
		acquire func(context.Context) error
		release func(context.Context) error
		done    func() <-chan struct{}
		errf    func() error
		key     func() string
	}
	mutex := func(s *zklock.Session, p string) contender {
		m := zklock.NewMutex(s, p)
		return contender{m.Lock, m.Unlock, m.Done, m.Err, m.Key}
	}
	election := func(s *zklock.Session, p string) contender {
		e := zklock.NewElection(s, p)
		return contender{e.Campaign, e.Resign, e.Done, e.Err, e.Key}
	}
	for _, tc := range []struct {
		name string
		make func(*zklock.Session, string) contender
		lost error
	}{
		{"mutex", mutex, zklock.ErrLockLost},
		{"election", election, zklock.ErrLeadershipLost},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for round := range 3 {
				dir := fmt.Sprintf("/%s-%d", tc.name, round)
				ctx := bounded(t, zktesting.Timeout)
				holder := tc.make(connect(t, zc.Servers(), zklock.WithChroot(root)), dir)
				require.NoError(t, holder.acquire(ctx))
				var waiters []contender
				var results []chan error
				for range 2 {
					w := tc.make(connect(t, zc.Servers(), zklock.WithChroot(root)), dir)
					res := make(chan error, 1)
					go func() { res <- w.acquire(ctx) }()
					waiters, results = append(waiters, w), append(results, res)
					waitChildren(t, admin, root+dir, len(waiters)+1)
				}

				recursiveDelete(t, admin, root+dir)
				await(t, holder.done(), "the holder's loss signal")
				assert.ErrorIs(t, holder.errf(), tc.lost)
				assert.ErrorIs(t, holder.errf(), zklock.ErrNodeDeleted)

				// Exactly one waiter is granted at a time, each on a node that
				// exists; neither fails.
				for range waiters {
					var i int
					select {
					case err := <-results[0]:
						require.NoError(t, err, "round %d: a waiting call keeps waiting through the delete", round)
						i = 0
					case err := <-results[1]:
						require.NoError(t, err, "round %d: a waiting call keeps waiting through the delete", round)
						i = 1
					case <-ctx.Done():
						t.Fatalf("round %d: no waiter was granted after the delete", round)
					}
					results[i] = nil // granted: never selected again
					w := waiters[i]
					assert.NoError(t, w.errf(), "round %d: the grant holds", round)
					assert.True(t, exists(t, admin, root+w.key()), "round %d: the granted node %s exists", round, w.key())
					require.NoError(t, w.release(ctx))
				}
				waitChildren(t, admin, root+dir, 0)
			}
		})
	}
}

// recordingHandler keeps the messages of warnings and errors.
type recordingHandler struct {
	mu   sync.Mutex
	msgs []string
}

func (h *recordingHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.msgs = append(h.msgs, r.Message)
	return nil
}
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler      { return h }

func (h *recordingHandler) messages() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.msgs...)
}

// A delete the server refuses is reported, not hidden by the cleaner:
// Unlock returns it, and a cancelled waiter's refused delete is logged as
// a warning and not retried.
func TestIntegration_RefusedDeleteIsReported(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	admin := zc.Admin(t)
	// Anyone may create children of the lock directories, no one may
	// delete them.
	noDelete := zk.WorldACL(zk.PermAll &^ zk.PermDelete)
	for _, d := range []string{"m", "e", "w"} {
		_, err := admin.Create(root+"/"+d, nil, 0, noDelete)
		require.NoError(t, err)
	}
	ctx := bounded(t, zktesting.Timeout)

	for _, tc := range []struct {
		name    string
		acquire func(*zklock.Session) (release func(context.Context) error, done func() <-chan struct{})
	}{
		{"mutex", func(s *zklock.Session) (func(context.Context) error, func() <-chan struct{}) {
			m := zklock.NewMutex(s, "/m")
			require.NoError(t, m.Lock(ctx))
			return m.Unlock, m.Done
		}},
		{"election", func(s *zklock.Session) (func(context.Context) error, func() <-chan struct{}) {
			e := zklock.NewElection(s, "/e")
			require.NoError(t, e.Campaign(ctx))
			return e.Resign, e.Done
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := connect(t, zc.Servers(), zklock.WithChroot(root))
			release, done := tc.acquire(s)
			err := release(ctx)
			assert.ErrorIs(t, err, zk.ErrNoAuth, "the server's refusal reaches the caller")
			assert.True(t, isClosed(done()), "the hold has ended all the same")
			kids, _, err := admin.Children(root + "/" + tc.name[:1])
			require.NoError(t, err)
			assert.Len(t, kids, 1, "the refused node stays until its session ends")
			require.NoError(t, s.Close())
			waitChildren(t, admin, root+"/"+tc.name[:1], 0)
		})
	}

	t.Run("cancelled waiter", func(t *testing.T) {
		holder := zklock.NewMutex(connect(t, zc.Servers(), zklock.WithChroot(root)), "/w")
		require.NoError(t, holder.Lock(ctx))
		logs := &recordingHandler{}
		s := connect(t, zc.Servers(), zklock.WithChroot(root), zklock.WithLogger(slog.New(logs)))
		assert.ErrorIs(t, zklock.NewMutex(s, "/w").TryLock(ctx), zklock.ErrLocked)
		assert.Len(t, children(t, admin, root+"/w"), 2, "the refused waiter's node stays until its session ends")
		var refused int
		for _, m := range logs.messages() {
			if strings.Contains(m, "refused to delete") {
				refused++
			}
		}
		assert.Equal(t, 1, refused, "one warning for the refused delete, no retries: %q", logs.messages())
		require.NoError(t, s.Close())
		require.ErrorIs(t, holder.Unlock(ctx), zk.ErrNoAuth)
	})
	for _, d := range []string{"m", "e", "w"} {
		require.NoError(t, admin.Delete(root+"/"+d, -1))
	}
}

// pausedHolderEnv carries the servers and root to the holder process of
// TestIntegration_HoldCheckedAfterProcessPause.
const pausedHolderEnv = "ZKLOCK_TEST_PAUSED_HOLDER"

// A process that resumes after a pause longer than its loss deadline
// learns of the loss on its first look at the hold, before the Session's
// timer has had a chance to run. The holder runs in a child process, which
// the test stops (SIGSTOP) until the server has expired its session.
func TestIntegration_HoldCheckedAfterProcessPause(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	admin := zc.Admin(t)

	cmd := exec.Command(os.Args[0], "-test.run=^TestPausedHolderProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), pausedHolderEnv+"="+strings.Join(zc.Servers(), ",")+";"+root)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	resume, err := cmd.StdinPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	exited := false
	defer func() {
		if !exited {
			cmd.Process.Kill()
			for range lines {
			}
			cmd.Wait()
		}
	}()
	next := func(prefix string) string {
		t.Helper()
		timeout := time.After(zktesting.Timeout)
		for {
			select {
			case l, ok := <-lines:
				require.True(t, ok, "the holder process ended before printing %q", prefix)
				if rest, found := strings.CutPrefix(l, prefix); found {
					return rest
				}
			case <-timeout:
				t.Fatalf("the holder process did not print %q", prefix)
			}
		}
	}
	key := next("locked ")
	require.NoError(t, cmd.Process.Signal(syscall.SIGSTOP))
	waitGone(t, admin, root+key) // the server expired the paused holder's session
	// Written while the holder is stopped, the line is there to read the
	// moment it runs again, at the same time as its timers fire.
	_, err = resume.Write([]byte("resumed\n"))
	require.NoError(t, err)
	require.NoError(t, cmd.Process.Signal(syscall.SIGCONT))
	for _, check := range []string{"Err", "Done", "Context"} {
		assert.Equal(t, "lost", next(check+" "), "%s reports the loss at the first look after the pause", check)
	}
	assert.Equal(t, "deadline", next("Cause "), "a hold no one looked at ends with the loss deadline, not with the deletion its session's expiry caused")
	for range lines {
	}
	exited = true
	require.NoError(t, cmd.Wait())
}

// TestPausedHolderProcess is the holder of
// TestIntegration_HoldCheckedAfterProcessPause; it does nothing unless
// started by it.
func TestPausedHolderProcess(t *testing.T) {
	env := os.Getenv(pausedHolderEnv)
	if env == "" {
		t.Skip("runs only as the holder process of TestIntegration_HoldCheckedAfterProcessPause")
	}
	servers, root, _ := strings.Cut(env, ";")
	const timeout = 2 * time.Second
	ctx := bounded(t, zktesting.Timeout)
	s := connect(t, strings.Split(servers, ","), zklock.WithChroot(root), zklock.WithSessionTimeout(timeout))
	var ms []*zklock.Mutex
	for i := range 4 {
		m := zklock.NewMutex(s, fmt.Sprintf("/paused-%d", i))
		require.NoError(t, m.Lock(ctx))
		ms = append(ms, m)
	}
	fmt.Printf("locked %s\n", ms[0].Key())
	// The line comes once the test has paused this process past the
	// deadline; the first thing after it is a look at each hold, each
	// through another accessor.
	_, err := bufio.NewReader(os.Stdin).ReadString('\n')
	require.NoError(t, err)
	errLost := ms[0].Err() != nil
	doneLost := isClosed(ms[1].Done())
	ctxLost := ms[2].Context().Err() != nil
	lost := func(b bool) string {
		if b {
			return "lost"
		}
		return "held"
	}
	fmt.Printf("Err %s\nDone %s\nContext %s\n", lost(errLost), lost(doneLost), lost(ctxLost))
	// The fourth hold is not looked at: its end comes from the Session's
	// timer or from the notification of its node's deletion, which the
	// server sent as it expired the session and which waited in the socket
	// through the pause. Either way the cause is the deadline that passed
	// first.
	select {
	case <-ms[3].Done():
	case <-ctx.Done():
	}
	cause := "other"
	switch err := ms[3].Err(); {
	case errors.Is(err, zklock.ErrLossDeadline):
		cause = "deadline"
	case errors.Is(err, zklock.ErrNodeDeleted):
		cause = "deleted"
	}
	fmt.Printf("Cause %s\n", cause)
}

// An Election's errors reach its caller: Observe refuses an invalid path
// instead of retrying for ever, and a leader function's error ends Run
// (a nil return campaigns again); RunOnce leads once.
func TestIntegration_ElectionErrorsReachTheCaller(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	s := connect(t, zc.Servers(), zklock.WithChroot(root))
	ctx := bounded(t, zktesting.Timeout)

	for _, p := range []string{"", "x", "/x/", "/", "/a\x00b"} {
		obs, err := zklock.NewElection(s, p).Observe(ctx)
		assert.ErrorIs(t, err, zklock.ErrInvalidPath, "Observe(%q)", p)
		assert.Nil(t, obs)
		assert.ErrorIs(t, zklock.NewElection(s, p).Run(ctx, func(context.Context) error { return nil }), zklock.ErrInvalidPath, "Run(%q)", p)
	}

	// A Campaign that would fail again ends Run with its error.
	big := zklock.NewElection(s, "/big", zklock.WithValue(make([]byte, 2<<20)))
	assert.ErrorIs(t, big.Run(ctx, func(context.Context) error { return nil }), zklock.ErrTooLarge)

	// Run: nil campaigns again; an error while leading ends Run with it.
	e := zklock.NewElection(s, "/run")
	failed := errors.New("the leader's work failed")
	var terms []int64
	err := e.Run(ctx, func(context.Context) error {
		terms = append(terms, e.Token())
		if len(terms) < 3 {
			return nil
		}
		return failed
	})
	assert.ErrorIs(t, err, failed)
	assert.Len(t, terms, 3, "two nil returns campaigned again, the error ended Run")
	assert.IsIncreasing(t, terms, "each term is a new one")
	assert.ErrorIs(t, e.Err(), zklock.ErrNotLeader, "Run resigned before returning")

	// RunOnce: one term, fn's error or nil.
	calls := 0
	require.NoError(t, e.RunOnce(ctx, func(context.Context) error { calls++; return nil }))
	assert.ErrorIs(t, e.RunOnce(ctx, func(context.Context) error { calls++; return failed }), failed)
	assert.Equal(t, 2, calls)
	assert.ErrorIs(t, e.Err(), zklock.ErrNotLeader, "RunOnce resigned before returning")

	// RunOnce whose leadership is lost while fn runs reports the loss.
	admin := zc.Admin(t)
	err = e.RunOnce(ctx, func(lctx context.Context) error {
		zc.DeleteNode(t, root+e.Key())
		<-lctx.Done()
		return nil
	})
	assert.ErrorIs(t, err, zklock.ErrLeadershipLost)
	assert.ErrorIs(t, err, zklock.ErrNodeDeleted)
	waitChildren(t, admin, root+"/run", 0)
}

// A server that accepts connections and never answers costs a bounded
// handshake, not the connect or the hold, while another server is healthy.
func TestIntegration_HungServerInTheList(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	hung := zktest.HungServer(t)
	const timeout = 4 * time.Second // the servers' maximum

	// go-zookeeper shuffles the list: connect often enough that the hung
	// server comes first in some attempts.
	for i := range 6 {
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second) // under go-zookeeper's own 6.7 T wait
		s, err := zklock.Connect(ctx, []string{hung, zc.Servers()[0]}, zklock.WithChroot(root), zklock.WithSessionTimeout(timeout))
		cancel()
		require.NoError(t, err, "attempt %d: Connect with a hung server in the list", i)
		require.NoError(t, s.Close())
	}

	// A hold whose connection is reset survives the hung server tried next
	// (after the reset, go-zookeeper tries the next server in its list).
	ps := zc.NewProxies(t)
	for round := range 3 {
		s := connect(t, []string{hung, ps.Addrs()[0]}, zklock.WithChroot(root), zklock.WithSessionTimeout(timeout))
		sub := s.Subscribe()
		m := zklock.NewMutex(s, "/lock")
		ctx := bounded(t, zktesting.Timeout)
		require.NoError(t, m.Lock(ctx))
		waitState(t, sub, zklock.StateConnected)
		ps.Cut()
		waitState(t, sub, zklock.StateSuspended)
		waitState(t, sub, zklock.StateConnected)
		require.NoError(t, m.Err(), "round %d: the hold survives a reset with a hung server in the list", round)
		require.NoError(t, m.Unlock(ctx))
		sub.Stop()
		require.NoError(t, s.Close())
	}
}

// failWrites fails the first write of a frame with the given opcode after
// arm, once.
type failWrites struct {
	mu     sync.Mutex
	opcode int32 // 0: disarmed
	fired  chan struct{}
}

func (f *failWrites) arm(opcode int32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.opcode = opcode
}

func (f *failWrites) dial(network, addr string, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout(network, addr, timeout)
	if err != nil {
		return nil, err
	}
	return &failingWriter{Conn: c, f: f}, nil
}

type failingWriter struct {
	net.Conn
	f      *failWrites
	frames int
}

func (w *failingWriter) Write(p []byte) (int, error) {
	w.frames++
	// go-zookeeper writes each frame in one Write: length, xid, opcode, ...
	// The first frame is the connect request, which has no header.
	if w.frames > 1 && len(p) >= 12 && w.f.claim(int32(binary.BigEndian.Uint32(p[8:12]))) {
		w.Conn.Close()
		return 0, errors.New("injected write failure")
	}
	return w.Conn.Write(p)
}

// claim disarms f if opcode is the armed one.
func (f *failWrites) claim(opcode int32) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.opcode == 0 || f.opcode != opcode {
		return false
	}
	f.opcode = 0
	close(f.fired)
	return true
}

// A write that fails is completed once: neither the auth re-send after a
// reconnect nor an ordinary request leaves go-zookeeper blocked, so Close
// returns and nothing stays behind.
func TestIntegration_FailedWritesDoNotHang(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	const (
		opSetAuth     = 100
		opGetChildren = 12 // getChildren2, as Children sends
	)
	for _, tc := range []struct {
		name   string
		opcode int32
	}{
		{"auth re-send after a reconnect", opSetAuth},
		{"ordinary request", opGetChildren},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := zc.NewProxies(t)
			f := &failWrites{fired: make(chan struct{})}
			s, err := zklock.Connect(bounded(t, zktesting.Timeout), ps.Addrs(), zklock.WithChroot(root),
				zklock.WithDialer(f.dial), zklock.WithDigestAuth("user", "secret"))
			require.NoError(t, err)
			sub := s.Subscribe()
			defer sub.Stop()
			waitState(t, sub, zklock.StateConnected)
			f.arm(tc.opcode)
			if tc.opcode == opSetAuth {
				ps.Cut() // the reconnect re-sends the credentials
			} else {
				_, err := s.Children(bounded(t, zktesting.Timeout), "/")
				require.NoError(t, err, "the failed request is retried")
			}
			await(t, f.fired, "the injected write failure")
			m := zklock.NewMutex(s, "/lock")
			ctx := bounded(t, zktesting.Timeout)
			require.NoError(t, m.Lock(ctx), "the Session works after the failed write")
			require.NoError(t, m.Unlock(ctx))
			closed := make(chan struct{})
			go func() {
				s.Close()
				close(closed)
			}()
			await(t, closed, "Close")
		})
	}
}

// A request longer than the server's jute.maxbuffer is refused before it is
// sent, naming its size and the limit, for every kind of request that
// carries data; the largest accepted size is the one the server takes.
func TestIntegration_RequestsOverTheServersLimit(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	s := connect(t, zc.Servers(), zklock.WithChroot(root))
	ctx := bounded(t, zktesting.Timeout)
	big := make([]byte, 1100<<10)

	for _, tc := range []struct {
		name string
		err  error
	}{
		{"Mutex.Lock", zklock.NewMutex(s, "/lock", zklock.WithData(big)).Lock(ctx)},
		{"Mutex.TryLock", zklock.NewMutex(s, "/lock", zklock.WithData(big)).TryLock(ctx)},
		{"Election.Campaign", zklock.NewElection(s, "/election", zklock.WithValue(big)).Campaign(ctx)},
		{"Session.Create", s.Create(ctx, "/node", big, 0)},
		{"Session.Set", func() error { _, err := s.Set(ctx, "/node", big, -1); return err }()},
		{"Session.Multi", func() error {
			_, err := s.Multi(ctx, &zk.CreateRequest{Path: "/node", Data: big})
			return err
		}()},
	} {
		assert.ErrorIs(t, tc.err, zklock.ErrTooLarge, tc.name)
		if tc.err != nil {
			assert.Contains(t, tc.err.Error(), "1048575 bytes", "%s: the error names the limit", tc.name)
		}
	}
	assert.Empty(t, children(t, zc.Admin(t), root), "nothing was sent")

	// The boundary agrees with the server: the largest create the Session
	// lets through is accepted.
	const limit = 0xfffff
	// header, path, data, ACL count, one ACL (perms, scheme, id), flags
	overhead := 8 + 4 + len(root+"/edge") + 4 + 4 + (4 + 4 + len("world") + 4 + len("anyone")) + 4
	edge := make([]byte, limit-overhead+1)
	assert.ErrorIs(t, s.Create(ctx, "/edge", edge, 0), zklock.ErrTooLarge, "one byte over")
	// Sent anyway, by a client that does not check, the server drops the
	// connection.
	raw, _, err := zk.Connect(zc.Servers(), 10*time.Second, zk.WithLogger(quietLogger{}))
	require.NoError(t, err)
	_, err = raw.Create(root+"/edge", edge, 0, zk.WorldACL(zk.PermAll))
	raw.Close()
	assert.ErrorIs(t, err, zk.ErrConnectionClosed, "the server refuses one byte over")
	require.NoError(t, s.Create(ctx, "/edge", edge[1:], 0), "exactly at the limit")
	require.NoError(t, s.Delete(ctx, "/edge", -1))
}

// An ensemble that lost its data (here: a server restarted with an empty
// data directory) is detected when the next ZooKeeper session starts below
// the zxids seen before, and reported to subscribers: fencing tokens went
// backwards with it.
func TestIntegration_ZxidRegressionReported(t *testing.T) {
	integration(t)
	zc := zktesting.Start(t, 1) // a private server: its data is wiped
	logs := &recordingHandler{}
	s := connect(t, zc.Servers(), zklock.WithSessionTimeout(2*time.Second), zklock.WithLogger(slog.New(logs)))
	sub := s.Subscribe()
	defer sub.Stop()
	ctx := bounded(t, zktesting.Timeout)
	m := zklock.NewMutex(s, "/lock")
	for range 20 { // move the zxid well past what an empty server starts from
		require.NoError(t, m.Lock(ctx))
		require.NoError(t, m.Unlock(ctx))
	}
	before := m.Token()

	zc.StopServer(t, 0)
	zc.WipeData(t, 0)
	zc.StartServer(t, 0)
	waitState(t, sub, zklock.StateExpired)
	warned := waitState(t, sub, zklock.StateConnected)
	assert.ErrorIs(t, warned.Err, zklock.ErrZxidRegression, "subscribers learn the ensemble lost data with the new session's first change")
	assert.NotEmpty(t, logs.messages(), "and it is logged")

	require.NoError(t, m.Lock(ctx))
	assert.Less(t, m.Token(), before, "the fencing token went backwards, as reported")
	require.NoError(t, m.Unlock(ctx))
}

// poisonDialer drops the connection whenever a request whose bytes contain
// poison is written, as a server does with a request it refuses to parse.
type poisonDialer struct{ poison string }

func (d poisonDialer) dial(network, addr string, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout(network, addr, timeout)
	if err != nil {
		return nil, err
	}
	return &poisonConn{Conn: c, poison: []byte(d.poison)}, nil
}

type poisonConn struct {
	net.Conn
	poison []byte
}

func (c *poisonConn) Write(p []byte) (int, error) {
	if bytes.Contains(p, c.poison) {
		c.Conn.Close()
		return 0, errors.New("connection reset by the server")
	}
	return c.Conn.Write(p)
}

// A request that the connection drops under every time is not retried for
// ever, even with a context that never ends; the Session goes on working.
func TestIntegration_RequestThatDropsTheConnectionStops(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	s := connect(t, zc.Servers(), zklock.WithChroot(root), zklock.WithDialer(poisonDialer{"poison"}.dial))
	res := make(chan error, 1)
	go func() {
		_, err := s.Children(context.Background(), "/poison")
		res <- err
	}()
	err := await(t, res, "the poisoned request to give up")
	assert.ErrorIs(t, err, zk.ErrConnectionClosed)
	assert.Contains(t, err.Error(), "each of 5 attempts")
	_, err = s.Children(bounded(t, zktesting.Timeout), "/")
	assert.NoError(t, err, "other requests still work")
}

// Close returns whatever the connection is doing, and leaves no goroutine
// of go-zookeeper behind (goleak checks the package at the end).
func TestIntegration_CloseWhateverTheConnectionDoes(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	hung := zktest.HungServer(t)
	for _, tc := range []struct {
		name  string
		fault func(ps *zktesting.Proxies)
	}{
		{"healthy", func(*zktesting.Proxies) {}},
		{"blackholed", func(ps *zktesting.Proxies) { ps.Blackhole() }},
		{"reconnecting to a hung server", func(ps *zktesting.Proxies) { ps.Cut(); ps.Blackhole() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := zc.NewProxies(t)
			s, err := zklock.Connect(bounded(t, zktesting.Timeout), []string{ps.Addrs()[0], hung}, zklock.WithChroot(root),
				zklock.WithSessionTimeout(2*time.Second))
			require.NoError(t, err)
			m := zklock.NewMutex(s, "/lock")
			require.NoError(t, m.Lock(bounded(t, zktesting.Timeout)))
			tc.fault(ps)
			start := time.Now()
			closed := make(chan struct{})
			go func() {
				s.Close()
				close(closed)
			}()
			await(t, closed, "Close")
			t.Logf("Close took %v", time.Since(start))
			assert.True(t, isClosed(m.Done()))
			ps.Heal()
			// A close request that could not reach the server leaves the
			// node to the server's expiry of the session.
			waitChildren(t, zc.Admin(t), root+"/lock", 0)
		})
	}
}

// A server name that does not resolve is one failed dial, not a failed
// Connect, and not a failed reopening after expiry.
func TestIntegration_UnresolvableServerName(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	ps := zc.NewProxies(t)
	servers := []string{"zk-gone.invalid:2181", ps.Addrs()[0], "also-gone.invalid:2181"}
	for i := range 3 { // the order is random: let the bad names come first
		s, err := zklock.Connect(bounded(t, zktesting.Timeout), servers, zklock.WithChroot(root))
		require.NoError(t, err, "attempt %d", i)
		require.NoError(t, s.Close())
	}
	s := connect(t, servers, zklock.WithChroot(root), zklock.WithSessionTimeout(2*time.Second))
	sub := s.Subscribe()
	defer sub.Stop()
	waitState(t, sub, zklock.StateConnected)
	old := s.SessionID()
	expire(t, ps, sub)
	waitState(t, sub, zklock.StateConnected)
	assert.NotEqual(t, old, s.SessionID(), "a new ZooKeeper session was opened with the same list")
	m := zklock.NewMutex(s, "/lock")
	ctx := bounded(t, zktesting.Timeout)
	require.NoError(t, m.Lock(ctx))
	require.NoError(t, m.Unlock(ctx))
}

// A loss margin the granted timeout cannot fit is refused, saying what
// fits, never cut down: the server clamps the requested timeout to its
// maximum (4 s here), so asking for 30 s with a 3 s margin does not fit.
func TestIntegration_LossMarginCheckedAgainstGrantedTimeout(t *testing.T) {
	integration(t)
	zc := zktesting.Start(t, 1, zktesting.WithMaxSessionTimeout(4*time.Second))
	_, err := zklock.Connect(bounded(t, zktesting.Timeout), zc.Servers(),
		zklock.WithSessionTimeout(30*time.Second), zklock.WithLossMargin(3*time.Second))
	assert.ErrorIs(t, err, zklock.ErrInvalidOption)
	if err != nil {
		assert.Contains(t, err.Error(), "negotiated session timeout 4s")
		assert.Contains(t, err.Error(), "at least 6s")
	}
	s := connect(t, zc.Servers(), zklock.WithSessionTimeout(30*time.Second), zklock.WithLossMargin(2*time.Second))
	sub := s.Subscribe()
	defer sub.Stop()
	c := waitState(t, sub, zklock.StateConnected)
	assert.Equal(t, 4*time.Second, c.Timeout, "the change carries the granted timeout")
	assert.NotEmpty(t, c.Server)
	assert.NoError(t, c.Err)
}
