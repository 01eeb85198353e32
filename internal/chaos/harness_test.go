package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zklock/zklock"
	"github.com/zklock/zklock/internal/zktest"
	"github.com/zklock/zklock/zktesting"
)

// Shape of a run.
const (
	sessionTimeout = 2 * time.Second
	mutexClients   = 8
	candidates     = 3
	lockPath       = "/lock"
	electionPath   = "/election"
	// The clients of the other recipes: RWMutex clients on rwPath, each
	// lock a read or a write; Semaphore clients with semLeases leases on
	// semPath; MultiLock clients on lockPath and multiPath, so that they
	// contend with the Mutex clients too.
	rwClients    = 3
	semClients   = 3
	semLeases    = 2
	multiClients = 2
	rwPath       = "/rw"
	semPath      = "/sem"
	multiPath    = "/multi"
	// One RWMutex lock in writeOneIn is a write lock.
	writeOneIn = 3

	writesPerHold  = 3
	termWriteEvery = 20 * time.Millisecond
	// One hold in longHoldOneIn lasts between longHoldMin and longHoldMax.
	longHoldOneIn = 5
	longHoldMin   = 500 * time.Millisecond
	longHoldMax   = 4 * time.Second
	// Bounds on waits that should take far less; generous for 2 cores
	// running three JVMs under the race detector.
	connectTimeout = 60 * time.Second
	unlockTimeout  = 10 * time.Second
	joinTimeout    = 60 * time.Second
	healthyTimeout = 60 * time.Second
	modeTimeout    = 3 * time.Second
	deleteTimeout  = 15 * time.Second
	closeTimeout   = 30 * time.Second

	// badName is a server name that never resolves (RFC 2606).
	badName = "zk-gone.invalid:2181"
	// The digest credentials of the clients that authenticate. Candidates
	// (and the observer) all do, and their nodes carry a digest-only ACL,
	// so every election request after a reconnect needs the credentials
	// re-sent; odd-numbered mutex clients authenticate with the default
	// ACL, so the lock directory stays open to the others.
	authUser     = "chaos"
	authPassword = "secret"
)

// client is one participant: a Session through its own proxies, so faults
// can target it alone, and its recipe: a Mutex, an Election, an RWMutex, a
// Semaphore or a MultiLock, as its res says. FaultCloseSession replaces
// the Session and the recipe.
type client struct {
	res     string // ResLock, ResElection, ResRW, ResSem or ResMulti
	id      int
	ps      *zktesting.Proxies
	servers []string               // the proxies, plus a hung server or a bad name for some
	opts    []zklock.SessionOption // the options each of its Sessions is made with
	hung    bool                   // servers holds a hung server
	bad     bool                   // servers holds a name that does not resolve
	auth    bool                   // its Sessions authenticate
	rng     *rand.Rand             // the client's own: used by its goroutine only
	// Dials of the hung server and of the bad name, by all its Sessions:
	// they show the faults that aim at them took effect.
	hungDials, badDials atomic.Int64

	mu      sync.Mutex        // guards s, m, e, rw, sem, ml and renewed
	s       *zklock.Session   // the current Session
	m       *zklock.Mutex     // ResLock
	e       *zklock.Election  // ResElection
	rw      *zklock.RWMutex   // ResRW
	sem     *zklock.Semaphore // ResSem
	ml      *zklock.MultiLock // ResMulti
	renewed chan struct{}     // closed when s is replaced
}

// current returns the client's Session, its recipe, and a channel closed
// when they are replaced.
func (c *client) current() (*zklock.Session, *zklock.Mutex, *zklock.Election, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.s, c.m, c.e, c.renewed
}

// install makes s the client's Session, with a new recipe on it, and tells
// whoever waits on the previous one.
func (c *client) install(s *zklock.Session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.s = s
	data := zklock.WithData(fmt.Appendf(nil, "%s-client-%d", c.res, c.id))
	switch c.res {
	case ResLock:
		c.m = zklock.NewMutex(s, lockPath, zklock.WithData(fmt.Appendf(nil, "client-%d", c.id)))
	case ResElection:
		c.e = zklock.NewElection(s, electionPath, zklock.WithValue([]byte(candidateValue(c.id))))
	case ResRW:
		c.rw = zklock.NewRWMutex(s, rwPath, data)
	case ResSem:
		c.sem = zklock.NewSemaphore(s, semPath, semLeases, data)
	case ResMulti:
		c.ml = zklock.NewMultiLock(s, []string{multiPath, lockPath}, data)
	}
	if c.renewed != nil {
		close(c.renewed)
	}
	c.renewed = make(chan struct{})
}

