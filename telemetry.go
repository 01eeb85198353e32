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

// recipeNames is a kind's name in metrics, and its spans' names.
func recipeNames(k kind) (recipe, acquire, release string) {
	switch k.op {
	case "lock":
		return "lock", "zklock.lock.acquire", "zklock.lock.release"
	case "read lock":
		return "read_lock", "zklock.read_lock.acquire", "zklock.read_lock.release"
	case "write lock":
		return "write_lock", "zklock.write_lock.acquire", "zklock.write_lock.release"
	case "campaign":
		return "election", "zklock.election.acquire", "zklock.election.release"
	case "acquire":
		return "semaphore", "zklock.semaphore.acquire", "zklock.semaphore.release"
	}
	return "other", "zklock.other.acquire", "zklock.other.release"
}

func recipeName(k kind) string {
	r, _, _ := recipeNames(k)
	return r
}

// acquisition is one acquisition's span and clock. It is a value, kept on
// the waiter's stack: thousands of waiters carry nothing more for it.
type acquisition struct {
	t      *telemetry
	span   trace.Span
	recipe string
	start  time.Time
}

// startAcquire starts the span and clock of an acquisition. Attributes are
// set only on a span that records.
func (t *telemetry) startAcquire(ctx context.Context, k kind, path string) acquisition {
	recipe, name, _ := recipeNames(k)
	_, span := t.tracer.Start(ctx, name)
	if span.IsRecording() {
		span.SetAttributes(attrRecipe.String(recipe), attrPath.String(path))
	}
	return acquisition{t: t, span: span, recipe: recipe, start: time.Now()}
}

// end records how the acquisition ended, with the hold's token on success.
func (a acquisition) end(token int64, err error) {
	recipe := attrRecipe.String(a.recipe)
	outcome := "acquired"
	switch {
	case err == nil:
		if a.span.IsRecording() {
			a.span.SetAttributes(attrToken.Int64(token))
		}
		a.t.acquired.Add(context.Background(), 1, metric.WithAttributes(recipe))
	case errors.Is(err, ErrLocked):
		outcome = "locked"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		outcome = "cancelled"
	default:
		outcome = "error"
	}
	if err != nil && a.span.IsRecording() {
		a.span.SetStatus(codes.Error, err.Error())
	}
	a.t.acquire.Record(context.Background(), time.Since(a.start).Seconds(), metric.WithAttributes(recipe, attrOutcome.String(outcome)))
	a.span.End()
}

// startRelease starts the span of a release; done ends it.
func (t *telemetry) startRelease(ctx context.Context, k kind, path string, token int64) func(err error) {
	recipe, _, name := recipeNames(k)
	_, span := t.tracer.Start(ctx, name)
	if span.IsRecording() {
		span.SetAttributes(attrRecipe.String(recipe), attrPath.String(path), attrToken.Int64(token))
	}
	return func(err error) {
		if err != nil && span.IsRecording() {
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}
}

// holdEnded records a hold of kind k, begun at start, ended with err.
func (t *telemetry) holdEnded(k kind, start time.Time, err error) {
	end := "error"
	switch {
	case errors.Is(err, k.free):
		end = "released"
	case errors.Is(err, ErrNodeDeleted):
		end = "node_deleted"
	case errors.Is(err, ErrLossDeadline):
		end = "loss_deadline"
	case errors.Is(err, ErrSessionExpired):
		end = "session_expired"
	case errors.Is(err, ErrSessionClosed):
		end = "session_closed"
	}
	attrs := metric.WithAttributes(attrRecipe.String(recipeName(k)), attrEnd.String(end))
	t.hold.Record(context.Background(), time.Since(start).Seconds(), attrs)
	t.ended.Add(context.Background(), 1, attrs)
}

// transition records a Session entering st.
func (t *telemetry) transition(st State) {
	t.transitions.Add(context.Background(), 1, metric.WithAttributes(attrState.String(st.String())))
}
