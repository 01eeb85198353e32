// Command session shows a zklock Session riding out faults: it connects to
// ZooKeeper through a local fault proxy, creates an ephemeral node, then cuts
// the connection (the session survives) and blackholes it past the session
// timeout (the session expires and a new one is opened), printing every
// state change as it happens.
//
// It uses the servers in ZK_SERVERS, or starts a local ZooKeeper from the
// zookeeper package (or ZOOKEEPER_HOME) when that is unset.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zklock/zklock"
	"github.com/zklock/zklock/internal/faultproxy"
	"github.com/zklock/zklock/internal/zkserver"
)

func main() {
	timeout := flag.Duration("session-timeout", 2*time.Second, "ZooKeeper session timeout to request")
	flag.Parse()
	log.SetFlags(0)
	if err := run(*timeout); err != nil {
		log.Fatalf("session demo: %v", err)
	}
}

func run(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	servers, stop, err := zookeeper(ctx)
	if err != nil {
		return err
	}
	defer stop()

	proxy, err := faultproxy.New(servers[0])
	if err != nil {
		return err
	}
	defer proxy.Close()

	start := time.Now()
	say := func(format string, args ...any) {
		fmt.Printf("%6.2fs  %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}

	s, err := zklock.Connect(ctx, []string{proxy.Addr()}, zklock.WithSessionTimeout(timeout))
	if err != nil {
		return err
	}
	defer s.Close()
	say("connected through proxy %s -> %s; negotiated timeout %v, loss deadline in %v",
		proxy.Addr(), servers[0], s.NegotiatedTimeout(), time.Until(s.LossDeadline()).Round(time.Millisecond))

	sub := s.Subscribe()
	defer sub.Stop()
	next := func(want zklock.State) error {
		for {
			c, err := sub.Next(ctx)
			if err != nil {
				return err
			}
			say("state: %v", c)
			if c.State == want {
				return nil
			}
		}
	}
	if err := next(zklock.StateConnected); err != nil {
		return err
	}

	node := fmt.Sprintf("/zklock-demo-%d", os.Getpid())
	if err := s.Create(ctx, node, []byte("hello"), zk.FlagEphemeral); err != nil {
		return err
	}
	say("created ephemeral node %s in session 0x%x", node, s.SessionID())

	say("cutting the connection: the session is suspended, then resumed")
	proxy.Cut()
	if err := next(zklock.StateSuspended); err != nil {
		return err
	}
	if err := next(zklock.StateConnected); err != nil {
		return err
	}
	ok, _, err := s.Exists(ctx, node)
	if err != nil {
		return err
	}
	say("node still there: %v", ok)

	say("blackholing the connection past the session timeout")
	proxy.Blackhole()
	if err := next(zklock.StateExpired); err != nil {
		return err
	}
	proxy.Heal()
	if err := next(zklock.StateConnected); err != nil {
		return err
	}
	// The old session's ephemeral node goes when the server expires it.
	for {
		ok, _, err := s.Exists(ctx, node)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	say("the expired session's ephemeral node is gone; now in session 0x%x", s.SessionID())

	s.Close()
	return next(zklock.StateClosed)
}

// zookeeper returns servers to use and a function that stops any it started.
func zookeeper(ctx context.Context) ([]string, func(), error) {
	return zkserver.Ensure(ctx, func(format string, args ...any) { fmt.Printf(format+"\n", args...) })
}
