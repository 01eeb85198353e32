package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// acquire runs take (a Lock or a Campaign) until it returns, or until
// SIGINT or SIGTERM arrives: then it cancels take, gives back whatever take
// got with release, and reports the interruption.
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

// supervise waits for COMMAND to exit, forwarding SIGINT and SIGTERM to it,
// or for the hold to end first, in which case it stops COMMAND (SIGTERM,
// then SIGKILL after grace). It reports whether the hold ended first.
func supervise(c *child, held <-chan struct{}, sigs <-chan os.Signal, grace time.Duration) (lost bool) {
	for {
		select {
		case <-c.done:
			return false
		case sig := <-sigs:
			c.signal(sig.(syscall.Signal))
		case <-held:
			c.stop(grace)
			return true
		}
	}
}

// child is COMMAND, run in its own process group so that stopping it stops
// everything it started.
type child struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once it has exited
	err  error         // its Wait error; read after done
}

// startChild runs argv with zklock's stdio and extra environment. The
// child gets SIGKILL if zklock itself dies (Linux parent-death signal), so
// a killed zklock never leaves COMMAND running without the lock.
func startChild(argv, env []string) (*child, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, done: make(chan struct{})}
	// Owner: the child value. Ends when the process exits; every caller
	// waits on c.done before reading c.err.
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// signal sends sig to the child's process group.
func (c *child) signal(sig syscall.Signal) {
	_ = syscall.Kill(-c.cmd.Process.Pid, sig)
}

// stop sends SIGTERM to the process group, then SIGKILL if it has not
// exited after grace, and waits for it.
func (c *child) stop(grace time.Duration) {
	c.signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		c.signal(syscall.SIGKILL)
		<-c.done
	}
	// Reap stragglers the leader of the group left behind.
	c.signal(syscall.SIGKILL)
}

// status returns the child's exit status, shells' way: 128+N if killed by
// signal N.
func (c *child) status() int {
	<-c.done
	var ee *exec.ExitError
	if errors.As(c.err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	if c.err != nil {
		return exitSoftware
	}
	return 0
}

// exitWith turns the child's status into zklock's result.
func (c *child) exitWith() error {
	if st := c.status(); st != 0 {
		return &exitError{code: st}
	}
	return nil
}
