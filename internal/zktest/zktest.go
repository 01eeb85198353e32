// Package zktest is what zklock's own tests add to zktesting, the public
// test-server package they share with users: a TestMain that also fails
// the run when a goroutine is left (goleak), which zktesting leaves out so
// that its users need not depend on goleak, and tools that only zklock's
// tests need (Cutter, HungServer, WaitWatched).
package zktest

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/zklock/zklock/zktesting"
)

// Main runs a package's tests, stops zktesting's shared server, then fails
// the run if any goroutine is left (goleak).
func Main(m *testing.M) { os.Exit(Run(m)) }

// Run is Main without the exit, for a TestMain with cleanup of its own; it
// returns the exit code.
func Run(m *testing.M) int { return noLeaks(zktesting.Run(m)) }

// MainWithExamples is zktesting.MainWithExamples (examples against the
// shared server, skipped under -short; nothing left under roots) followed
// by Main's goroutine check.
func MainWithExamples(m *testing.M, servers *[]string, roots ...string) {
	os.Exit(noLeaks(zktesting.RunWithExamples(m, servers, roots...)))
}

// noLeaks returns code, or 1 if the run passed so far and a goroutine is
// left.
func noLeaks(code int) int {
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	return code
}
