package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/zklock/zklock/internal/bench"
)

const benchUsage = `Usage: zklock [global flags] bench [flags]

Measures lock performance on a ZooKeeper ensemble and prints one table:
uncontended and contended locking, many locks on one session, a read-heavy
read-write lock (8 sessions, 90% reads), a semaphore (8 sessions, 3
leases), election failover, requests per acquisition, and the floor set by
raw ZooKeeper round trips and notifications; with --memory, also memory per waiting Lock
call. Latencies are percentiles of exact samples. Progress goes to standard
error.

Without --servers or $ZK_SERVERS it starts a local ZooKeeper (from
ZOOKEEPER_HOME or Debian's zookeeper package) and measures that. It writes
and deletes nodes under /zklock-bench-<pid>-<time>; run it on a test ensemble.

Flags:
  --duration D      measured time of each scenario, which bounds it (default 5s);
                    the run takes several times D, plus warm-ups
  --sessions N,...  contended scenario sizes (default 2,8,32)
  --baseline        also measure go-zookeeper's zk.Lock, with ratios
  --memory          also measure memory per waiting Lock call: queues 10,000
                    lock nodes on one path of the ensemble (20,000 with
                    --baseline), which takes about a minute per 10,000
  --json FILE       also write every figure, the ZooKeeper version, the
                    servers, the settings and the project's goals (see
                    BENCHMARKS.md) to FILE as JSON; with "-", write the JSON
                    to standard output and the table to standard error

Examples:
  zklock bench --baseline
  zklock bench --duration 2s --memory --json - > bench.json
  zklock --servers zk1:2181,zk2:2181,zk3:2181 bench --duration 10s --json bench.json
`

func benchCmd(g *globals, args []string) error {
	fs := newFlags(g, "bench", benchUsage)
	duration := fs.Duration("duration", bench.DefaultDuration, "")
	sessions := fs.String("sessions", "", "")
	baseline := fs.Bool("baseline", false, "")
	memory := fs.Bool("memory", false, "")
	jsonFile := fs.String("json", "", "")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *jsonFile == "" {
		// An empty --json= is a mistake, not "no JSON".
		fs.Visit(func(f *flag.Flag) {
			if f.Name == "json" {
				*jsonFile = "\x00"
			}
		})
		if *jsonFile != "" {
			return usagef("bench: --json needs a FILE, or - for standard output")
		}
	}
	if fs.NArg() != 0 {
		return usagef("bench: unexpected arguments %q", fs.Args())
	}
	if *duration <= 0 {
		return usagef("bench: --duration %v must be positive", *duration)
	}
	cfg := bench.Config{Duration: *duration, Baseline: *baseline, Memory: *memory, Progress: g.stderr}
	if *sessions != "" {
		for _, f := range strings.Split(*sessions, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 2 {
				return usagef("bench: --sessions %q: each size must be a number of at least 2", *sessions)
			}
			cfg.Sessions = append(cfg.Sessions, n)
		}
	}
	// Measure the servers named on the command line or in $ZK_SERVERS; with
	// neither, a local server started for the run.
	if g.serversSet {
		cfg.Servers = g.servers
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	r, err := bench.Run(ctx, cfg)
	if err != nil {
		return &exitError{exitSoftware, fmt.Sprintf("bench: %v", err)}
	}
	table := g.stdout
	if *jsonFile == "-" {
		table = g.stderr
	}
	if err := r.WriteTable(table); err != nil {
		return err
	}
	switch *jsonFile {
	case "":
	case "-":
		if err := r.WriteJSON(g.stdout); err != nil {
			return &exitError{exitSoftware, fmt.Sprintf("bench: writing JSON: %v", err)}
		}
	default:
		f, err := os.Create(*jsonFile)
		if err != nil {
			return &exitError{exitSoftware, fmt.Sprintf("bench: %v", err)}
		}
		defer f.Close()
		if err := r.WriteJSON(f); err != nil {
			return &exitError{exitSoftware, fmt.Sprintf("bench: writing %s: %v", *jsonFile, err)}
		}
	}
	return nil
}
