package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"

	"github.com/zklock/zklock"
)

const lockUsage = `Usage: zklock [global flags] lock [flags] PATH -- COMMAND [ARG...]

Waits for the lock at PATH, runs COMMAND while holding it, releases the lock
when COMMAND exits, and exits with COMMAND's status.

The lock is exclusive unless a flag says otherwise:
  --shared    take the read side of a read-write lock: any number of
              --shared runs hold PATH together, while a plain lock (a
              writer) waits for all of them and excludes them. The queue is
              fair: a reader waits for a writer queued ahead of it. Curator
              InterProcessReadWriteLock and kazoo ReadLock/WriteLock holders
              on PATH take part.
  --limit N   take one of N leases of a semaphore: at most N COMMANDs run
              at once across every "zklock lock --limit N PATH" (as
              "consul lock -n N"). Leases live under PATH/leases, waiters
              queue on PATH/locks, as Curator InterProcessSemaphoreV2 lays
              them out. Every holder of PATH must use the same N: ZooKeeper
              does not store it, so a larger N would exceed a smaller one.
Whichever it is, the hold is watched, fenced and released as described
below; "the lock" there means the read lock or the lease too.

COMMAND gets zklock's stdin, stdout and stderr, and in its environment:
  ZKLOCK_PATH   the lock path
  ZKLOCK_NODE   the lock (or lease) node this run holds
  ZKLOCK_TOKEN  the fencing token (decimal): it strictly increases across
                holders; pass it to the resource and reject lower ones

Processes: COMMAND runs in a process group of its own, as the child of a
small guardian process (zklock's own executable) that kills whatever
COMMAND started when zklock ends, however it ends: SIGKILL and the OOM
killer included. When COMMAND exits, what it left running gets SIGTERM,
then SIGKILL after --grace, before the lock is released. On Linux the
guardian is a child subreaper, so this also covers processes that left the
group (setsid, setpgid) and daemons that forked twice. Not covered:
processes handed to a service manager (systemd-run, at, a container
runtime) or started on other hosts, which were never COMMAND's
descendants; processes below a subreaper of their own inside COMMAND; off
Linux, processes that left the group. Being in a process group of its own,
COMMAND is not in the terminal's foreground: reading from the terminal
stops it (SIGTTIN), so zklock is not for interactive commands.

Signals: SIGHUP, SIGINT, SIGQUIT, SIGTERM and the other catchable
terminating signals (SIGUSR1, SIGUSR2, SIGPIPE, SIGALRM, SIGXCPU, SIGXFSZ,
SIGVTALRM) sent to zklock are forwarded to COMMAND's process group, which
gets --grace to exit before everything COMMAND started is killed; then the
lock is released and zklock exits with COMMAND's status. Further signals
are forwarded too. A signal ignored when zklock started (SIGHUP under nohup)
stays ignored, by COMMAND too.

If the lock is lost while COMMAND runs (session expiry, a connection down
too long, the node deleted by an operator), COMMAND's process group gets
SIGTERM, then everything COMMAND started gets SIGKILL after --grace, and
zklock exits 76.

Timing rule. Let T be the session timeout ZooKeeper granted: the server
clamps the one asked for (--session-timeout) to its minSessionTimeout and
maxSessionTimeout. A session cut off from the ZooKeeper leader declares the
lock lost at
  (send time of the last sync the leader answered, less recent answer gaps)
    + T - 0.225 T - (--grace + --loss-margin)
where 0.225 T allows for the leader's view lagging (see the zklock package
documentation). So everything COMMAND started is dead --loss-margin before
the leader could expire the session and hand the lock to anyone else. (An
operator deleting the node hands the lock over at once; COMMAND is stopped
as fast as it can be.) --grace plus --loss-margin must fit in T/2. zklock
checks this against the T granted to each ZooKeeper session it makes: at
start it exits 64 saying what fits; for a later session it stops and exits
64. It never shortens either one silently.

The rule also assumes T is at least 5 ticks of the servers' tickTime
(tickTime is 2s by default, so T >= 10s, the default). zklock asks the
server for its tickTime with the "conf" four-letter word and warns if T is
shorter; but servers answer "conf" only if 4lw.commands.whitelist allows it
(by default it allows "srvr" alone). Otherwise zklock warns only when the
server raised T to its minimum (2 ticks unless minSessionTimeout is set);
when the server grants what was asked, zklock cannot tell. Ask for 5 ticks
or more, or add (tickTime - T/5) to --loss-margin.

Flags:
  --timeout D      give up waiting after D and exit 75 (default: wait forever)
  --nonblock       do not wait: exit 75 at once if anyone holds or waits for the lock
                   (--shared: if a writer holds or waits; --limit: if no lease
                   is free, or another process is taking one)
  --shared         take the read lock (see above)
  --limit N        take one of N leases (see above)
  --grace D        time between SIGTERM and SIGKILL when COMMAND must stop
                   (default 2s, or T/2 - --loss-margin if less)
  --loss-margin D  how long before the earliest possible expiry everything
                   COMMAND started is dead: clock-rate differences between
                   hosts, network delay, the kill itself (default T/10)
  --data S         node data, shown by "zklock holders" (default host:pid)

Examples:
  zklock lock /locks/backup -- /usr/local/bin/backup --full
  zklock --servers zk1:2181,zk2:2181 lock --timeout 30s /locks/migrate -- ./migrate.sh
  zklock lock --nonblock /cron/report -- sh -c 'report --token "$ZKLOCK_TOKEN"'
  zklock --session-timeout 30s lock --grace 10s /locks/reindex -- ./reindex
  zklock lock --shared /locks/catalog -- ./read-catalog     # many at once, no writer
  zklock lock /locks/catalog -- ./rebuild-catalog           # the writer: alone
  zklock lock --limit 3 /pools/encoders -- ./encode "$FILE" # at most 3 at once
`

