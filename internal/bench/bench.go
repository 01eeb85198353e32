// Package bench measures zklock's locks and leader election against a real
// ZooKeeper, next to go-zookeeper's own zk.Lock and next to the floor that
// bare ZooKeeper round trips and watch notifications set in the same run.
// It is the engine of the zklock bench command.
//
// Every latency is reported as percentiles of the exact samples. Throughput
// scenarios alternate the implementations in rounds, so drift on a shared
// machine falls on both alike.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zklock/zklock/internal/zkserver"
)

// Defaults for the zero Config.
const (
	DefaultDuration = 5 * time.Second
	DefaultWaiters  = 10000
)

// DefaultSessions are the contended scenario sizes used when
// Config.Sessions is empty.
var DefaultSessions = []int{2, 8, 32}

// Fixed shape of the scenarios.
const (
	manyLockGoroutines = 64
	// rounds splits each throughput measurement into alternating turns of
	// the implementations.
	rounds = 2
)

// Config says what to measure and where.
type Config struct {
	// Servers are the ZooKeeper servers ("host:port"). Empty: a local
	// standalone server is started through internal/zkserver, with
	// ZooKeeper's default fsync of every transaction, and stopped at the
	// end.
	Servers []string
	// Duration is the measured time of each scenario (after its warm-up);
	// DefaultDuration when zero.
	Duration time.Duration
	// Sessions are the contended scenario sizes; DefaultSessions when
	// empty. Each must be at least 2.
	Sessions []int
	// Baseline also measures go-zookeeper's zk.Lock and reports ratios.
	Baseline bool
	// Memory also runs the memory scenario, which queues Waiters lock
	// nodes on one path of the servers.
	Memory bool
	// Waiters is the number of queued Lock calls in the memory scenario;
	// DefaultWaiters when zero. (The race detector allows at most 8128
	// live goroutines, so race-enabled runs need fewer.)
	Waiters int
	// Progress receives one line per scenario step; nil discards them.
	Progress io.Writer
}

// Report holds every figure of one run. Its JSON field names are stable.
type Report struct {
	Started          time.Time   `json:"started"`
	Finished         time.Time   `json:"finished"`
	ZooKeeperVersion string      `json:"zookeeper_version"`
	Servers          []string    `json:"servers"`
	Settings         Settings    `json:"settings"`
	Environment      Environment `json:"environment"`

	Uncontended Uncontended       `json:"uncontended"`
	Contended   []Contended       `json:"contended"`
	ManyLocks   ManyLocks         `json:"many_locks"`
	ReadWrite   *ReadWrite        `json:"read_write"`
	Semaphore   *SemaphoreFigures `json:"semaphore"`
	Failover    Failover          `json:"failover"`
	Floor       Floor             `json:"floor"`
	Memory      *Memory           `json:"memory,omitempty"` // nil unless Config.Memory

	// Targets are the goals the figures are checked against; they are
	// reported, never enforced.
	Targets []Target `json:"targets"`
}

// Settings are the parameters the run used, defaults applied.
type Settings struct {
	DurationSeconds float64 `json:"duration_s"`
	WarmupSeconds   float64 `json:"warmup_s"`
	Rounds          int     `json:"rounds"`
	Sessions        []int   `json:"sessions"`
	Baseline        bool    `json:"baseline"`
	Waiters         int     `json:"waiters"`
	ManyLocks       int     `json:"many_locks_goroutines"`
	// LocalServer is true when the bench started its own standalone
	// server (fsync on).
	LocalServer bool   `json:"local_server"`
	Root        string `json:"root"`
}

// Environment describes the client machine.
type Environment struct {
	GoVersion  string `json:"go_version"`
	GOOS       string `json:"goos"`
	GOARCH     string `json:"goarch"`
	NumCPU     int    `json:"num_cpu"`
	GOMAXPROCS int    `json:"gomaxprocs"`
}

// Requests counts the requests a client wrote per acquire+release cycle,
// pings and connect requests excluded.
type Requests struct {
	PerCycle float64            `json:"per_cycle"`
	ByOp     map[string]float64 `json:"by_op"`
}

// Uncontended is one session looping Lock→Unlock on one path.
type Uncontended struct {
	Zklock UncontendedFigures  `json:"zklock"`
	ZkLock *UncontendedFigures `json:"zk_lock,omitempty"`
}

// UncontendedFigures are one implementation's uncontended figures.
type UncontendedFigures struct {
	Cycles    int      `json:"cycles"`
	Seconds   float64  `json:"seconds"`
	OpsPerSec float64  `json:"ops_per_s"` // acquire+release cycles
	Acquire   Latency  `json:"acquire"`
	Release   Latency  `json:"release"`
	Requests  Requests `json:"requests"`
	CPUMicros float64  `json:"client_cpu_us"` // this process's CPU time per cycle
}

