package zklock_test

import (
	"context"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zklock/zklock"
	"github.com/zklock/zklock/internal/interop"
	"github.com/zklock/zklock/internal/zktest"
	"github.com/zklock/zklock/zktesting"
)

// rwPeer drives a foreign read-write lock on one path through a peer's
// rlock and wlock commands: Curator's InterProcessReadWriteLock or kazoo's
// ReadLock and WriteLock.
type rwPeer struct {
	p    *interop.Peer
	path string
}

// take sends cmd ("rlock" or "wlock") and waits until the peer holds that
// side; it returns the name of the peer's node.
func (rp rwPeer) take(t *testing.T, cmd string) string {
	t.Helper()
	l, err := rp.p.Do(bounded(t, zktesting.Timeout), cmd+" "+rp.path, cmd+"ed "+rp.path)
	require.NoError(t, err)
	return nodeName(t, l)
}

// takeAsync sends cmd and returns at once; the channel receives the outcome
// once the peer reports holding, and then *node is the peer's node name.
func (rp rwPeer) takeAsync(t *testing.T, cmd string, node *string) <-chan result {
	t.Helper()
	require.NoError(t, rp.p.Send(cmd+" "+rp.path))
	ctx := bounded(t, zktesting.Timeout)
	return async(func() error {
		l, err := rp.p.Expect(ctx, cmd+"ed "+rp.path)
		if err == nil {
			// Written before async's send, so the receiver sees it.
			*node = path.Base(strings.Fields(l)[2])
		}
		return err
	})
}

// release sends the unlock command for cmd's side ("runlock", "wunlock")
// and waits for the peer to confirm it.
func (rp rwPeer) release(t *testing.T, cmd string) {
	t.Helper()
	_, err := rp.p.Do(bounded(t, zktesting.Timeout), strings.Replace(cmd, "lock", "unlock", 1)+" "+rp.path,
		strings.Replace(cmd, "lock", "unlocked", 1)+" "+rp.path)
	require.NoError(t, err)
}

// nodeName is the base name of the node path in a peer's "<cmd>ed <path>
// <node>" reply.
func nodeName(t *testing.T, reply string) string {
	t.Helper()
	f := strings.Fields(reply)
	require.Len(t, f, 3, "reply %q: want <reply> <path> <node>", reply)
	return path.Base(f[2])
}

// Node names: zklock's RWMutex names its nodes as Curator's
// InterProcessReadWriteLock does (protected mode, "_c_<UUID>-"); kazoo's
// are "<uuid4 hex>__rlock__" and "<uuid4 hex>__lock__".
var (
	curatorRead  = regexp.MustCompile(`^_c_[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}-__READ__[0-9]{10}$`)
	curatorWrite = regexp.MustCompile(`^_c_[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}-__WRIT__[0-9]{10}$`)
	kazooRead    = regexp.MustCompile(`^[0-9a-f]{32}__rlock__[0-9]{10}$`)
	kazooWrite   = regexp.MustCompile(`^[0-9a-f]{32}__lock__[0-9]{10}$`)
)

// seqOf is the ten-digit sequence suffix of a lock node name.
func seqOf(name string) string { return name[len(name)-10:] }

// newKid returns the one name in kids that is not in old.
func newKid(t *testing.T, old, kids []string) string {
	t.Helper()
	var added []string
	for _, k := range kids {
		if !slices.Contains(old, k) {
			added = append(added, k)
		}
	}
	require.Len(t, added, 1, "children %q after %q: want one new node", kids, old)
	return added[0]
}

