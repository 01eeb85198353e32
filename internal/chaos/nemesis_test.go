package chaos

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"
)

// nemesis injects faults of kinds drawn from seed, one at a time with
// gaps, for dur; the last fault may run past dur. It stops at the first
// fault it cannot inject or remove, failing the test.
func (r *rig) nemesis(seed uint64, kinds []FaultKind, timeout, dur time.Duration) {
	gen := NewGenerator(seed, timeout, kinds...)
	end := time.Now().Add(dur)
	for id := 1; time.Now().Before(end); id++ {
		p := gen.Next()
		if err := r.inject(id, p); err != nil {
			r.t.Errorf("fault#%d %s: %v", id, p.Kind, err)
			return
		}
		pause(p.Gap)
	}
}

// pause lets a fault last, or the system be quiet, for d: the schedule's
// own timing, not a wait for an event.
func pause(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	<-t.C
}

// inject resolves p against the live system, applies it, removes it after
// its length and records both in the History.
func (r *rig) inject(id int, p Plan) error {
	f := &Fault{ID: id, Kind: p.Kind, Length: p.Length, Client: -1}
	start := func() { r.h.Add(Event{Op: OpFaultStart, Client: -1, Fault: f}) }
	end := func(effective bool, note string) {
		r.h.Add(Event{Op: OpFaultEnd, Client: -1, Fault: f, OK: effective, Note: note})
	}
	aimed, isAimed := r.aim(p)
	switch p.Kind {
	case FaultCut, FaultExpire, FaultShortBlackhole:
		c := r.pickClient(p, aimed, isAimed)
		f.Res, f.Client = c.res, c.id
		start()
		if p.Kind == FaultCut {
			c.ps.Cut()
		} else {
			c.ps.Blackhole()
			pause(p.Length)
			c.ps.Heal()
		}
		end(true, "")
		return nil

	case FaultHungServer, FaultBadName, FaultAuthReconnect:
		c := r.pickClientWhere(p, aimed, isAimed, func(c *client) bool {
			switch p.Kind {
			case FaultHungServer:
				return c.hung
			case FaultBadName:
				return c.bad
			}
			return c.auth
		})
		f.Res, f.Client = c.res, c.id
		hung, bad := c.hungDials.Load(), c.badDials.Load()
		start()
		n := r.cutBurst(c, p.Length)
		end(true, fmt.Sprintf("%d cuts; dials of the hung server %d, of the bad name %d; servers %s",
			n, c.hungDials.Load()-hung, c.badDials.Load()-bad, r.serverList(c)))
		return nil

	case FaultCloseSession:
		c := r.pickClient(p, aimed, isAimed)
		f.Res, f.Client = c.res, c.id
		blackhole := (p.Pick>>33)%2 == 0
		if blackhole {
			f.Note = "closed while blackholed"
		} else {
			f.Note = "closed while reconnecting after a cut"
			f.Length = 0
		}
		start()
		if err := r.closeSession(c, p.Length, blackhole); err != nil {
			return err
		}
		end(true, "")
		return nil

	case FaultDeleteDir:
		dirs := []struct{ res, dir string }{
			{ResLock, lockPath}, {ResElection, electionPath}, {ResRW, rwPath},
			{ResSem, semPath + "/leases"}, {ResMulti, multiPath},
		}
		d := dirs[(p.Pick>>32)%uint64(len(dirs))]
		res, dir := d.res, d.dir
		f.Res, f.Dir = res, dir
		start()
		keys, err := r.deleteDir(dir)
		f.Keys = keys
		note := ""
		if err != nil {
			note = err.Error()
		}
		end(err == nil, note)
		return nil

	case FaultClientPause:
		f.Res, f.Client = ResLock, childClient
		held := r.childHolds()
		if p.PreferHolder && !held {
			held = r.awaitChildHold()
		}
		start()
		if err := r.child.pauseChild(p.Length); err != nil {
			return err
		}
		note := "the child was waiting or between holds"
		if held {
			note = "the child held"
		}
		end(true, note)
		return nil

	case FaultDeleteNode:
		target := aimed
		if e, ok := r.aimNew(p); ok {
			target, isAimed = e, true
		}
		if !isAimed {
			var open []Event
			for _, res := range append([]string{ResLock, ResElection}, newRecipes...) {
				open = append(open, r.h.Open(res)...)
			}
			if len(open) == 0 {
				start()
				end(false, "no holder")
				return nil
			}
			target = open[p.Pick%uint64(len(open))]
		}
		f.Res, f.Client, f.Hold = target.Res, target.Client, target.Hold
		start()
		err := r.deleteNode(r.root + target.Key)
		note := ""
		if err != nil {
			note = err.Error() // the hold ended first: the node is gone
		}
		end(err == nil, note)
		return nil

	case FaultStopFollower, FaultStopLeader:
		leader, followers, err := r.settledRoles()
		if err != nil {
			return err
		}
		i := leader
		if p.Kind == FaultStopFollower {
			i = followers[p.Pick%uint64(len(followers))]
		}
		f.Servers = []int{i}
		start()
		if err := r.local.Stop(i); err != nil {
			return err
		}
		pause(p.Length)
		if err := r.startServers(i); err != nil {
			return err
		}
		end(true, "")

	case FaultQuorumLoss:
		byRole, err := r.byRole()
		if err != nil {
			return err
		}
		keep := byRole[p.Pick%uint64(len(byRole))]
		for _, i := range byRole {
			if i != keep {
				f.Servers = append(f.Servers, i)
			}
		}
		start()
		for _, i := range f.Servers {
			if err := r.local.Stop(i); err != nil {
				return err
			}
		}
		pause(p.Length)
		// Both at once: starting waits until a server is ready, and the
		// servers of a lost majority may only become ready together.
		if err := r.startServers(f.Servers...); err != nil {
			return err
		}
		end(true, "")

	case FaultPause:
		byRole, err := r.byRole()
		if err != nil {
			return err
		}
		k := p.Pick % uint64(len(byRole))
		i := byRole[k]
		f.Servers = []int{i}
		role := "follower"
		if k == 0 {
			role = "leader"
		}
		start()
		if err := r.local.Pause(i); err != nil {
			return err
		}
		pause(p.Length)
		if err := r.local.Resume(i); err != nil {
			return err
		}
		end(true, "was "+role)

	default:
		return fmt.Errorf("unknown fault kind %v", p.Kind)
	}
	// Server faults end only once the ensemble is whole again, so faults
	// do not pile up.
	return r.waitHealthy()
}

