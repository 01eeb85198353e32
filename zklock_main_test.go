package zklock_test

import (
	"testing"

	"github.com/zklock/zklock/internal/zktest"
)

// servers stands, in the examples, for your ensemble's addresses, such as
// []string{"zk1:2181", "zk2:2181", "zk3:2181"}. TestMain points it at a
// test server.
var servers []string

// TestMain runs the examples against a test server, which leaves nothing
// behind under the paths they use; under -short it skips them. Every test
// finds its own server through zktesting.
func TestMain(m *testing.M) {
	zktest.MainWithExamples(m, &servers, "/examples", "/examples-config")
}
