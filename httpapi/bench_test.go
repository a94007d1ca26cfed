package httpapi

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/catalog/catalogtest"
)

// The benchmarks below serve the API on a real loopback listener, as an agent does,
// and drive it from Go clients in the same process: on the project's 2-core machine
// the load generator shares the CPU with the server, so the numbers are a floor.

// benchCatalog fills a catalog with nodes × perNode service instances, each with one
// passing check, two tags and a meta key, the shape of catalog/bench_test.go. The
// first web nodes run one "web" instance each; the rest spread over 500 names.
func benchCatalog(b *testing.B, nodes, perNode, web int) *catalog.Catalog {
	b.Helper()
	cat, _ := catalogtest.New(b, catalog.Config{})
	for i := range nodes {
		name := fmt.Sprintf("node-%05d", i)
		w := catalog.NewWriter(name, 1)
		recs := []catalog.Record{w.PutNode(catalogtest.Node(name, fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)))}
		for j := range perNode {
			svc := fmt.Sprintf("svc-%03d", (i*perNode+j)%500)
			if j == 0 && i < web {
				svc = "web"
			}
			s := catalogtest.Service(fmt.Sprintf("%s-%d", svc, j), svc, 8000+j, "v1", "primary")
			s.Meta = map[string]string{"version": "1.2.3"}
			recs = append(recs, w.PutService(s), w.PutCheck(catalogtest.Check(s.ID+"-check", s.ID, catalog.StatusPassing)))
		}
		if _, err := cat.Apply(recs...); err != nil {
			b.Fatal(err)
		}
	}
	return cat
}

// serveBench serves a Handler over cat on a loopback listener until the benchmark
// ends, and returns its base URL.
func serveBench(b *testing.B, cat Catalog) string {
	b.Helper()
	h, err := New(Config{Catalog: cat, Agent: newFakeAgent(catalogOf(b, cat))})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln) // returns http.ErrServerClosed on Close
	}()
	b.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	return "http://" + ln.Addr().String()
}

// catalogOf unwraps the real catalog behind a benchmark's Catalog.
func catalogOf(b *testing.B, c Catalog) *catalog.Catalog {
	switch c := c.(type) {
	case *catalog.Catalog:
		return c
	case *countingCatalog:
		return c.Catalog
	}
	b.Fatalf("unexpected catalog %T", c)
	return nil
}

