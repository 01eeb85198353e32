package chaos

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zklock/zklock"
	"github.com/zklock/zklock/zktesting"
)

// regressionSeeds are seeds whose fault schedules exposed library bugs;
// each runs like TestChaos, for its duration, drawing from the kinds there
// were when it was found, so its schedule is the same. A seed fixes the
// faults, not which server each client picks or where a pause falls
// between its pings, so a seed shows its bug in some runs only; TestChaosLeaderStall aims at
// the leader-stall bug and showed it in almost every run.
var regressionSeeds = []struct {
	seed  uint64
	kinds []FaultKind
	dur   time.Duration
	long  bool // only with ZKLOCK_CHAOS_DURATION set, as a release check
	bug   string
}{
	{seed: 209, kinds: FirstFaults, dur: 8 * time.Second, bug: "leader stall: fault #1 paused the leader for 1.805s; " +
		"election c0, on a follower, learned its node was deleted, which no operator did"},
	{seed: fixedSeed, kinds: FirstFaults, dur: 5 * time.Minute, long: true, bug: "leader stall: fault #65 paused the leader for 1.839s; " +
		"lock c5's Lock returned 81µs before c0, on a follower, heard that its session expired"},
}

func TestChaosRegressions(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos test: needs ZooKeeper")
	}
	for _, rs := range regressionSeeds {
		t.Run(fmt.Sprintf("seed=%d", rs.seed), func(t *testing.T) {
			if rs.long && os.Getenv(envDuration) == "" {
				t.Skipf("runs %v; set %s to include it", rs.dur, envDuration)
			}
			t.Logf("seed %d, once found: %s", rs.seed, rs.bug)
			runChaos(t, rs.seed, rs.kinds, rs.dur)
		})
	}
}

// TestChaosLeaderStall is the leader-stall bug on its own: a holder
// connected only to a follower, a waiter connected only to the other
// follower, and the leader paused for a little less than the followers
// tolerate (syncLimit*tickTime: 2s here). If the holder's hold ends, the
// Session's own deadline must have ended it, before the waiter's grant.
func TestChaosLeaderStall(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs ZooKeeper")
	}
	zc := zktesting.Start(t, 3)
	zc.RequireControl(t)
	r := &rig{t: t, zc: zc, local: zc, root: zc.Root(t), admin: zc.Admin(t)}
	leader, followers, err := r.roles()
	if err != nil {
		t.Fatal(err)
	}
	if len(followers) < 2 {
		t.Fatalf("followers %v, want two", followers)
	}
	ps := zc.NewProxies(t)
	connect := func(server int) *zklock.Session {
		ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
		defer cancel()
		s, err := zklock.Connect(ctx, []string{ps.Proxy(server).Addr()},
			zklock.WithChroot(r.root), zklock.WithSessionTimeout(sessionTimeout))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	holderS := connect(followers[0])
	holder := zklock.NewMutex(holderS, lockPath)
	waiter := zklock.NewMutex(connect(followers[1]), lockPath)

	ctx, cancel := context.WithTimeout(context.Background(), zktesting.Timeout)
	defer cancel()
	if err := holder.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	done := holder.Done()
	lost := make(chan time.Time, 1)
	go func() {
		<-done // ends at the latest when the Session closes
		lost <- time.Now()
	}()
	granted := make(chan time.Time, 1)
	go func() {
		if err := waiter.Lock(ctx); err == nil {
			granted <- time.Now()
		}
	}()
	r.waitChildren(r.root+lockPath, 2)

	// The leader expires the session on resuming only if its last word
	// from the holder is old enough, which depends on where the pause falls
	// between the holder's pings; so try a few pauses, each after a quiet
	// spell and a little shorter than the followers tolerate.
	var lostAt, grantedAt, pausedAt, resumedAt, deadline time.Time
	for _, length := range []time.Duration{1700, 1800, 1900, 1750, 1850} {
		length *= time.Millisecond
		if l, _, err := r.roles(); err != nil || l != leader {
			t.Logf("the ensemble changed (leader zk%d, %v): stopping", l+1, err)
			break
		}
		pause(500 * time.Millisecond)
		deadline = holderS.LossDeadline() // what the holder counts on
		pausedAt = time.Now()
		if err := r.local.Pause(leader); err != nil {
			t.Fatal(err)
		}
		pause(length)
		resumedAt = time.Now()
		if err := r.local.Resume(leader); err != nil {
			t.Fatal(err)
		}
		t.Logf("paused leader zk%d for %v; holder on zk%d, waiter on zk%d", leader+1, length, followers[0]+1, followers[1]+1)
		select {
		case lostAt = <-lost:
		case grantedAt = <-granted:
		case <-time.After(2 * sessionTimeout):
			continue
		}
		break
	}
	if lostAt.IsZero() && grantedAt.IsZero() {
		t.Log("the session outlived every stall: nothing to check")
		return
	}
	select {
	case lostAt = <-lost:
	case grantedAt = <-granted:
	case <-time.After(3 * sessionTimeout):
		t.Fatalf("lost at +%v, granted at +%v: one without the other", since(pausedAt, lostAt), since(pausedAt, grantedAt))
	}
	t.Logf("from the pause: safe loss deadline as of the pause +%v, holder lost at +%v (%v), leader resumed at +%v, waiter granted at +%v",
		deadline.Sub(pausedAt), since(pausedAt, lostAt), holder.Err(), resumedAt.Sub(pausedAt), since(pausedAt, grantedAt))
	if !errors.Is(holder.Err(), zklock.ErrLossDeadline) {
		t.Errorf("the hold ended by %v, not at the Session's safe loss deadline: the server expired the session first", holder.Err())
	}
	if !lostAt.Before(grantedAt) {
		t.Errorf("the waiter was granted %v before the holder's loss signal", lostAt.Sub(grantedAt))
	}
	uctx, ucancel := context.WithTimeout(context.Background(), unlockTimeout)
	defer ucancel()
	if err := waiter.Unlock(uctx); err != nil {
		t.Error(err)
	}
}

func since(base, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Sub(base).String()
}

// waitChildren waits, bounded, until dir has n children.
func (r *rig) waitChildren(dir string, n int) {
	r.t.Helper()
	deadline := time.After(zktesting.Timeout)
	for {
		kids, _, ev, err := r.admin.ChildrenW(dir)
		if err != nil && !errors.Is(err, zk.ErrNoNode) {
			r.t.Fatal(err)
		}
		if len(kids) == n {
			return
		}
		if errors.Is(err, zk.ErrNoNode) {
			var ok bool
			if ok, _, ev, err = r.admin.ExistsW(dir); err != nil {
				r.t.Fatal(err)
			} else if ok {
				continue
			}
		}
		select {
		case <-ev:
		case <-deadline:
			r.t.Fatalf("%s has children %v, want %d", dir, kids, n)
		}
	}
}