func candidateValue(id int) string { return fmt.Sprintf("cand-%d", id) }

// rig is one run: the ensemble, the clients, the History and the nemesis.
type rig struct {
	t     *testing.T
	zc    *zktesting.Cluster
	local *zktesting.Cluster // the servers, under process control
	root  string
	admin *zk.Conn
	cfg   Config

	h           *History
	lockRes     Resource
	electionRes Resource
	rwRes       Resource
	multiRes    Resource

	mutexes    []*client
	cands      []*client
	rws        []*client
	sems       []*client
	multis     []*client
	observer   *zklock.Election
	sessionsMu sync.Mutex // guards sessions
	sessions   []*zklock.Session
	timeout    time.Duration // negotiated
	hung       string        // a server that accepts and never answers
	child      *childProc    // a lock client in its own process

	liveMu sync.Mutex       // guards live
	live   map[int]liveHold // holds begun whose Done has not been seen closed, by id

	wg sync.WaitGroup // hold watchers, state recorders, the observer reader
}

// liveHold is a hold whose end the harness has yet to see, kept so that
// the end of Session.Close can look at its Done directly.
type liveHold struct {
	res    string
	client int
	done   <-chan struct{}
}

func (r *rig) addLive(id int, res string, client int, done <-chan struct{}) {
	r.liveMu.Lock()
	defer r.liveMu.Unlock()
	r.live[id] = liveHold{res: res, client: client, done: done}
}

func (r *rig) dropLive(id int) {
	r.liveMu.Lock()
	defer r.liveMu.Unlock()
	delete(r.live, id)
}

