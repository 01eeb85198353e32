// Package zkserver launches real Apache ZooKeeper server processes, standalone
// or as an ensemble on 127.0.0.1, for tests and demos, and lets callers kill,
// restart, pause and resume individual servers.
package zkserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Tail sizes: enough context to diagnose a failure without unbounded memory.
const (
	tailLines      = 200
	startTailLines = 30
)

// pollInterval is how often readiness is re-checked while waiting.
const pollInterval = 100 * time.Millisecond

// probeTimeout bounds one readiness probe so a hung server cannot stall the
// polling loop past ctx's own deadline by much.
const probeTimeout = 2 * time.Second

// Config describes the servers Start launches. The zero value is one
// standalone server in a temporary directory.
type Config struct {
	// Servers is the number of servers: 1 (the default when 0) is
	// standalone, more is an ensemble with standaloneEnabled=false.
	Servers int
	// TickTime is ZooKeeper's tickTime; default 200ms, so session and sync
	// timeouts are short enough for tests.
	TickTime time.Duration
	// MinSessionTimeout defaults to 2*TickTime, as in ZooKeeper.
	MinSessionTimeout time.Duration
	// MaxSessionTimeout defaults to 60s.
	MaxSessionTimeout time.Duration
	// NoFsync sets forceSync=no. ZooKeeper's default (fsync every
	// transaction) is kept unless this is set.
	NoFsync bool
	// Dir is the base directory for each server's data and zoo.cfg. When
	// empty, a new temporary directory is used and removed by Close.
	Dir string
	// Log receives every server's output, one whole line per Write, each
	// prefixed "zk<n>: " with n the server's myid (index+1). Nil discards.
	Log io.Writer
	// Install is the ZooKeeper to run; nil means the result of Find.
	Install *Install
	// TLS, when set, serves a secure client port too (SecureAddr), through
	// ZooKeeper's Netty connection factory.
	TLS *TLS
}

// TLS is a secure client port's configuration, as PEM files.
type TLS struct {
	KeyStore   string // the server's private key (PKCS #8) followed by its certificate chain
	TrustStore string // the certificates the server trusts for client certificates
	ClientAuth string // "none" (the default), "want" or "need"
}

// Cluster is a set of ZooKeeper server processes started by Start. Its
// methods are safe for concurrent use.
type Cluster struct {
	inst    *Install
	cfg     Config
	dir     string
	ownDir  bool
	servers []*server

	mu     sync.Mutex // guards closed and every server's proc
	closed bool

	outMu sync.Mutex // serializes writes to cfg.Log and guards every tail
}

type server struct {
	n                                  int // myid, index+1
	dir, cfgPath                       string
	clientPort, peerPort, electionPort int
	securePort                         int      // 0 without TLS
	proc                               *process // nil when not running; guarded by Cluster.mu
	tail                               ring     // guarded by Cluster.outMu
}

// Start writes the configuration for cfg.Servers servers, starts them all and
// returns once every server is ready: ruok answers imok and srvr reports Mode
// standalone, leader or follower. If ctx ends first, the error wraps
// ctx.Err() and mentions the last readiness failure. On any error every
// process Start launched has been killed and reaped.
func Start(ctx context.Context, cfg Config) (_ *Cluster, err error) {
	if cfg.Servers == 0 {
		cfg.Servers = 1
	}
	if cfg.TickTime == 0 {
		cfg.TickTime = 200 * time.Millisecond
	}
	if cfg.MinSessionTimeout == 0 {
		cfg.MinSessionTimeout = 2 * cfg.TickTime
	}
	if cfg.MaxSessionTimeout == 0 {
		cfg.MaxSessionTimeout = 60 * time.Second
	}
	switch {
	case cfg.Servers < 0:
		return nil, fmt.Errorf("zkserver: Servers=%d, want >= 1", cfg.Servers)
	case cfg.TickTime < time.Millisecond:
		return nil, fmt.Errorf("zkserver: TickTime=%v, want >= 1ms", cfg.TickTime)
	case cfg.MaxSessionTimeout < cfg.MinSessionTimeout:
		return nil, fmt.Errorf("zkserver: MaxSessionTimeout %v < MinSessionTimeout %v", cfg.MaxSessionTimeout, cfg.MinSessionTimeout)
	}
	inst := cfg.Install
	if inst == nil {
		if inst, err = Find(); err != nil {
			return nil, err
		}
	}

	c := &Cluster{inst: inst, cfg: cfg, dir: cfg.Dir}
	if c.dir == "" {
		if c.dir, err = os.MkdirTemp("", "zkserver-"); err != nil {
			return nil, fmt.Errorf("zkserver: %w", err)
		}
		c.ownDir = true
	} else if c.dir, err = filepath.Abs(c.dir); err != nil {
		return nil, fmt.Errorf("zkserver: %w", err)
	}
	defer func() {
		if err != nil {
			_ = c.Close()
		}
	}()

	ports, err := freePorts(4 * cfg.Servers)
	if err != nil {
		return nil, err
	}
	for i := range cfg.Servers {
		s := &server{
			n:            i + 1,
			dir:          filepath.Join(c.dir, "zk"+strconv.Itoa(i+1)),
			clientPort:   ports[4*i],
			peerPort:     ports[4*i+1],
			electionPort: ports[4*i+2],
			tail:         ring{lines: make([]string, tailLines)},
		}
		if cfg.TLS != nil {
			s.securePort = ports[4*i+3]
		}
		s.cfgPath = filepath.Join(s.dir, "zoo.cfg")
		c.servers = append(c.servers, s)
	}
	for _, s := range c.servers {
		if err := c.writeConfig(s); err != nil {
			return nil, err
		}
	}
	all := make([]int, cfg.Servers)
	for i := range all {
		all[i] = i
	}
	if err := c.StartServers(ctx, all...); err != nil {
		return nil, err
	}
	return c, nil
}

