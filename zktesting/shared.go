package zktesting

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"sync"
	"testing"
)

// sharedCluster is the package-wide standalone server behind Shared.
type sharedCluster struct {
	mu  sync.Mutex // guards c and err
	c   *Cluster
	err error // why the start failed; not retried
}

var shared sharedCluster

// get returns the shared server, starting it on first use.
func (s *sharedCluster) get() (*Cluster, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.c == nil && s.err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), Timeout)
		defer cancel()
		s.c, s.err = New(ctx, 1)
	}
	return s.c, s.err
}

func (s *sharedCluster) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.c != nil {
		_ = s.c.Close()
		s.c = nil
	}
}

// Shared returns one standalone server shared by every test of the package
// (or the ZK_SERVERS servers), starting it on first use; starting a JVM
// takes seconds, sharing it keeps short tests short. Tests keep apart with
// Root and, for faults, NewProxies; what stops or configures servers needs
// Start. Run or Main, from the package's TestMain, stops it and removes its
// data; without them its process is killed when the test binary exits, and
// its data is left in the temporary directory. It fails the test if the
// server cannot be started, and a failed start is not retried.
func Shared(t testing.TB) *Cluster {
	t.Helper()
	c, err := shared.get()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.logIfFailed(t) })
	return c
}

// SharedServers returns the client addresses (Cluster.Servers) of the
// shared server, starting it if need be, for code that has no testing.TB.
func SharedServers() ([]string, error) {
	c, err := shared.get()
	if err != nil {
		return nil, err
	}
	return c.Servers(), nil
}

// Main runs the package's tests and examples, stops the shared server and
// exits with their result: func TestMain(m *testing.M) { zktesting.Main(m) }.
func Main(m *testing.M) { os.Exit(Run(m)) }

// Run is Main without the exit, for a TestMain that has more to check or
// stop after the run; it returns the exit code.
func Run(m *testing.M) int {
	code := m.Run()
	shared.stop()
	return code
}

// MainWithExamples is Main for a package whose Example functions need a
// server. An example has no testing.TB to start one with or to skip with,
// so it does both for them: under -short it skips them (as tests that need
// a server should skip themselves under -short); otherwise it starts the
// shared server (or takes ZK_SERVERS) before the run and sets *servers to
// its client addresses, for the examples to dial. After the run it fails
// the run if any node is left at or under roots, the paths the examples
// use (lock directories aside, as in Root), and removes them all. If the
// server cannot be started, the examples are skipped and the run fails.
func MainWithExamples(m *testing.M, servers *[]string, roots ...string) {
	os.Exit(RunWithExamples(m, servers, roots...))
}

// RunWithExamples is MainWithExamples without the exit; it returns the
// exit code.
func RunWithExamples(m *testing.M, servers *[]string, roots ...string) int {
	flag.Parse()
	if testing.Short() {
		skipExamples()
		return Run(m)
	}
	c, err := shared.get()
	if err != nil {
		// The tests report it where they need a server; the examples
		// cannot, so they are skipped and the run fails here.
		skipExamples()
		code := Run(m)
		fmt.Fprintf(os.Stderr, "examples not run (-short skips them): %v\n", err)
		return max(code, 1)
	}
	*servers = c.Servers()
	code := m.Run()
	var errs []error
	for _, root := range roots {
		errs = append(errs, c.CheckLeftovers(root, true))
	}
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintf(os.Stderr, "examples: %v\n", err)
		code = max(code, 1)
	}
	shared.stop()
	return code
}

// skipExamples adds the Example functions to -test.skip.
func skipExamples() {
	skip := "^Example"
	if prev := flag.Lookup("test.skip").Value.String(); prev != "" {
		skip = prev + "|" + skip
	}
	if err := flag.Set("test.skip", skip); err != nil {
		panic("zktesting: " + err.Error()) // the testing package defines the flag
	}
}
