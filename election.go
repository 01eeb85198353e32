package zklock

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zklock/zklock/internal/seqnode"
)

// Election is leader election among candidates on a ZooKeeper path,
// compatible with Curator's LeaderLatch on the same path.
//
// Candidates queue as ephemeral sequential children of the path, named
// "_c_<UUID>-latch-<sequence>" with the candidate's value as data; the
// lowest sequence leads. Leadership is held like a Mutex's lock: it has a
// loss signal (Done, Err, Context), a fencing token (Token, the term) and a
// Guard, and it can be lost at any time.
//
// An Election is safe for concurrent use. It campaigns at most once at a
// time; use one Election per candidate.
//
// Build it with NewElection; the zero value is not usable.
type Election struct {
	s     *Session
	r     *recipe
	value []byte
}

// electionKind: latch nodes, queued only with other latch nodes.
var electionKind = kind{
	op:     "campaign",
	prefix: seqnode.LatchPrefix,
	queues: func(k seqnode.Kind) bool { return k == seqnode.Latch },
	lost:   ErrLeadershipLost,
	free:   ErrNotLeader,
}

// ElectionOption configures an Election.
type ElectionOption func(*Election)

// WithValue sets the value the candidate campaigns with (Campaign, Run):
// the data of its node, which Leader and Observe report. The default is
// "<hostname>:<pid>".
func WithValue(v []byte) ElectionOption {
	return func(e *Election) { e.value = v }
}

// Term identifies one leader's tenure.
type Term struct {
	Value []byte // the leader's candidate value
	Key   string // the leader's node, under the Session's chroot
	Token int64  // the fencing token: the node's creation zxid
}

// NewElection returns an Election on path (under the Session's chroot). It
// does no I/O; an invalid path is reported by the methods that do.
func NewElection(s *Session, path string, opts ...ElectionOption) *Election {
	e := &Election{
		s:     s,
		r:     newRecipe(s, path, electionKind),
		value: defaultIdentity(),
	}
	for _, o := range opts {
		o(e)
	}
	return e
}

// Campaign enters the election with the Election's value (WithValue) and
// blocks until this candidate leads or ctx ends. Before returning it
// confirms the candidate's node exists and belongs to the current ZooKeeper
// session, so a leader is never reported from a session that has ended. It
// keeps campaigning across lost connections and, by queueing again, across
// session expiry.
//
// Once Campaign returns nil, leadership can be lost at any time (see the
// package documentation, Safety): the loss is signalled by Done, Err and
// Context before the server can let another candidate lead, provided the
// negotiated session timeout is at least five server ticks and the loss
// margin covers the holder's reaction time (WithLossMargin).
//
// When ctx ends first, Campaign returns an error matching ctx.Err() and
// leaves no node behind. It returns ErrBusy if this Election already leads
// or is campaigning.
func (e *Election) Campaign(ctx context.Context) error {
	return e.r.acquire(ctx, e.value, true)
}

// Proclaim replaces this leader's value without an election: the data of
// its node, which Leader then reports. The write is a compare-and-set on
// the version this leader wrote last, so it never overwrites another
// client's write; Guard keeps up with it. Observe reports changes of
// leader, not of value. Proclaim returns ErrNotLeader (wrapping the loss,
// if leadership was lost) when this candidate does not lead, and an error
// wrapping ErrOutcomeUnknown when the connection was lost before the reply;
// the value given to WithValue is not changed.
func (e *Election) Proclaim(ctx context.Context, value []byte) error {
	return e.r.setData(ctx, value)
}

// Resign steps down: leadership ends (Done closes, Err returns ErrNotLeader)
// and the candidate's node is deleted, so the next candidate leads at once.
// As with Mutex.Unlock, a delete that cannot finish before ctx ends or while
// the connection is down goes to the Session's cleaner. Resign returns
// ErrNotLeader if this candidate does not lead (wrapping the loss if
// leadership was lost).
func (e *Election) Resign(ctx context.Context) error { return e.r.release(ctx) }

// Done returns a channel that is closed when the current leadership ends, for
// any reason: Resign, session expiry, the loss deadline, Session.Close, or
// the node deleted by someone else. Before the first Campaign it returns a
// closed channel.
func (e *Election) Done() <-chan struct{} { return e.r.done() }

// Err returns nil while this candidate leads; afterwards ErrNotLeader after
// Resign, or an error wrapping ErrLeadershipLost and its cause.
func (e *Election) Err() error { return e.r.err() }

// Context returns a context cancelled when the current leadership ends, with
// Err's value as its cause. Before the first Campaign it is already
// cancelled.
func (e *Election) Context() context.Context { return e.r.context() }

