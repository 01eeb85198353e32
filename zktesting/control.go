package zktesting

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/zklock/zklock/internal/zkserver"
)

// Controlled reports whether the servers are processes started here, which
// the methods below can stop and start; it is false with ZK_SERVERS set.
func (c *Cluster) Controlled() bool { return c.local != nil }

// RequireControl skips the test, saying why, when the servers are not
// started here (ZK_SERVERS is set).
func (c *Cluster) RequireControl(t testing.TB) {
	t.Helper()
	if c.local == nil {
		t.Skipf("zktesting: needs control of the server processes; %s is set", EnvServers)
	}
}

func (c *Cluster) control() error {
	if c.local == nil {
		return ErrNoControl
	}
	return nil
}

// Stop kills server i (SIGKILL: ZooKeeper is built to survive a crash) and
// waits for its process to exit; its data stays. Stopping a stopped server
// does nothing. The error wraps ErrNoControl with ZK_SERVERS set.
func (c *Cluster) Stop(i int) error {
	if err := c.control(); err != nil {
		return err
	}
	return wrap(c.local.Stop(i))
}

// Restart starts the stopped servers idx again, with their data and ports,
// and waits until every one serves: standalone, or back in the ensemble as
// leader or follower. Servers that can only form a quorum together (a
// stopped majority) must be restarted by one call. If ctx ends first, the
// servers are stopped again and the error wraps ctx.Err().
func (c *Cluster) Restart(ctx context.Context, idx ...int) error {
	if err := c.control(); err != nil {
		return err
	}
	return wrap(c.local.StartServers(ctx, idx...))
}

// Wipe deletes stopped server i's data (snapshots and transaction log), as
// if its disk were replaced: it restarts with an empty tree and learns the
// ensemble's state from the others.
func (c *Cluster) Wipe(i int) error {
	if err := c.control(); err != nil {
		return err
	}
	return wrap(c.local.WipeData(i))
}

// Pause stops server i's process with SIGSTOP: its connections stay open
// but it answers nothing, like a server in a long pause. Resume ends it.
func (c *Cluster) Pause(i int) error {
	if err := c.control(); err != nil {
		return err
	}
	return wrap(c.local.Pause(i))
}

// Resume continues server i after Pause.
func (c *Cluster) Resume(i int) error {
	if err := c.control(); err != nil {
		return err
	}
	return wrap(c.local.Resume(i))
}

// Mode returns server i's role as it reports it: "standalone", "leader" or
// "follower". A server that is not in a quorum yields an error. It needs
// the four-letter word srvr, which servers started here allow; with
// ZK_SERVERS set it asks the listed server, which must allow it too.
func (c *Cluster) Mode(ctx context.Context, i int) (string, error) {
	if c.local != nil {
		mode, err := c.local.Mode(ctx, i)
		return mode, wrap(err)
	}
	if i < 0 || i >= len(c.direct) {
		return "", fmt.Errorf("zktesting: server %d out of range [0,%d)", i, len(c.direct))
	}
	mode, err := serverMode(ctx, c.direct[i])
	return mode, wrap(err)
}

// StopServer is Stop for a test: it skips the test with ZK_SERVERS set and
// fails it on error.
func (c *Cluster) StopServer(t testing.TB, i int) {
	t.Helper()
	c.RequireControl(t)
	if err := c.Stop(i); err != nil {
		t.Fatal(err)
	}
}

// StartServer is Restart of server i for a test, bounded by Timeout: it
// skips the test with ZK_SERVERS set and fails it on error.
func (c *Cluster) StartServer(t testing.TB, i int) {
	t.Helper()
	c.RequireControl(t)
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	if err := c.Restart(ctx, i); err != nil {
		t.Fatal(err)
	}
}

// WipeData is Wipe for a test: it skips the test with ZK_SERVERS set and
// fails it on error.
func (c *Cluster) WipeData(t testing.TB, i int) {
	t.Helper()
	c.RequireControl(t)
	if err := c.Wipe(i); err != nil {
		t.Fatal(err)
	}
}

// wrap gives an error of internal/zkserver (prefixed "zkserver: ") the
// package's prefix.
func wrap(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("zktesting: %w", err)
}

// serverMode asks the server at addr for its role with srvr.
func serverMode(ctx context.Context, addr string) (string, error) {
	reply, err := zkserver.FourLetter(ctx, addr, "srvr")
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(reply, "\n") {
		if mode, ok := strings.CutPrefix(l, "Mode: "); ok {
			return strings.TrimSpace(mode), nil
		}
	}
	return "", fmt.Errorf("%s is not in a quorum: srvr answered %q", addr, strings.TrimSpace(reply))
}
