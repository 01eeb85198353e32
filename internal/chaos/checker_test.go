package chaos

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zklock/zklock"
)

// Causes as the library reports them.
var (
	errReleased     = zklock.ErrNotLocked
	errLossDeadline = fmt.Errorf("%w: %w", zklock.ErrLockLost, fmt.Errorf("%w: %w", zklock.ErrSessionExpired, zklock.ErrLossDeadline))
	errExpired      = fmt.Errorf("%w: %w", zklock.ErrLockLost, zklock.ErrSessionExpired)
	errDeleted      = fmt.Errorf("%w: %w", zklock.ErrLockLost, zklock.ErrNodeDeleted)
	errClosed       = fmt.Errorf("%w: %w", zklock.ErrLeadershipLost, zklock.ErrSessionClosed)
)

var testCfg = Config{Bound: 7 * time.Second, RevocationBound: 7 * time.Second}

// builder makes hand-made histories on a millisecond time line.
type builder struct {
	t0     time.Time
	evs    []Event
	holds  int
	faults int
}

func newBuilder() *builder { return &builder{t0: time.Now()} }

func (b *builder) at(ms int) time.Time { return b.t0.Add(time.Duration(ms) * time.Millisecond) }

func (b *builder) add(ms int, e Event) Event {
	e.At = b.at(ms)
	e.Index = len(b.evs)
	b.evs = append(b.evs, e)
	return e
}

// begin records a Lock call at from-1 and its return at from.
func (b *builder) begin(res string, client int, token int64, from int) int {
	b.holds++
	b.add(from-1, Event{Op: OpLockCall, Res: res, Client: client})
	b.add(from, Event{Op: OpLockOK, Res: res, Client: client, Hold: b.holds, Token: token,
		Key: fmt.Sprintf("/%s/_c_0123456789abcdef0123456789abcdef0123-lock-%010d", res, b.holds)})
	return b.holds
}

// released is a hold from from to to, ended by Unlock.
func (b *builder) released(res string, client int, token int64, from, to int) int {
	id := b.begin(res, client, token, from)
	b.write(res, client, id, token, from+1, true)
	b.add(to, Event{Op: OpUnlockCall, Res: res, Client: client, Hold: id})
	b.add(to+1, Event{Op: OpHoldEnd, Res: res, Client: client, Hold: id, Err: errReleased})
	b.add(to+2, Event{Op: OpUnlockDone, Res: res, Client: client, Hold: id})
	return id
}

// lost is a hold from from whose Done closed at to with cause.
func (b *builder) lost(res string, client int, token int64, from, to int, cause error) int {
	id := b.begin(res, client, token, from)
	b.add(to, Event{Op: OpHoldEnd, Res: res, Client: client, Hold: id, Err: cause})
	return id
}

func (b *builder) write(res string, client, hold int, token int64, ms int, ok bool) {
	b.add(ms, Event{Op: OpWrite, Res: res, Client: client, Hold: hold, Token: token, OK: ok})
}

func (b *builder) fault(kind FaultKind, from, to int, hold int, effective bool) {
	b.faults++
	f := &Fault{ID: b.faults, Kind: kind, Client: -1, Hold: hold}
	b.add(from, Event{Op: OpFaultStart, Client: -1, Fault: f})
	b.add(to, Event{Op: OpFaultEnd, Client: -1, Fault: f, OK: effective})
}

func (b *builder) check() *Report { return Check(b.evs, testCfg) }

func properties(r *Report) []string {
	var out []string
	for _, v := range r.Violations {
		out = append(out, v.Property)
	}
	return out
}

func TestCheckCleanHistory(t *testing.T) {
	b := newBuilder()
	b.released(ResLock, 0, 10, 100, 200)
	b.released(ResLock, 1, 12, 210, 300)
	b.fault(FaultCut, 305, 305, 0, true)
	b.lost(ResLock, 2, 14, 400, 500, errLossDeadline)
	b.lost(ResLock, 0, 20, 600, 700, errExpired)
	b.lost(ResElection, 0, 30, 100, 900, errClosed)
	r := b.check()
	require.Empty(t, r.Violations)
	assert.Equal(t, 4, r.Res[ResLock].Acquisitions)
	assert.Equal(t, 2, r.Res[ResLock].Writes)
	assert.Equal(t, map[string]int{CauseReleased: 2, CauseLossDeadline: 1, CauseSessionExpired: 1}, r.Res[ResLock].Ends)
	assert.Equal(t, map[string]int{CauseSessionClosed: 1}, r.Res[ResElection].Ends)
	assert.Equal(t, 1, r.Faults[FaultCut])
	assert.Equal(t, 95*time.Millisecond, r.Res[ResLock].MaxRecovery, "fault removed at 305, next hold at 400")
	assert.Zero(t, r.Res[ResElection].MaxRecovery, "a leader was in office when the fault ended")
	assert.Equal(t, 2, r.Res[ResLock].Losses)
	assert.Equal(t, 1, r.Res[ResLock].GrantsAfterLoss, "no hold follows the last loss")
	assert.Equal(t, 100*time.Millisecond, r.Res[ResLock].ClosestGrant)
	assert.Contains(t, r.Summary(), "violations: 0")
}

