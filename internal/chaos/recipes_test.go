package chaos

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/zklock/zklock"
)

// recipes returns the client's RWMutex, Semaphore and MultiLock, of which
// its res says which is set.
func (c *client) recipes() (*zklock.RWMutex, *zklock.Semaphore, *zklock.MultiLock) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rw, c.sem, c.ml
}

// clients returns every client in the rig, scenario by scenario.
func (r *rig) clients() []*client {
	return slices.Concat(r.mutexes, r.cands, r.rws, r.sems, r.multis)
}

// clientOf returns client id of scenario res (not the child process).
func (r *rig) clientOf(res string, id int) *client {
	switch res {
	case ResLock:
		return r.mutexes[id]
	case ResElection:
		return r.cands[id]
	case ResRW:
		return r.rws[id]
	case ResSem:
		return r.sems[id]
	case ResMulti:
		return r.multis[id]
	}
	panic("unknown scenario " + res)
}

// newRecipes are the scenarios added to the Mutex and the Election.
var newRecipes = []string{ResRW, ResSem, ResMulti}

// aimNew is an aim at the holds of the RWMutex, Semaphore and MultiLock
// clients, for client faults and node deletions, which the plan's pick
// turns to them one time in two when one of them holds.
func (r *rig) aimNew(p Plan) (Event, bool) {
	if (p.Pick>>34)%2 == 0 {
		return Event{}, false
	}
	var open []Event
	for _, res := range newRecipes {
		open = append(open, r.h.Open(res)...)
	}
	if len(open) == 0 {
		return Event{}, false
	}
	return open[(p.Pick>>35)%uint64(len(open))], true
}

// use is a holder's critical section: act (a write, a read, a look at the
// hold) repeated writes times, a few milliseconds apart, until it returns
// false or the hold ends. Mostly short holds, so the lock changes hands
// often; now and then a long one, acting all along, so that faults outlast
// critical sections and holds are lost while in use.
func (r *rig) use(c *client, hold context.Context, writes int, act func() bool) {
	work := time.Duration(2+c.rng.IntN(6)) * time.Millisecond
	if writes > 1 && c.rng.IntN(longHoldOneIn) == 0 {
		length := longHoldMin + time.Duration(c.rng.Int64N(int64(longHoldMax-longHoldMin)))
		work = termWriteEvery
		writes = int(length / work)
	}
	for range writes {
		if !act() {
			break
		}
		select {
		case <-time.After(work):
		case <-hold.Done():
		}
	}
}

// acquireOnce is one acquisition by c, critical section and release, all
// recorded, with the recipe of c's scenario. In the final round an RWMutex
// client takes the write lock; otherwise one time in writeOneIn.
func (r *rig) acquireOnce(ctx context.Context, c *client, writes int, final bool) error {
	_, m, _, _ := c.current()
	rw, sem, ml := c.recipes()
	switch c.res {
	case ResLock:
		return r.lockOnce(ctx, c, m, writes)
	case ResRW:
		return r.rwOnce(ctx, c, rw, final || c.rng.IntN(writeOneIn) == 0, writes)
	case ResSem:
		return r.semOnce(ctx, c, sem, writes)
	case ResMulti:
		return r.multiOnce(ctx, c, ml, writes)
	}
	return fmt.Errorf("%s c%d: no acquisition for this scenario", c.res, c.id)
}

// rwOnce is one write lock (write) or read lock of rw, c's RWMutex: a
// writer writes to the fenced resource, a reader reads it.
func (r *rig) rwOnce(ctx context.Context, c *client, rw *zklock.RWMutex, write bool, writes int) error {
	side, lock, unlock := rw.Reader(), rw.RLock, rw.RUnlock
	note := "read lock"
	if write {
		side, lock, unlock = rw.Writer(), rw.Lock, rw.Unlock
		note = "write lock"
	}
	r.h.Add(Event{Op: OpLockCall, Res: ResRW, Client: c.id, Note: note})
	err := lock(ctx)
	at := time.Now()
	if err != nil {
		r.h.Add(Event{At: at, Op: OpLockErr, Res: ResRW, Client: c.id, Err: err, Note: note})
		return err
	}
	hold, done, token, key := side.Context(), side.Done(), side.Token(), side.Key()
	id := r.h.Begin(Event{At: at, Res: ResRW, Client: c.id, Token: token, Key: key, Shared: !write})
	r.watchHold(done, hold, ResRW, c.id, id)
	e := Event{Res: ResRW, Client: c.id, Hold: id, Token: token}
	r.use(c, hold, writes, func() bool {
		if write {
			return r.write(hold, &r.rwRes, e)
		}
		return r.read(hold, &r.rwRes, e)
	})
	r.h.Add(Event{Op: OpUnlockCall, Res: ResRW, Client: c.id, Hold: id})
	uctx, cancel := context.WithTimeout(context.Background(), unlockTimeout)
	err = unlock(uctx)
	cancel()
	r.h.Add(Event{Op: OpUnlockDone, Res: ResRW, Client: c.id, Hold: id, Err: err})
	return nil
}

