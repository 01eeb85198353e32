package zklock_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/zklock/zklock"
	"github.com/zklock/zklock/internal/zktest"
)

// servers stands for your ensemble's addresses, "zk1:2181,zk2:2181,...".
func servers() []string {
	addrs, err := zktest.Servers()
	if err != nil {
		log.Fatal(err)
	}
	return addrs
}

func ExampleMutex_Lock() {
	ctx := context.Background()
	s, err := zklock.Connect(ctx, servers())
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	m := zklock.NewMutex(s, "/examples/report-job")
	if err := m.Lock(ctx); err != nil {
		log.Fatal(err)
	}
	// The lock can be lost at any time: do the work under m.Context(), which
	// ends with the hold, and send m.Token() with every write so the
	// resource can reject a former holder's late writes.
	work := m.Context()
	fmt.Println("holding:", work.Err() == nil, "token > 0:", m.Token() > 0)

	if err := m.Unlock(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("after Unlock:", work.Err())
	// Output:
	// holding: true token > 0: true
	// after Unlock: context canceled
}

func ExampleMutex_TryLock() {
	ctx := context.Background()
	a, err := zklock.Connect(ctx, servers())
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()
	b, err := zklock.Connect(ctx, servers())
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()

	first := zklock.NewMutex(a, "/examples/nightly")
	second := zklock.NewMutex(b, "/examples/nightly")
	if err := first.TryLock(ctx); err != nil {
		log.Fatal(err)
	}
	// Someone else runs it: skip instead of queueing.
	err = second.TryLock(ctx)
	fmt.Println(errors.Is(err, zklock.ErrLocked))
	if err := first.Unlock(ctx); err != nil {
		log.Fatal(err)
	}
	// Output:
	// true
}

func ExampleSession_Subscribe() {
	ctx := context.Background()
	s, err := zklock.Connect(ctx, servers())
	if err != nil {
		log.Fatal(err)
	}
	sub := s.Subscribe()
	defer sub.Stop()

	s.Close()
	for {
		c, err := sub.Next(ctx)
		if err != nil {
			fmt.Println(err)
			break
		}
		fmt.Println(c.State)
	}
	// Output:
	// connected
	// closed
	// zklock: session closed
}
