package dnsserver

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/catalog/catalogtest"
)

// The DNS targets, measured with Debian's dnsperf on loopback against a
// server answering SRV lookups of web.service.consul, 5 of 100 instances
// (ARecordLimit 5):
//
//	go test -run '^$' -bench DNSPerf -benchtime 1x ./dnsserver/
//
// BenchmarkDNSPerf/udp saturates the server (dnsperf with 64 queries outstanding),
// /tcp does the same over TCP (dnsperf keeps a connection per client), /udp-half
// offers half the saturating UDP rate and reports the latency percentiles,
// /udp-overload offers twice that rate for DNSPERF_OVERLOAD seconds (default 60)
// and reports the percentiles of the answered queries and the share shed. Each
// runs once whatever b.N is. dnsperf prints no percentiles: its -v lines give every
// query's latency.

// perfResult is what one dnsperf run measured.
type perfResult struct {
	qps                float64
	sent, answered     int
	p50, p99, p999, mx time.Duration
}

var dnsperfLine = regexp.MustCompile(`^> (\S+) \S+ \S+ ([0-9.]+)`)

// runDNSPerf runs dnsperf against addr for secs seconds; rate 0 means as fast as
// the server answers. Extra args go to dnsperf.
func runDNSPerf(b *testing.B, addr string, secs int, rate float64, extra ...string) perfResult {
	b.Helper()
	dir := b.TempDir()
	data := filepath.Join(dir, "queries")
	if err := os.WriteFile(data, []byte("web.service.consul SRV\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	host, port, _ := strings.Cut(addr, ":")
	args := []string{"-s", host, "-p", port, "-d", data, "-l", strconv.Itoa(secs), "-v", "-c", "4", "-T", "1"}
	if rate > 0 {
		// Enough outstanding queries and a short timeout, so shed queries do not
		// throttle what dnsperf offers.
		args = append(args, "-Q", strconv.Itoa(int(rate)), "-q", "20000", "-t", "1")
	} else {
		args = append(args, "-q", "64", "-t", "1")
	}
	args = append(args, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs+30)*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "dnsperf", args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	var lat []time.Duration
	var summary strings.Builder
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		l := sc.Text()
		if m := dnsperfLine.FindStringSubmatch(l); m != nil {
			if s, err := strconv.ParseFloat(m[2], 64); err == nil {
				lat = append(lat, time.Duration(s*float64(time.Second)))
			}
			continue
		}
		summary.WriteString(l + "\n")
	}
	if err := cmd.Wait(); err != nil {
		b.Fatalf("dnsperf %s: %v\n%s%s", strings.Join(args, " "), err, summary.String(), stderr.String())
	}
	var r perfResult
	for _, l := range strings.Split(summary.String(), "\n") {
		f := strings.Fields(l)
		switch {
		case strings.HasPrefix(strings.TrimSpace(l), "Queries sent:"):
			r.sent, _ = strconv.Atoi(f[2])
		case strings.HasPrefix(strings.TrimSpace(l), "Queries completed:"):
			r.answered, _ = strconv.Atoi(f[2])
		case strings.HasPrefix(strings.TrimSpace(l), "Queries per second:"):
			r.qps, _ = strconv.ParseFloat(f[3], 64)
		}
	}
	if len(lat) == 0 || r.sent == 0 {
		b.Fatalf("dnsperf reported nothing:\n%s%s", summary.String(), stderr.String())
	}
	slices.Sort(lat)
	q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	r.p50, r.p99, r.p999, r.mx = q(0.50), q(0.99), q(0.999), lat[len(lat)-1]
	return r
}

// shedTotal is the server's shed count over every reason.
func shedTotal(s *Server) float64 {
	var n float64
	for _, r := range []string{"queue_full", "too_old", "forwards"} {
		n += testutil.ToFloat64(s.metrics.shed.WithLabelValues(r))
	}
	return n
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// perfServer starts a server with web's 100 instances, answering 5 per query.
func perfServer(b testing.TB) *Server {
	b.Helper()
	cat, _ := catalogtest.New(b, catalog.Config{})
	for i := range 100 {
		name := fmt.Sprintf("node-%03d", i)
		v := catalog.Version{Gen: 1, Counter: 1}
		recs := []catalog.Record{
			{Origin: name, Key: catalog.Key{Kind: catalog.KindNode}, Version: v, Node: catalogtest.Node(name, fmt.Sprintf("10.1.%d.%d", i/250, i%250+1))},
			{Origin: name, Key: catalog.Key{Kind: catalog.KindService, ID: "web"}, Version: catalog.Version{Gen: 1, Counter: 2},
				Service: catalogtest.Service("web", "web", 8080)},
		}
		if _, err := cat.Apply(recs...); err != nil {
			b.Fatal(err)
		}
	}
	srv, err := New(Config{Addr: "127.0.0.1:0", Catalog: cat, ARecordLimit: 5, NodeName: "node-000"})
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = srv.Close() })
	return srv
}

func BenchmarkDNSPerf(b *testing.B) {
	if _, err := exec.LookPath("dnsperf"); err != nil {
		if os.Getenv("CI") == "true" {
			b.Fatal("dnsperf (Debian dnsperf) is missing")
		}
		b.Skip("dnsperf (Debian dnsperf) is not installed")
	}
	b.ReportAllocs()
	srv := perfServer(b)
	addr := srv.Addr().String()
	secs := 10
	var udp perfResult
	b.Run("udp", func(b *testing.B) {
		udp = runDNSPerf(b, addr, secs, 0)
		b.ReportMetric(udp.qps, "queries/s")
		b.ReportMetric(ms(udp.p99), "p99-ms")
	})
	if udp.qps == 0 {
		b.Fatal("the UDP run measured nothing")
	}
	b.Run("tcp", func(b *testing.B) {
		r := runDNSPerf(b, addr, secs, 0, "-m", "tcp")
		b.ReportMetric(r.qps, "queries/s")
		b.ReportMetric(100*r.qps/udp.qps, "pct-of-udp")
		b.ReportMetric(ms(r.p99), "p99-ms")
	})
	b.Run("udp-half", func(b *testing.B) {
		r := runDNSPerf(b, addr, secs, udp.qps/2)
		b.ReportMetric(r.qps, "queries/s")
		b.ReportMetric(ms(r.p50), "p50-ms")
		b.ReportMetric(ms(r.p99), "p99-ms")
		b.ReportMetric(ms(r.p999), "p99.9-ms")
		b.ReportMetric(100*float64(r.sent-r.answered)/float64(r.sent), "lost-pct")
	})
	overload := 60
	if s, err := strconv.Atoi(os.Getenv("DNSPERF_OVERLOAD")); err == nil && s > 0 {
		overload = s
	}
	b.Run("udp-overload", func(b *testing.B) {
		shed0 := shedTotal(srv)
		r := runDNSPerf(b, addr, overload, 2*udp.qps)
		b.ReportMetric(float64(r.sent)/float64(overload), "offered/s")
		b.ReportMetric(r.qps, "answered/s")
		b.ReportMetric(ms(r.p50), "p50-ms")
		b.ReportMetric(ms(r.p99), "p99-ms")
		b.ReportMetric(ms(r.mx), "max-ms")
		b.ReportMetric(100*float64(r.sent-r.answered)/float64(r.sent), "unanswered-pct")
		b.ReportMetric(shedTotal(srv)-shed0, "shed")
	})
}
