package zktesting

import (
	"time"

	"github.com/zklock/zklock/internal/zkserver"
)

// Timeout bounds every wait of the package: a server starting, a proxy
// cutting over, a session being closed. It is generous, because a loaded
// machine can take seconds to start a JVM; tests may use it for their own
// waits.
const Timeout = 60 * time.Second

// EnvServers names the environment variable that points the package at
// running servers (see the package doc).
const EnvServers = "ZK_SERVERS"

// Option adjusts the servers Start and New launch. An Option needs control
// of the server processes: with ZK_SERVERS set, Start skips the test and
// New fails with ErrNoControl.
type Option func(*serverConfig)

// serverConfig is what Options set.
type serverConfig struct{ zkserver.Config }

// WithMaxSessionTimeout sets the servers' maxSessionTimeout, the longest
// session timeout they grant (default 60s). The shortest is twice the
// servers' tick, 400ms.
func WithMaxSessionTimeout(d time.Duration) Option {
	return func(c *serverConfig) { c.MaxSessionTimeout = d }
}

// WithTLS makes every server serve a TLS client port too, besides the plain
// one (see Cluster.SecureServers). keyStore is the path of a PEM file
// holding the server's private key (PKCS #8) followed by its certificate
// chain; trustStore is the path of a PEM file of the certificates the
// server trusts. TLSFiles makes both for a test. Client certificates are
// not asked for.
func WithTLS(keyStore, trustStore string) Option {
	return func(c *serverConfig) { c.TLS = &zkserver.TLS{KeyStore: keyStore, TrustStore: trustStore} }
}
