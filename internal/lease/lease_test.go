package lease

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const T = 4 * time.Second // Interval 100ms, Window 800ms, Allowance 900ms

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func TestParameters(t *testing.T) {
	assert.Equal(t, 100*time.Millisecond, Interval(T))
	assert.Equal(t, 800*time.Millisecond, Window(T))
	assert.Equal(t, 900*time.Millisecond, Allowance(T), "a tick at T/5, plus the interval")
}

func TestCreationIsTheFirstProof(t *testing.T) {
	l := New(T, at(0))
	assert.Equal(t, at(0), l.Basis())
}

func TestSteadySyncsMoveTheBasis(t *testing.T) {
	l := New(T, at(0))
	for ms := 100; ms <= 1000; ms += 100 {
		l.Probed(at(ms), at(ms+2), true)
	}
	// Answers 100ms apart (the first 102ms after the creation).
	assert.Equal(t, at(1000-100), l.Basis())
}

func TestStallGapHoldsTheBasisBack(t *testing.T) {
	l := New(T, at(0))
	for ms := 100; ms <= 1000; ms += 100 {
		l.Probed(at(ms), at(ms+1), true)
	}
	before := l.Basis()
	// The leader stalls from 1050 to 2800: syncs sent meanwhile are all
	// answered as it resumes.
	for ms := 1100; ms <= 2800; ms += 100 {
		l.Probed(at(ms), at(2801), true)
	}
	// The gap 1001 → 2801 is in every window so far: no sync proves more
	// than its send time less 1.8s, all before the stall began.
	assert.Equal(t, at(2800-1800), l.Basis())
	assert.False(t, l.Basis().After(at(1050)), "nothing sent during the stall proves the leader heard of it")
	assert.True(t, !l.Basis().Before(before))
	// Syncs after the stall: the gap leaves the window once the send time
	// is more than a window past the gap's end.
	for ms := 2900; ms <= 3600; ms += 100 {
		l.Probed(at(ms), at(ms+1), true)
		assert.Equal(t, at(ms-1800), l.Basis(), "sent at %d: the stall's gap still counts", ms)
	}
	l.Probed(at(3700), at(3701), true)
	assert.Equal(t, at(3700-100), l.Basis(), "2801 is before 3700 − 800ms: the gap has left the window")
}

func TestFailedSyncsProveNothing(t *testing.T) {
	l := New(T, at(0))
	l.Probed(at(100), at(101), true)
	l.Probed(at(200), at(250), false)
	l.Probed(at(300), at(350), false)
	assert.Equal(t, at(0), l.Basis(), "the first answer is 101ms after the creation")
	l.Probed(at(400), at(401), true)
	assert.Equal(t, at(400-300), l.Basis(), "the failures left a 300ms gap")
}

func TestBasisNeverMovesBack(t *testing.T) {
	l := New(T, at(0))
	l.Probed(at(1000), at(1001), true) // gap 1001ms from the creation
	assert.Equal(t, at(0), l.Basis())
	l.Probed(at(1900), at(1901), true) // gap 900ms; 1001 is before the window
	assert.Equal(t, at(1000), l.Basis())
	l.Probed(at(1950), at(2900), true) // a slow answer: gap 999ms
	assert.Equal(t, at(1000), l.Basis(), "1950 − 999ms is earlier than the basis")
}

func TestLateTimestampDoesNotShortenTheNextGap(t *testing.T) {
	l := New(T, at(0))
	l.Probed(at(100), at(500), true)
	l.Probed(at(200), at(450), true) // read a little late: counts as 500
	l.Probed(at(300), at(900), true)
	assert.Equal(t, at(0), l.Basis(), "gaps of 500ms and 400ms")
}
