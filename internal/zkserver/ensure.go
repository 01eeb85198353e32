package zkserver

import (
	"context"
	"errors"
	"os"
	"strings"
)

// Ensure returns ZooKeeper servers for a demo or tool: those in
// $ZK_SERVERS when set, otherwise one local standalone server started from
// Find's install. stop stops whatever Ensure started. note reports which
// (it may be nil).
func Ensure(ctx context.Context, note func(format string, args ...any)) (servers []string, stop func(), err error) {
	if note == nil {
		note = func(string, ...any) {}
	}
	if v := strings.TrimSpace(os.Getenv("ZK_SERVERS")); v != "" {
		note("using ZK_SERVERS=%s", v)
		return strings.Split(v, ","), func() {}, nil
	}
	inst, err := Find()
	if err != nil {
		return nil, nil, errors.Join(errors.New("ZK_SERVERS is unset and no local ZooKeeper was found"), err)
	}
	note("ZK_SERVERS is unset: starting a local ZooKeeper server")
	c, err := Start(ctx, Config{Install: inst})
	if err != nil {
		return nil, nil, err
	}
	note("local ZooKeeper serving on %s", c.Addr(0))
	return c.Addrs(), func() { c.Close() }, nil
}
