package zklock_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zklock/zklock"
	"github.com/zklock/zklock/internal/interop"
	"github.com/zklock/zklock/zktesting"
)

// Node names on a semaphore's path: zklock's and Curator's
// InterProcessSemaphoreV2's lease nodes are both "_c_<UUID>-lease-<seq>"
// under "<path>/leases", and the internal lock's nodes, zklock Mutex and
// Curator InterProcessMutex alike, "_c_<UUID>-lock-<seq>" under
// "<path>/locks".
var (
	leaseNode   = regexp.MustCompile(`^_c_[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}-lease-[0-9]{10}$`)
	semLockNode = regexp.MustCompile(`^_c_[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}-lock-[0-9]{10}$`)
)

// semHold is one lease held by either library.
type semHold struct {
	lib  string
	node string // the lease node's name
	ret  func(ctx context.Context) error
}

// release returns the lease, failing the test if that fails.
func (h *semHold) release(t *testing.T) {
	t.Helper()
	require.NoError(t, h.ret(bounded(t, zktesting.Timeout)), "%s returns its lease %s", h.lib, h.node)
}

// semAcquirer takes leases of one library on one semaphore path.
type semAcquirer struct {
	lib     string
	acquire func(ctx context.Context) (*semHold, error) // waits until held
}

// take waits until it holds a lease.
func (a semAcquirer) take(t *testing.T) *semHold {
	t.Helper()
	h, err := a.acquire(bounded(t, zktesting.Timeout))
	require.NoError(t, err, "%s acquire", a.lib)
	return h
}

// takeAsync starts waiting for a lease and returns at once; the channel
// receives the outcome once the lease is held, and then *h is the hold.
func (a semAcquirer) takeAsync(t *testing.T, h **semHold) <-chan result {
	ctx := bounded(t, zktesting.Timeout)
	return async(func() error {
		var err error
		// Written before async's send, so the receiver sees it.
		*h, err = a.acquire(ctx)
		return err
	})
}

// semRig builds acquirers on semaphores of n leases under root; zklock's
// Sessions are chrooted there, Curator peers see a path rel at root+rel.
type semRig struct {
	zc    *zktesting.Cluster
	root  string
	admin *zk.Conn
	n     int
}

func (r semRig) dir(rel string) string { return r.root + rel }

// semaphore returns a zklock Semaphore at rel on a Session of its own.
func (r semRig) semaphore(t *testing.T, rel string) *zklock.Semaphore {
	return zklock.NewSemaphore(connect(t, r.zc.Servers(), zklock.WithChroot(r.root)), rel, r.n)
}

// zklock returns an acquirer of zklock's Semaphore on a Session of its own.
func (r semRig) zklock(t *testing.T, rel string) semAcquirer {
	sem := r.semaphore(t, rel)
	return semAcquirer{lib: "zklock", acquire: func(ctx context.Context) (*semHold, error) {
		l, err := sem.Acquire(ctx)
		if err != nil {
			return nil, err
		}
		if d := path.Dir(l.Key()); d != rel+"/leases" {
			return nil, fmt.Errorf("zklock's lease node %s: want it under %s/leases", l.Key(), rel)
		}
		return &semHold{lib: "zklock", node: path.Base(l.Key()), ret: func(ctx context.Context) error {
			if err := l.Release(ctx); err != nil {
				return err
			}
			if !isClosed(l.Done()) || !errors.Is(l.Err(), zklock.ErrNotHeld) {
				return fmt.Errorf("after Release: Done closed %v, Err %v; want closed and ErrNotHeld", isClosed(l.Done()), l.Err())
			}
			return nil
		}}, nil
	}}
}

