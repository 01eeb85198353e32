package zklock_test

import (
	"context"
	"errors"
	"testing"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zklock/zklock"
	"github.com/zklock/zklock/internal/zktest"
	"github.com/zklock/zklock/zktesting"
)

// ZooKeeper request opcodes.
const (
	opCreate  = 1
	opDelete  = 2
	opSetData = 5
	opMulti   = 14
)

var worldACL = zk.WorldACL(zk.PermAll)

// nodeRig is a Session whose connections go through a zktest.Cutter, rooted
// at a fresh node, and a plain connection for the other client.
type nodeRig struct {
	s     *zklock.Session
	cut   *zktest.Cutter
	root  string
	admin *zk.Conn
}

func newNodeRig(t *testing.T) *nodeRig {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test; needs ZooKeeper")
	}
	zc := zktesting.Shared(t)
	r := &nodeRig{cut: zktest.NewCutter(), root: zc.Root(t), admin: zc.Admin(t)}
	r.s = connect(t, twice(zc.Servers()), zklock.WithChroot(r.root), zklock.WithDialer(r.cut.Dial))
	return r
}

// twice lists each server twice: go-zookeeper pauses a second before it
// tries a server again only once it has tried every listed one.
func twice(servers []string) []string { return append(servers, servers...) }

// node creates p (relative to the root) as the other client, and deletes
// whatever is left there when the test ends.
func (r *nodeRig) node(t *testing.T, p, data string) {
	t.Helper()
	if data != "" {
		_, err := r.admin.Create(r.root+p, []byte(data), 0, worldACL)
		require.NoError(t, err)
	}
	t.Cleanup(func() {
		if err := r.admin.Delete(r.root+p, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
			t.Errorf("cleaning up %s: %v", p, err)
		}
	})
}

// get reads p as the other client; nil stat if there is no node.
func (r *nodeRig) get(t *testing.T, p string) (string, *zk.Stat) {
	t.Helper()
	data, st, err := r.admin.Get(r.root + p)
	if errors.Is(err, zk.ErrNoNode) {
		return "", nil
	}
	require.NoError(t, err)
	return string(data), st
}

func (r *nodeRig) create(p, data string, flags int32) func() error {
	return func() error {
		_, err := r.admin.Create(r.root+p, []byte(data), flags, worldACL)
		return err
	}
}

func (r *nodeRig) set(p, data string) func() error {
	return func() error {
		_, err := r.admin.Set(r.root+p, []byte(data), -1)
		return err
	}
}

func (r *nodeRig) delete(p string) func() error {
	return func() error { return r.admin.Delete(r.root+p, -1) }
}

// A delete whose reply is lost is checked against the node it found: if
// that node is gone, the delete is done, and a node created since by
// another client survives; if it is still there, the delete is sent again.
func TestIntegration_NodeDeleteReplyLost(t *testing.T) {
	r := newNodeRig(t)
	for _, tc := range []struct {
		name     string
		version  int32
		dropReq  bool
		other    func() error // another client, at the cut
		wantErr  error
		wantData string // "" no node
	}{
		{name: "any version, then re-created by another client", version: -1,
			other: r.create("/p", "theirs", 0), wantData: "theirs"},
		{name: "version 0, then re-created by another client", version: 0,
			other: r.create("/p", "theirs", 0), wantData: "theirs"},
		{name: "any version, request lost", version: -1, dropReq: true},
		{name: "version 0, request lost, then written by another client", version: 0, dropReq: true,
			other: r.set("/p", "theirs"), wantErr: zk.ErrBadVersion, wantData: "theirs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := bounded(t, zktesting.Timeout)
			r.node(t, "/p", "ours")
			r.cut.Arm(opDelete, r.root+"/p", tc.dropReq, tc.other)
			err := r.s.Delete(ctx, "/p", tc.version)
			require.NoError(t, r.cut.Wait(), "the chosen request is cut, and the other client acts at the cut")
			if tc.wantErr != nil {
				assert.ErrorIs(t, err, tc.wantErr)
			} else {
				assert.NoError(t, err, "the node Delete found is gone")
			}
			assert.NotErrorIs(t, err, zklock.ErrOutcomeUnknown, "a delete can be checked")
			data, _ := r.get(t, "/p")
			assert.Equal(t, tc.wantData, data, "what is left at the path")
		})
	}
}

