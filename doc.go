// Package zklock provides distributed locks and leader election on Apache
// ZooKeeper, in the spirit of Apache Curator's recipes, for Go services.
//
// # Model
//
// A Session is a managed ZooKeeper session: Connect establishes it, it
// reconnects after a lost connection, and when ZooKeeper expires it, it opens
// a new one with backoff, so values built on it keep working. Recipes are
// built from a Session and share its connection.
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
// with it every lock node, for the negotiated session timeout T after it last
// heard from the client. The Session reads T and the send time of the latest
// request the server answered off the wire, and derives the safe loss
// deadline:
//
//	deadline = (send time of the latest answered request) + T − margin
//
// The margin defaults to T/5 (WithLossMargin). Until the deadline, the server
// cannot have expired the session, so no other client can have been granted
// a lock this session holds. If the connection is still down at the
// deadline, the Session presumes the session expired and ends everything
// held under it, without waiting for a reconnect to be told so. Curator
// declares its equivalent LOST state only after about 1.67 T.
//
// # Safety
//
// A held lock can be lost at any time: the session can expire, the
// connection can stay down past the loss deadline, or an operator can delete
// the lock node. It is NOT safe to assume a lock is still held just because
// Unlock has not been called. Watch the hold's loss signal and stop acting
// on the resource when it fires, and fence every write to the resource with
// the hold's fencing token, so a write from a holder that has lost the lock
// without knowing it yet is rejected by the resource.
//
// # Errors
//
// Errors wrap the package's sentinels (ErrSessionExpired, ErrSessionClosed,
// ...) and go-zookeeper's (zk.ErrNoNode, zk.ErrNoAuth, ...), so callers test
// them with errors.Is. A blocking call whose context ends returns an error
// matching ctx.Err().
package zklock
