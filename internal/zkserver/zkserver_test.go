package zkserver_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/zklock/zklock/internal/zkserver"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// startTimeout is generous because JVMs start slowly on a loaded 2-core
// machine, yet bounded so a broken setup fails instead of hanging.
const startTimeout = 60 * time.Second

// requireInstall fails (never skips) when ZooKeeper is missing: a silently
// skipped integration suite looks green while testing nothing.
func requireInstall(t *testing.T) *zkserver.Install {
	t.Helper()
	in, err := zkserver.Find()
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func start(t *testing.T, cfg zkserver.Config) *zkserver.Cluster {
	t.Helper()
	cfg.Install = requireInstall(t)
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	c, err := zkserver.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server output:\n%s", c.Tail())
		}
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

// eventually polls cond until it reports true or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, state := cond()
		if ok {
			return
		}
		select {
		case <-deadline.C:
			t.Fatalf("timed out after %v waiting for %s; last state: %s", timeout, what, state)
		case <-tick.C:
		}
	}
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// processGone reports whether pid no longer exists (it has been reaped).
func processGone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// javaUsing returns the pids of processes whose command line mentions dir,
// to prove a failed Start left nothing running.
func javaUsing(t *testing.T, dir string) []string {
	t.Helper()
	cmdlines, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	var pids []string
	for _, f := range cmdlines {
		b, err := os.ReadFile(f)
		if err == nil && bytes.Contains(b, []byte(dir)) {
			pids = append(pids, filepath.Base(filepath.Dir(f)))
		}
	}
	return pids
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestStandalone(t *testing.T) {
	var log syncBuffer
	c := start(t, zkserver.Config{Log: &log})
	ctx := ctxTimeout(t, startTimeout)

	if c.Len() != 1 || len(c.Addrs()) != 1 || c.Addrs()[0] != c.Addr(0) {
		t.Fatalf("Len=%d Addrs=%v", c.Len(), c.Addrs())
	}
	if r, err := zkserver.FourLetter(ctx, c.Addr(0), "ruok"); err != nil || r != "imok" {
		t.Fatalf("ruok = %q, %v", r, err)
	}
	if m, err := c.Mode(ctx, 0); err != nil || m != "standalone" {
		t.Fatalf("Mode = %q, %v", m, err)
	}
	if v, err := c.Version(ctx); err != nil || !strings.HasPrefix(v, "Zookeeper version: 3.") {
		t.Fatalf("Version = %q, %v", v, err)
	}

	// A paused server accepts the connection but never answers.
	if err := c.Pause(0); err != nil {
		t.Fatal(err)
	}
	pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	_, err := zkserver.FourLetter(pctx, c.Addr(0), "ruok")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ruok on paused server: err = %v, want DeadlineExceeded", err)
	}
	if err := c.Resume(0); err != nil {
		t.Fatal(err)
	}
	if r, err := zkserver.FourLetter(ctx, c.Addr(0), "ruok"); err != nil || r != "imok" {
		t.Fatalf("ruok after Resume = %q, %v", r, err)
	}

	oldPID := c.PID(0)
	if err := c.Stop(0); err != nil {
		t.Fatal(err)
	}
	if !processGone(oldPID) || c.PID(0) != 0 {
		t.Fatalf("pid %d still exists after Stop (PID()=%d)", oldPID, c.PID(0))
	}
	if _, err := zkserver.FourLetter(ctx, c.Addr(0), "ruok"); err == nil {
		t.Fatal("ruok succeeded on a stopped server")
	}
	if err := c.Pause(0); err == nil {
		t.Fatal("Pause of a stopped server succeeded")
	}
	if err := c.StartServer(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if err := c.StartServer(ctx, 0); err == nil {
		t.Fatal("StartServer of a running server succeeded")
	}
	if m, err := c.Mode(ctx, 0); err != nil || m != "standalone" {
		t.Fatalf("Mode after restart = %q, %v", m, err)
	}

	pid, dir := c.PID(0), c.Dir()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if !processGone(pid) {
		t.Fatalf("pid %d still exists after Close", pid)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temp dir %s not removed: %v", dir, err)
	}
	if err := c.StartServer(ctx, 0); err == nil {
		t.Fatal("StartServer after Close succeeded")
	}
	out := log.String()
	if !strings.Contains(out, "zk1: ") || strings.Contains(out, "zk2: ") {
		t.Fatalf("Log lacks zk1 lines or has others:\n%.2000s", out)
	}
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if !strings.HasPrefix(l, "zk1: ") {
			t.Fatalf("unprefixed log line %q", l)
		}
	}
	if !strings.Contains(c.Tail(), "zk1: ") {
		t.Fatal("Tail is empty")
	}
}

