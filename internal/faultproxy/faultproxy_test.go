package faultproxy_test

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/zklock/zklock/internal/faultproxy"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// ioTimeout bounds every wait for something that should happen; silence is
// checked with the shorter silenceWindow.
const (
	ioTimeout     = 5 * time.Second
	silenceWindow = 300 * time.Millisecond
)

// echoServer echoes every connection until the test ends.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = io.Copy(c, c)
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func newProxy(t *testing.T, target string) *faultproxy.Proxy {
	t.Helper()
	p, err := faultproxy.New(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes msg and expects it echoed back.
func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
	_ = c.SetReadDeadline(time.Now().Add(ioTimeout))
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("read echo: %v", err)
	}
	if string(buf) != msg {
		t.Fatalf("echo = %q, want %q", buf, msg)
	}
}

// expectSilence writes msg and expects nothing back within silenceWindow.
func expectSilence(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("write into blackhole: %v", err)
	}
	_ = c.SetReadDeadline(time.Now().Add(silenceWindow))
	n, err := c.Read(make([]byte, 64))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read through blackhole = %d bytes, %v; want a timeout", n, err)
	}
}

// expectReset expects the connection to fail (reset, or at least end).
func expectReset(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(ioTimeout))
	n, err := c.Read(make([]byte, 64))
	if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.EOF) {
		t.Fatalf("read after reset = %d bytes, %v; want ECONNRESET or EOF", n, err)
	}
}

// waitConns polls until the proxy reports n open connections.
func waitConns(t *testing.T, p *faultproxy.Proxy, n int) {
	t.Helper()
	deadline := time.NewTimer(ioTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for p.Conns() != n {
		select {
		case <-deadline.C:
			t.Fatalf("Conns = %d, want %d", p.Conns(), n)
		case <-tick.C:
		}
	}
}

func TestForwards(t *testing.T) {
	target := echoServer(t)
	p := newProxy(t, target)
	if p.Target() != target {
		t.Fatalf("Target = %q, want %q", p.Target(), target)
	}
	a, b := dial(t, p.Addr()), dial(t, p.Addr())
	roundTrip(t, a, "hello")
	roundTrip(t, b, "world")
	roundTrip(t, a, "again")
	// Both echoed, so both are registered.
	if n := p.Conns(); n != 2 {
		t.Fatalf("Conns = %d, want 2", n)
	}
}

func TestCut(t *testing.T) {
	p := newProxy(t, echoServer(t))
	c := dial(t, p.Addr())
	roundTrip(t, c, "before")

	p.Cut()
	expectReset(t, c)
	if n := p.Conns(); n != 0 {
		t.Fatalf("Conns after Cut = %d, want 0", n)
	}
	roundTrip(t, dial(t, p.Addr()), "after")
}

func TestBlackholeAndHeal(t *testing.T) {
	p := newProxy(t, echoServer(t))
	old := dial(t, p.Addr())
	roundTrip(t, old, "before")

	p.Blackhole()
	expectSilence(t, old, "lost")
	held := dial(t, p.Addr())
	expectSilence(t, held, "also lost")
	// Heal must see the held connection, so wait for the proxy to accept it.
	waitConns(t, p, 2)

	p.Heal()
	expectReset(t, old)
	expectReset(t, held)
	fresh := dial(t, p.Addr())
	roundTrip(t, fresh, "after heal")
	if n := p.Conns(); n != 1 {
		t.Fatalf("Conns after Heal = %d, want 1", n)
	}
}

func TestTargetDownResetsClient(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := ln.Addr().String()
	ln.Close()
	p := newProxy(t, target)
	c, err := net.DialTimeout("tcp", p.Addr(), ioTimeout)
	if errors.Is(err, syscall.ECONNRESET) {
		// The reset can beat the client's own check that connect succeeded.
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	expectReset(t, c)
}

func TestHalfCloseDeliversReply(t *testing.T) {
	// Like a four-letter word: the client sends, shuts its write side and
	// reads until EOF.
	p := newProxy(t, echoServer(t))
	c := dial(t, p.Addr()).(*net.TCPConn)
	if _, err := c.Write([]byte("ruok")); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(ioTimeout))
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "ruok" {
		t.Fatalf("ReadAll = %q, %v", got, err)
	}
}

func TestClose(t *testing.T) {
	p, err := faultproxy.New(echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, p.Addr())
	roundTrip(t, c, "x")
	p.Blackhole()
	held := dial(t, p.Addr())
	expectSilence(t, held, "y")

	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	expectReset(t, c)
	expectReset(t, held)
	if n := p.Conns(); n != 0 {
		t.Fatalf("Conns after Close = %d", n)
	}
	if c, err := net.DialTimeout("tcp", p.Addr(), ioTimeout); err == nil {
		c.Close()
		t.Fatal("dial after Close succeeded")
	}
	// goleak in TestMain checks that Close joined every goroutine.
}