// stillOpen returns the client's holds whose Done is open right now.
func (r *rig) stillOpen(res string, client int) []int {
	r.liveMu.Lock()
	defer r.liveMu.Unlock()
	var out []int
	for id, l := range r.live {
		if l.res != res || l.client != client {
			continue
		}
		select {
		case <-l.done:
		default:
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// runChaos runs every scenario against one fresh ensemble under the faults
// of kinds drawn from seed, for dur, then checks the History.
func runChaos(t *testing.T, seed uint64, kinds []FaultKind, dur time.Duration) {
	zc := zktesting.Start(t, 3)
	zc.RequireControl(t)
	r := &rig{
		t:     t,
		zc:    zc,
		local: zc,
		root:  zc.Root(t),
		admin: zc.Admin(t),
		h:     NewHistory(),
		hung:  zktest.HungServer(t),
		live:  make(map[int]liveHold),
	}
	// The operator reaches the election's nodes, which only the digest
	// user may touch.
	if err := r.admin.AddAuth("digest", []byte(authUser+":"+authPassword)); err != nil {
		t.Fatalf("admin auth: %v", err)
	}
	// The Mutex clients and the other recipes' clients stop together, for
	// the final round.
	mutexCtx, stopMutexes := context.WithCancel(context.Background())
	electionCtx, stopElection := context.WithCancel(context.Background())
	// On an early failure: stop the clients and join every goroutine, so
	// the next run and goleak see none of them.
	t.Cleanup(func() {
		stopMutexes()
		stopElection()
		if r.child != nil {
			_ = r.child.stop()
		}
		r.closeSessions()
		r.join(&r.wg, "recorders")
	})

	timeout := r.connectAll(seed)
	r.timeout = timeout
	child, err := r.startChild(r.zc.NewProxies(t).Addrs(), seed)
	if err != nil {
		t.Fatalf("starting the child holder: %v", err)
	}
	r.child = child
	r.cfg = Config{Bound: timeout + 5*time.Second, RevocationBound: timeout + 5*time.Second,
		Limits: map[string]int{ResSem: semLeases}}
	t.Logf("negotiated session timeout %v; %d mutex clients, %d candidates, %d rwmutex clients, %d semaphore clients (%d leases), %d multi-lock clients; faults for %v",
		timeout, mutexClients, candidates, rwClients, semClients, semLeases, multiClients, dur)

	var mutexLoops, electionLoops sync.WaitGroup
	for _, c := range slices.Concat(r.mutexes, r.rws, r.sems, r.multis) {
		mutexLoops.Go(func() { r.mutexLoop(mutexCtx, c) })
	}
	for _, c := range r.cands {
		electionLoops.Go(func() { r.candidate(electionCtx, c) })
	}

	// Faults start once both scenarios are under way, so the first ones
	// meet holders.
	r.waitFor("a first lock holder and leader", joinTimeout, func() bool {
		return len(r.h.Open(ResLock)) > 0 && len(r.h.Open(ResElection)) > 0
	})
	r.nemesis(seed, kinds, timeout, dur)

	// Liveness, now that the faults have stopped.
	r.leaderCheck()
	stopMutexes()
	r.join(&mutexLoops, "mutex, rwmutex, semaphore and multi-lock clients")
	if err := r.child.stop(); err != nil {
		t.Error(err)
	}
	r.finalRound()
	stopElection()
	r.join(&electionLoops, "candidates")

	r.closeSessions()
	r.join(&r.wg, "recorders")

	report := Check(r.h.Events(), r.cfg)
	var counts []string
	for _, fr := range []struct {
		name string
		res  *Resource
	}{{ResLock, &r.lockRes}, {ResElection, &r.electionRes}, {ResRW, &r.rwRes}, {ResMulti, &r.multiRes}} {
		acc, rej := fr.res.Counts()
		counts = append(counts, fmt.Sprintf("%s accepted=%d rejected=%d", fr.name, acc, rej))
	}
	t.Logf("seed %d counters:\n%s\nfenced resources: %s", seed, report.Summary(), strings.Join(counts, ", "))
	t.Logf("seed %d faults:\n%s", seed, faultLog(r.h.Events(), report.Start))
	if dir := os.Getenv(envHistory); dir != "" {
		p := filepath.Join(dir, fmt.Sprintf("chaos-history-%d.txt", seed))
		if err := os.WriteFile(p, []byte(dump(r.h.Events(), report.Start)), 0o644); err != nil {
			t.Errorf("writing the history: %v", err)
		} else {
			t.Logf("history written to %s", p)
		}
	}
	for _, v := range report.Violations {
		t.Error(v.Format(report.Start))
	}
	if len(report.Violations) > 0 {
		t.Errorf("seed %d: %d violations; rerun with %s=%d", seed, len(report.Violations), envSeed, seed)
	}

	// Cleanliness: with every Session closed, no contender node is left.
	// Nodes of sessions a client gave up at the loss deadline go when the
	// server expires those sessions, within a session timeout.
	for _, dir := range []string{lockPath, electionPath, rwPath, semPath + "/leases", semPath + "/locks", multiPath} {
		r.waitEmpty(r.root+dir, timeout+15*time.Second)
	}
}

// connect opens a Session on servers with opts and registers it for
// closing. Its dials of the hung server and the bad name are counted in c,
// if not nil.
func (r *rig) connect(c *client, servers []string, opts ...zklock.SessionOption) (*zklock.Session, error) {
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	dial := func(network, addr string, timeout time.Duration) (net.Conn, error) {
		if c != nil {
			switch addr {
			case r.hung:
				c.hungDials.Add(1)
			case badName:
				c.badDials.Add(1)
			}
		}
		return net.DialTimeout(network, addr, timeout)
	}
	opts = append([]zklock.SessionOption{zklock.WithChroot(r.root), zklock.WithSessionTimeout(sessionTimeout),
		zklock.WithDialer(dial)}, opts...)
	s, err := zklock.Connect(ctx, servers, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to %v: %w", servers, err)
	}
	r.sessionsMu.Lock()
	r.sessions = append(r.sessions, s)
	r.sessionsMu.Unlock()
	return s, nil
}

// authOpts are the options of a client that authenticates; the election's
// nodes are the digest user's alone.
func authOpts(res string) []zklock.SessionOption {
	opts := []zklock.SessionOption{zklock.WithDigestAuth(authUser, authPassword)}
	if res == ResElection {
		opts = append(opts, zklock.WithACL(zk.DigestACL(zk.PermAll, authUser, authPassword)...))
	}
	return opts
}

// connectAll creates every client and the observer and returns the
// negotiated session timeout.
func (r *rig) connectAll(seed uint64) time.Duration {
	newClient := func(res string, id int) *client {
		ps := r.zc.NewProxies(r.t)
		c := &client{res: res, id: id, ps: ps, servers: ps.Addrs(),
			rng: rand.New(rand.NewPCG(seed, uint64(len(r.clients()))))}
		// Some clients have a hung server or a name that does not resolve
		// in their list, at a place drawn from the seed, so some of their
		// reconnects (or the first connect) land on it.
		switch id % 4 {
		case 1:
			c.hung = true
		case 2:
			c.bad = true
		case 3:
			c.hung, c.bad = true, true
		}
		if c.hung {
			c.servers = slices.Insert(c.servers, c.rng.IntN(len(c.servers)+1), r.hung)
		}
		if c.bad {
			c.servers = slices.Insert(c.servers, c.rng.IntN(len(c.servers)+1), badName)
		}
		if res == ResElection || id%2 == 1 {
			c.auth = true
			c.opts = authOpts(res)
		}
		s, err := r.connect(c, c.servers, c.opts...)
		if err != nil {
			r.t.Fatalf("%s c%d: %v", res, id, err)
		}
		c.install(s)
		r.recordStates(c, s)
		return c
	}
	for i := range mutexClients {
		r.mutexes = append(r.mutexes, newClient(ResLock, i))
	}
	for i := range candidates {
		r.cands = append(r.cands, newClient(ResElection, i))
	}
	for i := range rwClients {
		r.rws = append(r.rws, newClient(ResRW, i))
	}
	for i := range semClients {
		r.sems = append(r.sems, newClient(ResSem, i))
	}
	for i := range multiClients {
		r.multis = append(r.multis, newClient(ResMulti, i))
	}
	// The observer stands outside the faults aimed at clients: it shares
	// the cluster's proxies.
	obs, err := r.connect(nil, r.zc.Servers(), authOpts(ResElection)...)
	if err != nil {
		r.t.Fatalf("observer: %v", err)
	}
	r.observer = zklock.NewElection(obs, electionPath)
	terms, err := r.observer.Observe(context.Background()) // ends when its Session closes
	if err != nil {
		r.t.Fatalf("observe: %v", err)
	}
	r.wg.Go(func() {
		for term := range terms {
			r.h.Add(Event{Op: OpObserve, Res: ResElection, Client: -1, Token: term.Token, Key: term.Key, Note: string(term.Value)})
		}
	})
	s, _, _, _ := r.mutexes[0].current()
	timeout := s.NegotiatedTimeout()
	if timeout != sessionTimeout {
		r.t.Fatalf("negotiated session timeout %v, want %v", timeout, sessionTimeout)
	}
	return timeout
}

// recordStates copies the state changes of s, c's Session, into the
// History; they explain the holds' ends when a violation is printed.
func (r *rig) recordStates(c *client, s *zklock.Session) {
	sub := s.Subscribe()
	r.wg.Go(func() {
		defer sub.Stop()
		for {
			// Bounded by the Session: Next fails once it is closed.
			ch, err := sub.Next(context.Background())
			if err != nil {
				return
			}
			r.h.Add(Event{At: ch.Time, Op: OpState, Res: c.res, Client: c.id, Note: ch.String()})
		}
	})
}

// closeSessions closes every Session, all at once: each Close waits for its
// connection to shut down.
func (r *rig) closeSessions() {
	r.sessionsMu.Lock()
	ss := r.sessions
	r.sessionsMu.Unlock()
	var wg sync.WaitGroup
	for _, s := range ss {
		wg.Go(func() { s.Close() })
	}
	wg.Wait()
}

// waitFor waits, bounded, until cond holds, re-checking it at every event.
func (r *rig) waitFor(what string, bound time.Duration, cond func() bool) {
	deadline := time.After(bound)
	for {
		changed := r.h.Changed()
		if cond() {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			r.t.Errorf("no %s within %v", what, bound)
			return
		}
	}
}

// join waits for wg, bounded.
func (r *rig) join(wg *sync.WaitGroup, what string) {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(joinTimeout):
		var stacks strings.Builder
		_ = pprof.Lookup("goroutine").WriteTo(&stacks, 1)
		r.t.Errorf("%s did not stop within %v; goroutines:\n%s", what, joinTimeout, stacks.String())
	}
}

// watchHold records the end of a hold the moment its Done closes.
func (r *rig) watchHold(done <-chan struct{}, hold context.Context, res string, client, id int) {
	r.addLive(id, res, client, done)
	r.wg.Go(func() {
		<-done // bounded: every hold ends at the latest when its Session closes
		at := time.Now()
		r.h.Add(Event{At: at, Op: OpHoldEnd, Res: res, Client: client, Hold: id, Err: context.Cause(hold)})
		r.dropLive(id)
	})
}

// write is one write to the fenced resource by a holder that honours its
// hold; false once the hold has ended. e names the writer: its Res,
// Client, Hold, Token and, for a MultiLock, On.
func (r *rig) write(hold context.Context, res *Resource, e Event) bool {
	written, ok, highest := res.Write(hold, e.Token)
	if !written {
		return false
	}
	e.Op, e.OK = OpWrite, ok
	if !ok {
		e.Note = fmt.Sprintf("resource has seen 0x%x", highest)
	}
	r.h.Add(e)
	return true
}

// read is write for a reader: it checks its hold and reads.
func (r *rig) read(hold context.Context, res *Resource, e Event) bool {
	read, ok, highest := res.Read(hold, e.Token)
	if !read {
		return false
	}
	e.Op, e.OK = OpRead, ok
	if !ok {
		e.Note = fmt.Sprintf("resource has seen 0x%x", highest)
	}
	r.h.Add(e)
	return true
}

// mutexLoop locks, works and unlocks until ctx ends, going on with the
// new Session when its Session is closed; c is a Mutex client or one of
// the other recipes' (not a candidate).
func (r *rig) mutexLoop(ctx context.Context, c *client) {
	for ctx.Err() == nil {
		_, _, _, renewed := c.current()
		err := r.acquireOnce(ctx, c, writesPerHold, false)
		switch {
		case err == nil, ctx.Err() != nil:
		case errors.Is(err, zklock.ErrSessionClosed):
			select {
			case <-renewed: // bounded: the nemesis replaces a closed Session at once
			case <-ctx.Done():
			}
		default:
			// Not expected, but recorded; do not spin on it.
			select {
			case <-time.After(50 * time.Millisecond):
			case <-ctx.Done():
			}
		}
	}
}

// lockOnce is one Lock of m, c's Mutex, critical section and Unlock, all
// recorded.
func (r *rig) lockOnce(ctx context.Context, c *client, m *zklock.Mutex, writes int) error {
	r.h.Add(Event{Op: OpLockCall, Res: ResLock, Client: c.id})
	err := m.Lock(ctx)
	at := time.Now()
	if err != nil {
		r.h.Add(Event{At: at, Op: OpLockErr, Res: ResLock, Client: c.id, Err: err})
		return err
	}
	// Only this goroutine locks m, so these all describe the hold just
	// granted, even if it has already been lost.
	hold, done, token, key := m.Context(), m.Done(), m.Token(), m.Key()
	id := r.h.Begin(Event{At: at, Res: ResLock, Client: c.id, Token: token, Key: key})
	r.watchHold(done, hold, ResLock, c.id, id)
	r.use(c, hold, writes, func() bool {
		return r.write(hold, &r.lockRes, Event{Res: ResLock, Client: c.id, Hold: id, Token: token})
	})

	r.h.Add(Event{Op: OpUnlockCall, Res: ResLock, Client: c.id, Hold: id})
	uctx, cancel := context.WithTimeout(context.Background(), unlockTimeout)
	err = m.Unlock(uctx)
	cancel()
	r.h.Add(Event{Op: OpUnlockDone, Res: ResLock, Client: c.id, Hold: id, Err: err})
	return nil
}

// candidate runs c in the election until ctx ends, going on with the new
// Session when its Session is closed; each term writes to the fenced
// resource until leadership ends.
func (r *rig) candidate(ctx context.Context, c *client) {
	for {
		_, _, e, renewed := c.current()
		err := e.Run(ctx, func(lead context.Context) error {
			at := time.Now()
			token, key := e.Token(), e.Key()
			id := r.h.Begin(Event{At: at, Res: ResElection, Client: c.id, Token: token, Key: key})
			r.addLive(id, ResElection, c.id, lead.Done())
			for r.write(lead, &r.electionRes, Event{Res: ResElection, Client: c.id, Hold: id, Token: token}) {
				select {
				case <-time.After(termWriteEvery):
					continue
				case <-lead.Done():
				}
				break
			}
			<-lead.Done() // at once: the write above saw it end
			r.h.Add(Event{At: time.Now(), Op: OpHoldEnd, Res: ResElection, Client: c.id, Hold: id, Err: context.Cause(lead)})
			r.dropLive(id)
			return nil
		})
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, zklock.ErrSessionClosed):
			select {
			case <-renewed: // bounded: the nemesis replaces a closed Session at once
			case <-ctx.Done():
				return
			}
		default:
			r.t.Errorf("candidate %d: Run returned before its context ended: %v", c.id, err)
			return
		}
	}
}

