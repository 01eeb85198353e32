package chaos

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/zklock/zklock"
)

// A holder in a child process, which FaultClientPause stops (SIGSTOP) for
// longer than the session timeout and continues: a client process paused
// past its deadline, as by a long GC pause or a stopped VM. Nothing in the
// process runs while it is stopped, so its hold's Done cannot close on
// time; what must hold is that its first check after the pause already
// finds the hold lost. The child contends for the same Mutex as the other
// clients and reports each step on its standard output, one line each; the
// parent records them in the History as lock client childClient.
//
// The child acts as a holder only through its checks of the hold (the
// hold's context, as a writer would check it), every termWriteEvery; its
// hold's end is recorded at its last check that found the hold in place,
// since that was the last moment it acted as the holder. A check is timed
// before it is made when it finds the hold lost and after when it finds it
// held, so a pause around a check never moves it the lenient way.

const (
	envChild     = "ZKLOCK_CHAOS_CHILD" // the child's configuration, as JSON
	childPrefix  = "chaos-child "       // marks the protocol's lines among go test's
	childStopped = 30 * time.Second     // bounds the child's exit once told to stop
	childHoldMin = 100 * time.Millisecond
	childHoldMax = 1500 * time.Millisecond
)

// childClient is the child's client number among the lock clients.
const childClient = mutexClients

type childConfig struct {
	Servers []string
	Root    string
	Seed    uint64
}

// TestChaosChild is the child process's body: it does nothing unless run
// by the harness, with ZKLOCK_CHAOS_CHILD set. It holds and releases the
// lock until its standard input closes.
func TestChaosChild(t *testing.T) {
	v := os.Getenv(envChild)
	if v == "" {
		t.Skip("the chaos harness runs this in a child process")
	}
	var cfg childConfig
	if err := json.Unmarshal([]byte(v), &cfg); err != nil {
		t.Fatal(err)
	}
	out := &childOut{w: bufio.NewWriter(os.Stdout)}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go func() {
		// Owner: this test; ends when the parent closes our stdin, which
		// it does before waiting for us.
		_, _ = io.Copy(io.Discard, os.Stdin)
		stop()
	}()
	if err := childHolder(ctx, cfg, out); err != nil {
		t.Fatal(err)
	}
}

// childOut writes protocol lines; safe for concurrent use.
type childOut struct {
	mu sync.Mutex // guards w
	w  *bufio.Writer
}

func (o *childOut) send(kind string, at time.Time, fields ...string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	fmt.Fprintf(o.w, "%s%s %d %s\n", childPrefix, kind, at.UnixNano(), strings.Join(fields, " "))
	o.w.Flush()
}

func quoteErr(err error) string {
	if err == nil {
		return strconv.Quote("")
	}
	return strconv.Quote(err.Error())
}

func childHolder(ctx context.Context, cfg childConfig, out *childOut) error {
	cctx, cancel := context.WithTimeout(ctx, connectTimeout)
	s, err := zklock.Connect(cctx, cfg.Servers, zklock.WithChroot(cfg.Root),
		zklock.WithSessionTimeout(sessionTimeout))
	cancel()
	if err != nil {
		return err
	}
	sub := s.Subscribe()
	var states sync.WaitGroup
	// Owner: childHolder; ends when the Session closes, joined below.
	states.Go(func() {
		defer sub.Stop()
		for {
			ch, err := sub.Next(context.Background()) // fails once the Session is closed
			if err != nil {
				return
			}
			out.send("state", ch.Time, strconv.Quote(ch.String()))
		}
	})
	defer func() {
		s.Close()
		states.Wait()
	}()
	m := zklock.NewMutex(s, lockPath, zklock.WithData([]byte("child")))
	rng := rand.New(rand.NewPCG(cfg.Seed, 0xc41d))
	for ctx.Err() == nil {
		out.send("call", time.Now())
		err := m.Lock(ctx)
		at := time.Now()
		if err != nil {
			out.send("err", at, quoteErr(err))
			select {
			case <-time.After(50 * time.Millisecond):
			case <-ctx.Done():
			}
			continue
		}
		hold, done := m.Context(), m.Done()
		out.send("ok", at, strconv.FormatInt(m.Token(), 10), m.Key())
		until := at.Add(childHoldMin + time.Duration(rng.Int64N(int64(childHoldMax-childHoldMin))))
		lastHeld := at
		for {
			before := time.Now()
			lost := hold.Err() != nil
			after := time.Now()
			if lost {
				cause := context.Cause(hold)
				out.send("end", lastHeld, strconv.FormatInt(before.UnixNano(), 10), Cause(cause), quoteErr(cause))
				break
			}
			lastHeld = after
			if after.After(until) || ctx.Err() != nil {
				out.send("unlock", time.Now())
				break
			}
			select {
			case <-time.After(termWriteEvery):
			case <-done:
			}
		}
		uctx, cancel := context.WithTimeout(context.Background(), unlockTimeout)
		err = m.Unlock(uctx)
		cancel()
		if errors.Is(err, zklock.ErrNotLocked) {
			err = nil
		}
		out.send("unlocked", time.Now(), quoteErr(err))
	}
	return nil
}

// childProc is the parent's handle on the child.
type childProc struct {
	cmd    *exec.Cmd
	stdin  io.Closer
	exited chan struct{} // closed when the reader has seen the child's output end
	stderr bytes.Buffer  // go test's and the child's logs, shown on failure
	mu     sync.Mutex    // guards stopped
	// stopped is set while the child is stopped (SIGSTOP).
	stopped bool

	stopOnce sync.Once
	stopErr  error
}

