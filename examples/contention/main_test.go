package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/zklock/zklock/internal/zktest"
)

func TestMain(m *testing.M) { zktest.Main(m) }

func TestRun(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test; needs ZooKeeper")
	}
	zc := zktest.Shared(t)
	cfg := config{
		workers:        3,
		duration:       6 * time.Second,
		holdMin:        100 * time.Millisecond,
		holdMax:        300 * time.Millisecond,
		pause:          100 * time.Millisecond,
		sessionTimeout: time.Second,
		path:           zc.Root(t) + "/contention",
		servers:        zc.Direct(),
	}
	ctx, cancel := context.WithTimeout(context.Background(), zktest.Timeout)
	defer cancel()
	var out bytes.Buffer
	err := run(ctx, cfg, &out)
	t.Logf("output:\n%s", out.String())
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	for _, want := range []string{
		"violations: 0",
		"overlapping holds observed: 0",
		"fencing tokens strictly increasing: yes",
		"before the next acquisition",
		"Unlock reports, as expected:",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
}