// curator returns an acquirer of Curator's InterProcessSemaphoreV2 through
// p. A peer answers one acquire on a path at a time.
func (r semRig) curator(p *interop.Peer, rel string) semAcquirer {
	dir := r.dir(rel)
	cmd := fmt.Sprintf("sem-acquire %s %d", dir, r.n)
	return semAcquirer{lib: "curator", acquire: func(ctx context.Context) (*semHold, error) {
		l, err := p.Do(ctx, cmd, "sem-acquired "+dir+" ")
		if err != nil {
			return nil, err
		}
		f := strings.Fields(l)
		if len(f) != 3 || path.Dir(f[2]) != dir+"/leases" {
			return nil, fmt.Errorf("reply %q: want sem-acquired %s <node under %s/leases>", l, dir, dir)
		}
		node := f[2]
		return &semHold{lib: "curator", node: path.Base(node), ret: func(ctx context.Context) error {
			_, err := p.Do(ctx, "sem-release "+dir+" "+node, "sem-released "+dir+" "+node)
			return err
		}}, nil
	}}
}

// tryAcquire calls TryAcquire on a zklock Semaphore of a new Session; a
// lease it gets is returned at once, so only the error tells.
func (r semRig) tryAcquire(t *testing.T, rel string) error {
	t.Helper()
	ctx := bounded(t, zktesting.Timeout)
	l, err := r.semaphore(t, rel).TryAcquire(ctx)
	if err == nil {
		require.NoError(t, l.Release(ctx))
	}
	return err
}

// leaseSeq orders lease node names by their sequence suffix.
func leaseSeq(a, b string) int { return strings.Compare(seqOf(a), seqOf(b)) }