// A compare-and-set whose reply is lost is never reported as a version
// conflict if it may have landed, and a write whose reply is lost is never
// sent again over another client's later write, nor twice in a row.
func TestIntegration_NodeSetReplyLost(t *testing.T) {
	r := newNodeRig(t)
	for _, tc := range []struct {
		name        string
		version     int32
		dropReq     bool
		other       func() error // another client, at the cut
		wantErr     error        // nil: success
		wantData    string
		wantVersion int32
	}{
		{name: "version 0", version: 0,
			wantErr: zklock.ErrOutcomeUnknown, wantData: "ours", wantVersion: 1},
		{name: "version 0, then written by another client", version: 0, other: r.set("/p", "theirs"),
			wantErr: zklock.ErrOutcomeUnknown, wantData: "theirs", wantVersion: 2},
		{name: "version 0, request lost", version: 0, dropReq: true,
			wantData: "ours", wantVersion: 1},
		{name: "version 0, request lost, written by another client", version: 0, dropReq: true, other: r.set("/p", "theirs"),
			wantErr: zk.ErrBadVersion, wantData: "theirs", wantVersion: 1},
		{name: "any version", version: -1,
			wantData: "ours", wantVersion: 1},
		{name: "any version, then written by another client", version: -1, other: r.set("/p", "theirs"),
			wantErr: zklock.ErrOutcomeUnknown, wantData: "theirs", wantVersion: 2},
		{name: "any version, request lost", version: -1, dropReq: true,
			wantData: "ours", wantVersion: 1},
		{name: "any version, request lost, written by another client", version: -1, dropReq: true, other: r.set("/p", "theirs"),
			wantData: "ours", wantVersion: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := bounded(t, zktesting.Timeout)
			r.node(t, "/p", "initial")
			r.cut.Arm(opSetData, r.root+"/p", tc.dropReq, tc.other)
			st, err := r.s.Set(ctx, "/p", []byte("ours"), tc.version)
			require.NoError(t, r.cut.Wait(), "the chosen request is cut, and the other client acts at the cut")
			if tc.wantErr != nil {
				assert.ErrorIs(t, err, tc.wantErr)
				if !errors.Is(tc.wantErr, zklock.ErrOutcomeUnknown) {
					assert.NotErrorIs(t, err, zklock.ErrOutcomeUnknown, "the outcome is known")
				}
			} else if assert.NoError(t, err) {
				assert.Equal(t, tc.wantVersion, st.Version, "the stat returned")
			}
			data, now := r.get(t, "/p")
			require.NotNil(t, now, "the node is still there")
			assert.Equal(t, tc.wantData, data, "the node's data")
			assert.Equal(t, tc.wantVersion, now.Version, "how often the node was written")
		})
	}
}

