package demo

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConsole(t *testing.T) {
	var out bytes.Buffer
	c := NewConsole(&out)
	at := c.start.Add(1500 * time.Millisecond)
	c.Note("setup %d", 1)
	c.Event(at, "worker-%d acquired", 2)
	c.Line("queue: %s", "x")
	c.Block(at, "failover", "killed", "won")
	assert.Equal(t, "setup 1\n"+
		"  +1.500s  worker-2 acquired\n"+
		"             queue: x\n"+
		"  +1.500s  failover\n"+
		"             killed\n"+
		"             won\n",
		out.String(), "notes unstamped, events stamped from the clock's start, continuations indented under the text")
}

func TestMonitor(t *testing.T) {
	var m Monitor
	ready := false
	done := make(chan error, 1)
	go func() {
		done <- m.WaitUntil(context.Background(), "ready", func() bool { return ready })
	}()
	m.Lock()
	ready = true
	m.Broadcast()
	m.Unlock()
	select {
	case err := <-done:
		require.NoError(t, err, "WaitUntil once the condition holds")
	case <-time.After(10 * time.Second):
		t.Fatal("WaitUntil did not return after the condition was met and broadcast")
	}

	ctx, cancel := context.WithCancelCause(context.Background())
	stop := errors.New("stopped")
	cancel(stop)
	err := m.WaitUntil(ctx, "never", func() bool { return false })
	assert.ErrorIs(t, err, stop, "WaitUntil on an ended context fails with its cause")
}
