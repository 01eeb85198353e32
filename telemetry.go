package zklock

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// instrumentationName names zklock's meter and tracer.
const instrumentationName = "github.com/zklock/zklock"

// Attribute keys of zklock's metrics and spans.
const (
	attrRecipe  = attribute.Key("zklock.recipe")        // lock, read_lock, write_lock, election, semaphore
	attrOutcome = attribute.Key("zklock.outcome")       // acquired, locked, cancelled, error
	attrEnd     = attribute.Key("zklock.hold.end")      // released, session_expired, loss_deadline, node_deleted, session_closed, error
	attrState   = attribute.Key("zklock.session.state") // connected, suspended, expired, closed
	attrOp      = attribute.Key("zklock.request.op")    // ZooKeeper's operation name: create, getData, ...
	attrPath    = attribute.Key("zklock.path")
	attrToken   = attribute.Key("zklock.token")
)

// telemetry is a Session's OpenTelemetry instruments. With no-op providers,
// which the global ones are until the application sets others, each call
// costs next to nothing.
type telemetry struct {
	tracer      trace.Tracer
	acquire     metric.Float64Histogram
	hold        metric.Float64Histogram
	acquired    metric.Int64Counter
	ended       metric.Int64Counter
	transitions metric.Int64Counter
	meter       metric.Meter
}

func newTelemetry(mp metric.MeterProvider, tp trace.TracerProvider) (*telemetry, error) {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	m := mp.Meter(instrumentationName)
	t := &telemetry{tracer: tp.Tracer(instrumentationName), meter: m}
	var errs []error
	add := func(err error) { errs = append(errs, err) }
	var err error
	t.acquire, err = m.Float64Histogram("zklock.acquire.duration", metric.WithUnit("s"),
		metric.WithDescription("Time a Lock, Campaign or Acquire call took, by outcome."))
	add(err)
	t.hold, err = m.Float64Histogram("zklock.hold.duration", metric.WithUnit("s"),
		metric.WithDescription("Time a lock, leadership or lease was held, by how it ended."))
	add(err)
	t.acquired, err = m.Int64Counter("zklock.acquisitions", metric.WithUnit("{acquisition}"),
		metric.WithDescription("Locks, leaderships and leases acquired."))
	add(err)
	t.ended, err = m.Int64Counter("zklock.holds.ended", metric.WithUnit("{hold}"),
		metric.WithDescription("Holds ended, by cause."))
	add(err)
	t.transitions, err = m.Int64Counter("zklock.session.transitions", metric.WithUnit("{transition}"),
		metric.WithDescription("Session state changes, by the state entered."))
	add(err)
	if err := errors.Join(errs...); err != nil {
		return nil, errorf("zklock: telemetry: %w", err)
	}
	return t, nil
}

// observe registers the instruments read on collection: requests sent, by
// operation, and the cleaner's backlog. The registration lasts as long as
// the Session; unregister it at Close.
func (t *telemetry) observe(requests func() map[int32]uint64, backlog func() int) (metric.Registration, error) {
	sent, err1 := t.meter.Int64ObservableCounter("zklock.requests", metric.WithUnit("{request}"),
		metric.WithDescription("ZooKeeper requests sent, by operation (pings and connect requests excluded)."))
	pending, err2 := t.meter.Int64ObservableUpDownCounter("zklock.cleaner.backlog", metric.WithUnit("{node}"),
		metric.WithDescription("Nodes the Session's cleaner has yet to delete."))
	if err := errors.Join(err1, err2); err != nil {
		return nil, errorf("zklock: telemetry: %w", err)
	}
	return t.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for op, n := range requests() {
			o.ObserveInt64(sent, int64(n), metric.WithAttributes(attrOp.String(opName(op))))
		}
		o.ObserveInt64(pending, int64(backlog()))
		return nil
	}, sent, pending)
}

// opName is ZooKeeper's name for a request opcode.
func opName(op int32) string {
	switch op {
	case 1:
		return "create"
	case 2:
		return "delete"
	case 3:
		return "exists"
	case 4:
		return "getData"
	case 5:
		return "setData"
	case 6:
		return "getACL"
	case 7:
		return "setACL"
	case 8:
		return "getChildren"
	case 9:
		return "sync"
	case 12:
		return "getChildren2"
	case 13:
		return "check"
	case 14:
		return "multi"
	case 15:
		return "create2"
	case 19:
		return "createContainer"
	case 21:
		return "createTTL"
	case -11:
		return "closeSession"
	case 100:
		return "setAuth"
	case 101:
		return "setWatches"
	}
	return "other"
}

// The names of recipes, acquisition outcomes and hold ends in metrics, by
// index.
var (
	recipeLabels  = [...]string{"lock", "read_lock", "write_lock", "election", "semaphore", "other"}
	outcomeLabels = [...]string{"acquired", "locked", "cancelled", "error"}
	endLabels     = [...]string{"released", "node_deleted", "loss_deadline", "session_expired", "session_closed", "error"}
)

