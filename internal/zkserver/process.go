package zkserver

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
)

// process is one running server JVM.
type process struct {
	pid     int
	exited  chan struct{} // closed by the wait goroutine once the JVM is reaped
	waitErr error         // cmd.Wait's result; read only after exited is closed
	copied  chan struct{} // closed by the copy goroutine at EOF of the output pipe
}

// startProcess launches server s. Its combined stdout/stderr goes through an
// os.Pipe rather than cmd.StdoutPipe so that exec starts no goroutines of its
// own and Wait does not race the copier for the last lines.
func (c *Cluster) startProcess(s *server) (*process, error) {
	args := []string{
		"-Xmx256m",
		"-XX:+UseSerialGC",
		"-XX:TieredStopAtLevel=1",
		// No hsperfdata files left behind in /tmp by killed JVMs.
		"-XX:-UsePerfData",
		// Empty container znodes are reaped within ~1s, so leak checks in
		// tests do not have to wait a minute.
		"-Dznode.container.checkIntervalMs=1000",
		"-Dzookeeper.admin.enableServer=false",
		// Millisecond timestamps make ordering issues readable in Tail.
		"-Dorg.slf4j.simpleLogger.showDateTime=true",
		"-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS",
		"-cp", c.inst.ClasspathString(),
		"org.apache.zookeeper.server.quorum.QuorumPeerMain",
		s.cfgPath,
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	// Not CommandContext: servers must outlive the ctx given to Start.
	cmd := exec.Command(c.inst.Java, args...)
	cmd.Dir = s.dir
	cmd.Stdout = w
	cmd.Stderr = w
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Own process group, so kill(-pid) reaches anything the JVM spawns.
		Setpgid: true,
		// Do not leave JVMs behind when the test binary dies.
		Pdeathsig: syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("zkserver: starting zk%d: %w", s.n, err)
	}
	// Only the child holds the write end now, so the copier sees EOF when
	// the JVM is gone.
	w.Close()

	p := &process{
		pid:    cmd.Process.Pid,
		exited: make(chan struct{}),
		copied: make(chan struct{}),
	}
	c.output(s, fmt.Sprintf("[zkserver] started pid %d: %s %s", p.pid, c.inst.Java, strings.Join(args, " ")))
	// Owner: this process; stopped by the JVM closing its output (exit or
	// kill), joined by process.kill via p.copied.
	go func() {
		defer close(p.copied)
		defer r.Close()
		br := bufio.NewReaderSize(r, 64<<10)
		for {
			line, err := br.ReadString('\n')
			if line = strings.TrimRight(line, "\r\n"); line != "" {
				c.output(s, line)
			}
			if err != nil {
				return
			}
		}
	}()
	// Owner: this process; ends when the JVM exits (kill makes it), joined
	// by process.kill via p.exited.
	go func() {
		p.waitErr = cmd.Wait()
		<-p.copied
		c.output(s, fmt.Sprintf("[zkserver] pid %d exited: %v", p.pid, p.waitErr))
		close(p.exited)
	}()
	return p, nil
}

// kill SIGKILLs the process group (ZooKeeper is crash-safe, so no graceful
// shutdown is needed) and waits for both goroutines of the process.
func (p *process) kill() {
	select {
	case <-p.exited:
	default:
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	}
	<-p.exited
}

// signal sends sig to the process group unless the process is gone.
func (p *process) signal(sig syscall.Signal) error {
	select {
	case <-p.exited:
		return fmt.Errorf("process %d has exited", p.pid)
	default:
	}
	return syscall.Kill(-p.pid, sig)
}