func TestCheckOverlap(t *testing.T) {
	b := newBuilder()
	b.released(ResLock, 0, 10, 100, 200)
	b.released(ResLock, 1, 12, 150, 300) // begins while c0 holds
	r := b.check()
	require.Equal(t, []string{PropMutex}, properties(r))
	out := r.Violations[0].Format(r.Start)
	assert.Contains(t, out, "c1's hold 2")
	assert.Contains(t, out, "lock c0")
	assert.Contains(t, out, "lock c1")
	assert.Contains(t, out, "lock-ok")
	t.Log(out)
}

func TestCheckLossEndsHold(t *testing.T) {
	// The loss signal is an end: the next hold may begin after it, even
	// though the former holder calls Unlock later.
	b := newBuilder()
	a := b.lost(ResLock, 0, 10, 100, 200, errLossDeadline)
	b.add(400, Event{Op: OpUnlockCall, Res: ResLock, Client: 0, Hold: a})
	b.released(ResLock, 1, 12, 250, 300)
	assert.Empty(t, b.check().Violations)

	// But not if the next hold began before the loss was signalled.
	b = newBuilder()
	b.lost(ResLock, 0, 10, 100, 200, errLossDeadline)
	b.released(ResLock, 1, 12, 199, 300)
	assert.Equal(t, []string{PropMutex}, properties(b.check()))
}

func TestCheckUnlockCallEndsHold(t *testing.T) {
	// Done closes inside Unlock, after the next holder may already have
	// been granted: the Unlock call is what counts.
	b := newBuilder()
	id := b.begin(ResLock, 0, 10, 100)
	b.add(200, Event{Op: OpUnlockCall, Res: ResLock, Client: 0, Hold: id})
	b.released(ResLock, 1, 12, 210, 300)
	b.add(220, Event{Op: OpHoldEnd, Res: ResLock, Client: 0, Hold: id, Err: errReleased})
	assert.Empty(t, b.check().Violations)
}

func TestCheckHoldNeverEnded(t *testing.T) {
	b := newBuilder()
	b.begin(ResElection, 2, 10, 100)
	r := b.check()
	assert.Equal(t, []string{PropHoldEnds}, properties(r))

	// And a later hold overlaps it.
	b.released(ResElection, 1, 12, 500, 600)
	assert.ElementsMatch(t, []string{PropHoldEnds, PropMutex}, properties(b.check()))
}

func TestCheckTokens(t *testing.T) {
	b := newBuilder()
	b.released(ResLock, 0, 10, 100, 200)
	b.released(ResLock, 1, 10, 300, 400) // equal: not strictly increasing
	b.released(ResLock, 2, 9, 500, 600)
	r := b.check()
	assert.Equal(t, []string{PropFencing, PropFencing}, properties(r))
}

func TestCheckRejectedWrite(t *testing.T) {
	// c1 is granted while c0 still holds, writes first, and c0's next
	// write, made while its hold was still on, is rejected.
	b := newBuilder()
	old := b.lost(ResLock, 0, 10, 100, 400, errExpired)
	b.released(ResLock, 1, 12, 300, 500)
	b.write(ResLock, 0, old, 10, 350, false)
	r := b.check()
	require.Equal(t, []string{PropMutex, PropFencing}, properties(r))
	out := r.Violations[1].Format(r.Start)
	assert.Contains(t, out, "accepted=false")
	assert.Contains(t, out, "accepted=true", "shows the write that raised the resource")
}

