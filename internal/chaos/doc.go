// Package chaos is a Jepsen-style test of zklock's locks and elections: a
// generator draws faults from a seed (cut and blackholed connections,
// session expiry, killed, paused and lost servers, lock nodes deleted by an
// operator, a lock or election directory deleted with all its nodes in one
// multi, Session.Close in the middle of a connection fault, and bursts of
// cuts that make a client reconnect through a server list holding a hung
// server or a name that does not resolve, or re-send its digest credentials,
// and a lock client's process stopped past its session timeout) and a
// nemesis injects them, one at a time, into a three-server ensemble while
// clients contend for a Mutex and run an Election, and others take an
// RWMutex's read and write locks, a Semaphore's leases (two at once) and
// MultiLocks over the Mutex's path and one of their own; client faults and
// node deletions reach them all. Some clients have a hung server or an
// unresolvable name in their server list from the start; the candidates
// authenticate and their nodes carry a digest-only ACL; a client whose
// Session is closed goes on with a new one; one lock client runs in a child
// process, whose hold counts until its last check that found it held. Every
// client records what it saw in one History; a pure checker then judges the
// History against the safety model of package zklock (see its package
// documentation):
//
//   - mutual exclusion as holders see it: a hold ends (its Done closes, or
//     Unlock is called) before the next hold's Lock returns, except that a
//     holder whose node an operator deleted cannot know before the server
//     tells it. Holds are judged by the lock they are on: a MultiLock's
//     hold is a hold on each of its paths, excluding the Mutex clients on
//     the shared one; read holds share the RWMutex's lock with each other,
//     never with a writer; and no more leases than the Semaphore's limit
//     are held at once;
//   - Close ends holds: when Session.Close returns, every hold made under
//     the Session has ended (its Done is closed), and no other client was
//     granted before it ended;
//   - no expiry while trusted: a hold never learns that its node is gone
//     unless an operator deleted it, since the Session presumes its session
//     lost before the server may expire it;
//   - fencing: on each lock, tokens strictly increase in the order holds
//     begin (shared holds, which may begin in either order, only above
//     every earlier writer's, and each client's above its last), and a
//     fenced resource accepts every write made inside a hold by a holder
//     that checks its hold before writing, and every read of a reader
//     that checks it, again except a revoked holder's;
//   - liveness: once faults stop, every client of the Mutex, the RWMutex
//     (a write lock), the Semaphore and the MultiLock acquires within the
//     session timeout plus 5s, and exactly one candidate leads, as Observe
//     and Leader agree;
//   - cleanliness: no contender node outlives its Session, and no goroutine
//     or server process outlives the test.
//
// Everything runs in one process, so all timestamps come from one monotonic
// clock and can be compared directly.
//
// TestChaos runs for about a minute and a half by default: one fixed seed
// and one random seed, each printed. Environment variables adjust it:
//
//	ZKLOCK_CHAOS_SEED=42           run only this seed (a comma-separated list for several)
//	ZKLOCK_CHAOS_DURATION=10m      length of each seed's fault phase (default 30s)
//	ZKLOCK_CHAOS_HISTORY=/tmp      write each run's whole History to a file there
//
// TestChaosRegressions replays the seeds that once found bugs (the long
// ones only when ZKLOCK_CHAOS_DURATION is set), and TestChaosLeaderStall
// stalls the leader under a holder on a follower, the case they found.
//
// A long release check, for example:
//
//	ZKLOCK_CHAOS_DURATION=10m go test -count=1 -timeout 60m -run Chaos -v ./internal/chaos/
package chaos
