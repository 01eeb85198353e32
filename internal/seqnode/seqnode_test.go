package seqnode

import (
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const uuid = "0f8fad5b-d9cb-469f-a165-70867728950e"

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name string
		seq  int32
		kind Kind
		ok   bool
	}{
		{"_c_" + uuid + "-lock-0000000007", 7, Exclusive, true},                     // zklock, Curator protected mutex
		{"lock-0000000012", 12, Exclusive, true},                                    // Curator unprotected mutex
		{"_c_0123456789abcdef0123456789abcdef-lock-0000000003", 3, Exclusive, true}, // go-zookeeper zk.Lock
		{"1f0e3dad99908345f7439f8ffabdffc4__lock__0000000004", 4, Exclusive, true},  // kazoo Lock
		{"1f0e3dad99908345f7439f8ffabdffc4__rlock__0000000005", 5, Shared, true},    // kazoo ReadLock
		{"_c_" + uuid + "-__WRIT__0000000006", 6, Exclusive, true},                  // Curator write lock
		{"_c_" + uuid + "-__READ__0000000008", 8, Shared, true},                     // Curator read lock
		{"_c_" + uuid + "-latch-0000000009", 9, Latch, true},                        // LeaderLatch
		{"latch-0000000010", 10, Latch, true},
		{"lock--000000005", -5, Exclusive, true}, // wrapped counter, "%010d"
		{"lock--2147483648", math.MinInt32, Exclusive, true},
		{"lock-2147483647", math.MaxInt32, Exclusive, true},
		{"config", 0, 0, false},
		{"readme", 0, 0, false},
		{"lock-", 0, 0, false},
		{"lock-123", 0, 0, false},
		{"lock-00000000x1", 0, 0, false},
		{"lock-9999999999", 0, 0, false}, // beyond int32
		{"lock-0000000001-extra", 0, 0, false},
		{"lock--0000000001", 0, 0, false}, // eleven characters but not below -999999999
		{"", 0, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, ok := Parse(tc.name)
			require.Equal(t, tc.ok, ok)
			if ok {
				assert.Equal(t, tc.seq, n.Seq)
				assert.Equal(t, tc.kind, n.Kind)
				assert.Equal(t, tc.name, n.Name)
			}
		})
	}
}

func TestBeforeAcrossWrap(t *testing.T) {
	assert.True(t, Before(1, 2))
	assert.False(t, Before(2, 1))
	assert.False(t, Before(5, 5))
	assert.True(t, Before(math.MaxInt32, math.MinInt32), "the counter wraps to -2^31 after 2^31-1")
	assert.True(t, Before(math.MaxInt32-1, -5))
	assert.False(t, Before(-5, math.MaxInt32))
}

func name(seq int32) string { return fmt.Sprintf("_c_%s-lock-%010d", uuid, seq) }

func TestContendersOrderAndForeignChildren(t *testing.T) {
	children := []string{
		name(30), "config", "1f0e3dad99908345f7439f8ffabdffc4__rlock__0000000020", name(10), "readme",
		"_c_" + uuid + "-latch-0000000005",
	}
	got := Contenders(children, func(k Kind) bool { return k != Latch })
	var names []string
	for _, n := range got {
		names = append(names, n.Name)
	}
	assert.Equal(t, []string{name(10), "1f0e3dad99908345f7439f8ffabdffc4__rlock__0000000020", name(30)}, names,
		"unknown names and latches are ignored; lock-shaped names are ordered by sequence")
}

func TestContendersAcrossWrap(t *testing.T) {
	children := []string{
		fmt.Sprintf("lock-%010d", int32(-2147483647)),
		fmt.Sprintf("lock-%d", int32(math.MaxInt32)),
		fmt.Sprintf("lock-%d", int32(math.MinInt32)),
		fmt.Sprintf("lock-%010d", int32(2147483600)),
	}
	got := Contenders(children, func(Kind) bool { return true })
	var seqs []int32
	for _, n := range got {
		seqs = append(seqs, n.Seq)
	}
	assert.Equal(t, []int32{2147483600, math.MaxInt32, math.MinInt32, -2147483647}, seqs)
}

func TestPosition(t *testing.T) {
	w1 := Node{Name: "w1", Seq: 1, Kind: Exclusive}
	r2 := Node{Name: "r2", Seq: 2, Kind: Shared}
	r3 := Node{Name: "r3", Seq: 3, Kind: Shared}
	w4 := Node{Name: "w4", Seq: 4, Kind: Exclusive}
	all := []Node{w1, r2, r3, w4}

	i, _, first, found := Position(all, "w1")
	assert.True(t, found)
	assert.True(t, first)
	assert.Equal(t, 0, i)

	_, pred, first, _ := Position(all, "w4")
	assert.False(t, first)
	assert.Equal(t, r3, pred, "an exclusive contender waits for its immediate predecessor, readers included")

	_, pred, first, _ = Position(all, "r3")
	assert.False(t, first)
	assert.Equal(t, w1, pred, "a reader waits only for the closest earlier writer")

	_, _, _, found = Position(all, "gone")
	assert.False(t, found)
}

func TestNames(t *testing.T) {
	assert.Equal(t, "_c_"+uuid+"-lock-", LockPrefix(uuid))
	assert.Equal(t, "_c_"+uuid+"-latch-", LatchPrefix(uuid))
	assert.True(t, HasID(name(3), uuid))
	assert.False(t, HasID(name(3), "0f8fad5b"))
	n, ok := Parse(LockPrefix(uuid) + "0000000042")
	require.True(t, ok)
	assert.Equal(t, int32(42), n.Seq)
	for _, tc := range []struct {
		prefix func(string) string
		want   string
		kind   Kind
	}{
		{ReadPrefix, "_c_" + uuid + "-__READ__", Shared},
		{WritePrefix, "_c_" + uuid + "-__WRIT__", Exclusive},
		{LeasePrefix, "_c_" + uuid + "-lease-", Lease},
	} {
		assert.Equal(t, tc.want, tc.prefix(uuid))
		n, ok := Parse(tc.prefix(uuid) + "0000000007")
		require.True(t, ok)
		assert.Equal(t, tc.kind, n.Kind)
		assert.True(t, HasID(n.Name, uuid))
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{name(1), "lock--2147483648", "x__rlock__0000000001", "config", "latch-0000000001", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, ok := Parse(s)
		if !ok {
			return
		}
		// Whatever parses keeps its name, and reformatting its sequence
		// number the way ZooKeeper does parses back to the same number.
		if n.Name != s {
			t.Fatalf("name changed: %q -> %q", s, n.Name)
		}
		again, ok := Parse(LockPrefix(uuid) + fmt.Sprintf("%010d", n.Seq))
		if !ok || again.Seq != n.Seq {
			t.Fatalf("seq %d does not round-trip", n.Seq)
		}
	})
}
