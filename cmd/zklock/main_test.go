package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zklock/zklock"
	"github.com/zklock/zklock/internal/zktest"
	"github.com/zklock/zklock/zktesting"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "zklock-cli-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "zklock")
	if out, err := exec.Command("go", "build", "-race", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building zklock: %v\n%s", err, out)
		os.Exit(1)
	}
	code := zktest.Run(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running zklock process.
type proc struct {
	cmd    *exec.Cmd
	stderr bytes.Buffer
	done   chan struct{}
	code   int
}

func start(t *testing.T, args ...string) *proc {
	t.Helper()
	return startProg(t, binary, args...)
}

// startProg starts prog, which runs zklock in its stead (exec).
func startProg(t *testing.T, prog string, args ...string) *proc {
	t.Helper()
	return startEnv(t, nil, prog, args...)
}

// startEnv starts prog with env added to the test's environment.
func startEnv(t *testing.T, env []string, prog string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(prog, args...), done: make(chan struct{})}
	if env != nil {
		p.cmd.Env = append(os.Environ(), env...)
	}
	p.cmd.Stderr = &p.stderr
	require.NoError(t, p.cmd.Start())
	go func() {
		err := p.cmd.Wait()
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			p.code = ee.ExitCode()
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				p.code = 128 + int(ws.Signal())
			}
		case err != nil:
			p.code = -1
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

func (p *proc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(zktesting.Timeout):
		t.Fatalf("zklock %v did not exit; stderr: %s", p.cmd.Args[1:], p.stderr.String())
	}
	return 0
}

// marks reads the lines a test's commands appended to file.
func marks(t *testing.T, file string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	require.NoError(t, err)
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// waitMark waits until file has a line starting with prefix and returns it.
func waitMark(t *testing.T, file, prefix string) string {
	t.Helper()
	var found string
	poll(t, fmt.Sprintf("a %q line in %s", prefix, file), func() bool {
		for _, l := range marks(t, file) {
			if strings.HasPrefix(l, prefix) {
				found = l
				return true
			}
		}
		return false
	})
	return found
}

func field(t *testing.T, line string, i int) int64 {
	t.Helper()
	f := strings.Fields(line)
	require.Greater(t, len(f), i, line)
	n, err := strconv.ParseInt(f[i], 10, 64)
	require.NoError(t, err, line)
	return n
}

func integration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test; needs ZooKeeper")
	}
}

func TestIntegration_LockRunsCommandsOneAtATime(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	file := filepath.Join(t.TempDir(), "marks")
	servers := strings.Join(zc.Servers(), ",")
	script := fmt.Sprintf(`echo "start $ZKLOCK_TOKEN" >> %[1]s; sleep 0.2; echo "end $ZKLOCK_TOKEN" >> %[1]s`, file)
	var procs []*proc
	for range 2 {
		for range 3 {
			procs = append(procs, start(t, "--servers", servers, "lock", root+"/job", "--", "sh", "-c", script))
		}
	}
	for _, p := range procs {
		assert.Equal(t, 0, p.wait(t), "stderr: %s", p.stderr.String())
	}
	lines := marks(t, file)
	require.Len(t, lines, 2*len(procs))
	var last int64
	for i := 0; i < len(lines); i += 2 {
		assert.True(t, strings.HasPrefix(lines[i], "start "), "commands never overlap: %v", lines)
		assert.Equal(t, "end"+strings.TrimPrefix(lines[i], "start"), lines[i+1], "each command ends before the next starts: %v", lines)
		tok := field(t, lines[i], 1)
		assert.Greater(t, tok, last, "tokens increase")
		last = tok
	}
}

func TestIntegration_LockExitStatuses(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	servers := strings.Join(zc.Servers(), ",")
	ctx, cancel := context.WithTimeout(t.Context(), zktesting.Timeout)
	defer cancel()
	s, err := zklock.Connect(ctx, zc.Servers())
	require.NoError(t, err)
	defer s.Close()
	m := zklock.NewMutex(s, root+"/held")
	require.NoError(t, m.Lock(ctx))

	p := start(t, "--servers", servers, "lock", "--nonblock", root+"/held", "--", "true")
	assert.Equal(t, exitNotAcquired, p.wait(t))
	assert.Contains(t, p.stderr.String(), "held by another")
	p = start(t, "--servers", servers, "lock", "--timeout", "300ms", root+"/held", "--", "true")
	assert.Equal(t, exitNotAcquired, p.wait(t))
	assert.Contains(t, p.stderr.String(), "--timeout")
	kids, _, err := zc.Admin(t).Children(root + "/held")
	require.NoError(t, err)
	assert.Len(t, kids, 1, "the refused runs left no node")
	require.NoError(t, m.Unlock(ctx))

	p = start(t, "--servers", servers, "lock", root+"/free", "--", "sh", "-c", "exit 7")
	assert.Equal(t, 7, p.wait(t), "COMMAND's status")
	p = start(t, "--servers", "127.0.0.1:1", "--session-timeout", "1s", "lock", root+"/x", "--", "true")
	assert.Equal(t, exitUnavailable, p.wait(t))
	assert.Contains(t, p.stderr.String(), "cannot reach ZooKeeper")
}