// TestIntegration_RWMutexInterop runs zklock's RWMutex against Curator's
// and kazoo's read-write locks on one path, in both directions: each side
// shares reads with the other, waits for the other's writer, makes the
// other's reader and writer wait, and keeps the queue fair across the
// libraries. Every wait is shown by the waiter's watch on the node it must
// wait for, and every release by the waiter getting the lock only after it.
func TestIntegration_RWMutexInterop(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	addr := zc.Direct()[0]
	work := t.TempDir()
	for _, tc := range []struct {
		name        string
		start       func(context.Context, []string, string) (*interop.Peer, error)
		read, write *regexp.Regexp
	}{
		{"curator", interop.StartCurator, curatorRead, curatorWrite},
		{"kazoo", interop.StartKazoo, kazooRead, kazooWrite},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := zc.Root(t)
			admin := zc.Admin(t)
			// Two peer processes: a peer's second rlock on a path it
			// read-locks already is refused (kazoo) or re-entered without
			// a node (Curator), so a second foreign reader needs its own.
			pa := startPeer(t, tc.start, zc.Direct(), work)
			pb := startPeer(t, tc.start, zc.Direct(), work)

			// ours holds the ZooKeeper session ids of our RWMutexes, so a
			// watch by any other session is the peer's.
			ours := map[string]bool{}
			newRW := func(p string) (*zklock.RWMutex, func(string) bool) {
				s := connect(t, zc.Servers(), zklock.WithChroot(root))
				id := zktest.SessionHex(s.SessionID())
				ours[id] = true
				return zklock.NewRWMutex(s, p), func(w string) bool { return w == id }
			}
			peerWatch := func(id string) bool { return !ours[id] }
			ctx := bounded(t, 4*zktesting.Timeout)
			zkRead := func(rw *zklock.RWMutex) string {
				t.Helper()
				n := path.Base(rw.Reader().Key())
				assert.Regexp(t, curatorRead, n, "zklock's read node is named as Curator names its read nodes")
				return n
			}
			zkWrite := func(rw *zklock.RWMutex) string {
				t.Helper()
				n := path.Base(rw.Writer().Key())
				assert.Regexp(t, curatorWrite, n, "zklock's write node is named as Curator names its write nodes")
				return n
			}

			t.Run("peer reads, zklock reads too, zklock writer waits for the peer", func(t *testing.T) {
				dir := root + "/share"
				peer := rwPeer{pa, dir}
				pr := peer.take(t, "rlock")
				assert.Regexp(t, tc.read, pr, "%s's read node", tc.name)

				r, _ := newRW("/share")
				w, wID := newRW("/share")
				require.NoError(t, r.TryRLock(ctx), "a zklock reader shares the read lock with %s's reader at once", tc.name)
				zr := zkRead(r)
				assert.ElementsMatch(t, []string{pr, zr}, children(t, admin, dir), "both readers' nodes, nothing else")
				assert.NoError(t, r.Reader().Err(), "our read hold is live beside %s's", tc.name)

				assert.ErrorIs(t, w.TryLock(ctx), zklock.ErrLocked, "readers exclude a zklock writer")
				wres := async(func() error { return w.Lock(ctx) })
				waitChildren(t, admin, dir, 3)
				zktest.WaitWatched(t, addr, dir+"/"+zr, wID, "the zklock writer waiting for the reader just ahead")
				stillBlocked(t, wres, "the zklock writer, behind two readers")

				require.NoError(t, r.RUnlock(ctx))
				waitChildren(t, admin, dir, 2)
				zktest.WaitWatched(t, addr, dir+"/"+pr, wID, "the zklock writer waiting for "+tc.name+"'s reader")
				stillBlocked(t, wres, "the zklock writer, while "+tc.name+" still reads")

				released := time.Now()
				peer.release(t, "rlock")
				res := await(t, wres, "the zklock writer after "+tc.name+" released its read lock")
				require.NoError(t, res.err)
				assert.True(t, res.at.After(released), "the writer holds only after %s released: released %v, held %v",
					tc.name, released.Format(time.StampMicro), res.at.Format(time.StampMicro))
				zw := zkWrite(w)
				assert.Equal(t, []string{zw}, children(t, admin, dir), "only the writer's node is left")
				require.NoError(t, w.Unlock(ctx))
				waitChildren(t, admin, dir, 0)
			})

			t.Run("zklock writes, peer reader waits for it", func(t *testing.T) {
				dir := root + "/write"
				peer := rwPeer{pa, dir}
				w, _ := newRW("/write")
				require.NoError(t, w.Lock(ctx))
				zw := zkWrite(w)

				var pr string
				held := peer.takeAsync(t, "rlock", &pr)
				kids := waitChildren(t, admin, dir, 2)
				assert.Equal(t, zw, firstBySeq(kids), "our writer is first in the queue")
				queued := newKid(t, []string{zw}, kids)
				assert.Regexp(t, tc.read, queued, "%s's read node", tc.name)
				zktest.WaitWatched(t, addr, dir+"/"+zw, peerWatch, tc.name+"'s reader waiting for our writer")
				stillBlocked(t, held, tc.name+"'s reader, while zklock writes")

				released := time.Now()
				require.NoError(t, w.Unlock(ctx))
				res := await(t, held, tc.name+"'s reader after zklock released its write lock")
				require.NoError(t, res.err)
				assert.True(t, res.at.After(released), "%s reads only after we released: released %v, %s held %v",
					tc.name, released.Format(time.StampMicro), tc.name, res.at.Format(time.StampMicro))
				assert.Equal(t, queued, pr, "%s read on the node it queued", tc.name)
				peer.release(t, "rlock")
				waitChildren(t, admin, dir, 0)
			})

			t.Run("peer writer queued behind a zklock reader holds off a later zklock reader", func(t *testing.T) {
				dir := root + "/fair-peer-writer"
				peer := rwPeer{pa, dir}
				r1, _ := newRW("/fair-peer-writer")
				r2, r2ID := newRW("/fair-peer-writer")
				r3, _ := newRW("/fair-peer-writer")
				require.NoError(t, r1.RLock(ctx))
				z1 := zkRead(r1)

				var pw string
				pwHeld := peer.takeAsync(t, "wlock", &pw)
				queued := newKid(t, []string{z1}, waitChildren(t, admin, dir, 2))
				assert.Regexp(t, tc.write, queued, "%s's write node", tc.name)
				zktest.WaitWatched(t, addr, dir+"/"+z1, peerWatch, tc.name+"'s writer waiting for our reader")
				stillBlocked(t, pwHeld, tc.name+"'s writer, while zklock reads")

				r2res := async(func() error { return r2.RLock(ctx) })
				kids := waitChildren(t, admin, dir, 3)
				zktest.WaitWatched(t, addr, dir+"/"+queued, r2ID, "the later zklock reader waiting for "+tc.name+"'s writer")
				stillBlocked(t, r2res, "the zklock reader queued behind "+tc.name+"'s waiting writer")
				assert.ErrorIs(t, r3.TryRLock(ctx), zklock.ErrLocked, "TryRLock sees %s's waiting writer", tc.name)
				assert.Len(t, children(t, admin, dir), 3, "the refused TryRLock left no node")

				released := time.Now()
				require.NoError(t, r1.RUnlock(ctx))
				res := await(t, pwHeld, tc.name+"'s writer after the first zklock reader left")
				require.NoError(t, res.err)
				assert.True(t, res.at.After(released), "%s writes only after our reader left: released %v, held %v",
					tc.name, released.Format(time.StampMicro), res.at.Format(time.StampMicro))
				assert.Equal(t, queued, pw, "%s wrote on the node it queued", tc.name)
				stillBlocked(t, r2res, "the later zklock reader, while "+tc.name+" writes")

				released = time.Now()
				peer.release(t, "wlock")
				res = await(t, r2res, "the later zklock reader after "+tc.name+"'s writer left")
				require.NoError(t, res.err)
				assert.True(t, res.at.After(released), "the later reader reads only after %s's writer: released %v, held %v",
					tc.name, released.Format(time.StampMicro), res.at.Format(time.StampMicro))
				z2 := zkRead(r2)
				assert.ElementsMatch(t, []string{z1, pw, z2}, kids, "the queue held our readers and %s's writer", tc.name)
				assert.Less(t, seqOf(z1), seqOf(pw), "first reader before the writer")
				assert.Less(t, seqOf(pw), seqOf(z2), "writer before the later reader")
				require.NoError(t, r2.RUnlock(ctx))
				waitChildren(t, admin, dir, 0)
			})

			t.Run("zklock writer queued behind a peer reader holds off a later peer reader", func(t *testing.T) {
				dir := root + "/fair-zklock-writer"
				first, later := rwPeer{pa, dir}, rwPeer{pb, dir}
				p1 := first.take(t, "rlock")
				w, wID := newRW("/fair-zklock-writer")
				wres := async(func() error { return w.Lock(ctx) })
				zw := newKid(t, []string{p1}, waitChildren(t, admin, dir, 2))
				zktest.WaitWatched(t, addr, dir+"/"+p1, wID, "our writer waiting for "+tc.name+"'s reader")
				stillBlocked(t, wres, "the zklock writer, while "+tc.name+" reads")

				var p2 string
				p2Held := later.takeAsync(t, "rlock", &p2)
				kids := waitChildren(t, admin, dir, 3)
				queued := newKid(t, []string{p1, zw}, kids)
				zktest.WaitWatched(t, addr, dir+"/"+zw, peerWatch, "the later "+tc.name+" reader waiting for our writer")
				stillBlocked(t, p2Held, "the later "+tc.name+" reader, queued behind our waiting writer")

				released := time.Now()
				first.release(t, "rlock")
				res := await(t, wres, "the zklock writer after the first "+tc.name+" reader left")
				require.NoError(t, res.err)
				assert.True(t, res.at.After(released), "we write only after %s's reader left: released %v, held %v",
					tc.name, released.Format(time.StampMicro), res.at.Format(time.StampMicro))
				assert.Equal(t, zw, zkWrite(w), "we wrote on the node we queued")
				stillBlocked(t, p2Held, "the later "+tc.name+" reader, while zklock writes")

				released = time.Now()
				require.NoError(t, w.Unlock(ctx))
				res = await(t, p2Held, "the later "+tc.name+" reader after our writer left")
				require.NoError(t, res.err)
				assert.True(t, res.at.After(released), "the later %s reader reads only after our writer: released %v, held %v",
					tc.name, released.Format(time.StampMicro), res.at.Format(time.StampMicro))
				assert.Equal(t, queued, p2, "the later %s reader read on the node it queued", tc.name)
				assert.Regexp(t, tc.read, p2, "%s's read node", tc.name)
				assert.Less(t, seqOf(p1), seqOf(zw), "first reader before the writer")
				assert.Less(t, seqOf(zw), seqOf(p2), "writer before the later reader")
				later.release(t, "rlock")
				waitChildren(t, admin, dir, 0)
			})

			// Nothing left behind: the root holds only the lock
			// directories, and they are empty.
			kids := children(t, admin, root)
			assert.Subset(t, []string{"share", "write", "fair-peer-writer", "fair-zklock-writer"}, kids,
				"only the lock directories under %s", root)
			for _, d := range kids {
				assert.Empty(t, children(t, admin, root+"/"+d), "%s/%s is empty", root, d)
			}
		})
	}
}