// startChild starts the child holder on servers and records what it
// reports in the History.
func (r *rig) startChild(servers []string, seed uint64) (*childProc, error) {
	cfg, err := json.Marshal(childConfig{Servers: servers, Root: r.root, Seed: seed})
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestChaosChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), envChild+"="+string(cfg))
	c := &childProc{cmd: cmd, exited: make(chan struct{})}
	cmd.Stderr = &c.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	c.stdin = stdin
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	// Owner: the rig; ends when the child's output ends, at its exit (stop
	// waits for it).
	r.wg.Go(func() {
		defer close(c.exited)
		r.readChild(stdout)
	})
	return c, nil
}

// readChild turns the child's lines into History events, on this
// process's clock.
func (r *rig) readChild(stdout io.Reader) {
	sc := bufio.NewScanner(stdout)
	hold := 0
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), childPrefix)
		if !ok {
			continue
		}
		kind, rest, _ := strings.Cut(line, " ")
		nsText, rest, _ := strings.Cut(rest, " ")
		ns, err := strconv.ParseInt(nsText, 10, 64)
		if err != nil {
			r.t.Errorf("child: bad line %q", line)
			continue
		}
		at := r.childTime(ns)
		e := Event{At: at, Res: ResLock, Client: childClient}
		switch kind {
		case "state":
			e.Op, e.Note = OpState, unquote(rest)
		case "call":
			e.Op = OpLockCall
		case "err":
			e.Op, e.Err = OpLockErr, errors.New(unquote(rest))
		case "ok":
			tokenText, key, _ := strings.Cut(rest, " ")
			e.Token, _ = strconv.ParseInt(tokenText, 10, 64)
			e.Key = key
			hold = r.h.Begin(e)
			continue
		case "unlock":
			e.Op, e.Hold = OpUnlockCall, hold
			r.h.Add(e)
			e.Op, e.Err, e.Note = OpHoldEnd, zklock.ErrNotLocked, "released"
		case "end":
			observedText, rest, _ := strings.Cut(rest, " ")
			cause, msg, _ := strings.Cut(rest, " ")
			observed, _ := strconv.ParseInt(observedText, 10, 64)
			e.Op, e.Hold, e.Err = OpHoldEnd, hold, causeError(cause, unquote(msg))
			e.Note = fmt.Sprintf("last found held here; found lost %v later", r.childTime(observed).Sub(at))
		case "unlocked":
			e.Op, e.Hold = OpUnlockDone, hold
			if msg := unquote(rest); msg != "" {
				e.Err = errors.New(msg)
			}
			hold = 0
		default:
			continue
		}
		r.h.Add(e)
	}
}

// childTime converts the child's wall-clock time to one with this
// process's monotonic reading, so it compares with every other event.
func (r *rig) childTime(ns int64) time.Time {
	now := time.Now()
	return now.Add(time.Unix(0, ns).Sub(now.Round(0)))
}

func unquote(s string) string {
	if u, err := strconv.Unquote(s); err == nil {
		return u
	}
	return s
}

// causeError rebuilds an error that Cause names cause, with msg, the
// child's error, as its text.
func causeError(cause, msg string) error {
	sentinel := map[string]error{
		CauseLossDeadline:   zklock.ErrLossDeadline,
		CauseSessionExpired: zklock.ErrSessionExpired,
		CauseNodeDeleted:    zklock.ErrNodeDeleted,
		CauseSessionClosed:  zklock.ErrSessionClosed,
		CauseReleased:       zklock.ErrNotLocked,
	}[cause]
	if sentinel == nil {
		return errors.New(msg)
	}
	return &childError{msg: msg, cause: sentinel}
}

// childError is an error of the child: its text, and the sentinel it
// matched there.
type childError struct {
	msg   string
	cause error
}

func (e *childError) Error() string { return e.msg }
func (e *childError) Unwrap() error { return e.cause }

// pauseChild stops the child for length and continues it.
func (c *childProc) pauseChild(length time.Duration) error {
	if err := c.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		return fmt.Errorf("SIGSTOP the child: %w", err)
	}
	c.mu.Lock()
	c.stopped = true
	c.mu.Unlock()
	pause(length)
	c.mu.Lock()
	c.stopped = false
	c.mu.Unlock()
	if err := c.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		return fmt.Errorf("SIGCONT the child: %w", err)
	}
	return nil
}

// stop tells the child to release and exit, and waits for it, bounded; a
// child that does not exit is killed. It reports the child's failure, and
// is idempotent.
func (c *childProc) stop() error {
	c.stopOnce.Do(func() { c.stopErr = c.doStop() })
	return c.stopErr
}

func (c *childProc) doStop() error {
	c.mu.Lock()
	if c.stopped {
		_ = c.cmd.Process.Signal(syscall.SIGCONT)
	}
	c.mu.Unlock()
	c.stdin.Close()
	select {
	case <-c.exited:
	case <-time.After(childStopped):
		_ = c.cmd.Process.Kill()
		<-c.exited // the output ends with the process
		_ = c.cmd.Wait()
		return fmt.Errorf("the child did not exit within %v; killed:\n%s", childStopped, c.stderr.String())
	}
	if err := c.cmd.Wait(); err != nil {
		return fmt.Errorf("the child failed: %w\n%s", err, c.stderr.String())
	}
	return nil
}
