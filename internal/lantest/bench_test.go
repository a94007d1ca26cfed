package lantest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// The benchmarks measure the README's mDNS table (issue 19's targets), in
// namespaces. Run them one at a time, once each:
//
//	go test -run '^$' -bench . -benchtime 1x -timeout 30m ./internal/lantest
//
// Each reports its numbers as custom metrics (seconds, bytes/s); b.N is ignored.

// BenchmarkPoolFormation: time from the start of the last of three agents with no
// join flags until all three see one pool, over 5 runs (target: p99 ≤ 3 s).
func BenchmarkPoolFormation(b *testing.B) {
	var took []time.Duration
	for run := range 5 {
		b.Run(fmt.Sprint("run", run), func(b *testing.B) {
			l := newLAN(b, 3)
			for i, n := range []string{"h1", "h2", "h3"} {
				l.agent(i, n)
			}
			start := time.Now()
			testkitPoll(b, 20*time.Second, 20*time.Millisecond, "one pool", all(l.sees(0, "h1", "h2", "h3"), l.sees(1, "h1", "h2", "h3"), l.sees(2, "h1", "h2", "h3")))
			took = append(took, time.Since(start))
		})
	}
	slices.Sort(took)
	b.ReportMetric(took[len(took)/2].Seconds(), "p50-s")
	b.ReportMetric(took[len(took)-1].Seconds(), "p99-s") // of 5 runs, the maximum
	b.Logf("pool formation over %d runs: %v", len(took), took)
}

// BenchmarkAvahiLatency: time from a registration's HTTP answer until a running
// avahi-browse resolves it, and from the deregistration's answer until it reports
// the removal (targets: ≤ 1.3 s and ≤ 1.2 s), over 10 registrations.
func BenchmarkAvahiLatency(b *testing.B) {
	l := newLAN(b, 2, avahiTools...)
	av := l.avahi(1, "av2")
	l.agent(0, "h1")
	testkitPoll(b, 15*time.Second, 100*time.Millisecond, "agent up", func() error { _, err := l.members(0); return err })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := l.host(1).Command(ctx, "avahi-browse", "-rpk", "_web._tcp")
	cmd.Env = append(os.Environ(), av.env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()
	type ev struct {
		kind, name string
		at         time.Time
	}
	events := make(chan ev, 100)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			f := strings.Split(sc.Text(), ";")
			if len(f) > 3 && (f[0] == "=" || f[0] == "-") {
				events <- ev{f[0], f[3], time.Now()}
			}
		}
	}()
	wait := func(kind, name string) time.Time {
		deadline := time.After(15 * time.Second)
		for {
			select {
			case e := <-events:
				if e.kind == kind && e.name == name {
					return e.at
				}
			case <-deadline:
				b.Fatalf("no %q event for %s in avahi-browse", kind, name)
			}
		}
	}
	var reg, bye []time.Duration
	for i := range 10 {
		id := fmt.Sprintf("web%d", i)
		t0 := time.Now()
		if _, err := l.do(0, "PUT", "/v1/agent/service/register", fmt.Sprintf(`{"ID": %q, "Name": "web", "Port": 8080}`, id)); err != nil {
			b.Fatal(err)
		}
		reg = append(reg, wait("=", id+"-h1").Sub(t0))
		// A service lives longer than its announcements (two, a second apart).
		pause := time.NewTimer(1500 * time.Millisecond)
		<-pause.C
		t1 := time.Now()
		if _, err := l.do(0, "PUT", "/v1/agent/service/deregister/"+id, ""); err != nil {
			b.Fatal(err)
		}
		bye = append(bye, wait("-", id+"-h1").Sub(t1))
	}
	slices.Sort(reg)
	slices.Sort(bye)
	b.ReportMetric(reg[len(reg)-1].Seconds(), "register-max-s") // p99 of 10: the maximum
	b.ReportMetric(reg[len(reg)/2].Seconds(), "register-p50-s")
	b.ReportMetric(bye[len(bye)-1].Seconds(), "goodbye-max-s")
	b.ReportMetric(bye[len(bye)/2].Seconds(), "goodbye-p50-s")
	b.Logf("visible in avahi-browse: %v; removed: %v", reg, bye)
}