// hold is what lock runs COMMAND under: a Mutex (exclusive), an RWMutex's
// read side (--shared) or a Semaphore's lease (--limit).
type hold interface {
	Done() <-chan struct{}
	Err() error
	Key() string
	Token() int64
}

// holdMode is the shape of lock a run takes, with what it says in messages.
type holdMode struct {
	limit  int    // --limit N; 0 unless a lease
	shared bool   // --shared
	what   string // "lock", "read lock" or "lease"
}

// taker takes and releases one hold of mode on path.
type taker struct {
	take    func(ctx context.Context) error // Lock, or TryLock with --nonblock
	release func(ctx context.Context)       // gives back what take got
	held    func() hold                     // what take got; after take returned nil
}

// newTaker builds the recipe for mode on path.
func newTaker(s *zklock.Session, path string, mode holdMode, nonblock bool, opts []zklock.MutexOption) *taker {
	if mode.limit > 0 {
		sem := zklock.NewSemaphore(s, path, mode.limit, opts...)
		var lease *zklock.Lease
		return &taker{
			take: func(ctx context.Context) error {
				get := sem.Acquire
				if nonblock {
					get = sem.TryAcquire
				}
				l, err := get(ctx)
				if err == nil {
					lease = l
				}
				return err
			},
			release: func(ctx context.Context) { lease.Release(ctx) },
			held:    func() hold { return lease },
		}
	}
	var m *zklock.Mutex
	if mode.shared {
		m = zklock.NewRWMutex(s, path, opts...).Reader()
	} else {
		m = zklock.NewMutex(s, path, opts...)
	}
	take := m.Lock
	if nonblock {
		take = m.TryLock
	}
	return &taker{
		take:    take,
		release: func(ctx context.Context) { m.Unlock(ctx) },
		held:    func() hold { return m },
	}
}

// notFree says why --nonblock did not get mode's hold on path.
func (mode holdMode) notFree(path string) string {
	switch {
	case mode.limit > 0:
		return fmt.Sprintf("all %d leases of %s are held, or another process is taking one; not waiting (--nonblock)", mode.limit, path)
	case mode.shared:
		return fmt.Sprintf("lock %s is held or awaited by a writer; not waiting (--nonblock)", path)
	}
	return fmt.Sprintf("lock %s is held by another process; not waiting (--nonblock)", path)
}