// Contended is N sessions looping Lock→Unlock on one path.
type Contended struct {
	Sessions int               `json:"sessions"`
	Zklock   ContendedFigures  `json:"zklock"`
	ZkLock   *ContendedFigures `json:"zk_lock,omitempty"`
}

// ContendedFigures are one implementation's figures at one contention
// level. Handoff runs from the moment a holder starts its release to the
// moment the next holder's Lock returns.
type ContendedFigures struct {
	Acquisitions       int      `json:"acquisitions"`
	Seconds            float64  `json:"seconds"`
	AcquisitionsPerSec float64  `json:"acquisitions_per_s"`
	AcquireWait        Latency  `json:"acquire_wait"`
	Handoff            Latency  `json:"handoff"`
	Requests           Requests `json:"requests"`
	CPUMicros          float64  `json:"client_cpu_us"` // this process's CPU time per acquisition
}

// ManyLocks is one session with many goroutines, each looping on its own
// path.
type ManyLocks struct {
	Goroutines int               `json:"goroutines"`
	Zklock     ManyLocksFigures  `json:"zklock"`
	ZkLock     *ManyLocksFigures `json:"zk_lock,omitempty"`
}

// ManyLocksFigures are one implementation's many-locks figures; Cycle is
// one acquire+release.
type ManyLocksFigures struct {
	Cycles    int     `json:"cycles"`
	Seconds   float64 `json:"seconds"`
	OpsPerSec float64 `json:"ops_per_s"`
	Cycle     Latency `json:"cycle"`
	CPUMicros float64 `json:"client_cpu_us"` // this process's CPU time per cycle
}

// Failover is leader election handover: the leader's Session is closed and
// the next candidate's Campaign returns. A plain go-zookeeper watch on the
// leader's node times the bare notification of the same deletion.
type Failover struct {
	Handovers    int     `json:"handovers"`
	NextLeader   Latency `json:"next_leader"`
	Notification Latency `json:"notification"`
	// RatioP50 is NextLeader.P50Ms / Notification.P50Ms.
	RatioP50 float64 `json:"ratio_p50"`
}

// Floor is what bare go-zookeeper operations cost in the same run.
// DeleteNotify runs from the start of a Delete on one connection to the
// exists-watch notification on another, so it includes the delete.
type Floor struct {
	Read         Latency `json:"read"`   // Exists
	Write        Latency `json:"write"`  // Set
	Delete       Latency `json:"delete"` // Delete
	DeleteNotify Latency `json:"delete_notify"`
}

// Memory is many Lock calls waiting on one path from one session.
type Memory struct {
	Waiters int            `json:"waiters"`
	Zklock  MemoryFigures  `json:"zklock"`
	ZkLock  *MemoryFigures `json:"zk_lock,omitempty"`
}

// MemoryFigures are one implementation's cost per waiting Lock call,
// measured after runtime.GC with every waiter parked. Stack bytes are
// those of the waiting goroutines, the caller's own included; goroutines
// per waiter counts the caller's, library goroutines per waiter does not.
type MemoryFigures struct {
	HeapBytesPerWaiter         float64 `json:"heap_bytes_per_waiter"`
	StackBytesPerWaiter        float64 `json:"stack_bytes_per_waiter"`
	BytesPerWaiter             float64 `json:"bytes_per_waiter"` // heap + stack
	GoroutinesPerWaiter        float64 `json:"goroutines_per_waiter"`
	LibraryGoroutinesPerWaiter float64 `json:"library_goroutines_per_waiter"`
	QueueSeconds               float64 `json:"queue_s"` // until every waiter was parked, started in batches of 100
	DrainSeconds               float64 `json:"drain_s"` // until every waiter's node was gone
	// Drain says how the waiters were ended.
	Drain string `json:"drain"`
}

// Target is one goal checked against the measured figures.
type Target struct {
	Name     string  `json:"name"`
	Goal     string  `json:"goal"`
	Measured float64 `json:"measured"`
	Limit    float64 `json:"limit"`
	Met      bool    `json:"met"`
}

// bench is one run in progress.
type bench struct {
	cfg      Config
	servers  []string
	root     string
	warmup   time.Duration
	admin    *zk.Conn
	progress io.Writer
	impls    []impl
}

