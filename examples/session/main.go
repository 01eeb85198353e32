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
	"os"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zklock/zklock"
	"github.com/zklock/zklock/examples/internal/demo"
	"github.com/zklock/zklock/zktesting"
)

func main() {
	timeout := flag.Duration("session-timeout", 2*time.Second, "ZooKeeper session timeout to request")
	demo.Main("session", "A Session rides out a cut connection and an expiry, printing every state change.",
		func(ctx context.Context) error { return run(ctx, *timeout) })
}

func run(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	con := demo.NewConsole(os.Stdout)

	servers, stop, err := demo.ZooKeeper(ctx, nil, con)
	if err != nil {
		return err
	}
	defer stop()

	proxies, err := zktesting.OpenProxies(servers[:1])
	if err != nil {
		return err
	}
	defer proxies.Close()
	proxy := proxies.Proxy(0)

	con.StartClock()
	say := func(format string, args ...any) { con.Event(time.Now(), format, args...) }

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
			con.Event(c.Time, "state: %v", c)
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
		if !demo.Sleep(ctx, 100*time.Millisecond) {
			return ctx.Err()
		}
	}
	say("the expired session's ephemeral node is gone; now in session 0x%x", s.SessionID())

	s.Close()
	return next(zklock.StateClosed)
}
