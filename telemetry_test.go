package zklock_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/zklock/zklock"
	"github.com/zklock/zklock/zktesting"
)

// metricsOf collects every data point, keyed by metric name.
func metricsOf(t *testing.T, r *sdkmetric.ManualReader) map[string]metricdata.Aggregation {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, r.Collect(context.Background(), &rm))
	out := map[string]metricdata.Aggregation{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			out[m.Name] = m.Data
		}
	}
	return out
}

// sum adds the points of an integer sum whose attributes include want.
func sum(t *testing.T, data metricdata.Aggregation, want ...attribute.KeyValue) int64 {
	t.Helper()
	s, ok := data.(metricdata.Sum[int64])
	require.True(t, ok, "an int64 sum, got %T", data)
	var n int64
	for _, p := range s.DataPoints {
		if hasAll(p.Attributes, want) {
			n += p.Value
		}
	}
	return n
}

// count adds the counts of a histogram's points whose attributes include
// want.
func count(t *testing.T, data metricdata.Aggregation, want ...attribute.KeyValue) uint64 {
	t.Helper()
	h, ok := data.(metricdata.Histogram[float64])
	require.True(t, ok, "a float64 histogram, got %T", data)
	var n uint64
	for _, p := range h.DataPoints {
		if hasAll(p.Attributes, want) {
			n += p.Count
		}
	}
	return n
}

func hasAll(set attribute.Set, want []attribute.KeyValue) bool {
	for _, kv := range want {
		if v, ok := set.Value(kv.Key); !ok || v != kv.Value {
			return false
		}
	}
	return true
}

// The metrics and spans through OpenTelemetry's SDK: a Lock and Unlock, a
// lost hold, a Campaign; requests by operation and the cleaner's backlog.
func TestIntegration_Telemetry(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer tp.Shutdown(context.Background())

	s := connect(t, zc.Servers(), zklock.WithChroot(root), zklock.WithMeterProvider(mp), zklock.WithTracerProvider(tp))
	ctx := bounded(t, zktesting.Timeout)
	m := zklock.NewMutex(s, "/lock")
	require.NoError(t, m.Lock(ctx))
	token := m.Token()
	require.NoError(t, m.Unlock(ctx))
	require.NoError(t, m.Lock(ctx))
	zc.DeleteNode(t, root+m.Key())
	await(t, m.Done(), "the hold to end")
	e := zklock.NewElection(s, "/election")
	require.NoError(t, e.Campaign(ctx))
	require.NoError(t, e.Resign(ctx))
	tl := zklock.NewMutex(s, "/lock")
	require.NoError(t, tl.TryLock(ctx))
	require.NoError(t, tl.Unlock(ctx))

	got := metricsOf(t, reader)
	lock := attribute.String("zklock.recipe", "lock")
	assert.EqualValues(t, 3, sum(t, got["zklock.acquisitions"], lock))
	assert.EqualValues(t, 1, sum(t, got["zklock.acquisitions"], attribute.String("zklock.recipe", "election")))
	assert.EqualValues(t, 3, count(t, got["zklock.acquire.duration"], lock, attribute.String("zklock.outcome", "acquired")))
	assert.EqualValues(t, 2, count(t, got["zklock.hold.duration"], lock, attribute.String("zklock.hold.end", "released")))
	assert.EqualValues(t, 1, count(t, got["zklock.hold.duration"], lock, attribute.String("zklock.hold.end", "node_deleted")))
	assert.EqualValues(t, 1, sum(t, got["zklock.holds.ended"], lock, attribute.String("zklock.hold.end", "node_deleted")))
	assert.EqualValues(t, 1, sum(t, got["zklock.session.transitions"], attribute.String("zklock.session.state", "connected")))
	assert.GreaterOrEqual(t, sum(t, got["zklock.requests"], attribute.String("zklock.request.op", "create")), int64(4), "a create per acquisition")
	assert.Greater(t, sum(t, got["zklock.requests"], attribute.String("zklock.request.op", "getChildren2")), int64(0), "listings")
	assert.Contains(t, got, "zklock.cleaner.backlog")

	var names []string
	for _, sp := range spans.Ended() {
		names = append(names, sp.Name())
		if sp.Name() == "zklock.lock.acquire" {
			assert.Contains(t, sp.Attributes(), attribute.String("zklock.path", "/lock"))
		}
	}
	assert.Contains(t, names, "zklock.lock.acquire")
	assert.Contains(t, names, "zklock.lock.release")
	assert.Contains(t, names, "zklock.election.acquire")
	var tokens []int64
	for _, sp := range spans.Ended() {
		for _, kv := range sp.Attributes() {
			if kv.Key == "zklock.token" {
				tokens = append(tokens, kv.Value.AsInt64())
			}
		}
	}
	assert.Contains(t, tokens, token, "spans carry the fencing token")
}
