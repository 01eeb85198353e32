package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zklock/zklock/zktesting"
)

func TestTimingForTimeout(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		tm                    timing
		t                     time.Duration
		wantGrace, wantMargin time.Duration
		wantErr               string
	}{
		{"defaults", timing{requested: 10 * time.Second}, 10 * time.Second, 2 * time.Second, 3 * time.Second, ""},
		{"default grace shrinks to fit", timing{requested: 2 * time.Second}, 2 * time.Second, 800 * time.Millisecond, time.Second, ""},
		{"grace at the limit", timing{requested: 10 * time.Second, grace: 4 * time.Second}, 10 * time.Second, 4 * time.Second, 5 * time.Second, ""},
		{"grace too long", timing{requested: 10 * time.Second, grace: 4100 * time.Millisecond}, 10 * time.Second, 0, 0, "--grace 4s or less"},
		{"granted less", timing{requested: 30 * time.Second, grace: 3 * time.Second}, 4 * time.Second, 0, 0, "ZooKeeper granted 4s for the --session-timeout 30s asked"},
		{"explicit margin", timing{requested: 10 * time.Second, slack: 500 * time.Millisecond}, 20 * time.Second, 2 * time.Second, 2500 * time.Millisecond, ""},
		{"margin leaves nothing", timing{requested: 10 * time.Second, slack: 5 * time.Second}, 10 * time.Second, 0, 0, "leaves no time for --grace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			grace, margin, err := tc.tm.forTimeout(tc.t)
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.wantGrace, grace)
			assert.Equal(t, tc.wantMargin, margin)
			assert.LessOrEqual(t, margin, tc.t/2, "the library would cap a larger margin")
		})
	}
}

// TestIntegration_TimingUsesGrantedTimeout runs lock against a server whose
// maxSessionTimeout (4s) is below the timeout asked for (30s): --grace is
// checked against what the server granted, and the default fits itself to it.
func TestIntegration_TimingUsesGrantedTimeout(t *testing.T) {
	integration(t)
	zc := zktesting.Start(t, 1, zktesting.WithMaxSessionTimeout(4*time.Second))
	root := zc.Root(t)
	servers := strings.Join(zc.Servers(), ",")
	ran := filepath.Join(t.TempDir(), "ran")

	p := start(t, "--servers", servers, "--session-timeout", "30s", "lock", "--grace", "3s", root+"/a", "--", "touch", ran)
	assert.Equal(t, exitUsage, p.wait(t), "stderr: %s", p.stderr.String())
	assert.Contains(t, p.stderr.String(), "granted 4s for the --session-timeout 30s asked")
	assert.Contains(t, p.stderr.String(), "--grace 1.6s or less")
	assert.NoFileExists(t, ran, "COMMAND never ran")

	p = start(t, "--servers", servers, "--session-timeout", "30s", "lock", root+"/a", "--", "touch", ran)
	assert.Equal(t, 0, p.wait(t), "the default --grace fits the granted timeout; stderr: %s", p.stderr.String())
	assert.FileExists(t, ran)
	assert.NotContains(t, p.stderr.String(), "warning", "a timeout lowered to the server's maximum is not below five ticks")
}

// TestIntegration_WarnsBelowFiveTicks: the test server (tickTime 200ms)
// answers "conf", so zklock knows a 900ms timeout is 4.5 ticks and says so;
// 10s (50 ticks) draws no warning.
func TestIntegration_WarnsBelowFiveTicks(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	// The warning comes right after the session is established; so short a
	// timeout may then lose the lock on a loaded machine (exit 76), which
	// is not what this test is about.
	p := start(t, "--servers", strings.Join(zc.Servers(), ","), "--session-timeout", "900ms",
		"lock", "--grace", "100ms", "--loss-margin", "100ms", root+"/a", "--", "true")
	code := p.wait(t)
	assert.Contains(t, []int{0, exitLost}, code, "stderr: %s", p.stderr.String())
	assert.Contains(t, p.stderr.String(), "warning: the session timeout 900ms is 4.5 ticks of the server's tickTime 200ms")
	assert.Contains(t, p.stderr.String(), "ask for 1s or more")

	p = start(t, "--servers", strings.Join(zc.Servers(), ","), "lock", root+"/a", "--", "true")
	assert.Equal(t, 0, p.wait(t), "stderr: %s", p.stderr.String())
	assert.NotContains(t, p.stderr.String(), "warning")
}

