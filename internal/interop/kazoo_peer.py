"""A kazoo client driven over stdin/stdout, so that Go tests can make kazoo's
lock recipes contend with zklock on the same paths.

Usage: /usr/bin/python3 kazoo_peer.py <hosts>

Protocol: one command per stdin line, one reply per stdout line:

    lock <path> [identifier]   -> locked <path> <lock node path>
    unlock <path>              -> unlocked <path>
    rlock <path> [identifier]  -> rlocked <path> <lock node path>
    runlock <path>             -> runlocked <path>
    wlock <path> [identifier]  -> wlocked <path> <lock node path>
    wunlock <path>             -> wunlocked <path>
    quit (or end of stdin)     -> bye, exit status 0

A failed command prints "error <command> <path>: <message>". "ready" is
printed once the client is connected.

Commands run on one worker thread per (recipe, path): commands for one path
stay in order, and a blocked acquire on one path leaves the others
responsive.
"""

import logging
import os
import queue
import sys
import threading

from kazoo.client import KazooClient

_out_lock = threading.Lock()


def say(line):
    # One lock for all writers, so lines from workers never interleave.
    with _out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def fail(cmd, path, exc):
    msg = ("%s: %s" % (type(exc).__name__, exc)).replace("\n", " ").replace("\r", " ")
    say("error %s %s: %s" % (cmd, path, msg))


class Lane(object):
    """A daemon worker thread running submitted actions in order."""

    def __init__(self, name):
        self.q = queue.Queue()
        t = threading.Thread(target=self._run, name=name)
        # Daemon: a worker blocked in acquire must not keep the process up.
        t.daemon = True
        t.start()

    def _run(self):
        while True:
            cmd, path, action = self.q.get()
            try:
                action()
            except Exception as exc:  # reported to the driver, peer keeps going
                fail(cmd, path, exc)

    def submit(self, cmd, path, action):
        self.q.put((cmd, path, action))


class Peer(object):
    def __init__(self, client):
        self.client = client
        self.lanes = {}
        # path -> held recipe object; touched only on that path's lane.
        self.locks = {}
        self.rlocks = {}
        self.wlocks = {}

    def lane(self, recipe, path):
        key = (recipe, path)
        if key not in self.lanes:
            self.lanes[key] = Lane("%s %s" % key)
        return self.lanes[key]

    def dispatch(self, fields):
        cmd = fields[0]
        if cmd in ("lock", "rlock", "wlock"):
            if len(fields) not in (2, 3):
                raise ValueError("want <path> [identifier]")
        elif len(fields) != 2:
            raise ValueError("want <path>")
        path = fields[1]
        ident = fields[2] if len(fields) > 2 else None

        if cmd == "lock":
            self.lane("lock", path).submit(
                cmd, path, lambda: self._acquire(self.locks, self._lock, "locked", path, ident))
        elif cmd == "unlock":
            self.lane("lock", path).submit(
                cmd, path, lambda: self._release(self.locks, "unlocked", path))
        elif cmd == "rlock":
            self.lane("rlock", path).submit(
                cmd, path, lambda: self._acquire(self.rlocks, self._rlock, "rlocked", path, ident))
        elif cmd == "runlock":
            self.lane("rlock", path).submit(
                cmd, path, lambda: self._release(self.rlocks, "runlocked", path))
        elif cmd == "wlock":
            self.lane("wlock", path).submit(
                cmd, path, lambda: self._acquire(self.wlocks, self._wlock, "wlocked", path, ident))
        elif cmd == "wunlock":
            self.lane("wlock", path).submit(
                cmd, path, lambda: self._release(self.wlocks, "wunlocked", path))
        else:
            raise ValueError("unknown command")

    def _lock(self, path, ident):
        # kazoo recognises only its own "__lock__" nodes unless told more:
        # "-lock-" makes it queue behind Curator, go-zookeeper and zklock
        # contenders too (kazoo's cross-implementation option).
        return self.client.Lock(path, ident, extra_lock_patterns=("-lock-",))

    # Writers of other libraries: Curator's InterProcessReadWriteLock and
    # zklock's RWMutex write nodes, and "-lock-" mutex nodes.
    _writers = ("__WRIT__", "-lock-")

    def _rlock(self, path, ident):
        # A reader waits only for writers, kazoo's "__lock__" and these.
        # kazoo 2.8's ReadLock waits for the newest writer in the queue,
        # even one queued after it (python-zk/kazoo#649, fixed in 2.9): if
        # a writer queues behind a kazoo reader that is itself waiting for
        # a writer, then once that writer leaves, the reader and the later
        # writer wait for each other, whatever library the writer uses.
        return self.client.ReadLock(path, ident, extra_lock_patterns=self._writers)

    def _wlock(self, path, ident):
        # A writer waits for readers and writers: also Curator's and
        # zklock's "__READ__" nodes.
        return self.client.WriteLock(path, ident, extra_lock_patterns=self._writers + ("__READ__",))

    @staticmethod
    def _acquire(held, factory, reply, path, ident):
        # kazoo's locks are not reentrant: a second acquire by the same
        # holder would wait for itself forever.
        if path in held:
            raise RuntimeError("already held by this peer")
        lk = factory(path, ident)
        lk.acquire()
        held[path] = lk
        # Lock.node is the node's name relative to the lock path.
        say("%s %s %s/%s" % (reply, path, path.rstrip("/"), lk.node))

    @staticmethod
    def _release(held, reply, path):
        lk = held.pop(path, None)
        if lk is None:
            raise RuntimeError("not held by this peer")
        lk.release()
        say("%s %s" % (reply, path))


def main():
    if len(sys.argv) != 2:
        sys.stderr.write("usage: kazoo_peer.py <hosts>\n")
        sys.exit(2)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    client = KazooClient(hosts=sys.argv[1], timeout=10.0)
    client.start(timeout=60)
    say("ready")

    peer = Peer(client)
    for line in sys.stdin:
        fields = line.split()
        if not fields:
            continue
        if fields[0] == "quit":
            break
        try:
            peer.dispatch(fields)
        except Exception as exc:
            fail(fields[0], fields[1] if len(fields) > 1 else "-", exc)

    # Closing the session deletes every lock node this peer still holds.
    client.stop()
    client.close()
    say("bye")
    # os._exit: workers may still be blocked in acquire.
    os._exit(0)


if __name__ == "__main__":
    main()