func TestIntegration_LockLostStopsCommandFirst(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	ps := zc.NewProxies(t)
	file := filepath.Join(t.TempDir(), "marks")
	now := `$(date +%s%N)`
	holderScript := fmt.Sprintf(`trap 'echo "stopped %[2]s" >> %[1]s; exit 0' TERM; echo "started %[2]s" >> %[1]s; while :; do sleep 0.05; done`, file, now)
	holder := start(t, "--servers", strings.Join(ps.Addrs(), ","), "--session-timeout", "2s",
		"lock", root+"/job", "--", "sh", "-c", holderScript)
	waitMark(t, file, "started ")
	other := start(t, "--servers", strings.Join(zc.Servers(), ","),
		"lock", root+"/job", "--", "sh", "-c", fmt.Sprintf(`echo "other %[2]s" >> %[1]s`, file, now))
	poll(t, "the second process to queue", func() bool {
		kids, _, err := zc.Admin(t).Children(root + "/job")
		require.NoError(t, err)
		return len(kids) == 2
	})

	ps.Blackhole()
	assert.Equal(t, exitLost, holder.wait(t), "stderr: %s", holder.stderr.String())
	assert.Contains(t, holder.stderr.String(), "lost lock")
	assert.Equal(t, 1, strings.Count(holder.stderr.String(), "zklock:"), "one prefix: %q", holder.stderr.String())
	assert.NotContains(t, holder.stderr.String(), "lock lost", "the cause does not repeat the message")
	t.Logf("holder's message: %s", holder.stderr.String())
	assert.Equal(t, 0, other.wait(t), "stderr: %s", other.stderr.String())
	stopped := field(t, waitMark(t, file, "stopped "), 1)
	started := field(t, waitMark(t, file, "other "), 1)
	assert.Less(t, stopped, started, "the holder's command is gone before the other's starts")
	t.Logf("holder's command stopped %v before the next command started", time.Duration(started-stopped))
}

func TestIntegration_ElectFailsOverWhenLeaderKilled(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	file := filepath.Join(t.TempDir(), "marks")
	servers := strings.Join(zc.Servers(), ",")
	script := fmt.Sprintf(`echo "lead $ZKLOCK_ID $$ $ZKLOCK_TOKEN" >> %s; exec sleep 60`, file)
	procs := map[string]*proc{}
	for _, id := range []string{"a", "b"} {
		procs[id] = start(t, "--servers", servers, "--session-timeout", "2s", "elect", "--id", id, root+"/leader", "--", "sh", "-c", script)
	}
	first := waitMark(t, file, "lead ")
	id := strings.Fields(first)[1]
	pid := field(t, first, 2)
	other := map[string]string{"a": "b", "b": "a"}[id]

	out, err := exec.Command(binary, "--servers", servers, "leader", root+"/leader").Output()
	require.NoError(t, err)
	assert.Equal(t, id, strings.TrimSpace(string(out)))

	require.NoError(t, procs[id].cmd.Process.Signal(syscall.SIGKILL))
	procs[id].wait(t)
	second := waitMark(t, file, "lead "+other+" ")
	assert.Greater(t, field(t, second, 3), field(t, first, 3), "the new term's token is larger")
	poll(t, "the killed leader's command to die with it", func() bool {
		return errors.Is(syscall.Kill(int(pid), 0), syscall.ESRCH)
	})

	require.NoError(t, procs[other].cmd.Process.Signal(syscall.SIGTERM))
	assert.Equal(t, 128+int(syscall.SIGTERM), procs[other].wait(t), "SIGTERM is forwarded; zklock exits with COMMAND's status")
}