// Token returns the current or latest term's fencing token: the creation
// zxid of the leader's node. It strictly increases across successive
// leaders of the path, as long as the ensemble keeps its data (see
// Mutex.Token and ErrZxidRegression). Zero before the first Campaign.
func (e *Election) Token() int64 { return e.r.token() }

// Key returns the path of this candidate's node in its current or latest
// term, under the Session's chroot.
func (e *Election) Key() string { return e.r.key() }

// Seq returns the sequence number of this candidate's node in its current
// or latest term; zero before the first Campaign.
func (e *Election) Seq() int32 { return e.r.seq() }

// Guard returns an operation for Session.Multi that fails once this
// candidate's leadership node is gone. Nil before the first Campaign.
func (e *Election) Guard() *zk.CheckVersionRequest { return e.r.guard() }

// Leader returns the current leader's term, the same value Observe sends,
// or ErrNoLeader when no candidate is in the election.
func (e *Election) Leader(ctx context.Context) (Term, error) {
	t, _, err := e.leader(ctx, false)
	return t, err
}

// leader reads the current term; with watch set it also returns a watch on
// the election's children (or on the path, while it does not exist), and
// errRelist when the leader changed while read.
func (e *Election) leader(ctx context.Context, watch bool) (Term, <-chan zk.Event, error) {
	if e.r.perr != nil {
		return Term{}, nil, e.r.perr
	}
	f, w, err := e.r.q.head(ctx, watch)
	switch {
	case errors.Is(err, errEmptyQueue):
		return Term{}, w, ErrNoLeader
	case errors.Is(err, errRelist):
		return Term{}, w, err
	case err != nil:
		return Term{}, nil, errorf("zklock: leader %s: %w", e.r.path, err)
	}
	return Term{Value: f.data, Key: e.r.q.key(f.name), Token: f.czxid}, w, nil
}

// term runs fn with a context that ends when leadership ends or ctx ends,
// whichever is first. Leadership is given up only after fn has returned, so
// a leader that resigns never overlaps with the next; a lost one may.
func (e *Election) term(ctx context.Context, fn func(context.Context) error) error {
	lctx, cancel := context.WithCancelCause(e.Context())
	defer cancel(nil)
	stop := context.AfterFunc(ctx, func() { cancel(context.Cause(ctx)) })
	defer stop()
	return fn(lctx)
}

// Observe returns a channel that receives the Term of the leader at the
// time of the call (read before Observe returns, if there is one), then
// every later leader's, in order: a Term is sent each time a different node
// leads. Terms queue while the receiver is slow, so none observed is
// dropped; changes faster than a watch can be set again may be seen only by
// their latest leader, as with any ZooKeeper watch. The channel is closed
// when ctx ends or the Session is closed. Observe's goroutine belongs to the
// Session, which joins it in Close. Reads that fail (a lost connection, an
// ACL that forbids reading the path) are retried with the Session's backoff
// and logged.
//
// Observe returns an error, and no channel, if the path is invalid
// (ErrInvalidPath) or the Session is closed (ErrSessionClosed).
func (e *Election) Observe(ctx context.Context) (<-chan Term, error) {
	if e.r.perr != nil {
		return nil, e.r.perr
	}
	out := make(chan Term)
	var first *Term
	t, watch, err := e.leader(ctx, true)
	if err == nil {
		first = &t
	} else if !errors.Is(err, ErrNoLeader) {
		watch = nil // the goroutine reads again
	}
	// Owner: the Session; stopped by ctx or Close; joined by Close.
	err = e.s.own.spawn(func() {
		defer close(out)
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stop := context.AfterFunc(e.s.life, cancel)
		defer stop()
		e.observe(ctx, out, first, watch)
	})
	if err != nil {
		return nil, errorf("zklock: observe %s: %w", e.r.path, err)
	}
	return out, nil
}

func (e *Election) observe(ctx context.Context, out chan<- Term, first *Term, watch <-chan zk.Event) {
	var queue []Term
	last := ""
	if first != nil {
		queue, last = append(queue, *first), first.Key
	}
	bo := e.s.cfg.backoff.newBackOff(e.s.clk)
	var retryAt timer
	defer retryAt.stop()
	look := watch == nil
	for {
		if look {
			look = false
			t, w, err := e.leader(ctx, true)
			switch {
			case err == nil || errors.Is(err, ErrNoLeader):
				watch = w
				bo.Reset()
				if err == nil && t.Key != last {
					last = t.Key
					queue = append(queue, t)
				}
			case errors.Is(err, errRelist):
				watch = w
			case ctx.Err() != nil:
				return
			default:
				level := slog.LevelDebug // a lost connection is expected
				if !retryable(err) {
					level = slog.LevelWarn
				}
				e.s.cfg.logger.Log(ctx, level, "zklock: observe: reading leader failed; retrying", "path", e.r.path, "err", err)
				watch = nil
				retryAt.set(bo.NextBackOff())
			}
		}
		var send chan<- Term
		var head Term
		if len(queue) > 0 {
			send, head = out, queue[0]
		}
		select {
		case send <- head:
			queue = queue[1:]
		case <-watch:
			look = true
		case <-retryAt.c:
			look = true
		case <-ctx.Done():
			return
		}
	}
}

