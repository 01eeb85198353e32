package zktesting_test

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/zklock/zklock/zktesting"
)

// servers is what the examples dial: the shared test server.
var servers []string

// TestMain runs the examples against the shared server (they are skipped
// under -short), stops it, and fails the run if any goroutine is left.
func TestMain(m *testing.M) {
	code := zktesting.RunWithExamples(m, &servers, "/zktesting-examples")
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}
