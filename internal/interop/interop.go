// Package interop runs Apache Curator (Java) and kazoo (Python) ZooKeeper
// clients as child processes driven by a line protocol, so integration tests
// can check that zklock and those libraries exclude each other on the same
// lock paths.
//
// Each peer prints "ready" once connected, then reads one command per stdin
// line and answers each with one stdout line; a failed command answers
// "error <command> <path>: <message>".
//
// Curator (see Curator.java):
//
//	lock <path>          -> locked <path> <lock node path>
//	unlock <path>        -> unlocked <path>
//	rlock <path>         -> rlocked <path> <read lock node path>
//	runlock <path>       -> runlocked <path>
//	wlock <path>         -> wlocked <path> <write lock node path>
//	wunlock <path>       -> wunlocked <path>
//	latch <path> <id>    -> latch-started <path>; later leader <path> or notleader <path>
//	latch-close <path>   -> latch-closed <path> (after notleader <path> if it led)
//	leader-id <path>     -> leader-id <path> <id or none>
//	sem-acquire <path> <n>     -> sem-acquired <path> <lease node path>
//	sem-release <path> <node>  -> sem-released <path> <node>
//	quit                 -> bye
//
// kazoo (see kazoo_peer.py):
//
//	lock <path> [id]     -> locked <path> <lock node path>
//	unlock <path>        -> unlocked <path>
//	rlock <path> [id]    -> rlocked <path> <lock node path>
//	runlock <path>       -> runlocked <path>
//	wlock <path> [id]    -> wlocked <path> <lock node path>
//	wunlock <path>       -> wunlocked <path>
//	quit                 -> bye
//
// rlock and wlock take the two sides of Curator's InterProcessReadWriteLock
// and of kazoo's ReadLock and WriteLock on the path. Curator's read-write
// lock queues with zklock's RWMutex because zklock names its nodes as
// Curator does; kazoo's locks see other libraries' nodes only through the
// extra_lock_patterns the peer passes ("-lock-", "__WRIT__" and, for a
// writer, "__READ__").
//
// sem-acquire takes a lease of Curator's InterProcessSemaphoreV2 with n
// leases on the path, waiting as long as it takes; sem-release returns the
// lease whose node sem-acquired named. An acquire waiting on a path leaves
// sem-release on the same path free.
//
// Replies to commands on different paths may arrive in any order, which is
// why Expect matches by prefix and keeps the lines it skipped.
package interop

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrNotInstalled is wrapped by the errors StartCurator and StartKazoo return
// when a runtime or library the peer needs is missing; the message names the
// Debian packages to install.
var ErrNotInstalled = errors.New("interop peer dependency not installed")

// Sizes of the line rings kept for error messages and of the stdout buffer.
const (
	historyLines = 20
	stderrLines  = 40
	lineBuffer   = 1024
	// backlogMax bounds the lines Expect keeps unconsumed; a peer that
	// chatters without anyone asking loses its oldest lines, not memory.
	backlogMax = 4096
)

// closeTimeout bounds how long Close waits for a peer to exit after quit.
const closeTimeout = 10 * time.Second

// Peer is a running Curator or kazoo peer process. Send, Kill and Close are
// safe for concurrent use; Expect and Do serialize with each other.
type Peer struct {
	name string
	cmd  *exec.Cmd

	sendMu sync.Mutex // serializes writes to stdin
	stdin  *os.File

	lines      chan string   // stdout lines; closed at stdout EOF
	stdoutDone chan struct{} // closed when the stdout reader returns
	stderrDone chan struct{} // closed when the stderr reader returns

	expectMu sync.Mutex // serializes Expect; guards backlog, history, eof
	backlog  []string   // lines read from lines but not yet matched
	history  ring       // every stdout line seen, for error messages
	eof      bool       // lines is closed and drained

	stderrMu   sync.Mutex // guards stderrTail
	stderrTail ring

	stopMu  sync.Mutex // serializes Close and Kill; guards stopped, stopErr
	stopped bool
	stopErr error
}