func TestCheckRevocation(t *testing.T) {
	// An operator deletes c0's node at 150; c1 is granted at 155, before c0
	// hears of it at 160; c0's write at 158 is fenced off.
	b := newBuilder()
	a := b.begin(ResLock, 0, 10, 100)
	b.fault(FaultDeleteNode, 150, 151, a, true)
	c1 := b.begin(ResLock, 1, 12, 155)
	b.write(ResLock, 1, c1, 12, 156, true)
	b.write(ResLock, 0, a, 10, 158, false)
	b.add(160, Event{Op: OpHoldEnd, Res: ResLock, Client: 0, Hold: a, Err: errDeleted})
	b.add(200, Event{Op: OpUnlockCall, Res: ResLock, Client: 1, Hold: c1})
	b.add(201, Event{Op: OpHoldEnd, Res: ResLock, Client: 1, Hold: c1, Err: errReleased})
	r := b.check()
	require.Empty(t, r.Violations)
	assert.Equal(t, 1, r.Res[ResLock].FencedOff)
	assert.Equal(t, 1, r.Res[ResLock].RevokedOverlaps)
	assert.Equal(t, 1, r.Res[ResLock].Ends[CauseNodeDeleted])
	assert.Zero(t, r.Res[ResLock].GrantsAfterLoss, "a revocation races the next grant by nature: no margin to report")

	// A delete that found no node revokes nothing.
	b = newBuilder()
	a = b.begin(ResLock, 0, 10, 100)
	b.fault(FaultDeleteNode, 150, 151, a, false)
	b.lost(ResLock, 1, 12, 155, 300, errReleased)
	b.add(160, Event{Op: OpHoldEnd, Res: ResLock, Client: 0, Hold: a, Err: errDeleted})
	assert.Equal(t, []string{PropMutex, PropExpiry}, properties(b.check()))

	// A hold that began before the delete is not excused by it.
	b = newBuilder()
	a = b.begin(ResLock, 0, 10, 100)
	b.lost(ResLock, 1, 12, 140, 300, errReleased)
	b.fault(FaultDeleteNode, 150, 151, a, true)
	b.add(160, Event{Op: OpHoldEnd, Res: ResLock, Client: 0, Hold: a, Err: errDeleted})
	assert.Equal(t, []string{PropMutex}, properties(b.check()))
}

func TestCheckDirectoryDeleted(t *testing.T) {
	// An operator deletes the directory with c0's node (held) and c1's
	// (waiting) at 150; c1 requeues and is granted at 155, before c0 hears
	// of it at 160.
	b := newBuilder()
	a := b.begin(ResLock, 0, 10, 100)
	b.faults++
	f := &Fault{ID: b.faults, Kind: FaultDeleteDir, Client: -1, Res: ResLock, Dir: "/lock",
		Keys: []string{b.evs[len(b.evs)-1].Key, "/lock/_c_0123456789abcdef0123456789abcdef0123-lock-0000000099"}}
	b.add(150, Event{Op: OpFaultStart, Client: -1, Fault: f})
	b.add(151, Event{Op: OpFaultEnd, Client: -1, Fault: f, OK: true})
	c1 := b.begin(ResLock, 1, 12, 155)
	b.add(160, Event{Op: OpHoldEnd, Res: ResLock, Client: 0, Hold: a, Err: errDeleted})
	b.add(200, Event{Op: OpUnlockCall, Res: ResLock, Client: 1, Hold: c1})
	b.add(201, Event{Op: OpHoldEnd, Res: ResLock, Client: 1, Hold: c1, Err: errReleased})
	r := b.check()
	require.Empty(t, r.Violations)
	assert.Equal(t, 1, r.Res[ResLock].RevokedOverlaps)
	assert.Equal(t, 1, r.Faults[FaultDeleteDir])

	// A hold whose node was not among those deleted is not excused.
	f.Keys = f.Keys[1:]
	assert.Equal(t, []string{PropMutex, PropExpiry}, properties(b.check()))
}

