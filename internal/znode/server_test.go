package znode

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zklock/zklock/zktesting"
)

// TestIntegration_ServerAgrees puts every edge path to a real server and
// checks that it accepts exactly the paths Validate accepts, and exactly the
// sequential-create paths ValidateSequential accepts.
//
// go-zookeeper checks paths itself before most requests, with rules of its
// own: it lets through U+E000-U+EFFF, U+FFFF and everything beyond the BMP,
// which the server rejects, and for a sequential create refuses a last
// component "." or "..", which the server allows. So every request here goes
// in a Multi, which it sends unchecked. Its own verdict is reported beside
// the server's and, for plain paths, has to be no stricter than Validate's,
// so that it never refuses a path Validate let through.
func TestIntegration_ServerAgrees(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test; needs ZooKeeper")
	}
	zc := zktesting.Shared(t)
	admin := zc.Admin(t)
	root := zc.Root(t)
	acl := zk.WorldACL(zk.PermAll)

	// one sends op alone in a Multi and returns its result.
	one := func(op any) (string, error) {
		res, err := admin.Multi(op)
		if len(res) == 1 && res[0].Error != nil {
			return "", res[0].Error
		}
		if err != nil {
			return "", err
		}
		if len(res) != 1 {
			return "", fmt.Errorf("multi of one op: %d results", len(res))
		}
		return res[0].String, nil
	}
	// made records a node this test created and deletes it when the test
	// ends, children before parents.
	made := func(t *testing.T, p string) {
		t.Cleanup(func() {
			_, err := one(&zk.DeleteRequest{Path: p, Version: -1})
			assert.NoError(t, err, "delete %q", p)
		})
	}
	mkdir := func(t *testing.T, p string) {
		_, err := one(&zk.CreateRequest{Path: p, Acl: acl})
		require.NoError(t, err, "create %q", p)
		made(t, p)
	}
	verdict := func(err error) string {
		switch {
		case err == nil:
			return "accepts"
		case errors.Is(err, zk.ErrBadArguments):
			return "rejects"
		case errors.Is(err, zk.ErrNoNode):
			return "no node"
		}
		return err.Error()
	}
	// goZK is go-zookeeper's verdict on p. Create with a TTL flag checks the
	// path and then refuses the flag, both before sending anything.
	goZK := func(t *testing.T, p string, seq bool) string {
		flags := int32(zk.FlagTTL)
		if seq {
			flags = zk.FlagPersistentSequentialWithTTL
		}
		_, err := admin.Create(p, nil, flags, acl)
		if errors.Is(err, zk.ErrInvalidPath) {
			return "refuses"
		}
		require.ErrorIs(t, err, zk.ErrInvalidFlags, "go-zookeeper passes %q and stops at the flag", p)
		return "passes"
	}
	// rejected checks a create's failure: the server looks the parent up
	// before it checks the path, so a path whose parent is itself invalid
	// (and so cannot exist) fails with no node instead of bad arguments.
	rejected := func(t *testing.T, p string, err error) {
		t.Helper()
		if errors.Is(err, zk.ErrNoNode) {
			i := strings.LastIndexByte(p, '/')
			assert.True(t, i < 0 || Validate(p[:i]) != nil, "create %q: no node, but its parent is valid", p)
			return
		}
		assert.ErrorIs(t, err, zk.ErrBadArguments, "create %q", p)
	}

	var report strings.Builder
	fmt.Fprintf(&report, "%-36s %-8s %-8s %-8s %-8s | %-8s %-8s %s\n",
		"case", "Validate", "go-zk", "check", "create", "Seq", "go-zk", "create")
	for i, tc := range edges {
		t.Run(tc.name, func(t *testing.T) {
			// Each case has a directory of its own, which also stands for a
			// chroot: the path given, and the path the server sees under it.
			dir := fmt.Sprintf("%s/%d", root, i)
			mkdir(t, dir)
			full, fullSeq := tc.path, tc.path
			if strings.HasPrefix(tc.path, "/") {
				full, fullSeq = Join(dir, tc.path), dir+tc.path
			}
			// The parents of the last component, where Validate accepts them,
			// so that the creates below are decided by the path alone.
			for j := 2; j < len(tc.path) && tc.path[0] == '/'; j++ {
				if tc.path[j] != '/' {
					continue
				}
				if Validate(tc.path[:j]) != nil {
					break
				}
				mkdir(t, dir+tc.path[:j])
			}

			valid := Validate(tc.path) == nil
			validSeq := ValidateSequential(tc.path) == nil

			goPlain, goSeq := goZK(t, full, false), goZK(t, fullSeq, true)
			if goPlain == "refuses" {
				assert.False(t, valid, "go-zookeeper refuses %q, which Validate accepts", full)
			}

			// The server's path check alone: a check op validates its path
			// before looking the node up.
			_, err := one(&zk.CheckVersionRequest{Path: full, Version: -1})
			check := verdict(err)
			if errors.Is(err, zk.ErrNoNode) {
				check = "accepts" // a valid path of no node
			}
			assert.Equal(t, valid, check == "accepts", "check %q: server %s, Validate %v", full, check, valid)

			// A create, the request a lock makes. The node of "/" is dir,
			// which exists.
			create := "exists"
			if full != dir {
				_, err = one(&zk.CreateRequest{Path: full, Acl: acl})
				if err == nil {
					made(t, full)
				}
				create = verdict(err)
				if valid {
					assert.NoError(t, err, "create %q: Validate accepts it", full)
				} else {
					rejected(t, full, err)
				}
			}

			created, err := one(&zk.CreateRequest{Path: fullSeq, Acl: acl, Flags: zk.FlagSequence})
			if err == nil {
				made(t, created)
			}
			createSeq := verdict(err)
			if validSeq {
				assert.NoError(t, err, "sequential create %q: ValidateSequential accepts it", fullSeq)
			} else {
				rejected(t, fullSeq, err)
			}

			fmt.Fprintf(&report, "%-36s %-8v %-8s %-8s %-8s | %-8v %-8s %s\n",
				tc.name, valid, goPlain, check, create, validSeq, goSeq, createSeq)
		})
	}
	t.Logf("server verdicts:\n%s", report.String())
}

