package zktesting

import (
	"context"
	"sync"
	"testing"

	"github.com/zklock/zklock/internal/faultproxy"
)

// Proxies is one TCP proxy in front of each server of a set, for clients
// that dial Addrs instead of the servers: the faults it makes reach those
// clients and no others. Its methods are safe for concurrent use.
type Proxies struct {
	list    []*Proxy
	targets []string

	mu       sync.Mutex       // guards sessions
	sessions map[int64][]byte // id -> password of every session set up through the proxies
	killing  chan struct{}    // capacity 1: full while KillSessions runs
}

// Proxy is the TCP proxy in front of one server.
type Proxy struct{ p *faultproxy.Proxy }

// proxyIndexes maps the address of every open proxy to the number of the
// server it leads to, for Cluster.Index.
var proxyIndexes sync.Map

func proxyIndex(addr string) int {
	if i, ok := proxyIndexes.Load(addr); ok {
		return i.(int)
	}
	return -1
}

// OpenProxies starts a proxy on 127.0.0.1 in front of each of servers
// (host:port), for a program that has no testing.TB; Close stops them.
func OpenProxies(servers []string) (*Proxies, error) {
	ps := &Proxies{targets: servers, sessions: make(map[int64][]byte), killing: make(chan struct{}, 1)}
	for i, target := range servers {
		p, err := faultproxy.New(target, faultproxy.WithTargetTap(ps.newSessionReader))
		if err != nil {
			ps.Close()
			return nil, wrap(err)
		}
		proxyIndexes.Store(p.Addr(), i)
		ps.list = append(ps.list, &Proxy{p})
	}
	return ps, nil
}

// NewProxies puts new proxies in front of every server, so that a test can
// cut, partition or expire the clients that dial them without touching any
// other. They close when the test ends; it fails the test if they cannot
// be started.
func (c *Cluster) NewProxies(t testing.TB) *Proxies {
	t.Helper()
	ps, err := OpenProxies(c.direct)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ps.Close)
	return ps
}

// Addrs returns the proxies' addresses, "127.0.0.1:port", in server order:
// the addresses for the clients to dial.
func (ps *Proxies) Addrs() []string {
	out := make([]string, len(ps.list))
	for i, p := range ps.list {
		out[i] = p.Addr()
	}
	return out
}

// Proxy returns the proxy in front of server i.
func (ps *Proxies) Proxy(i int) *Proxy { return ps.list[i] }

// Cut resets every connection through the proxies now, as a server or a
// network dropping the connection would. The clients reconnect (through
// the proxies, which still forward) within their session timeout, and
// their sessions survive.
func (ps *Proxies) Cut() {
	for _, p := range ps.list {
		p.Cut()
	}
}

// Blackhole makes the proxies silently drop every byte both ways, and hold
// new connections without reaching the servers, as a network partition
// would: the clients hear nothing until Heal, and the servers expire their
// sessions once the session timeout passes. A client closed during a
// Blackhole cannot tell the server: its session, with its ephemeral nodes,
// lives on until that timeout, and Root finds them left behind if the test
// ends first. Heal before closing the clients, or wait for the nodes to go.
func (ps *Proxies) Blackhole() {
	for _, p := range ps.list {
		p.Blackhole()
	}
}

// Heal ends a Blackhole. The connections that were open during it have lost
// bytes, so they are reset and the clients reconnect.
func (ps *Proxies) Heal() {
	for _, p := range ps.list {
		p.Heal()
	}
}

// ExpireSession expires the session of the clients behind the proxies the
// way a partition does, with no help from the server: it blackholes the
// proxies until reported returns, then heals them. reported must wait,
// bounded by ctx (Timeout), until the session has ended; if it returns an
// error, the test fails. KillSession gets the same without waiting out the
// timeout.
//
// A client may give its session up before the server expires it: zklock's
// Session reports the expiry (StateExpired, a hold's Done) at its safe loss
// deadline, a third of the timeout early. A reported that waits only for
// the client returns before the server has ended the session, and the
// session's ephemeral nodes can outlive ExpireSession by up to the session
// timeout, long enough for Root to find them left behind. To wait for the
// server too, have reported also wait for one of those nodes to go
// (Cluster.Admin and ExistsW).
func (ps *Proxies) ExpireSession(t testing.TB, reported func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	ps.Blackhole()
	defer ps.Heal()
	if err := reported(ctx); err != nil {
		t.Fatalf("zktesting: session expiry was not reported: %v", err)
	}
}

// Close stops the proxies and resets every connection through them. It is
// idempotent.
func (ps *Proxies) Close() {
	for _, p := range ps.list {
		proxyIndexes.Delete(p.Addr())
		p.Close()
	}
}

// Addr returns the address to dial instead of the server, "127.0.0.1:port".
func (p *Proxy) Addr() string { return p.p.Addr() }

// Target returns the server's address.
func (p *Proxy) Target() string { return p.p.Target() }

// Cut resets every connection through the proxy (see Proxies.Cut).
func (p *Proxy) Cut() { p.p.Cut() }

// Blackhole drops every byte through the proxy (see Proxies.Blackhole).
func (p *Proxy) Blackhole() { p.p.Blackhole() }

// Heal ends a Blackhole (see Proxies.Heal).
func (p *Proxy) Heal() { p.p.Heal() }

// Close stops the proxy and resets its connections: from then on, the
// server behind it refuses the clients that dial it, as a stopped server
// would. It is idempotent.
func (p *Proxy) Close() { _ = p.p.Close() }