// BenchmarkSteadyTraffic: 20 agents announcing 10 services each (200 instances) on
// one bridge; a sniffer on a 21st host sees every mDNS packet from before the first
// registration. Once every instance is announced and 10 s more have passed, it
// counts every packet for 150 s: bytes per agent per second. Over the whole run it
// keeps the shortest interval between two multicasts of one record by one host and
// the most multicasts of one record by one host within a second (targets: never
// under 1 s, at most 1), probes and goodbyes excepted.
func BenchmarkSteadyTraffic(b *testing.B) {
	const agents, perAgent = 20, 10
	window := 150 * time.Second // longer than a full refresh cycle of 120-s records
	if testing.Short() {
		window = 15 * time.Second
	}
	l := newLAN(b, agents+1)
	sn := l.sniff(agents)
	for i := range agents {
		l.agent(i, fmt.Sprintf("n%02d", i+1))
	}
	for i := range agents {
		testkitPoll(b, 30*time.Second, 100*time.Millisecond, "agent up", func() error { _, err := l.members(i); return err })
		for s := range perAgent {
			if _, err := l.do(i, "PUT", "/v1/agent/service/register", fmt.Sprintf(`{"ID": "s%d", "Name": "svc%d", "Port": %d, "Tags": ["t"]}`, s, s, 8000+s)); err != nil {
				b.Fatal(err)
			}
		}
	}
	testkitPoll(b, 10*time.Minute, time.Second, "all 200 instances announced", func() error {
		if n := sn.seen(); n < agents*perAgent {
			return fmt.Errorf("%d of %d instances seen", n, agents*perAgent)
		}
		return nil
	})
	announcing, announcingKey := sn.shortest()
	settle := time.NewTimer(10 * time.Second) // the last announcements' repeats
	<-settle.C
	sn.count()
	stop := time.NewTimer(window)
	<-stop.C
	bytes, packets, queries, responses, top := sn.totals()
	gap, key := sn.shortest()
	if n := sn.unstampedCount(); n > 0 {
		b.Errorf("%d packets had no kernel timestamp", n)
	}
	perHost := float64(bytes) / window.Seconds() / agents
	b.ReportMetric(perHost, "bytes/s/host")
	b.ReportMetric(float64(packets)/window.Seconds(), "packets/s")
	b.ReportMetric(min(gap, window).Seconds(), "min-repeat-s")
	b.ReportMetric(float64(sn.perSecond()), "max-per-record-per-s")
	b.Logf("steady state over %s: %d packets (%d queries, %d responses), %d bytes (%.0f B/s per host); most asked: %v",
		window, packets, queries, responses, bytes, perHost, top)
	b.Logf("whole run: shortest repeat of one record by one host %s (%s), at most %d multicasts of one record by one host within a second; until every instance was announced: %s (%s)",
		gap, key, sn.perSecond(), announcing, announcingKey)
}

// testkitPoll is testkit.Poll (kept short here for the benchmarks' loops).
func testkitPoll(b testing.TB, within, every time.Duration, what string, cond func() error) {
	b.Helper()
	start := time.Now()
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Since(start) > within {
			b.Fatalf("timed out after %s waiting for %s: %v", within, what, err)
		}
		t := time.NewTimer(every)
		<-t.C
	}
}

// topN returns the n most frequent keys of m with their counts.
func topN(m map[string]int, n int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return m[b] - m[a] })
	var out []string
	for _, k := range keys[:min(n, len(keys))] {
		out = append(out, fmt.Sprintf("%s×%d", k, m[k]))
	}
	return out
}