// TestIntegration_ServerAgreesOnCharacters puts a sample of the BMP, every
// boundary of the ranges ZooKeeper rejects and a few code points beyond the
// BMP to the server's path check, in the middle of a name.
func TestIntegration_ServerAgreesOnCharacters(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test; needs ZooKeeper")
	}
	zc := zktesting.Shared(t)
	admin := zc.Admin(t)
	root := zc.Root(t)

	runes := []rune{0x10000, 0x1F402, 0xE0001, 0x10FFFF}
	for _, b := range []rune{0x0000, 0x001F, 0x007F, 0x009F, 0xD800, 0xF8FF, 0xFFF0, 0xFFFF} {
		runes = append(runes, b-1, b, b+1)
	}
	for r := rune(1); r < 0x10000; r += 127 {
		runes = append(runes, r)
	}
	mismatches := 0
	for _, r := range runes {
		if r < 0 || r == '/' {
			continue
		}
		// A surrogate code point has no UTF-8 form: string(r) is U+FFFD.
		p := root + "/a" + string(r) + "z"
		// A check op validates its path before looking the node up: bad
		// arguments for a path it rejects, no node for one it accepts.
		res, err := admin.Multi(&zk.CheckVersionRequest{Path: p, Version: -1})
		if len(res) == 1 && res[0].Error != nil {
			err = res[0].Error
		}
		var server bool
		switch {
		case errors.Is(err, zk.ErrBadArguments):
		case errors.Is(err, zk.ErrNoNode):
			server = true
		default:
			require.Fail(t, "check op", "%U: want bad arguments or no node, got %v", r, err)
		}
		if client := Validate(p) == nil; client != server {
			mismatches++
			t.Errorf("%U: server accepts %v, Validate accepts %v", r, server, client)
		}
	}
	t.Logf("%d code points, %d disagreements", len(runes), mismatches)
}