// Aiming at holders.
const (
	// longHoldAge is older than any short hold: a mutex hold this old is a
	// long one, likely to outlast the fault about to hit it.
	longHoldAge = 200 * time.Millisecond
	// aimWait bounds the wait for such a hold.
	aimWait = 5 * time.Second
)

// aim picks the hold a plan that prefers holders is aimed at: a long mutex
// hold or the election's leader, as the plan's pick says, falling back to
// whatever is held. Server faults use it too, to strike while a holder is
// in the middle of its work.
func (r *rig) aim(p Plan) (Event, bool) {
	if !p.PreferHolder {
		return Event{}, false
	}
	if (p.Pick>>32)%2 == 0 {
		if e, ok := r.awaitLongHold(); ok {
			return e, true
		}
	}
	for _, res := range []string{ResElection, ResLock} {
		if open := r.h.Open(res); len(open) > 0 {
			return open[0], true
		}
	}
	return Event{}, false
}

// awaitLongHold waits, up to aimWait, for a mutex hold at least
// longHoldAge old.
func (r *rig) awaitLongHold() (Event, bool) {
	deadline := time.NewTimer(aimWait)
	defer deadline.Stop()
	for {
		changed := r.h.Changed()
		var ripe <-chan time.Time
		for _, e := range r.h.Open(ResLock) {
			age := time.Since(e.At)
			if age >= longHoldAge {
				return e, true
			}
			if ripe == nil {
				ripe = time.After(longHoldAge - age)
			}
		}
		select {
		case <-changed:
		case <-ripe:
		case <-deadline.C:
			return Event{}, false
		}
	}
}

