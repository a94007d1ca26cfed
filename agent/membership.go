package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/gossip"
)

// DefaultLeaveTimeout bounds a graceful leave whose context has no deadline: how long
// the goodbye may take to reach the pool.
const DefaultLeaveTimeout = 10 * time.Second

// Join contacts addrs ("ip", "ip:port" or "host:port") and joins their pool, as
// Config.Join does at start; it returns how many answered, and an error only if none
// did. Joining a pool this node is already in is harmless.
func (a *Agent) Join(ctx context.Context, addrs []string) (int, error) {
	if len(addrs) == 0 {
		return 0, fmt.Errorf("agent: join: %w: no address given", catalog.ErrInvalid)
	}
	cl, err := a.runningCluster()
	if err != nil {
		return 0, err
	}
	n, err := cl.Join(ctx, withGossipPort(addrs))
	if err != nil {
		return 0, fmt.Errorf("agent: %w", err) // gossip's error names the addresses
	}
	a.log.Info("joined the pool", "via", "request", "reached", n, "of", len(addrs))
	return n, nil
}

// ForceLeave marks a failed node as left (see gossip.Gossip.ForceLeave): its records
// go now instead of after ReapAfter, here and on every member reachable now. It wraps
// catalog.ErrNotFound for a node never seen, and catalog.ErrInvalid for a node that
// has not failed (a live node would refute it; ask it to leave instead).
func (a *Agent) ForceLeave(ctx context.Context, node string, prune bool) error {
	cl, err := a.runningCluster()
	if err != nil {
		return err
	}
	err = cl.ForceLeave(ctx, node, prune)
	switch {
	case errors.Is(err, gossip.ErrUnknownNode):
		return fmt.Errorf("agent: force-leave %q: %w: no such node in the pool", node, catalog.ErrNotFound)
	case errors.Is(err, gossip.ErrNotFailed):
		return fmt.Errorf("agent: force-leave %q: %w: %v", node, catalog.ErrInvalid, err)
	case err != nil:
		return fmt.Errorf("agent: force-leave %q: %w", node, err)
	}
	a.log.Info("forced a failed node out of the pool", "forced", node, "prune", prune)
	return nil
}

// RequestLeave leaves the pool gracefully on behalf of an API client (PUT
// /v1/agent/leave) and then closes LeaveRequested, telling the agent's owner to shut
// it down. It cannot shut down itself: the HTTP server it would stop is serving the
// request. A second request while the first is under way, or after it, is a no-op.
func (a *Agent) RequestLeave(ctx context.Context) error {
	a.mu.Lock()
	cl, running, already := a.cl, a.started && !a.stopped, a.gossipLeft
	a.gossipLeft = true
	a.mu.Unlock()
	if !running || cl == nil {
		return ErrNotRunning
	}
	if already {
		return nil
	}
	defer a.leaveOnce.Do(func() { close(a.leaveReq) })
	a.savePeers()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultLeaveTimeout)
		defer cancel()
	}
	if err := cl.Leave(ctx); err != nil {
		return fmt.Errorf("agent: leave: %w", err)
	}
	a.log.Info("left the pool at an API request; waiting to be shut down")
	return nil
}

// LeaveRequested is closed once RequestLeave has run: the agent has left the pool,
// and its owner should call Leave or Shutdown (`rumor agent` then exits 0).
func (a *Agent) LeaveRequested() <-chan struct{} { return a.leaveReq }

// runningCluster returns gossip if the agent is running and has not left.
func (a *Agent) runningCluster() (cluster, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.started || a.stopped || a.cl == nil {
		return nil, ErrNotRunning
	}
	if a.gossipLeft {
		return nil, fmt.Errorf("agent: %w: it has left the pool and is shutting down", ErrNotRunning)
	}
	return a.cl, nil
}

// withGossipPort gives each address without a port the well-known gossip port,
// DefaultBindPort, as `rumor join --help` and the config's docs promise ("ip" means
// ip:7946). memberlist would use this agent's own port, which differs from the
// peer's whenever this agent was moved off 7946 (a second agent on one host).
func withGossipPort(addrs []string) []string {
	out := make([]string, len(addrs))
	for i, addr := range addrs {
		out[i] = addr
		if _, _, err := net.SplitHostPort(addr); err == nil {
			continue // has a port
		}
		host := strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]")
		if ip, err := netip.ParseAddr(host); err == nil {
			out[i] = net.JoinHostPort(ip.String(), strconv.Itoa(DefaultBindPort))
		} else if host != "" && !strings.Contains(host, ":") {
			out[i] = net.JoinHostPort(host, strconv.Itoa(DefaultBindPort)) // a host name
		}
	}
	return out
}
