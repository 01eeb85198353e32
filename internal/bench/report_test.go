package bench

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReqsFormat(t *testing.T) {
	for _, tc := range []struct {
		in   Requests
		want string
	}{
		{Requests{PerCycle: 4.0009, ByOp: map[string]float64{"create": 1.0003, "delete": 1, "exists": 1, "getChildren2": 1.0003, "createContainer": 0.0003}},
			"4.00 = create 1, getChildren2 1, delete 1, exists 1"},
		{Requests{PerCycle: 3.37, ByOp: map[string]float64{"create": 1, "delete": 1, "getChildren2": 1.19, "getData": 0.19}},
			"3.37 = getChildren2 1.19, create 1, delete 1, getData 0.19"},
		{Requests{PerCycle: 0.5, ByOp: map[string]float64{"exists": 0.5}}, "0.50 = exists 0.5"},
	} {
		assert.Equal(t, tc.want, reqs(tc.in))
	}
}

// TestWriteTableWithoutBaseline checks the three-column form.
func TestWriteTableWithoutBaseline(t *testing.T) {
	rep := &Report{
		ZooKeeperVersion: "3.8.0",
		Servers:          []string{"127.0.0.1:2181"},
		Settings:         Settings{DurationSeconds: 1, Rounds: rounds},
		Contended:        []Contended{{Sessions: 2}},
		Memory:           &Memory{Waiters: 10},
	}
	rep.Targets = targets(rep)
	var b bytes.Buffer
	require.NoError(t, rep.WriteTable(&b))
	out := b.String()
	assert.NotContains(t, out, "zk.Lock")
	assert.NotContains(t, out, "ratio", "the ratio legend comes with --baseline")
	assert.NotContains(t, out, "waiter memory", "no target rows")
	assert.Contains(t, out, "memory, 10 waiters")

	rep.Memory = nil
	b.Reset()
	require.NoError(t, rep.WriteTable(&b))
	assert.NotContains(t, b.String(), "memory", "no memory rows unless measured")
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		assert.NotContains(t, line, "\t")
	}
}

func TestTargets(t *testing.T) {
	rep := &Report{
		Uncontended: Uncontended{Zklock: UncontendedFigures{OpsPerSec: 1300}, ZkLock: &UncontendedFigures{OpsPerSec: 1000}},
		Contended: []Contended{
			{
				Sessions: 2,
				Zklock:   ContendedFigures{AcquisitionsPerSec: 10, Handoff: Latency{P50Ms: 0.9}, Requests: Requests{PerCycle: 3.5}},
				ZkLock:   &ContendedFigures{AcquisitionsPerSec: 10, Handoff: Latency{P50Ms: 1}, Requests: Requests{PerCycle: 3.4}},
			},
			{
				Sessions: 8,
				Zklock:   ContendedFigures{AcquisitionsPerSec: 1300, Handoff: Latency{P50Ms: 1}, Requests: Requests{PerCycle: 5.2}},
				ZkLock:   &ContendedFigures{AcquisitionsPerSec: 1000, Handoff: Latency{P50Ms: 1}, Requests: Requests{PerCycle: 5}},
			},
		},
		ManyLocks: ManyLocks{Zklock: ManyLocksFigures{OpsPerSec: 1000}, ZkLock: &ManyLocksFigures{OpsPerSec: 1000}},
		Memory:    &Memory{Waiters: 10, Zklock: MemoryFigures{BytesPerWaiter: 6000}, ZkLock: &MemoryFigures{BytesPerWaiter: 5000}},
	}
	got := targets(rep)
	want := []struct {
		name     string
		measured float64
		met      bool
	}{
		{"uncontended", 1.3, true},
		{"contended 2", 1, false},
		{"hand-off, 2 sessions", 0.9, true},
		{"requests, 2 sessions", 3.5, true},
		{"contended 8", 1.3, true},
		{"hand-off, 8 sessions", 1, false},
		{"requests, 8 sessions", 5.2, false},
		{"many locks", 1, false},
		{"waiter memory", 1.2, true},
	}
	require.Len(t, got, len(want))
	for i, w := range want {
		assert.Equal(t, w.name, got[i].Name)
		assert.InDelta(t, w.measured, got[i].Measured, 1e-9, w.name)
		assert.Equal(t, w.met, got[i].Met, w.name)
	}

	// Every goal is relative to zk.Lock: without a baseline none applies.
	rep.Uncontended.ZkLock, rep.ManyLocks.ZkLock, rep.Memory.ZkLock = nil, nil, nil
	for i := range rep.Contended {
		rep.Contended[i].ZkLock = nil
	}
	assert.Empty(t, targets(rep))
}