// childHolds reports whether the child process holds the lock, as far as
// the History knows.
func (r *rig) childHolds() bool {
	for _, e := range r.h.Open(ResLock) {
		if e.Client == childClient {
			return true
		}
	}
	return false
}

// awaitChildHold waits, up to aimWait, until the child process holds the
// lock.
func (r *rig) awaitChildHold() bool {
	deadline := time.NewTimer(aimWait)
	defer deadline.Stop()
	for {
		changed := r.h.Changed()
		if r.childHolds() {
			return true
		}
		select {
		case <-changed:
		case <-deadline.C:
			return false
		}
	}
}

// pickClient chooses the target of a client fault: the holder aimed at, if
// any, else any client.
// The plan's pick turns some to the holders of the RWMutex, Semaphore and
// MultiLock (aimNew).
func (r *rig) pickClient(p Plan, aimed Event, isAimed bool) *client {
	if e, ok := r.aimNew(p); ok {
		aimed, isAimed = e, true
	}
	if isAimed && aimed.Res == ResLock && aimed.Client == childClient {
		isAimed = false // the child process has no client here: FaultClientPause is its fault
	}
	if isAimed {
		return r.clientOf(aimed.Res, aimed.Client)
	}
	all := r.clients()
	return all[p.Pick%uint64(len(all))]
}

// pickClientWhere is pickClient among the clients for which ok holds.
func (r *rig) pickClientWhere(p Plan, aimed Event, isAimed bool, ok func(*client) bool) *client {
	if isAimed {
		if c := r.pickClient(p, aimed, true); ok(c) {
			return c
		}
	}
	var all []*client
	for _, c := range r.clients() {
		if ok(c) {
			all = append(all, c)
		}
	}
	return all[p.Pick%uint64(len(all))]
}

// serverList is c's server list for people: the hung server named so.
func (r *rig) serverList(c *client) string {
	out := slices.Clone(c.servers)
	for i, s := range out {
		if s == r.hung {
			out[i] = "hung:" + s
		}
	}
	return strings.Join(out, ",")
}

// cutBurst cuts c's connections at once and then every cutEvery for
// length, so each reconnect moves on to the next server in c's list; it
// returns the number of cuts.
func (r *rig) cutBurst(c *client, length time.Duration) int {
	every := r.timeout / 4
	n := 0
	for {
		c.ps.Cut()
		n++
		if time.Duration(n)*every > length {
			return n
		}
		pause(every)
	}
}

// closeSession closes c's Session in the middle of a fault on its
// connections: blackholed for length, Close at half of it; or cut, and
// Close at once, while the Session reconnects. It records the call and
// the return, with the holds whose Done was still open then, and gives c a
// new Session once its connections are whole again.
func (r *rig) closeSession(c *client, length time.Duration, blackhole bool) error {
	s, _, _, _ := c.current()
	healed := !blackhole
	heal := func() {
		if !healed {
			healed = true
			c.ps.Heal()
		}
	}
	defer heal() // at once if Close fails
	if blackhole {
		c.ps.Blackhole()
		pause(length / 2)
	} else {
		c.ps.Cut()
	}
	r.h.Add(Event{Op: OpCloseCall, Res: c.res, Client: c.id})
	closed := make(chan struct{})
	// Owner: closeSession, which waits for it up to closeTimeout; Close
	// itself is bounded, so it ends even when the wait gives up.
	go func() {
		s.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(closeTimeout):
		return fmt.Errorf("%s c%d: Session.Close did not return within %v", c.res, c.id, closeTimeout)
	}
	at := time.Now()
	open := r.stillOpen(c.res, c.id)
	r.h.Add(Event{At: at, Op: OpCloseDone, Res: c.res, Client: c.id, Open: open})
	if blackhole {
		pause(length - length/2)
		heal()
	}
	ns, err := r.connect(c, c.servers, c.opts...)
	if err != nil {
		return fmt.Errorf("%s c%d: a new Session: %w", c.res, c.id, err)
	}
	c.install(ns)
	r.recordStates(c, ns)
	return nil
}

