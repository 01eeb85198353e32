package zklock

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/assert"
)

// Wrapped errors say "zklock: " once, at the start, and errors.Is still
// finds every sentinel and cause they wrap.
func TestErrorsCarryThePrefixOnce(t *testing.T) {
	s := &Session{cfg: defaultConfig()}
	lost := errorf("%w: %w", ErrLockLost, errPastDeadline)
	for _, tc := range []struct {
		name string
		err  error
		is   []error
	}{
		{"invalid path", newRecipe(s, "/locks/a\x00b", mutexKind).perr, []error{ErrInvalidPath}},
		{"reserved path", newRecipe(s, "/zookeeper/x", electionKind).perr, []error{ErrInvalidPath}},
		{"lost at the deadline", lost, []error{ErrLockLost, ErrSessionExpired, ErrLossDeadline}},
		{"unlock after a loss", errorf("%w: %w", ErrNotLocked, lost), []error{ErrNotLocked, ErrLockLost, ErrSessionExpired, ErrLossDeadline}},
		{"acquire failed", errorf("zklock: lock %s: %w", "/p", errorf("%w: %w", errGenerationEnded, ErrSessionExpired)), []error{errGenerationEnded, ErrSessionExpired}},
		{"retry gave up", errorf("zklock: get %q: %w", "/p", errorf("%w (last error: %w)", context.DeadlineExceeded, zk.ErrConnectionClosed)), []error{context.DeadlineExceeded, zk.ErrConnectionClosed}},
		{"invalid option", WithSessionTimeout(0).apply(), []error{ErrInvalidOption}},
		{"bad backoff", Backoff{}.validate(), []error{ErrInvalidOption}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := tc.err.Error()
			assert.True(t, strings.HasPrefix(msg, "zklock: "), msg)
			assert.Equal(t, 1, strings.Count(msg, "zklock: "), msg)
			for _, target := range tc.is {
				assert.ErrorIs(t, tc.err, target)
			}
			assert.False(t, errors.Is(tc.err, ErrNodeDeleted), "wraps only what it says")
		})
	}
}

// apply returns the error an option records.
func (o SessionOption) apply() error {
	var c sessionConfig
	o(&c)
	return errors.Join(c.errs...)
}

// Only the prefixes of wrapped errors go: the words "zklock: " inside a
// path or a caller's message stay.
func TestErrorfKeepsPrefixInsideWords(t *testing.T) {
	user := errors.New(`backend "zklock: primary" refused write`)
	err := errorf("zklock: run %s: leader function: %w", "/p", user)
	assert.Equal(t, `zklock: run /p: leader function: backend "zklock: primary" refused write`, err.Error())
	assert.ErrorIs(t, err, user)
	err = errorf("zklock: lock %s: %w", "/tryout/zklock: odd", ErrLocked)
	assert.Equal(t, "zklock: lock /tryout/zklock: odd: locked by another holder", err.Error())
	err = errorf("%w (last error: %w)", context.DeadlineExceeded, errorf("zklock: x: %w", ErrSessionClosed))
	assert.Equal(t, "zklock: context deadline exceeded (last error: x: session closed)", err.Error())
}
