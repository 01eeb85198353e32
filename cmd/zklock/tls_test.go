package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zklock/zklock/zktesting"
)

// TestIntegration_TLSFlags: --tls-ca (or $ZKLOCK_TLS_CA) connects to the
// servers' secure client port; a bad CA file is a usage error; a CA that
// did not sign the server's certificate cannot connect.
func TestIntegration_TLSFlags(t *testing.T) {
	integration(t)
	dir := t.TempDir()
	ks, ca, _ := zktesting.TLSFiles(t, dir)
	zc := zktesting.Start(t, 1, zktesting.WithTLS(ks, ca))
	secure := zc.SecureServers(t)[0]
	root := zc.Root(t)
	file := filepath.Join(t.TempDir(), "ran")

	p := start(t, "--tls-ca", ca, "--servers", secure+root, "lock", "/tls", "--", "touch", file)
	require.Equal(t, 0, p.wait(t), "stderr: %s", p.stderr.String())
	assert.FileExists(t, file)

	empty := filepath.Join(dir, "empty.pem")
	require.NoError(t, os.WriteFile(empty, nil, 0o600))
	p = start(t, "--tls-ca", empty, "--servers", secure, "holders", "/tls")
	assert.Equal(t, exitUsage, p.wait(t))
	assert.Contains(t, p.stderr.String(), "no PEM certificate")

	_, other, _ := zktesting.TLSFiles(t, t.TempDir())
	p = start(t, "--tls-ca", other, "--servers", secure, "--session-timeout", "4s", "holders", "/tls")
	assert.Equal(t, exitUnavailable, p.wait(t), "an untrusted server is not reached")
	assert.Contains(t, p.stderr.String(), "certificate")
}
