// Package zktesting runs real Apache ZooKeeper servers for tests, with the
// faults a client of ZooKeeper has to survive: a cut connection, a network
// partition, an expired session, a server that stops and comes back, a node
// deleted by an operator. zklock's own tests use it, and so can the tests
// of code built on zklock (or on any ZooKeeper client): they run against
// the server a deployment runs, not a fake.
//
// # Servers
//
// Start starts a standalone server (n == 1) or an ensemble of n servers on
// 127.0.0.1 for one test and stops it when the test ends; Shared gives
// every test of a package one standalone server, stopped by Main (or Run)
// from the package's TestMain. New starts servers outside a test, for a
// program or a demo, and returns errors instead of failing a test. When a
// test fails, the last lines of its servers' output are logged with it.
//
// The servers are found on the machine: $ZOOKEEPER_HOME when set (an
// Apache ZooKeeper 3.5+ binary release), else Debian's zookeeper package
// (/usr/share/java/zookeeper.jar); java must be on PATH. When none is
// found, Start, Shared and New fail with a message that says how to
// install one.
//
// # ZK_SERVERS
//
// When the environment variable ZK_SERVERS is set, to a comma-separated
// list of host:port, no server is started: the servers listed are used
// instead, by every test of the process. What needs control of the server
// processes (StopServer, StartServer, WipeData, TLS, Start with options)
// then skips the test and says why, and Start skips a test that asks for
// more servers than are listed. Proxies, KillSession, ExpireSession, Admin,
// DeleteNode and Root work the same against such servers; Root keeps each
// test under its own node, so tests can share them.
//
// # Faults
//
// Clients that should fail alone connect through their own Proxies (one
// TCP proxy in front of each server): Cut resets their connections,
// Blackhole drops every byte as a partition would and Heal ends it.
// KillSession ends the ZooKeeper session of the clients behind the proxies
// at once, as an operator or a session timeout would; ExpireSession gets
// the same by a partition long enough for the server to expire the
// session. Cluster.DeleteNode deletes a node as an operator would, and
// Cluster.Admin gives a plain connection to look at the tree.
//
// # Timeouts
//
// Every wait of the package is bounded by Timeout.
package zktesting
