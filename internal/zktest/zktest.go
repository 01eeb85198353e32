// Package zktest gives integration tests real ZooKeeper servers: the servers
// in ZK_SERVERS when it is set, otherwise local server processes started
// through internal/zkserver. It adds fault proxies, operator actions and a
// check that a test leaves no nodes behind.
package zktest

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"go.uber.org/goleak"

	"github.com/zklock/zklock/internal/faultproxy"
	"github.com/zklock/zklock/internal/zkserver"
)

// EnvServers names the variable that points tests at running servers.
const EnvServers = "ZK_SERVERS"

// Timeout bounds every wait in the harness.
const Timeout = 60 * time.Second

// Main runs a package's tests, stops the shared server, then fails the run
// if any goroutine is left (goleak).
func Main(m *testing.M) { os.Exit(Run(m)) }

// Run is Main without the exit, for a TestMain with cleanup of its own; it
// returns the exit code.
func Run(m *testing.M) int { return finish(m.Run()) }

// finish stops the shared server and, if the run passed so far, fails it
// if any goroutine is left.
func finish(code int) int {
	shared.stop()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	return code
}

// MainWithExamples is Main for a package whose Example functions use a
// server. Examples have no testing.TB to start one or to skip with, so it
// does both for them: under -short it skips them, as the integration tests
// skip themselves; otherwise it starts the shared server (or takes
// ZK_SERVERS) before the run and sets *servers to the addresses clients
// dial. After the run it fails if any node but lock directories (which the
// server removes once empty) is left at or under roots, the paths the
// examples use, and removes them all.
func MainWithExamples(m *testing.M, servers *[]string, roots ...string) {
	os.Exit(runWithExamples(m, servers, roots))
}

func runWithExamples(m *testing.M, servers *[]string, roots []string) int {
	flag.Parse()
	if testing.Short() {
		skipExamples()
		return Run(m)
	}
	addrs, err := Servers()
	if err != nil {
		// The tests report it where they need a server; the examples
		// cannot, so they are skipped and the run fails here.
		skipExamples()
		code := Run(m)
		fmt.Fprintf(os.Stderr, "examples not run (-short skips them with the integration tests): %v\n", err)
		return max(code, 1)
	}
	*servers = addrs
	code := m.Run()
	if err := shared.removeExampleNodes(roots); err != nil {
		fmt.Fprintf(os.Stderr, "examples: %v\n", err)
		code = max(code, 1)
	}
	return finish(code)
}

// skipExamples adds the Example functions to -test.skip.
func skipExamples() {
	skip := "^Example"
	if prev := flag.Lookup("test.skip").Value.String(); prev != "" {
		skip = prev + "|" + skip
	}
	if err := flag.Set("test.skip", skip); err != nil {
		panic(err) // the testing package defines the flag
	}
}

// removeExampleNodes reports the nodes other than lock directories left at
// or under roots, and removes them all.
func (s *sharedCluster) removeExampleNodes(roots []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.c
	if c == nil {
		return nil
	}
	if _, err := c.adminConn(); err != nil {
		return err
	}
	var errs []error
	for _, root := range roots {
		left, err := c.leftovers(root, true)
		if err != nil {
			errs = append(errs, fmt.Errorf("listing nodes left under %s: %w", root, err))
		}
		if len(left) > 0 {
			errs = append(errs, fmt.Errorf("nodes left behind: %v", left))
		}
		if err := c.removeAll(root); err != nil {
			errs = append(errs, fmt.Errorf("removing %s: %w", root, err))
		}
	}
	return errors.Join(errs...)
}

// Cluster is a set of ZooKeeper servers for one test or one package.
type Cluster struct {
	local  *zkserver.Cluster // nil in external mode
	direct []string
	shared *Proxies // in front of every server, for clients that need no own faults

	adminMu sync.Mutex // guards admin
	admin   *zk.Conn
}

