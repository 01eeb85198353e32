package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/go-zookeeper/zk"

	"github.com/zklock/zklock"
)

// plain is err's message said once: without the library's "zklock: "
// prefixes, which each wrapping layer repeats, and without a segment that
// repeats the one before it ("lock: lock: ...").
func plain(err error) string {
	segs := strings.Split(strings.ReplaceAll(err.Error(), "zklock: ", ""), ": ")
	out := segs[:0]
	for i, s := range segs {
		if i > 0 && s == segs[i-1] {
			continue
		}
		out = append(out, s)
	}
	return strings.Join(out, ": ")
}

// lossCause is why a hold ended, without the "lock lost" or "leadership
// lost" the caller's own message already says.
func lossCause(err error) string {
	if err == nil {
		return "unknown cause"
	}
	s := plain(err)
	for _, p := range []string{"lock lost: ", "leadership lost: ", "lease lost: "} {
		s = strings.TrimPrefix(s, p)
	}
	return s
}

// opError turns a failed operation of command name on path into zklock's
// result, by cause:
//   - a path ZooKeeper rejects, by the library's check or the server's: 64
//   - a server refusal (not authenticated, ACL): 77
//   - no such path, for commands that only read: 66
//   - ZooKeeper unreachable or the session lost: 69
//   - anything else: 70
func opError(name, path string, err error) error {
	switch {
	case errors.Is(err, zklock.ErrInvalidPath):
		reason := plain(err)
		if i := strings.LastIndex(reason, "invalid znode path "); i >= 0 {
			reason = reason[i+len("invalid znode path "):]
		} else {
			reason = strings.TrimPrefix(reason[strings.LastIndex(reason, "invalid path: ")+1:], "nvalid path: ")
		}
		return usagef("%s: invalid PATH %s", name, reason)
	case errors.Is(err, zk.ErrBadArguments), errors.Is(err, zk.ErrNoChildrenForEphemerals):
		return usagef("%s: ZooKeeper rejected PATH %s: %s", name, path, zkReason(err))
	case errors.Is(err, zk.ErrNoAuth), errors.Is(err, zk.ErrAuthFailed), errors.Is(err, zk.ErrInvalidACL):
		return &exitError{exitNoPerm, fmt.Sprintf(
			"%s: ZooKeeper refused access to %s (%s); check the node's ACL (getAcl in zkCli.sh) and the credentials ($ZKLOCK_AUTH)",
			name, path, zkReason(err))}
	case errors.Is(err, zk.ErrNoNode):
		return &exitError{exitNoPath, fmt.Sprintf("%s: no such path %s", name, path)}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, zk.ErrConnectionClosed),
		errors.Is(err, zk.ErrNoServer), errors.Is(err, zklock.ErrSessionExpired),
		errors.Is(err, zklock.ErrSessionClosed), errors.Is(err, zk.ErrClosing):
		return &exitError{exitUnavailable, fmt.Sprintf("%s %s: lost touch with ZooKeeper: %s", name, path, plain(err))}
	}
	return &exitError{exitSoftware, fmt.Sprintf("%s %s: %s", name, path, plain(err))}
}

// zkReason is go-zookeeper's text for err without its "zk: " prefix.
func zkReason(err error) string {
	for _, e := range []error{zk.ErrNoAuth, zk.ErrAuthFailed, zk.ErrInvalidACL, zk.ErrBadArguments, zk.ErrNoChildrenForEphemerals} {
		if errors.Is(err, e) {
			return strings.TrimPrefix(e.Error(), "zk: ")
		}
	}
	return plain(err)
}

// connectError says why no ZooKeeper session could be made: a host name
// that does not resolve is named as such.
func connectError(g *globals, bound fmt.Stringer, err error) error {
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return &exitError{exitUnavailable, fmt.Sprintf(
			"cannot resolve ZooKeeper host %q (%s); check --servers or $ZK_SERVERS", dns.Name, dns.Err)}
	}
	if errors.Is(err, zk.ErrAuthFailed) || errors.Is(err, zk.ErrNoAuth) {
		return &exitError{exitNoPerm, fmt.Sprintf("ZooKeeper refused the credentials in $ZKLOCK_AUTH (%s)", zkReason(err))}
	}
	return &exitError{exitUnavailable, fmt.Sprintf(
		"cannot reach ZooKeeper at %s within %v (%s); check --servers or $ZK_SERVERS and that the servers run",
		strings.Join(g.servers, ","), bound, plain(err))}
}
