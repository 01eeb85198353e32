// CuratorPeer is a ZooKeeper client driven over stdin/stdout so that Go tests
// can make Apache Curator recipes contend with zklock on the same paths.
//
// Usage: java -cp <curator, zookeeper, guava, slf4j jars>:<dir> CuratorPeer <connectString>
//
// Protocol: one command per stdin line, one reply per stdout line:
//
//   lock <path>            -> locked <path> <lock node path>
//   unlock <path>          -> unlocked <path>
//   rlock <path>           -> rlocked <path> <read lock node path>
//   runlock <path>         -> runlocked <path>
//   wlock <path>           -> wlocked <path> <write lock node path>
//   wunlock <path>         -> wunlocked <path>
//   latch <path> <id>      -> latch-started <path>, later leader <path> / notleader <path>
//   latch-close <path>     -> (notleader <path> if it led) latch-closed <path>
//   leader-id <path>       -> leader-id <path> <id|none>
//   sem-acquire <path> <n> -> sem-acquired <path> <lease node path>
//   sem-release <path> <node> -> sem-released <path> <node>
//   quit (or end of stdin) -> bye, exit status 0
//
// A failed command prints "error <command> <path>: <message>". "ready" is
// printed once the client is connected.
//
// Commands run on one single-threaded lane per (recipe, path). A lane keeps
// commands for one path in order, lets a blocked lock on one path leave other
// paths responsive, and, because InterProcessMutex is owned by the thread
// that acquired it, makes unlock run on the thread that locked. The read and
// write sides of a path's InterProcessReadWriteLock have a lane each, so a
// write lock waiting behind this peer's own read lock leaves runlock free.
// sem-acquire runs on a lane of its own and sem-release on another, so a
// lease can be returned while an acquire on the same path waits; a lease is
// not owned by a thread.

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.leader.LeaderLatchListener;
import org.apache.curator.framework.recipes.leader.Participant;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.framework.recipes.locks.InterProcessReadWriteLock;
import org.apache.curator.framework.recipes.locks.InterProcessSemaphoreV2;
import org.apache.curator.framework.recipes.locks.Lease;
import org.apache.curator.retry.ExponentialBackoffRetry;
import org.apache.curator.utils.ZKPaths;

class CuratorPeer {
    // PeerMutex exposes the lock node path. InterProcessMutex keeps it per
    // owning thread and offers it only through the protected getLockPath, so
    // it is exact (no guessing among participants) when read on the lane
    // thread right after acquire.
    static final class PeerMutex extends InterProcessMutex {
        PeerMutex(CuratorFramework client, String path) {
            super(client, path);
        }

        String nodePath() {
            return getLockPath();
        }
    }

    // PeerWriteLock and PeerReadLock are InterProcessReadWriteLock's two
    // sides, built as its constructor builds them (the read side consults
    // the write side it belongs to), exposing the node path as PeerMutex
    // does.
    static final class PeerWriteLock extends InterProcessReadWriteLock.WriteLock {
        PeerWriteLock(CuratorFramework client, String path) {
            super(client, path, null);
        }

        String nodePath() {
            return getLockPath();
        }
    }

    static final class PeerReadLock extends InterProcessReadWriteLock.ReadLock {
        PeerReadLock(CuratorFramework client, String path, PeerWriteLock writer) {
            super(client, path, null, writer);
        }

        String nodePath() {
            return getLockPath();
        }
    }

    // PeerRWLock is one path's read-write lock.
    static final class PeerRWLock {
        final PeerWriteLock writer;
        final PeerReadLock reader;

        PeerRWLock(CuratorFramework client, String path) {
            writer = new PeerWriteLock(client, path);
            reader = new PeerReadLock(client, path, writer);
        }
    }

    static CuratorFramework client;
    static final Map<String, ExecutorService> lanes = new ConcurrentHashMap<>();
    static final Map<String, PeerMutex> mutexes = new ConcurrentHashMap<>();
    static final Map<String, PeerRWLock> rwlocks = new ConcurrentHashMap<>();
    static final Map<String, LeaderLatch> latches = new ConcurrentHashMap<>();
    // leases held, by lease node path.
    static final Map<String, Lease> leases = new ConcurrentHashMap<>();

    // say writes one whole line; synchronized so lines from lanes and latch
    // listeners never interleave.
    static synchronized void say(String line) {
        System.out.println(line);
        System.out.flush();
    }

    static void fail(String cmd, String path, Throwable t) {
        String msg = String.valueOf(t).replace('\n', ' ').replace('\r', ' ');
        say("error " + cmd + " " + path + ": " + msg);
    }

