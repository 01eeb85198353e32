package zklock

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/go-zookeeper/zk"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/zklock/zklock/internal/znode"
)

// SessionOption configures a Session. An invalid value makes Connect return an
// error wrapping ErrInvalidOption that names it.
type SessionOption func(*sessionConfig)

type sessionConfig struct {
	timeout time.Duration
	margin  time.Duration // 0: a tenth of the negotiated timeout
	logger  *slog.Logger
	backoff Backoff
	auth    []string // digest credentials, "user:password"
	acl     []zk.ACL
	chroot  string
	dialer  zk.Dialer
	maxBuf  int // the servers' jute.maxbuffer, in bytes
	tls     *tls.Config
	meters  metric.MeterProvider
	tracers trace.TracerProvider
	errs    []error
}

func defaultConfig() sessionConfig {
	return sessionConfig{
		timeout: 10 * time.Second,
		logger:  slog.New(slog.DiscardHandler),
		backoff: DefaultBackoff(),
		acl:     zk.WorldACL(zk.PermAll),
		dialer:  net.DialTimeout,
		maxBuf:  defaultJuteMaxBuffer,
	}
}

func (c *sessionConfig) invalid(format string, args ...any) {
	c.errs = append(c.errs, errorf("%w: "+format, append([]any{ErrInvalidOption}, args...)...))
}

// WithSessionTimeout sets the session timeout requested from ZooKeeper. The
// server clamps it to its [minSessionTimeout, maxSessionTimeout] range
// (by default 2 to 20 ticks); the Session works with the negotiated value.
// The default is 10s.
func WithSessionTimeout(d time.Duration) SessionOption {
	return func(c *sessionConfig) {
		if d <= 0 {
			c.invalid("session timeout %v must be > 0", d)
		}
		c.timeout = d
	}
}

// WithLossMargin sets how long before the earliest moment the ZooKeeper
// leader could expire the session the Session presumes it lost (see
// Session.LossDeadline): the time a holder needs to stop acting on a lost
// hold, plus clock-rate differences and network delay. The default is
// T/10, with T the negotiated session timeout.
//
// The margin must be at most T/2: Connect fails (ErrInvalidOption, saying
// what fits) if the server grants a timeout under twice the margin. A later
// ZooKeeper session granted less keeps the whole margin, so its holds end
// sooner, and reports it: its StateConnected change carries the error,
// which is also logged. The margin is never cut down.
//
// The deadline allows for the leader learning of the session up to a tick
// late, which holds when T is at least five times the servers' tickTime;
// with a shorter T, add the difference (tickTime − T/5) here. The
// derivation is in the internal/lease package documentation.
func WithLossMargin(d time.Duration) SessionOption {
	return func(c *sessionConfig) {
		if d <= 0 {
			c.invalid("loss margin %v must be > 0", d)
		}
		c.margin = d
	}
}

// WithLogger sets the logger for connection events and go-zookeeper's own
// messages (at debug level). The default discards everything.
func WithLogger(l *slog.Logger) SessionOption {
	return func(c *sessionConfig) {
		if l == nil {
			c.invalid("logger must not be nil")
		}
		c.logger = l
	}
}

// WithBackoff sets the retry policy for operations that fail on a lost
// connection and for reopening an expired session. The default is
// DefaultBackoff().
func WithBackoff(b Backoff) SessionOption {
	return func(c *sessionConfig) {
		if err := b.validate(); err != nil {
			c.errs = append(c.errs, err)
		}
		c.backoff = b
	}
}

// WithDigestAuth authenticates every ZooKeeper session the Session opens
// with the digest scheme, so nodes created with a digest or "auth" ACL are
// accessible. The default is no authentication.
func WithDigestAuth(user, password string) SessionOption {
	return func(c *sessionConfig) {
		if user == "" {
			c.invalid("digest auth user must not be empty")
		}
		c.auth = append(c.auth, user+":"+password)
	}
}

// WithACL sets the ACL of every node the Session and its recipes create,
// parents included. The default is zk.WorldACL(zk.PermAll).
func WithACL(acl ...zk.ACL) SessionOption {
	return func(c *sessionConfig) {
		if len(acl) == 0 {
			c.invalid("ACL must not be empty")
		}
		c.acl = acl
	}
}

