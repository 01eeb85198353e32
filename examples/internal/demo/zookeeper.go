package demo

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/zklock/zklock"
	"github.com/zklock/zklock/internal/seqnode"
	"github.com/zklock/zklock/zktesting"
)

// ZooKeeper returns the servers to use and a function that stops any it
// started: given servers first (tests set them), then ZK_SERVERS, else a
// local server started through zktesting. It says which on con.
func ZooKeeper(ctx context.Context, given []string, con *Console) ([]string, func(), error) {
	if len(given) > 0 {
		con.Note("using ZooKeeper at %s", strings.Join(given, ","))
		return given, func() {}, nil
	}
	if v := os.Getenv(zktesting.EnvServers); strings.TrimSpace(v) != "" {
		con.Note("using %s=%s", zktesting.EnvServers, v)
	} else {
		con.Note("%s is unset: starting a local ZooKeeper server", zktesting.EnvServers)
	}
	sctx, cancel := context.WithTimeout(ctx, zktesting.Timeout)
	defer cancel()
	zc, err := zktesting.New(sctx, 1)
	if err != nil {
		return nil, nil, err
	}
	// The servers' own addresses: the demos put proxies of their own in
	// front of them.
	if zc.Controlled() {
		con.Note("local ZooKeeper serving on %s", zc.Direct()[0])
	}
	return zc.Direct(), func() { _ = zc.Close() }, nil
}

// Queue lists the contenders of the lock or election at path in queue
// order, as s sees them: each as "<node data> #<sequence number>". Other
// children of path are left out, and the order is the recipes' own, so it
// holds across the wrap of ZooKeeper's sequence counter.
func Queue(ctx context.Context, s *zklock.Session, path string) ([]string, error) {
	names, err := s.Children(ctx, path)
	if err != nil {
		return nil, err
	}
	var queue []string
	for _, n := range seqnode.Contenders(names, func(seqnode.Kind) bool { return true }) {
		data, _, err := s.Get(ctx, path+"/"+n.Name)
		if err != nil {
			data = []byte("(gone)") // left between the listing and the read
		}
		queue = append(queue, fmt.Sprintf("%s #%d", data, n.Seq))
	}
	return queue, nil
}

// TraceSession prints every state change of s after the current one, as
// changes of who's session, until ctx ends. A change to a new ZooKeeper
// session is followed by "; a new ZooKeeper session: " and then.
func TraceSession(ctx context.Context, con *Console, who string, s *zklock.Session, then string) {
	sub := s.Subscribe()
	defer sub.Stop()
	first, err := sub.Next(ctx) // the current state
	if err != nil {
		return
	}
	gen := first.Generation
	for {
		c, err := sub.Next(ctx)
		if err != nil {
			return
		}
		note := ""
		if c.State == zklock.StateConnected && c.Generation > gen {
			gen, note = c.Generation, "; a new ZooKeeper session: "+then
		}
		con.Event(c.Time, "%s session: %v%s", who, c, note)
	}
}
