package zktesting_test

import (
	"crypto/tls"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zklock/zklock/zktesting"
)

func TestZKServers(t *testing.T) {
	integration(t)
	addr := zktesting.Shared(t).Direct()[0]
	t.Setenv(zktesting.EnvServers, addr)

	var sub *testing.T
	skipped := func(name string, fn func(t *testing.T)) bool {
		t.Run(name, func(t *testing.T) {
			sub = t
			fn(t)
		})
		return sub.Skipped()
	}
	assert.True(t, skipped("more servers than listed", func(t *testing.T) { zktesting.Start(t, 3) }))
	assert.True(t, skipped("configured servers", func(t *testing.T) {
		zktesting.Start(t, 1, zktesting.WithMaxSessionTimeout(time.Minute))
	}))
	assert.True(t, skipped("stop a server", func(t *testing.T) { zktesting.Start(t, 1).StopServer(t, 0) }))
	assert.True(t, skipped("TLS", func(t *testing.T) { zktesting.Start(t, 1).SecureServers(t) }))
	assert.False(t, skipped("use the listed server", func(t *testing.T) {
		zc := zktesting.Start(t, 1)
		assert.False(t, zc.Controlled())
		assert.Equal(t, []string{addr}, zc.Direct())
		assert.ErrorIs(t, zc.Stop(0), zktesting.ErrNoControl)
		c := dial(t, zc.Servers(), 10*time.Second)
		_, _, err := c.conn.Exists("/")
		require.NoError(t, err)
	}))

	_, err := zktesting.New(t.Context(), 1, zktesting.WithMaxSessionTimeout(time.Minute))
	assert.ErrorIs(t, err, zktesting.ErrNoControl)
	_, err = zktesting.New(t.Context(), 2)
	assert.ErrorContains(t, err, "ZK_SERVERS lists 1")
}

func TestNoZooKeeper(t *testing.T) {
	t.Setenv(zktesting.EnvServers, "")
	t.Setenv("ZOOKEEPER_HOME", t.TempDir()) // holds no release
	_, err := zktesting.New(t.Context(), 1)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "apt-get install zookeeper", "the error says how to install ZooKeeper")
	assert.Contains(t, err.Error(), "ZOOKEEPER_HOME")
}

func TestTLS(t *testing.T) {
	integration(t)
	if strings.TrimSpace(os.Getenv(zktesting.EnvServers)) != "" {
		t.Skip("starts servers of its own; " + zktesting.EnvServers + " is set")
	}
	keyStore, trustStore, pool := zktesting.TLSFiles(t, t.TempDir())
	zc := zktesting.Start(t, 1, zktesting.WithTLS(keyStore, trustStore))
	secure := zc.SecureServers(t)
	require.Len(t, secure, 1)
	dialTLS := func(network, addr string, timeout time.Duration) (net.Conn, error) {
		d := &net.Dialer{Timeout: timeout}
		return tls.DialWithDialer(d, network, addr, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	}
	conn, events, err := zk.Connect(secure, 10*time.Second, zk.WithDialer(dialTLS), zk.WithLogInfo(false), zk.WithLogger(quiet{}))
	require.NoError(t, err)
	defer conn.Close()
	c := client{conn, events}
	c.await(t, zk.StateHasSession)
	_, _, err = conn.Exists("/")
	require.NoError(t, err)
}