// A create whose reply is lost is never sent again over another client's
// delete of the node, and never reported as done or as "exists" when it may
// have landed.
func TestIntegration_NodeCreateReplyLost(t *testing.T) {
	r := newNodeRig(t)
	for _, tc := range []struct {
		name       string
		flags      int32
		dropReq    bool
		other      func() error // another client, at the cut
		wantErrs   []error      // nil: success
		wantData   string       // "" no node
		wantEphOwn bool         // the node is an ephemeral of the Session
	}{
		{name: "persistent",
			wantErrs: []error{zklock.ErrOutcomeUnknown, zk.ErrNodeExists}, wantData: "ours"},
		{name: "persistent, then deleted by another client", other: r.delete("/p"),
			wantErrs: []error{zklock.ErrOutcomeUnknown}},
		{name: "persistent, request lost", dropReq: true, wantData: "ours"},
		{name: "persistent, request lost, created by another client", dropReq: true, other: r.create("/p", "theirs", 0),
			wantErrs: []error{zk.ErrNodeExists}, wantData: "theirs"},
		{name: "ephemeral", flags: zk.FlagEphemeral, wantData: "ours", wantEphOwn: true},
		{name: "ephemeral, then deleted by another client", flags: zk.FlagEphemeral, other: r.delete("/p"),
			wantErrs: []error{zklock.ErrOutcomeUnknown}},
		{name: "ephemeral, request lost", flags: zk.FlagEphemeral, dropReq: true, wantData: "ours", wantEphOwn: true},
		{name: "ephemeral, request lost, created by another client", flags: zk.FlagEphemeral, dropReq: true,
			other: r.create("/p", "theirs", zk.FlagEphemeral), wantErrs: []error{zk.ErrNodeExists}, wantData: "theirs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := bounded(t, zktesting.Timeout)
			r.node(t, "/p", "")
			r.cut.Arm(opCreate, r.root+"/p", tc.dropReq, tc.other)
			err := r.s.Create(ctx, "/p", []byte("ours"), tc.flags)
			require.NoError(t, r.cut.Wait(), "the chosen request is cut, and the other client acts at the cut")
			if tc.wantErrs == nil {
				assert.NoError(t, err)
			}
			for _, want := range tc.wantErrs {
				assert.ErrorIs(t, err, want)
			}
			if len(tc.wantErrs) > 0 && !errors.Is(tc.wantErrs[0], zklock.ErrOutcomeUnknown) {
				assert.NotErrorIs(t, err, zklock.ErrOutcomeUnknown, "the outcome is known")
			}
			data, st := r.get(t, "/p")
			assert.Equal(t, tc.wantData, data, "what is at the path")
			if tc.wantEphOwn && assert.NotNil(t, st) {
				assert.Equal(t, r.s.SessionID(), st.EphemeralOwner, "an ephemeral of the Session")
			}
		})
	}
}

// A multi whose reply is lost reports that its outcome is unknown.
func TestIntegration_NodeMultiReplyLost(t *testing.T) {
	r := newNodeRig(t)
	ctx := bounded(t, zktesting.Timeout)
	r.node(t, "/p", "")
	r.cut.Arm(opMulti, r.root+"/p", false, nil)
	_, err := r.s.Multi(ctx, &zk.CreateRequest{Path: "/p", Data: []byte("ours")})
	require.NoError(t, r.cut.Wait(), "the chosen request is cut, and the other client acts at the cut")
	assert.ErrorIs(t, err, zklock.ErrOutcomeUnknown)
	assert.ErrorIs(t, err, zk.ErrConnectionClosed, "the cause")
	data, _ := r.get(t, "/p")
	assert.Equal(t, "ours", data, "the multi landed")
}

// A write whose ctx ends while its reply is missing reports that its
// outcome is unknown, as well as the ctx's end.
func TestIntegration_NodeWriteCtxEndsReplyLost(t *testing.T) {
	r := newNodeRig(t)
	for _, tc := range []struct {
		name  string
		op    int32
		setup string // data of the node before the write; "" none
		write func(context.Context, *zklock.Session) error
	}{
		{"create", opCreate, "", func(ctx context.Context, s *zklock.Session) error {
			return s.Create(ctx, "/p", []byte("ours"), 0)
		}},
		{"set", opSetData, "initial", func(ctx context.Context, s *zklock.Session) error {
			_, err := s.Set(ctx, "/p", []byte("ours"), -1)
			return err
		}},
		{"delete", opDelete, "initial", func(ctx context.Context, s *zklock.Session) error {
			return s.Delete(ctx, "/p", -1)
		}},
		{"multi", opMulti, "", func(ctx context.Context, s *zklock.Session) error {
			_, err := s.Multi(ctx, &zk.CreateRequest{Path: "/p", Data: []byte("ours")})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(bounded(t, zktesting.Timeout))
			defer cancel()
			r.node(t, "/p", tc.setup)
			r.cut.Arm(tc.op, r.root+"/p", false, func() error { cancel(); return nil })
			err := tc.write(ctx, r.s)
			require.NoError(t, r.cut.Wait(), "the chosen request is cut, and the other client acts at the cut")
			assert.ErrorIs(t, err, zklock.ErrOutcomeUnknown)
			assert.ErrorIs(t, err, context.Canceled)
		})
	}
}

