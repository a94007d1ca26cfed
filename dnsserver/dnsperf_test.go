package dnsserver

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

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
//
// Pinned: with DNSPERF_CPU set (a taskset CPU list), dnsperf runs on those CPUs; run
// the test binary itself on the others, so that the server (GOMAXPROCS follows the
// affinity) and its load generator do not compete, and dnsperf can offer twice a
// saturating rate that is now one core's:
//
//	go test -c -o /tmp/dnsserver.test ./dnsserver/
//	DNSPERF_CPU=1 taskset -c 0 /tmp/dnsserver.test -test.run '^$' -test.bench DNSPerf -test.benchtime 1x
//
// Every run reports the 1-minute load average before it (loadavg).

// perfResult is what one dnsperf run measured.
type perfResult struct {
	qps                float64
	sent, answered     int
	p50, p99, p999, mx time.Duration
}

var dnsperfLine = regexp.MustCompile(`^> (\S+) \S+ \S+ ([0-9.]+)`)

// runDNSPerf runs dnsperf against addr for secs seconds; rate 0 means as fast as
// the server answers. Extra args go to dnsperf. dnsperf's output goes to a file,
// read when it exits (see dnsperfOut); DNSPERF_STDOUT=pipe reads it through a pipe
// while it runs, as before, and DNSPERF_ARGS (space-separated) adds arguments.
func runDNSPerf(b *testing.B, addr string, secs int, rate float64, extra ...string) perfResult {
	b.Helper()
	out := dnsperfToFile
	if os.Getenv("DNSPERF_STDOUT") == "pipe" {
		out = dnsperfToPipe
	}
	return runDNSPerfOut(b, addr, secs, rate, out, append(extra, strings.Fields(os.Getenv("DNSPERF_ARGS"))...)...)
}

// dnsperfOut is where dnsperf's output goes while it runs. With -v, dnsperf writes
// a line per answer from its receiving thread, and flushes stdout before each line
// (fflush in its log function, under a lock): one write(2) per answer. Into a pipe
// that means the reader (this process, on the server's CPU when pinned) wakes for
// every answer and competes with the responder, and a full pipe blocks dnsperf's
// receiver while answers wait in its sockets; into a file (the page cache) the write
// returns at once and the lines are read after the run.
type dnsperfOut int

const (
	dnsperfToFile dnsperfOut = iota
	dnsperfToPipe
)

func runDNSPerfOut(b *testing.B, addr string, secs int, rate float64, out dnsperfOut, extra ...string) perfResult {
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
		// A 4 MiB receive buffer (-b, KiB; the default is the system's 208 KiB)
		// keeps dnsperf's own sockets from dropping answers while its receiving
		// thread waits for the CPU: a drop hides one of the slowest answers.
		args = append(args, "-Q", strconv.Itoa(int(rate)), "-q", "20000", "-t", "1", "-b", "4096")
	} else {
		args = append(args, "-q", "64", "-t", "1")
	}
	args = append(args, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs+30)*time.Second)
	defer cancel()
	name := "dnsperf"
	if cpus := os.Getenv("DNSPERF_CPU"); cpus != "" {
		name, args = "taskset", append([]string{"-c", cpus, "dnsperf"}, args...)
	}
	b.ReportMetric(loadAvg(b), "loadavg")
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	var lines io.Reader
	var file *os.File
	switch out {
	case dnsperfToPipe:
		pipe, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		lines = pipe
	default:
		// DNSPERF_KEEP (a directory) keeps each run's output there, for diagnosis.
		outDir := dir
		if d := os.Getenv("DNSPERF_KEEP"); d != "" {
			outDir = d
		}
		f, err := os.CreateTemp(outDir, "dnsperf-*.out")
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		cmd.Stdout, lines, file = f, f, f
	}
	if err := startDNSPerf(b, cmd); err != nil {
		b.Fatal(err)
	}
	wait := func() {
		if err := cmd.Wait(); err != nil {
			b.Fatalf("dnsperf %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
	}
	if file != nil {
		// Read once dnsperf is done, from the start: dnsperf moved the shared offset.
		wait()
		if _, err := file.Seek(0, io.SeekStart); err != nil {
			b.Fatal(err)
		}
	}
	var lat []time.Duration
	var summary strings.Builder
	sc := bufio.NewScanner(lines)
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
	if err := sc.Err(); err != nil {
		b.Fatalf("dnsperf's output: %v", err)
	}
	if out == dnsperfToPipe {
		wait()
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

// loadAvg is the 1-minute load average (/proc/loadavg), or -1 where there is none.
func loadAvg(b *testing.B) float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return -1
	}
	l, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		b.Logf("/proc/loadavg: %v", err)
		return -1
	}
	return l
}