func TestCheckCloseEndsHolds(t *testing.T) {
	closeAt := func(b *builder, client, call, done int, open ...int) {
		b.add(call, Event{Op: OpCloseCall, Res: ResLock, Client: client})
		b.add(done, Event{Op: OpCloseDone, Res: ResLock, Client: client, Open: open})
	}
	// c0 holds; its Session is closed at 150; its hold ends at 151, before
	// Close returns at 160 and c1 is granted at 170.
	b := newBuilder()
	a := b.lost(ResLock, 0, 10, 100, 151, errClosed)
	closeAt(b, 0, 150, 160)
	b.released(ResLock, 1, 12, 170, 200)
	r := b.check()
	require.Empty(t, r.Violations)
	assert.Equal(t, 1, r.Res[ResLock].Closes)
	assert.Equal(t, 1, r.Res[ResLock].ClosedHolds)

	// Close returned with the hold still open.
	b = newBuilder()
	a = b.lost(ResLock, 0, 10, 100, 165, errClosed)
	closeAt(b, 0, 150, 160, a)
	b.released(ResLock, 1, 12, 170, 200)
	r = b.check()
	assert.Equal(t, []string{PropCloseEnds}, properties(r))
	assert.Contains(t, r.Violations[0].Detail, fmt.Sprintf("hold %d had not ended", a))

	// Another client was granted before the closed hold ended.
	b = newBuilder()
	b.lost(ResLock, 0, 10, 100, 158, errClosed)
	closeAt(b, 0, 150, 160)
	b.released(ResLock, 1, 12, 155, 200)
	assert.Equal(t, []string{PropMutex, PropCloseEnds}, properties(b.check()))

	// A hold that ended before Close was called is not the Close's.
	b = newBuilder()
	b.released(ResLock, 0, 10, 100, 120)
	closeAt(b, 0, 150, 160)
	b.released(ResLock, 1, 12, 155, 200)
	r = b.check()
	require.Empty(t, r.Violations)
	assert.Zero(t, r.Res[ResLock].ClosedHolds)
}

func TestCheckExpiryWhileTrusted(t *testing.T) {
	// The node went, and no operator deleted it: the server expired the
	// session while the client counted on it.
	b := newBuilder()
	b.lost(ResLock, 0, 10, 100, 200, errDeleted)
	b.released(ResLock, 1, 12, 300, 400)
	r := b.check()
	require.Equal(t, []string{PropExpiry}, properties(r))
	assert.Contains(t, r.Violations[0].Detail, "no operator deleted it")
	assert.Equal(t, 100*time.Millisecond, r.Res[ResLock].ClosestGrant)
}

func TestCheckRevocationNoticed(t *testing.T) {
	b := newBuilder()
	a := b.begin(ResLock, 0, 10, 100)
	b.fault(FaultDeleteNode, 150, 151, a, true)
	b.add(150+int(testCfg.RevocationBound/time.Millisecond)+1, Event{Op: OpHoldEnd, Res: ResLock, Client: 0, Hold: a, Err: errDeleted})
	assert.Equal(t, []string{PropRevocation}, properties(b.check()))
}

func TestCheckFinalRound(t *testing.T) {
	bound := int(testCfg.Bound / time.Millisecond)
	b := newBuilder()
	b.add(1000, Event{Op: OpPhase, Phase: PhaseFinalRound, Res: ResLock, Client: -1, OK: true})
	b.released(ResLock, 0, 10, 1100, 1200)
	b.released(ResLock, 1, 12, 1000+bound, 1000+bound+10) // just in time
	r := b.check()
	require.Empty(t, r.Violations)
	assert.Equal(t, testCfg.Bound, r.Res[ResLock].SlowestFinal)

	b.released(ResLock, 2, 14, 1000+bound+100, 1000+bound+200) // late
	b.add(1001, Event{Op: OpLockCall, Res: ResLock, Client: 3})
	b.add(1000+bound+300, Event{Op: OpLockErr, Res: ResLock, Client: 3, Err: context.DeadlineExceeded})
	r = b.check()
	require.Equal(t, []string{PropLiveness, PropLiveness}, properties(r))
	assert.Contains(t, r.Violations[0].Detail, "c2's final Lock took")
	assert.Contains(t, r.Violations[1].Detail, "c3 never got the lock")
}