// Option adjusts the servers Start launches; ignored with ZK_SERVERS.
type Option func(*zkserver.Config)

// WithMaxSessionTimeout sets the servers' maxSessionTimeout.
func WithMaxSessionTimeout(d time.Duration) Option {
	return func(c *zkserver.Config) { c.MaxSessionTimeout = d }
}

// sharedCluster is the package-wide standalone server behind Shared.
type sharedCluster struct {
	mu  sync.Mutex // guards c, err
	c   *Cluster
	err error
}

var shared sharedCluster

func (s *sharedCluster) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.c != nil {
		s.c.stop()
		s.c = nil
	}
}

// Shared returns a standalone server shared by the package's tests (or the
// ZK_SERVERS ensemble). Tests isolate themselves with Root and their own
// Proxies. Main stops it.
func Shared(t testing.TB) *Cluster {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.c == nil && shared.err == nil {
		shared.c, shared.err = start(1, nil)
	}
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	c := shared.c
	t.Cleanup(func() {
		if t.Failed() && c.local != nil {
			t.Logf("ZooKeeper server output (last lines):\n%s", c.local.Tail())
		}
	})
	return c
}

// Servers returns client addresses of the shared server (started if need
// be) for code that has no testing.TB, such as MainWithExamples.
func Servers() ([]string, error) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.c == nil && shared.err == nil {
		shared.c, shared.err = start(1, nil)
	}
	if shared.err != nil {
		return nil, shared.err
	}
	return shared.c.Servers(), nil
}

// Start starts n servers for this test alone and stops them when it ends.
// With ZK_SERVERS set it uses those servers instead, and skips the test if
// they are fewer than n.
func Start(t testing.TB, n int, opts ...Option) *Cluster {
	t.Helper()
	if ext := external(); ext != nil {
		if len(ext) < n {
			t.Skipf("needs %d servers; %s lists %d", n, EnvServers, len(ext))
		}
		if len(opts) > 0 {
			t.Skipf("needs servers configured by the test; %s is set", EnvServers)
		}
	}
	c, err := start(n, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() && c.local != nil {
			t.Logf("ZooKeeper server output (last lines):\n%s", c.local.Tail())
		}
		c.stop()
	})
	return c
}

func external() []string {
	v := strings.TrimSpace(os.Getenv(EnvServers))
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

// start launches servers; their output is kept by zkserver and printed when
// a test fails (streaming it to t.Log could outlive the test).
func start(n int, opts []Option) (*Cluster, error) {
	c := &Cluster{}
	if ext := external(); ext != nil {
		c.direct = ext
	} else {
		inst, err := zkserver.Find()
		if err != nil {
			return nil, fmt.Errorf("integration tests need ZooKeeper: %w", err)
		}
		cfg := zkserver.Config{Servers: n, Install: inst}
		for _, o := range opts {
			o(&cfg)
		}
		ctx, cancel := context.WithTimeout(context.Background(), Timeout)
		defer cancel()
		if c.local, err = zkserver.Start(ctx, cfg); err != nil {
			return nil, err
		}
		c.direct = c.local.Addrs()
	}
	ps, err := newProxies(c.direct)
	if err != nil {
		c.stop()
		return nil, err
	}
	c.shared = ps
	return c, nil
}

func (c *Cluster) stop() {
	c.adminMu.Lock()
	if c.admin != nil {
		c.admin.Close()
		c.admin = nil
	}
	c.adminMu.Unlock()
	if c.shared != nil {
		c.shared.close()
	}
	if c.local != nil {
		c.local.Close()
	}
}

// Servers returns addresses for clients: the shared proxies in front of
// every server.
func (c *Cluster) Servers() []string { return c.shared.Addrs() }

// Direct returns the servers' own addresses.
func (c *Cluster) Direct() []string { return slices.Clone(c.direct) }

// Len returns the number of servers.
func (c *Cluster) Len() int { return len(c.direct) }

// NewProxies puts fresh proxies in front of every server, so a test can cut
// or blackhole one client without touching others. They close with the test.
func (c *Cluster) NewProxies(t testing.TB) *Proxies {
	t.Helper()
	ps, err := newProxies(c.direct)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ps.close)
	return ps
}

