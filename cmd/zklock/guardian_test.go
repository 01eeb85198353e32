package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zklock/zklock/zktesting"
)

// procStat returns a process's state letter and process group from
// /proc/PID/stat; ok is false if there is no such process.
func procStat(pid int) (state byte, pgrp int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 3 {
		return 0, 0, false
	}
	pgrp, _ = strconv.Atoi(f[2])
	return f[0][0], pgrp, true
}

// alive reports whether pid runs: a zombie has ended (nobody may reap it:
// init on this kind of machine need not).
func alive(pid int) bool {
	st, _, ok := procStat(pid)
	return ok && st != 'Z'
}

// group lists the live processes of process group pgid.
func group(pgid int) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, pg, ok := procStat(pid); ok && pg == pgid && st != 'Z' {
			out = append(out, pid)
		}
	}
	return out
}

// within polls cond for at most d; /proc offers no event to wait on.
func within(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

func readPid(t *testing.T, file string) int {
	t.Helper()
	var pid int
	poll(t, "pid file "+file, func() bool {
		b, err := os.ReadFile(file)
		if err != nil || !strings.HasSuffix(string(b), "\n") {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	})
	return pid
}

// TestIntegration_NothingOutlivesZklock kills or signals zklock while
// COMMAND runs a pipeline, a background job and a process that left the
// group with setsid: a second after zklock has exited, none of them runs,
// and for a catchable signal the lock was released.
func TestIntegration_NothingOutlivesZklock(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	servers := strings.Join(zc.Servers(), ",")
	for _, sub := range []string{"lock", "elect"} {
		for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGTERM} {
			name := map[syscall.Signal]string{syscall.SIGKILL: "KILL", syscall.SIGHUP: "HUP", syscall.SIGQUIT: "QUIT", syscall.SIGTERM: "TERM"}[sig]
			t.Run(sub+"/SIG"+name, func(t *testing.T) {
				dir := t.TempDir()
				pidFile, escFile := filepath.Join(dir, "pid"), filepath.Join(dir, "escaped")
				path := fmt.Sprintf("%s/%s-%d", root, sub, int(sig))
				script := fmt.Sprintf(`setsid sh -c 'echo $$ > %s; exec sleep 600' &
sleep 600 | cat &
echo $$ > %s
sleep 600`, escFile, pidFile)
				p := start(t, "--servers", servers, sub, "--grace", "3s", path, "--", "sh", "-c", script)
				pgid := readPid(t, pidFile)
				esc := readPid(t, escFile)
				t.Cleanup(func() {
					_ = syscall.Kill(-pgid, syscall.SIGKILL)
					_ = syscall.Kill(esc, syscall.SIGKILL)
				})
				poll(t, "COMMAND's group to run sh, the pipeline and sleep", func() bool {
					return len(group(pgid)) >= 4 && alive(esc)
				})
				before := group(pgid)

				require.NoError(t, p.cmd.Process.Signal(sig))
				assert.Equal(t, 128+int(sig), p.wait(t), "zklock's status; stderr: %s", p.stderr.String())
				exited := time.Now()
				gone := within(time.Second, func() bool { return len(group(pgid)) == 0 && !alive(esc) })
				assert.True(t, gone, "a second after zklock exited, COMMAND's processes %v (and %d, which left the group) are gone; left: %v, escaped alive: %v",
					before, esc, group(pgid), alive(esc))
				t.Logf("all of COMMAND's processes gone %v after zklock exited", time.Since(exited).Round(time.Millisecond))
				kids, _, err := zc.Admin(t).Children(path)
				if !errors.Is(err, zk.ErrNoNode) { // the empty lock directory, a container, may be gone already
					require.NoError(t, err)
				}
				if sig != syscall.SIGKILL {
					assert.Empty(t, kids, "zklock released the %s before exiting", sub)
				}
				for _, k := range kids {
					zc.DeleteNode(t, path+"/"+k) // the killed zklock's session has not expired yet
				}
			})
		}
	}
}

// TestIntegration_LeftoversStoppedBeforeRelease: what COMMAND leaves
// running when it exits, or when it ignores SIGTERM, is dead before zklock
// releases the lock and exits.
func TestIntegration_LeftoversStoppedBeforeRelease(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	servers := strings.Join(zc.Servers(), ",")
	for _, tc := range []struct {
		name   string
		script string
		signal bool // send SIGTERM to zklock once the background job runs
		code   int
	}{
		// The job ignores SIGTERM (inherited across exec) and needs SIGKILL.
		{"exit leaves a job", `(trap '' TERM; exec sleep 600) & echo $! > %s; exit 3`, false, 3},
		{"TERM ignored", `trap '' TERM; sleep 600 & echo $! > %s; while :; do sleep 1; done`, true, 128 + int(syscall.SIGKILL)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			bgFile := filepath.Join(dir, "bg")
			path := root + "/" + strings.ReplaceAll(tc.name, " ", "-")
			p := start(t, "--servers", servers, "lock", "--grace", "300ms", path, "--", "sh", "-c", fmt.Sprintf(tc.script, bgFile))
			bg := readPid(t, bgFile)
			t.Cleanup(func() { _ = syscall.Kill(bg, syscall.SIGKILL) })
			if tc.signal {
				poll(t, "the background job to run", func() bool { return alive(bg) })
				require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
			}
			assert.Equal(t, tc.code, p.wait(t), "stderr: %s", p.stderr.String())
			assert.False(t, alive(bg), "the background job is dead when zklock exits")
			kids, _, err := zc.Admin(t).Children(path)
			if !errors.Is(err, zk.ErrNoNode) { // the empty lock directory, a container, may be gone already
				require.NoError(t, err)
			}
			assert.Empty(t, kids, "the lock is released")
		})
	}
}

