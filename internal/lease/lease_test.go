package lease

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const T = 4 * time.Second // Fast 100ms, Quarantine 800ms

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func TestParameters(t *testing.T) {
	assert.Equal(t, 100*time.Millisecond, Interval(T))
	assert.Equal(t, 100*time.Millisecond, Fast(T))
	assert.Equal(t, 800*time.Millisecond, Quarantine(T))
	assert.Equal(t, 600*time.Millisecond, Allowance(T), "half a tick at T/10, plus the gap between syncs")
}

func TestFastSyncsMoveTheBasis(t *testing.T) {
	l := New(T, at(0))
	assert.Equal(t, at(0), l.Basis(), "the session's creation proves a full timeout")
	l.Probed(at(100), at(101), true)
	assert.Equal(t, at(100), l.Basis())
	l.Probed(at(200), at(300), true)
	assert.Equal(t, at(200), l.Basis(), "a round trip of exactly Fast still proves")
}

func TestBasisNeverMovesBack(t *testing.T) {
	l := New(T, at(500))
	l.Probed(at(100), at(101), true)
	assert.Equal(t, at(500), l.Basis())
}

func TestSlowSyncProvesNothing(t *testing.T) {
	l := New(T, at(0))
	l.Probed(at(100), at(101), true)
	// Sent before a leader stall, answered when it resumed.
	l.Probed(at(200), at(2000), true)
	assert.Equal(t, at(100), l.Basis(), "a slow sync does not move the basis")
}

func TestQuarantineAfterSlowSync(t *testing.T) {
	l := New(T, at(0))
	l.Probed(at(200), at(2000), true) // slow: quiet until 2800
	// Fast, but sent while the resumed leader may still be expiring us.
	l.Probed(at(2001), at(2002), true)
	l.Probed(at(2799), at(2800), true)
	assert.Equal(t, at(0), l.Basis(), "fast syncs in the quarantine prove nothing")
	l.Probed(at(2800), at(2801), true)
	assert.Equal(t, at(2800), l.Basis(), "the first fast sync sent after it does")
}

func TestFailedSyncQuarantines(t *testing.T) {
	l := New(T, at(0))
	l.Probed(at(100), at(150), false) // e.g. the connection dropped
	l.Probed(at(200), at(201), true)
	assert.Equal(t, at(0), l.Basis())
	l.Probed(at(950), at(951), true)
	assert.Equal(t, at(950), l.Basis())
}

func TestQuarantinesExtendNotShorten(t *testing.T) {
	l := New(T, at(0))
	l.Probed(at(100), at(3000), true) // quiet until 3800
	l.Probed(at(200), at(250), false) // its own quarantine ends earlier: 1050
	l.Probed(at(3500), at(3501), true)
	assert.Equal(t, at(0), l.Basis(), "the later quarantine still holds")
	l.Probed(at(3800), at(3801), true)
	assert.Equal(t, at(3800), l.Basis())
}