// poll checks cond on a short tick until it holds, failing the test after
// zktesting.Timeout. It is for state outside ZooKeeper (files, processes) that
// offers no event to wait on.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(zktesting.Timeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestIntegration_HoldersAndLeader(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	servers := strings.Join(zc.Servers(), ",")
	ctx, cancel := context.WithTimeout(t.Context(), zktesting.Timeout)
	defer cancel()
	s, err := zklock.Connect(ctx, zc.Servers())
	require.NoError(t, err)
	defer s.Close()
	holder := zklock.NewMutex(s, root+"/lock", zklock.WithData([]byte("first")))
	require.NoError(t, holder.Lock(ctx))
	waiter := start(t, "--servers", servers, "lock", "--data", "second", root+"/lock", "--", "true")
	var out []byte
	poll(t, "holders to list both contenders", func() bool {
		out, err = exec.Command(binary, "--servers", servers, "holders", root+"/lock").Output()
		require.NoError(t, err)
		return strings.Count(string(out), "\n") == 3
	})
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	require.Len(t, lines, 3, string(out))
	assert.Contains(t, lines[1], "first")
	assert.Contains(t, lines[1], fmt.Sprintf("0x%x", s.SessionID()))
	assert.Contains(t, lines[2], "second")
	require.NoError(t, holder.Unlock(ctx))
	assert.Equal(t, 0, waiter.wait(t))

	_, err = zc.Admin(t).Create(root+"/nobody", nil, 0, zk.WorldACL(zk.PermAll))
	require.NoError(t, err, "an election path with no candidate")
	p := start(t, "--servers", servers, "leader", root+"/nobody")
	assert.Equal(t, exitNotAcquired, p.wait(t))
	assert.Contains(t, p.stderr.String(), "no leader")
	zc.DeleteNode(t, root+"/nobody")
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "missing command"},
		{[]string{"frobnicate"}, "unknown command"},
		{[]string{"lock"}, "missing PATH"},
		{[]string{"lock", "/x"}, "missing COMMAND"},
		{[]string{"lock", "x", "--", "true"}, "absolute"},
		{[]string{"lock", "--bogus", "/x", "--", "true"}, "not defined"},
		{[]string{"lock", "--nonblock", "--timeout", "1s", "/x", "--", "true"}, "not both"},
		{[]string{"lock", "--shared", "--limit", "2", "/x", "--", "true"}, "--shared or --limit, not both"},
		{[]string{"lock", "--limit", "0", "/x", "--", "true"}, "at least 1"},
		{[]string{"lock", "--limit", "two", "/x", "--", "true"}, "invalid value"},
		{[]string{"lock", "--grace", "9s", "/x", "--", "true"}, "too long"},
		{[]string{"lock", "--grace", "2s", "--loss-margin", "4s", "/x", "--", "true"}, "--grace 1s or less"},
		{[]string{"elect", "--loss-margin", "5s", "/x", "--", "true"}, "leaves no time for --grace"},
		{[]string{"lock", "--loss-margin", "-1s", "/x", "--", "true"}, "must be positive"},
		{[]string{"elect", "--grace", "0s", "/x", "--", "true"}, "must be positive"},
		{[]string{"--servers", "", "lock", "/x", "--", "true"}, "empty"},
		{[]string{"--session-timeout", "0s", "lock", "/x", "--", "true"}, "positive"},
		{[]string{"leader"}, "exactly one PATH"},
		{[]string{"holders", "a", "b"}, "exactly one PATH"},
		{[]string{"--servers", "zk1:99999", "leader", "/x"}, "not host, host:port"},
		{[]string{"lock", "/x", "--bogus", "--", "true"}, "not defined"},
		{[]string{"lock", "/x", "--session-timeout", "-1s", "true"}, "positive"},
		{[]string{"leader", "/x", "/y"}, "exactly one PATH"},
		{[]string{"help", "frob"}, "unknown command"},
		{[]string{"version", "x"}, "unexpected"},
		{[]string{"--servers", "a:1/bad/", "leader", "/x"}, "chroot"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tc.args, &stdout, &stderr)
			assert.Equal(t, exitUsage, code)
			assert.Contains(t, stderr.String(), tc.want)
			assert.Equal(t, 1, strings.Count(stderr.String(), "\n"), "one line: %q", stderr.String())
		})
	}
}

func TestHelp(t *testing.T) {
	for _, cmd := range []string{"lock", "elect", "leader", "holders"} {
		var stdout, stderr bytes.Buffer
		assert.Equal(t, 0, run([]string{cmd, "--help"}, &stdout, &stderr))
		assert.Contains(t, stdout.String(), "Example")
	}
	var stdout bytes.Buffer
	assert.Equal(t, 0, run([]string{"--help"}, &stdout, &bytes.Buffer{}))
	assert.Contains(t, stdout.String(), "Exit statuses")
}
