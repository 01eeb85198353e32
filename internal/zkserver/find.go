package zkserver

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ErrNotInstalled is wrapped by every error Find returns, so callers can
// tell "no ZooKeeper or Java here" apart from a server that failed to start.
var ErrNotInstalled = errors.New("ZooKeeper server not available")

// InstallHint tells a person how to make ZooKeeper available; Find's errors
// include it.
const InstallHint = "apt-get install zookeeper (Debian/Ubuntu), or set ZOOKEEPER_HOME to an Apache ZooKeeper 3.5+ binary release, or set ZK_SERVERS to host:port,... of running servers"

// Paths of Debian's zookeeper package. The package ships no SLF4J binding,
// so slf4j-simple (stderr) is added to get the server's log at all.
const (
	debianJar   = "/usr/share/java/zookeeper.jar"
	debianSLF4J = "/usr/share/java/slf4j-simple.jar"
)

var debianNetty = []string{"/usr/share/java/netty-codec.jar", "/usr/share/java/netty-resolver.jar"}

// Install is what is needed to launch a ZooKeeper server JVM.
type Install struct {
	// Java is the path of the java executable.
	Java string
	// Classpath lists the jars and directories passed to -cp, in order.
	Classpath []string
	// Home is $ZOOKEEPER_HOME when that was used, empty for Debian's package.
	Home string
}

// ClasspathString returns Classpath joined for the -cp flag.
func (in *Install) ClasspathString() string {
	return strings.Join(in.Classpath, string(os.PathListSeparator))
}

// Find locates ZooKeeper and Java.
//
// $ZOOKEEPER_HOME wins when set: it must hold an Apache binary release
// (lib/*.jar and *.jar). A set but unusable ZOOKEEPER_HOME is an error that
// names the variable rather than a silent fallback, because quietly testing
// against a different server than the one asked for is worse than failing.
// Otherwise Debian's zookeeper package is used. Finally `java` must be on
// PATH. Every error wraps ErrNotInstalled and says how to fix it.
func Find() (*Install, error) {
	var in Install
	if home := os.Getenv("ZOOKEEPER_HOME"); home != "" {
		cp, err := homeClasspath(home)
		if err != nil {
			return nil, fmt.Errorf("zkserver: %w: ZOOKEEPER_HOME=%s: %v; fix or unset ZOOKEEPER_HOME. To install ZooKeeper: %s",
				ErrNotInstalled, home, err, InstallHint)
		}
		in.Home, in.Classpath = home, cp
	} else {
		if !isFile(debianJar) {
			return nil, fmt.Errorf("zkserver: %w: %s not found and ZOOKEEPER_HOME not set. To install ZooKeeper: %s",
				ErrNotInstalled, debianJar, InstallHint)
		}
		// The jar's manifest Class-Path pulls in the rest of the package.
		in.Classpath = []string{debianJar}
		if isFile(debianSLF4J) {
			in.Classpath = append(in.Classpath, debianSLF4J)
		}
		// The manifest leaves out two jars the Netty connection factory
		// (TLS) needs; Debian's netty packages have them.
		for _, j := range debianNetty {
			if isFile(j) {
				in.Classpath = append(in.Classpath, j)
			}
		}
	}
	java, err := exec.LookPath("java")
	if err != nil {
		return nil, fmt.Errorf("zkserver: %w: java not found on PATH (ZooKeeper needs a Java 8+ runtime, e.g. apt-get install default-jre-headless): %v",
			ErrNotInstalled, err)
	}
	in.Java = java
	return &in, nil
}

// homeClasspath mirrors what zkEnv.sh puts on the classpath for a binary
// release: the conf dir (so the release's own log configuration is found),
// lib/*.jar and the top-level *.jar.
func homeClasspath(home string) ([]string, error) {
	var cp []string
	if conf := filepath.Join(home, "conf"); isDir(conf) {
		cp = append(cp, conf)
	}
	found := false
	for _, pattern := range []string{filepath.Join(home, "lib", "*.jar"), filepath.Join(home, "*.jar")} {
		jars, err := filepath.Glob(pattern)
		if err != nil {
			return nil, err
		}
		for _, j := range jars {
			if isServerJar(filepath.Base(j)) {
				found = true
			}
		}
		cp = append(cp, jars...)
	}
	if !found {
		return nil, fmt.Errorf("not an Apache ZooKeeper binary release (no zookeeper-<version>.jar in %s or %s)",
			filepath.Join(home, "lib"), home)
	}
	return cp, nil
}

// isServerJar reports whether name is the main ZooKeeper jar, as opposed to
// zookeeper-jute-*.jar and friends.
func isServerJar(name string) bool {
	if name == "zookeeper.jar" {
		return true
	}
	rest, ok := strings.CutPrefix(name, "zookeeper-")
	return ok && rest != "" && rest[0] >= '0' && rest[0] <= '9' && strings.HasSuffix(rest, ".jar")
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}
