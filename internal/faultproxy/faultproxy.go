// Package faultproxy is an in-process TCP proxy placed in front of one server
// to inject network faults: connection resets (Cut) and silent partitions
// (Blackhole, undone by Heal).
package faultproxy

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// dialTimeout bounds connecting to the target, so an unreachable target
// cannot hold a client connection (and Close) for the OS's connect timeout.
const dialTimeout = 5 * time.Second

// Proxy forwards connections accepted on Addr to Target. Its methods are safe
// for concurrent use.
type Proxy struct {
	ln     net.Listener
	target string

	// ctx is cancelled by Close to abort dials in progress.
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	closed    bool
	blackhole bool
	conns     map[*conn]struct{} // open client connections

	wg sync.WaitGroup // every goroutine the proxy started; waited by Close

	tap func() func([]byte) // see WithTargetTap; nil for none
}

// Option adjusts a Proxy made by New.
type Option func(*Proxy)

// WithTargetTap has the proxy show each connection's bytes from the target
// to a reader: newReader is called once for every connection that reaches
// the target, and the function it returns gets that connection's bytes
// from the target in order, chunk by chunk, before they are forwarded (or
// dropped by a blackhole). It runs on the connection's goroutine and must
// not keep the slice.
func WithTargetTap(newReader func() func([]byte)) Option {
	return func(p *Proxy) { p.tap = newReader }
}

// conn is one proxied client connection and, once dialled, its upstream.
type conn struct {
	p      *Proxy
	client *net.TCPConn
	// blackholed is set while the proxy drops this connection's bytes; such
	// a connection has lost data and is reset by Heal.
	blackholed atomic.Bool

	mu     sync.Mutex
	server *net.TCPConn // nil until dialled, and for held connections
	closed bool
	pumps  atomic.Int32 // pump goroutines still running
}

// New starts a proxy listening on 127.0.0.1:0 that forwards each accepted
// connection to target, dialling it when the connection is accepted.
func New(target string, opts ...Option) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		ln:     ln,
		target: target,
		ctx:    ctx,
		cancel: cancel,
		conns:  make(map[*conn]struct{}),
	}
	for _, o := range opts {
		o(p)
	}
	p.wg.Add(1)
	// Owner: Close, which stops it by closing the listener and waits via p.wg.
	go p.acceptLoop()
	return p, nil
}

// Addr returns the address clients should dial, "127.0.0.1:port".
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target returns the address connections are forwarded to.
func (p *Proxy) Target() string { return p.target }

// Conns returns the number of open client connections.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Cut resets every open connection now (RST to both the client and the
// target). New connections are still accepted and handled as before.
func (p *Proxy) Cut() {
	for _, c := range p.snapshot() {
		c.close()
	}
}

// Blackhole makes the network silently lose everything: open connections stay
// open but bytes in both directions are dropped, and new connections are
// accepted and held open without reaching the target.
func (p *Proxy) Blackhole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blackhole = true
	for c := range p.conns {
		c.blackholed.Store(true)
	}
}

// Heal resumes forwarding. Connections that were open during the blackhole
// have lost bytes, so they are reset and clients reconnect cleanly.
func (p *Proxy) Heal() {
	p.mu.Lock()
	p.blackhole = false
	var lossy []*conn
	for c := range p.conns {
		if c.blackholed.Load() {
			lossy = append(lossy, c)
		}
	}
	p.mu.Unlock()
	for _, c := range lossy {
		c.close()
	}
}

// Close stops accepting, resets every connection and waits for every
// goroutine the proxy started. It is idempotent; later calls return nil.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()

	err := p.ln.Close()
	p.cancel()
	for _, c := range p.snapshot() {
		c.close()
	}
	p.wg.Wait()
	return err
}

func (p *Proxy) snapshot() []*conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	cs := make([]*conn, 0, len(p.conns))
	for c := range p.conns {
		cs = append(cs, c)
	}
	return cs
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		nc, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Transient (e.g. EMFILE): back off briefly instead of spinning.
			select {
			case <-p.ctx.Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		c := &conn{p: p, client: nc.(*net.TCPConn)}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			reset(c.client)
			return
		}
		c.blackholed.Store(p.blackhole)
		p.conns[c] = struct{}{}
		// Registered under p.mu after the closed check, so Close's Wait
		// cannot miss it.
		p.wg.Add(1)
		p.mu.Unlock()
		// Owner: Close (via p.wg); stopped by closing the conn's sockets
		// (Cut, Heal, Close or either peer closing).
		go c.serve()
	}
}

// serve dials the target and pumps client->target itself, with a second
// goroutine for target->client. A connection accepted during a blackhole is
// held: its bytes are read and discarded and the target is never dialled.
func (c *conn) serve() {
	defer c.p.wg.Done()
	if c.blackholed.Load() {
		c.pumps.Store(1)
		c.pump(c.client, nil, nil)
		return
	}
	ctx, cancel := context.WithTimeout(c.p.ctx, dialTimeout)
	var d net.Dialer
	sc, err := d.DialContext(ctx, "tcp", c.p.target)
	cancel()
	if err != nil {
		// Target down: the client sees its connection reset, much as it
		// would see a refused connection without the proxy.
		c.close()
		return
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		reset(sc.(*net.TCPConn))
		return
	}
	c.server = sc.(*net.TCPConn)
	c.mu.Unlock()

	c.pumps.Store(2)
	c.p.wg.Add(1)
	// Owner: Close (via p.wg); stopped like serve, by closing the sockets.
	var tap func([]byte)
	if c.p.tap != nil {
		tap = c.p.tap()
	}
	go func() {
		defer c.p.wg.Done()
		c.pump(c.server, c.client, tap)
	}()
	c.pump(c.client, c.server, nil)
}

// pump copies src to dst until src ends, dropping the bytes while the
// connection is blackholed. dst is nil for a held connection. tap, if not
// nil, sees every byte read from src.
func (c *conn) pump(src, dst *net.TCPConn, tap func([]byte)) {
	defer func() {
		// The last pump out tears the connection down. When both
		// directions ended cleanly a plain close keeps data still queued
		// for the peers; otherwise close has already reset everything.
		if c.pumps.Add(-1) == 0 {
			c.shutdown(false)
		}
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && tap != nil {
			tap(buf[:n])
		}
		if n > 0 && dst != nil && !c.blackholed.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				c.close()
				return
			}
		}
		if err == nil {
			continue
		}
		switch {
		case c.blackholed.Load():
			// Nothing may reach the client, not even the target hanging
			// up; the client side keeps being read until it gives up.
			if src == c.client {
				c.close()
			}
		case errors.Is(err, io.EOF) && dst != nil:
			// Pass the half-close on; the other direction may still flow.
			_ = dst.CloseWrite()
		default:
			c.close()
		}
		return
	}
}

// close resets both sides once and forgets the connection.
func (c *conn) close() { c.shutdown(true) }

// shutdown closes both sides once, with RST when rst is set, and forgets the
// connection.
func (c *conn) shutdown(rst bool) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	server := c.server
	c.mu.Unlock()

	for _, tc := range []*net.TCPConn{c.client, server} {
		if tc == nil {
			continue
		}
		if rst {
			_ = tc.SetLinger(0)
		}
		_ = tc.Close()
	}
	c.p.mu.Lock()
	delete(c.p.conns, c)
	c.p.mu.Unlock()
}

// reset closes tc with SO_LINGER 0, so the peer gets RST instead of FIN and
// sees the connection fail rather than end.
func reset(tc *net.TCPConn) {
	_ = tc.SetLinger(0)
	_ = tc.Close()
}
