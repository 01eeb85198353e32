package zktesting

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

// adminSessionTimeout is the admin connection's session timeout: long, so
// that a stopped server or a slow machine does not end the session under a
// test that is looking at the tree.
const adminSessionTimeout = 30 * time.Second

// Admin returns a plain go-zookeeper connection straight to the servers (no
// proxy), standing for an operator or another application. It is opened on
// first use, shared by every caller, and closed with the Cluster; do not
// close it. It fails the test if it cannot be opened.
func (c *Cluster) Admin(t testing.TB) *zk.Conn {
	t.Helper()
	conn, err := c.AdminConn()
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

// AdminConn is Admin for a program that has no testing.TB.
func (c *Cluster) AdminConn() (*zk.Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errors.New("zktesting: the cluster is closed")
	}
	if c.admin == nil {
		conn, _, err := zk.Connect(c.direct, adminSessionTimeout, zk.WithLogInfo(false), zk.WithLogger(quiet{}))
		if err != nil {
			return nil, fmt.Errorf("zktesting: admin connection: %w", err)
		}
		c.admin = conn
	}
	return c.admin, nil
}

// quiet discards go-zookeeper's log lines.
type quiet struct{}

func (quiet) Printf(string, ...any) {}

// DeleteNode deletes the node at p (a full path), whatever its version and
// whoever owns it, as an operator would: an ephemeral node of a client's
// session goes, and that client's session does not. It fails the test if
// the node cannot be deleted, for example because it has children.
func (c *Cluster) DeleteNode(t testing.TB, p string) {
	t.Helper()
	if err := c.Admin(t).Delete(p, -1); err != nil {
		t.Fatalf("zktesting: delete %s: %v", p, err)
	}
}
