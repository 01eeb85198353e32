package zkserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"
)

// maxFourLetterReply bounds a reply so a misbehaving peer cannot make us
// buffer without limit; real replies (even "dump"/"mntr") are far smaller.
const maxFourLetterReply = 4 << 20

// FourLetter sends a four-letter-word command (ruok, srvr, mntr, ...) to the
// ZooKeeper server at addr and returns its whole reply, read until the server
// closes the connection. The exchange is bounded by ctx: a stopped
// (SIGSTOPped) server accepts connections but never answers, so callers
// should pass a ctx with a deadline.
func FourLetter(ctx context.Context, addr, cmd string) (string, error) {
	reply, err := fourLetter(ctx, addr, cmd)
	if err != nil {
		return "", fmt.Errorf("zkserver: %s %s: %w", cmd, addr, err)
	}
	return reply, nil
}

func fourLetter(ctx context.Context, addr, cmd string) (string, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	// Cancellation without a deadline still has to unblock Read.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if _, err := io.WriteString(conn, cmd); err != nil {
		return "", ctxErr(ctx, err)
	}
	b, err := io.ReadAll(io.LimitReader(conn, maxFourLetterReply))
	if err != nil {
		return "", ctxErr(ctx, err)
	}
	return string(b), nil
}

// ctxErr prefers ctx's error when ctx caused the failure, so callers can
// errors.Is it against context.DeadlineExceeded or context.Canceled.
func ctxErr(ctx context.Context, err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		// The only deadlines on the conn come from ctx, but the conn's
		// timer can fire a moment before ctx's own; this wait is short.
		<-ctx.Done()
	}
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%w (%v)", cerr, err)
	}
	return err
}

// notServing is how ZooKeeper answers most commands before it has joined a
// quorum.
const notServing = "not currently serving requests"

// parseSrvr extracts a "Key: value" field from a srvr reply.
func parseSrvr(reply, key string) (string, error) {
	if strings.Contains(reply, notServing) {
		return "", errors.New("server is not serving requests yet")
	}
	sc := bufio.NewScanner(strings.NewReader(reply))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key+":"); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("no %q in srvr reply %q", key, strings.TrimSpace(reply))
}

// probe is the readiness check: ruok answers imok and srvr reports a mode
// in which the server serves clients.
func probe(ctx context.Context, addr string) error {
	r, err := fourLetter(ctx, addr, "ruok")
	if err != nil {
		return fmt.Errorf("ruok: %w", err)
	}
	if r != "imok" {
		return fmt.Errorf("ruok answered %q", r)
	}
	r, err = fourLetter(ctx, addr, "srvr")
	if err != nil {
		return fmt.Errorf("srvr: %w", err)
	}
	mode, err := parseSrvr(r, "Mode")
	if err != nil {
		return fmt.Errorf("srvr: %w", err)
	}
	switch mode {
	case "standalone", "leader", "follower":
		return nil
	}
	return fmt.Errorf("srvr reports Mode: %s", mode)
}
