package scenario

import (
	"fmt"
	"io"
	"math"
	"slices"
	"text/tabwriter"
	"time"
)

// Spread is when one registered service reached the live nodes, from its
// registration: 50 %, 99 % and 100 % of them (0 where it never got there).
type Spread struct {
	T50, T99, T100 time.Duration
}

// Report is what one run of a scenario measured, by either tier.
type Report struct {
	Scenario string
	Tier     string // "real" (real gossip code in virtual time) or "model"
	Nodes    int
	Seed     uint64

	// Converge is how long the initial cluster (everyone joined, Services each
	// registered) took until every catalog held everything. Real tier only, and only
	// when its records were published through gossip (sim.RealOptions.PublishAtStart):
	// by default tier 1 fills the initial catalogs directly, and Converge is zero.
	Converge time.Duration

	// Spreads has one entry per registered service, in registration order.
	Spreads []Spread
	// Unreached counts registered services that some live node never saw.
	Unreached int
	// Curve is the first registration's arrivals: the time after registering at
	// which each node that got it got it, sorted (for "fraction that knows vs time").
	Curve []time.Duration

	// Detections has one entry per crashed node detected by every live node: the
	// time from the crash until the last of them saw it failed.
	Detections []time.Duration
	// Undetected counts crashed nodes some live node still thought alive at the end.
	Undetected int

	// Split counts (observer, node) pairs of live nodes where the observer does not
	// see the node alive at the end: 0 once every partition has healed.
	Split int

	// FalseFailures counts (observer, node) pairs where a node that had not crashed
	// and was not partitioned away was declared failed; NodeHours is the exposure
	// (live nodes × duration) they are counted over.
	FalseFailures int
	NodeHours     float64

	// BytesPerNodeSec is the traffic every node sent (packets and streams), averaged
	// over nodes and the scenario's duration.
	BytesPerNodeSec float64
	// BytesByKind splits BytesPerNodeSec by what carried it: the model's own kinds
	// (probe, eager, gossip, push-pull, ...); tier 1 fills it only when asked
	// (go test ./sim -sim.bytes), by memberlist and gossip message type.
	BytesByKind map[string]float64 `json:",omitempty"`
	// MemPerNode is the simulator's heap per node (real tier) or the model's estimate
	// of an agent's gossip state per node, in bytes.
	MemPerNode float64

	Wall time.Duration // wall-clock time of the run (set by whoever can read the wall clock)
}

// Reg returns the median over registrations of the time to reach 50 %, 99 % and
// 100 % of nodes.
func (r *Report) Reg() (t50, t99, t100 time.Duration) {
	var a, b, c []time.Duration
	for _, s := range r.Spreads {
		a, b, c = append(a, s.T50), append(b, s.T99), append(c, s.T100)
	}
	return Percentile(a, 50), Percentile(b, 50), Percentile(c, 50)
}

// FalsePerNodeHour is FalseFailures divided by NodeHours (0 when there is no exposure).
func (r *Report) FalsePerNodeHour() float64 {
	if r.NodeHours == 0 {
		return 0
	}
	return float64(r.FalseFailures) / r.NodeHours
}

// Percentile is the nearest-rank p-th percentile of ds (0 for none).
func Percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(0, min(len(s)-1, i-1))]
}

// WriteTable prints one row per report: the columns the issue asks for.
func WriteTable(w io.Writer, reports []Report) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\ttier\tnodes\treg 50%\t99%\t100%\tunreached\tdetect p50\tp99\tundetected\tfalse/node-h\tB/s/node\tmem/node\twall")
	for _, r := range reports {
		t50, t99, t100 := r.Reg()
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%d\t%s\t%s\t%d\t%.3g\t%.0f\t%s\t%s\n", r.Scenario, r.Tier, r.Nodes,
			ms(t50), ms(t99), ms(t100), r.Unreached, ms(Percentile(r.Detections, 50)), ms(Percentile(r.Detections, 99)),
			r.Undetected, r.FalsePerNodeHour(), r.BytesPerNodeSec, kib(r.MemPerNode), ms(r.Wall))
	}
	return tw.Flush()
}

func ms(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(10 * time.Millisecond).String()
}

func kib(b float64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f KiB", b/1024)
}

// SpreadOf turns one registration's sorted arrival offsets into the times until
// 50 %, 99 % and 100 % of want nodes had it (both tiers compute it so).
func SpreadOf(ds []time.Duration, want int) Spread {
	at := func(frac float64) time.Duration {
		k := max(1, int(math.Ceil(frac*float64(want)-1e-9)))
		if k > len(ds) {
			return 0
		}
		return max(ds[k-1], time.Nanosecond)
	}
	return Spread{T50: at(0.5), T99: at(0.99), T100: at(1)}
}