func TestWarnTicksWithoutConf(t *testing.T) {
	var b bytes.Buffer
	warnTicks(&b, 100*time.Millisecond, 4*time.Second, "")
	assert.Contains(t, b.String(), "raised the session timeout from 100ms to 4s, its minimum, which is 2 ticks")
	assert.Contains(t, b.String(), "ask for 10s or more")
	b.Reset()
	warnTicks(&b, 10*time.Second, 10*time.Second, "")
	assert.Empty(t, b.String(), "a granted request says nothing about tickTime")
	b.Reset()
	warnTicks(&b, 30*time.Second, 20*time.Second, "")
	assert.Empty(t, b.String(), "lowered to the maximum (20 ticks by default)")
}

// TestHelpExamplesMeetFiveTicks: every --session-timeout in the help texts
// and README is at least 10s, five ticks of a default server.
func TestHelpExamplesMeetFiveTicks(t *testing.T) {
	texts := []string{globalUsage, lockUsage, electUsage, leaderUsage, holdersUsage}
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	texts = append(texts, string(readme))
	re := regexp.MustCompile(`--session-timeout[ =](\d+\w+)`)
	found := 0
	for _, text := range texts {
		for _, m := range re.FindAllStringSubmatch(text, -1) {
			d, err := time.ParseDuration(m[1])
			require.NoError(t, err, m[0])
			assert.GreaterOrEqual(t, d, 10*time.Second, "%q: a default server's tickTime is 2s, and the timing rule needs 5 ticks", m[0])
			found++
		}
	}
	assert.Positive(t, found)
}

// TestIntegration_LaterSessionCheckedToo: elect starts on a server that
// grants the 4s asked for, loses it, and gets its next ZooKeeper session
// from a server whose maxSessionTimeout (2s) the loss margin does not fit:
// zklock stops campaigning and says why, rather than run COMMAND with a
// margin the library would cap.
func TestIntegration_LaterSessionCheckedToo(t *testing.T) {
	integration(t)
	wide := zktesting.Shared(t)
	narrow := zktesting.Start(t, 1, zktesting.WithMaxSessionTimeout(2*time.Second))
	root := wide.Root(t)
	psWide, psNarrow := wide.NewProxies(t), narrow.NewProxies(t)
	file := filepath.Join(t.TempDir(), "marks")
	// The first session goes to the wide server: the narrow one's proxy
	// refuses at once while it is down.
	narrow.StopServer(t, 0)
	p := start(t, "--servers", strings.Join(append(psWide.Addrs(), psNarrow.Addrs()...), ","), "--session-timeout", "4s",
		"elect", root+"/e", "--", "sh", "-c", "echo lead >> "+file+"; exec sleep 600")
	poll(t, "COMMAND to run", func() bool {
		select {
		case <-p.done:
			t.Fatalf("zklock exited %d before COMMAND ran; stderr: %s", p.code, p.stderr.String())
		default:
		}
		return len(marks(t, file)) > 0
	})

	narrow.StartServer(t, 0)
	// Gone for good: the connection drops, reconnecting is refused at once,
	// and the session passes its loss deadline.
	psWide.Proxy(0).Close()
	assert.Equal(t, exitUsage, p.wait(t), "stderr: %s", p.stderr.String())
	assert.Contains(t, p.stderr.String(), "lost leadership")
	assert.Contains(t, p.stderr.String(), "a new ZooKeeper session")
	assert.Contains(t, p.stderr.String(), "stopped campaigning")
	assert.Len(t, marks(t, file), 1, "COMMAND did not run again")
	poll(t, "the first session's node to go", func() bool {
		kids, _, err := wide.Admin(t).Children(root + "/e")
		if errors.Is(err, zk.ErrNoNode) {
			return true // the empty container is gone too
		}
		require.NoError(t, err)
		return len(kids) == 0
	})
}
