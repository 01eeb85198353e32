package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/zklock/zklock"
)

// defaultGrace is --grace when not given, if the session timeout leaves
// room for it.
const defaultGrace = 2 * time.Second

// timing holds the flags of the timing rule for lock and elect. Every
// check uses the session timeout the server granted (T), checked again for
// each ZooKeeper session: the Session presumes a hold lost grace+slack
// before the earliest moment the ZooKeeper leader could expire the session,
// and the library caps that margin at T/2, so grace+slack must fit in T/2.
type timing struct {
	requested time.Duration // --session-timeout
	grace     time.Duration // --grace; 0: default for T
	slack     time.Duration // --loss-margin; 0: T/10
}

// timingError is a timing rule the granted session timeout cannot meet.
type timingError struct{ msg string }

func (e *timingError) Error() string { return e.msg }

// forTimeout returns --grace and the Session's loss margin (grace plus
// --loss-margin) for a session timeout T, or a timingError saying what
// fits.
func (tm *timing) forTimeout(t time.Duration) (grace, margin time.Duration, err error) {
	slack := tm.slack
	if slack == 0 {
		slack = t / 10
	}
	granted := ""
	if t != tm.requested {
		granted = fmt.Sprintf(" (ZooKeeper granted %v for the --session-timeout %v asked)", t, tm.requested)
	}
	room := t/2 - slack
	grace = tm.grace
	if grace == 0 {
		grace = min(defaultGrace, room)
		if grace <= 0 {
			return 0, 0, &timingError{fmt.Sprintf(
				"--loss-margin %v leaves no time for --grace within half the session timeout %v%s: use a --loss-margin below %v",
				slack, t, granted, t/2)}
		}
	}
	if grace+slack > t/2 {
		fits := "a longer --session-timeout"
		if room > 0 {
			fits = fmt.Sprintf("--grace %v or less, or a longer --session-timeout", room)
		}
		return 0, 0, &timingError{fmt.Sprintf(
			"--grace %v is too long: with --loss-margin %v it must fit in half the session timeout %v%s; use %s",
			grace, slack, t, granted, fits)}
	}
	return grace, grace + slack, nil
}

// connectHold connects for lock or elect. It checks the timing rule on the
// requested timeout before connecting and on the granted one after, and if
// the Session's loss margin must change for the granted timeout, it
// connects again with the right one. It warns on stderr when the granted
// timeout is known to break the five-ticks precondition.
func connectHold(ctx context.Context, g *globals, tm *timing) (s *zklock.Session, grace, margin time.Duration, err error) {
	if _, _, err = tm.forTimeout(tm.requested); err != nil {
		return nil, 0, 0, usagef("%v", err)
	}
	// The first connect keeps the library's default margin, a tenth of the
	// granted timeout, which fits any timeout; the rule is then checked on
	// what was granted, and the Session made again with the margin it needs.
	var opts []zklock.SessionOption
	margin = -1
	for range 3 {
		s, err = connect(ctx, g, opts...)
		if err != nil {
			return nil, 0, 0, err
		}
		t := s.NegotiatedTimeout()
		if margin < 0 {
			margin = t / 10
		}
		var want time.Duration
		grace, want, err = tm.forTimeout(t)
		switch {
		case t == 0:
			// The session ended at once; try again.
			margin = -1
		case err != nil:
			s.Close()
			return nil, 0, 0, usagef("%v", err)
		case want == margin:
			warnTicks(g.stderr, tm.requested, t, s.Server())
			return s, grace, margin, nil
		}
		s.Close()
		if t != 0 {
			margin = want
			opts = []zklock.SessionOption{zklock.WithLossMargin(want)}
		}
	}
	return nil, 0, 0, &exitError{exitSoftware, "ZooKeeper granted a different session timeout to each of three sessions; check that the servers share one configuration"}
}

