package chaos

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// FaultKind is a kind of fault the nemesis injects.
type FaultKind int

// The fault kinds. Client faults act on one client's own proxies or
// Session, server faults on the ensemble, FaultDeleteNode on one hold,
// FaultDeleteDir on one scenario's directory.
const (
	// FaultCut resets every connection of one client.
	FaultCut FaultKind = iota + 1
	// FaultExpire blackholes one client past its session timeout, so the
	// client presumes its session lost and the server expires it.
	FaultExpire
	// FaultShortBlackhole blackholes one client for less than the loss
	// margin, which a hold must survive unnoticed by others.
	FaultShortBlackhole
	// FaultStopFollower kills a follower and restarts it.
	FaultStopFollower
	// FaultStopLeader kills the leader and restarts it.
	FaultStopLeader
	// FaultQuorumLoss kills two of the three servers and restarts them
	// together.
	FaultQuorumLoss
	// FaultDeleteNode deletes a holder's node as an operator would.
	FaultDeleteNode
	// FaultPause stops one server process (SIGSTOP) and continues it.
	FaultPause
	// FaultHungServer cuts the connections of a client whose server list
	// holds a server that accepts and never answers, again and again, so
	// its reconnects walk the list and some land on that server.
	FaultHungServer
	// FaultBadName is FaultHungServer for a client whose server list holds
	// a name that does not resolve.
	FaultBadName
	// FaultAuthReconnect is FaultHungServer for a client that authenticates
	// (digest), so each reconnect re-sends its credentials.
	FaultAuthReconnect
	// FaultCloseSession closes a client's Session in the middle of a fault
	// on its connections (blackholed or just cut); the client goes on with
	// a new Session.
	FaultCloseSession
	// FaultDeleteDir deletes the lock or election directory with every
	// contender node in it, in one multi, as an operator would.
	FaultDeleteDir
	// FaultClientPause stops the process of a lock client (SIGSTOP) for
	// longer than its session timeout and continues it.
	FaultClientPause
)

// FirstFaults are the kinds the nemesis began with, in their order: a
// seed's schedule over them is the one it had then, so the regression
// seeds found then still replay their schedules.
var FirstFaults = AllFaults[:8:8]

// AllFaults lists every FaultKind.
var AllFaults = []FaultKind{
	FaultCut, FaultExpire, FaultShortBlackhole, FaultStopFollower,
	FaultStopLeader, FaultQuorumLoss, FaultDeleteNode, FaultPause,
	FaultHungServer, FaultBadName, FaultAuthReconnect, FaultCloseSession,
	FaultDeleteDir, FaultClientPause,
}

var faultNames = map[FaultKind]string{
	FaultCut:            "cut",
	FaultExpire:         "expire",
	FaultShortBlackhole: "short-blackhole",
	FaultStopFollower:   "stop-follower",
	FaultStopLeader:     "stop-leader",
	FaultQuorumLoss:     "quorum-loss",
	FaultDeleteNode:     "delete-node",
	FaultPause:          "pause",
	FaultHungServer:     "hung-server",
	FaultBadName:        "bad-name",
	FaultAuthReconnect:  "auth-reconnect",
	FaultCloseSession:   "close-session",
	FaultDeleteDir:      "delete-dir",
	FaultClientPause:    "client-pause",
}

func (k FaultKind) String() string {
	if s, ok := faultNames[k]; ok {
		return s
	}
	return fmt.Sprintf("FaultKind(%d)", int(k))
}

// Plan is a fault as the generator draws it, before the nemesis resolves
// choices that depend on the live system (which client holds, which server
// leads).
type Plan struct {
	Kind   FaultKind
	Length time.Duration // how long the fault lasts; 0 for instant faults
	Gap    time.Duration // quiet time after the fault, before the next
	// Pick resolves live choices: the nemesis takes it modulo the number of
	// candidates (clients, holds, servers).
	Pick uint64
	// PreferHolder makes a client fault target a current holder when there
	// is one, where faults matter most.
	PreferHolder bool
}

