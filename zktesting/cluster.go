package zktesting

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/go-zookeeper/zk"

	"github.com/zklock/zklock/internal/zkserver"
)

// ErrNoControl is returned (wrapped) by what needs control of the server
// processes when the servers are not started here, because ZK_SERVERS is
// set. The testing.TB forms skip the test instead.
var ErrNoControl = errors.New("zktesting: the servers are not started here (" + EnvServers + " is set)")

// Cluster is a set of ZooKeeper servers: processes started by Start, Shared
// or New, or the servers listed in ZK_SERVERS. Servers are numbered from 0
// in the order of Servers and Direct. Its methods are safe for concurrent
// use.
type Cluster struct {
	local  *zkserver.Cluster // nil with ZK_SERVERS
	direct []string
	shared *Proxies // in front of every server, for clients that need no faults of their own

	mu     sync.Mutex // guards admin and closed
	admin  *zk.Conn
	closed bool
}

// New starts n servers (1: a standalone server; more: an ensemble) on
// 127.0.0.1 and returns once every one serves, for a program that has no
// testing.TB; Close stops them. ctx bounds only the start. With ZK_SERVERS
// set it starts nothing and uses those servers; then it fails if they are
// fewer than n, or with ErrNoControl if opts are given. With no ZooKeeper
// on the machine, its error says how to install one.
func New(ctx context.Context, n int, opts ...Option) (*Cluster, error) {
	if n < 1 {
		return nil, fmt.Errorf("zktesting: %d servers asked for, want at least 1", n)
	}
	c := &Cluster{}
	if ext := external(); ext != nil {
		switch {
		case len(ext) < n:
			return nil, fmt.Errorf("zktesting: %d servers asked for; %s lists %d", n, EnvServers, len(ext))
		case len(opts) > 0:
			return nil, fmt.Errorf("%w: the servers cannot be configured", ErrNoControl)
		}
		c.direct = ext
	} else {
		inst, err := zkserver.Find()
		if err != nil {
			return nil, fmt.Errorf("zktesting: no ZooKeeper to start: %w", err)
		}
		cfg := serverConfig{zkserver.Config{Servers: n, Install: inst}}
		for _, o := range opts {
			o(&cfg)
		}
		if c.local, err = zkserver.Start(ctx, cfg.Config); err != nil {
			return nil, fmt.Errorf("zktesting: %w", err)
		}
		c.direct = c.local.Addrs()
	}
	ps, err := OpenProxies(c.direct)
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	c.shared = ps
	return c, nil
}

// Start starts n servers for this test alone (see New) and stops them when
// the test ends; if it failed, the last lines of the servers' output are
// logged first. With ZK_SERVERS set it uses those servers instead, and
// skips the test if they are fewer than n or if opts are given. It fails
// the test if the servers cannot be started, or no ZooKeeper is found.
func Start(t testing.TB, n int, opts ...Option) *Cluster {
	t.Helper()
	if ext := external(); ext != nil {
		if len(ext) < n {
			t.Skipf("zktesting: needs %d servers; %s lists %d", n, EnvServers, len(ext))
		}
		if len(opts) > 0 {
			t.Skipf("zktesting: needs servers configured by the test; %s is set", EnvServers)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	c, err := New(ctx, n, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.logIfFailed(t)
		_ = c.Close()
	})
	return c
}

// external returns the servers listed in ZK_SERVERS, nil when it is unset.
func external() []string {
	v := strings.TrimSpace(os.Getenv(EnvServers))
	if v == "" {
		return nil
	}
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func (c *Cluster) logIfFailed(t testing.TB) {
	if t.Failed() && c.local != nil {
		t.Logf("ZooKeeper server output (last lines):\n%s", c.local.Tail())
	}
}

// Close closes the admin connection and the proxies of Servers, and stops
// the servers it started, removing their data. It is idempotent; later
// calls return nil. Proxies opened with NewProxies close on their own.
func (c *Cluster) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	if c.admin != nil {
		c.admin.Close()
		c.admin = nil
	}
	c.mu.Unlock()
	if c.shared != nil {
		c.shared.Close()
	}
	if c.local != nil {
		return c.local.Close()
	}
	return nil
}

// Servers returns the addresses clients should dial: proxies in front of
// every server, shared by every client that dials them. A client that
// needs faults of its own dials NewProxies instead.
func (c *Cluster) Servers() []string { return c.shared.Addrs() }

// Direct returns the servers' own client addresses, with no proxy between.
func (c *Cluster) Direct() []string { return slices.Clone(c.direct) }

// Len returns the number of servers.
func (c *Cluster) Len() int { return len(c.direct) }

// Index returns the number of the server that addr (a server's own address
// or that of a proxy in front of it) leads to, or -1 if it leads to none
// that this package knows.
func (c *Cluster) Index(addr string) int {
	if i := slices.Index(c.direct, addr); i >= 0 {
		return i
	}
	return proxyIndex(addr)
}

// Tail returns the last lines (up to 200 a server) of the servers' output,
// each prefixed "zk<n>: " with n the server's number plus one; "" with
// ZK_SERVERS set.
func (c *Cluster) Tail() string {
	if c.local == nil {
		return ""
	}
	return c.local.Tail()
}