// BenchmarkHealthServicePassing measures GET /v1/health/service/web?passing, the
// query Prometheus, consul-template and Traefik make, with 10,000 instances in the
// catalog (1,000 nodes × 10) of which 100 are web's, from 16 keep-alive clients
// (wrk's default is 10; at 32, p99 is mostly queueing and passes 5 ms).
// One op is one request. Targets: ≥ 20,000 req/s with p99 under 5 ms for clients
// that accept gzip, as Go's http.Transport (so consul/api, Prometheus,
// consul-template and Traefik) does by default.
//
// The load generator works like wrk: each client owns a keep-alive connection,
// writes a prepared request and reads the response with http.ReadResponse, without
// net/http's transport goroutines, so most of the CPU measured is the server's.
// accept=gzip sends Accept-Encoding: gzip and reads the compressed body without
// decompressing it, as wrk and hey do: decompressing is the client's cost, not the
// server's (TestGzipAnswers checks the bytes decompress to the plain answer).
// accept=identity does not ask for gzip and reads the ~110 KB plain answer.
// gotransport/accept=gzip is the same gzip read through Go's http.Client (still not
// decompressing), whose connection goroutines cost about as much as the server.
//
// Those rows are closed loops: every client sends its next request as soon as the
// last is answered, so they measure the most the machine serves, and their latency
// is mostly queueing behind the other 15 clients. accept=gzip/rate=20000 instead
// offers the target's load, 20,000 req/s spread evenly over the 16 connections, as
// wrk2 does, and times each request from when it was due rather than when it was
// sent, so a server that falls behind sees its latency grow (no coordinated
// omission). Its p99 is the latency at the target rate.
func BenchmarkHealthServicePassing(b *testing.B) {
	const nodes, perNode, web, clients = 1000, 10, 100, 16
	base := serveBench(b, benchCatalog(b, nodes, perNode, web))
	const path = "/v1/health/service/web?passing"
	for _, bc := range []struct {
		name       string
		acceptGzip bool
		transport  bool    // Go's http.Client rather than the wire client
		rate       float64 // requests per second offered; 0 for a closed loop
	}{
		{"accept=gzip", true, false, 0},
		{"accept=identity", false, false, 0},
		{"gotransport/accept=gzip", true, true, 0},
		{"accept=gzip/rate=20000", true, false, 20000},
	} {
		b.Run(bc.name, func(b *testing.B) {
			// newClient returns one client's fetch, which reads a whole answer and
			// returns its body as sent.
			newClient := func() (fetch func() ([]byte, error), close func()) {
				c, err := dialWire(base, path, bc.acceptGzip)
				if err != nil {
					b.Fatal(err)
				}
				return c.fetch, func() { c.conn.Close() }
			}
			if bc.transport {
				// DisableCompression: the transport neither adds Accept-Encoding nor
				// decompresses; the gzip client sets the header itself.
				tr := &http.Transport{MaxIdleConns: clients, MaxIdleConnsPerHost: clients, DisableCompression: true}
				defer tr.CloseIdleConnections()
				client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
				newClient = func() (func() ([]byte, error), func()) {
					return func() ([]byte, error) { return getEncoded(client, base+path, bc.acceptGzip) }, func() {}
				}
			}

			// The answer must be the real one: 100 entries.
			fetch, closeClient := newClient()
			body, err := fetch()
			closeClient()
			if err != nil {
				b.Fatal(err)
			}
			plain := body
			if bc.acceptGzip {
				if plain, err = gunzip(body); err != nil {
					b.Fatal(err)
				}
			}
			var entries []serviceEntry
			if err := json.Unmarshal(plain, &entries); err != nil || len(entries) != web {
				b.Fatalf("answer has %d entries (%v), want %d", len(entries), err, web)
			}

			var mu sync.Mutex
			var latencies []time.Duration
			b.SetParallelism(clients / runtime.GOMAXPROCS(0))
			b.ReportAllocs()
			b.ResetTimer()
			cpuStart := cpuTime()
			// interval is each client's time between requests at the offered rate.
			interval := time.Duration(0)
			if bc.rate > 0 {
				interval = time.Duration(float64(clients) / bc.rate * float64(time.Second))
			}
			var next atomic.Int64 // spreads the clients' first requests over one interval
			b.RunParallel(func(pb *testing.PB) {
				fetch, closeClient := newClient()
				defer closeClient()
				var mine []time.Duration
				due := time.Now().Add(time.Duration(next.Add(1)) * interval / clients)
				for pb.Next() {
					start := time.Now()
					if interval > 0 {
						if wait := time.Until(due); wait > 0 {
							time.Sleep(wait) // pacing the offered load, not synchronization
						}
						start, due = due, due.Add(interval)
					}
					if _, err := fetch(); err != nil {
						b.Error(err)
						return
					}
					mine = append(mine, time.Since(start))
				}
				mu.Lock()
				latencies = append(latencies, mine...)
				mu.Unlock()
			})
			b.StopTimer()
			cpu := cpuTime() - cpuStart
			b.ReportMetric(float64(len(body)), "resp-B")
			// CPU time per request (server and load generator together) says what the
			// machine can sustain when other processes compete for it: cores / cpu-µs/req.
			b.ReportMetric(float64(cpu)/float64(time.Microsecond)/float64(b.N), "cpu-µs/req")
			if len(latencies) == 0 {
				return
			}
			slices.Sort(latencies)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
			b.ReportMetric(ms(latencies[len(latencies)/2]), "p50-ms")
			b.ReportMetric(ms(latencies[len(latencies)*99/100]), "p99-ms")
		})
	}
}