func TestEnsemble(t *testing.T) {
	c := start(t, zkserver.Config{Servers: 3, NoFsync: true})
	ctx := ctxTimeout(t, 3*startTimeout)

	modes := func(skip int) (leaders []int, state string) {
		var parts []string
		for i := range c.Len() {
			if i == skip {
				continue
			}
			m, err := c.Mode(ctx, i)
			if err != nil {
				m = err.Error()
			}
			if m == "leader" {
				leaders = append(leaders, i)
			}
			parts = append(parts, m)
		}
		return leaders, strings.Join(parts, ", ")
	}
	leaders, state := modes(-1)
	if len(leaders) != 1 || strings.Count(state, "follower") != 2 {
		t.Fatalf("modes after Start: %s", state)
	}
	old := leaders[0]

	if err := c.Stop(old); err != nil {
		t.Fatal(err)
	}
	eventually(t, startTimeout, "a new leader", func() (bool, string) {
		l, s := modes(old)
		return len(l) == 1, s
	})

	if err := c.StartServer(ctx, old); err != nil {
		t.Fatal(err)
	}
	if m, err := c.Mode(ctx, old); err != nil || m != "follower" {
		t.Fatalf("old leader after restart: Mode = %q, %v", m, err)
	}
	if l, s := modes(-1); len(l) != 1 {
		t.Fatalf("modes after rejoin: %s", s)
	}
}

func TestFindRejectsInvalidZookeeperHome(t *testing.T) {
	t.Setenv("ZOOKEEPER_HOME", t.TempDir())
	in, err := zkserver.Find()
	if err == nil {
		t.Fatalf("Find = %+v, want error for an empty ZOOKEEPER_HOME", in)
	}
	if !errors.Is(err, zkserver.ErrNotInstalled) {
		t.Errorf("error does not wrap ErrNotInstalled: %v", err)
	}
	if !strings.Contains(err.Error(), "ZOOKEEPER_HOME") || !strings.Contains(err.Error(), zkserver.InstallHint) {
		t.Errorf("error should name ZOOKEEPER_HOME and say how to install: %v", err)
	}

	// Only the jute jar is not enough.
	home := t.TempDir()
	mkfiles(t, home, "lib/zookeeper-jute-3.8.0.jar")
	t.Setenv("ZOOKEEPER_HOME", home)
	if _, err := zkserver.Find(); err == nil {
		t.Fatal("Find accepted a release without the server jar")
	}
}

func TestFindZookeeperHomeLayout(t *testing.T) {
	requireInstall(t) // java on PATH
	home := t.TempDir()
	mkfiles(t, home, "lib/zookeeper-3.8.4.jar", "lib/zookeeper-jute-3.8.4.jar", "lib/slf4j-api-1.7.30.jar", "conf/logback.xml")
	t.Setenv("ZOOKEEPER_HOME", home)
	in, err := zkserver.Find()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		filepath.Join(home, "conf"),
		filepath.Join(home, "lib/slf4j-api-1.7.30.jar"),
		filepath.Join(home, "lib/zookeeper-3.8.4.jar"),
		filepath.Join(home, "lib/zookeeper-jute-3.8.4.jar"),
	}
	if in.Home != home || strings.Join(in.Classpath, ":") != strings.Join(want, ":") || in.Java == "" {
		t.Fatalf("Find = %+v, want Home=%s Classpath=%v", in, home, want)
	}
}

func mkfiles(t *testing.T, root string, names ...string) {
	t.Helper()
	for _, n := range names {
		p := filepath.Join(root, n)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestStartFailsPromptlyWhenServerExits(t *testing.T) {
	in := *requireInstall(t)
	in.Classpath = []string{filepath.Join(t.TempDir(), "missing.jar")}
	dir := t.TempDir()
	ctx := ctxTimeout(t, startTimeout)
	begin := time.Now()
	c, err := zkserver.Start(ctx, zkserver.Config{Install: &in, Dir: dir})
	if err == nil {
		c.Close()
		t.Fatal("Start succeeded without the ZooKeeper classes")
	}
	if took := time.Since(begin); took > startTimeout/2 {
		t.Errorf("Start took %v to notice the exit", took)
	}
	if !strings.Contains(err.Error(), "exited while starting") || !strings.Contains(err.Error(), "Could not find or load main class") {
		t.Errorf("error lacks the exit and the JVM's output: %v", err)
	}
	if pids := javaUsing(t, dir); len(pids) != 0 {
		t.Errorf("processes left running: %v", pids)
	}
}

func TestStartContextEndsKillsServers(t *testing.T) {
	in := requireInstall(t)
	dir := t.TempDir()
	// Far too short for a JVM to come up, so readiness cannot succeed.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	c, err := zkserver.Start(ctx, zkserver.Config{Install: in, Servers: 3, Dir: dir})
	if err == nil {
		c.Close()
		t.Fatal("Start succeeded within 300ms")
	}
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "last readiness error") {
		t.Errorf("err = %v, want DeadlineExceeded with the last readiness error", err)
	}
	if pids := javaUsing(t, dir); len(pids) != 0 {
		t.Errorf("processes left running: %v", pids)
	}
}
