package zklock_test

import (
	"context"
	"testing"

	"github.com/go-zookeeper/zk"

	"github.com/zklock/zklock"
	"github.com/zklock/zklock/internal/zktest"
)

// BenchmarkUncontended measures one acquire+release cycle on a free lock,
// for zklock's Mutex and for go-zookeeper's zk.Lock on the same server.
//
// Run: go test -run '^$' -bench Uncontended -benchtime 3s
func BenchmarkUncontended(b *testing.B) {
	if testing.Short() {
		b.Skip("needs ZooKeeper")
	}
	zc := zktest.Shared(b)
	root := zc.Root(b)
	ctx := context.Background()

	b.Run("zklock", func(b *testing.B) {
		s, err := zklock.Connect(ctx, zc.Direct())
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		m := zklock.NewMutex(s, root+"/zklock")
		b.ResetTimer()
		for range b.N {
			if err := m.Lock(ctx); err != nil {
				b.Fatal(err)
			}
			if err := m.Unlock(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("zk.Lock", func(b *testing.B) {
		conn := rawConn(b, zc.Direct())
		defer conn.Close()
		l := zk.NewLock(conn, root+"/zk", zk.WorldACL(zk.PermAll))
		b.ResetTimer()
		for range b.N {
			if err := l.Lock(); err != nil {
				b.Fatal(err)
			}
			if err := l.Unlock(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
