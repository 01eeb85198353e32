// Package zklock provides distributed locks and leader election on Apache
// ZooKeeper, in the spirit of Apache Curator's recipes, for Go services.
//
// # Model
//
// A Session is a managed ZooKeeper session: Connect establishes it, it
// reconnects after a lost connection, and when ZooKeeper expires it, it opens
// a new one with backoff, so values built on it keep working. Recipes are
// built from a Session and share its connection: Mutex, RWMutex, Semaphore,
// MultiLock and Election.
//
// A Session is in one of four states, delivered in order to every
// Subscription:
//
//   - connected: a server answers;
//   - suspended: the connection is lost, but the ZooKeeper session may still
//     be alive and another server may resume it;
//   - expired: the ZooKeeper session is over; everything held under it has
//     ended and a new ZooKeeper session is being opened;
//   - closed: Close was called.
//
// # Disconnect versus expiry
//
// A lost connection is suspect, not fatal: ZooKeeper keeps the session, and
// with it every lock node, for the negotiated session timeout T after the
// ensemble's leader last learned the client was active. Only the leader
// expires sessions, and it may be stalled (a long garbage-collection pause,
// SIGSTOP) while followers keep answering the client's pings, so answered
// pings prove nothing. The Session instead sends a sync request, which only
// the leader answers, every T/40 without waiting for answers, and derives
// from the answers the safe loss deadline (Session.LossDeadline): until it
// passes, the leader cannot have expired the session, so no other client
// can have been granted a lock this session holds. When it passes — the
// connection is still down, or the leader has not answered — the Session
// presumes the session expired and ends everything held under it, without
// waiting to be told so. Curator declares its equivalent LOST state only
// after about 1.67 T, from the connection alone.
//
// The deadline is T less about a third of T (T/5 + T/40 for the leader's
// view lagging behind, T/10 of default margin, WithLossMargin), counted
// from the latest answered sync less the longest recent gap between
// answers. The derivation is written out once, in the package documentation
// of internal/lease. The syncs cost the leader one cheap request per
// Session every T/40 (every 250 ms at T = 10 s).
//
// Precondition: the deadline is safe when the negotiated timeout is at
// least five server ticks (T ≥ 10 s on a server with the default tickTime
// of 2 s) and the margin covers the time a holder takes to stop acting on a
// lost hold, plus clock-rate differences and network delay. The server
// clamps the requested timeout (WithSessionTimeout) to its own range;
// Session.NegotiatedTimeout tells what it granted.
//
// # Locks
//
// A Mutex is an exclusive lock on a ZooKeeper path. Lock queues the caller
// as an ephemeral sequential child of the path,
//
//	/path/_c_<UUID>-lock-0000000042   data: holder identity ("host:pid")
//
// and the lowest sequence number holds the lock. A waiter watches only the
// node just ahead of it, so a release wakes one waiter, not all. The path
// and missing parents are created as container nodes, which ZooKeeper
// deletes once they are empty.
//
// The node names are Curator's protected form: after a lost connection the
// creator finds its node again by the UUID, and accepts it only if its own
// ZooKeeper session owns it. Before granting, Lock confirms the node exists
// in the current session and is first, by a read made after whatever made
// it first: a notification that the node ahead went does not prove the
// waiter's own node survived the same transaction (a recursive delete). A
// holder learns of its node's deletion from a watch on the node, or, while
// no one queues behind it, from the watch on the path's children that its
// listing set, which it exchanges for one on the node when the children
// change. Every node a Mutex creates is deleted when it is
// no longer wanted — after a cancelled Lock, a failed TryLock or an Unlock —
// by the Session's cleaner if the connection is down, so a waiter never
// stays behind to block others.
//
// The same path can be shared with Curator's InterProcessMutex,
// go-zookeeper's zk.Lock and kazoo's Lock: a Mutex queues behind their nodes
// (and behind Curator and kazoo read-lock nodes), and they queue behind its
// nodes. kazoo sees other implementations' nodes only when its Lock is
// created with extra_lock_patterns=["-lock-"].
//
// Use Lock to wait for your turn, and TryLock to do the work only if no one
// else holds or waits for the lock (say, a periodic job that several
// instances start and one should run).
//
// # More locks
//
// An RWMutex is a read-write lock on the same queue: readers share it,
// writers exclude everyone, and a reader queued behind a waiting writer
// waits for it. Its node names are Curator's InterProcessReadWriteLock's
// ("_c_<UUID>-__READ__<sequence>", "-__WRIT__"); a Mutex on the same path
// is a writer. A Semaphore hands out at most n leases, in Curator's
// InterProcessSemaphoreV2 layout ("<path>/locks", "<path>/leases"). A
// MultiLock takes several Mutexes, all or none, in one canonical order, so
// overlapping MultiLocks never deadlock. Every hold of every recipe has the
// Mutex's loss signal, fencing token and Guard.
//
// A Locker (NewLocker) adapts a Mutex to sync.Locker, for code that takes
// one: Lock retries until it holds the lock and panics only on misuse,
// such as a closed Session; a loss is reported by the Mutex alone.
//
// # Election
//
// An Election elects one leader among candidates on a ZooKeeper path, with
// the same queue: candidates are ephemeral sequential children named
// "_c_<UUID>-latch-<sequence>" (Curator's LeaderLatch shares the path),
// their node data is the candidate's value (WithValue), and the lowest
// sequence number leads. Campaign blocks until this candidate leads;
// leadership is a hold like a Mutex's, with Done, Err, Context, Token and
// Guard, and Resign ends it. Leader reads the current term, Observe streams
// every change of leader, and Run campaigns again after each term, running
// a function while leading; it starts no term before the previous term's
// function has returned, and resigns only then, though a lost term frees
// the election at once (see Safety).
//
// # Safety
//
// A held lock can be lost at any time: the session can expire, the
// connection can stay down past the loss deadline, or an operator can delete
// the lock node. It is NOT safe to assume a lock is still held just because
// Unlock has not been called. Watch the hold's loss signal (Mutex.Done, or
// Mutex.Context passed into the work; Election.Done and Election.Context
// for a leader) and stop acting on the resource when it fires.
//
// When the session is lost, the loss signal comes before the server can
// grant the lock to anyone else, provided the precondition above holds (T
// at least five server ticks, and a margin that covers the holder's
// reaction time); when an operator deletes the node, the server may grant
// it at once. Either way a process can also be paused (by the garbage
// collector, the scheduler, a debugger) between checking it and writing.
// So fence every write: send the hold's fencing token (Mutex.Token, the
// creation zxid of its node, which strictly increases across holders while
// the ensemble keeps its data; see ErrZxidRegression) with each write and
// have the resource reject tokens lower than the highest it has seen; for
// writes to ZooKeeper itself, put Mutex.Guard in the same Session.Multi.
//
// # Errors
//
// Errors wrap the package's sentinels (ErrSessionExpired, ErrLockLost, ...)
// and go-zookeeper's (zk.ErrNoNode, zk.ErrNoAuth, ...), so callers test them
// with errors.Is. A blocking call whose context ends returns an error
// matching ctx.Err().
package zklock
