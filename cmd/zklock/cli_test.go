package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zklock/zklock"
	"github.com/zklock/zklock/zktesting"
)

func TestParseConnect(t *testing.T) {
	for _, tc := range []struct {
		in      string
		servers []string
		chroot  string
		err     string
	}{
		{"zk1:2181,zk2:2182", []string{"zk1:2181", "zk2:2182"}, "", ""},
		{"zk1,zk2:2182/app/locks", []string{"zk1:2181", "zk2:2182"}, "/app/locks", ""},
		{"10.0.0.1", []string{"10.0.0.1:2181"}, "", ""},
		{"[::1]:2190,[fe80::1]", []string{"[::1]:2190", "[fe80::1]:2181"}, "", ""},
		{" zk1 , zk2 /", []string{"zk1:2181", "zk2:2181"}, "", ""},
		{"zk1:0", nil, "", "not host"},
		{"::1", nil, "", "not host"},
		{"/chroot", nil, "", "empty"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			servers, chroot, err := parseConnect(tc.in)
			if tc.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.servers, servers)
			assert.Equal(t, tc.chroot, chroot)
		})
	}
}

func TestHelpAndVersion(t *testing.T) {
	var out bytes.Buffer
	assert.Equal(t, 0, run([]string{"help", "lock"}, &out, &bytes.Buffer{}))
	assert.Equal(t, lockUsage, out.String(), `"zklock help lock" shows the lock help`)
	out.Reset()
	assert.Equal(t, 0, run([]string{"lock", "--help"}, &out, &bytes.Buffer{}))
	assert.Equal(t, lockUsage, out.String())

	b, err := exec.Command(binary, "version").Output()
	require.NoError(t, err)
	assert.Regexp(t, `^zklock \S+ .*go1\.`, string(b), "module version, VCS revision if any, Go version")
	m, err := exec.Command("go", "version", "-m", binary).Output()
	require.NoError(t, err)
	for _, l := range strings.Split(string(m), "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == "build" && strings.HasPrefix(f[1], "vcs.revision=") {
			assert.Contains(t, string(b), strings.TrimPrefix(f[1], "vcs.revision="), "the VCS revision the binary was built from")
		}
	}
}

// TestIntegration_FlagsAnywhere: global flags after the command, and a
// flag after PATH, are parsed, never run as COMMAND; a connect string's
// chroot applies to every path.
func TestIntegration_FlagsAnywhere(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	file := filepath.Join(t.TempDir(), "out")
	p := start(t, "lock", "--servers", zc.Servers()[0]+root, "/job", "--timeout", "20s", "--data", "flags",
		"--", "sh", "-c", `echo "$ZKLOCK_PATH $ZKLOCK_NODE" > `+file)
	require.Equal(t, 0, p.wait(t), "stderr: %s", p.stderr.String())
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	assert.Regexp(t, `^/job /job/_c_\S+-lock-0000000000\n$`, string(b), "paths are the chroot's")
	_, _, err = zc.Admin(t).Children(root + "/job")
	if !errors.Is(err, zk.ErrNoNode) {
		require.NoError(t, err, "the lock directory was made under the chroot")
	}

	p = start(t, "lock", root+"/job", "--servers", strings.Join(zc.Servers(), ","), "true", "--timeout")
	assert.Equal(t, 0, p.wait(t), "words after COMMAND's first are COMMAND's; stderr: %s", p.stderr.String())
}

