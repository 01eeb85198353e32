package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"syscall"
	"time"
)

// COMMAND does not run as zklock's child but as the child of a guardian:
// zklock's own executable, started again under the name guardianName. The
// guardian exists so that COMMAND cannot outlive zklock, whatever ends
// zklock (SIGKILL and the OOM killer included, which no handler in zklock
// sees):
//
//   - zklock holds the write end of a pipe, the lifeline, whose read end
//     only the guardian has. The kernel closes it when zklock exits, however
//     it exits; the guardian reads end-of-file and kills everything COMMAND
//     started with SIGKILL. zklock closes it itself to the same effect when
//     COMMAND must die at once (the grace after SIGTERM is over). A pipe
//     needs no parent-death signal, so there is no window before one takes
//     effect and no tie to the thread that forked.
//   - COMMAND runs in a process group of its own (its pid is the group's
//     id), which SIGTERM and SIGKILL reach as a whole.
//   - On Linux the guardian is a child subreaper (PR_SET_CHILD_SUBREAPER):
//     a descendant of COMMAND whose parent dies is reparented to the
//     guardian rather than to init, so a process that left the group
//     (setsid, setpgid) or a daemon that forked twice is still the
//     guardian's to kill and to reap. The guardian exits only once it has no
//     children left, so when zklock sees it exit, every such process is
//     gone.
//   - If the guardian itself is killed, zklock kills COMMAND's process
//     group; and COMMAND gets SIGKILL from its parent-death signal.
//
// What escapes: processes reparented to another subreaper below the
// guardian (a nested service manager or container runtime), and processes
// started through a service (systemd-run, at, ssh to another host), which
// were never COMMAND's descendants; off Linux, anything that left the group.
const guardianName = "zklock-guardian"

// The guardian's file descriptors besides stdio.
const (
	lifelineFD = 3 // read end of the lifeline: end-of-file means kill everything
	reportFD   = 4 // write end of the report: "pid N" or "error MSG", then closed
)

// terminating are the signals whose default action ends a process and that
// a handler can catch, apart from synchronous faults. zklock handles each
// one like SIGTERM: it is forwarded to COMMAND, which gets --grace to stop
// before its processes are killed, and the lock is released.
var terminating = []os.Signal{
	syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM,
	syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGPIPE, syscall.SIGALRM,
	syscall.SIGXCPU, syscall.SIGXFSZ, syscall.SIGVTALRM,
}

// catchable is terminating less the signals ignored when zklock started:
// under nohup, SIGHUP stays ignored, by zklock, the guardian and COMMAND
// alike, as the caller asked.
func catchable() []os.Signal {
	var out []os.Signal
	for _, s := range terminating {
		if !signal.Ignored(s) {
			out = append(out, s)
		}
	}
	return out
}

// guardian is the guardian's main: args are the grace period, then
// COMMAND's argv. It returns COMMAND's status, the shell's way (128+N for
// signal N).
func guardian(args []string) int {
	// COMMAND's parent-death signal belongs to the thread that forks it:
	// keep that thread for the life of the process.
	runtime.LockOSThread()
	lifeline := os.NewFile(lifelineFD, "lifeline")
	report := os.NewFile(reportFD, "report")
	syscall.CloseOnExec(lifelineFD)
	syscall.CloseOnExec(reportFD)
	if len(args) < 2 {
		fmt.Fprintf(report, "error %s: want GRACE COMMAND...\n", guardianName)
		return exitSoftware
	}
	grace, err := time.ParseDuration(args[0])
	if err != nil {
		fmt.Fprintf(report, "error %s: %v\n", guardianName, err)
		return exitSoftware
	}
	argv := args[1:]
	becomeSubreaper()

	// Caught, not ignored: COMMAND starts with default dispositions.
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, catchable()...)
	cut := make(chan struct{})
	go func() {
		// Owner: the guardian process; it ends with the pipe or the process.
		_, _ = io.Copy(io.Discard, lifeline)
		close(cut)
	}()

	path, err := exec.LookPath(argv[0])
	if err != nil {
		fmt.Fprintf(report, "error %v\n", err)
		return 127
	}
	select {
	case <-cut:
		return 128 + int(syscall.SIGKILL) // zklock is gone: COMMAND must not start
	default:
	}
	p, err := os.StartProcess(path, argv, &os.ProcAttr{
		Env:   os.Environ(),
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr},
		Sys:   commandAttr(),
	})
	if err != nil {
		fmt.Fprintf(report, "error %v\n", err)
		if errors.Is(err, os.ErrPermission) {
			return 126
		}
		return 127
	}
	fmt.Fprintf(report, "pid %d\n", p.Pid)
	report.Close()
	return reapAll(p.Pid, sigs, cut, grace)
}

// reaped is one child the guardian has waited for.
type reaped struct {
	pid    int
	status int
}

// reapAll forwards signals to COMMAND's group (pid pgid) while COMMAND
// runs; then gives what COMMAND left behind grace to exit after SIGTERM
// and kills the rest; or kills everything at once when cut closes. It
// returns COMMAND's status once the guardian has no children left.
func reapAll(pgid int, sigs <-chan os.Signal, cut <-chan struct{}, grace time.Duration) int {
	reaps := make(chan reaped)
	go func() {
		// Owner: the guardian process. Ends when no child is left.
		defer close(reaps)
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, 0, nil)
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			if err != nil {
				return // ECHILD: nothing left
			}
			reaps <- reaped{pid, shellStatus(ws)}
		}
	}()

	status := 128 + int(syscall.SIGKILL)
	var phase syscall.Signal // 0 while COMMAND runs, then SIGTERM, then SIGKILL
	signalled := map[int]bool{}
	sweep := func() {
		_ = syscall.Kill(-pgid, phase)
		for _, pid := range children() {
			if !signalled[pid] {
				signalled[pid] = true
				_ = syscall.Kill(pid, phase)
			}
		}
	}
	var graceC, tickC <-chan time.Time
	enter := func(sig syscall.Signal) {
		phase = sig
		clear(signalled)
		sweep()
		if tickC == nil {
			// Processes reparented to the guardian after a sweep get the
			// signal on a later one.
			tickC = time.NewTicker(20 * time.Millisecond).C
		}
	}
	for {
		select {
		case sig := <-sigs:
			if phase == 0 {
				_ = syscall.Kill(-pgid, sig.(syscall.Signal))
			}
		case <-cut:
			cut = nil
			graceC = nil
			enter(syscall.SIGKILL)
		case r, ok := <-reaps:
			switch {
			case !ok:
				return status
			case r.pid == pgid:
				status = r.status
				if phase == 0 {
					enter(syscall.SIGTERM)
					graceC = time.After(grace)
				}
			case phase != 0:
				sweep()
			}
		case <-graceC:
			graceC = nil
			enter(syscall.SIGKILL)
		case <-tickC:
			sweep()
		}
	}
}

// shellStatus is a wait status the shell's way: the exit code, or 128+N
// for a process killed by signal N.
func shellStatus(ws syscall.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}