    // Daemon lane threads never keep the JVM alive after quit.
    static ExecutorService lane(String key) {
        return lanes.computeIfAbsent(key, k -> Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "lane " + k);
            t.setDaemon(true);
            return t;
        }));
    }

    interface Action {
        void run() throws Exception;
    }

    static void submit(String recipe, String cmd, String path, Action a) {
        lane(recipe + " " + path).execute(() -> {
            try {
                a.run();
            } catch (Throwable t) {
                fail(cmd, path, t);
            }
        });
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: CuratorPeer <connectString>");
            System.exit(2);
        }
        client = CuratorFrameworkFactory.builder()
                .connectString(args[0])
                .sessionTimeoutMs(10_000)
                .retryPolicy(new ExponentialBackoffRetry(100, 3))
                .build();
        client.start();
        if (!client.blockUntilConnected(60, TimeUnit.SECONDS)) {
            say("error connect " + args[0] + ": not connected within 60s");
            System.exit(1);
        }
        say("ready");

        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            String[] f = line.trim().split("\\s+");
            if (f.length == 0 || f[0].isEmpty()) {
                continue;
            }
            if (f[0].equals("quit")) {
                break;
            }
            try {
                dispatch(f);
            } catch (Throwable t) {
                fail(f[0], f.length > 1 ? f[1] : "-", t);
            }
        }
        shutdown();
    }

    static void dispatch(String[] f) {
        String cmd = f[0];
        int want = cmd.equals("latch") || cmd.startsWith("sem-") ? 3 : 2;
        if (f.length != want) {
            throw new IllegalArgumentException("want " + (want - 1) + " argument(s), got " + (f.length - 1));
        }
        String path = f[1];
        switch (cmd) {
            case "lock":
                submit("lock", cmd, path, () -> {
                    // One mutex per path, so a repeated lock is Curator's
                    // reentrant acquire rather than a self-deadlock.
                    PeerMutex m = mutexes.computeIfAbsent(path, p -> new PeerMutex(client, p));
                    m.acquire();
                    say("locked " + path + " " + m.nodePath());
                });
                break;
            case "unlock":
                submit("lock", cmd, path, () -> {
                    PeerMutex m = mutexes.get(path);
                    if (m == null) {
                        throw new IllegalStateException("not locked by this peer");
                    }
                    m.release();
                    say("unlocked " + path);
                });
                break;
            case "rlock":
                submit("rlock", cmd, path, () -> {
                    // Reentrant like lock: a repeated rlock creates no node.
                    PeerReadLock r = rwlock(path).reader;
                    r.acquire();
                    say("rlocked " + path + " " + r.nodePath());
                });
                break;
            case "runlock":
                submit("rlock", cmd, path, () -> {
                    PeerRWLock rw = rwlocks.get(path);
                    if (rw == null) {
                        throw new IllegalStateException("not read-locked by this peer");
                    }
                    rw.reader.release();
                    say("runlocked " + path);
                });
                break;
            case "wlock":
                submit("wlock", cmd, path, () -> {
                    PeerWriteLock w = rwlock(path).writer;
                    w.acquire();
                    say("wlocked " + path + " " + w.nodePath());
                });
                break;
            case "wunlock":
                submit("wlock", cmd, path, () -> {
                    PeerRWLock rw = rwlocks.get(path);
                    if (rw == null) {
                        throw new IllegalStateException("not write-locked by this peer");
                    }
                    rw.writer.release();
                    say("wunlocked " + path);
                });
                break;
            case "latch":
                String id = f[2];
                submit("latch", cmd, path, () -> {
                    if (latches.containsKey(path)) {
                        throw new IllegalStateException("latch already started");
                    }
                    // NOTIFY_LEADER: closing a leading latch prints
                    // notleader, so losing leadership is always visible.
                    LeaderLatch l = new LeaderLatch(client, path, id, LeaderLatch.CloseMode.NOTIFY_LEADER);
                    l.addListener(new LeaderLatchListener() {
                        @Override
                        public void isLeader() {
                            say("leader " + path);
                        }

                        @Override
                        public void notLeader() {
                            say("notleader " + path);
                        }
                    });
                    latches.put(path, l);
                    l.start();
                    say("latch-started " + path);
                });
                break;
            case "latch-close":
                submit("latch", cmd, path, () -> {
                    LeaderLatch l = latches.remove(path);
                    if (l == null) {
                        throw new IllegalStateException("no latch");
                    }
                    l.close();
                    say("latch-closed " + path);
                });
                break;
            case "leader-id":
                submit("latch", cmd, path, () -> {
                    LeaderLatch l = latches.get(path);
                    if (l == null) {
                        throw new IllegalStateException("no latch");
                    }
                    Participant p = l.getLeader();
                    // getLeader returns a dummy participant with an empty id
                    // when nobody holds the latch.
                    String leader = p.isLeader() && !p.getId().isEmpty() ? p.getId() : "none";
                    say("leader-id " + path + " " + leader);
                });
                break;
            case "sem-acquire":
                int n = Integer.parseInt(f[2]);
                submit("sem-acquire", cmd, path, () -> {
                    // A new semaphore per acquire: Curator keeps no lease
                    // state in it, and n stays what this command says.
                    InterProcessSemaphoreV2 sem = new InterProcessSemaphoreV2(client, path, n);
                    Lease l = sem.acquire();
                    // A Lease tells only its node's name; its directory is
                    // the one the semaphore lists its participants in.
                    String node = ZKPaths.makePath(path, "leases", l.getNodeName());
                    if (!sem.getParticipantNodes().contains(l.getNodeName())) {
                        l.close();
                        throw new IllegalStateException("lease " + node + " is not among the participants");
                    }
                    leases.put(node, l);
                    say("sem-acquired " + path + " " + node);
                });
                break;
            case "sem-release":
                String node = f[2];
                submit("sem-release", cmd, path, () -> {
                    Lease l = leases.remove(node);
                    if (l == null) {
                        throw new IllegalStateException("lease " + node + " not held by this peer");
                    }
                    l.close();
                    say("sem-released " + path + " " + node);
                });
                break;
            default:
                throw new IllegalArgumentException("unknown command");
        }
    }

    static PeerRWLock rwlock(String path) {
        return rwlocks.computeIfAbsent(path, p -> new PeerRWLock(client, p));
    }

    static void shutdown() {
        for (LeaderLatch l : latches.values()) {
            try {
                l.close();
            } catch (Throwable t) {
                fail("quit", l.getOurPath(), t);
            }
        }
        // Closing the session deletes every lock and lease node this peer
        // still holds.
        client.close();
        say("bye");
        System.exit(0);
    }
}
