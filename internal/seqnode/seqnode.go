// Package seqnode names, parses and orders the sequential nodes that lock and
// election recipes create under a common parent, for zklock and for the
// Curator, kazoo and go-zookeeper recipes that may share the parent.
package seqnode

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Kind is what a contender node stands for.
type Kind int

const (
	// Exclusive is a mutex or write-lock contender: zklock, Curator
	// InterProcessMutex ("lock-", "__WRIT__"), kazoo Lock ("__lock__"),
	// go-zookeeper zk.Lock ("-lock-").
	Exclusive Kind = iota + 1
	// Shared is a read-lock contender: Curator "__READ__", kazoo "__rlock__".
	Shared
	// Latch is an election candidate: zklock and Curator LeaderLatch
	// ("latch-").
	Latch
	// Lease is a semaphore lease: zklock and Curator
	// InterProcessSemaphoreV2 ("lease-").
	Lease
)

// Protected-name parts, as in Curator's protected mode: a create whose reply
// is lost can be found again by its id.
const (
	protectedPrefix = "_c_"
	idLen           = 36 // a textual UUID
	lockMarker      = "lock-"
	latchMarker     = "latch-"
	leaseMarker     = "lease-"
)

// markers in match order: longer markers first so "__rlock__" is not read
// as "lock-"-less garbage and "-lock-" wins over "lock-".
var markers = []struct {
	s    string
	kind Kind
}{
	{"__rlock__", Shared},
	{"__lock__", Exclusive},
	{"__READ__", Shared},
	{"__WRIT__", Exclusive},
	{latchMarker, Latch},
	{leaseMarker, Lease},
	{lockMarker, Exclusive},
}

// Node is a parsed contender node name.
type Node struct {
	Name string // the child name, as listed
	Seq  int32  // the sequence number ZooKeeper appended
	Kind Kind
}

// LockPrefix returns the name prefix zklock creates for a mutex contender
// with protected id: "_c_<id>-lock-". ZooKeeper appends the sequence number.
func LockPrefix(id string) string { return protectedPrefix + id + "-" + lockMarker }

// ReadPrefix returns the name prefix of a read-lock contender with
// protected id: "_c_<id>-__READ__", as Curator's InterProcessReadWriteLock
// names its read nodes.
func ReadPrefix(id string) string { return protectedPrefix + id + "-__READ__" }

// WritePrefix returns the name prefix of a write-lock contender with
// protected id: "_c_<id>-__WRIT__", as Curator's InterProcessReadWriteLock
// names its write nodes.
func WritePrefix(id string) string { return protectedPrefix + id + "-__WRIT__" }

// LeasePrefix returns the name prefix of a semaphore lease:
// "_c_<id>-lease-", as Curator's InterProcessSemaphoreV2 names its leases.
func LeasePrefix(id string) string { return protectedPrefix + id + "-" + leaseMarker }

// LatchPrefix returns the name prefix of an election candidate:
// "_c_<id>-latch-", as Curator's LeaderLatch names its nodes.
func LatchPrefix(id string) string { return protectedPrefix + id + "-" + latchMarker }

// HasID reports whether name was created with protected id, a textual UUID
// as NewID returns.
func HasID(name, id string) bool {
	return len(id) == idLen && strings.HasPrefix(name, protectedPrefix+id+"-")
}

// Parse recognises a contender node name. Names of other recipes' nodes and
// unrelated children ("config", "readme") are reported as not ok; callers
// ignore them.
func Parse(name string) (Node, bool) {
	for _, m := range markers {
		i := strings.LastIndex(name, m.s)
		if i < 0 {
			continue
		}
		seq, ok := parseSeq(name[i+len(m.s):])
		if !ok {
			continue
		}
		return Node{Name: name, Seq: seq, Kind: m.kind}, true
	}
	return Node{}, false
}

// parseSeq reads ZooKeeper's sequence suffix, formatted "%010d" from a
// signed 32-bit counter: ten characters, or eleven for values below
// -999999999 once the counter has wrapped.
func parseSeq(s string) (int32, bool) {
	if len(s) != 10 && !(len(s) == 11 && s[0] == '-') {
		return 0, false
	}
	for i, r := range s {
		if !(r >= '0' && r <= '9') && !(i == 0 && r == '-') {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil || fmt.Sprintf("%010d", n) != s {
		return 0, false
	}
	return int32(n), true
}

// Before orders sequence numbers in serial-number arithmetic (RFC 1982):
// a comes before b if b is less than 2^31 steps after a. ZooKeeper's
// counter wraps from 2^31-1 to -2^31; live contenders of one parent span far
// less than 2^31 creations, so this order stays right across the wrap where
// a plain integer comparison would put the newest nodes first.
func Before(a, b int32) bool { return int32(uint32(b)-uint32(a)) > 0 }

// Sort orders nodes by sequence number, oldest first.
func Sort(nodes []Node) {
	slices.SortStableFunc(nodes, func(a, b Node) int {
		switch {
		case a.Seq == b.Seq:
			return strings.Compare(a.Name, b.Name)
		case Before(a.Seq, b.Seq):
			return -1
		}
		return 1
	})
}

// Contenders parses children, keeps those for which keep is true, and
// returns them in queue order.
func Contenders(children []string, keep func(Kind) bool) []Node {
	out := make([]Node, 0, len(children))
	for _, c := range children {
		if n, ok := Parse(c); ok && keep(n.Kind) {
			out = append(out, n)
		}
	}
	Sort(out)
	return out
}

// Index returns self's index in sorted contenders, and whether it is there.
func Index(contenders []Node, self string) (int, bool) {
	i := slices.IndexFunc(contenders, func(n Node) bool { return n.Name == self })
	return i, i >= 0
}

// Position finds self in sorted contenders. It returns self's index and the
// node to wait for: the closest earlier node that blocks self (for a Shared
// contender only Exclusive nodes block). first is true when none does.
// found is false when self is not among contenders.
func Position(contenders []Node, self string) (index int, pred Node, first, found bool) {
	index = slices.IndexFunc(contenders, func(n Node) bool { return n.Name == self })
	if index < 0 {
		return -1, Node{}, false, false
	}
	me := contenders[index]
	for i := index - 1; i >= 0; i-- {
		if me.Kind != Shared || contenders[i].Kind == Exclusive {
			return index, contenders[i], false, true
		}
	}
	return index, Node{}, true, true
}
