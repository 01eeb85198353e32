package zklock

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
)

// duty is a delete the cleaner must see through: a node of generation g
// that no one wants any more.
type duty struct {
	g    *generation
	what string                          // the node, for logs
	del  func(ctx context.Context) error // one attempt; a node already gone is a success
}

// cleaner retries the deletes recipes could not finish themselves (the
// connection was down, a create's outcome was unknown), so no node is left
// behind to block others. A duty is done when its delete succeeds or its
// ZooKeeper session ends, which removes the session's ephemeral nodes too.
type cleaner struct {
	duties  *mailbox[duty]
	backlog atomic.Int64 // duties added and not yet done
	policy  Backoff      // between rounds of failed deletes
	clk     clock
	timeout time.Duration // bounds one attempt
	logger  *slog.Logger
}

func newCleaner(policy Backoff, clk clock, timeout time.Duration, logger *slog.Logger) *cleaner {
	return &cleaner{duties: newMailbox[duty](), policy: policy, clk: clk, timeout: timeout, logger: logger}
}

// add hands a delete to the cleaner. It never blocks.
func (c *cleaner) add(d duty) {
	c.backlog.Add(1)
	c.duties.push(d)
}

// pending reports how many deletes the cleaner has yet to finish.
func (c *cleaner) pending() int { return int(c.backlog.Load()) }

// run is the cleaner's goroutine; it returns when life ends.
func (c *cleaner) run(life context.Context) {
	bo := c.policy.newBackOff(c.clk)
	var retryAt timer
	defer retryAt.stop()
	var todo []duty
	for {
		select {
		case <-life.Done():
			return
		case <-c.duties.wakeup():
		case <-retryAt.c:
		}
		todo = append(todo, c.duties.drain()...)
		failed := todo[:0]
		for _, d := range todo {
			if d.g.ended() || c.perform(life, d) {
				c.backlog.Add(-1)
			} else {
				failed = append(failed, d)
			}
		}
		clear(todo[len(failed):])
		todo = failed
		if len(todo) == 0 {
			bo.Reset()
			retryAt.stop()
			continue
		}
		retryAt.set(bo.NextBackOff())
	}
}

// perform tries one duty once, bounded; true when it needs no retry. Only
// a lost connection or the attempt's timeout is worth another try; a
// delete the server refuses (no auth, ...) would be refused again.
func (c *cleaner) perform(life context.Context, d duty) bool {
	ctx, cancel := context.WithTimeout(life, c.timeout)
	defer cancel()
	err := d.del(ctx)
	switch {
	case err == nil, d.g.ended(), errors.Is(err, zk.ErrNoNode):
		return true
	case ctx.Err() != nil || retryable(err):
		c.logger.Debug("zklock: cleanup delete failed; will retry", "node", d.what, "err", err)
		return false
	}
	c.refused(d.what, err)
	return true
}

// refused logs a delete the server refused: the node stays until its
// ZooKeeper session ends, and may block other contenders until then.
func (c *cleaner) refused(what string, err error) {
	c.logger.Warn("zklock: the server refused to delete a node; it stays until its session ends", "node", what, "err", err)
}