// Run campaigns with the WithValue value, runs fn while leading, and
// campaigns again after each term, until ctx ends (Curator's LeaderSelector
// with automatic requeueing). fn gets a context that is cancelled when
// leadership ends or ctx ends; leadership is resigned only after fn has
// returned, so a term that Run ends (fn returned, ctx ended) never hands
// over before fn has returned. A term lost (session expiry, the loss
// deadline, the node deleted) frees the election whatever fn is doing, and
// another candidate may lead before fn returns: fn must stop acting on the
// leadership when its context ends (see the package documentation, Safety).
// Run itself starts no new term before fn has returned.
//
// When fn returns nil, or returns anything after its leadership was lost,
// Run resigns and campaigns again. When fn returns an error while still
// leading, Run resigns and returns that error, wrapped: the leader's work
// failed, and the caller decides what follows. Between terms, and after a
// failed Campaign, Run waits per the Session's backoff policy, so a
// flapping session does not spin.
//
// Run also returns when a Campaign fails, with its error: when ctx ends
// (matching ctx.Err()), when the Session is closed (ErrSessionClosed), and
// for what would fail again (an invalid path, a value over the servers'
// limit, the server's refusal such as zk.ErrNoAuth). Campaign itself waits
// through lost connections and expired sessions. Use RunOnce to lead once.
func (e *Election) Run(ctx context.Context, fn func(leaderCtx context.Context) error) error {
	s := e.s
	bo := s.cfg.backoff.newBackOff(s.clk)
	for {
		// Campaign itself waits through lost connections and expired
		// sessions; what it returns would fail again (the server's
		// refusal, an invalid path or value, a closed Session, ctx).
		if err := e.Campaign(ctx); err != nil {
			return errorf("zklock: run %s: %w", e.r.path, err)
		}
		start := time.Now()
		lost, err := e.lead(ctx, fn)
		if err != nil && !lost && ctx.Err() == nil {
			return errorf("zklock: run %s: leader function: %w", e.r.path, err)
		}
		if time.Since(start) > s.cfg.backoff.Max {
			bo.Reset()
		}
		select {
		case <-s.clk.After(bo.NextBackOff()): // between terms
		case <-ctx.Done():
			return errorf("zklock: run %s: %w", e.r.path, ctx.Err())
		case <-s.closing:
			return errorf("zklock: run %s: %w", e.r.path, ErrSessionClosed)
		}
	}
}

// RunOnce campaigns with the WithValue value, runs fn once while leading
// (with a context cancelled when leadership ends or ctx ends), and resigns
// after fn has returned, as kazoo's Election.run does. It returns fn's
// error; if fn returned nil but leadership was lost before it returned, the
// error wraps the loss (ErrLeadershipLost and its cause). If the Campaign
// fails (ctx ended, the Session closed, an invalid path), RunOnce returns
// its error without calling fn.
func (e *Election) RunOnce(ctx context.Context, fn func(leaderCtx context.Context) error) error {
	if err := e.Campaign(ctx); err != nil {
		return err
	}
	lost, err := e.lead(ctx, fn)
	switch {
	case err != nil:
		return errorf("zklock: run %s: leader function: %w", e.r.path, err)
	case lost:
		return errorf("zklock: run %s: %w", e.r.path, e.Err())
	}
	return nil
}

// lead runs fn for the term just won and resigns after it returns. lost
// reports whether leadership had ended by loss when fn returned.
func (e *Election) lead(ctx context.Context, fn func(context.Context) error) (lost bool, err error) {
	err = e.term(ctx, fn)
	lost = errors.Is(e.Err(), ErrLeadershipLost)
	if rerr := e.Resign(context.WithoutCancel(ctx)); rerr != nil && !errors.Is(rerr, ErrNotLeader) {
		e.s.cfg.logger.Warn("zklock: resign failed", "path", e.r.path, "err", rerr)
	}
	return lost, err
}
