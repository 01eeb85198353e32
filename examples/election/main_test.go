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
	for _, kill := range []string{killCrash, killClose} {
		t.Run(kill, func(t *testing.T) {
			zc := zktest.Shared(t)
			cfg := config{
				rounds:         1,
				kill:           kill,
				sessionTimeout: time.Second,
				pause:          200 * time.Millisecond,
				path:           zc.Root(t) + "/election",
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
				"overlapping leaderships observed: 0",
				"term tokens strictly increasing: yes",
				"failover 1: candidate-1 -> candidate-2 took",
			} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output lacks %q", want)
				}
			}
		})
	}
}
