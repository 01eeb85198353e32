package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Goals the report is checked against, all relative to go-zookeeper's
// zk.Lock in the same run, so they need a baseline. They are reported, not
// enforced.
const (
	goalUncontendedRatio = 1.10 // zklock ops/s ÷ zk.Lock ops/s, at least
	goalContendedRatio   = 1.2  // acquisitions/s ÷ zk.Lock's, at least, at every size
	goalManyLocksRatio   = 1.05 // ops/s ÷ zk.Lock's, at least
	goalHandoffRatio     = 0.9  // hand-off p50 ÷ zk.Lock's, at most, at every size
	goalExtraRequests    = 0.1  // requests per acquisition over zk.Lock's, at most, at every size
	goalWaiterRatio      = 1.3  // bytes per waiting Lock call ÷ zk.Lock's, at most
)

// targets checks the figures against the goals; without a baseline there
// is nothing to check against.
func targets(r *Report) []Target {
	var out []Target
	add := func(name, goal string, measured, limit float64, atLeast bool) {
		met := measured <= limit
		if atLeast {
			met = measured >= limit
		}
		out = append(out, Target{Name: name, Goal: goal, Measured: measured, Limit: limit, Met: met})
	}
	if z := r.Uncontended.ZkLock; z != nil && z.OpsPerSec > 0 {
		add("uncontended", fmt.Sprintf("ops/s ≥ %.2f× zk.Lock", goalUncontendedRatio),
			r.Uncontended.Zklock.OpsPerSec/z.OpsPerSec, goalUncontendedRatio, true)
	}
	for _, c := range r.Contended {
		z := c.ZkLock
		if z == nil || z.AcquisitionsPerSec <= 0 {
			continue
		}
		n := strconv.Itoa(c.Sessions)
		add("contended "+n, fmt.Sprintf("acquisitions/s ≥ %.1f× zk.Lock", goalContendedRatio),
			c.Zklock.AcquisitionsPerSec/z.AcquisitionsPerSec, goalContendedRatio, true)
		if z.Handoff.P50Ms > 0 {
			add("hand-off, "+n+" sessions", fmt.Sprintf("p50 ≤ %.1f× zk.Lock", goalHandoffRatio),
				c.Zklock.Handoff.P50Ms/z.Handoff.P50Ms, goalHandoffRatio, false)
		}
		add("requests, "+n+" sessions", fmt.Sprintf("per acquisition ≤ zk.Lock's + %.1f", goalExtraRequests),
			c.Zklock.Requests.PerCycle, z.Requests.PerCycle+goalExtraRequests, false)
	}
	if z := r.ManyLocks.ZkLock; z != nil && z.OpsPerSec > 0 {
		add("many locks", fmt.Sprintf("ops/s ≥ %.2f× zk.Lock", goalManyLocksRatio),
			r.ManyLocks.Zklock.OpsPerSec/z.OpsPerSec, goalManyLocksRatio, true)
	}
	if m := r.Memory; m != nil && m.ZkLock != nil && m.ZkLock.BytesPerWaiter > 0 {
		add("waiter memory", fmt.Sprintf("heap+stack ≤ %.1f× zk.Lock per waiter", goalWaiterRatio),
			m.Zklock.BytesPerWaiter/m.ZkLock.BytesPerWaiter, goalWaiterRatio, false)
	}
	return out
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes a header naming the server and settings, then one
// aligned table of every figure. With a baseline it has a zk.Lock column
// and a ratio column, zklock ÷ zk.Lock of each row's first figure. The
// goals in Targets are left out: they are the project's, in the JSON and
// BENCHMARKS.md, not a verdict on the operator's ensemble.
func (r *Report) WriteTable(w io.Writer) error {
	baseline := r.Settings.Baseline
	var hdr strings.Builder
	fmt.Fprintf(&hdr, "ZooKeeper %s at %s", r.ZooKeeperVersion, strings.Join(r.Servers, ","))
	if r.Settings.LocalServer {
		hdr.WriteString(" (local standalone, fsync on)")
	}
	fmt.Fprintf(&hdr, "\nclient: %s %s/%s, %d CPUs, GOMAXPROCS %d\n", r.Environment.GoVersion, r.Environment.GOOS,
		r.Environment.GOARCH, r.Environment.NumCPU, r.Environment.GOMAXPROCS)
	fmt.Fprintf(&hdr, "%gs measured per scenario in %d alternating rounds after %gs warm-up each; started %s, finished %s\n",
		r.Settings.DurationSeconds, r.Settings.Rounds, r.Settings.WarmupSeconds,
		r.Started.Format("2006-01-02 15:04:05Z"), r.Finished.Format("2006-01-02 15:04:05Z"))
	hdr.WriteString("latencies in ms as p50 / p99 (failover: p50 / max)")
	if baseline {
		hdr.WriteString("; ratio divides each row's first figure")
	}
	hdr.WriteString("\n\n")
	if _, err := io.WriteString(w, hdr.String()); err != nil {
		return err
	}

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(cells ...string) {
		if !baseline && len(cells) > 3 {
			cells = cells[:3]
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	if baseline {
		row("scenario", "figure", "zklock", "zk.Lock", "zklock ÷ zk.Lock")
	} else {
		row("scenario", "figure", "zklock")
	}

	u := r.Uncontended
	uz := func(f func(*UncontendedFigures) string) string {
		if u.ZkLock == nil {
			return "-"
		}
		return f(u.ZkLock)
	}
	row("uncontended", "acquire+release /s", rate(u.Zklock.OpsPerSec), uz(func(f *UncontendedFigures) string { return rate(f.OpsPerSec) }),
		ratioOf(u.Zklock.OpsPerSec, u.ZkLock, func(f *UncontendedFigures) float64 { return f.OpsPerSec }))
	row("", "acquire", lat(u.Zklock.Acquire), uz(func(f *UncontendedFigures) string { return lat(f.Acquire) }),
		ratioOf(u.Zklock.Acquire.P50Ms, u.ZkLock, func(f *UncontendedFigures) float64 { return f.Acquire.P50Ms }))
	row("", "release", lat(u.Zklock.Release), uz(func(f *UncontendedFigures) string { return lat(f.Release) }),
		ratioOf(u.Zklock.Release.P50Ms, u.ZkLock, func(f *UncontendedFigures) float64 { return f.Release.P50Ms }))
	row("", "requests / cycle", reqs(u.Zklock.Requests), uz(func(f *UncontendedFigures) string { return reqs(f.Requests) }),
		ratioOf(u.Zklock.Requests.PerCycle, u.ZkLock, func(f *UncontendedFigures) float64 { return f.Requests.PerCycle }))
	row("", "client CPU µs / cycle", cpu(u.Zklock.CPUMicros), uz(func(f *UncontendedFigures) string { return cpu(f.CPUMicros) }),
		ratioOf(u.Zklock.CPUMicros, u.ZkLock, func(f *UncontendedFigures) float64 { return f.CPUMicros }))

	for _, c := range r.Contended {
		cz := func(f func(*ContendedFigures) string) string {
			if c.ZkLock == nil {
				return "-"
			}
			return f(c.ZkLock)
		}
		row(fmt.Sprintf("contended, %d sessions", c.Sessions), "acquisitions /s", rate(c.Zklock.AcquisitionsPerSec),
			cz(func(f *ContendedFigures) string { return rate(f.AcquisitionsPerSec) }),
			ratioOf(c.Zklock.AcquisitionsPerSec, c.ZkLock, func(f *ContendedFigures) float64 { return f.AcquisitionsPerSec }))
		row("", "acquire wait", lat(c.Zklock.AcquireWait), cz(func(f *ContendedFigures) string { return lat(f.AcquireWait) }),
			ratioOf(c.Zklock.AcquireWait.P50Ms, c.ZkLock, func(f *ContendedFigures) float64 { return f.AcquireWait.P50Ms }))
		row("", "hand-off", lat(c.Zklock.Handoff), cz(func(f *ContendedFigures) string { return lat(f.Handoff) }),
			ratioOf(c.Zklock.Handoff.P50Ms, c.ZkLock, func(f *ContendedFigures) float64 { return f.Handoff.P50Ms }))
		row("", "requests / acquisition", reqs(c.Zklock.Requests), cz(func(f *ContendedFigures) string { return reqs(f.Requests) }),
			ratioOf(c.Zklock.Requests.PerCycle, c.ZkLock, func(f *ContendedFigures) float64 { return f.Requests.PerCycle }))
		row("", "client CPU µs / acquisition", cpu(c.Zklock.CPUMicros), cz(func(f *ContendedFigures) string { return cpu(f.CPUMicros) }),
			ratioOf(c.Zklock.CPUMicros, c.ZkLock, func(f *ContendedFigures) float64 { return f.CPUMicros }))
	}

	m := r.ManyLocks
	mz := func(f func(*ManyLocksFigures) string) string {
		if m.ZkLock == nil {
			return "-"
		}
		return f(m.ZkLock)
	}
	row(fmt.Sprintf("many locks, %d paths", m.Goroutines), "acquire+release /s", rate(m.Zklock.OpsPerSec),
		mz(func(f *ManyLocksFigures) string { return rate(f.OpsPerSec) }),
		ratioOf(m.Zklock.OpsPerSec, m.ZkLock, func(f *ManyLocksFigures) float64 { return f.OpsPerSec }))
	row("", "acquire+release", lat(m.Zklock.Cycle), mz(func(f *ManyLocksFigures) string { return lat(f.Cycle) }),
		ratioOf(m.Zklock.Cycle.P50Ms, m.ZkLock, func(f *ManyLocksFigures) float64 { return f.Cycle.P50Ms }))
	row("", "client CPU µs / cycle", cpu(m.Zklock.CPUMicros), mz(func(f *ManyLocksFigures) string { return cpu(f.CPUMicros) }),
		ratioOf(m.Zklock.CPUMicros, m.ZkLock, func(f *ManyLocksFigures) float64 { return f.CPUMicros }))

	if rw := r.ReadWrite; rw != nil {
		row(fmt.Sprintf("read-write, %d sessions, %d%% reads", rw.Sessions, rw.ReadPercent), "acquisitions /s", rate(rw.AcquisitionsPerSec), "-", "-")
		row("", fmt.Sprintf("read wait (%d reads)", rw.Reads), lat(rw.ReadWait), "-", "-")
		row("", fmt.Sprintf("write wait (%d writes)", rw.Writes), lat(rw.WriteWait), "-", "-")
		row("", "requests / acquisition", reqs(rw.Requests), "-", "-")
	}
	if sm := r.Semaphore; sm != nil {
		row(fmt.Sprintf("semaphore, %d sessions, %d leases", sm.Sessions, sm.Leases), "acquisitions /s", rate(sm.AcquisitionsPerSec), "-", "-")
		row("", "acquire wait", lat(sm.AcquireWait), "-", "-")
		row("", "requests / acquisition", reqs(sm.Requests), "-", "-")
	}

	f := r.Failover
	row(fmt.Sprintf("failover, %d handovers", f.Handovers), "close → next Campaign returns", latMax(f.NextLeader), "-", "-")
	row("", "close → plain notification", latMax(f.Notification), "-", "-")
	row("", "next leader ÷ notification p50", fmt.Sprintf("%.2f×", f.RatioP50), "-", "-")

	fl := r.Floor
	row("floor", "read round trip (exists)", lat(fl.Read), "-", "-")
	row("", "write round trip (set)", lat(fl.Write), "-", "-")
	row("", "delete round trip", lat(fl.Delete), "-", "-")
	row("", "delete → notification", lat(fl.DeleteNotify), "-", "-")

	if mem := r.Memory; mem != nil {
		memz := func(f func(*MemoryFigures) string) string {
			if mem.ZkLock == nil {
				return "-"
			}
			return f(mem.ZkLock)
		}
		row(fmt.Sprintf("memory, %d waiters", mem.Waiters), "bytes / waiter (heap+stack)", fmtBytes(mem.Zklock.BytesPerWaiter),
			memz(func(f *MemoryFigures) string { return fmtBytes(f.BytesPerWaiter) }),
			ratioOf(mem.Zklock.BytesPerWaiter, mem.ZkLock, func(f *MemoryFigures) float64 { return f.BytesPerWaiter }))
		row("", "heap bytes / waiter", fmtBytes(mem.Zklock.HeapBytesPerWaiter),
			memz(func(f *MemoryFigures) string { return fmtBytes(f.HeapBytesPerWaiter) }),
			ratioOf(mem.Zklock.HeapBytesPerWaiter, mem.ZkLock, func(f *MemoryFigures) float64 { return f.HeapBytesPerWaiter }))
		row("", "stack bytes / waiter (incl. caller)", fmtBytes(mem.Zklock.StackBytesPerWaiter),
			memz(func(f *MemoryFigures) string { return fmtBytes(f.StackBytesPerWaiter) }),
			ratioOf(mem.Zklock.StackBytesPerWaiter, mem.ZkLock, func(f *MemoryFigures) float64 { return f.StackBytesPerWaiter }))
		row("", "goroutines / waiter (incl. caller)", fmt.Sprintf("%.2f", mem.Zklock.GoroutinesPerWaiter),
			memz(func(f *MemoryFigures) string { return fmt.Sprintf("%.2f", f.GoroutinesPerWaiter) }), "-")
		row("", "library goroutines / waiter", fmt.Sprintf("%.2f", mem.Zklock.LibraryGoroutinesPerWaiter),
			memz(func(f *MemoryFigures) string { return fmt.Sprintf("%.2f", f.LibraryGoroutinesPerWaiter) }), "-")
		row("", "queue / drain time", fmt.Sprintf("%.1fs / %.1fs", mem.Zklock.QueueSeconds, mem.Zklock.DrainSeconds),
			memz(func(f *MemoryFigures) string { return fmt.Sprintf("%.1fs / %.1fs", f.QueueSeconds, f.DrainSeconds) }), "-")
	}
	return tw.Flush()
}

func rate(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) }

// cpu formats microseconds of CPU time; the whole process's, so the
// bench's own bookkeeping is in it for both implementations alike.
func cpu(us float64) string { return strconv.FormatFloat(us, 'f', 0, 64) }

func lat(l Latency) string { return fmtMs(l.P50Ms) + " / " + fmtMs(l.P99Ms) }

func latMax(l Latency) string { return fmtMs(l.P50Ms) + " / " + fmtMs(l.MaxMs) }

// fmtMs keeps three significant digits or so, enough to compare, not so
// many that noise looks like precision.
func fmtMs(v float64) string {
	switch {
	case v < 10:
		return strconv.FormatFloat(v, 'f', 2, 64)
	case v < 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

func fmtBytes(v float64) string {
	return fmt.Sprintf("%.0f B (%.1f KiB)", v, v/1024)
}

// reqs prints the total and its breakdown by opcode, largest first;
// opcodes rarer than one in two hundred cycles are left out.
func reqs(r Requests) string {
	ops := slices.Sorted(maps.Keys(r.ByOp))
	slices.SortStableFunc(ops, func(a, b string) int {
		switch {
		case r.ByOp[a] > r.ByOp[b]:
			return -1
		case r.ByOp[a] < r.ByOp[b]:
			return 1
		}
		return 0
	})
	parts := make([]string, 0, len(ops))
	for _, op := range ops {
		if r.ByOp[op] >= 0.005 {
			parts = append(parts, op+" "+short(r.ByOp[op]))
		}
	}
	return fmt.Sprintf("%.2f = %s", r.PerCycle, strings.Join(parts, ", "))
}

// short prints v with two decimals, trailing zeros dropped.
func short(v float64) string {
	s := strconv.FormatFloat(v, 'f', 2, 64)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

// ratioOf formats zklock's value divided by the baseline's, or "-".
func ratioOf[F any](v float64, base *F, get func(*F) float64) string {
	if base == nil {
		return "-"
	}
	b := get(base)
	if b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f×", v/b)
}