// TestIntegration_SemaphoreInterop runs zklock's Semaphore against Curator's
// InterProcessSemaphoreV2 on one path with two leases, in both directions:
// one library holds a lease and the other the second; a third acquirer of
// either library waits, holding the internal lock, until a lease of either
// library is returned; acquirers of both libraries queue on the internal
// lock; and under a loop of both, never more than two leases are held.
// Nodes are named alike, and nothing is left behind.
func TestIntegration_SemaphoreInterop(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	work := t.TempDir()
	const n = 2
	rig := semRig{zc: zc, root: zc.Root(t), admin: zc.Admin(t), n: n}
	// Two peers: a Curator waiter beside a Curator holder, or the loop's
	// two Curator acquirers, each have one of their own.
	pa := startPeer(t, interop.StartCurator, zc.Direct(), work)
	pb := startPeer(t, interop.StartCurator, zc.Direct(), work)
	acq := func(t *testing.T, lib string, p *interop.Peer, rel string) semAcquirer {
		if lib == "zklock" {
			return rig.zklock(t, rel)
		}
		return rig.curator(p, rel)
	}
	var dirs []string

	for _, first := range []string{"curator", "zklock"} {
		second := map[string]string{"curator": "zklock", "zklock": "curator"}[first]
		for _, waiter := range []string{"zklock", "curator"} {
			for _, returner := range []string{first, second} {
				rel := fmt.Sprintf("/sem-%s-%s-%s", first, waiter, returner)
				dirs = append(dirs, path.Base(rel))
				name := fmt.Sprintf("%s then %s hold, %s waits for %s to return a lease", first, second, waiter, returner)
				t.Run(name, func(t *testing.T) {
					dir := rig.dir(rel)
					leases, locks := dir+"/leases", dir+"/locks"
					a := acq(t, first, pa, rel).take(t)
					assert.Regexp(t, leaseNode, a.node, "%s's lease node", first)
					assert.Equal(t, []string{a.node}, children(t, rig.admin, leases), "the first lease")
					b := acq(t, second, pa, rel).take(t)
					assert.Regexp(t, leaseNode, b.node, "%s's lease node", second)
					assert.ElementsMatch(t, []string{a.node, b.node}, children(t, rig.admin, leases),
						"%s took the second lease beside %s's", second, first)
					assert.Less(t, seqOf(a.node), seqOf(b.node), "the second lease node after the first")
					assert.Empty(t, children(t, rig.admin, locks), "the internal lock is free once both hold")

					assert.ErrorIs(t, rig.tryAcquire(t, rel), zklock.ErrLocked, "no lease is free: %s and %s hold both", first, second)
					assert.Len(t, children(t, rig.admin, leases), n, "the refused TryAcquire left no lease node")
					assert.Empty(t, children(t, rig.admin, locks), "the refused TryAcquire left the internal lock free")

					var w *semHold
					held := acq(t, waiter, pb, rel).takeAsync(t, &w)
					kids := waitChildren(t, rig.admin, leases, n+1)
					queued := newKid(t, []string{a.node, b.node}, kids)
					assert.Regexp(t, leaseNode, queued, "%s's waiting lease node", waiter)
					assert.Equal(t, queued, slices.MaxFunc(kids, leaseSeq), "the waiter's node is the last")
					lk := children(t, rig.admin, locks)
					if assert.Len(t, lk, 1, "the waiter holds the internal lock while it waits") {
						assert.Regexp(t, semLockNode, lk[0], "%s's internal lock node", waiter)
					}
					stillBlocked(t, held, waiter+"'s acquire, while "+first+" and "+second+" hold both leases")
					assert.ErrorIs(t, rig.tryAcquire(t, rel), zklock.ErrLocked, "TryAcquire refused while %s waits holding the internal lock", waiter)
					assert.Len(t, children(t, rig.admin, leases), n+1, "the refused TryAcquire left no lease node")
					assert.Equal(t, lk, children(t, rig.admin, locks), "the refused TryAcquire left no lock node")
					stillBlocked(t, held, waiter+"'s acquire, while "+first+" and "+second+" hold both leases")

					gone, kept := a, b
					if returner == second {
						gone, kept = b, a
					}
					returned := time.Now()
					gone.release(t)
					res := await(t, held, waiter+"'s acquire after "+gone.lib+" returned its lease")
					require.NoError(t, res.err)
					assert.True(t, res.at.After(returned), "%s holds only after %s returned a lease: returned %v, held %v",
						waiter, gone.lib, returned.Format(time.StampMicro), res.at.Format(time.StampMicro))
					assert.Equal(t, queued, w.node, "%s holds the lease node it queued", waiter)
					assert.ElementsMatch(t, []string{kept.node, w.node}, children(t, rig.admin, leases),
						"%s's kept lease and %s's new one", kept.lib, waiter)
					waitChildren(t, rig.admin, locks, 0)

					kept.release(t)
					w.release(t)
					waitChildren(t, rig.admin, leases, 0)
				})
			}
		}
	}

	t.Run("acquirers of both libraries queue on the internal lock", func(t *testing.T) {
		const rel = "/sem-queue"
		dirs = append(dirs, path.Base(rel))
		dir := rig.dir(rel)
		leases, locks := dir+"/leases", dir+"/locks"
		a := rig.curator(pa, rel).take(t)
		b := rig.zklock(t, rel).take(t)

		// zklock waits for a lease holding the internal lock; Curator
		// queues behind it on that lock, with no lease node yet.
		var zw, cw *semHold
		zres := rig.zklock(t, rel).takeAsync(t, &zw)
		zq := newKid(t, []string{a.node, b.node}, waitChildren(t, rig.admin, leases, n+1))
		lk := waitChildren(t, rig.admin, locks, 1)
		cres := rig.curator(pb, rel).takeAsync(t, &cw)
		cl := newKid(t, lk, waitChildren(t, rig.admin, locks, 2))
		assert.Regexp(t, semLockNode, cl, "Curator's internal lock node")
		assert.Less(t, seqOf(lk[0]), seqOf(cl), "Curator queued on the lock behind zklock")
		assert.Len(t, children(t, rig.admin, leases), n+1, "Curator makes no lease node before it has the lock")
		stillBlocked(t, zres, "zklock's acquire, while both leases are held")
		stillBlocked(t, cres, "Curator's acquire, queued on the internal lock")

		// A lease returned goes to zklock, which then lets Curator take
		// the lock and wait for the next one.
		returned := time.Now()
		a.release(t)
		r := await(t, zres, "zklock's acquire after Curator returned a lease")
		require.NoError(t, r.err)
		assert.True(t, r.at.After(returned), "zklock holds only after the return")
		assert.Equal(t, zq, zw.node, "zklock holds the node it queued")
		// Synced: the leases counted n+1 before the return too, and a
		// lagging server could still show those.
		_, err := rig.admin.Sync(leases)
		require.NoError(t, err)
		cq := newKid(t, []string{b.node, zq}, waitChildren(t, rig.admin, leases, n+1))
		assert.Less(t, seqOf(zq), seqOf(cq), "Curator's lease node after zklock's")
		assert.Equal(t, []string{cl}, waitChildren(t, rig.admin, locks, 1), "Curator holds the internal lock while it waits")
		stillBlocked(t, cres, "Curator's acquire, while two zklock leases are held")

		returned = time.Now()
		b.release(t)
		r = await(t, cres, "Curator's acquire after zklock returned a lease")
		require.NoError(t, r.err)
		assert.True(t, r.at.After(returned), "Curator holds only after the return")
		assert.Equal(t, cq, cw.node, "Curator holds the node it queued")
		waitChildren(t, rig.admin, locks, 0)
		zw.release(t)
		cw.release(t)
		waitChildren(t, rig.admin, leases, 0)
	})

	t.Run("a cancelled zklock waiter hands the internal lock to Curator", func(t *testing.T) {
		const rel = "/sem-cancel"
		dirs = append(dirs, path.Base(rel))
		dir := rig.dir(rel)
		leases, locks := dir+"/leases", dir+"/locks"
		a := rig.curator(pa, rel).take(t)
		b := rig.zklock(t, rel).take(t)

		cctx, cancel := context.WithCancel(bounded(t, zktesting.Timeout))
		defer cancel()
		sem := rig.semaphore(t, rel)
		zres := async(func() error {
			l, err := sem.Acquire(cctx)
			if err == nil {
				err = errors.Join(errors.New("acquired a lease while both were held"), l.Release(context.WithoutCancel(cctx)))
			}
			return err
		})
		zq := newKid(t, []string{a.node, b.node}, waitChildren(t, rig.admin, leases, n+1))
		lk := waitChildren(t, rig.admin, locks, 1)
		var c *semHold
		cres := rig.curator(pb, rel).takeAsync(t, &c)
		cl := newKid(t, lk, waitChildren(t, rig.admin, locks, 2))
		stillBlocked(t, cres, "Curator's acquire, queued on the internal lock behind zklock's waiter")

		cancel()
		assert.ErrorIs(t, await(t, zres, "the cancelled zklock Acquire").err, context.Canceled)
		assert.NotContains(t, children(t, rig.admin, leases), zq, "the cancelled waiter's lease node is gone")
		assert.NotContains(t, children(t, rig.admin, locks), lk[0], "the cancelled waiter's lock node is gone")
		// Curator takes the lock, makes its lease node and waits for a lease.
		cq := newKid(t, []string{a.node, b.node}, waitChildren(t, rig.admin, leases, n+1))
		assert.Equal(t, []string{cl}, children(t, rig.admin, locks), "Curator holds the internal lock while it waits")
		stillBlocked(t, cres, "Curator's acquire, while both leases are held")

		returned := time.Now()
		b.release(t)
		r := await(t, cres, "Curator's acquire after zklock returned a lease")
		require.NoError(t, r.err)
		assert.True(t, r.at.After(returned), "Curator holds only after the return")
		assert.Equal(t, cq, c.node, "Curator holds the node it queued")
		a.release(t)
		c.release(t)
		waitChildren(t, rig.admin, leases, 0)
		waitChildren(t, rig.admin, locks, 0)
	})

	t.Run("a zklock lease lost to expiry goes to Curator's waiter after its holder knows", func(t *testing.T) {
		const rel = "/sem-expiry"
		dirs = append(dirs, path.Base(rel))
		dir := rig.dir(rel)
		leases := dir + "/leases"
		ps := zc.NewProxies(t)
		hs := connect(t, ps.Addrs(), zklock.WithChroot(rig.root), zklock.WithSessionTimeout(2*time.Second))
		sub := hs.Subscribe()
		defer sub.Stop()
		l, err := zklock.NewSemaphore(hs, rel, n).Acquire(bounded(t, zktesting.Timeout))
		require.NoError(t, err)
		b := rig.curator(pa, rel).take(t)

		var c *semHold
		cres := rig.curator(pb, rel).takeAsync(t, &c)
		cq := newKid(t, []string{path.Base(l.Key()), b.node}, waitChildren(t, rig.admin, leases, n+1))
		stillBlocked(t, cres, "Curator's acquire, while both leases are held")
		lost := make(chan time.Time, 1)
		done := l.Done()
		go func() {
			<-done // closed at the latest when hs is
			lost <- time.Now()
		}()

		expire(t, ps, sub)
		lostAt := await(t, lost, "the lost lease's Done")
		r := await(t, cres, "Curator's acquire after the zklock lease was lost")
		require.NoError(t, r.err)
		assert.True(t, lostAt.Before(r.at), "zklock's holder learns of the loss (%v) before Curator holds its place (%v)",
			lostAt.Format(time.StampMicro), r.at.Format(time.StampMicro))
		assert.ErrorIs(t, l.Err(), zklock.ErrLeaseLost)
		assert.ErrorIs(t, l.Err(), zklock.ErrSessionExpired)
		assert.Equal(t, cq, c.node, "Curator holds the node it queued")
		assert.ElementsMatch(t, []string{b.node, c.node}, children(t, rig.admin, leases), "Curator's two leases")
		b.release(t)
		c.release(t)
		waitChildren(t, rig.admin, leases, 0)
		waitChildren(t, rig.admin, dir+"/locks", 0)
	})

	// Curator counts every child of "<path>/leases" (it holds a lease when
	// the children number at most n), zklock only the lease nodes (it holds
	// when its node is among the first n of them). Without foreign children
	// the two agree; with one, Curator grants a lease fewer.
	t.Run("a foreign child of leases counts for Curator, not for zklock", func(t *testing.T) {
		const rel = "/sem-foreign"
		dirs = append(dirs, path.Base(rel))
		dir := rig.dir(rel)
		leases, locks := dir+"/leases", dir+"/locks"
		for _, p := range []string{dir, leases, leases + "/readme"} {
			_, err := rig.admin.Create(p, nil, 0, zk.WorldACL(zk.PermAll))
			require.NoError(t, err)
		}
		a := rig.zklock(t, rel).take(t)
		b := rig.zklock(t, rel).take(t)
		assert.Len(t, children(t, rig.admin, leases), n+1, "zklock holds both leases beside readme")
		b.release(t)

		var c *semHold
		held := rig.curator(pb, rel).takeAsync(t, &c)
		kids := waitChildren(t, rig.admin, leases, n+1)
		queued := newKid(t, []string{"readme", a.node}, kids)
		assert.Len(t, children(t, rig.admin, locks), 1, "Curator waits holding the internal lock")
		stillBlocked(t, held, "Curator's acquire, with one lease held and readme beside it")
		assert.ErrorIs(t, rig.tryAcquire(t, rel), zklock.ErrLocked, "zklock's TryAcquire finds the internal lock taken by Curator's waiter")

		returned := time.Now()
		a.release(t)
		r := await(t, held, "Curator's acquire after zklock returned its lease")
		require.NoError(t, r.err)
		assert.True(t, r.at.After(returned), "Curator holds only once readme and its own node are all that is left")
		assert.Equal(t, queued, c.node, "Curator holds the node it queued")
		c.release(t)
		require.NoError(t, rig.admin.Delete(leases+"/readme", -1))
		waitChildren(t, rig.admin, leases, 0)
		waitChildren(t, rig.admin, locks, 0)
	})

	t.Run("never more than n leases across both libraries", func(t *testing.T) {
		const rel, rounds = "/sem-loop", 6
		dirs = append(dirs, path.Base(rel))
		leases := rig.dir(rel) + "/leases"
		actors := []semAcquirer{rig.curator(pa, rel), rig.curator(pb, rel), rig.zklock(t, rel), rig.zklock(t, rel)}

		// held is the leases known to be held: added once an acquire has
		// returned, removed before the return is asked for, so each
		// lease's true hold spans its time here.
		var mu sync.Mutex           // guards held, most, violations
		held := map[string]string{} // node -> library
		most := 0
		var violations []string
		enter := func(h *semHold) {
			mu.Lock()
			defer mu.Unlock()
			held[h.node] = h.lib
			most = max(most, len(held))
			if len(held) > n {
				violations = append(violations, fmt.Sprintf("%d leases held at once: %v", len(held), held))
			}
		}
		leave := func(h *semHold) {
			mu.Lock()
			defer mu.Unlock()
			delete(held, h.node)
		}
		// check lists the leases while h is held. Besides the holders'
		// nodes there is at most one, the waiter's (it holds the internal
		// lock); and every lease known held is among the first n nodes by
		// sequence, the place both libraries grant: a held node only moves
		// up, as nodes ahead leave and new ones come behind.
		check := func(h *semHold) error {
			mu.Lock()
			snap := maps.Clone(held)
			mu.Unlock()
			if _, err := rig.admin.Sync(leases); err != nil {
				return err
			}
			kids, _, err := rig.admin.Children(leases)
			if err != nil {
				return err
			}
			slices.SortFunc(kids, leaseSeq)
			mu.Lock()
			defer mu.Unlock()
			if len(kids) > n+1 {
				violations = append(violations, fmt.Sprintf("%d lease nodes, more than one waiter: %q", len(kids), kids))
			}
			for node, lib := range snap {
				if i := slices.Index(kids, node); i >= n {
					violations = append(violations, fmt.Sprintf("%s holds %s at place %d of %q", lib, node, i, kids))
				}
			}
			if !slices.Contains(kids, h.node) {
				violations = append(violations, fmt.Sprintf("%s holds %s, which is not among %q", h.lib, h.node, kids))
			}
			return nil
		}

		ctx := bounded(t, 4*zktesting.Timeout)
		done := make([]<-chan result, len(actors))
		for i, a := range actors {
			done[i] = async(func() error {
				for range rounds {
					h, err := a.acquire(ctx)
					if err != nil {
						return err
					}
					enter(h)
					err = check(h)
					leave(h)
					if err != nil {
						return err
					}
					if err := h.ret(ctx); err != nil {
						return err
					}
				}
				return nil
			})
		}
		for i := range actors {
			require.NoError(t, await(t, done[i], actors[i].lib+"'s rounds").err)
		}
		assert.Empty(t, violations, "never more than %d leases across Curator and zklock", n)
		t.Logf("at most %d leases were seen held at once", most)
		waitChildren(t, rig.admin, leases, 0)
		waitChildren(t, rig.admin, rig.dir(rel)+"/locks", 0)
	})

	// Nothing left behind: under the root only the semaphores' paths, each
	// with at most its locks and leases directories, both empty (or gone:
	// the server removes empty containers).
	kids := children(t, rig.admin, rig.root)
	assert.Subset(t, dirs, kids, "only the semaphore paths under %s", rig.root)
	for _, d := range kids {
		sub := children(t, rig.admin, rig.root+"/"+d)
		assert.Subset(t, []string{"locks", "leases"}, sub, "%s/%s holds only the internal lock and the leases", rig.root, d)
		for _, s := range sub {
			assert.Empty(t, children(t, rig.admin, rig.root+"/"+d+"/"+s), "%s/%s/%s is empty", rig.root, d, s)
		}
	}
}