// deleteDir deletes dir and every node in it in one multi, as an operator
// cleaning up would, and returns the nodes deleted with it. Contenders
// may add nodes between the listing and the multi, which then fails: it
// tries again, a few times.
func (r *rig) deleteDir(dir string) ([]string, error) {
	type result struct {
		keys []string
		err  error
	}
	res := make(chan result, 1)
	// Owner: deleteDir, which waits for it up to deleteTimeout; a
	// go-zookeeper call takes no context, so past that it still ends when
	// the admin connection closes with the cluster.
	go func() {
		var err error
		for range 5 {
			var kids []string
			kids, _, err = r.admin.Children(r.root + dir)
			if err != nil {
				break
			}
			ops := make([]any, 0, len(kids)+1)
			keys := make([]string, 0, len(kids))
			for _, k := range kids {
				ops = append(ops, &zk.DeleteRequest{Path: r.root + dir + "/" + k, Version: -1})
				keys = append(keys, dir+"/"+k)
			}
			ops = append(ops, &zk.DeleteRequest{Path: r.root + dir, Version: -1})
			if _, err = r.admin.Multi(ops...); err == nil {
				res <- result{keys: keys}
				return
			}
		}
		res <- result{err: err}
	}()
	select {
	case out := <-res:
		return out.keys, out.err
	case <-time.After(deleteTimeout):
		return nil, errors.New("delete timed out")
	}
}

func (r *rig) startServers(idx ...int) error {
	ctx, cancel := context.WithTimeout(context.Background(), healthyTimeout)
	defer cancel()
	return r.local.Restart(ctx, idx...)
}

// roles returns the leader and the followers; every server must answer.
func (r *rig) roles() (leader int, followers []int, err error) {
	leader = -1
	for i := range r.local.Len() {
		ctx, cancel := context.WithTimeout(context.Background(), modeTimeout)
		mode, err := r.local.Mode(ctx, i)
		cancel()
		if err != nil {
			return -1, nil, err
		}
		switch mode {
		case "leader":
			if leader >= 0 {
				return -1, nil, fmt.Errorf("zk%d and zk%d both lead", leader+1, i+1)
			}
			leader = i
		case "follower":
			followers = append(followers, i)
		default:
			return -1, nil, fmt.Errorf("zk%d is %s", i+1, mode)
		}
	}
	if leader < 0 || len(followers) == 0 {
		return -1, nil, fmt.Errorf("no leader among the servers (followers %v)", followers)
	}
	return leader, followers, nil
}

// byRole returns the servers' indexes, the leader first, so that a plan's
// pick chooses a role rather than a server number, which would lead in one
// run and follow in another.
func (r *rig) byRole() ([]int, error) {
	leader, followers, err := r.settledRoles()
	if err != nil {
		return nil, err
	}
	return append([]int{leader}, followers...), nil
}

// waitHealthy waits, bounded, until every server serves as leader or
// follower under a single leader.
func (r *rig) waitHealthy() error {
	_, _, err := r.settledRoles()
	return err
}

// settledRoles is roles once every server answers it, waiting (bounded) for
// an ensemble that is still settling. Servers announce nothing when they
// settle, so it asks again every 100ms.
func (r *rig) settledRoles() (leader int, followers []int, err error) {
	deadline := time.After(healthyTimeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if leader, followers, err = r.roles(); err == nil {
			return leader, followers, nil
		}
		select {
		case <-tick.C:
		case <-deadline:
			return -1, nil, fmt.Errorf("ensemble not whole within %v: %w", healthyTimeout, err)
		}
	}
}

// deleteNode deletes p as an operator would, like zktest's DeleteNode but
// returning the error: the hold may end, and its node go, just before. A
// go-zookeeper call takes no context, so it runs aside; if it outlasts the
// bound it still ends when the admin connection closes with the cluster.
func (r *rig) deleteNode(p string) error {
	res := make(chan error, 1)
	go func() { res <- r.admin.Delete(p, -1) }()
	select {
	case err := <-res:
		return err
	case <-time.After(deleteTimeout):
		return errors.New("delete timed out")
	}
}