// TestIntegration_GuardianKilled: if the guardian itself is killed, zklock
// kills COMMAND's process group, says so, and releases the lock.
func TestIntegration_GuardianKilled(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	pidFile := filepath.Join(t.TempDir(), "pid")
	p := start(t, "--servers", strings.Join(zc.Servers(), ","), "lock", root+"/g", "--", "sh", "-c",
		fmt.Sprintf("sleep 600 | cat & echo $$ > %s; sleep 600", pidFile))
	pgid := readPid(t, pidFile)
	t.Cleanup(func() { _ = syscall.Kill(-pgid, syscall.SIGKILL) })
	poll(t, "COMMAND's group to run", func() bool { return len(group(pgid)) >= 4 })
	guard, _, ok := procParent(pgid)
	require.True(t, ok)
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", guard))
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(cmdline), guardianName+"\x00"), "COMMAND's parent is the guardian: %q", cmdline)

	require.NoError(t, syscall.Kill(guard, syscall.SIGKILL))
	assert.Equal(t, 128+int(syscall.SIGKILL), p.wait(t))
	assert.Contains(t, p.stderr.String(), "guardian process was killed")
	assert.Empty(t, group(pgid), "COMMAND's group is gone when zklock exits")
	kids, _, err := zc.Admin(t).Children(root + "/g")
	if !errors.Is(err, zk.ErrNoNode) { // the empty lock directory, a container, may be gone already
		require.NoError(t, err)
	}
	assert.Empty(t, kids, "the lock is released")
}

// procParent returns a process's parent pid.
func procParent(pid int) (int, byte, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	ppid, err := strconv.Atoi(f[1])
	return ppid, f[0][0], err == nil
}

// TestIntegration_NohupKeepsHangupIgnored: started with SIGHUP ignored, as
// nohup does, zklock and COMMAND both survive SIGHUP.
func TestIntegration_NohupKeepsHangupIgnored(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	pidFile := filepath.Join(t.TempDir(), "pid")
	p := startProg(t, "sh", "-c", `trap '' HUP; exec "$0" "$@"`, binary, "--servers", strings.Join(zc.Servers(), ","),
		"lock", root+"/n", "--", "sh", "-c", fmt.Sprintf("echo $$ > %s; exec sleep 600", pidFile))
	pid := readPid(t, pidFile)
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	poll(t, "COMMAND to become sleep", func() bool {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		return strings.TrimSpace(string(b)) == "sleep"
	})
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGHUP))
	require.NoError(t, syscall.Kill(-pid, syscall.SIGHUP))
	// SIGTERM, sent after the hangups, is handled after them: COMMAND
	// survived them if it dies of SIGTERM.
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	assert.Equal(t, 128+int(syscall.SIGTERM), p.wait(t), "COMMAND ended by the SIGTERM, not the SIGHUP; stderr: %s", p.stderr.String())
}