// semOnce is one lease of sem, c's Semaphore, held for a while and
// released. Leases share no fenced resource: up to semLeases hold at once.
func (r *rig) semOnce(ctx context.Context, c *client, sem *zklock.Semaphore, writes int) error {
	r.h.Add(Event{Op: OpLockCall, Res: ResSem, Client: c.id})
	lease, err := sem.Acquire(ctx)
	at := time.Now()
	if err != nil {
		r.h.Add(Event{At: at, Op: OpLockErr, Res: ResSem, Client: c.id, Err: err})
		return err
	}
	hold := lease.Context()
	id := r.h.Begin(Event{At: at, Res: ResSem, Client: c.id, Token: lease.Token(), Key: lease.Key(), Shared: true})
	r.watchHold(lease.Done(), hold, ResSem, c.id, id)
	r.use(c, hold, writes, func() bool { return hold.Err() == nil })
	r.h.Add(Event{Op: OpUnlockCall, Res: ResSem, Client: c.id, Hold: id})
	uctx, cancel := context.WithTimeout(context.Background(), unlockTimeout)
	err = lease.Release(uctx)
	cancel()
	r.h.Add(Event{Op: OpUnlockDone, Res: ResSem, Client: c.id, Hold: id, Err: err})
	return nil
}

// errEndedAtLock is the OpLockErr of a MultiLock whose Lock returned nil
// with its hold already ended: a member was lost while Lock waited for
// another. The holder never holds, so it is no hold.
var errEndedAtLock = errors.New("the multi-lock's hold had ended when Lock returned")

// multiOnce is one Lock of ml, c's MultiLock, critical section and Unlock.
// Each member's lock is a hold of its own, on ResLock or ResMulti, begun
// when Lock returns and ended when the MultiLock's hold ends; each writes
// to its lock's fenced resource with its own token.
func (r *rig) multiOnce(ctx context.Context, c *client, ml *zklock.MultiLock, writes int) error {
	r.h.Add(Event{Op: OpLockCall, Res: ResMulti, Client: c.id})
	err := ml.Lock(ctx)
	at := time.Now()
	if err == nil {
		if lost := ml.Err(); lost != nil {
			err = fmt.Errorf("%w: %w", errEndedAtLock, lost)
		}
	}
	if err != nil {
		r.h.Add(Event{At: at, Op: OpLockErr, Res: ResMulti, Client: c.id, Err: err})
		if errors.Is(err, errEndedAtLock) {
			r.unlockMulti(c, ml, nil)
			return nil
		}
		return err
	}
	hold := ml.Context()
	members := ml.Mutexes()
	ids := make([]int, len(members))
	evs := make([]Event, len(members))
	res := make([]*Resource, len(members))
	for i, m := range members {
		on, fenced := ResMulti, &r.multiRes
		if strings.HasPrefix(m.Key(), lockPath+"/") {
			on, fenced = ResLock, &r.lockRes
		}
		ids[i] = r.h.Begin(Event{At: at, Res: ResMulti, Client: c.id, Token: m.Token(), Key: m.Key(), On: on})
		evs[i] = Event{Res: ResMulti, Client: c.id, Hold: ids[i], Token: m.Token(), On: on}
		res[i] = fenced
		r.addLive(ids[i], ResMulti, c.id, hold.Done())
	}
	r.wg.Go(func() {
		<-hold.Done() // bounded: every hold ends at the latest when its Session closes
		end := time.Now()
		cause := context.Cause(hold)
		for i, m := range members {
			err := cause
			if !errors.Is(cause, zklock.ErrNotLocked) {
				// The member lost is the cause; the others' own holds
				// went on until Unlock.
				if err = m.Err(); err == nil {
					err = fmt.Errorf("%w (%v)", ErrMemberEnded, cause)
				}
			}
			r.h.Add(Event{At: end, Op: OpHoldEnd, Res: ResMulti, Client: c.id, Hold: ids[i], Err: err, On: evs[i].On})
			r.dropLive(ids[i])
		}
	})
	r.use(c, hold, writes, func() bool {
		for i := range members {
			if !r.write(hold, res[i], evs[i]) {
				return false
			}
		}
		return true
	})
	r.unlockMulti(c, ml, ids)
	return nil
}

// unlockMulti unlocks ml, recording the call and the return for each of
// the member holds ids.
func (r *rig) unlockMulti(c *client, ml *zklock.MultiLock, ids []int) {
	for _, id := range ids {
		r.h.Add(Event{Op: OpUnlockCall, Res: ResMulti, Client: c.id, Hold: id})
	}
	uctx, cancel := context.WithTimeout(context.Background(), unlockTimeout)
	err := ml.Unlock(uctx)
	cancel()
	for _, id := range ids {
		r.h.Add(Event{Op: OpUnlockDone, Res: ResMulti, Client: c.id, Hold: id, Err: err})
	}
}