func lockCmd(g *globals, args []string) error {
	fs := newFlags(g, "lock", lockUsage)
	timeout := fs.Duration("timeout", 0, "")
	nonblock := fs.Bool("nonblock", false, "")
	shared := fs.Bool("shared", false, "")
	limit := fs.Int("limit", 0, "")
	timingOf := timingFlags(fs)
	data := fs.String("data", "", "")
	path, argv, err := pathAndCommand(fs, args)
	if err != nil {
		return err
	}
	limitSet := false
	fs.Visit(func(f *flag.Flag) { limitSet = limitSet || f.Name == "limit" })
	switch {
	case *timeout < 0:
		return usagef("lock: --timeout %v must not be negative", *timeout)
	case *timeout > 0 && *nonblock:
		return usagef("lock: use --timeout or --nonblock, not both")
	case limitSet && *limit < 1:
		return usagef("lock: --limit %d must be at least 1", *limit)
	case limitSet && *shared:
		return usagef("lock: use --shared or --limit, not both")
	}
	mode := holdMode{limit: *limit, shared: *shared, what: "lock"}
	switch {
	case mode.limit > 0:
		mode.what = "lease"
	case mode.shared:
		mode.what = "read lock"
	}
	tm, err := timingOf()
	if err != nil {
		return err
	}

	sigs, stopSignals := signals()
	defer stopSignals()
	ctx := context.Background()
	s, grace, margin, err := connectHold(ctx, g, tm)
	if err != nil {
		return err
	}
	defer s.Close()
	wctx, stopWatch := watchTimeouts(ctx, s, tm, margin, g.stderr)
	defer stopWatch()
	var opts []zklock.MutexOption
	if *data != "" {
		opts = append(opts, zklock.WithData([]byte(*data)))
	}
	tk := newTaker(s, path, mode, *nonblock, opts)

	lctx := wctx
	if *timeout > 0 {
		var cancel context.CancelFunc
		lctx, cancel = context.WithTimeout(wctx, *timeout)
		defer cancel()
	}
	err = acquire(lctx, sigs, tk.take, func() { tk.release(context.Background()) })
	if err == nil {
		// The watch may not have seen the session the lock was taken in.
		if terr := checkSession(s, tm, margin, io.Discard); terr != nil {
			tk.release(ctx)
			err = terr
		}
	}
	var ee *exitError
	var te *timingError
	switch {
	case errors.As(err, &te):
		return &exitError{exitUsage, te.msg + "; COMMAND was not run"}
	case timingCause(wctx) != nil:
		return &exitError{exitUsage, timingCause(wctx).msg + "; COMMAND was not run"}
	case errors.As(err, &ee):
		return err // interrupted
	case errors.Is(err, zklock.ErrInvalidOption):
		return usagef("lock: %s", plain(err))
	case errors.Is(err, zklock.ErrLocked):
		return &exitError{exitNotAcquired, mode.notFree(path)}
	case errors.Is(err, context.DeadlineExceeded):
		return &exitError{exitNotAcquired, fmt.Sprintf("%s on %s not acquired within --timeout %v; try again later or raise --timeout", mode.what, path, *timeout)}
	case err != nil:
		return opError("lock", path, err)
	}

	h := tk.held()
	c, err := startChild(argv, []string{
		"ZKLOCK_PATH=" + path,
		"ZKLOCK_NODE=" + h.Key(),
		"ZKLOCK_TOKEN=" + strconv.FormatInt(h.Token(), 10),
	}, grace)
	if err != nil {
		tk.release(ctx)
		return cannotRun(argv[0], err)
	}
	if supervise(c, h.Done(), sigs, grace) == stoppedLost {
		cause := h.Err()
		tk.release(ctx)
		return &exitError{exitLost, fmt.Sprintf("lost %s %s while COMMAND ran (%s); COMMAND was stopped", mode.what, path, lossCause(cause))}
	}
	tk.release(ctx)
	return c.exitWith()
}
