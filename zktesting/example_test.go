package zktesting_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/zklock/zklock"
	"github.com/zklock/zklock/zktesting"
)

// A program, such as a demo, starts a server of its own with New; a test
// calls Start (or Shared) instead, which stops it with the test.
func ExampleNew() {
	ctx, cancel := context.WithTimeout(context.Background(), zktesting.Timeout)
	defer cancel()
	zc, err := zktesting.New(ctx, 1) // or the ZK_SERVERS servers, when set
	if err != nil {
		log.Fatal(err)
	}
	defer zc.Close()

	s, err := zklock.Connect(ctx, zc.Servers())
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	fmt.Println(s.State())
	// Output:
	// connected
}

// A client connected through its own proxies loses its session, and with
// it its locks, when the session is killed. In a test, zc.NewProxies(t)
// gives the proxies and ps.KillSession(t) kills the session.
func ExampleProxies_KillSessions() {
	ctx, cancel := context.WithTimeout(context.Background(), zktesting.Timeout)
	defer cancel()
	// servers are a test server's addresses (zktesting.SharedServers).
	ps, err := zktesting.OpenProxies(servers)
	if err != nil {
		log.Fatal(err)
	}
	defer ps.Close()

	s, err := zklock.Connect(ctx, ps.Addrs())
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	m := zklock.NewMutex(s, "/zktesting-examples/job")
	if err := m.Lock(ctx); err != nil {
		log.Fatal(err)
	}

	if err := ps.KillSessions(ctx); err != nil {
		log.Fatal(err)
	}
	select {
	case <-m.Done():
	case <-ctx.Done():
		log.Fatal("the hold outlived its session")
	}
	fmt.Println("lost:", errors.Is(m.Err(), zklock.ErrLockLost))
	fmt.Println("session expired:", errors.Is(m.Err(), zklock.ErrSessionExpired))
	// Output:
	// lost: true
	// session expired: true
}