// start launches argv with stdin, stdout and stderr on pipes and waits for
// the peer's "ready" line.
func start(ctx context.Context, name, dir string, argv []string) (_ *Peer, err error) {
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("interop: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, fmt.Errorf("interop: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		outR.Close()
		outW.Close()
		return nil, fmt.Errorf("interop: %w", err)
	}

	// os.Pipe rather than cmd.StdoutPipe: exec then starts no goroutines of
	// its own, and Wait cannot close a pipe while a reader still drains it.
	// Not CommandContext: the peer must outlive the ctx given to Start.
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Own process group, so Kill reaches anything the peer spawns.
		Setpgid: true,
		// A dying test binary takes the peer with it.
		Pdeathsig: syscall.SIGKILL,
	}
	startErr := cmd.Start()
	// Only the child holds these ends now, so the readers see EOF when it
	// exits and the peer sees EOF on stdin when inW is closed.
	inR.Close()
	outW.Close()
	errW.Close()
	if startErr != nil {
		inW.Close()
		outR.Close()
		errR.Close()
		return nil, fmt.Errorf("interop: starting %s: %w", name, startErr)
	}

	p := &Peer{
		name:       fmt.Sprintf("%s peer (pid %d)", name, cmd.Process.Pid),
		cmd:        cmd,
		stdin:      inW,
		lines:      make(chan string, lineBuffer),
		stdoutDone: make(chan struct{}),
		stderrDone: make(chan struct{}),
		history:    ring{lines: make([]string, historyLines)},
		stderrTail: ring{lines: make([]string, stderrLines)},
	}
	// Owner: p; ends at stdout EOF (the peer exited or was killed); joined
	// by Close and Kill via stdoutDone.
	go func() {
		defer close(p.stdoutDone)
		defer close(p.lines)
		defer outR.Close()
		readLines(outR, func(l string) { p.lines <- l })
	}()
	// Owner: p; ends at stderr EOF; joined by Close and Kill via stderrDone.
	go func() {
		defer close(p.stderrDone)
		defer errR.Close()
		readLines(errR, func(l string) {
			p.stderrMu.Lock()
			p.stderrTail.add(l)
			p.stderrMu.Unlock()
		})
	}()

	defer func() {
		if err != nil {
			_ = p.Kill()
		}
	}()
	if _, err := p.Expect(ctx, "ready"); err != nil {
		return nil, fmt.Errorf("interop: starting %s: %w", name, err)
	}
	return p, nil
}

// readLines calls fn for every line of r, without its line ending, until EOF.
func readLines(r *os.File, fn func(string)) {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			fn(strings.TrimRight(line, "\r\n"))
		}
		if err != nil {
			return
		}
	}
}

// String names the peer and its process id.
func (p *Peer) String() string { return p.name }

// Send writes cmd as one line to the peer's stdin.
func (p *Peer) Send(cmd string) error {
	if strings.ContainsAny(cmd, "\r\n") {
		return fmt.Errorf("interop: %s: command %q spans lines", p.name, cmd)
	}
	p.sendMu.Lock()
	defer p.sendMu.Unlock()
	if _, err := p.stdin.WriteString(cmd + "\n"); err != nil {
		return fmt.Errorf("interop: %s: sending %q: %w", p.name, cmd, err)
	}
	return nil
}

// Expect returns the first unconsumed stdout line that starts with prefix,
// waiting for it if needed. Lines that do not match are kept, in order, for
// later calls, so replies can be awaited in any order.
//
// An "error ..." line from the peer ends the wait with an error quoting it,
// unless prefix itself starts with "error": a failed command never sends
// the reply being waited for. If ctx ends first, the error wraps ctx.Err()
// and quotes the last lines seen; if the peer exits, the error quotes the
// tail of its stderr.
func (p *Peer) Expect(ctx context.Context, prefix string) (string, error) {
	p.expectMu.Lock()
	defer p.expectMu.Unlock()
	wantErr := strings.HasPrefix(prefix, "error")
	for i, l := range p.backlog {
		if strings.HasPrefix(l, prefix) || (!wantErr && strings.HasPrefix(l, "error ")) {
			p.backlog = append(p.backlog[:i], p.backlog[i+1:]...)
			return p.matched(prefix, l)
		}
	}
	for {
		if p.eof {
			return "", p.exitError(ctx, prefix)
		}
		select {
		case l, ok := <-p.lines:
			if !ok {
				p.eof = true
				continue
			}
			p.history.add(l)
			if strings.HasPrefix(l, prefix) || (!wantErr && strings.HasPrefix(l, "error ")) {
				return p.matched(prefix, l)
			}
			p.keep(l)
		case <-ctx.Done():
			return "", fmt.Errorf("interop: %s: waiting for %q: %w; last lines: %s",
				p.name, prefix, ctx.Err(), quoteLines(p.history.last(historyLines)))
		}
	}
}

// matched returns l as Expect's result, or an error if it is an error line
// that stands in for the reply.
func (p *Peer) matched(prefix, l string) (string, error) {
	if strings.HasPrefix(l, prefix) {
		return l, nil
	}
	return "", fmt.Errorf("interop: %s: waiting for %q: peer reported %q", p.name, prefix, l)
}

// exitError describes the peer's exit while Expect waited for prefix. The
// stderr tail is complete only once its reader hit EOF, which follows the
// exit closely; ctx still bounds the wait for it.
func (p *Peer) exitError(ctx context.Context, prefix string) error {
	select {
	case <-p.stderrDone:
	case <-ctx.Done():
	}
	return fmt.Errorf("interop: %s exited while waiting for %q; last lines: %s; stderr: %s",
		p.name, prefix, quoteLines(p.history.last(historyLines)), p.stderr())
}