// Generator draws a reproducible sequence of Plans from a seed. Kinds come
// from a shuffled bag holding each kind once, so even a short run covers
// them all.
type Generator struct {
	rng     *rand.Rand
	timeout time.Duration
	kinds   []FaultKind
	bag     []FaultKind
}

// NewGenerator returns a Generator for clients with the given session
// timeout, from which fault lengths are scaled, drawing kinds (every kind,
// AllFaults, if none are given).
func NewGenerator(seed uint64, sessionTimeout time.Duration, kinds ...FaultKind) *Generator {
	if len(kinds) == 0 {
		kinds = AllFaults
	}
	return &Generator{rng: rand.New(rand.NewPCG(seed, 0x5eed_c4a05)), timeout: sessionTimeout, kinds: kinds}
}

// between returns a duration drawn uniformly from [lo, hi).
func (g *Generator) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(g.rng.Int64N(int64(hi-lo)))
}

// Next draws the next Plan.
func (g *Generator) Next() Plan {
	if len(g.bag) == 0 {
		g.bag = append(g.bag, g.kinds...)
		g.rng.Shuffle(len(g.bag), func(i, j int) { g.bag[i], g.bag[j] = g.bag[j], g.bag[i] })
	}
	p := Plan{Kind: g.bag[0]}
	g.bag = g.bag[1:]
	t := g.timeout
	switch p.Kind {
	case FaultExpire:
		// Well past T: the client's loss deadline passes and the server
		// expires the session too.
		p.Length = g.between(3*t/2, 2*t)
	case FaultShortBlackhole:
		// Under 40% of T, less than T minus the default margin minus a
		// ping interval, so the session survives.
		p.Length = g.between(3*t/20, 2*t/5)
	case FaultStopFollower, FaultStopLeader:
		p.Length = g.between(t/2, 3*t/2)
	case FaultQuorumLoss:
		p.Length = g.between(t, 2*t)
	case FaultPause:
		p.Length = g.between(t/2, 5*t/4)
	case FaultHungServer, FaultBadName, FaultAuthReconnect:
		// Cuts every T/4 (cutEvery): two to six reconnects.
		p.Length = g.between(t/2, 3*t/2)
	case FaultCloseSession:
		p.Length = g.between(t/4, t)
	case FaultClientPause:
		// Past T: the server expires the session while the client cannot
		// run.
		p.Length = g.between(3*t/2, 5*t/2)
	}
	p.Gap = g.between(t/4, 3*t/4)
	p.Pick = g.rng.Uint64()
	p.PreferHolder = g.rng.IntN(3) != 0
	return p
}

// Fault is a fault as the nemesis injected it.
type Fault struct {
	ID      int
	Kind    FaultKind
	Length  time.Duration
	Res     string // client faults: the target client's resource
	Client  int    // client faults: the target client; -1 otherwise
	Hold    int    // FaultDeleteNode: the hold whose node was deleted
	Servers []int  // server faults: the servers acted on (0-based)
	// FaultDeleteDir: the directory (Res names its scenario) and the
	// contender nodes deleted with it, as keys under the chroot.
	Dir  string
	Keys []string
	Note string // how the fault was applied, when a kind has variants
}

func (f *Fault) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "fault#%d %s", f.ID, f.Kind)
	if f.Client >= 0 {
		fmt.Fprintf(&b, " target=%s c%d", f.Res, f.Client)
	}
	if f.Hold != 0 {
		fmt.Fprintf(&b, " target-hold=%d", f.Hold)
	}
	if f.Dir != "" {
		fmt.Fprintf(&b, " dir=%s with %d nodes", f.Dir, len(f.Keys))
	}
	if f.Note != "" {
		fmt.Fprintf(&b, " (%s)", f.Note)
	}
	for _, s := range f.Servers {
		fmt.Fprintf(&b, " zk%d", s+1)
	}
	if f.Length > 0 {
		fmt.Fprintf(&b, " for %v", f.Length.Round(time.Millisecond))
	}
	return b.String()
}
