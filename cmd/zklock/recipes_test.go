package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zklock/zklock/zktesting"
)

// holdersJSON runs "zklock holders --json path".
func holdersJSON(t *testing.T, servers, path string) []holderJSON {
	t.Helper()
	out, err := exec.Command(binary, "--servers", servers, "holders", "--json", path).Output()
	require.NoError(t, err)
	var rows []holderJSON
	require.NoError(t, json.Unmarshal(out, &rows), string(out))
	return rows
}

func kinds(rows []holderJSON) []string {
	out := make([]string, 0, len(rows))
	for _, r := range rows {
		out = append(out, r.Kind)
	}
	return out
}

// gated is a COMMAND that appends "start NAME TOKEN NODE" to file, waits
// until gate exists, then appends "end NAME TOKEN".
func gated(file, gate, name string) []string {
	return []string{"sh", "-c", fmt.Sprintf(
		`echo "start %[3]s $ZKLOCK_TOKEN $ZKLOCK_NODE" >> %[1]s; while [ ! -e %[2]s ]; do sleep 0.02; done; echo "end %[3]s $ZKLOCK_TOKEN" >> %[1]s`,
		file, gate, name)}
}

// countPrefix counts the lines of file that start with prefix.
func countPrefix(t *testing.T, file, prefix string) int {
	t.Helper()
	n := 0
	for _, l := range marks(t, file) {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

// TestIntegration_LockSharedReadersTogetherWriterWaits: two --shared runs
// hold PATH at once while an exclusive run waits for both; a --shared
// --nonblock run behind the queued writer is refused (fair queue), as is an
// exclusive --nonblock run while readers hold; holders lists the kinds.
func TestIntegration_LockSharedReadersTogetherWriterWaits(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	dir := t.TempDir()
	file, gate := filepath.Join(dir, "marks"), filepath.Join(dir, "gate")
	servers := strings.Join(zc.Servers(), ",")
	path := root + "/catalog"

	var readers []*proc
	for _, name := range []string{"r1", "r2"} {
		args := append([]string{"--servers", servers, "lock", "--shared", "--data", name, path, "--"}, gated(file, gate, name)...)
		readers = append(readers, start(t, args...))
	}
	poll(t, "both readers' commands to run at once", func() bool { return countPrefix(t, file, "start ") == 2 })
	r1 := waitMark(t, file, "start r1 ")
	assert.Contains(t, r1, path+"/_c_", "ZKLOCK_NODE is the read node")
	assert.Contains(t, r1, "-__READ__", "the read node has Curator's read-lock name")

	p := start(t, "--servers", servers, "lock", "--nonblock", path, "--", "true")
	assert.Equal(t, exitNotAcquired, p.wait(t), "an exclusive --nonblock run while readers hold")
	assert.Contains(t, p.stderr.String(), "held by another")

	writer := start(t, "--servers", servers, "lock", "--data", "w", path, "--", "sh", "-c",
		fmt.Sprintf(`echo "start w $ZKLOCK_TOKEN" >> %s`, file))
	var rows []holderJSON
	poll(t, "the writer to queue behind the readers", func() bool {
		rows = holdersJSON(t, servers, path)
		return len(rows) == 3
	})
	assert.Equal(t, []string{"read", "read", "write"}, kinds(rows))
	assert.ElementsMatch(t, []string{"r1", "r2"}, []string{rows[0].Data, rows[1].Data}, "the readers first")
	assert.Equal(t, "w", rows[2].Data, "the writer last")
	out, err := exec.Command(binary, "--servers", servers, "holders", path).Output()
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	require.Len(t, lines, 4, string(out))
	assert.Regexp(t, `^POS\s+KIND\s+NODE\s+SESSION\s+DATA$`, lines[0])
	assert.Regexp(t, `^0\s+read\s+_c_\S+-__READ__\d+\s+0x[0-9a-f]+\s+r[12]$`, lines[1])
	assert.Regexp(t, `^2\s+write\s+_c_\S+-lock-\d+\s+0x[0-9a-f]+\s+w$`, lines[3])

	p = start(t, "--servers", servers, "lock", "--shared", "--nonblock", path, "--", "true")
	assert.Equal(t, exitNotAcquired, p.wait(t), "a reader does not pass a queued writer")
	assert.Contains(t, p.stderr.String(), "writer")
	assert.Zero(t, countPrefix(t, file, "start w "), "the writer waits while readers hold")

	require.NoError(t, os.WriteFile(gate, nil, 0o600))
	for _, r := range readers {
		assert.Equal(t, 0, r.wait(t), "stderr: %s", r.stderr.String())
	}
	assert.Equal(t, 0, writer.wait(t), "stderr: %s", writer.stderr.String())
	lines = marks(t, file)
	require.Len(t, lines, 5, "%v", lines)
	assert.True(t, strings.HasPrefix(lines[4], "start w "), "the writer runs after both readers ended: %v", lines)
	w := field(t, lines[4], 2)
	for _, l := range lines[:4] {
		assert.Greater(t, w, field(t, l, 2), "the writer's token is above the readers': %v", lines)
	}
}

// TestIntegration_LockLimitRunsAtMostN: with --limit 2, two COMMANDs run
// at once and a third waits; --nonblock is refused while none is free;
// holders lists the leases and the waiting acquirer; each COMMAND gets its
// lease's node and token.
func TestIntegration_LockLimitRunsAtMostN(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	dir := t.TempDir()
	file, gate := filepath.Join(dir, "marks"), filepath.Join(dir, "gate")
	servers := strings.Join(zc.Servers(), ",")
	path := root + "/pool"

	var procs []*proc
	for i := range 2 {
		name := fmt.Sprintf("p%d", i)
		args := append([]string{"--servers", servers, "lock", "--limit", "2", "--data", name, path, "--"}, gated(file, gate, name)...)
		procs = append(procs, start(t, args...))
	}
	poll(t, "two commands to run at once", func() bool { return countPrefix(t, file, "start ") == 2 })
	p0 := waitMark(t, file, "start p0 ")
	assert.Regexp(t, `^start p0 \d+ `+path+`/leases/_c_\S+-lease-\d+$`, p0, "ZKLOCK_TOKEN and ZKLOCK_NODE are the lease's")

	args := append([]string{"--servers", servers, "lock", "--limit", "2", "--data", "p2", path, "--"}, gated(file, gate, "p2")...)
	procs = append(procs, start(t, args...))
	var rows []holderJSON
	poll(t, "the third to wait for a lease", func() bool {
		rows = holdersJSON(t, servers, path)
		return len(rows) == 4
	})
	assert.Equal(t, []string{"lease", "lease", "lease", "acquirer"}, kinds(rows),
		"two leases held, the third acquirer's lease node waits while it holds the internal lock")
	assert.Equal(t, "p2", rows[3].Data)

	p := start(t, "--servers", servers, "lock", "--limit", "2", "--nonblock", path, "--", "true")
	assert.Equal(t, exitNotAcquired, p.wait(t))
	assert.Contains(t, p.stderr.String(), "all 2 leases")
	p = start(t, "--servers", servers, "lock", "--limit", "2", "--timeout", "300ms", path, "--", "true")
	assert.Equal(t, exitNotAcquired, p.wait(t))
	assert.Contains(t, p.stderr.String(), "lease on "+path+" not acquired within --timeout")
	assert.Equal(t, 2, countPrefix(t, file, "start "), "no third COMMAND while two leases are held")

	require.NoError(t, os.WriteFile(gate, nil, 0o600))
	for _, p := range procs {
		assert.Equal(t, 0, p.wait(t), "stderr: %s", p.stderr.String())
	}
	running, most := 0, 0
	for _, l := range marks(t, file) {
		if strings.HasPrefix(l, "start ") {
			running++
		} else {
			running--
		}
		most = max(most, running)
	}
	assert.Equal(t, 2, most, "at most two COMMANDs ran at once: %v", marks(t, file))
	assert.Equal(t, 3, countPrefix(t, file, "end "))
}

// TestIntegration_LockRecipesLost: a lease whose session is cut off, and a
// read lock whose node an operator deletes, stop COMMAND and exit 76.
func TestIntegration_LockRecipesLost(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "marks")
	script := func(name string) string {
		return fmt.Sprintf(`trap 'echo "stopped %[2]s" >> %[1]s; exit 0' TERM; echo "started %[2]s $ZKLOCK_NODE" >> %[1]s; while :; do sleep 0.05; done`, file, name)
	}

	ps := zc.NewProxies(t)
	lease := start(t, "--servers", strings.Join(ps.Addrs(), ","), "--session-timeout", "2s",
		"lock", "--limit", "3", root+"/pool", "--", "sh", "-c", script("lease"))
	reader := start(t, "--servers", strings.Join(zc.Servers(), ","),
		"lock", "--shared", root+"/rw", "--", "sh", "-c", script("reader"))
	waitMark(t, file, "started lease ")
	node := strings.Fields(waitMark(t, file, "started reader "))[2]

	ps.Blackhole()
	zc.DeleteNode(t, node)
	assert.Equal(t, exitLost, lease.wait(t), "stderr: %s", lease.stderr.String())
	assert.Contains(t, lease.stderr.String(), "lost lease "+root+"/pool while COMMAND ran")
	assert.Equal(t, 1, strings.Count(lease.stderr.String(), "zklock:"), "one prefix: %q", lease.stderr.String())
	assert.Equal(t, exitLost, reader.wait(t), "stderr: %s", reader.stderr.String())
	assert.Contains(t, reader.stderr.String(), "lost read lock "+root+"/rw while COMMAND ran")
	t.Logf("messages: %s%s", lease.stderr.String(), reader.stderr.String())
	waitMark(t, file, "stopped lease")
	waitMark(t, file, "stopped reader")
	// The cut-off session's lease node goes when the server expires it.
	ps.Heal()
	poll(t, "the lost lease's node to expire", func() bool {
		kids, _, err := zc.Admin(t).Children(root + "/pool/leases")
		return err != nil || len(kids) == 0
	})
}

// TestIntegration_LockLimitInterruptedWhileWaiting: a --limit run waiting
// for a lease exits 128+N on a signal and leaves no node behind.
func TestIntegration_LockLimitInterruptedWhileWaiting(t *testing.T) {
	integration(t)
	zc := zktesting.Shared(t)
	root := zc.Root(t)
	dir := t.TempDir()
	file, gate := filepath.Join(dir, "marks"), filepath.Join(dir, "gate")
	servers := strings.Join(zc.Servers(), ",")
	path := root + "/one"

	holder := start(t, append([]string{"--servers", servers, "lock", "--limit", "1", path, "--"}, gated(file, gate, "h")...)...)
	waitMark(t, file, "start h ")
	waiter := start(t, "--servers", servers, "lock", "--limit", "1", path, "--", "true")
	poll(t, "the second run to wait for the lease", func() bool { return len(holdersJSON(t, servers, path)) == 3 })
	require.NoError(t, waiter.cmd.Process.Signal(syscall.SIGTERM))
	assert.Equal(t, 128+int(syscall.SIGTERM), waiter.wait(t), "stderr: %s", waiter.stderr.String())
	assert.Contains(t, waiter.stderr.String(), "before COMMAND started")
	poll(t, "the interrupted run's nodes to go", func() bool { return len(holdersJSON(t, servers, path)) == 1 })
	require.NoError(t, os.WriteFile(gate, nil, 0o600))
	assert.Equal(t, 0, holder.wait(t), "stderr: %s", holder.stderr.String())
}