// leaderCheck waits, bounded by cfg.Bound, until exactly one candidate
// leads, the observer has seen it, and Leader names it; it records the
// outcome for the checker.
func (r *rig) leaderCheck() {
	deadline := time.NewTimer(r.cfg.Bound)
	defer deadline.Stop()
	// Leader is read from the servers, which announce nothing when it
	// starts to agree; re-check now and then as well as on every event.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	why := "not checked"
	for {
		changed := r.h.Changed()
		if ok, key, note := r.singleLeader(); ok {
			// Stamped before the final look, so the term is open at At.
			at := time.Now()
			if open := r.h.Open(ResElection); len(open) == 1 && open[0].Key == key {
				r.h.Add(Event{At: at, Op: OpPhase, Phase: PhaseLeaderCheck, Res: ResElection, Client: -1, Key: key, OK: true, Note: note})
				return
			}
		} else {
			why = note
		}
		select {
		case <-changed:
		case <-tick.C:
		case <-deadline.C:
			r.h.Add(Event{Op: OpPhase, Phase: PhaseLeaderCheck, Res: ResElection, Client: -1, Note: why})
			return
		}
	}
}

func (r *rig) singleLeader() (ok bool, key, note string) {
	open := r.h.Open(ResElection)
	if len(open) != 1 {
		return false, "", fmt.Sprintf("%d terms open", len(open))
	}
	term := open[0]
	if last, seen := r.h.LastObserved(); !seen || last.Key != term.Key {
		return false, "", fmt.Sprintf("the observer has not seen c%d lead", term.Client)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, err := r.observer.Leader(ctx)
	want := candidateValue(term.Client)
	if err != nil || string(v.Value) != want {
		return false, "", fmt.Sprintf("Leader returned %q, %v; want %q", v.Value, err, want)
	}
	return true, term.Key, "leader " + want
}

// finalRound has every mutex client, and every client of the other
// recipes but the election, Lock and Unlock once, concurrently, now that
// the faults have stopped (an RWMutex client takes the write lock); the
// checker holds each Lock to cfg.Bound. The context allows more, so a slow
// Lock is measured, not cut.
func (r *rig) finalRound() {
	for _, res := range []string{ResLock, ResRW, ResSem, ResMulti} {
		r.h.Add(Event{Op: OpPhase, Phase: PhaseFinalRound, Res: res, Client: -1, OK: true, Note: "bound " + r.cfg.Bound.String()})
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.Bound+10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, c := range slices.Concat(r.mutexes, r.rws, r.sems, r.multis) {
		wg.Go(func() { _ = r.acquireOnce(ctx, c, 1, true) })
	}
	wg.Wait()
}

// waitEmpty waits until dir has no children (or is gone), as another client
// sees it.
func (r *rig) waitEmpty(dir string, bound time.Duration) {
	deadline := time.After(bound)
	for {
		kids, _, ev, err := r.admin.ChildrenW(dir)
		if errors.Is(err, zk.ErrNoNode) || (err == nil && len(kids) == 0) {
			return
		}
		if err != nil {
			r.t.Errorf("listing %s: %v", dir, err)
			return
		}
		select {
		case <-ev:
		case <-deadline:
			r.t.Errorf("contender nodes left in %s %v after every Session closed: %v", dir, bound, kids)
			return
		}
	}
}

// dump renders a whole History, one event a line, in time order.
func dump(events []Event, base time.Time) string {
	evs := slices.Clone(events)
	slices.SortStableFunc(evs, func(a, b Event) int { return a.At.Compare(b.At) })
	var b strings.Builder
	for _, e := range evs {
		b.WriteString(e.String(base))
		b.WriteByte('\n')
	}
	return b.String()
}

// faultLog lists the faults of a History, one line per start and end.
func faultLog(events []Event, base time.Time) string {
	var b strings.Builder
	for _, e := range events {
		if e.Op == OpFaultStart || e.Op == OpFaultEnd {
			b.WriteString("  ")
			b.WriteString(e.String(base))
			b.WriteByte('\n')
		}
	}
	return b.String()
}
