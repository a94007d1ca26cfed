package agent

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rumor-sd/rumor/catalog"
)

// ownRecords notes the copies of this node's records that reach the catalog from
// elsewhere (the catalog never stores them: catalog.Config.Self) and wakes
// repairOwnLoop when one carries a version above what this node issued: a forged
// record (a huge counter at our generation, a future generation) or an older
// incarnation of this node with a newer generation. Either would otherwise win on
// every other replica; the repair moves this node's generation past it and
// republishes everything, which replaces every copy of the old set.
type ownRecords struct {
	mu      sync.Mutex
	issued  catalog.Version // the highest version this node wrote
	pending catalog.Version // the highest foreign version above issued not yet handled
	wake    chan struct{}   // capacity 1: a pending repair
	repairs prometheus.Counter
}

func newOwnRecords() *ownRecords {
	return &ownRecords{wake: make(chan struct{}, 1), repairs: prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "rumor", Subsystem: "agent", Name: "own_records_superseded_total",
		Help: "Times this node moved to a new generation past a version of its records it did not issue (forged, or an older incarnation).",
	})}
}

// noteIssued records the versions of records this node is about to publish.
func (o *ownRecords) noteIssued(recs []catalog.Record) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i := range recs {
		if o.issued.Less(recs[i].Version) {
			o.issued = recs[i].Version
		}
	}
}

// seen is the catalog's OnOwnRecords: cheap, since every echo of our own records
// passes here.
func (o *ownRecords) seen(recs []catalog.Record) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i := range recs {
		v := recs[i].Version
		if o.issued.Less(v) && o.pending.Less(v) {
			o.pending = v
			select {
			case o.wake <- struct{}{}:
			default:
			}
		}
	}
}

// take returns the pending version and clears it.
func (o *ownRecords) take() (catalog.Version, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	v := o.pending
	o.pending = catalog.Version{}
	return v, v != catalog.Version{}
}

// repairOwnLoop runs repairOwn whenever a foreign version of this node's records
// shows up, until the agent stops.
func (a *Agent) repairOwnLoop() {
	for {
		select {
		case <-a.ctx.Done():
			return
		case <-a.own.wake:
			a.repairOwn()
		}
	}
}

// repairOwn supersedes the pending foreign version of this node's records, if it is
// above what the local state issued: the local state always wins.
func (a *Agent) repairOwn() {
	v, ok := a.own.take()
	if !ok {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.local == nil || a.stopped {
		return
	}
	old := a.local.Generation()
	recs, ok := a.local.Repair(v)
	if !ok {
		return
	}
	a.log.Warn("found a version of this node's records it did not issue (an older incarnation, or a forged record); superseding it",
		"seen", v.String(), "old_generation", old, "new_generation", a.local.Generation())
	a.own.repairs.Inc()
	if a.dir != nil {
		if err := a.dir.saveGeneration(a.local.Generation()); err != nil {
			a.log.Error("persist generation", "error", err)
		}
	}
	a.applyLocked(recs)
}

// Failed is closed when the agent found, after Start, that it cannot go on: another
// node holds its name (a retry-join refused with gossip.ErrNameConflict). Err says
// why. The caller should shut the agent down and exit with a failure.
func (a *Agent) Failed() <-chan struct{} { return a.failed }

// Err returns why the agent failed (see Failed), or nil.
func (a *Agent) Err() error {
	select {
	case <-a.failed:
		return a.failErr
	default:
		return nil
	}
}

// fail records a fatal error and closes Failed, once.
func (a *Agent) fail(err error) {
	a.failOnce.Do(func() {
		a.failErr = err
		a.log.Error("the agent cannot go on", "error", err)
		close(a.failed)
	})
}