// Index returns which server addr (a proxy or direct address) leads to, or
// -1.
func (c *Cluster) Index(addr string) int {
	if i := slices.Index(c.direct, addr); i >= 0 {
		return i
	}
	return proxyIndex(addr)
}

// StopServer kills server i and waits for it to exit. It skips the test in
// external mode.
func (c *Cluster) StopServer(t testing.TB, i int) {
	t.Helper()
	c.needLocal(t)
	if err := c.local.Stop(i); err != nil {
		t.Fatal(err)
	}
}

// WipeData deletes stopped server i's data, as if its disk were replaced.
func (c *Cluster) WipeData(t testing.TB, i int) {
	t.Helper()
	c.needLocal(t)
	if err := c.local.WipeData(i); err != nil {
		t.Fatal(err)
	}
}

// StartServer restarts server i with its data and ports and waits until it
// serves. It skips the test in external mode.
func (c *Cluster) StartServer(t testing.TB, i int) {
	t.Helper()
	c.needLocal(t)
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	if err := c.local.StartServer(ctx, i); err != nil {
		t.Fatal(err)
	}
}

// Local returns the server processes, skipping the test in external mode.
func (c *Cluster) Local(t testing.TB) *zkserver.Cluster {
	t.Helper()
	c.needLocal(t)
	return c.local
}

func (c *Cluster) needLocal(t testing.TB) {
	t.Helper()
	if c.local == nil {
		t.Skipf("needs control of the server processes; %s is set", EnvServers)
	}
}

// Admin returns a plain go-zookeeper connection straight to the servers,
// standing for an operator or another application.
func (c *Cluster) Admin(t testing.TB) *zk.Conn {
	t.Helper()
	conn, err := c.adminConn()
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

func (c *Cluster) adminConn() (*zk.Conn, error) {
	c.adminMu.Lock()
	defer c.adminMu.Unlock()
	if c.admin == nil {
		conn, _, err := zk.Connect(c.direct, 30*time.Second, zk.WithLogInfo(false), zk.WithLogger(quiet{}))
		if err != nil {
			return nil, err
		}
		c.admin = conn
	}
	return c.admin, nil
}

type quiet struct{}

func (quiet) Printf(string, ...any) {}

// DeleteNode deletes p as an operator would, whoever owns it.
func (c *Cluster) DeleteNode(t testing.TB, p string) {
	t.Helper()
	if err := c.Admin(t).Delete(p, -1); err != nil {
		t.Fatalf("delete %s: %v", p, err)
	}
}

// Root creates a fresh persistent node for one test and, when the test
// ends, fails it if any node but lock directories (which the server removes
// once empty) is left below, then removes the whole subtree.
func (c *Cluster) Root(t testing.TB) string {
	t.Helper()
	admin := c.Admin(t)
	name := strings.NewReplacer("/", "-", " ", "_").Replace(t.Name())
	p := fmt.Sprintf("/zklock-test/%s-%d", name, time.Now().UnixNano())
	if _, err := admin.Create("/zklock-test", nil, 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
		t.Fatal(err)
	}
	if _, err := admin.Create(p, nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		left, err := c.leftovers(p, false)
		if err != nil {
			t.Errorf("listing nodes left under %s: %v", p, err)
		}
		if len(left) > 0 {
			t.Errorf("nodes left behind under %s: %v", p, left)
		}
		if err := c.removeAll(p); err != nil {
			t.Errorf("removing %s: %v", p, err)
		}
	})
	return p
}

