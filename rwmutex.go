package zklock

import (
	"context"

	"github.com/zklock/zklock/internal/seqnode"
)

// RWMutex is a distributed read-write lock on a ZooKeeper path, compatible
// with Curator's InterProcessReadWriteLock and kazoo's ReadLock and
// WriteLock on the same path. Any number of holders may hold the read lock
// at once; the write lock excludes readers and writers.
//
// Contenders queue as ephemeral sequential children of the path, named
// "_c_<UUID>-__READ__<sequence>" and "_c_<UUID>-__WRIT__<sequence>", as
// Curator names them. The queue is fair: a reader waits for every writer
// queued ahead of it, so readers cannot starve a writer. A writer watches
// the node just ahead of it and a reader the nearest writer ahead, so a
// writer leaving wakes only the readers behind it that may now read, and
// the next writer. A Mutex on the same path is a writer; other lock shapes
// queue by their kind (Curator "lock-", kazoo "__lock__" are writers;
// kazoo "__rlock__" is a reader).
//
// Each side is a Mutex (Reader, Writer) with the Mutex's guarantees: a
// loss signal (Done, Err, Context), a fencing token, a Guard, nothing left
// behind. The RWMutex holds each side at most once at a time, and neither
// upgrades nor downgrades: taking the write lock while holding the read
// lock, or the reverse, would wait for ever behind its own node, so Lock
// and RLock refuse it with ErrBusy. Build it with NewRWMutex; the zero
// value is not usable. It is safe for concurrent use.
type RWMutex struct {
	read, write *Mutex
}

// readKind and writeKind: read and write nodes, queued with every lock shape
// a peer writes.
var (
	readKind = kind{
		op:     "read lock",
		prefix: seqnode.ReadPrefix,
		queues: mutexKind.queues,
		lost:   ErrLockLost,
		free:   ErrNotLocked,
	}
	writeKind = kind{
		op:     "write lock",
		prefix: seqnode.WritePrefix,
		queues: mutexKind.queues,
		lost:   ErrLockLost,
		free:   ErrNotLocked,
	}
)

// NewRWMutex returns an RWMutex for the lock at path (under the Session's
// chroot). The options (WithData) apply to both sides. It does no I/O; an
// invalid path is reported by the methods that lock.
func NewRWMutex(s *Session, path string, opts ...MutexOption) *RWMutex {
	rw := &RWMutex{read: newMutex(s, path, readKind, opts), write: newMutex(s, path, writeKind, opts)}
	pair(rw.read.r, rw.write.r)
	return rw
}

// Reader returns the read side: its Lock, TryLock and Unlock take and
// release the read lock, and its Done, Err, Context, Token and Guard
// describe the read hold.
func (rw *RWMutex) Reader() *Mutex { return rw.read }

// Writer returns the write side: its Lock, TryLock and Unlock take and
// release the write lock, and its Done, Err, Context, Token and Guard
// describe the write hold.
func (rw *RWMutex) Writer() *Mutex { return rw.write }

// RLock takes the read lock, waiting for every writer queued ahead, until
// ctx ends; see Mutex.Lock. It returns ErrBusy while this RWMutex holds or
// is taking its write lock.
func (rw *RWMutex) RLock(ctx context.Context) error {
	return rw.read.Lock(ctx)
}

// TryRLock takes the read lock if no writer holds or waits for it, and
// otherwise returns ErrLocked at once, leaving no node behind; see
// Mutex.TryLock.
func (rw *RWMutex) TryRLock(ctx context.Context) error {
	return rw.read.TryLock(ctx)
}

// RUnlock releases the read lock; see Mutex.Unlock.
func (rw *RWMutex) RUnlock(ctx context.Context) error { return rw.read.Unlock(ctx) }

// Lock takes the write lock, waiting for every holder and waiter queued
// ahead, until ctx ends; see Mutex.Lock. It returns ErrBusy while this
// RWMutex holds or is taking its read lock.
func (rw *RWMutex) Lock(ctx context.Context) error {
	return rw.write.Lock(ctx)
}

// TryLock takes the write lock if no one holds or waits for the lock, and
// otherwise returns ErrLocked at once, leaving no node behind; see
// Mutex.TryLock.
func (rw *RWMutex) TryLock(ctx context.Context) error {
	return rw.write.TryLock(ctx)
}

// Unlock releases the write lock; see Mutex.Unlock.
func (rw *RWMutex) Unlock(ctx context.Context) error { return rw.write.Unlock(ctx) }
