package zktesting_test

import (
	"context"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zklock/zklock/zktesting"
)

// integration skips the test under -short: it needs ZooKeeper.
func integration(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs ZooKeeper (-short)")
	}
}

// client is a plain go-zookeeper connection to servers, closed with the
// test, with its session events.
type client struct {
	conn   *zk.Conn
	events <-chan zk.Event
}

func dial(t *testing.T, servers []string, timeout time.Duration) client {
	t.Helper()
	conn, events, err := zk.Connect(servers, timeout, zk.WithLogInfo(false), zk.WithLogger(quiet{}))
	require.NoError(t, err)
	t.Cleanup(conn.Close)
	c := client{conn, events}
	c.await(t, zk.StateHasSession)
	return c
}

// await waits, at most zktesting.Timeout, for the client to report state.
func (c client) await(t *testing.T, state zk.State) {
	t.Helper()
	deadline := time.After(zktesting.Timeout)
	for {
		select {
		case ev := <-c.events:
			if ev.Type == zk.EventSession && ev.State == state {
				return
			}
		case <-deadline:
			t.Fatalf("client did not report %v within %v", state, zktesting.Timeout)
		}
	}
}

type quiet struct{}

func (quiet) Printf(string, ...any) {}

func TestStandalone(t *testing.T) {
	integration(t)
	zc := zktesting.Start(t, 1)
	require.Equal(t, 1, zc.Len())
	if zc.Controlled() {
		mode, err := zc.Mode(t.Context(), 0)
		require.NoError(t, err)
		assert.Equal(t, "standalone", mode)
	}
	root := zc.Root(t)
	c := dial(t, zc.Servers(), 10*time.Second)
	_, err := c.conn.Create(root+"/n", []byte("v"), 0, zk.WorldACL(zk.PermAll))
	require.NoError(t, err)
	data, _, err := zc.Admin(t).Get(root + "/n")
	require.NoError(t, err)
	assert.Equal(t, "v", string(data))
	require.NoError(t, c.conn.Delete(root+"/n", -1))
}

func TestEnsemble(t *testing.T) {
	integration(t)
	zc := zktesting.Start(t, 3)
	zc.RequireControl(t)
	require.Equal(t, 3, zc.Len())
	var modes []string
	for i := range zc.Len() {
		mode, err := zc.Mode(t.Context(), i)
		require.NoError(t, err)
		modes = append(modes, mode)
	}
	slices.Sort(modes)
	assert.Equal(t, []string{"follower", "follower", "leader"}, modes)

	// A write through one server is read through every other, once synced.
	root := zc.Root(t)
	w := dial(t, zc.Direct()[:1], 10*time.Second)
	_, err := w.conn.Create(root+"/n", []byte("v"), 0, zk.WorldACL(zk.PermAll))
	require.NoError(t, err)
	for _, addr := range zc.Direct()[1:] {
		r := dial(t, []string{addr}, 10*time.Second)
		_, err := r.conn.Sync(root + "/n")
		require.NoError(t, err)
		data, _, err := r.conn.Get(root + "/n")
		require.NoError(t, err)
		assert.Equal(t, "v", string(data), "read through %s", addr)
	}
	require.NoError(t, w.conn.Delete(root+"/n", -1))

	// A session killed through one server is closed on every server: the
	// client, connected to any of them, learns of it.
	ps := zc.NewProxies(t)
	c := dial(t, ps.Addrs(), 30*time.Second)
	ps.KillSession(t)
	c.await(t, zk.StateExpired)
}

func TestStopStartServer(t *testing.T) {
	integration(t)
	zc := zktesting.Start(t, 1)
	zc.RequireControl(t)
	admin := zc.Admin(t)
	_, err := admin.Create("/kept", []byte("v"), 0, zk.WorldACL(zk.PermAll))
	require.NoError(t, err)

	zc.StopServer(t, 0)
	_, err = net.DialTimeout("tcp", zc.Direct()[0], time.Second)
	require.Error(t, err, "a stopped server refuses connections")
	zc.StartServer(t, 0)
	data, _, err := admin.Get("/kept") // the admin connection reconnects
	require.NoError(t, err)
	assert.Equal(t, "v", string(data), "the server restarts with its data")

	zc.StopServer(t, 0)
	zc.WipeData(t, 0)
	zc.StartServer(t, 0)
	c := dial(t, zc.Direct(), 10*time.Second)
	ok, _, err := c.conn.Exists("/kept")
	require.NoError(t, err)
	assert.False(t, ok, "a wiped server restarts empty")

	// A paused server holds its connections and answers nothing.
	require.NoError(t, zc.Pause(0))
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	_, err = zc.Mode(ctx, 0)
	cancel()
	require.Error(t, err, "a paused server answers nothing")
	require.NoError(t, zc.Resume(0))
	mode, err := zc.Mode(t.Context(), 0)
	require.NoError(t, err)
	assert.Equal(t, "standalone", mode)
}

func TestCut(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	ps := zc.NewProxies(t)
	c := dial(t, ps.Addrs(), 10*time.Second)
	id := c.conn.SessionID()
	ps.Cut()
	c.await(t, zk.StateDisconnected)
	c.await(t, zk.StateHasSession)
	assert.Equal(t, id, c.conn.SessionID(), "the session survives a cut")
	assert.Equal(t, 0, zc.Index(ps.Addrs()[0]))
	assert.Equal(t, -1, zc.Index("127.0.0.1:1"))
}

func TestBlackholeHeal(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	ps := zc.NewProxies(t)
	// Long enough that the server keeps the session through the
	// partition, which go-zookeeper notices within two thirds of it.
	c := dial(t, ps.Addrs(), 10*time.Second)
	id := c.conn.SessionID()
	ps.Blackhole()
	c.await(t, zk.StateDisconnected)
	ps.Heal()
	c.await(t, zk.StateHasSession)
	assert.Equal(t, id, c.conn.SessionID())
	// Other clients of the server were not touched.
	_, _, err := zc.Admin(t).Exists("/")
	require.NoError(t, err)
}
