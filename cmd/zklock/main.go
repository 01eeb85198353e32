// Command zklock runs a command under a ZooKeeper lock or while leader, and
// inspects locks and elections, with the zklock library's guarantees: the
// command is stopped before the server could hand the lock to anyone else,
// and it gets a fencing token.
//
// Usage:
//
//	zklock [--servers host[:port],...[/chroot]] [--session-timeout D] <command> ...
//	  lock    [--shared | --limit N] [--timeout D | --nonblock] [--grace D] [--loss-margin D] [--data S] PATH -- COMMAND [ARG...]
//	  elect   [--id ID] [--grace D] [--loss-margin D] PATH -- COMMAND [ARG...]
//	  leader  [--json] [--watch] PATH
//	  holders [--json] PATH
//	  bench   [--duration D] [--sessions N,...] [--baseline] [--json FILE]
//	  help    [COMMAND]
//	  version
//
// Run "zklock help" or "zklock <command> --help" for details and exit
// statuses.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/zklock/zklock"
)

// Exit statuses besides COMMAND's own, following sysexits.h where one fits.
const (
	exitUsage       = 64 // EX_USAGE: bad flags or arguments
	exitNoPath      = 66 // EX_NOINPUT: leader or holders on a path that does not exist
	exitUnavailable = 69 // EX_UNAVAILABLE: ZooKeeper could not be reached
	exitSoftware    = 70 // EX_SOFTWARE: an unexpected error
	exitNotAcquired = 75 // EX_TEMPFAIL: the lock was not acquired (timeout, --nonblock), or no leader
	exitLost        = 76 // the lock or leadership was lost while COMMAND ran; COMMAND was stopped
	exitNoPerm      = 77 // EX_NOPERM: ZooKeeper refused access (not authenticated, ACL)
)

const globalUsage = `zklock runs a command under a ZooKeeper lock or while leader.

Usage:
  zklock [global flags] <command> [flags] ...

Commands:
  lock     run a command while holding a lock (exclusive, --shared, or one
           of --limit N leases)
  elect    run a command while leader; campaign again when leadership is lost
  leader   print the current leader's value
  holders  list the contenders of a lock, semaphore or election path, with
           their kind, holder first
  bench    measure lock performance on a ZooKeeper ensemble
  help     print this help, or a command's ("zklock help lock")
  version  print the module version and VCS revision zklock was built from

Global flags, accepted before or after the command:
  --servers S          ZooKeeper connect string, as the Java client takes it:
                       host[:port],host[:port]...[/chroot], port 2181 if omitted;
                       a /chroot suffix puts every PATH under it (default
                       $ZK_SERVERS, else 127.0.0.1:2181)
  --session-timeout D  ZooKeeper session timeout to request (default 10s, 5 ticks of
                       a default server); the server may grant another, which
                       lock and elect check (see "zklock lock --help")
  --tls-ca FILE        connect over TLS to the servers' secure client port,
                       trusting the PEM certificates in FILE (default
                       $ZKLOCK_TLS_CA; without it, plain TCP)
  --tls-cert FILE      with --tls-ca: a PEM client certificate, for servers
  --tls-key FILE       that ask for one (default $ZKLOCK_TLS_CERT, $ZKLOCK_TLS_KEY)

Flags of lock, elect, leader and holders may also follow PATH; after
"--", or from COMMAND's first word on, words are COMMAND's.

Exit statuses:
  COMMAND's own status when it ran to completion
  64  usage error: bad flags or arguments, a PATH ZooKeeper rejects, or a
      session timeout granted by ZooKeeper that --grace and --loss-margin
      do not fit
  66  leader or holders: PATH does not exist
  69  ZooKeeper could not be reached (or stopped answering)
  70  unexpected error
  75  lock not acquired (--timeout passed, or --nonblock and held), or no leader
  76  the lock or leadership was lost while COMMAND ran; COMMAND was stopped
  77  ZooKeeper refused access to PATH (not authenticated, ACL)
  126, 127  COMMAND could not be executed, or was not found
  128+N  zklock was interrupted by signal N before COMMAND started

Environment:
  ZK_SERVERS    default for --servers
  ZKLOCK_AUTH   user:password: authenticate every ZooKeeper session with the
                digest scheme (kept out of the command line, where ps shows it)
  ZKLOCK_TLS_CA, ZKLOCK_TLS_CERT, ZKLOCK_TLS_KEY
                defaults for --tls-ca, --tls-cert and --tls-key

Run "zklock <command> --help" for a command's flags and examples.
`

