package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/go-zookeeper/zk"

	"github.com/zklock/zklock"
	"github.com/zklock/zklock/internal/seqnode"
)

const leaderUsage = `Usage: zklock [global flags] leader PATH

Prints the value of the current leader of the election at PATH (zklock
elect, zklock's Election, or a Curator LeaderLatch). Exits 75 if there is
no leader.

Example:
  zklock leader /services/scheduler/leader
`

const holdersUsage = `Usage: zklock [global flags] holders PATH

Lists the contenders of the lock or election at PATH in queue order, the
holder (or leader) first: position, node name, owner session and node data.
Nodes of zklock, Curator (mutexes, read/write locks, leader latches), kazoo
and go-zookeeper are listed; other children are not.

Example:
  zklock holders /locks/backup
`

func onePath(g *globals, name, usage string, args []string) (string, error) {
	fs := newFlags(g, name, usage)
	if err := parseFlags(fs, args); err != nil {
		return "", err
	}
	if fs.NArg() != 1 {
		return "", usagef("%s: want exactly one PATH, got %d arguments", name, fs.NArg())
	}
	p := fs.Arg(0)
	if !strings.HasPrefix(p, "/") {
		return "", usagef("%s: PATH %q must be an absolute ZooKeeper path", name, p)
	}
	return p, nil
}

func leaderCmd(g *globals, args []string) error {
	path, err := onePath(g, "leader", leaderUsage, args)
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
	v, err := zklock.NewElection(s, path).Leader(ctx)
	switch {
	case errors.Is(err, zklock.ErrNoLeader):
		return &exitError{exitNotAcquired, fmt.Sprintf("no leader on %s", path)}
	case errors.Is(err, zklock.ErrInvalidPath):
		return usagef("leader: %v", err)
	case err != nil:
		return &exitError{exitUnavailable, fmt.Sprintf("leader %s: %v", path, err)}
	}
	fmt.Fprintf(g.stdout, "%s\n", v.Value)
	return nil
}

func holdersCmd(g *globals, args []string) error {
	path, err := onePath(g, "holders", holdersUsage, args)
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
	kids, err := s.Children(ctx, path)
	switch {
	case errors.Is(err, zk.ErrNoNode):
		kids = nil
	case errors.Is(err, zklock.ErrInvalidPath):
		return usagef("holders: %v", err)
	case err != nil:
		return &exitError{exitUnavailable, fmt.Sprintf("holders %s: %v", path, err)}
	}
	w := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "POS\tNODE\tSESSION\tDATA")
	pos := 0
	for _, n := range seqnode.Contenders(kids, func(seqnode.Kind) bool { return true }) {
		data, st, err := s.Get(ctx, strings.TrimSuffix(path, "/")+"/"+n.Name)
		if errors.Is(err, zk.ErrNoNode) {
			continue // gone since the listing
		}
		if err != nil {
			return &exitError{exitUnavailable, fmt.Sprintf("holders %s: %v", path, err)}
		}
		fmt.Fprintf(w, "%d\t%s\t0x%x\t%s\n", pos, n.Name, st.EphemeralOwner, printable(data))
		pos++
	}
	return w.Flush()
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
