package zktesting

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

// RootBase is the persistent node under which Root makes each test's node.
const RootBase = "/zktesting"

// Root creates a fresh persistent node for this test, under RootBase, and
// returns its path, for the test to keep its nodes under (a client's
// chroot, or a recipe's parent). When the test ends it fails the test if
// any node is left below, then removes the whole subtree. Lock directories
// are not counted as left: a persistent node that has had children is
// taken for a container node, which the server removes by itself once it
// is empty (ZooKeeper does not tell clients which nodes are containers).
// What is left inside one is listed on its own.
func (c *Cluster) Root(t testing.TB) string {
	t.Helper()
	admin := c.Admin(t)
	name := strings.NewReplacer("/", "-", " ", "_").Replace(t.Name())
	p := fmt.Sprintf("%s/%s-%d", RootBase, name, time.Now().UnixNano())
	if _, err := admin.Create(RootBase, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
		t.Fatalf("zktesting: create %s: %v", RootBase, err)
	}
	if _, err := admin.Create(p, nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatalf("zktesting: create %s: %v", p, err)
	}
	t.Cleanup(func() {
		if err := c.CheckLeftovers(p, false); err != nil {
			t.Error(err)
		}
	})
	return p
}

// CheckLeftovers returns an error that lists the nodes left below p, and p
// itself if self is set, other than lock directories (see Root), and
// removes p with everything below it. It is Root's check, for nodes a
// program or a TestMain made at paths of its own. A missing p is no error.
func (c *Cluster) CheckLeftovers(p string, self bool) error {
	admin, err := c.AdminConn()
	if err != nil {
		return err
	}
	var errs []error
	left, err := leftovers(admin, p, self)
	if err != nil {
		errs = append(errs, fmt.Errorf("zktesting: listing the nodes left under %s: %w", p, err))
	}
	if len(left) > 0 {
		errs = append(errs, fmt.Errorf("zktesting: nodes left behind under %s: %v", p, left))
	}
	if err := removeAll(admin, p); err != nil {
		errs = append(errs, fmt.Errorf("zktesting: removing %s: %w", p, err))
	}
	return errors.Join(errs...)
}

// leftovers lists the nodes below p, and p itself if self, that are not
// lock directories.
func leftovers(admin *zk.Conn, p string, self bool) ([]string, error) {
	var left []string
	var walk func(string) error
	walk = func(n string) error {
		kids, st, err := admin.Children(n)
		if errors.Is(err, zk.ErrNoNode) {
			return nil
		}
		if err != nil {
			return err
		}
		dir := st.EphemeralOwner == 0 && st.Cversion > 0
		if (n != p || self) && !dir {
			left = append(left, n)
		}
		for _, k := range kids {
			if err := walk(path.Join(n, k)); err != nil {
				return err
			}
		}
		return nil
	}
	err := walk(p)
	return left, err
}

// removeAll deletes p and everything below it.
func removeAll(admin *zk.Conn, p string) error {
	kids, _, err := admin.Children(p)
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, k := range kids {
		if err := removeAll(admin, path.Join(p, k)); err != nil {
			return err
		}
	}
	if err := admin.Delete(p, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
		return err
	}
	return nil
}