// globals are the flags shared by every command.
type globals struct {
	serversRaw     string   // --servers or $ZK_SERVERS as given
	servers        []string // host:port each
	chroot         string   // the connect string's /chroot suffix, if any
	serversSet     bool     // --servers or $ZK_SERVERS named them
	sessionTimeout time.Duration
	auth           string // $ZKLOCK_AUTH: digest credentials, user:password
	tlsCA          string // --tls-ca: PEM certificates to trust; TLS when set
	tlsCert        string // --tls-cert: PEM client certificate
	tlsKey         string // --tls-key: its PEM private key
	tls            *tls.Config
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
	def := os.Getenv("ZK_SERVERS")
	if def == "" {
		def = "127.0.0.1:2181"
	}
	g := &globals{serversRaw: def, sessionTimeout: 10 * time.Second, stdout: stdout, stderr: stderr,
		serversSet: os.Getenv("ZK_SERVERS") != "", auth: os.Getenv("ZKLOCK_AUTH"),
		tlsCA: os.Getenv("ZKLOCK_TLS_CA"), tlsCert: os.Getenv("ZKLOCK_TLS_CERT"), tlsKey: os.Getenv("ZKLOCK_TLS_KEY")}
	if g.auth != "" && !strings.Contains(g.auth, ":") {
		return nil, nil, usagef("$ZKLOCK_AUTH must be user:password")
	}
	fs := &flags{flag.NewFlagSet("zklock", flag.ContinueOnError), g, globalUsage}
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	g.define(fs.FlagSet)
	if err := parseFlags(fs, args); err != nil {
		return nil, nil, err
	}
	return g, fs.Args(), nil
}

// define adds the global flags to fs: they are accepted before the
// command and after it, as in Go's own tools.
func (g *globals) define(fs *flag.FlagSet) {
	fs.Func("servers", "", func(v string) error {
		g.serversRaw, g.serversSet = v, true
		return nil
	})
	fs.DurationVar(&g.sessionTimeout, "session-timeout", g.sessionTimeout, "")
	fs.StringVar(&g.tlsCA, "tls-ca", g.tlsCA, "")
	fs.StringVar(&g.tlsCert, "tls-cert", g.tlsCert, "")
	fs.StringVar(&g.tlsKey, "tls-key", g.tlsKey, "")
}