// wireClient is one keep-alive connection of the wrk-like load generator: it writes
// a prepared GET and reads the response as sent (no decompression).
type wireClient struct {
	conn       net.Conn
	br         *bufio.Reader
	req        []byte
	acceptGzip bool
	buf        bytes.Buffer
}

// dialWire connects to base (http://host:port) for GETs of path.
func dialWire(base, path string, acceptGzip bool) (*wireClient, error) {
	addr := strings.TrimPrefix(base, "http://")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	req := "GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nUser-Agent: rumor-bench\r\n"
	if acceptGzip {
		req += "Accept-Encoding: gzip\r\n"
	}
	req += "\r\n"
	return &wireClient{conn: conn, br: bufio.NewReaderSize(conn, 16<<10), req: []byte(req), acceptGzip: acceptGzip}, nil
}

// fetch sends the request and reads the whole response; the body it returns is
// reused by the next fetch.
func (c *wireClient) fetch() ([]byte, error) {
	if _, err := c.conn.Write(c.req); err != nil {
		return nil, fmt.Errorf("write request: %w", err)
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return nil, fmt.Errorf("read response: %w", err)
	}
	c.buf.Reset()
	_, err = c.buf.ReadFrom(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET: %s: %s", resp.Status, c.buf.Bytes())
	}
	if got := resp.Header.Get("Content-Encoding"); (got == "gzip") != c.acceptGzip {
		return nil, fmt.Errorf("GET with gzip accepted %v: Content-Encoding %q", c.acceptGzip, got)
	}
	return c.buf.Bytes(), nil
}