// serverHist is the server's own latency histogram (kernel receive to answer
// written): cumulative counts by upper bound.
func serverHist(b *testing.B, s *Server) (bounds []float64, counts []uint64) {
	var d dto.Metric
	if err := s.metrics.duration.Write(&d); err != nil {
		b.Fatal(err)
	}
	for _, bk := range d.GetHistogram().GetBucket() {
		bounds = append(bounds, bk.GetUpperBound())
		counts = append(counts, bk.GetCumulativeCount())
	}
	return bounds, append(counts, d.GetHistogram().GetSampleCount())
}

// serverP99 is the bucket bound under which 99 % of the answers written between the
// two histograms fell, in ms: the server's share of the latency dnsperf measures.
func serverP99(b *testing.B, s *Server, before []uint64) float64 {
	bounds, after := serverHist(b, s)
	total := after[len(after)-1] - before[len(before)-1]
	for i, ub := range bounds {
		if float64(after[i]-before[i]) >= 0.99*float64(total) {
			return ub * 1e3
		}
	}
	return -1 // past the last bucket
}

// serverOverPct is the share of the answers written between the two histograms that
// took longer than the bucket bound ub (seconds), in percent.
func serverOverPct(b *testing.B, s *Server, before []uint64, ub float64) float64 {
	bounds, after := serverHist(b, s)
	total := after[len(after)-1] - before[len(before)-1]
	i := slices.Index(bounds, ub)
	if i < 0 || total == 0 {
		b.Fatalf("no bucket bound %v, or no answers", ub)
	}
	return 100 * float64(total-(after[i]-before[i])) / float64(total)
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
	cfg := Config{Addr: "127.0.0.1:0", Catalog: cat, ARecordLimit: 5, NodeName: "node-000"}
	// DNSPERF_MAX_QUEUE_DELAY (a duration) compares shedding ages.
	if v := os.Getenv("DNSPERF_MAX_QUEUE_DELAY"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("DNSPERF_MAX_QUEUE_DELAY: %v", err)
		}
		cfg.MaxQueueDelay = d
	}
	// DNSPERF_OVERLOAD_QUEUE_DELAY (a duration) compares the overload shedding ages.
	if v := os.Getenv("DNSPERF_OVERLOAD_QUEUE_DELAY"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("DNSPERF_OVERLOAD_QUEUE_DELAY: %v", err)
		}
		cfg.OverloadQueueDelay = d
	}
	// DNSPERF_NETPOLL=1 measures the netpoller design (Config.NetpollUDP).
	cfg.NetpollUDP = os.Getenv("DNSPERF_NETPOLL") == "1"
	srv, err := New(cfg)
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
	b.Logf("server: GOMAXPROCS %d, %d UDP sockets (%d blocking, read by threads), %d workers; dnsperf on CPUs %q (all if empty)",
		runtime.GOMAXPROCS(0), len(srv.udp)+len(srv.fds), len(srv.fds), srv.cfg.Workers, os.Getenv("DNSPERF_CPU"))
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
	// DNSPERF_RATE (queries/s) replaces the saturating rate dnsperf measured as the
	// one the half and double rates follow: dnsperf's ceiling is its own, and below
	// what the server answers on one core, so twice it may not overload the server.
	if v := os.Getenv("DNSPERF_RATE"); v != "" {
		r, err := strconv.ParseFloat(v, 64)
		if err != nil || r <= 0 {
			b.Fatalf("DNSPERF_RATE %q: want queries/s", v)
		}
		b.Logf("half and double rates follow DNSPERF_RATE, %.0f/s, not dnsperf's %.0f/s", r, udp.qps)
		udp.qps = r
	}
	b.Run("udp-half", func(b *testing.B) {
		shed0 := shedTotal(srv)
		_, h0 := serverHist(b, srv)
		r := runDNSPerf(b, addr, secs, udp.qps/2)
		b.ReportMetric(serverP99(b, srv, h0), "server-p99-ms")
		b.ReportMetric(r.qps, "queries/s")
		b.ReportMetric(ms(r.p50), "p50-ms")
		b.ReportMetric(ms(r.p99), "p99-ms")
		b.ReportMetric(ms(r.p999), "p99.9-ms")
		b.ReportMetric(100*float64(r.sent-r.answered)/float64(r.sent), "lost-pct")
		b.ReportMetric(shedTotal(srv)-shed0, "shed")
	})
	overload := 60
	if s, err := strconv.Atoi(os.Getenv("DNSPERF_OVERLOAD")); err == nil && s > 0 {
		overload = s
	}
	b.Run("udp-overload", func(b *testing.B) {
		shed0 := shedTotal(srv)
		_, h0 := serverHist(b, srv)
		r := runDNSPerf(b, addr, overload, 2*udp.qps)
		b.ReportMetric(serverP99(b, srv, h0), "server-p99-ms")
		b.ReportMetric(float64(r.sent)/float64(overload), "offered/s")
		b.ReportMetric(r.qps, "answered/s")
		b.ReportMetric(ms(r.p50), "p50-ms")
		b.ReportMetric(ms(r.p99), "p99-ms")
		b.ReportMetric(ms(r.mx), "max-ms")
		b.ReportMetric(100*float64(r.sent-r.answered)/float64(r.sent), "unanswered-pct")
		b.ReportMetric(shedTotal(srv)-shed0, "shed")
	})
	// The floor: what dnsperf measures on this machine, at its load, against a
	// responder that does nothing but send back one pre-packed answer (the server's
	// own, five SRV records) with the query's ID, at the same rates, read and written
	// as the server does (on Linux threads in recvmmsg, one per core; elsewhere a
	// goroutine per core). Latency the floor shows is the machine's and dnsperf's,
	// not the server's.
	floor := bestFloor(b, floorAnswer(b, srv))
	b.Run("floor-half", func(b *testing.B) {
		r := runDNSPerf(b, floor, secs, udp.qps/2)
		b.ReportMetric(ms(r.p50), "p50-ms")
		b.ReportMetric(ms(r.p99), "p99-ms")
		b.ReportMetric(100*float64(r.sent-r.answered)/float64(r.sent), "lost-pct")
	})
	b.Run("floor-overload-rate", func(b *testing.B) {
		r := runDNSPerf(b, floor, secs, 2*udp.qps)
		b.ReportMetric(float64(r.sent)/float64(secs), "offered/s")
		b.ReportMetric(ms(r.p50), "p50-ms")
		b.ReportMetric(ms(r.p99), "p99-ms")
		b.ReportMetric(100*float64(r.sent-r.answered)/float64(r.sent), "unanswered-pct")
	})
	// The same rates from the open-loop generator (Linux), which can offer twice the
	// saturating rate and tells the server's share of the latency from its own.
	loadgenRuns(b, srv, floor, udp.qps, overload)
}

