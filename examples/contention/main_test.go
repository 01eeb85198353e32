package main

import (
	"testing"
	"time"

	"github.com/zklock/zklock/examples/internal/demotest"
)

func TestMain(m *testing.M) { demotest.Main(m) }

func TestRun(t *testing.T) {
	demotest.Run(t, run, func(servers []string, path string) config {
		return config{
			workers:        3,
			duration:       6 * time.Second,
			holdMin:        100 * time.Millisecond,
			holdMax:        300 * time.Millisecond,
			pause:          100 * time.Millisecond,
			sessionTimeout: time.Second,
			path:           path,
			servers:        servers,
		}
	},
		"violations: 0",
		"overlapping holds observed: 0",
		"fencing tokens strictly increasing: yes",
		"before the next acquisition",
		"Unlock reports, as expected:",
	)
}
