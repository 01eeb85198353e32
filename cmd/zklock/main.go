// Command zklock runs a command under a ZooKeeper lock or while leader, and
// inspects locks and elections, with the zklock library's guarantees: the
// command is stopped before the server could hand the lock to anyone else,
// and it gets a fencing token.
//
// Usage:
//
//	zklock [--servers host:port,...] [--session-timeout D] <command> ...
//	  lock    [--timeout D | --nonblock] [--grace D] [--data S] PATH -- COMMAND [ARG...]
//	  elect   [--id ID] [--grace D] PATH -- COMMAND [ARG...]
//	  leader  PATH
//	  holders PATH
//	  bench   [--duration D] [--sessions N,...] [--baseline] [--json FILE]
//
// Run "zklock help" or "zklock <command> --help" for details and exit
// statuses.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/zklock/zklock"
)

// Exit statuses besides COMMAND's own, following sysexits.h where one fits.
const (
	exitUsage       = 64 // EX_USAGE: bad flags or arguments
	exitUnavailable = 69 // EX_UNAVAILABLE: ZooKeeper could not be reached
	exitSoftware    = 70 // EX_SOFTWARE: an unexpected error
	exitNotAcquired = 75 // EX_TEMPFAIL: the lock was not acquired (timeout, --nonblock), or no leader
	exitLost        = 76 // the lock or leadership was lost while COMMAND ran; COMMAND was stopped
)

const globalUsage = `zklock runs a command under a ZooKeeper lock or while leader.

Usage:
  zklock [global flags] <command> [flags] ...

Commands:
  lock     run a command while holding a lock
  elect    run a command while leader; campaign again when leadership is lost
  leader   print the current leader's value
  holders  list the contenders of a lock or election path, holder first
  bench    measure lock performance on a ZooKeeper ensemble

Global flags:
  --servers host:port,...   ZooKeeper servers (default $ZK_SERVERS, else 127.0.0.1:2181)
  --session-timeout D       ZooKeeper session timeout to request (default 10s, 5 ticks of
                            a default server); the server may grant another, which
                            lock and elect check (see "zklock lock --help")

Exit statuses:
  COMMAND's own status when it ran to completion
  64  usage error, or a session timeout granted by ZooKeeper that --grace and
      --loss-margin do not fit
  69  ZooKeeper could not be reached
  70  unexpected error
  75  lock not acquired (--timeout passed, or --nonblock and held), or no leader
  76  the lock or leadership was lost while COMMAND ran; COMMAND was stopped
  128+N  zklock was interrupted by signal N before COMMAND started

Run "zklock <command> --help" for a command's flags and examples.
`

// globals are the flags shared by every command.
type globals struct {
	servers        []string
	serversSet     bool // --servers or $ZK_SERVERS named them
	sessionTimeout time.Duration
	stderr         io.Writer
	stdout         io.Writer
}

// usageError is a bad command line; main prints it with a hint and exits 64.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// exitError carries an exit status and a one-line message (none if empty).
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func main() {
	if os.Args[0] == guardianName {
		os.Exit(guardian(os.Args[1:]))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	g, rest, err := parseGlobals(args, stdout, stderr)
	if err == nil {
		err = dispatch(g, rest)
	}
	return report(err, stderr)
}

func report(err error, stderr io.Writer) int {
	var ue *usageError
	var ee *exitError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "zklock: %s (run \"zklock help\" for usage)\n", ue.msg)
		return exitUsage
	case errors.As(err, &ee):
		if ee.msg != "" {
			fmt.Fprintf(stderr, "zklock: %s\n", ee.msg)
		}
		return ee.code
	}
	fmt.Fprintf(stderr, "zklock: %v\n", err)
	return exitSoftware
}

func parseGlobals(args []string, stdout, stderr io.Writer) (*globals, []string, error) {
	fs := flag.NewFlagSet("zklock", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	def := os.Getenv("ZK_SERVERS")
	if def == "" {
		def = "127.0.0.1:2181"
	}
	servers := fs.String("servers", def, "")
	timeout := fs.Duration("session-timeout", 10*time.Second, "")
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, globalUsage)
			return nil, nil, err
		}
		return nil, nil, usagef("%v", err)
	}
	g := &globals{sessionTimeout: *timeout, stdout: stdout, stderr: stderr, serversSet: os.Getenv("ZK_SERVERS") != ""}
	fs.Visit(func(f *flag.Flag) { g.serversSet = g.serversSet || f.Name == "servers" })
	for _, s := range strings.Split(*servers, ",") {
		if s = strings.TrimSpace(s); s != "" {
			g.servers = append(g.servers, s)
		}
	}
	if len(g.servers) == 0 {
		return nil, nil, usagef("--servers is empty")
	}
	if *timeout <= 0 {
		return nil, nil, usagef("--session-timeout %v must be positive", *timeout)
	}
	return g, fs.Args(), nil
}

func dispatch(g *globals, args []string) error {
	if len(args) == 0 {
		return usagef("missing command: lock, elect, leader, holders or bench")
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "lock":
		return lockCmd(g, args)
	case "elect":
		return electCmd(g, args)
	case "leader":
		return leaderCmd(g, args)
	case "holders":
		return holdersCmd(g, args)
	case "bench":
		return benchCmd(g, args)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(g.stdout, globalUsage)
		return nil
	}
	return usagef("unknown command %q: want lock, elect, leader, holders or bench", cmd)
}

// flags is a command's flag set and its --help text.
type flags struct {
	*flag.FlagSet
	g     *globals
	usage string
}

// newFlags returns a command's flag set; --help prints usage to stdout.
func newFlags(g *globals, name, usage string) *flags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {} // errors are reported in one line instead
	return &flags{fs, g, usage}
}

// parseFlags parses a command's flags, turning errors into usage errors.
func parseFlags(fs *flags, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(fs.g.stdout, fs.usage)
			return err
		}
		return usagef("%s: %v", fs.Name(), err)
	}
	return nil
}

// pathAndCommand splits "PATH [--] COMMAND [ARG...]".
func pathAndCommand(name string, args []string) (string, []string, error) {
	if len(args) == 0 {
		return "", nil, usagef("%s: missing PATH and COMMAND", name)
	}
	path, rest := args[0], args[1:]
	if len(rest) > 0 && rest[0] == "--" {
		rest = rest[1:]
	}
	if len(rest) == 0 {
		return "", nil, usagef("%s: missing COMMAND after PATH %s", name, path)
	}
	if !strings.HasPrefix(path, "/") {
		return "", nil, usagef("%s: PATH %q must be an absolute ZooKeeper path such as /locks/backup", name, path)
	}
	return path, rest, nil
}

// connect opens a Session and maps failure to exit status 69. A server
// that accepts connections but does not answer holds a handshake for up
// to a session timeout, so the bound allows for that on up to three
// servers before the one that answers.
func connect(ctx context.Context, g *globals, opts ...zklock.SessionOption) (*zklock.Session, error) {
	bound := g.sessionTimeout * time.Duration(min(len(g.servers), 3))
	cctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	opts = append([]zklock.SessionOption{zklock.WithSessionTimeout(g.sessionTimeout)}, opts...)
	s, err := zklock.Connect(cctx, g.servers, opts...)
	if errors.Is(err, zklock.ErrInvalidOption) {
		return nil, usagef("%v", err)
	}
	if err != nil {
		return nil, &exitError{exitUnavailable, fmt.Sprintf(
			"cannot reach ZooKeeper at %s within %v (%v); check --servers or $ZK_SERVERS and that the servers run",
			strings.Join(g.servers, ","), bound, err)}
	}
	return s, nil
}
