package zktesting

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TLSFiles makes test certificates for WithTLS: a certificate authority,
// and a server certificate for 127.0.0.1 signed by it, both valid for an
// hour around now. It writes the server's key store (its PKCS #8 key, then
// its certificate) and the authority's certificate as PEM files in dir
// (t.TempDir() will do), and returns their paths, and a pool holding the
// authority for the clients' tls.Config RootCAs. It fails the test on
// error.
func TLSFiles(t testing.TB, dir string) (keyStore, trustStore string, pool *x509.CertPool) {
	t.Helper()
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "zktesting CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	must(t, err)
	ca, err := x509.ParseCertificate(caDER)
	must(t, err)

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	must(t, err)
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	must(t, err)

	keyStore = filepath.Join(dir, "server.pem")
	trustStore = filepath.Join(dir, "ca.pem")
	ks := append(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	must(t, os.WriteFile(keyStore, ks, 0o600))
	must(t, os.WriteFile(trustStore, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600))
	pool = x509.NewCertPool()
	pool.AddCert(ca)
	return keyStore, trustStore, pool
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("zktesting: TLS files: %v", err)
	}
}

// SecureServers returns the servers' TLS client addresses, "127.0.0.1:port"
// in server order, for a Cluster started with WithTLS; a client dials them
// with a tls.Config whose RootCAs holds the authority of TLSFiles. It skips
// the test with ZK_SERVERS set, and fails it if the servers serve no TLS
// port.
func (c *Cluster) SecureServers(t testing.TB) []string {
	t.Helper()
	c.RequireControl(t)
	var out []string
	for i := range c.local.Len() {
		a := c.local.SecureAddr(i)
		if a == "" {
			t.Fatal("zktesting: the servers serve no TLS port; start them WithTLS")
		}
		out = append(out, a)
	}
	return out
}
