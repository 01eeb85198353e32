package bench

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ms1 builds a sorted run of 1ms, 2ms, ..., n ms.
func ms1(n int) []time.Duration {
	d := make([]time.Duration, n)
	for i := range d {
		d[i] = time.Duration(i+1) * time.Millisecond
	}
	return d
}

func TestPercentile(t *testing.T) {
	for _, tc := range []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"single p50", []time.Duration{7}, 50, 7},
		{"single p99", []time.Duration{7}, 99, 7},
		{"two p50 is the lower", []time.Duration{1, 2}, 50, 1},
		{"two p99 is the upper", []time.Duration{1, 2}, 99, 2},
		{"10 p50", ms1(10), 50, 5 * time.Millisecond},
		{"10 p99 is the max", ms1(10), 99, 10 * time.Millisecond},
		{"100 p50", ms1(100), 50, 50 * time.Millisecond},
		{"100 p99", ms1(100), 99, 99 * time.Millisecond},
		{"101 p50 is the median", ms1(101), 50, 51 * time.Millisecond},
		{"1000 p99", ms1(1000), 99, 990 * time.Millisecond},
		{"p100 is the max", ms1(1000), 100, 1000 * time.Millisecond},
		{"tiny p is the min", ms1(1000), 0.001, time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, percentile(tc.sorted, tc.p))
		})
	}
}

func TestSummarize(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []time.Duration
		want Latency
	}{
		{"empty", nil, Latency{}},
		{"unsorted", []time.Duration{3 * time.Millisecond, time.Millisecond, 2 * time.Millisecond},
			Latency{Count: 3, P50Ms: 2, P99Ms: 3, MaxMs: 3}},
		{"microsecond resolution", []time.Duration{1500 * time.Microsecond, 1501*time.Microsecond + 999},
			Latency{Count: 2, P50Ms: 1.5, P99Ms: 1.501, MaxMs: 1.501}},
		{"tail shows", append(ms1(98), time.Second, 2*time.Second),
			Latency{Count: 100, P50Ms: 50, P99Ms: 1000, MaxMs: 2000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, summarize(tc.in))
		})
	}
}

func TestSeriesConcurrentAddAndMerge(t *testing.T) {
	var a, b series
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 100 {
				a.add(time.Duration(g*100+i+1) * time.Microsecond)
			}
		})
	}
	wg.Wait()
	b.add(time.Hour)
	b.merge(&a)
	require.Equal(t, 801, b.len())
	s := b.summary()
	assert.Equal(t, 801, s.Count)
	assert.Equal(t, 0.401, s.P50Ms)
	assert.Equal(t, float64(time.Hour.Milliseconds()), s.MaxMs)
	assert.Equal(t, 800, a.len(), "merge leaves its source alone")
}

func TestTallyMerge(t *testing.T) {
	x, y := newTally(), newTally()
	x.ops, x.elapsed = 10, time.Second
	x.series("acquire").add(time.Millisecond)
	x.reqs[1] = 10
	y.ops, y.elapsed = 30, time.Second
	y.series("acquire").add(3 * time.Millisecond)
	y.series("release").add(time.Millisecond)
	y.reqs[1], y.reqs[2] = 30, 40
	x.merge(y)
	assert.Equal(t, 40, x.ops)
	assert.InDelta(t, 20.0, x.perSec(), 1e-9)
	assert.Equal(t, 2, x.summary("acquire").Count)
	assert.Equal(t, 1, x.summary("release").Count)
	assert.Equal(t, requestCounts{1: 40, 2: 40}, x.reqs)
}
