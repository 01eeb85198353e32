package connguard

import "sync"

// Hosts hands out server addresses in turn, as given: names are not
// resolved here but by the dialer, at each connection attempt. So a name
// that does not resolve costs one failed dial instead of failing the whole
// list (go-zookeeper's default provider resolves every name up front and
// gives up on the first failure), and a host that moved is found at its new
// address. It implements go-zookeeper's HostProvider and is safe for
// concurrent use.
type Hosts struct {
	mu      sync.Mutex // guards the fields below
	servers []string
	next    int // index of the server Next returns
	tried   int // servers tried since the last successful connection
}

// Init sets the servers, in the order they will be tried.
func (h *Hosts) Init(servers []string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.servers = append([]string(nil), servers...)
	h.next, h.tried = 0, 0
	return nil
}

// Len returns the number of servers.
func (h *Hosts) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.servers)
}

// Next returns the next server, and whether every server has been tried
// since the last successful connection.
func (h *Hosts) Next() (server string, retryStart bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	server = h.servers[h.next]
	h.next = (h.next + 1) % len(h.servers)
	retryStart = h.tried >= len(h.servers)
	if retryStart {
		h.tried = 0
	}
	h.tried++
	return server, retryStart
}

// Connected records a successful connection.
func (h *Hosts) Connected() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.tried = 0
}
