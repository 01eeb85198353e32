package demo

import "github.com/zklock/zklock/internal/faultproxy"

// Network is the network of one simulated process: a fault proxy in front
// of every server, so that process's connections can fail alone. Its
// methods are safe for concurrent use.
type Network struct {
	proxies []*faultproxy.Proxy
	addrs   []string
}

// NewNetwork starts a proxy in front of each of servers.
func NewNetwork(servers []string) (*Network, error) {
	n := &Network{}
	for _, s := range servers {
		p, err := faultproxy.New(s)
		if err != nil {
			n.Close()
			return nil, err
		}
		n.proxies = append(n.proxies, p)
		n.addrs = append(n.addrs, p.Addr())
	}
	return n, nil
}

// Addrs returns the addresses to connect to instead of the servers.
func (n *Network) Addrs() []string { return n.addrs }

// Blackhole makes every proxy silently drop everything, as if the process's
// network failed.
func (n *Network) Blackhole() {
	for _, p := range n.proxies {
		p.Blackhole()
	}
}

// Heal undoes Blackhole.
func (n *Network) Heal() {
	for _, p := range n.proxies {
		p.Heal()
	}
}

// Close stops every proxy and resets its connections.
func (n *Network) Close() {
	for _, p := range n.proxies {
		p.Close()
	}
}