// tlsConfig builds the TLS configuration the TLS flags ask for; nil
// without --tls-ca.
func (g *globals) tlsConfig() (*tls.Config, error) {
	if g.tlsCA == "" {
		if g.tlsCert != "" || g.tlsKey != "" {
			return nil, usagef("--tls-cert and --tls-key need --tls-ca")
		}
		return nil, nil
	}
	pem, err := os.ReadFile(g.tlsCA)
	if err != nil {
		return nil, usagef("--tls-ca: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, usagef("--tls-ca %s: no PEM certificate in it", g.tlsCA)
	}
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	switch {
	case g.tlsCert != "" && g.tlsKey != "":
		cert, err := tls.LoadX509KeyPair(g.tlsCert, g.tlsKey)
		if err != nil {
			return nil, usagef("--tls-cert, --tls-key: %v", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	case g.tlsCert != "" || g.tlsKey != "":
		return nil, usagef("--tls-cert and --tls-key go together")
	}
	return cfg, nil
}

// finish checks the global flags once every flag is parsed.
func (g *globals) finish() error {
	var err error
	if g.servers, g.chroot, err = parseConnect(g.serversRaw); err != nil {
		return err
	}
	if g.sessionTimeout <= 0 {
		return usagef("--session-timeout %v must be positive", g.sessionTimeout)
	}
	if g.tls, err = g.tlsConfig(); err != nil {
		return err
	}
	return nil
}

// defaultPort is ZooKeeper's client port, for hosts given without one.
const defaultPort = "2181"

// parseConnect reads a connect string the way the Java client and kazoo
// do: "host[:port],host[:port]...[/chroot]", 2181 for a host without a
// port, the chroot applying to every path.
func parseConnect(s string) (servers []string, chroot string, err error) {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '/'); i >= 0 {
		s, chroot = s[:i], s[i:]
		if chroot == "/" {
			chroot = ""
		}
	}
	for _, h := range strings.Split(s, ",") {
		if h = strings.TrimSpace(h); h == "" {
			continue
		}
		host, port, err := net.SplitHostPort(h)
		if err != nil {
			// No port: a host name, an IPv4 address, or a bracketed IPv6 one.
			host, port = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"), defaultPort
			if strings.ContainsAny(host, "[]") || (strings.Contains(host, ":") && !strings.HasPrefix(h, "[")) {
				return nil, "", usagef("--servers: %q is not host, host:port or [IPv6]:port", h)
			}
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || host == "" {
			return nil, "", usagef("--servers: %q is not host, host:port or [IPv6]:port", h)
		}
		servers = append(servers, net.JoinHostPort(host, port))
	}
	if len(servers) == 0 {
		return nil, "", usagef("--servers is empty")
	}
	return servers, chroot, nil
}

func dispatch(g *globals, args []string) error {
	if len(args) == 0 {
		return usagef("missing command: lock, elect, leader, holders, bench, help or version")
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
	case "version":
		if len(args) > 0 {
			return usagef("version: unexpected arguments %q", args)
		}
		fmt.Fprintln(g.stdout, version())
		return nil
	case "help", "-h", "-help", "--help":
		return help(g, args)
	}
	return usagef("unknown command %q: want lock, elect, leader, holders, bench, help or version", cmd)
}

// help prints the usage of zklock, or of the one command named.
func help(g *globals, args []string) error {
	texts := map[string]string{"lock": lockUsage, "elect": electUsage, "leader": leaderUsage,
		"holders": holdersUsage, "bench": benchUsage}
	switch {
	case len(args) == 0:
		fmt.Fprint(g.stdout, globalUsage)
	case len(args) == 1 && texts[args[0]] != "":
		fmt.Fprint(g.stdout, texts[args[0]])
	default:
		return usagef("help: unknown command %q: want lock, elect, leader, holders or bench", strings.Join(args, " "))
	}
	return nil
}

// version is the module version and VCS revision the binary was built
// from, as the Go toolchain recorded them.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "zklock (no build information)"
	}
	v := "zklock " + bi.Main.Version
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if r := settings["vcs.revision"]; r != "" {
		v += " " + settings["vcs"] + " " + r
		if settings["vcs.modified"] == "true" {
			v += " (modified)"
		}
		if t := settings["vcs.time"]; t != "" {
			v += " " + t
		}
	}
	return v + " " + bi.GoVersion
}

// flags is a command's flag set and its --help text.
type flags struct {
	*flag.FlagSet
	g     *globals
	usage string
}

// newFlags returns a command's flag set, with the global flags; --help
// prints usage to stdout.
func newFlags(g *globals, name, usage string) *flags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {} // errors are reported in one line instead
	g.define(fs)
	return &flags{fs, g, usage}
}

// parseFlags parses a command's flags, turning errors into usage errors,
// then checks the global flags.
func parseFlags(fs *flags, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(fs.g.stdout, fs.usage)
			return err
		}
		if fs.Name() == "zklock" {
			return usagef("%v", err)
		}
		return usagef("%s: %v", fs.Name(), err)
	}
	return fs.g.finish()
}

// parseArgs parses flags placed anywhere among the first npos positional
// arguments (PATH) and returns those and the rest: the words after "--",
// or from the first positional argument past npos on (COMMAND). A flag
// after PATH is thus parsed, never taken for COMMAND.
func parseArgs(fs *flags, args []string, npos int) (pos, rest []string, err error) {
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, nil, err
		}
		left := fs.Args()
		used := len(args) - len(left)
		dashes := used > 0 && args[used-1] == "--"
		for dashes && len(pos) < npos && len(left) > 0 {
			pos, left = append(pos, left[0]), left[1:]
		}
		if dashes || len(left) == 0 || len(pos) == npos {
			return pos, left, nil
		}
		pos, args = append(pos, left[0]), left[1:]
	}
}

// pathAndCommand parses "[flags] PATH [flags] [--] COMMAND [ARG...]".
func pathAndCommand(fs *flags, args []string) (string, []string, error) {
	name := fs.Name()
	pos, rest, err := parseArgs(fs, args, 1)
	if err != nil {
		return "", nil, err
	}
	if len(pos) == 0 {
		return "", nil, usagef("%s: missing PATH and COMMAND", name)
	}
	path := pos[0]
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
	if g.chroot != "" {
		opts = append(opts, zklock.WithChroot(g.chroot))
	}
	if g.auth != "" {
		user, password, _ := strings.Cut(g.auth, ":")
		opts = append(opts, zklock.WithDigestAuth(user, password))
	}
	if g.tls != nil {
		opts = append(opts, zklock.WithTLS(g.tls))
	}
	s, err := zklock.Connect(cctx, g.servers, opts...)
	if errors.Is(err, zklock.ErrInvalidOption) {
		return nil, usagef("%v", err)
	}
	if err != nil {
		return nil, connectError(g, bound, err)
	}
	return s, nil
}
