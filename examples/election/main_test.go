package main

import (
	"testing"
	"time"

	"github.com/zklock/zklock/examples/internal/demotest"
)

func TestMain(m *testing.M) { demotest.Main(m) }

func TestRun(t *testing.T) {
	for _, kill := range []string{killCrash, killClose} {
		t.Run(kill, func(t *testing.T) {
			demotest.Run(t, run, func(servers []string, path string) config {
				return config{
					rounds:         1,
					kill:           kill,
					sessionTimeout: time.Second,
					pause:          200 * time.Millisecond,
					path:           path,
					servers:        servers,
				}
			},
				"violations: 0",
				"overlapping leaderships observed: 0",
				"term tokens strictly increasing: yes",
				"failover 1: candidate-1 -> candidate-2 took",
			)
		})
	}
}
