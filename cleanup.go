package zklock

import (
	"context"
	"errors"

	"github.com/go-zookeeper/zk"
)

// duty is a node the Session must delete: by name, or, when a create's
// reply was lost, whichever node under dir carries the protected id.
type duty struct {
	g    *generation
	dir  string
	name string
	id   string
}

// addDuty hands a delete to the cleaner, which retries it until it succeeds
// or the duty's ZooKeeper session ends (its ephemeral nodes then go too).
func (s *Session) addDuty(d duty) {
	s.dutyMu.Lock()
	s.duties = append(s.duties, d)
	s.dutyMu.Unlock()
	select {
	case s.dutyWake <- struct{}{}:
	default:
	}
}

// pendingDuties reports how many deletes the cleaner has yet to finish.
func (s *Session) pendingDuties() int {
	s.dutyMu.Lock()
	defer s.dutyMu.Unlock()
	return len(s.duties)
}

// clean is the cleaner goroutine.
func (s *Session) clean() {
	defer s.wg.Done()
	bo := s.cfg.backoff.newBackOff(s.clk)
	var retryAt timer
	defer retryAt.stop()
	for {
		select {
		case <-s.closing:
			return
		case <-s.dutyWake:
		case <-retryAt.c:
		}
		s.dutyMu.Lock()
		todo := s.duties
		s.duties = nil
		s.dutyMu.Unlock()

		var failed []duty
		for _, d := range todo {
			if !d.g.ended() && !s.perform(d) {
				failed = append(failed, d)
			}
		}
		if len(failed) == 0 {
			bo.Reset()
			retryAt.stop()
			continue
		}
		s.dutyMu.Lock()
		s.duties = append(failed, s.duties...)
		s.dutyMu.Unlock()
		retryAt.set(bo.NextBackOff())
	}
}

// perform tries one duty once, bounded; true when it needs no retry.
func (s *Session) perform(d duty) bool {
	ctx, cancel := context.WithTimeout(s.life, s.cfg.timeout)
	defer cancel()
	_, err := call(ctx, s, d.g, func(c *zk.Conn) (none, error) {
		names := []string{d.name}
		if d.name == "" {
			var err error
			if names, err = ownedWithID(c, d.dir, d.id, d.g.sessionID); err != nil {
				return none{}, err
			}
		}
		for _, n := range names {
			if err := c.Delete(d.dir+"/"+n, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
				return none{}, err
			}
		}
		return none{}, nil
	})
	if err != nil {
		s.cfg.logger.Debug("zklock: cleanup delete failed; will retry", "dir", d.dir, "name", d.name, "err", err)
	}
	return err == nil || d.g.ended() || errors.Is(err, zk.ErrNoNode)
}