// floorServer starts the netpoller floor's responder on loopback: GOMAXPROCS
// goroutines on one socket, each reading a query and writing answer with the query's
// ID. With h, the responder's own share of the latency (kernel receive to answer
// written) lands in h. It returns its address; it stops when the benchmark ends.
func floorServer(b *testing.B, answer []byte, h *latHist) string {
	b.Helper()
	lc := net.ListenConfig{Control: reusePort}
	pc, err := lc.ListenPacket(context.Background(), "udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	c := pc.(*net.UDPConn)
	_ = c.SetReadBuffer(4 << 20) // as the server's
	var wg sync.WaitGroup
	b.Cleanup(func() { _ = c.Close(); wg.Wait() })
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			in, out, oob := make([]byte, 512), slices.Clone(answer), make([]byte, oobSize)
			for {
				n, oobn, _, from, err := c.ReadMsgUDPAddrPort(in, oob)
				if err != nil {
					return
				}
				if n >= 2 {
					out[0], out[1] = in[0], in[1]
					_, _ = c.WriteToUDPAddrPort(out, from)
					if now := time.Now(); h != nil {
						h.add(now.Sub(arrival(oob[:oobn], now)).Nanoseconds())
					}
				}
			}
		})
	}
	return c.LocalAddr().String()
}

// latHist is a lock-free histogram of durations in 10 µs buckets up to 100 ms.
type latHist struct{ n [10001]atomic.Uint64 }

func (h *latHist) add(ns int64) {
	i := max(0, min(ns/10000, int64(len(h.n)-1)))
	h.n[i].Add(1)
}

func (h *latHist) reset() {
	for i := range h.n {
		h.n[i].Store(0)
	}
}

// quantile returns the upper bound of the bucket holding quantile q, in ms.
func (h *latHist) quantile(q float64) float64 {
	var total uint64
	for i := range h.n {
		total += h.n[i].Load()
	}
	var c uint64
	for i := range h.n {
		c += h.n[i].Load()
		if float64(c) >= q*float64(total) {
			return float64(i+1) / 100
		}
	}
	return -1
}

// floorAnswer is srv's answer to web.service.consul SRV, packed.
func floorAnswer(b *testing.B, srv *Server) []byte {
	b.Helper()
	m := new(dns.Msg)
	m.SetQuestion("web.service.consul.", dns.TypeSRV)
	r, _ := srv.handle(m, false)
	answer, err := srv.pack(r, make([]byte, dns.MaxMsgSize), newScratch())
	if err != nil {
		b.Fatal(err)
	}
	return slices.Clone(answer)
}
