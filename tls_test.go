package zklock_test

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zklock/zklock"
	"github.com/zklock/zklock/zktesting"
)

// A Session over TLS to ZooKeeper's secure client port locks and unlocks;
// a certificate from an unknown authority is refused.
func TestIntegration_TLS(t *testing.T) {
	integration(t)
	dir := t.TempDir()
	ks, ts, pool := zktesting.TLSFiles(t, dir)
	zc := zktesting.Start(t, 1, zktesting.WithTLS(ks, ts))
	secure := zc.SecureServers(t)
	root := zc.Root(t)

	s := connect(t, secure, zklock.WithChroot(root), zklock.WithTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}))
	ctx := bounded(t, zktesting.Timeout)
	m := zklock.NewMutex(s, "/lock")
	require.NoError(t, m.Lock(ctx))
	assert.Positive(t, m.Token())
	require.NoError(t, m.Unlock(ctx))

	_, _, other := zktesting.TLSFiles(t, t.TempDir())
	short, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	_, err := zklock.Connect(short, secure, zklock.WithTLS(&tls.Config{RootCAs: other}))
	require.Error(t, err, "a server whose certificate is not trusted")
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "certificate")
}