// WithChroot puts every path the Session and its recipes use under root, like
// the chroot suffix of a Java client's connect string. The default is no
// prefix.
func WithChroot(root string) SessionOption {
	return func(c *sessionConfig) {
		if err := znode.Validate(root); err != nil {
			c.invalid("chroot: %v", err)
		}
		if root == "/" {
			root = ""
		}
		c.chroot = root
	}
}

// WithTLS connects to the servers' secure client port (ZooKeeper's
// secureClientPort) over TLS with config. An empty ServerName is set, for
// each connection, to the host of the server address dialled, so the
// server's certificate is verified against it. The handshake is bounded by
// the dial timeout. It applies on top of WithDialer. The default is plain
// TCP.
func WithTLS(config *tls.Config) SessionOption {
	return func(c *sessionConfig) {
		if config == nil {
			c.invalid("TLS config must not be nil")
		}
		c.tls = config
	}
}

// tlsDialer wraps dial: each connection does a TLS handshake with config,
// within timeout, before go-zookeeper sees it.
func tlsDialer(dial zk.Dialer, config *tls.Config) zk.Dialer {
	return func(network, addr string, timeout time.Duration) (net.Conn, error) {
		raw, err := dial(network, addr, timeout)
		if err != nil {
			return nil, err
		}
		cfg := config.Clone()
		if cfg.ServerName == "" {
			if host, _, err := net.SplitHostPort(addr); err == nil {
				cfg.ServerName = host
			}
		}
		c := tls.Client(raw, cfg)
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := c.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, errorf("zklock: TLS handshake with %s: %w", addr, err)
		}
		return c, nil
	}
}

// WithMeterProvider sets the OpenTelemetry MeterProvider of the Session's
// metrics, all named "zklock.*": acquire.duration and hold.duration
// (histograms, seconds, by recipe and outcome or end), acquisitions,
// holds.ended (by cause), session.transitions (by state), requests (by
// ZooKeeper operation) and cleaner.backlog. The default is the global
// provider (otel.GetMeterProvider), a no-op until the application sets
// one.
func WithMeterProvider(mp metric.MeterProvider) SessionOption {
	return func(c *sessionConfig) {
		if mp == nil {
			c.invalid("meter provider must not be nil")
		}
		c.meters = mp
	}
}

// WithTracerProvider sets the OpenTelemetry TracerProvider of the spans
// the recipes record around each acquisition and release, named
// "zklock.<recipe>.acquire" and "zklock.<recipe>.release", with the path
// and the fencing token as attributes. The default is the global provider
// (otel.GetTracerProvider), a no-op until the application sets one.
func WithTracerProvider(tp trace.TracerProvider) SessionOption {
	return func(c *sessionConfig) {
		if tp == nil {
			c.invalid("tracer provider must not be nil")
		}
		c.tracers = tp
	}
}

// defaultJuteMaxBuffer is ZooKeeper's default jute.maxbuffer: 0xfffff bytes.
const defaultJuteMaxBuffer = 0xfffff

// WithJuteMaxBuffer sets the largest request, in bytes, the servers accept:
// their jute.maxbuffer system property. A server drops the connection on a
// longer request, which a client cannot tell from a network fault, so the
// Session refuses longer requests before sending them, with an error
// wrapping ErrTooLarge; node data must leave room for the path and the
// request's own fields (about 100 bytes). The default, 0xfffff (1 MiB − 1),
// is ZooKeeper's default.
func WithJuteMaxBuffer(bytes int) SessionOption {
	return func(c *sessionConfig) {
		if bytes <= 0 {
			c.invalid("jute.maxbuffer %d must be > 0", bytes)
		}
		c.maxBuf = bytes
	}
}

// WithDialer sets how TCP connections to servers are made. The default is
// net.DialTimeout.
func WithDialer(d zk.Dialer) SessionOption {
	return func(c *sessionConfig) {
		if d == nil {
			c.invalid("dialer must not be nil")
		}
		c.dialer = d
	}
}

func validateServers(servers []string) error {
	if len(servers) == 0 {
		return errorf("%w: server list is empty", ErrInvalidOption)
	}
	for _, s := range servers {
		host, port, err := net.SplitHostPort(s)
		if err != nil || host == "" {
			return errorf("%w: server address %q is not host:port", ErrInvalidOption, s)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return errorf("%w: server address %q: port %q is not in 1-65535", ErrInvalidOption, s, port)
		}
	}
	return nil
}
