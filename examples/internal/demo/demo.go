// Package demo is the console and set-up plumbing the example programs
// share: flag parsing and exit status, a ZooKeeper to run against, a
// timestamped console, per-process fault proxies, a mutex to wait on, and a
// few formatting helpers. The zklock calls themselves stay in the programs.
package demo

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// Main parses the flags defined so far, then calls run with a context that
// ends on an interrupt. If run fails, Main prints the error prefixed with
// name and exits with status 1. about describes the program in its usage
// message; arguments that are not flags print that message and exit with
// status 2.
func Main(name, about string, run func(ctx context.Context) error) {
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage: %s [flags]\n\n%s\n"+
			"Uses the servers in ZK_SERVERS (host:port,...), or starts a local ZooKeeper.\n\nFlags:\n", name, about)
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}

// Sleep waits for d, reporting false if ctx ended first.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Ms formats d in whole milliseconds, so durations line up and compare at
// a glance.
func Ms(d time.Duration) string { return fmt.Sprintf("%dms", d.Round(time.Millisecond).Milliseconds()) }

// YesNo formats the outcome of a check, shouting a failure.
func YesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "NO"
}