// Attribute sets are built once, not per measurement: building one costs
// time and a deep stack on the caller's goroutine, which for a Lock is the
// waiting goroutine whose stack stays allocated while it waits.
var (
	recipeAttrs  [len(recipeLabels)]metric.MeasurementOption
	acquireAttrs [len(recipeLabels)][len(outcomeLabels)]metric.MeasurementOption
	holdAttrs    [len(recipeLabels)][len(endLabels)]metric.MeasurementOption
)

func init() {
	for r, rl := range recipeLabels {
		recipe := attrRecipe.String(rl)
		recipeAttrs[r] = metric.WithAttributeSet(attribute.NewSet(recipe))
		for o, ol := range outcomeLabels {
			acquireAttrs[r][o] = metric.WithAttributeSet(attribute.NewSet(recipe, attrOutcome.String(ol)))
		}
		for e, el := range endLabels {
			holdAttrs[r][e] = metric.WithAttributeSet(attribute.NewSet(recipe, attrEnd.String(el)))
		}
	}
}

// recipeIndex is the index of a kind's name in recipeLabels; the names of
// its spans are "zklock.<name>.acquire" and "zklock.<name>.release".
func recipeIndex(k *kind) int {
	switch k.op {
	case "lock":
		return 0
	case "read lock":
		return 1
	case "write lock":
		return 2
	case "campaign":
		return 3
	case "acquire":
		return 4
	}
	return 5
}

// Span names, by recipe index.
var (
	acquireSpans = [...]string{"zklock.lock.acquire", "zklock.read_lock.acquire", "zklock.write_lock.acquire",
		"zklock.election.acquire", "zklock.semaphore.acquire", "zklock.other.acquire"}
	releaseSpans = [...]string{"zklock.lock.release", "zklock.read_lock.release", "zklock.write_lock.release",
		"zklock.election.release", "zklock.semaphore.release", "zklock.other.release"}
)

// acquisition is one acquisition's span and clock. It is a value, kept on
// the waiter's stack; span is nil unless it records.
type acquisition struct {
	t      *telemetry
	span   trace.Span
	recipe int
	start  time.Time
}

// startAcquire starts the span and clock of an acquisition. Attributes are
// set only on a span that records.
func (t *telemetry) startAcquire(ctx context.Context, k *kind, path string) acquisition {
	recipe := recipeIndex(k)
	_, span := t.tracer.Start(ctx, acquireSpans[recipe])
	if span.IsRecording() {
		span.SetAttributes(attrRecipe.String(recipeLabels[recipe]), attrPath.String(path))
	} else {
		span.End()
		span = nil // not kept while the caller waits
	}
	return acquisition{t: t, span: span, recipe: recipe, start: time.Now()}
}

// end records how the acquisition ended, with the hold's token on success.
func (a acquisition) end(token int64, err error) {
	outcome := 0 // acquired
	switch {
	case err == nil:
		a.t.acquired.Add(context.Background(), 1, recipeAttrs[a.recipe])
	case errors.Is(err, ErrLocked):
		outcome = 1
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		outcome = 2
	default:
		outcome = 3
	}
	a.t.acquire.Record(context.Background(), time.Since(a.start).Seconds(), acquireAttrs[a.recipe][outcome])
	if a.span == nil {
		return
	}
	if err == nil {
		a.span.SetAttributes(attrToken.Int64(token))
	} else {
		a.span.SetStatus(codes.Error, err.Error())
	}
	a.span.End()
}

// startRelease starts the span of a release; done ends it.
func (t *telemetry) startRelease(ctx context.Context, k *kind, path string, token int64) func(err error) {
	recipe := recipeIndex(k)
	_, span := t.tracer.Start(ctx, releaseSpans[recipe])
	if !span.IsRecording() {
		span.End()
		return func(error) {}
	}
	span.SetAttributes(attrRecipe.String(recipeLabels[recipe]), attrPath.String(path), attrToken.Int64(token))
	return func(err error) {
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}
}

// holdEnded records a hold of kind k, begun at start, ended with err.
func (t *telemetry) holdEnded(k *kind, start time.Time, err error) {
	end := 5 // error
	switch {
	case errors.Is(err, k.free):
		end = 0
	case errors.Is(err, ErrNodeDeleted):
		end = 1
	case errors.Is(err, ErrLossDeadline):
		end = 2
	case errors.Is(err, ErrSessionExpired):
		end = 3
	case errors.Is(err, ErrSessionClosed):
		end = 4
	}
	attrs := holdAttrs[recipeIndex(k)][end]
	t.hold.Record(context.Background(), time.Since(start).Seconds(), attrs)
	t.ended.Add(context.Background(), 1, attrs)
}

// transition records a Session entering st.
func (t *telemetry) transition(st State) {
	t.transitions.Add(context.Background(), 1, metric.WithAttributes(attrState.String(st.String())))
}
