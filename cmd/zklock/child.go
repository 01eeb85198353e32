package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// signals delivers the terminating signals sent to zklock (see
// terminating) that were not ignored when it started; stop releases them.
func signals() (<-chan os.Signal, func()) {
	ch := make(chan os.Signal, 8)
	signal.Notify(ch, catchable()...)
	return ch, func() { signal.Stop(ch) }
}

func interrupted(sig os.Signal) error {
	n := 0
	if s, ok := sig.(syscall.Signal); ok {
		n = int(s)
	}
	return &exitError{128 + n, fmt.Sprintf("interrupted by %v before COMMAND started", sig)}
}

// acquire runs take (a Lock or a Campaign) until it returns, or until a
// terminating signal arrives: then it cancels take, gives back whatever
// take got with release, and reports the interruption.
func acquire(ctx context.Context, sigs <-chan os.Signal, take func(context.Context) error, release func()) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	// Owner: acquire, which receives from done on both paths below.
	go func() { done <- take(ctx) }()
	select {
	case sig := <-sigs:
		cancel()
		if <-done == nil {
			release()
		}
		return interrupted(sig)
	case err := <-done:
		return err
	}
}

// outcome says how supervise ended.
type outcome int

const (
	exited      outcome = iota // COMMAND exited by itself
	stoppedLost                // the hold ended first; COMMAND was stopped
	stoppedSig                 // zklock got a terminating signal; COMMAND was stopped
)

// supervise waits for COMMAND and everything it started to exit. If the
// hold ends first (held closes), it stops them: SIGTERM, then SIGKILL after
// grace. A terminating signal sent to zklock is forwarded to COMMAND's
// process group, which then gets the same grace before SIGKILL; later
// signals are forwarded too.
func supervise(c *child, held <-chan struct{}, sigs <-chan os.Signal, grace time.Duration) outcome {
	var graceC <-chan time.Time
	for {
		select {
		case <-c.done:
			return exited
		case sig := <-sigs:
			c.signal(sig)
			if graceC == nil {
				t := time.NewTimer(grace)
				defer t.Stop()
				graceC = t.C
			}
		case <-graceC:
			c.kill()
			<-c.done
			return stoppedSig
		case <-held:
			c.stop(grace)
			return stoppedLost
		}
	}
}

// child is COMMAND run under a guardian (see guardianName): COMMAND is in
// a process group of its own, and closing lifeline, or zklock's death,
// makes the guardian kill everything COMMAND started.
type child struct {
	cmd      *exec.Cmd // the guardian
	lifeline *os.File  // write end; closed by kill
	pgid     int       // COMMAND's pid and process group
	done     chan struct{}
	err      error          // the guardian's Wait error; read after done
	killed   syscall.Signal // the signal that killed the guardian, if one did; read after done
}

// startErr is a COMMAND that could not be started.
type startErr struct {
	code int
	msg  string
}

func (e *startErr) Error() string { return e.msg }

// startChild runs argv under a guardian with zklock's stdio and extra
// environment. What COMMAND leaves running after it exits gets SIGTERM,
// then SIGKILL after grace; the child is done when all of it is gone.
func startChild(argv, env []string, grace time.Duration) (*child, error) {
	exe, err := selfExe()
	if err != nil {
		return nil, err
	}
	lr, lw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	rr, rw, err := os.Pipe()
	if err != nil {
		lr.Close()
		lw.Close()
		return nil, err
	}
	defer rr.Close()
	cmd := exec.Command(exe)
	cmd.Args = append([]string{guardianName, grace.String()}, argv...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), env...)
	cmd.ExtraFiles = []*os.File{lr, rw} // lifelineFD, reportFD
	// Its own group: signals for zklock's terminal reach zklock alone,
	// which decides what COMMAND gets.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	lr.Close()
	rw.Close()
	if err != nil {
		lw.Close()
		return nil, err
	}
	c := &child{cmd: cmd, lifeline: lw, done: make(chan struct{})}
	line, _ := bufio.NewReader(rr).ReadString('\n')
	kind, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
	if kind == "pid" {
		c.pgid, err = strconv.Atoi(rest)
	}
	if kind != "pid" || err != nil {
		lw.Close()
		werr := cmd.Wait()
		if kind == "error" {
			return nil, &startErr{cmd.ProcessState.ExitCode(), rest}
		}
		return nil, fmt.Errorf("%s: no report (%v)", guardianName, werr)
	}
	// Owner: the child value. Ends when the guardian exits, which it does
	// once COMMAND and all it started are gone; callers wait on c.done.
	go func() {
		c.err = cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			// The guardian was killed: COMMAND's group is left to us.
			c.killed = ws.Signal()
			_ = syscall.Kill(-c.pgid, syscall.SIGKILL)
		}
		c.lifeline.Close()
		close(c.done)
	}()
	return c, nil
}

// signal has the guardian forward sig to COMMAND's process group.
func (c *child) signal(sig os.Signal) {
	_ = c.cmd.Process.Signal(sig)
}

// kill has the guardian kill COMMAND and everything it started at once.
func (c *child) kill() {
	c.lifeline.Close()
}

// stop sends SIGTERM to COMMAND's process group, then kills everything
// COMMAND started if it has not all exited after grace, and waits.
func (c *child) stop(grace time.Duration) {
	c.signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		c.kill()
		<-c.done
	}
}

// status returns COMMAND's exit status, the shell's way: 128+N if killed
// by signal N.
func (c *child) status() int {
	<-c.done
	ps := c.cmd.ProcessState
	if ps == nil {
		return exitSoftware
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok {
		return shellStatus(ws)
	}
	return ps.ExitCode()
}

// exitWith turns COMMAND's status into zklock's result.
func (c *child) exitWith() error {
	if st := c.status(); c.killed != 0 {
		return &exitError{st, fmt.Sprintf("COMMAND's guardian process was killed (%v); COMMAND's process group was killed with it", c.killed)}
	} else if st != 0 {
		return &exitError{code: st}
	}
	return nil
}

// cannotRun reports a COMMAND that did not start: 127 if it was not found,
// 126 if it could not be executed, as shells do.
func cannotRun(name string, err error) error {
	var se *startErr
	if errors.As(err, &se) {
		return &exitError{se.code, fmt.Sprintf("cannot run %s: %s", name, se.msg)}
	}
	return &exitError{exitSoftware, fmt.Sprintf("cannot run %s: %v", name, err)}
}