// TestIntegration_ExitStatusByCause: 64 for a PATH the library or the
// server rejects, 77 for a server refusal, 66 for leader and holders on a
// missing PATH, 69 for an unresolvable host; one prefix per message.
func TestIntegration_ExitStatusByCause(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	servers := strings.Join(zc.Servers(), ",")
	admin := zc.Admin(t)
	_, err := admin.Create(root+"/guarded", nil, 0, zk.DigestACL(zk.PermAll, "u", "p"))
	require.NoError(t, err)
	t.Cleanup(func() {
		require.NoError(t, admin.AddAuth("digest", []byte("u:p")))
		_ = admin.Delete(root+"/guarded/x", -1)
		_ = admin.Delete(root+"/guarded", -1)
	})
	_, err = admin.Create(root+"/eph", nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
	require.NoError(t, err)
	t.Cleanup(func() { _ = admin.Delete(root+"/eph", -1) })

	p := startEnv(t, []string{"ZKLOCK_AUTH=u:p"}, binary, "--servers", servers, "lock", root+"/guarded/x", "--", "true")
	assert.Equal(t, 0, p.wait(t), "with $ZKLOCK_AUTH the ACL lets zklock in; stderr: %s", p.stderr.String())

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"lock", root + "//x", "--", "true"}, exitUsage, `lock: invalid PATH "` + root + `//x": empty component`},
		{[]string{"lock", root + "/eph/x", "--", "true"}, exitUsage, "ZooKeeper rejected PATH"},
		{[]string{"lock", root + "/guarded/x", "--", "true"}, exitNoPerm, "ZooKeeper refused access"},
		{[]string{"leader", root + "/guarded"}, exitNoPerm, "ZooKeeper refused access"},
		{[]string{"elect", root + "/x/", "--", "true"}, exitUsage, `elect: invalid PATH "` + root + `/x/": must not end with /`},
		{[]string{"elect", root + "/guarded/e", "--", "true"}, exitNoPerm, "elect: ZooKeeper refused access"},
		{[]string{"lock", root + "/run", "--", "/nonexistent/command"}, 127, "cannot run /nonexistent/command"},
		{[]string{"holders", root + "/nope"}, exitNoPath, "holders: no such path " + root + "/nope"},
		{[]string{"leader", root + "/nope"}, exitNoPath, "leader: no such path " + root + "/nope"},
		{[]string{"--servers", "nosuchhost.invalid", "leader", "/x"}, exitUnavailable, `cannot resolve ZooKeeper host "nosuchhost.invalid"`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			args := append([]string{"--servers", servers, "--session-timeout", "2s"}, tc.args...)
			p := start(t, args...)
			assert.Equal(t, tc.code, p.wait(t), "stderr: %s", p.stderr.String())
			msg := p.stderr.String()
			assert.Contains(t, msg, tc.want)
			assert.Equal(t, 1, strings.Count(msg, "zklock:"), "one prefix: %q", msg)
			assert.Equal(t, 1, strings.Count(msg, "\n"), "one line: %q", msg)
		})
	}
}

// startOut is start with COMMAND's... zklock's standard output readable
// line by line.
func startOut(t *testing.T, args ...string) (*proc, *bufio.Scanner) {
	t.Helper()
	pr, pw, err := os.Pipe()
	require.NoError(t, err)
	p := &proc{cmd: exec.Command(binary, args...), done: make(chan struct{})}
	p.cmd.Stdout = pw
	p.cmd.Stderr = &p.stderr
	require.NoError(t, p.cmd.Start())
	pw.Close()
	go func() {
		err := p.cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			p.code = ee.ExitCode()
		} else if err != nil {
			p.code = -1
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		pr.Close()
	})
	return p, bufio.NewScanner(pr)
}

// TestIntegration_JSONAndWatch: holders --json, leader --json, and leader
// --watch streaming each new leader until interrupted.
func TestIntegration_JSONAndWatch(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	servers := strings.Join(zc.Servers(), ",")
	ctx := t.Context()
	s, err := zklock.Connect(ctx, zc.Servers())
	require.NoError(t, err)
	defer s.Close()
	one := zklock.NewElection(s, root+"/e", zklock.WithValue([]byte("one")))
	require.NoError(t, one.Campaign(ctx))

	out, err := exec.Command(binary, "--servers", servers, "holders", "--json", root+"/e").Output()
	require.NoError(t, err)
	var rows []holderJSON
	require.NoError(t, json.Unmarshal(out, &rows), string(out))
	require.Len(t, rows, 1)
	assert.Equal(t, "one", rows[0].Data)
	assert.Equal(t, "candidate", rows[0].Kind)

	out, err = exec.Command(binary, "--servers", servers, "leader", root+"/e", "--json").Output()
	require.NoError(t, err)
	var l leaderJSON
	require.NoError(t, json.Unmarshal(out, &l), string(out))
	assert.Equal(t, leaderJSON{"one", one.Key(), one.Token()}, l)

	w, lines := startOut(t, "--servers", servers, "leader", "--watch", root+"/e")
	next := func() string {
		got := make(chan string, 1)
		go func() {
			if lines.Scan() {
				got <- lines.Text()
			}
			close(got)
		}()
		select {
		case l := <-got:
			return l
		case <-time.After(zktesting.Timeout):
			t.Fatal("no leader line")
		}
		return ""
	}
	assert.Equal(t, "one", next())
	two := zklock.NewElection(s, root+"/e", zklock.WithValue([]byte("two")))
	campaigned := make(chan error, 1)
	go func() { campaigned <- two.Campaign(ctx) }()
	poll(t, "two to queue", func() bool {
		kids, _, err := zc.Admin(t).Children(root + "/e")
		require.NoError(t, err)
		return len(kids) == 2
	})
	require.NoError(t, one.Resign(ctx))
	require.NoError(t, <-campaigned)
	assert.Equal(t, "two", next())
	require.NoError(t, w.cmd.Process.Signal(syscall.SIGINT))
	assert.Equal(t, 0, w.wait(t), "interrupting --watch is its normal end; stderr: %s", w.stderr.String())
	require.NoError(t, two.Resign(ctx))
}

