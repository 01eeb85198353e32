package chaos

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zklock/zklock/internal/zktest"
)

func TestMain(m *testing.M) { zktest.Main(m) }

// Environment variables that adjust TestChaos.
const (
	envSeed     = "ZKLOCK_CHAOS_SEED"     // seeds to run instead of the default two
	envDuration = "ZKLOCK_CHAOS_DURATION" // fault phase per seed
	envHistory  = "ZKLOCK_CHAOS_HISTORY"  // directory to write each run's full History to
)

const (
	// fixedSeed is the seed every default run includes, so CI always
	// covers one known schedule.
	fixedSeed       = 1
	defaultDuration = 30 * time.Second
	// runOverhead bounds what a run needs besides its fault phase: starting
	// the ensemble, recovering from the last fault, the liveness checks and
	// draining the nodes of expired sessions.
	runOverhead = 3 * time.Minute
)

func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos test: needs ZooKeeper and about a minute and a half")
	}
	seeds, err := seedsFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	dur, err := durationFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if dl, ok := t.Deadline(); ok {
		if need := time.Duration(len(seeds)) * (dur + runOverhead); time.Until(dl) < need {
			t.Fatalf("%d seeds of %v need up to %v; raise -timeout", len(seeds), dur, need)
		}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Logf("seed %d (rerun with %s=%d)", seed, envSeed, seed)
			runChaos(t, seed, AllFaults, dur)
		})
	}
}

// seedsFromEnv returns the seeds in ZKLOCK_CHAOS_SEED, or the fixed seed
// and a random one.
func seedsFromEnv() ([]uint64, error) {
	v := strings.TrimSpace(os.Getenv(envSeed))
	if v == "" {
		return []uint64{fixedSeed, rand.Uint64()}, nil
	}
	var seeds []uint64
	for f := range strings.SplitSeq(v, ",") {
		s, err := strconv.ParseUint(strings.TrimSpace(f), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s=%q: %w", envSeed, v, err)
		}
		seeds = append(seeds, s)
	}
	return seeds, nil
}

func durationFromEnv() (time.Duration, error) {
	v := strings.TrimSpace(os.Getenv(envDuration))
	if v == "" {
		return defaultDuration, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s=%q: want a positive duration such as 10m", envDuration, v)
	}
	return d, nil
}
