// Package scenario is the simulator's shared vocabulary: the scenario scripts both
// tiers run (real gossip nodes in virtual time, package sim; the model, package
// sim/model) and the report both produce, so that their numbers can be compared
// line by line. It performs no I/O beyond the reader and writer it is given.
//
// # Scripts
//
// A scenario is a text file, one directive per line; '#' starts a comment:
//
//	name       convergence            # a label for reports (default: the file name)
//	nodes      100                    # cluster size (required, ≥ 3)
//	seed       1                      # seed of every random choice (default 1)
//	services   10                     # services each node registers before t=0 (default 0)
//	link       loss=1% latency=2ms jitter=1ms   # the network at t=0 (default: lossless, instant)
//	                                            # also dup=1% (duplicated) and bw=125000 (bytes/s per link; tier 1 only)
//	duration   60s                    # how long to run after t=0 (required)
//	at 1s  register 100               # 100 new services on random nodes; their spread is measured
//	at 5s  kill 5%                    # crash 5% of the live nodes (or a count); detection is measured
//	at 5s  churn 2                    # crash 2 nodes and start 2 new ones that join
//	at 10s partition 50%              # cut the first half of the live nodes off from the rest
//	at 40s heal                       # undo every partition
//	at 20s link loss=5%               # change the default link
//	at 20s slow 1 200ms               # add 200 ms to every packet to and from 1 node
//	at 30s change 10 3600s            # every node changes each of its services once per 3600 s
//
// Events run in time order; counts given as "N%" are a share of the live nodes at
// that moment.
//
// # Concurrency
//
// Values are plain data; a Report is not safe for concurrent mutation.
package scenario

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Link is how packets travel: the share lost, a fixed one-way delay and a uniform
// extra delay in [0, Jitter], the share delivered twice, and a per-link bandwidth
// cap in bytes per second (0: none). Tier 1 applies all of them (memnet.Link); the
// model ignores Duplicate and Bandwidth.
type Link struct {
	Loss      float64
	Latency   time.Duration
	Jitter    time.Duration
	Duplicate float64
	Bandwidth float64
}

// Kind names what an Event does.
type Kind string

// The kinds of events a script may schedule.
const (
	Register  Kind = "register"  // Count new services on random live nodes
	Kill      Kind = "kill"      // crash Count live nodes (not gracefully)
	Churn     Kind = "churn"     // crash Count live nodes and start Count new ones
	Partition Kind = "partition" // separate the first Count live nodes from the rest
	Heal      Kind = "heal"      // undo every partition
	SetLink   Kind = "link"      // replace the default link
	Slow      Kind = "slow"      // add Delay to every packet to and from Count nodes
	Change    Kind = "change"    // steady change rate: each node changes Count services once per Period
)

// Event is one scheduled step of a scenario.
type Event struct {
	At     time.Duration
	Kind   Kind
	Count  int           // services or nodes; with Share > 0 it is resolved at run time
	Share  float64       // a share of the live nodes, from "N%" (0: use Count)
	Link   Link          // SetLink
	Delay  time.Duration // Slow
	Period time.Duration // Change
	Line   int           // the script line, for messages
}

// N resolves the event's node count against live nodes (at least 1 for a share).
func (e Event) N(live int) int {
	if e.Share > 0 {
		return max(1, int(math.Round(e.Share*float64(live))))
	}
	return e.Count
}

// Scenario is a parsed script.
type Scenario struct {
	Name     string
	Nodes    int
	Seed     uint64
	Services int // per node, registered before t=0
	Link     Link
	Duration time.Duration
	Events   []Event
}

// Parse reads a script. Errors name the line and what is wrong with it.
func Parse(r io.Reader, name string) (Scenario, error) {
	sc := Scenario{Name: name, Seed: 1}
	s := bufio.NewScanner(r)
	line := 0
	for s.Scan() {
		line++
		text, _, _ := strings.Cut(s.Text(), "#")
		f := strings.Fields(text)
		if len(f) == 0 {
			continue
		}
		if err := sc.directive(f, line); err != nil {
			return Scenario{}, fmt.Errorf("scenario %s line %d: %w", name, line, err)
		}
	}
	if err := s.Err(); err != nil {
		return Scenario{}, fmt.Errorf("scenario %s: %w", name, err)
	}
	if sc.Nodes < 3 {
		return Scenario{}, fmt.Errorf("scenario %s: nodes %d: need a \"nodes N\" line with N ≥ 3", name, sc.Nodes)
	}
	if sc.Duration <= 0 {
		return Scenario{}, fmt.Errorf("scenario %s: need a \"duration D\" line with D > 0", name)
	}
	for _, e := range sc.Events {
		if e.At > sc.Duration {
			return Scenario{}, fmt.Errorf("scenario %s line %d: event at %s is after the duration %s", name, e.Line, e.At, sc.Duration)
		}
	}
	slices.SortStableFunc(sc.Events, func(a, b Event) int { return int(a.At - b.At) })
	return sc, nil
}