// TestREADMETellsTheTruth: README lists every exit status and every
// variable COMMAND gets; make demo runs the demo README describes; the
// quick start's Connect has a deadline.
func TestREADMETellsTheTruth(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	readme := string(b)
	for _, code := range []int{exitUsage, exitNoPath, exitUnavailable, exitSoftware, exitNotAcquired, exitLost, exitNoPerm} {
		assert.Contains(t, readme, "| "+strconv.Itoa(code)+" |", "README's exit status table has %d", code)
		assert.Contains(t, globalUsage, "  "+strconv.Itoa(code)+"  ", "zklock help lists exit status %d", code)
	}
	for _, src := range []string{"lock.go", "elect.go"} {
		code, err := os.ReadFile(src)
		require.NoError(t, err)
		for _, v := range regexp.MustCompile(`"(ZKLOCK_[A-Z]+)=`).FindAllStringSubmatch(string(code), -1) {
			assert.Contains(t, readme, "`"+v[1]+"`", "README lists %s, which %s gives COMMAND", v[1], src)
		}
	}
	mk, err := os.ReadFile("../../Makefile")
	require.NoError(t, err)
	assert.Regexp(t, `(?m)^demo:\n\t.* run \./examples/contention`, string(mk), "make demo runs the contention demo")
	assert.Contains(t, readme, "make demo   # a live demo: workers contend for a lock, one holder is cut off")
	assert.Regexp(t, `context\.WithTimeout\(ctx, [^)]+\)\ns, err := zklock\.Connect\(cctx`, readme, "the quick start's Connect has a deadline")
	assert.NotContains(t, readme, "go install github.com/zklock/zklock/cmd/zklock@latest\n", "the published install line is not given as working yet")
}

// TestIntegration_BenchForOperators: a short bench on the test server
// queues no 10,000 waiters unless asked, keeps within its duration, prints
// no project goals and no ratio legend without a baseline, says what its
// counts count, and writes JSON to standard output with --json -.
func TestIntegration_BenchForOperators(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*zktesting.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "--servers", strings.Join(zc.Direct(), ","),
		"bench", "--duration", "300ms", "--sessions", "2", "--json", "-")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "stderr: %s", stderr.String())
	var rep struct {
		Started, Finished time.Time
		Memory            *json.RawMessage `json:"memory"`
		Failover          struct{ Handovers int }
	}
	require.NoError(t, json.Unmarshal(out, &rep), "standard output is the JSON alone")
	assert.Nil(t, rep.Memory, "no memory scenario unless --memory")
	took := rep.Finished.Sub(rep.Started)
	t.Logf("bench with --duration 300ms took %v", took)
	// Seven timed scenarios, each bounded by the duration, plus warm-ups and
	// setup: far below the minute a 10,000-waiter queue takes.
	assert.Less(t, took, 20*time.Second, "the duration bounds every scenario")
	table := stderr.String()
	assert.Contains(t, table, fmt.Sprintf("failover, %d handovers", rep.Failover.Handovers))
	assert.Contains(t, table, "read-write, 8 sessions, 90% reads")
	assert.Contains(t, table, "semaphore, 8 sessions, 3 leases")
	assert.NotContains(t, table, "target")
	assert.NotContains(t, table, "ratio", "the ratio legend comes with --baseline")
	assert.NotContains(t, table, "memory,")
}

func TestParseArgs(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		pos, rest []string
		timeout   time.Duration
	}{
		{[]string{"/a", "--", "true"}, []string{"/a"}, []string{"true"}, 0},
		{[]string{"/a", "true", "--timeout", "1s"}, []string{"/a"}, []string{"true", "--timeout", "1s"}, 0},
		{[]string{"/a", "--timeout", "1s", "--", "true"}, []string{"/a"}, []string{"true"}, time.Second},
		{[]string{"--timeout", "1s", "/a", "sh", "-c", "x"}, []string{"/a"}, []string{"sh", "-c", "x"}, time.Second},
		{[]string{"--", "/a", "--timeout"}, []string{"/a"}, []string{"--timeout"}, 0},
		{[]string{"/a", "--timeout=2s"}, []string{"/a"}, nil, 2 * time.Second},
		{[]string{"/a", "--", "--", "x"}, []string{"/a"}, []string{"--", "x"}, 0},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			g := &globals{serversRaw: "127.0.0.1", sessionTimeout: 10 * time.Second, stdout: io.Discard, stderr: io.Discard}
			fs := newFlags(g, "lock", lockUsage)
			timeout := fs.Duration("timeout", 0, "")
			pos, rest, err := parseArgs(fs, tc.args, 1)
			require.NoError(t, err)
			assert.Equal(t, tc.pos, pos)
			if len(tc.rest) == 0 {
				assert.Empty(t, rest)
			} else {
				assert.Equal(t, tc.rest, rest)
			}
			assert.Equal(t, tc.timeout, *timeout)
		})
	}
}