// freePorts reserves n distinct ports by binding 127.0.0.1:0. All listeners
// stay open until every port is picked so the kernel cannot hand out the
// same port twice.
func freePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("zkserver: reserving a port: %w", err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func (c *Cluster) writeConfig(s *server) error {
	data := filepath.Join(s.dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return fmt.Errorf("zkserver: %w", err)
	}
	ms := func(d time.Duration) int64 { return d.Milliseconds() }
	var b strings.Builder
	fmt.Fprintf(&b, "tickTime=%d\n", ms(c.cfg.TickTime))
	fmt.Fprintf(&b, "dataDir=%s\n", data)
	fmt.Fprintf(&b, "clientPort=%d\n", s.clientPort)
	b.WriteString("clientPortAddress=127.0.0.1\n")
	fmt.Fprintf(&b, "minSessionTimeout=%d\n", ms(c.cfg.MinSessionTimeout))
	fmt.Fprintf(&b, "maxSessionTimeout=%d\n", ms(c.cfg.MaxSessionTimeout))
	b.WriteString("admin.enableServer=false\n")
	if t := c.cfg.TLS; t != nil {
		auth := t.ClientAuth
		if auth == "" {
			auth = "none"
		}
		fmt.Fprintf(&b, "secureClientPort=%d\n", s.securePort)
		b.WriteString("secureClientPortAddress=127.0.0.1\n")
		b.WriteString("serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory\n")
		fmt.Fprintf(&b, "ssl.keyStore.location=%s\nssl.keyStore.type=PEM\n", t.KeyStore)
		fmt.Fprintf(&b, "ssl.trustStore.location=%s\nssl.trustStore.type=PEM\n", t.TrustStore)
		fmt.Fprintf(&b, "ssl.clientAuth=%s\n", auth)
	}
	b.WriteString("4lw.commands.whitelist=*\n")
	if c.cfg.NoFsync {
		b.WriteString("forceSync=no\n")
	}
	if len(c.servers) > 1 {
		b.WriteString("initLimit=20\n")
		b.WriteString("syncLimit=10\n")
		b.WriteString("standaloneEnabled=false\n")
		// Keeps zoo.cfg static: with reconfig on, ZooKeeper rewrites it
		// into a dynamic file.
		b.WriteString("reconfigEnabled=false\n")
		for _, o := range c.servers {
			fmt.Fprintf(&b, "server.%d=127.0.0.1:%d:%d\n", o.n, o.peerPort, o.electionPort)
		}
		if err := os.WriteFile(filepath.Join(data, "myid"), []byte(strconv.Itoa(s.n)+"\n"), 0o644); err != nil {
			return fmt.Errorf("zkserver: %w", err)
		}
	}
	if err := os.WriteFile(s.cfgPath, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("zkserver: %w", err)
	}
	return nil
}

// Len returns the number of servers.
func (c *Cluster) Len() int { return len(c.servers) }

// Addr returns the client address "127.0.0.1:port" of server i (0-based).
func (c *Cluster) Addr(i int) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(c.servers[i].clientPort))
}

