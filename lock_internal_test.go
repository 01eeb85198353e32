package zklock

import (
	"context"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zklock/zklock/internal/seqnode"
	"github.com/zklock/zklock/internal/zktest"
	"github.com/zklock/zklock/zktesting"
)

// A node carrying our protected id but owned by another session must never
// be taken as ours when a create's outcome is unknown.
func TestIntegration_ProtectedCreateIgnoresForeignOwner(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test; needs ZooKeeper")
	}
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	admin := zc.Admin(t)
	ctx, cancel := context.WithTimeout(t.Context(), zktesting.Timeout)
	defer cancel()

	const id = "7d444840-9dc0-41f5-9e4a-4e2d5b1c6a3b"
	cut := zktest.NewCutter()
	s, err := Connect(ctx, zc.Servers(), WithChroot(root), WithDialer(cut.Dial), WithSessionTimeout(6*time.Second))
	require.NoError(t, err)
	defer s.Close()
	s.newID = func() string { return id }

	require.NoError(t, s.Create(ctx, "/lock", nil, 0))
	foreign, err := admin.Create(root+"/lock/"+seqnode.LockPrefix(id), nil, zk.FlagEphemeral|zk.FlagSequence, zk.WorldACL(zk.PermAll))
	require.NoError(t, err)
	foreignName := foreign[len(root+"/lock/"):]
	m := NewMutex(s, "/lock")

	for _, tc := range []struct {
		name string
		arm  func(string)
	}{
		{"reply lost", cut.DropReply},
		{"request lost", cut.DropRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.arm("-lock-")
			err := m.TryLock(ctx)
			assert.ErrorIs(t, err, ErrLocked, "the foreign node ahead of us is not ours")
			kids, _, err := admin.Children(root + "/lock")
			require.NoError(t, err)
			assert.Equal(t, []string{foreignName}, kids, "only the foreign node is left")
		})
	}
	select {
	case <-cut.Fired():
	default:
		t.Fatal("no connection was cut")
	}

	require.NoError(t, admin.Delete(foreign, -1))
	require.NoError(t, m.TryLock(ctx))
	require.NoError(t, m.Unlock(ctx))
	require.NoError(t, s.Delete(ctx, "/lock", -1))
	assert.Zero(t, s.pendingDuties())
}