func TestCheckLeader(t *testing.T) {
	leaderCheck := func(b *builder, ms int, key string, ok bool) {
		b.add(ms, Event{Op: OpPhase, Phase: PhaseLeaderCheck, Res: ResElection, Client: -1, Key: key, OK: ok})
	}
	observe := func(b *builder, ms int, token int64, key string) {
		b.add(ms, Event{Op: OpObserve, Res: ResElection, Client: -1, Token: token, Key: key})
	}
	b := newBuilder()
	b.lost(ResElection, 0, 10, 100, 200, errExpired)
	id := b.begin(ResElection, 1, 12, 300)
	key := b.evs[len(b.evs)-1].Key
	observe(b, 110, 10, b.evs[1].Key)
	observe(b, 305, 12, key)
	leaderCheck(b, 400, key, true)
	b.add(500, Event{Op: OpHoldEnd, Res: ResElection, Client: 1, Hold: id, Err: context.Canceled})
	r := b.check()
	require.Empty(t, r.Violations)
	assert.Equal(t, 1, r.Res[ResElection].Ends[CauseRunStopped])

	// Two leaders at once: both the overlap and the check fail.
	b2 := newBuilder()
	b2.lost(ResElection, 0, 10, 100, 600, errClosed)
	b2.lost(ResElection, 1, 12, 300, 600, errClosed)
	key = b2.evs[len(b2.evs)-2].Key
	observe(b2, 305, 12, key)
	leaderCheck(b2, 400, key, true)
	assert.ElementsMatch(t, []string{PropMutex, PropLiveness}, properties(b2.check()))

	// The observer disagrees.
	b3 := newBuilder()
	b3.lost(ResElection, 0, 10, 100, 600, errClosed)
	leaderCheck(b3, 400, b3.evs[1].Key, true)
	assert.Equal(t, []string{PropLiveness}, properties(b3.check()))

	// The harness gave up waiting.
	b4 := newBuilder()
	leaderCheck(b4, 400, "", false)
	assert.Equal(t, []string{PropLiveness}, properties(b4.check()))

	// Observed terms go backwards.
	b5 := newBuilder()
	observe(b5, 100, 12, "/election/b")
	observe(b5, 200, 10, "/election/a")
	assert.Equal(t, []string{PropObserve}, properties(b5.check()))
}

func TestCause(t *testing.T) {
	assert.Equal(t, CauseLossDeadline, Cause(errLossDeadline))
	assert.Equal(t, CauseSessionExpired, Cause(errExpired))
	assert.Equal(t, CauseNodeDeleted, Cause(errDeleted))
	assert.Equal(t, CauseSessionClosed, Cause(errClosed))
	assert.Equal(t, CauseReleased, Cause(zklock.ErrNotLeader))
	assert.Equal(t, CauseRunStopped, Cause(fmt.Errorf("run: %w", context.Canceled)))
	assert.Equal(t, CauseOther, Cause(fmt.Errorf("boom")))
}

func TestViolationExcerptIsBounded(t *testing.T) {
	b := newBuilder()
	a := b.begin(ResLock, 0, 10, 100)
	for i := range 500 {
		b.write(ResLock, 0, a, 10, 101+i, true)
		b.add(101+i, Event{Op: OpState, Res: ResLock, Client: 0, Note: "connected"})
	}
	b.released(ResLock, 1, 12, 1000, 1100)
	b.add(1001, Event{Op: OpState, Res: ResLock, Client: 5, Note: "not involved"})
	r := b.check()
	require.Equal(t, []string{PropHoldEnds, PropMutex}, properties(r))
	v := r.Violations[1]
	assert.Len(t, v.Events, maxExcerpt)
	// Shown or cut: the first lock-ok, 500 states, c1's lock-call and lock-ok.
	assert.Equal(t, 500+(1+500+2-maxExcerpt), v.Omitted, "accepted writes and the middle are left out")
	assert.Equal(t, OpLockOK, v.Events[0].Op, "starts with the first hold")
	assert.Equal(t, OpLockOK, v.Events[len(v.Events)-1].Op, "ends with the second")
	out := v.Format(r.Start)
	assert.Equal(t, 1, strings.Count(out, "VIOLATION"))
	assert.NotContains(t, out, "not involved")
	assert.NotContains(t, out, " write ")
	assert.Contains(t, out, "more events in this span not shown")
}

// sharedHold is a shared hold (a read hold or a lease) from from to to,
// ended by its release.
func (b *builder) sharedHold(res string, client int, token int64, from, to int) int {
	b.holds++
	id := b.holds
	b.add(from-1, Event{Op: OpLockCall, Res: res, Client: client})
	b.add(from, Event{Op: OpLockOK, Res: res, Client: client, Hold: id, Token: token, Shared: true,
		Key: fmt.Sprintf("/%s/_c_0123456789abcdef0123456789abcdef0123-__READ__%010d", res, id)})
	b.add(to, Event{Op: OpUnlockCall, Res: res, Client: client, Hold: id})
	b.add(to+1, Event{Op: OpHoldEnd, Res: res, Client: client, Hold: id, Err: errReleased})
	return id
}

