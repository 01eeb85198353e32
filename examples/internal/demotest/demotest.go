// Package demotest runs an example program in its test, against the
// shared test ZooKeeper, and checks its output.
package demotest

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/zklock/zklock/internal/zktest"
	"github.com/zklock/zklock/zktesting"
)

// Main runs an example program's tests against the shared test ZooKeeper
// (see zktest.Main): call it from the package's TestMain.
func Main(m *testing.M) { zktest.Main(m) }

// Run calls a program's run function with a bounded context and the
// configuration that config makes from the shared ZooKeeper's servers and a
// path of the test's own, and logs what the program printed. The test fails
// if run fails or the output lacks any of want. Run skips the test under
// -short.
func Run[C any](t *testing.T, run func(context.Context, C, io.Writer) error,
	config func(servers []string, path string) C, want ...string) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test; needs ZooKeeper")
	}
	zc := zktesting.Shared(t)
	cfg := config(zc.Direct(), zc.Root(t)+"/demo")
	ctx, cancel := context.WithTimeout(context.Background(), zktesting.Timeout)
	defer cancel()
	var out bytes.Buffer
	err := run(ctx, cfg, &out)
	t.Logf("output:\n%s", out.String())
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	for _, w := range want {
		if !strings.Contains(out.String(), w) {
			t.Errorf("output lacks %q", w)
		}
	}
}
