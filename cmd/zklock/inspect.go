package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/signal"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/go-zookeeper/zk"

	"github.com/zklock/zklock"
	"github.com/zklock/zklock/internal/seqnode"
)

const leaderUsage = `Usage: zklock [global flags] leader [--json] [--watch] PATH

Prints the value of the current leader of the election at PATH (zklock
elect, zklock's Election, or a Curator LeaderLatch). Exits 75 if there is
no leader, 66 if PATH does not exist.

Flags:
  --json    print {"value": ..., "node": ..., "token": ...} instead of the value
  --watch   keep printing: one line for each new leader, until interrupted
            (SIGINT, SIGTERM); times without a leader print nothing

Examples:
  zklock leader /services/scheduler/leader
  zklock leader --watch --json /services/scheduler/leader
`

const holdersUsage = `Usage: zklock [global flags] holders [--json] PATH

Lists the contenders of the lock, semaphore or election at PATH in queue
order, the holder (or leader) first: position, kind, node name, owner
session and node data. Nodes of zklock, Curator (mutexes, read/write locks,
semaphores, leader latches), kazoo and go-zookeeper are listed; other
children are not. A free lock prints the header alone; a PATH that does not
exist is an error (exit 66).

Kinds:
  write      an exclusive contender: "zklock lock", a Mutex, a write lock
  read       a shared contender: "zklock lock --shared", a read lock; the
             readers ahead of the first writer hold the lock together
  lease      a semaphore lease ("zklock lock --limit N"), under PATH/leases;
             they are listed first, in order, and the first N hold
  acquirer   a semaphore acquirer queued on PATH/locks: the first is taking
             a lease or waiting for one, the others wait their turn
  candidate  an election candidate ("zklock elect"); the first leads

Flags:
  --json    print a JSON array of {"pos", "kind", "node", "session", "data"}

Examples:
  zklock holders /locks/backup
  zklock holders --json /pools/encoders
`

// inspectArgs parses the flags and the one PATH of leader and holders.
func inspectArgs(fs *flags, args []string) (string, error) {
	name := fs.Name()
	pos, rest, err := parseArgs(fs, args, 1)
	if err != nil {
		return "", err
	}
	if len(pos) != 1 || len(rest) > 0 {
		return "", usagef("%s: want exactly one PATH, got %d arguments", name, len(pos)+len(rest))
	}
	if !strings.HasPrefix(pos[0], "/") {
		return "", usagef("%s: PATH %q must be an absolute ZooKeeper path", name, pos[0])
	}
	return pos[0], nil
}

// mustExist distinguishes a PATH that does not exist from a free one.
func mustExist(ctx context.Context, s *zklock.Session, name, path string) ([]string, error) {
	kids, err := s.Children(ctx, path)
	if err != nil {
		return nil, opError(name, path, err)
	}
	return kids, nil
}

// leaderJSON is one leader for --json.
type leaderJSON struct {
	Value string `json:"value"`
	Node  string `json:"node"`
	Token int64  `json:"token"`
}

func leaderCmd(g *globals, args []string) error {
	fs := newFlags(g, "leader", leaderUsage)
	asJSON := fs.Bool("json", false, "")
	watch := fs.Bool("watch", false, "")
	path, err := inspectArgs(fs, args)
	if err != nil {
		return err
	}
	print := func(t zklock.Term) error {
		if *asJSON {
			return json.NewEncoder(g.stdout).Encode(leaderJSON{string(t.Value), t.Key, t.Token})
		}
		_, err := fmt.Fprintf(g.stdout, "%s\n", t.Value)
		return err
	}
	ctx := context.Background()
	s, err := connect(ctx, g)
	if err != nil {
		return err
	}
	defer s.Close()
	rctx, cancel := context.WithTimeout(ctx, 2*g.sessionTimeout)
	defer cancel()
	if _, err := mustExist(rctx, s, "leader", path); err != nil {
		return err
	}
	e := zklock.NewElection(s, path)
	if !*watch {
		t, err := e.Leader(rctx)
		switch {
		case errors.Is(err, zklock.ErrNoLeader):
			return &exitError{exitNotAcquired, fmt.Sprintf("no leader on %s", path)}
		case err != nil:
			return opError("leader", path, err)
		}
		return print(t)
	}
	wctx, stop := signal.NotifyContext(ctx, catchable()...)
	defer stop()
	terms, err := e.Observe(wctx)
	if err != nil {
		return opError("leader", path, err)
	}
	for t := range terms {
		if err := print(t); err != nil {
			return &exitError{exitSoftware, fmt.Sprintf("leader: writing: %v", err)}
		}
	}
	return nil
}

// holderJSON is one contender for --json.
type holderJSON struct {
	Pos     int    `json:"pos"`
	Kind    string `json:"kind"`
	Node    string `json:"node"`
	Session string `json:"session"`
	Data    string `json:"data"`
}

func holdersCmd(g *globals, args []string) error {
	fs := newFlags(g, "holders", holdersUsage)
	asJSON := fs.Bool("json", false, "")
	path, err := inspectArgs(fs, args)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*g.sessionTimeout)
	defer cancel()
	s, err := connect(ctx, g)
	if err != nil {
		return err
	}
	defer s.Close()
	kids, err := mustExist(ctx, s, "holders", path)
	if err != nil {
		return err
	}
	rows := []holderJSON{}
	list := func(dir string, kids []string, kind func(seqnode.Kind) string) error {
		for _, n := range seqnode.Contenders(kids, func(seqnode.Kind) bool { return true }) {
			data, st, err := s.Get(ctx, strings.TrimSuffix(dir, "/")+"/"+n.Name)
			if errors.Is(err, zk.ErrNoNode) {
				continue // gone since the listing
			}
			if err != nil {
				return opError("holders", path, err)
			}
			rows = append(rows, holderJSON{len(rows), kind(n.Kind), n.Name, fmt.Sprintf("0x%x", st.EphemeralOwner), string(data)})
		}
		return nil
	}
	if !slices.Contains(kids, "leases") && !slices.Contains(kids, "locks") {
		if err := list(path, kids, kindName); err != nil {
			return err
		}
	} else {
		// A semaphore, in Curator's layout: leases, then the acquirers
		// queued on its internal lock. Either directory may be missing: the
		// library makes them as containers, which go when empty.
		for _, sub := range []struct {
			dir  string
			kind func(seqnode.Kind) string
		}{
			{"/leases", kindName},
			{"/locks", func(seqnode.Kind) string { return "acquirer" }},
		} {
			dir := strings.TrimSuffix(path, "/") + sub.dir
			subKids, err := s.Children(ctx, dir)
			if errors.Is(err, zk.ErrNoNode) {
				continue
			}
			if err != nil {
				return opError("holders", path, err)
			}
			if err := list(dir, subKids, sub.kind); err != nil {
				return err
			}
		}
	}
	if *asJSON {
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	w := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "POS\tKIND\tNODE\tSESSION\tDATA")
	for _, r := range rows {
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\n", r.Pos, r.Kind, r.Node, r.Session, printable([]byte(r.Data)))
	}
	return w.Flush()
}

// kindName is a contender's kind as holders prints it.
func kindName(k seqnode.Kind) string {
	switch k {
	case seqnode.Shared:
		return "read"
	case seqnode.Latch:
		return "candidate"
	case seqnode.Lease:
		return "lease"
	}
	return "write"
}

// printable shows node data on one line.
func printable(b []byte) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '.'
		}
		return r
	}, string(b))
}
