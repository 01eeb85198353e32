package zklock_test

import (
	"context"
	"testing"

	"github.com/go-zookeeper/zk"

	"github.com/zklock/zklock"
	"github.com/zklock/zklock/zktesting"
)

// BenchmarkUncontended measures one acquire+release cycle on a free lock,
// for zklock's Mutex and for go-zookeeper's zk.Lock on the same server.
//
// Run: go test -run '^$' -bench Uncontended -benchtime 3s
func BenchmarkUncontended(b *testing.B) {
	integration(b)
	zc := zktesting.Shared(b)
	root := zc.Root(b)
	ctx := context.Background()

	b.Run("zklock", func(b *testing.B) {
		m := zklock.NewMutex(connect(b, zc.Direct()), root+"/zklock")
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
		l := zk.NewLock(plainConn(b, zc.Direct()), root+"/zk", zk.WorldACL(zk.PermAll))
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