// Pending returns the stdout lines received but not consumed by Expect,
// oldest first, after taking in whatever the peer has written so far. Tests
// use it to check that a line did not arrive before some later reply.
func (p *Peer) Pending() []string {
	p.expectMu.Lock()
	defer p.expectMu.Unlock()
	for !p.eof {
		select {
		case l, ok := <-p.lines:
			if !ok {
				p.eof = true
				continue
			}
			p.history.add(l)
			p.keep(l)
			continue
		default:
		}
		break
	}
	return append([]string(nil), p.backlog...)
}

// keep adds l to the backlog; expectMu is held.
func (p *Peer) keep(l string) {
	if len(p.backlog) == backlogMax {
		p.backlog = p.backlog[1:]
	}
	p.backlog = append(p.backlog, l)
}

// Do sends cmd and returns the reply line starting with replyPrefix, as
// Send followed by Expect.
func (p *Peer) Do(ctx context.Context, cmd, replyPrefix string) (string, error) {
	if err := p.Send(cmd); err != nil {
		return "", err
	}
	return p.Expect(ctx, replyPrefix)
}

// Kill sends SIGKILL to the peer's process group and waits for it and the
// goroutines reading its output. The peer gets no chance to clean up, so its
// ZooKeeper session lives on until the server expires it. Kill after Close
// or Kill returns the earlier result.
func (p *Peer) Kill() error {
	p.stopMu.Lock()
	defer p.stopMu.Unlock()
	if p.stopped {
		return p.stopErr
	}
	p.stopped = true
	p.stopErr = p.kill()
	return p.stopErr
}

// kill does Kill's work; stopMu is held.
func (p *Peer) kill() error {
	var err error
	if kerr := syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL); kerr != nil && !errors.Is(kerr, syscall.ESRCH) {
		err = fmt.Errorf("interop: %s: kill: %w", p.name, kerr)
	}
	p.reap()
	return err
}

// reap drains stdout so its reader can finish, then joins both readers and
// the process. It returns cmd.Wait's result.
func (p *Peer) reap() error {
	for range p.lines {
	}
	<-p.stdoutDone
	<-p.stderrDone
	p.sendMu.Lock()
	p.stdin.Close()
	p.sendMu.Unlock()
	return p.cmd.Wait()
}

// Close asks the peer to quit, which releases its locks and latches and
// closes its session, and waits up to 10s for it to exit before killing it.
// It returns nil if the peer exited with status 0 or was already stopped by
// Kill. Close is idempotent, and when it returns no goroutine or process
// started for p is left.
func (p *Peer) Close() error {
	p.stopMu.Lock()
	defer p.stopMu.Unlock()
	if p.stopped {
		return p.stopErr
	}
	p.stopped = true
	p.stopErr = p.close()
	return p.stopErr
}

// close does Close's work; stopMu is held.
func (p *Peer) close() error {
	// A failed Send means the peer is gone already; reap reports how.
	_ = p.Send("quit")
	// Closing stdin is a second quit signal for a peer that missed the line.
	p.sendMu.Lock()
	p.stdin.Close()
	p.sendMu.Unlock()

	timer := time.NewTimer(closeTimeout)
	defer timer.Stop()
	var killed bool
wait:
	for {
		select {
		case _, ok := <-p.lines:
			if !ok {
				break wait
			}
		case <-timer.C:
			killed = true
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			break wait
		}
	}
	werr := p.reap()
	switch {
	case killed:
		return fmt.Errorf("interop: %s did not exit within %v of quit and was killed; stderr: %s",
			p.name, closeTimeout, p.stderr())
	case werr != nil:
		return fmt.Errorf("interop: %s: %w; stderr: %s", p.name, werr, p.stderr())
	}
	return nil
}

// stderr returns the kept tail of the peer's stderr, quoted for a message.
func (p *Peer) stderr() string {
	p.stderrMu.Lock()
	defer p.stderrMu.Unlock()
	return quoteLines(p.stderrTail.last(stderrLines))
}

func quoteLines(ls []string) string {
	if len(ls) == 0 {
		return "(none)"
	}
	return fmt.Sprintf("%q", ls)
}

// ring keeps the last len(lines) lines added.
type ring struct {
	lines []string
	next  int
	full  bool
}

func (r *ring) add(l string) {
	r.lines[r.next] = l
	r.next = (r.next + 1) % len(r.lines)
	r.full = r.full || r.next == 0
}

// last returns up to n of the most recent lines, oldest first.
func (r *ring) last(n int) []string {
	var all []string
	if r.full {
		all = append(all, r.lines[r.next:]...)
	}
	all = append(all, r.lines[:r.next]...)
	if len(all) > n {
		all = all[len(all)-n:]
	}
	return all
}