// warnTicks warns when the granted timeout t is known to be below the
// five ticks the loss deadline assumes. The server's tickTime is known
// when it answers the "conf" four-letter word (not allowed by default:
// 4lw.commands.whitelist). Otherwise only a raised timeout says something:
// the server then granted its minSessionTimeout, two ticks unless
// configured otherwise. When the server grants what was asked and does not
// answer "conf", zklock cannot tell: ZooKeeper does not tell clients its
// tickTime.
func warnTicks(stderr io.Writer, requested, t time.Duration, server string) {
	if tick := tickTime(server); tick > 0 {
		if t < 5*tick {
			fmt.Fprintf(stderr, "zklock: warning: the session timeout %v is %.1f ticks of the server's tickTime %v; "+
				"the loss deadline assumes at least 5 ticks: ask for %v or more, or add %v to --loss-margin\n",
				t, float64(t)/float64(tick), tick, 5*tick, tick-t/5)
		}
		return
	}
	if t > requested {
		fmt.Fprintf(stderr, "zklock: warning: ZooKeeper raised the session timeout from %v to %v, its minimum, which is 2 ticks unless the server sets minSessionTimeout; "+
			"the loss deadline assumes at least 5 ticks: ask for %v or more, or add (tickTime - %v) to --loss-margin\n",
			requested, t, t*5/2, t/5)
	}
}

// confTimeout bounds the "conf" four-letter word.
const confTimeout = time.Second

// tickTime asks server for its tickTime with the "conf" four-letter word;
// 0 if it does not say.
func tickTime(server string) time.Duration {
	if server == "" {
		return 0
	}
	c, err := net.DialTimeout("tcp", server, confTimeout)
	if err != nil {
		return 0
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(confTimeout))
	if _, err := io.WriteString(c, "conf"); err != nil {
		return 0
	}
	b, _ := io.ReadAll(io.LimitReader(c, 64<<10))
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "tickTime="); ok {
			if ms, err := strconv.Atoi(v); err == nil && ms > 0 {
				return time.Duration(ms) * time.Millisecond
			}
		}
	}
	return 0
}

// watchTimeouts checks every later ZooKeeper session of s against the
// timing rule with the Session's fixed loss margin. The returned context is
// cancelled, with a timingError as its cause, once a session's granted
// timeout no longer fits it (the library would cap the margin silently);
// stop ends the watch and waits for it.
func watchTimeouts(ctx context.Context, s *zklock.Session, tm *timing, margin time.Duration, stderr io.Writer) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	sub := s.Subscribe()
	var wg sync.WaitGroup
	wg.Add(1)
	// Owner: watchTimeouts's caller, through stop, which cancels ctx and
	// waits.
	go func() {
		defer wg.Done()
		defer sub.Stop()
		first := uint64(0)
		for {
			c, err := sub.Next(ctx)
			if err != nil {
				return
			}
			if c.State != zklock.StateConnected {
				continue
			}
			if first == 0 {
				first = c.Generation // checked by connectHold
				continue
			}
			if c.Generation == first {
				continue
			}
			first = c.Generation
			if err := checkSession(s, tm, margin, stderr); err != nil {
				cancel(err)
				return
			}
		}
	}()
	return ctx, func() {
		cancel(context.Canceled)
		wg.Wait()
	}
}

// checkSession checks the current ZooKeeper session's granted timeout
// against the Session's fixed loss margin.
func checkSession(s *zklock.Session, tm *timing, margin time.Duration, stderr io.Writer) error {
	t := s.NegotiatedTimeout()
	if t == 0 {
		return nil // none yet; the next one is checked when it comes
	}
	_, want, err := tm.forTimeout(t)
	switch {
	case err != nil:
		return &timingError{"a new ZooKeeper session: " + err.Error()}
	case want > margin || margin > t/2:
		return &timingError{fmt.Sprintf(
			"a new ZooKeeper session was granted a session timeout of %v, for which the loss margin %v fixed at start does not fit (it needs %v); check that the servers share one configuration",
			t, margin, want)}
	}
	if stderr != io.Discard {
		warnTicks(stderr, tm.requested, t, s.Server())
	}
	return nil
}

// timingCause returns the timingError that ended ctx, if one did.
func timingCause(ctx context.Context) *timingError {
	var te *timingError
	if errors.As(context.Cause(ctx), &te) {
		return te
	}
	return nil
}

// timingFlags defines --grace and --loss-margin on fs; the returned
// function validates them after parsing.
func timingFlags(fs *flags) func() (*timing, error) {
	grace := fs.Duration("grace", 0, "")
	slack := fs.Duration("loss-margin", 0, "")
	return func() (*timing, error) {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		switch {
		case set["grace"] && *grace <= 0:
			return nil, usagef("%s: --grace %v must be positive", fs.Name(), *grace)
		case set["loss-margin"] && *slack <= 0:
			return nil, usagef("%s: --loss-margin %v must be positive", fs.Name(), *slack)
		}
		return &timing{requested: fs.g.sessionTimeout, grace: *grace, slack: *slack}, nil
	}
}
