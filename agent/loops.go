package agent

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/gossip"
)

// retryJoin joins addrs in the background until one answers, backing off
// exponentially from RetryJoinInterval to RetryJoinMaxInterval with up to 25%
// jitter, so many agents restarting together do not retry in lockstep.
func (a *Agent) retryJoin(cl cluster, addrs []string, what string) {
	delay := a.cfg.RetryJoinInterval
	for attempt := 1; ; attempt++ {
		n, err := cl.Join(a.ctx, withGossipPort(addrs))
		if err == nil {
			a.log.Info("joined the pool", "via", what, "reached", n, "attempts", attempt)
			return
		}
		if a.ctx.Err() != nil {
			return
		}
		if errors.Is(err, gossip.ErrNameConflict) {
			a.fail(fmt.Errorf("agent: %s: %w", what, err)) // retrying cannot help
			return
		}
		wait := delay + time.Duration(rand.Int64N(int64(delay/4)+1))
		a.log.Warn("join failed; retrying", "via", what, "addresses", strings.Join(addrs, ","),
			"attempt", attempt, "retry_in", wait.Round(time.Millisecond), "error", err)
		t := time.NewTimer(wait)
		select {
		case <-a.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(2*delay, a.cfg.RetryJoinMaxInterval)
	}
}

// maintenance runs the periodic upkeep until the agent stops.
func (a *Agent) maintenance() {
	t := time.NewTicker(a.cfg.MaintenanceInterval)
	defer t.Stop()
	for {
		select {
		case <-a.ctx.Done():
			return
		case <-t.C:
			a.maintain()
		}
	}
}

// maintain expires catalog entries, takes over from an older incarnation of this node
// if one shows up with a newer generation, saves the known peers and flushes the
// local state's log.
func (a *Agent) maintain() {
	if reaped := a.cat.Expire(); len(reaped) > 0 {
		a.log.Info("reaped failed nodes", "nodes", reaped)
	}
	a.supersede()
	a.savePeers()
	a.flushState()
}

// flushState makes the check statuses saved since the last flush durable: changes
// wait for their own fsync, statuses do not (see stateLog).
func (a *Agent) flushState() {
	a.mu.Lock()
	st := a.state
	a.mu.Unlock()
	if st == nil {
		return
	}
	if err := st.flush(st.last()); err != nil {
		a.log.Error("flush the local state", "error", err)
	}
}

// supersede is repairOwn's periodic backstop: the catalog hands copies of this
// node's records from elsewhere to ownRecords (it never stores them), and a version
// above what the local state issued (an older incarnation whose generation was never
// persisted here, a forged record) is superseded at once by repairOwnLoop; this
// catches a wake-up that raced the loop's start.
func (a *Agent) supersede() { a.repairOwn() }

// savePeers writes the gossip addresses of the other members to peers.json when they
// changed, so a restart can rejoin them. Members that left are not kept; an empty
// view never overwrites a saved one (a lonely restart must not forget everyone).
func (a *Agent) savePeers() {
	a.mu.Lock()
	cl, dir := a.cl, a.dir
	a.mu.Unlock()
	if cl == nil || dir == nil {
		return
	}
	var peers []string
	for _, m := range cl.Members() {
		if m.Name == a.cfg.NodeName || m.State == catalog.LivenessLeft || !m.Addr.IsValid() {
			continue
		}
		peers = append(peers, m.Addr.String())
	}
	slices.Sort(peers)
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(peers) == 0 || slices.Equal(peers, a.peers) {
		return
	}
	if err := dir.savePeers(peers); err != nil {
		a.log.Warn("save known peers", "error", err)
		return
	}
	a.peers = peers
}
