package zktest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zklock/zklock/internal/zkserver"

	"github.com/zklock/zklock/zktesting"
)

// Watchers returns the ids ("0x…") of the sessions that hold a data watch
// on the node at p (a full path), from server addr's "wchp" report.
func Watchers(ctx context.Context, addr, p string) ([]string, error) {
	r, err := zkserver.FourLetter(ctx, addr, "wchp")
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(r, "/") && strings.TrimSpace(r) != "" {
		return nil, fmt.Errorf("wchp answered %q", r)
	}
	var ids []string
	in := false
	for _, l := range strings.Split(r, "\n") {
		if strings.HasPrefix(l, "/") {
			in = l == p
		} else if in && strings.TrimSpace(l) != "" {
			ids = append(ids, strings.TrimSpace(l))
		}
	}
	return ids, nil
}

// SessionHex formats a session id as ZooKeeper's four-letter words print it.
func SessionHex(id int64) string { return fmt.Sprintf("0x%x", uint64(id)) }

// WaitWatched waits, at most zktesting.Timeout, until a session that who accepts
// holds a watch on the node at p on server addr: a contender that found p
// ahead of it and waits for it to go. A lock call that has not returned
// may only be late; a watch on the node ahead shows the contender looked
// at the queue and chose to wait. The server reports watches only when
// asked, so this polls.
func WaitWatched(t testing.TB, addr, p string, who func(id string) bool, what string) {
	t.Helper()
	deadline := time.Now().Add(zktesting.Timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		ids, err := Watchers(ctx, addr, p)
		cancel()
		if err == nil && slices.ContainsFunc(ids, who) {
			return
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("zktest: watches on %s: %v", p, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no such watch on %s after %v (watching sessions: %q)", what, p, zktesting.Timeout, ids)
		}
		<-tick.C
	}
}
