package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/zklock/zklock"
)

const electUsage = `Usage: zklock [global flags] elect [flags] PATH -- COMMAND [ARG...]

Campaigns for leadership of PATH and runs COMMAND while leader. If
leadership is lost, COMMAND is stopped (SIGTERM, then SIGKILL after --grace,
with the same timing rule as "zklock lock") and zklock campaigns again,
until it is interrupted. If COMMAND exits by itself, zklock resigns and
exits with COMMAND's status.

COMMAND's environment has ZKLOCK_PATH, ZKLOCK_NODE, ZKLOCK_TOKEN (the term's
fencing token, decimal) and ZKLOCK_ID. COMMAND's processes and the
signals zklock handles are as for "zklock lock" (see "zklock lock --help"):
nothing COMMAND started outlives zklock, whatever ends it, or outlives the
term; a terminating signal is forwarded while COMMAND runs (then zklock
resigns and exits with COMMAND's status) and ends the campaign before
(exit 128+N).

The candidates' values are visible to "zklock leader PATH" and to Curator
LeaderLatch participants on the same path.

Flags:
  --id ID          this candidate's value (default host:pid)
  --grace D        time between SIGTERM and SIGKILL when COMMAND must stop
                   (default 2s, or T/2 - --loss-margin if less)
  --loss-margin D  how long before the earliest possible expiry everything
                   COMMAND started is dead (default T/10)

--grace, --loss-margin and --session-timeout follow the timing rule of
"zklock lock --help", checked against the session timeout T ZooKeeper
grants to each session.

Examples:
  zklock elect --id "$(hostname)" /services/scheduler/leader -- ./scheduler
  zklock --session-timeout 15s elect /jobs/reaper -- ./reaper --fence "$ZKLOCK_TOKEN"
`

func electCmd(g *globals, args []string) error {
	fs := newFlags(g, "elect", electUsage)
	host, _ := os.Hostname()
	id := fs.String("id", fmt.Sprintf("%s:%d", host, os.Getpid()), "")
	timingOf := timingFlags(fs)
	path, argv, err := pathAndCommand(fs, args)
	if err != nil {
		return err
	}
	if *id == "" {
		return usagef("elect: --id must not be empty")
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
	e := zklock.NewElection(s, path, zklock.WithValue([]byte(*id)))

	for {
		err := acquire(wctx, sigs, func(ctx context.Context) error { return e.Campaign(ctx) },
			func() { e.Resign(context.Background()) })
		if err == nil {
			// The watch may not have seen the session the term began in.
			if terr := checkSession(s, tm, margin, io.Discard); terr != nil {
				e.Resign(ctx)
				err = terr
			}
		}
		var ee *exitError
		var te *timingError
		switch {
		case errors.As(err, &te):
			return &exitError{exitUsage, te.msg + "; stopped campaigning"}
		case timingCause(wctx) != nil:
			return &exitError{exitUsage, timingCause(wctx).msg + "; stopped campaigning"}
		case errors.As(err, &ee):
			return err // interrupted
		case err != nil:
			return opError("elect", path, err)
		}

		c, err := startChild(argv, []string{
			"ZKLOCK_PATH=" + path,
			"ZKLOCK_NODE=" + e.Key(),
			"ZKLOCK_TOKEN=" + strconv.FormatInt(e.Token(), 10),
			"ZKLOCK_ID=" + *id,
		}, grace)
		if err != nil {
			e.Resign(ctx)
			return cannotRun(argv[0], err)
		}
		if supervise(c, e.Done(), sigs, grace) != stoppedLost {
			e.Resign(ctx)
			return c.exitWith()
		}
		fmt.Fprintf(g.stderr, "zklock: lost leadership of %s (%s); COMMAND was stopped; campaigning again\n", path, lossCause(e.Err()))
	}
}