func TestCheckReadersShare(t *testing.T) {
	b := newBuilder()
	b.released(ResRW, 0, 10, 100, 200)
	// Readers overlap each other, and may begin out of token order.
	r1 := b.sharedHold(ResRW, 1, 14, 210, 400)
	r2 := b.sharedHold(ResRW, 2, 12, 220, 300)
	b.add(230, Event{Op: OpRead, Res: ResRW, Client: 1, Hold: r1, Token: 14, OK: true})
	b.add(240, Event{Op: OpRead, Res: ResRW, Client: 2, Hold: r2, Token: 12, OK: true})
	b.released(ResRW, 0, 16, 410, 500)
	require.Empty(t, b.check().Violations)
}

func TestCheckWriterOverlapsReader(t *testing.T) {
	b := newBuilder()
	b.sharedHold(ResRW, 1, 10, 100, 300)
	b.released(ResRW, 0, 12, 200, 400) // a writer while c1 reads
	r := b.check()
	require.Equal(t, []string{PropMutex}, properties(r))
	assert.Contains(t, r.Violations[0].Detail, "rw c0's hold 2")
	assert.Contains(t, r.Violations[0].Detail, "rw c1's shared hold 1")
}

func TestCheckReaderOverlapsWriter(t *testing.T) {
	b := newBuilder()
	b.released(ResRW, 0, 10, 100, 300)
	b.sharedHold(ResRW, 1, 12, 200, 400)
	require.Equal(t, []string{PropMutex}, properties(b.check()))
}

func TestCheckReaderTokenBelowWriter(t *testing.T) {
	b := newBuilder()
	b.released(ResRW, 0, 12, 100, 200)
	b.sharedHold(ResRW, 1, 10, 300, 400) // began after the writer, with a lower token
	require.Equal(t, []string{PropFencing}, properties(b.check()))
}

func TestCheckLeaseLimit(t *testing.T) {
	b := newBuilder()
	b.sharedHold(ResSem, 0, 10, 100, 400)
	b.sharedHold(ResSem, 1, 12, 150, 250)
	b.sharedHold(ResSem, 2, 14, 260, 300) // the second while c0 holds: within 2
	cfg := testCfg
	cfg.Limits = map[string]int{ResSem: 2}
	require.Empty(t, Check(b.evs, cfg).Violations)

	b.sharedHold(ResSem, 1, 16, 280, 350) // a third
	r := Check(b.evs, cfg)
	require.Equal(t, []string{PropLimit}, properties(r))
	assert.Contains(t, r.Violations[0].Detail, "2 of 2 were open")
}

func TestCheckSharedTokensDiffer(t *testing.T) {
	b := newBuilder()
	b.sharedHold(ResSem, 0, 10, 100, 400)
	b.sharedHold(ResSem, 1, 10, 150, 250)
	require.Equal(t, []string{PropFencing}, properties(b.check()))
}

// A MultiLock's member on the Mutex scenario's lock excludes the Mutex
// clients, and a member that ended with another member's loss is not an
// expiry.
func TestCheckMultiLockMembers(t *testing.T) {
	b := newBuilder()
	b.released(ResLock, 0, 10, 100, 200)
	b.holds++
	onLock := b.holds
	b.add(300, Event{Op: OpLockOK, Res: ResMulti, Client: 0, Hold: onLock, Token: 12, On: ResLock, Key: "/lock/_c_x-lock-0000000001"})
	b.holds++
	onMulti := b.holds
	b.add(300, Event{Op: OpLockOK, Res: ResMulti, Client: 0, Hold: onMulti, Token: 13, On: ResMulti, Key: "/multi/_c_x-lock-0000000001"})
	b.add(310, Event{Op: OpWrite, Res: ResMulti, Client: 0, Hold: onLock, Token: 12, On: ResLock, OK: true})
	b.add(400, Event{Op: OpHoldEnd, Res: ResMulti, Client: 0, Hold: onLock, Err: errLossDeadline})
	b.add(400, Event{Op: OpHoldEnd, Res: ResMulti, Client: 0, Hold: onMulti, Err: fmt.Errorf("%w (%v)", ErrMemberEnded, errDeleted)})
	b.released(ResLock, 1, 14, 500, 600)
	r := b.check()
	require.Empty(t, r.Violations)
	assert.Equal(t, 3, r.Res[ResLock].Acquisitions)
	assert.Equal(t, map[string]int{CauseWithMember: 1}, r.Res[ResMulti].Ends)

	b.released(ResLock, 2, 13, 350, 360) // while the multi-lock holds
	r = b.check()
	require.Equal(t, []string{PropMutex}, properties(r))
	assert.Contains(t, r.Violations[0].Detail, "lock c2's hold")
	assert.Contains(t, r.Violations[0].Detail, "multi c0's hold")
}