// Addrs returns the client addresses of all servers, in index order.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.servers))
	for i := range c.servers {
		addrs[i] = c.Addr(i)
	}
	return addrs
}

// SecureAddr returns server i's TLS client address, "" without TLS.
func (c *Cluster) SecureAddr(i int) string {
	if c.servers[i].securePort == 0 {
		return ""
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(c.servers[i].securePort))
}

// Dir returns the base directory holding every server's data and zoo.cfg.
func (c *Cluster) Dir() string { return c.dir }

// PID returns the process id of server i, or 0 when it is not running.
func (c *Cluster) PID(i int) int {
	if err := c.checkIndex(i); err != nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.servers[i].proc; p != nil {
		return p.pid
	}
	return 0
}

func (c *Cluster) checkIndex(i int) error {
	if i < 0 || i >= len(c.servers) {
		return fmt.Errorf("zkserver: server index %d out of range [0,%d)", i, len(c.servers))
	}
	return nil
}

var errClosed = errors.New("zkserver: cluster is closed")

// Stop kills server i (SIGKILL; ZooKeeper is crash-safe) and waits for it to
// exit. Stopping a server that is not running is a no-op.
func (c *Cluster) Stop(i int) error {
	if err := c.checkIndex(i); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// Held while killing so that a concurrent StartServer cannot bind the
	// same ports before the old process is gone.
	if p := c.servers[i].proc; p != nil {
		p.kill()
		c.servers[i].proc = nil
	}
	return nil
}

// StartServer starts server i again with its data dir, myid and ports, and
// waits until it is ready as in Start (for an ensemble member, until it has
// rejoined as leader or follower). If ctx ends first, the server is killed
// again and the error wraps ctx.Err().
func (c *Cluster) StartServer(ctx context.Context, i int) error {
	return c.StartServers(ctx, i)
}

// StartServers starts the given servers together and waits until all are
// ready. Use it when the servers can only become ready together, e.g. when
// restarting a stopped majority. On error, the servers it started are killed.
func (c *Cluster) StartServers(ctx context.Context, idx ...int) error {
	for _, i := range idx {
		if err := c.checkIndex(i); err != nil {
			return err
		}
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return errClosed
	}
	started := make(map[int]*process, len(idx))
	var err error
	for _, i := range idx {
		s := c.servers[i]
		if s.proc != nil || started[i] != nil {
			err = fmt.Errorf("zkserver: zk%d is already running", s.n)
			break
		}
		var p *process
		if p, err = c.startProcess(s); err != nil {
			break
		}
		s.proc = p
		started[i] = p
	}
	c.mu.Unlock()
	if err == nil {
		err = c.waitReady(ctx, started)
	}
	if err != nil {
		c.mu.Lock()
		for i, p := range started {
			p.kill()
			if c.servers[i].proc == p {
				c.servers[i].proc = nil
			}
		}
		c.mu.Unlock()
	}
	return err
}

// waitReady polls the started servers until all pass probe, one of them
// exits, or ctx ends.
func (c *Cluster) waitReady(ctx context.Context, started map[int]*process) error {
	pending := make(map[int]*process, len(started))
	for i, p := range started {
		pending[i] = p
	}
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	var lastErr error
	for {
		for i, p := range pending {
			s := c.servers[i]
			select {
			case <-p.exited:
				return fmt.Errorf("zkserver: zk%d (pid %d) exited while starting: %v\n--- last %d lines of zk%d output ---\n%s",
					s.n, p.pid, p.waitErr, startTailLines, s.n, c.serverTail(s, startTailLines))
			default:
			}
			pctx, cancel := context.WithTimeout(ctx, probeTimeout)
			err := probe(pctx, c.Addr(i))
			cancel()
			if err != nil {
				if ctx.Err() == nil {
					lastErr = fmt.Errorf("zk%d at %s: %w", s.n, c.Addr(i), err)
				}
				continue
			}
			delete(pending, i)
		}
		if len(pending) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("zkserver: waiting for servers to become ready: %w (last readiness error: %v)", ctx.Err(), lastErr)
		case <-ticker.C:
		}
	}
}

// Pause stops server i with SIGSTOP: its sockets stay open but it answers
// nothing, like a long GC pause or a hung host.
func (c *Cluster) Pause(i int) error {
	return c.signal(i, "Pause", syscall.SIGSTOP)
}

// Resume continues server i after Pause with SIGCONT.
func (c *Cluster) Resume(i int) error {
	return c.signal(i, "Resume", syscall.SIGCONT)
}