// TestIntegration_SemaphoreInteropWaiterExpiry: a zklock acquirer waits for
// a lease, holding the internal lock, and its ZooKeeper session expires.
// Acquire goes on in the next session; by Curator's protocol it must take
// the internal lock again before it makes its new lease node, so that a
// Curator acquirer queues on the lock instead of waiting for a lease beside
// it. Both then get a lease, one returned lease each, and never more than n
// are held.
func TestIntegration_SemaphoreInteropWaiterExpiry(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	work := t.TempDir()
	const n, rel = 2, "/sem"
	rig := semRig{zc: zc, root: zc.Root(t), admin: zc.Admin(t), n: n}
	leases, locks := rig.dir(rel)+"/leases", rig.dir(rel)+"/locks"
	pa := startPeer(t, interop.StartCurator, zc.Direct(), work)
	pb := startPeer(t, interop.StartCurator, zc.Direct(), work)
	a := rig.curator(pa, rel).take(t)
	b := rig.zklock(t, rel).take(t)

	ps := zc.NewProxies(t)
	ws := connect(t, ps.Addrs(), zklock.WithChroot(rig.root), zklock.WithSessionTimeout(2*time.Second))
	sub := ws.Subscribe()
	defer sub.Stop()
	var wl *zklock.Lease
	ctx := bounded(t, zktesting.Timeout)
	wres := async(func() error {
		var err error
		wl, err = zklock.NewSemaphore(ws, rel, n).Acquire(ctx)
		return err
	})
	before := newKid(t, []string{a.node, b.node}, waitChildren(t, rig.admin, leases, n+1))
	lock := waitChildren(t, rig.admin, locks, 1)[0]
	expire(t, ps, sub)
	waitGone(t, rig.admin, leases+"/"+before)
	waitGone(t, rig.admin, locks+"/"+lock)

	// The waiter queues again in its new session.
	requeued := newKid(t, []string{a.node, b.node}, waitChildren(t, rig.admin, leases, n+1))
	stillBlocked(t, wres, "the zklock acquirer, queued again after expiry while both leases are held")
	relock := children(t, rig.admin, locks)
	assert.Len(t, relock, 1, "after expiry the zklock waiter holds the internal lock again (leases %q, locks %q)",
		children(t, rig.admin, leases), relock)

	var c *semHold
	cres := rig.curator(pb, rel).takeAsync(t, &c)
	if len(relock) == 1 {
		waitChildren(t, rig.admin, locks, 2)
		assert.Len(t, children(t, rig.admin, leases), n+1, "Curator queues on the internal lock, with no lease node")
	} else {
		kids := waitChildren(t, rig.admin, leases, n+2)
		t.Errorf("two acquirers wait for a lease at once: leases %q, locks %q (zklock's requeued node %s)",
			kids, children(t, rig.admin, locks), requeued)
	}
	stillBlocked(t, wres, "the zklock acquirer")
	stillBlocked(t, cres, "Curator's acquirer")

	a.release(t)
	r := await(t, wres, "the zklock acquirer after Curator returned a lease")
	require.NoError(t, r.err)
	assert.Equal(t, requeued, path.Base(wl.Key()), "zklock holds its requeued node")
	assert.NoError(t, wl.Err(), "zklock's lease is live")
	stillBlocked(t, cres, "Curator's acquirer, while zklock holds both leases")
	b.release(t)
	require.NoError(t, await(t, cres, "Curator's acquirer after zklock returned a lease").err)
	assert.ElementsMatch(t, []string{requeued, c.node}, children(t, rig.admin, leases), "the two waiters hold the leases")
	c.release(t)
	require.NoError(t, wl.Release(ctx))
	waitChildren(t, rig.admin, leases, 0)
	waitChildren(t, rig.admin, locks, 0)
}