// BenchmarkGzipAnswer compresses the health answer of BenchmarkHealthServicePassing
// (100 instances, ~110 KB of JSON) at BestSpeed and DefaultCompression, the choice
// behind gzipLevel.
func BenchmarkGzipAnswer(b *testing.B) {
	cat := benchCatalog(b, 1000, 10, 100)
	h, err := New(Config{Catalog: cat, Agent: newFakeAgent(cat)})
	if err != nil {
		b.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/health/service/web?passing", nil))
	body := rec.Body.Bytes()
	for _, level := range []int{gzip.BestSpeed, gzip.DefaultCompression} {
		b.Run(fmt.Sprint("level=", level), func(b *testing.B) {
			zw, _ := gzip.NewWriterLevel(io.Discard, level)
			var buf bytes.Buffer
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				buf.Reset()
				zw.Reset(&buf)
				_, _ = zw.Write(body)
				_ = zw.Close()
			}
			b.ReportMetric(float64(buf.Len()), "gzip-B")
		})
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// getEncoded fetches url, asking for gzip if acceptGzip, checks the status and that
// the answer is encoded as asked, and returns the body as sent, reading all of it so
// the connection is reused.
func getEncoded(c *http.Client, url string, acceptGzip bool) ([]byte, error) {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return nil, err
	}
	if acceptGzip {
		req.Header.Set("Accept-Encoding", "gzip")
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
	}
	if got := resp.Header.Get("Content-Encoding"); (got == "gzip") != acceptGzip {
		return nil, fmt.Errorf("GET %s with gzip accepted %v: Content-Encoding %q", url, acceptGzip, got)
	}
	return body, nil
}

// gunzip decompresses a gzip body.
func gunzip(body []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("gunzip: %w", err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("gunzip: %w", err)
	}
	return out, nil
}

// countingCatalog counts the blocking queries waiting in WaitIndex, so the benchmark
// knows when every query is held by the server.
type countingCatalog struct {
	*catalog.Catalog
	waiting atomic.Int64
}

func (c *countingCatalog) WaitIndex(ctx context.Context, t catalog.Topic, after uint64) (uint64, error) {
	c.waiting.Add(1)
	defer c.waiting.Add(-1)
	return c.Catalog.WaitIndex(ctx, t, after)
}

// BenchmarkBlockingQueries1000 holds 1,000 blocking queries on
// /v1/health/service/web open at once and measures what each costs the server:
// the growth of the Go heap and stacks, and of the process's resident memory, per
// held query. The clients are bare TCP connections that wrote their request and
// wait, so almost all of that growth is the server's (connection, goroutine,
// buffers, watch). Then one registration wakes them all; wake-ms is how long until
// the last of the 1,000 answered.
func BenchmarkBlockingQueries1000(b *testing.B) {
	const held = 1000
	cc := &countingCatalog{Catalog: benchCatalog(b, 1000, 10, 100)}
	base := serveBench(b, cc)
	addr := strings.TrimPrefix(base, "http://")
	idx := cc.TopicIndex(catalog.ServiceTopic("web"))
	request := fmt.Sprintf("GET /v1/health/service/web?passing&index=%d&wait=5m HTTP/1.1\r\nHost: %s\r\n\r\n", idx, addr)
	writer := catalog.NewWriter("late", 1)

	var heapPer, rssPer, wakeMS float64
	for b.Loop() {
		before := memory()
		conns := make([]net.Conn, 0, held)
		for range held {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatalf("dial %d: %v", len(conns), err)
			}
			conns = append(conns, c)
			if _, err := io.WriteString(c, request); err != nil {
				b.Fatal(err)
			}
		}
		deadline := time.Now().Add(time.Minute)
		for cc.waiting.Load() < held {
			if time.Now().After(deadline) {
				b.Fatalf("only %d of %d queries held after a minute", cc.waiting.Load(), held)
			}
			time.Sleep(time.Millisecond) // polling interval; the deadline bounds the wait
		}
		after := memory()
		heapPer = float64(after.heap-before.heap) / held
		rssPer = float64(after.rss-before.rss) / held

		// Wake them all with a new web instance, then read every answer.
		start := time.Now()
		w := writer
		s := catalogtest.Service("web-late", "web", 80)
		if _, err := cc.Apply(w.PutService(s)); err != nil {
			b.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, held)
		for _, c := range conns {
			wg.Go(func() {
				defer c.Close()
				_ = c.SetReadDeadline(time.Now().Add(time.Minute))
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					errs <- err
					return
				}
				defer resp.Body.Close()
				_, _ = io.Copy(io.Discard, resp.Body)
				if got, _ := strconv.ParseUint(resp.Header.Get("X-Consul-Index"), 10, 64); got <= idx {
					errs <- fmt.Errorf("answered with index %d, want > %d", got, idx)
				}
			})
		}
		wg.Wait()
		wakeMS = ms(time.Since(start))
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		// Undo, so the next iteration blocks again on a fresh index.
		if _, err := cc.Apply(w.Delete(catalog.Key{Kind: catalog.KindService, ID: s.ID})); err != nil {
			b.Fatal(err)
		}
		idx = cc.TopicIndex(catalog.ServiceTopic("web"))
		request = fmt.Sprintf("GET /v1/health/service/web?passing&index=%d&wait=5m HTTP/1.1\r\nHost: %s\r\n\r\n", idx, addr)
	}
	b.ReportMetric(heapPer, "heap-B/query")
	b.ReportMetric(rssPer, "rss-B/query")
	b.ReportMetric(wakeMS, "wake-all-ms")
}

// cpuTime is the CPU time this process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type memSample struct{ heap, rss int64 }

// memory samples the Go heap plus goroutine stacks in use, after a GC, and the
// process's resident set size after returning free memory to the OS (else the RSS
// would not grow while the heap reuses pages the catalog's construction freed).
func memory() memSample {
	debug.FreeOSMemory() // runs a GC first
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memSample{heap: int64(ms.HeapInuse + ms.StackInuse), rss: rssBytes()}
}

// rssBytes reads VmRSS from /proc/self/status; 0 where there is none.
func rssBytes() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
