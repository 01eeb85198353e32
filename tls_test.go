package zklock_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zklock/zklock"
	"github.com/zklock/zklock/internal/zktest"
)

// testCA makes a certificate authority and a server certificate for
// 127.0.0.1 signed by it, writes the server's key store (PKCS #8 key, then
// the certificate) and the CA's certificate as PEM files in dir, and
// returns their paths and a pool holding the CA.
func testCA(t *testing.T, dir string) (keyStore, trustStore string, pool *x509.CertPool) {
	t.Helper()
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "zklock test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	ca, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	require.NoError(t, err)
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)

	keyStore = filepath.Join(dir, "server.pem")
	trustStore = filepath.Join(dir, "ca.pem")
	ks := append(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	require.NoError(t, os.WriteFile(keyStore, ks, 0o600))
	require.NoError(t, os.WriteFile(trustStore, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600))
	pool = x509.NewCertPool()
	pool.AddCert(ca)
	return keyStore, trustStore, pool
}

// A Session over TLS to ZooKeeper's secure client port locks and unlocks;
// a certificate from an unknown authority is refused.
func TestIntegration_TLS(t *testing.T) {
	integration(t)
	dir := t.TempDir()
	ks, ts, pool := testCA(t, dir)
	zc := zktest.Start(t, 1, zktest.WithTLS(ks, ts))
	secure := zc.SecureServers(t)
	root := zc.Root(t)

	s := connect(t, secure, zklock.WithChroot(root), zklock.WithTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}))
	ctx := bounded(t, zktest.Timeout)
	m := zklock.NewMutex(s, "/lock")
	require.NoError(t, m.Lock(ctx))
	assert.Positive(t, m.Token())
	require.NoError(t, m.Unlock(ctx))

	_, _, other := testCA(t, t.TempDir())
	short, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	_, err := zklock.Connect(short, secure, zklock.WithTLS(&tls.Config{RootCAs: other}))
	require.Error(t, err, "a server whose certificate is not trusted")
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "certificate")
}