// Run starts a local server if cfg.Servers is empty, measures every
// scenario in turn and returns the report. Everything it creates on the
// servers lives under /zklock-bench-<pid>-<time> and is deleted before it
// returns, also on error.
func Run(ctx context.Context, cfg Config) (_ *Report, err error) {
	cfg, err = withDefaults(cfg)
	if err != nil {
		return nil, err
	}
	b := &bench{cfg: cfg, progress: cfg.Progress, impls: []impl{implZklock}}
	if b.progress == nil {
		b.progress = io.Discard
	}
	if cfg.Baseline {
		b.impls = append(b.impls, implZK)
	}
	// Warm-up absorbs connection setup and the server's JIT; capped so long
	// runs do not waste time on it.
	b.warmup = min(cfg.Duration/5, time.Second)

	rep := &Report{
		Started: time.Now().UTC(),
		Environment: Environment{
			GoVersion:  runtime.Version(),
			GOOS:       runtime.GOOS,
			GOARCH:     runtime.GOARCH,
			NumCPU:     runtime.NumCPU(),
			GOMAXPROCS: runtime.GOMAXPROCS(0),
		},
	}
	b.servers = slices.Clone(cfg.Servers)
	var local *zkserver.Cluster
	if len(b.servers) == 0 {
		b.logf("starting a local standalone ZooKeeper (fsync on)")
		if local, err = startLocal(ctx); err != nil {
			return nil, err
		}
		defer local.Close()
		b.servers = local.Addrs()
		b.logf("local ZooKeeper listening on %s", strings.Join(b.servers, ","))
	}
	if rep.ZooKeeperVersion, err = serverVersion(ctx, b.servers); err != nil {
		return nil, err
	}
	b.logf("%s", rep.ZooKeeperVersion)

	b.root = fmt.Sprintf("/zklock-bench-%d-%d", os.Getpid(), time.Now().UnixMilli())
	if b.admin, err = rawConn(ctx, b.servers, nil); err != nil {
		return nil, err
	}
	defer b.admin.Close()
	if err := ensurePath(b.admin, b.root); err != nil {
		return nil, err
	}
	defer func() {
		if rerr := removeAll(b.admin, b.root); rerr != nil && err == nil {
			err = fmt.Errorf("removing %s: %w", b.root, rerr)
		}
	}()

	rep.Servers = slices.Clone(b.servers)
	rep.Settings = Settings{
		DurationSeconds: cfg.Duration.Seconds(),
		WarmupSeconds:   b.warmup.Seconds(),
		Rounds:          rounds,
		Sessions:        slices.Clone(cfg.Sessions),
		Baseline:        cfg.Baseline,
		Waiters:         cfg.Waiters,
		ManyLocks:       manyLockGoroutines,
		LocalServer:     local != nil,
		Root:            b.root,
	}

	steps := []struct {
		name string
		run  func(context.Context, *Report) error
	}{
		{"uncontended", b.uncontended},
		{"contended", b.contended},
		{"many locks", b.manyLocks},
		{"read-write", b.readWrite},
		{"semaphore", b.semaphore},
		{"failover", b.failover},
		{"floor", b.floor},
	}
	if cfg.Memory {
		steps = append(steps, struct {
			name string
			run  func(context.Context, *Report) error
		}{"memory", b.memory})
	}
	for _, st := range steps {
		if err := st.run(ctx, rep); err != nil {
			return nil, fmt.Errorf("bench: %s: %w", st.name, err)
		}
	}
	rep.Targets = targets(rep)
	rep.Finished = time.Now().UTC()
	return rep, nil
}

func withDefaults(cfg Config) (Config, error) {
	if cfg.Duration == 0 {
		cfg.Duration = DefaultDuration
	}
	if len(cfg.Sessions) == 0 {
		cfg.Sessions = DefaultSessions
	}
	cfg.Sessions = slices.Clone(cfg.Sessions)
	if cfg.Waiters == 0 {
		cfg.Waiters = DefaultWaiters
	}
	switch {
	case cfg.Duration < 0:
		return cfg, fmt.Errorf("bench: duration %v must be > 0", cfg.Duration)
	case cfg.Waiters < 0:
		return cfg, fmt.Errorf("bench: waiters %d must be > 0", cfg.Waiters)
	}
	for _, n := range cfg.Sessions {
		if n < 2 {
			return cfg, fmt.Errorf("bench: contended sessions %d must be >= 2", n)
		}
	}
	return cfg, nil
}

// startLocal starts one standalone server with ZooKeeper's defaults (fsync
// of every transaction), so figures resemble a real deployment's.
func startLocal(ctx context.Context) (*zkserver.Cluster, error) {
	inst, err := zkserver.Find()
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return zkserver.Start(sctx, zkserver.Config{Servers: 1, Install: inst})
}

// serverVersion returns the "Zookeeper version" field of srvr from the
// first server that answers.
func serverVersion(ctx context.Context, servers []string) (string, error) {
	var errs []error
	for _, s := range servers {
		vctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		reply, err := zkserver.FourLetter(vctx, s, "srvr")
		cancel()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for line := range strings.Lines(reply) {
			if v, ok := strings.CutPrefix(line, "Zookeeper version:"); ok {
				return strings.TrimSpace(v), nil
			}
		}
		errs = append(errs, fmt.Errorf("srvr %s: no version in %q", s, strings.TrimSpace(reply)))
	}
	return "", fmt.Errorf("bench: reading the ZooKeeper version: %w", errors.Join(errs...))
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.progress, format+"\n", args...)
}