func (c *Cluster) signal(i int, op string, sig syscall.Signal) error {
	if err := c.checkIndex(i); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.servers[i].proc
	if p == nil {
		return fmt.Errorf("zkserver: %s: zk%d is not running", op, i+1)
	}
	if err := p.signal(sig); err != nil {
		return fmt.Errorf("zkserver: %s zk%d: %w", op, i+1, err)
	}
	return nil
}

// Mode returns server i's role from srvr: "leader", "follower" or
// "standalone". A server that has not joined a quorum yields an error.
func (c *Cluster) Mode(ctx context.Context, i int) (string, error) {
	if err := c.checkIndex(i); err != nil {
		return "", err
	}
	reply, err := FourLetter(ctx, c.Addr(i), "srvr")
	if err != nil {
		return "", err
	}
	mode, err := parseSrvr(reply, "Mode")
	if err != nil {
		return "", fmt.Errorf("zkserver: zk%d: %w", i+1, err)
	}
	return mode, nil
}

// Version returns the "Zookeeper version: ..." line of srvr from the first
// running server that answers.
func (c *Cluster) Version(ctx context.Context) (string, error) {
	err := errors.New("zkserver: no server is running")
	for i := range c.servers {
		if c.PID(i) == 0 {
			continue
		}
		var reply string
		if reply, err = FourLetter(ctx, c.Addr(i), "srvr"); err != nil {
			continue
		}
		var v string
		if v, err = parseSrvr(reply, "Zookeeper version"); err == nil {
			return "Zookeeper version: " + v, nil
		}
	}
	return "", err
}

// Close kills every server process, waits for them and their output copying
// to finish, and removes the base directory if Start created it. It is
// idempotent; later calls return nil.
func (c *Cluster) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	for _, s := range c.servers {
		if s.proc != nil {
			s.proc.kill()
			s.proc = nil
		}
	}
	c.mu.Unlock()
	if c.ownDir {
		if err := os.RemoveAll(c.dir); err != nil {
			return fmt.Errorf("zkserver: %w", err)
		}
	}
	return nil
}

// output records one line of server s's output and forwards it to Log.
func (c *Cluster) output(s *server, line string) {
	prefixed := "zk" + strconv.Itoa(s.n) + ": " + line + "\n"
	c.outMu.Lock()
	defer c.outMu.Unlock()
	s.tail.add(line)
	if c.cfg.Log != nil {
		_, _ = io.WriteString(c.cfg.Log, prefixed)
	}
}

// serverTail returns the last n lines of server s's output, prefixed.
func (c *Cluster) serverTail(s *server, n int) string {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	var b strings.Builder
	for _, l := range s.tail.last(n) {
		fmt.Fprintf(&b, "zk%d: %s\n", s.n, l)
	}
	return b.String()
}

// Tail returns the last lines (up to 200 per server) of every server's
// output, each prefixed "zk<n>: ", for printing when a test fails.
func (c *Cluster) Tail() string {
	var b strings.Builder
	for _, s := range c.servers {
		b.WriteString(c.serverTail(s, tailLines))
	}
	return b.String()
}

// ring keeps the most recent len(lines) lines.
type ring struct {
	lines []string
	next  int // slot for the next line
	n     int // lines stored, <= len(lines)
}

func (r *ring) add(l string) {
	r.lines[r.next] = l
	r.next = (r.next + 1) % len(r.lines)
	r.n = min(r.n+1, len(r.lines))
}

func (r *ring) last(n int) []string {
	n = min(n, r.n)
	out := make([]string, 0, n)
	for k := n; k > 0; k-- {
		out = append(out, r.lines[(r.next-k+len(r.lines))%len(r.lines)])
	}
	return out
}

// WipeData deletes the stopped server i's data (snapshots and transaction
// logs, not its id), as if its disk were replaced: it starts again with an
// empty tree and zxids from zero.
func (c *Cluster) WipeData(i int) error {
	if err := c.checkIndex(i); err != nil {
		return err
	}
	data := filepath.Join(c.servers[i].dir, "data")
	entries, err := os.ReadDir(data)
	if err != nil {
		return fmt.Errorf("zkserver: %w", err)
	}
	for _, e := range entries {
		if e.Name() == "myid" {
			continue
		}
		if err := os.RemoveAll(filepath.Join(data, e.Name())); err != nil {
			return fmt.Errorf("zkserver: %w", err)
		}
	}
	return nil
}