// A write whose ZooKeeper session ends while its reply is missing reports
// that its outcome is unknown: reads in another session could overtake it.
func TestIntegration_NodeWriteSessionEndsReplyLost(t *testing.T) {
	r := newNodeRig(t)
	zc := zktesting.Shared(t)
	for _, tc := range []struct {
		name  string
		op    int32
		setup string // data of the node before the write; "" none
		write func(context.Context, *zklock.Session) error
	}{
		{"create", opCreate, "", func(ctx context.Context, s *zklock.Session) error {
			return s.Create(ctx, "/p", []byte("ours"), 0)
		}},
		{"set", opSetData, "initial", func(ctx context.Context, s *zklock.Session) error {
			_, err := s.Set(ctx, "/p", []byte("ours"), 0)
			return err
		}},
		{"delete", opDelete, "initial", func(ctx context.Context, s *zklock.Session) error {
			return s.Delete(ctx, "/p", 0)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := bounded(t, zktesting.Timeout)
			cut := zktest.NewCutter()
			s := connect(t, twice(zc.Servers()), zklock.WithChroot(r.root), zklock.WithDialer(cut.Dial))
			r.node(t, "/p", tc.setup)
			closed := make(chan struct{})
			cut.Arm(tc.op, r.root+"/p", false, func() error {
				// Close joins the connection's goroutines, this one among
				// them: it cannot run here.
				go func() {
					defer close(closed)
					s.Close()
				}()
				return nil
			})
			err := tc.write(ctx, s)
			require.NoError(t, cut.Wait(), "the chosen request is cut, and the other client acts at the cut")
			select {
			case <-closed:
			case <-ctx.Done():
				t.Fatal("Close did not return")
			}
			assert.ErrorIs(t, err, zklock.ErrOutcomeUnknown)
		})
	}
}

// A sequential create in a Multi is checked and placed the way the server
// does it: its path gets the sequence number appended, so "/q/" is valid,
// and under a chroot it lands below the chroot, not beside it.
func TestIntegration_MultiSequentialCreate(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	admin := zc.Admin(t)
	s := connect(t, zc.Servers(), zklock.WithChroot(root))
	ctx := bounded(t, zktesting.Timeout)
	require.NoError(t, s.Create(ctx, "/q", nil, 0))
	res, err := s.Multi(ctx,
		&zk.CreateRequest{Path: "/q/", Flags: zk.FlagSequence},
		&zk.CreateRequest{Path: "/q/item-", Flags: zk.FlagSequence})
	require.NoError(t, err)
	require.Len(t, res, 2)
	assert.Equal(t, "/q/0000000000", res[0].String, "paths under the chroot, as every other API returns them")
	kids := children(t, admin, root+"/q")
	assert.ElementsMatch(t, []string{"0000000000", "item-0000000001"}, kids, "created below the chroot")
	for _, k := range kids {
		require.NoError(t, admin.Delete(root+"/q/"+k, -1))
	}
	_, err = s.Multi(ctx, &zk.CreateRequest{Path: "/q//", Flags: zk.FlagSequence})
	assert.ErrorIs(t, err, zklock.ErrInvalidPath)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = s.Multi(cancelled, &zk.CreateRequest{Path: "/q/never"})
	assert.ErrorIs(t, err, context.Canceled)
	assert.NotErrorIs(t, err, zklock.ErrOutcomeUnknown, "nothing is sent once ctx has ended")
	assert.Empty(t, children(t, admin, root+"/q"))
	require.NoError(t, s.Delete(ctx, "/q", -1))
}
