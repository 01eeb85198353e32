package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zklock/zklock/internal/zktest"
	"github.com/zklock/zklock/zktesting"
)

func TestMain(m *testing.M) { zktest.Main(m) }

// mayBeZero are the figures that can rightly be zero: a waiter that needs no
// goroutine of the library's costs exactly none.
var mayBeZero = map[string]bool{
	"library_goroutines_per_waiter": true,
}

// TestRun runs every scenario briefly against the shared server and checks
// that every figure is there and positive, and that both outputs work.
func TestRun(t *testing.T) {
	if testing.Short() {
		t.Skip("needs ZooKeeper")
	}
	zc := zktesting.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	rep, err := Run(ctx, Config{
		Servers:  zc.Direct(),
		Duration: 300 * time.Millisecond,
		Sessions: []int{2},
		Baseline: true,
		Memory:   true,
		// Few enough for the race detector's goroutine limit.
		Waiters:  200,
		Progress: &progress,
	})
	require.NoError(t, err, "progress:\n%s", progress.String())
	t.Logf("progress:\n%s", progress.String())

	require.NotNil(t, rep.Uncontended.ZkLock)
	require.Len(t, rep.Contended, 1)
	require.NotNil(t, rep.Contended[0].ZkLock)
	require.NotNil(t, rep.ManyLocks.ZkLock)
	require.NotNil(t, rep.Memory.ZkLock)
	assert.Equal(t, 2, rep.Contended[0].Sessions)
	require.NotNil(t, rep.ReadWrite)
	require.NotNil(t, rep.Semaphore)
	assert.Equal(t, readWriteSessions, rep.ReadWrite.Sessions)
	assert.Greater(t, rep.ReadWrite.Reads, rep.ReadWrite.Writes, "most acquisitions read")
	assert.Equal(t, semaphoreLeases, rep.Semaphore.Leases)
	assert.GreaterOrEqual(t, rep.Failover.Handovers, 1)
	assert.Equal(t, 200, rep.Memory.Waiters)
	assert.NotEmpty(t, rep.ZooKeeperVersion)
	assert.Equal(t, zc.Direct(), rep.Servers)
	assert.False(t, rep.Settings.LocalServer)
	assert.True(t, rep.Finished.After(rep.Started))
	for _, r := range []Requests{rep.Uncontended.Zklock.Requests, rep.Uncontended.ZkLock.Requests,
		rep.Contended[0].Zklock.Requests, rep.Contended[0].ZkLock.Requests,
		rep.ReadWrite.Requests, rep.Semaphore.Requests} {
		assert.GreaterOrEqual(t, r.PerCycle, 2.0, "at least a create and a delete per cycle: %+v", r)
		assert.Contains(t, r.ByOp, "delete")
	}
	var names []string
	for _, tg := range rep.Targets {
		names = append(names, tg.Name)
	}
	assert.Equal(t, []string{"uncontended", "contended 2", "hand-off, 2 sessions", "requests, 2 sessions", "many locks", "waiter memory"}, names)

	var js bytes.Buffer
	require.NoError(t, rep.WriteJSON(&js))
	var doc map[string]any
	require.NoError(t, json.Unmarshal(js.Bytes(), &doc))
	for _, key := range []string{"started", "finished", "zookeeper_version", "servers", "settings", "environment",
		"uncontended", "contended", "many_locks", "read_write", "semaphore", "failover", "floor", "memory", "targets"} {
		assert.Contains(t, doc, key)
	}
	for _, p := range numbers("", doc) {
		if mayBeZero[p.key] {
			continue
		}
		assert.Greater(t, p.v, 0.0, "%s", p.path)
	}

	var tab bytes.Buffer
	require.NoError(t, rep.WriteTable(&tab))
	out := tab.String()
	t.Logf("table:\n%s", out)
	for _, s := range []string{"zk.Lock", "zklock ÷ zk.Lock", "ratio divides", "uncontended", "contended, 2 sessions", "many locks",
		fmt.Sprintf("read-write, %d sessions, 90%% reads", readWriteSessions), fmt.Sprintf("semaphore, %d sessions, %d leases", semaphoreSessions, semaphoreLeases),
		fmt.Sprintf("failover, %d handovers", rep.Failover.Handovers), "floor", "memory, 200 waiters", rep.ZooKeeperVersion} {
		assert.Contains(t, out, s)
	}
	assert.NotContains(t, out, "target", "the project's own goals are not the operator's: they are in BENCHMARKS.md and the JSON")
	assert.NotContains(t, out, "missed")
	assert.NotContains(t, out, "NaN")
	assert.NotContains(t, out, "Inf")

	admin := zc.Admin(t)
	ok, _, err := admin.Exists(rep.Settings.Root)
	require.NoError(t, err)
	assert.False(t, ok, "%s left behind", rep.Settings.Root)
}

type number struct {
	path, key string
	v         float64
}

// numbers lists every number in a decoded JSON document with its path.
func numbers(path string, v any) []number {
	var out []number
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			for _, n := range numbers(path+"."+k, e) {
				if n.key == "" {
					n.key = k
				}
				out = append(out, n)
			}
		}
	case []any:
		for i, e := range x {
			out = append(out, numbers(fmt.Sprintf("%s[%d]", path, i), e)...)
		}
	case float64:
		out = append(out, number{path: path, v: x})
	}
	return out
}

func TestConfigDefaults(t *testing.T) {
	cfg, err := withDefaults(Config{})
	require.NoError(t, err)
	assert.Equal(t, DefaultDuration, cfg.Duration)
	assert.Equal(t, DefaultSessions, cfg.Sessions)
	assert.Equal(t, DefaultWaiters, cfg.Waiters)
	for _, bad := range []Config{
		{Duration: -time.Second},
		{Sessions: []int{2, 1}},
		{Waiters: -1},
	} {
		_, err := withDefaults(bad)
		assert.Error(t, err, "%+v", bad)
	}
}