func (sc *Scenario) directive(f []string, line int) error {
	arg := func(n int) error {
		if len(f) != n+1 {
			return fmt.Errorf("%q takes %d argument(s), got %d", f[0], n, len(f)-1)
		}
		return nil
	}
	var err error
	switch f[0] {
	case "name":
		if err = arg(1); err == nil {
			sc.Name = f[1]
		}
	case "nodes":
		if err = arg(1); err == nil {
			sc.Nodes, err = count(f[1])
		}
	case "seed":
		if err = arg(1); err == nil {
			sc.Seed, err = strconv.ParseUint(f[1], 10, 64)
		}
	case "services":
		if err = arg(1); err == nil {
			sc.Services, err = count(f[1])
		}
	case "duration":
		if err = arg(1); err == nil {
			sc.Duration, err = duration(f[1])
		}
	case "link":
		sc.Link, err = parseLink(f[1:])
	case "at":
		if len(f) < 3 {
			return fmt.Errorf("\"at\" needs a time and an event, e.g. \"at 5s kill 1\"")
		}
		var e Event
		e.Line = line
		if e.At, err = duration(f[1]); err != nil {
			return err
		}
		e.Kind = Kind(f[2])
		if err = e.parse(f[3:]); err != nil {
			return fmt.Errorf("%s: %w", f[2], err)
		}
		sc.Events = append(sc.Events, e)
	default:
		return fmt.Errorf("unknown directive %q (want name, nodes, seed, services, link, duration or at)", f[0])
	}
	if err != nil {
		return fmt.Errorf("%s: %w", f[0], err)
	}
	return nil
}

func (e *Event) parse(a []string) error {
	want := func(n int) error {
		if len(a) != n {
			return fmt.Errorf("takes %d argument(s), got %d", n, len(a))
		}
		return nil
	}
	var err error
	switch e.Kind {
	case Register:
		if err = want(1); err == nil {
			e.Count, err = count(a[0])
		}
	case Kill, Churn, Partition:
		if err = want(1); err == nil {
			e.Count, e.Share, err = countOrShare(a[0])
		}
	case Heal:
		err = want(0)
	case SetLink:
		e.Link, err = parseLink(a)
	case Slow:
		if err = want(2); err == nil {
			if e.Count, e.Share, err = countOrShare(a[0]); err == nil {
				e.Delay, err = duration(a[1])
			}
		}
	case Change:
		if err = want(2); err == nil {
			if e.Count, err = count(a[0]); err == nil {
				e.Period, err = duration(a[1])
			}
		}
	default:
		return fmt.Errorf("unknown event (want register, kill, churn, partition, heal, link, slow or change)")
	}
	return err
}

func count(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a count", s)
	}
	return n, nil
}

func countOrShare(s string) (int, float64, error) {
	if p, ok := strings.CutSuffix(s, "%"); ok {
		v, err := strconv.ParseFloat(p, 64)
		if err != nil || v <= 0 || v > 100 {
			return 0, 0, fmt.Errorf("%q is not a share in (0%%, 100%%]", s)
		}
		return 0, v / 100, nil
	}
	n, err := count(s)
	if err == nil && n == 0 {
		err = fmt.Errorf("count must be at least 1")
	}
	return n, 0, err
}

func duration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not a duration like 1.5s or 200ms", s)
	}
	return d, nil
}

func parseLink(a []string) (Link, error) {
	var l Link
	if len(a) == 0 {
		return l, fmt.Errorf("need loss=…, latency=…, jitter=…, dup=… or bw=…")
	}
	for _, kv := range a {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return l, fmt.Errorf("%q: want key=value", kv)
		}
		var err error
		switch k {
		case "loss":
			p, pct := strings.CutSuffix(v, "%")
			l.Loss, err = strconv.ParseFloat(p, 64)
			if pct {
				l.Loss /= 100
			}
			if err != nil || l.Loss < 0 || l.Loss > 1 {
				err = fmt.Errorf("loss %q: want a share like 5%% or 0.05", v)
			}
		case "dup":
			p, pct := strings.CutSuffix(v, "%")
			l.Duplicate, err = strconv.ParseFloat(p, 64)
			if pct {
				l.Duplicate /= 100
			}
			if err != nil || l.Duplicate < 0 || l.Duplicate > 1 {
				err = fmt.Errorf("dup %q: want a share like 1%% or 0.01", v)
			}
		case "bw":
			l.Bandwidth, err = strconv.ParseFloat(v, 64)
			if err != nil || l.Bandwidth < 0 || math.IsInf(l.Bandwidth, 0) {
				err = fmt.Errorf("bw %q: want bytes per second, like 125000", v)
			}
		case "latency":
			l.Latency, err = duration(v)
		case "jitter":
			l.Jitter, err = duration(v)
		default:
			err = fmt.Errorf("unknown link setting %q (want loss, latency, jitter, dup or bw)", k)
		}
		if err != nil {
			return l, err
		}
	}
	return l, nil
}

// Load parses the script at path; the scenario's default name is the file's base
// name without its extension.
func Load(path string) (Scenario, error) {
	f, err := os.Open(path)
	if err != nil {
		return Scenario{}, fmt.Errorf("scenario: %w", err)
	}
	defer f.Close()
	return Parse(f, strings.TrimSuffix(filepath.Base(path), filepath.Ext(path)))
}
