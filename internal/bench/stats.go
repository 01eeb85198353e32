package bench

import (
	"math"
	"slices"
	"sync"
	"time"
)

// Latency summarises one series of latency samples. The percentiles are
// taken from the exact samples (nearest rank), never from averages, so a
// slow tail shows as it is.
type Latency struct {
	Count int     `json:"count"`
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
}

// series collects exact latency samples. It is safe for concurrent use:
// the contended scenarios record from many goroutines, and a mutex costs
// nothing next to a ZooKeeper round trip.
type series struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *series) add(d time.Duration) {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
}

// merge appends o's samples to s.
func (s *series) merge(o *series) {
	o.mu.Lock()
	d := slices.Clone(o.d)
	o.mu.Unlock()
	s.mu.Lock()
	s.d = append(s.d, d...)
	s.mu.Unlock()
}

func (s *series) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.d)
}

// summary sorts a copy of the samples and reads p50, p99 and the maximum.
func (s *series) summary() Latency {
	s.mu.Lock()
	d := slices.Clone(s.d)
	s.mu.Unlock()
	return summarize(d)
}

// summarize sorts d in place and summarises it; an empty d gives the zero
// Latency.
func summarize(d []time.Duration) Latency {
	if len(d) == 0 {
		return Latency{}
	}
	slices.Sort(d)
	return Latency{
		Count: len(d),
		P50Ms: ms(percentile(d, 50)),
		P99Ms: ms(percentile(d, 99)),
		MaxMs: ms(d[len(d)-1]),
	}
}

// percentile returns the nearest-rank p-th percentile (0 < p ≤ 100) of
// sorted: the smallest sample with at least p% of the samples at or below
// it. Nearest rank never interpolates, so every reported value is a
// latency that was actually observed.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// ms converts d to milliseconds, keeping microsecond resolution.
func ms(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}
