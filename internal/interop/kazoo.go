package interop

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

//go:embed kazoo_peer.py
var kazooSource []byte

// debianPython is Debian's interpreter, the one python3-kazoo installs for.
// It is used by path because another python3 (pyenv, venv) may come first
// on PATH without kazoo. A variable so tests can check the message for a
// missing interpreter or module.
var debianPython = "/usr/bin/python3"

// kazooInstallHint is the command that provides what StartKazoo needs.
const kazooInstallHint = "apt-get install python3 python3-kazoo"

// StartKazoo writes the kazoo peer script into workDir, starts it with
// /usr/bin/python3 against servers and waits, bounded by ctx, for it to
// connect. If Python or kazoo is missing, the error wraps ErrNotInstalled
// and says to install python3-kazoo.
func StartKazoo(ctx context.Context, servers []string, workDir string) (*Peer, error) {
	if len(servers) == 0 {
		return nil, errors.New("interop: StartKazoo: no servers")
	}
	dir, err := filepath.Abs(workDir)
	if err != nil {
		return nil, fmt.Errorf("interop: %w", err)
	}
	if _, err := os.Stat(debianPython); err != nil {
		return nil, fmt.Errorf("interop: %w: kazoo peer needs %s: %v; install with: %s",
			ErrNotInstalled, debianPython, err, kazooInstallHint)
	}
	// Checked up front so a missing module reads as an install problem, not
	// as a peer that died before "ready".
	if out, err := exec.CommandContext(ctx, debianPython, "-c", "import kazoo").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("interop: %w: %s cannot import kazoo (%v: %s); install with: %s",
			ErrNotInstalled, debianPython, err, strings.TrimSpace(string(out)), kazooInstallHint)
	}
	script := filepath.Join(dir, "kazoo_peer.py")
	if err := os.WriteFile(script, kazooSource, 0o644); err != nil {
		return nil, fmt.Errorf("interop: %w", err)
	}
	// -u: unbuffered stdio; -B: no __pycache__ next to the script.
	argv := []string{debianPython, "-u", "-B", script, strings.Join(servers, ",")}
	return start(ctx, "kazoo", dir, argv)
}