// leftovers lists the nodes below p, and p itself if self, that are not
// lock directories.
func (c *Cluster) leftovers(p string, self bool) ([]string, error) {
	var left []string
	var walk func(string) error
	walk = func(n string) error {
		kids, st, err := c.admin.Children(n)
		if errors.Is(err, zk.ErrNoNode) {
			return nil
		}
		if err != nil {
			return err
		}
		// ZooKeeper does not tell clients which nodes are containers; a
		// persistent node that once had children is the shape of a lock
		// directory, which the server removes by itself once it is empty.
		// What is left inside one is listed on its own.
		dir := st.EphemeralOwner == 0 && st.Cversion > 0
		if (n != p || self) && !dir {
			left = append(left, n)
		}
		for _, k := range kids {
			if err := walk(path.Join(n, k)); err != nil {
				return err
			}
		}
		return nil
	}
	err := walk(p)
	return left, err
}

func (c *Cluster) removeAll(p string) error {
	kids, _, err := c.admin.Children(p)
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, k := range kids {
		if err := c.removeAll(path.Join(p, k)); err != nil {
			return err
		}
	}
	if err := c.admin.Delete(p, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
		return err
	}
	return nil
}

// Proxies is one fault proxy in front of each server.
type Proxies struct {
	list []*faultproxy.Proxy
}

var proxyIndexes sync.Map // proxy address -> server index

func proxyIndex(addr string) int {
	if i, ok := proxyIndexes.Load(addr); ok {
		return i.(int)
	}
	return -1
}

func newProxies(targets []string) (*Proxies, error) {
	ps := &Proxies{}
	for i, target := range targets {
		p, err := faultproxy.New(target)
		if err != nil {
			ps.close()
			return nil, err
		}
		proxyIndexes.Store(p.Addr(), i)
		ps.list = append(ps.list, p)
	}
	return ps, nil
}

// Addrs returns the proxies' addresses, in server order.
func (ps *Proxies) Addrs() []string {
	out := make([]string, len(ps.list))
	for i, p := range ps.list {
		out[i] = p.Addr()
	}
	return out
}

// Proxy returns the proxy in front of server i.
func (ps *Proxies) Proxy(i int) *faultproxy.Proxy { return ps.list[i] }

// Cut resets every connection through the proxies.
func (ps *Proxies) Cut() {
	for _, p := range ps.list {
		p.Cut()
	}
}

// Blackhole silently drops every byte through the proxies.
func (ps *Proxies) Blackhole() {
	for _, p := range ps.list {
		p.Blackhole()
	}
}

// Heal ends a Blackhole.
func (ps *Proxies) Heal() {
	for _, p := range ps.list {
		p.Heal()
	}
}

// ExpireSession makes the server expire the session of a client connected
// through ps, black-box, as a partition would: it blackholes the proxies
// until reported returns (the client has seen its session expire; it must
// wait for that, bounded by ctx), then heals them.
func (ps *Proxies) ExpireSession(t testing.TB, reported func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	ps.Blackhole()
	defer ps.Heal()
	if err := reported(ctx); err != nil {
		t.Fatalf("session expiry was not reported: %v", err)
	}
}

func (ps *Proxies) close() {
	for _, p := range ps.list {
		proxyIndexes.Delete(p.Addr())
		p.Close()
	}
}

// WithTLS makes the servers serve a TLS client port too, with keyStore (the
// server's PKCS #8 key and certificate chain, PEM) and trustStore (PEM).
func WithTLS(keyStore, trustStore string) Option {
	return func(c *zkserver.Config) { c.TLS = &zkserver.TLS{KeyStore: keyStore, TrustStore: trustStore} }
}

// SecureServers returns the servers' TLS client addresses (see WithTLS);
// the test is skipped when the servers are not started here.
func (c *Cluster) SecureServers(t testing.TB) []string {
	t.Helper()
	c.needLocal(t)
	var out []string
	for i := range c.local.Len() {
		out = append(out, c.local.SecureAddr(i))
	}
	return out
}
