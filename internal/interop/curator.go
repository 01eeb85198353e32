package interop

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

//go:embed Curator.java
var curatorSource []byte

// curatorClass is the peer's main class; Curator.java declares it.
const curatorClass = "CuratorPeer"

// javaLib is where Debian installs jars; a variable so tests can check the
// message for missing jars.
var javaLib = "/usr/share/java"

// curatorJars is the peer's classpath with the Debian package of each jar.
// The jars' manifests name further dependencies (netty, jackson, ...), but
// listing the direct ones keeps a missing package from surfacing only as a
// NoClassDefFoundError at run time. slf4j-nop keeps Curator's and
// ZooKeeper's logging off the protocol stream and out of stderr.
var curatorJars = []struct{ jar, pkg string }{
	{"curator-recipes.jar", "libcurator-recipes-java"},
	{"curator-framework.jar", "libcurator-framework-java"},
	{"curator-client.jar", "libcurator-client-java"},
	{"zookeeper.jar", "libzookeeper-java"},
	{"zookeeper-jute.jar", "libzookeeper-java"},
	{"guava.jar", "libguava-java"},
	{"slf4j-api.jar", "libslf4j-java"},
	{"slf4j-nop.jar", "libslf4j-java"},
}

// jvmFlags make a short-lived client JVM start fast on a small machine.
var jvmFlags = []string{"-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:-UsePerfData"}

// compileMu serializes compilation, so concurrent StartCurator calls for one
// workDir compile once and never read a half-written class file.
var compileMu sync.Mutex

// StartCurator compiles the Curator peer into workDir (once per workDir and
// source version), starts it against servers and waits, bounded by ctx, for
// it to connect. workDir must exist and be private to the caller, such as
// t.TempDir(). If javac, java or a jar is missing, the error wraps
// ErrNotInstalled and names the Debian packages to install.
func StartCurator(ctx context.Context, servers []string, workDir string) (*Peer, error) {
	if len(servers) == 0 {
		return nil, errors.New("interop: StartCurator: no servers")
	}
	javac, java, cp, err := findCurator()
	if err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(workDir)
	if err != nil {
		return nil, fmt.Errorf("interop: %w", err)
	}
	if err := compileCurator(ctx, javac, cp, dir); err != nil {
		return nil, err
	}
	argv := append([]string{java}, jvmFlags...)
	argv = append(argv, "-cp", cp+string(os.PathListSeparator)+dir, curatorClass, strings.Join(servers, ","))
	return start(ctx, "curator", dir, argv)
}

// findCurator locates javac, the java next to it (so the class file version
// always suits the runtime) and the classpath.
func findCurator() (javac, java, cp string, err error) {
	var missing []string
	var pkgs []string
	javac, lerr := exec.LookPath("javac")
	if lerr != nil {
		// PATH may be trimmed in test environments; Debian's javac is
		// still worth trying.
		if _, serr := os.Stat("/usr/bin/javac"); serr == nil {
			javac, lerr = "/usr/bin/javac", nil
		}
	}
	if lerr == nil {
		if real, rerr := filepath.EvalSymlinks(javac); rerr == nil {
			java = filepath.Join(filepath.Dir(real), "java")
		}
		if _, serr := os.Stat(java); serr != nil {
			lerr = fmt.Errorf("no java next to %s", javac)
		}
	}
	if lerr != nil {
		missing = append(missing, "javac: "+lerr.Error())
		pkgs = append(pkgs, "default-jdk-headless")
	}
	var jars []string
	for _, j := range curatorJars {
		p := filepath.Join(javaLib, j.jar)
		if _, serr := os.Stat(p); serr != nil {
			missing = append(missing, p)
			if !slices.Contains(pkgs, j.pkg) {
				pkgs = append(pkgs, j.pkg)
			}
		}
		jars = append(jars, p)
	}
	if len(missing) > 0 {
		return "", "", "", fmt.Errorf("interop: %w: Curator peer needs %s; install with: apt-get install %s",
			ErrNotInstalled, strings.Join(missing, ", "), strings.Join(pkgs, " "))
	}
	return javac, java, strings.Join(jars, string(os.PathListSeparator)), nil
}

// compileCurator writes and compiles the peer source in dir unless a stamp
// file shows this source was compiled there already.
func compileCurator(ctx context.Context, javac, cp, dir string) error {
	compileMu.Lock()
	defer compileMu.Unlock()
	sum := sha256.Sum256(curatorSource)
	want := hex.EncodeToString(sum[:])
	stamp := filepath.Join(dir, curatorClass+".stamp")
	if got, err := os.ReadFile(stamp); err == nil && string(got) == want {
		return nil
	}
	src := filepath.Join(dir, "Curator.java")
	if err := os.WriteFile(src, curatorSource, 0o644); err != nil {
		return fmt.Errorf("interop: %w", err)
	}
	args := []string{"-J-XX:+UseSerialGC", "-J-XX:TieredStopAtLevel=1", "-encoding", "UTF-8", "-nowarn", "-d", dir, "-cp", cp, src}
	// Compiling is part of starting, so ctx may cancel it.
	out, err := exec.CommandContext(ctx, javac, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("interop: compiling %s: %w: %s", src, err, strings.TrimSpace(string(out)))
	}
	if err := os.WriteFile(stamp, []byte(want), 0o644); err != nil {
		return fmt.Errorf("interop: %w", err)
	}
	return nil
}
