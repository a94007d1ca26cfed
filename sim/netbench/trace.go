package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/rumor-sd/rumor/sim"
)

// A tracer (--trace) splits each propagation trial into its hops with the agents'
// own clocks, which namespaces share with the benchmark: after a trial it reads from
// every agent's /metrics when the origin sent the last packet of the change
// (rumor_gossip_eager_last_sent_timestamp_seconds), and when each other agent
// received the eager message that changed its catalog and when its catalog had
// applied it, watchers woken (…_last_received_…, …_last_applied_…). With the
// moment the benchmark's blocking query answered (consumer-visible, what the main
// table reports), that gives, per agent and trial:
//
//	start → sent       the origin: the PUT, local apply, the eager batch to every peer
//	sent → received    the network and memberlist's receive path, up to NotifyMsg
//	received → applied gossip's inbox, its worker and the catalog's apply
//	applied → seen     the blocking query's wake, its answer and the benchmark's read
//
// The scrape happens after the trial's timing is done, and the next trial waits
// another spell after it, so it does not weigh on the times measured; it does make
// a traced run slower. An agent whose last eager change predates the trial (its
// eager packet lost: piggyback delivered it) is counted apart.
type tracer struct {
	clients []*client
	out     io.Writer // one JSON line per trial

	sent, net, apply, answer []time.Duration // per hop, over every (trial, agent)
	appliedAll, seenAll      []time.Duration // per trial: the last agent's applied / seen
	notEager                 int
}

// traceRow is one trial's JSON line: times in microseconds from the PUT.
type traceRow struct {
	Trial   int
	Origin  string
	SentUS  float64
	Agents  map[string][3]float64 // received, applied, seen
	Missing []string              `json:",omitempty"` // no eager change of this trial
}

// eagerStamps reads the three eager-path timestamps of one agent; zero if absent.
func eagerStamps(ctx context.Context, c *client) (sent, received, applied float64, err error) {
	body, _, err := c.get(ctx, "/metrics")
	if err != nil {
		return 0, 0, 0, err
	}
	for _, line := range strings.Split(string(body), "\n") {
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			continue
		}
		switch name {
		case "rumor_gossip_eager_last_sent_timestamp_seconds":
			sent = v
		case "rumor_gossip_eager_last_received_timestamp_seconds":
			received = v
		case "rumor_gossip_eager_last_applied_timestamp_seconds":
			applied = v
		}
	}
	return sent, received, applied, nil
}

// since is the time from start to a Unix timestamp in seconds.
func since(start time.Time, unix float64) time.Duration {
	sec, frac := math.Modf(unix)
	return time.Unix(int64(sec), int64(frac*1e9)).Sub(start)
}

// trial records one trial: src the origin, seen when each agent's query answered.
func (tr *tracer) trial(ctx context.Context, trial, src int, start time.Time, seen []time.Time) error {
	row := traceRow{Trial: trial, Origin: tr.clients[src].host, Agents: map[string][3]float64{}}
	sent, _, _, err := eagerStamps(ctx, tr.clients[src])
	if err != nil {
		return err
	}
	sentAt := since(start, sent)
	row.SentUS = float64(sentAt.Microseconds())
	tr.sent = append(tr.sent, sentAt)
	var lastApplied, lastSeen time.Duration
	for i, c := range tr.clients {
		if i == src {
			continue
		}
		_, recv, applied, err := eagerStamps(ctx, c)
		if err != nil {
			return err
		}
		r, a, s := since(start, recv), since(start, applied), seen[i].Sub(start)
		lastSeen = max(lastSeen, s)
		if recv == 0 || r < 0 {
			tr.notEager++
			row.Missing = append(row.Missing, c.host)
			lastApplied = max(lastApplied, s) // unknown: count it as the consumer saw it
			continue
		}
		row.Agents[c.host] = [3]float64{float64(r.Microseconds()), float64(a.Microseconds()), float64(s.Microseconds())}
		tr.net = append(tr.net, r-sentAt)
		tr.apply = append(tr.apply, a-r)
		tr.answer = append(tr.answer, s-a)
		lastApplied = max(lastApplied, a)
	}
	tr.appliedAll = append(tr.appliedAll, lastApplied)
	tr.seenAll = append(tr.seenAll, lastSeen)
	b, err := json.Marshal(row)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(tr.out, "%s\n", b)
	return err
}

// summary prints each hop's median / p99 / max, and visible on all by the agents'
// own clocks beside the consumer-visible one.
func (tr *tracer) summary(w io.Writer) {
	if len(tr.seenAll) == 0 {
		return
	}
	ms := func(d time.Duration) string { return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 1, 64) }
	line := func(what string, ds []time.Duration) {
		if len(ds) == 0 {
			fmt.Fprintf(w, "  %-58s –\n", what)
			return
		}
		fmt.Fprintf(w, "  %-58s %s / %s / %s ms\n", what, ms(sim.Percentile(ds, 50)), ms(sim.Percentile(ds, 99)), ms(sim.Percentile(ds, 100)))
	}
	fmt.Fprintf(w, "trace (%d trials; median / p99 / max):\n", len(tr.seenAll))
	line("origin: PUT → last eager packet sent", tr.sent)
	line("sent → received (network, memberlist receive, NotifyMsg)", tr.net)
	line("received → applied (gossip inbox, worker, catalog apply)", tr.apply)
	line("applied → seen (blocking query answer, benchmark read)", tr.answer)
	line("visible on all, agent-side (last agent's apply)", tr.appliedAll)
	line("visible on all, consumer-side (last blocking query)", tr.seenAll)
	fmt.Fprintf(w, "  agents whose change came by another path than the eager one: %d\n", tr.notEager)
}
