package proxy_test

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/catalog/catalogtest"
	"github.com/rumor-sd/rumor/proxy"
)

// The benchmark against HAProxy runs both proxies as processes of their own: HAProxy
// (Debian's haproxy), and this test binary re-executed as a standalone rumor proxy
// (benchChild) with the same backends in a catalog. The load generator and the
// backends run in the benchmark's process; both proxies share the machine with them
// alike.

const childEnv = "RUMOR_PROXYBENCH_CHILD"

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(benchChild(spec))
	}
	os.Exit(m.Run())
}

// benchChild runs a rumor proxy: spec is "listenPort,backendPort,…". It prints
// "ready" once listening and runs until its stdin closes. Lines on stdin change the
// catalog (see childCommand), each answered with "ok" once the proxy's set has it.
func benchChild(spec string) int {
	parts := strings.Split(spec, ",")
	if n, err := strconv.Atoi(os.Getenv("RUMOR_PROXYBENCH_PROXY_PROCS")); err == nil && n > 0 {
		runtime.GOMAXPROCS(n) // an experiment: the proxy process's Ps
	}
	cat, err := catalog.New(catalog.Config{Clock: catalogtest.NewClock()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for i, p := range parts[1:] {
		port, _ := strconv.Atoi(p)
		node := "n" + strconv.Itoa(i)
		w := catalog.NewWriter(node, 1)
		if _, err := cat.Apply(w.PutNode(catalogtest.Node(node, "127.0.0.1")),
			w.PutService(catalogtest.Service("web-"+p, "web", port))); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	cfg := proxy.Config{Catalog: cat, SlowStart: -1, Engine: proxy.Engine(os.Getenv("RUMOR_PROXYBENCH_ENGINE"))}
	if n, err := strconv.Atoi(os.Getenv("RUMOR_PROXYBENCH_LOOPS")); err == nil {
		cfg.Loops = n
	}
	px, err := proxy.New(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	listen, _ := strconv.Atoi(parts[0])
	if err := px.Set([]proxy.Upstream{{Service: "web", LocalBindPort: listen}}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if path := os.Getenv("RUMOR_PROXYBENCH_CPUPROFILE"); path != "" { // the child's CPU profile
		if f, err := os.Create(path); err == nil {
			_ = pprof.StartCPUProfile(f)
			defer func() { pprof.StopCPUProfile(); _ = f.Close() }()
		}
	}
	fmt.Println("ready")
	writers := map[string]*catalog.Writer{}
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if err := childCommand(cat, px, writers, sc.Text()); err != nil {
			fmt.Println("error", err)
			continue
		}
		fmt.Println("ok")
	}
	_ = px.Close()
	return 0
}

// childCommand applies one line of benchChild's stdin: "add PORT" puts an instance
// web-PORT on a node of its own, "crit PORT" fails its check, "del PORT" deletes it.
// It returns once the proxy's set has the change (bounded: 5 s).
func childCommand(cat *catalog.Catalog, px *proxy.Proxy, writers map[string]*catalog.Writer, line string) error {
	op, port, _ := strings.Cut(line, " ")
	n, err := strconv.Atoi(port)
	if err != nil {
		return fmt.Errorf("command %q: %w", line, err)
	}
	node, id := "p"+port, "web-"+port
	w := writers[node]
	var recs []catalog.Record
	switch op {
	case "add":
		if w == nil {
			w = catalog.NewWriter(node, 1)
			writers[node] = w
			recs = append(recs, w.PutNode(catalogtest.Node(node, "127.0.0.1")))
		}
		recs = append(recs, w.PutService(catalogtest.Service(id, "web", n)))
	case "crit":
		if w == nil {
			return fmt.Errorf("command %q: no such instance", line)
		}
		recs = append(recs, w.PutCheck(catalogtest.Check("c-"+id, id, catalog.StatusCritical)))
	case "del":
		if w == nil {
			return fmt.Errorf("command %q: no such instance", line)
		}
		recs = append(recs, w.Delete(catalog.Key{Kind: catalog.KindService, ID: id}),
			w.Delete(catalog.Key{Kind: catalog.KindCheck, ID: "c-" + id}))
	default:
		return fmt.Errorf("command %q: unknown", line)
	}
	if _, err := cat.Apply(recs...); err != nil {
		return fmt.Errorf("command %q: %w", line, err)
	}
	want := op == "add"
	for deadline := time.Now().Add(5 * time.Second); ; {
		live := false
		for _, u := range px.Upstreams() {
			for _, in := range u.Instances {
				if in.ServiceID == id && !in.Draining {
					live = true
				}
			}
		}
		if live == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("command %q: not applied by the proxy after 5s", line)
		}
		time.Sleep(100 * time.Microsecond) // polling the proxy's set, with a deadline
	}
}

// benchBackend answers "R" with a 64-byte response and "S" + 8-byte length with that
// many bytes, then waits for the client to close.
func benchBackend(b *testing.B) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	resp := make([]byte, 64)
	chunk := make([]byte, 256<<10)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				var op [1]byte
				if _, err := io.ReadFull(c, op[:]); err != nil {
					return
				}
				switch op[0] {
				case 'R':
					if _, err := c.Write(resp); err != nil {
						return
					}
				case 'S':
					var n [8]byte
					if _, err := io.ReadFull(c, n[:]); err != nil {
						return
					}
					for left := int(binary.BigEndian.Uint64(n[:])); left > 0; {
						k, err := c.Write(chunk[:min(left, len(chunk))])
						if err != nil {
							return
						}
						left -= k
					}
					_ = c.(*net.TCPConn).CloseWrite()
				}
				_, _ = io.Copy(io.Discard, c)
			})
		}
	})
	b.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	return ln.Addr().(*net.TCPAddr).Port
}

func freePort(b *testing.B) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startProcess runs cmd and waits until addr accepts connections.
func startProcess(b *testing.B, cmd *exec.Cmd, addr string) {
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatalf("start %s: %v", cmd.Path, err)
	}
	b.Cleanup(func() {
		_ = stdin.Close() // the rumor child exits on EOF; HAProxy is killed
		t := time.AfterFunc(5*time.Second, func() { _ = cmd.Process.Kill() })
		if !strings.HasSuffix(cmd.Path, "haproxy") {
			_ = cmd.Wait()
		} else {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		t.Stop()
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s did not listen on %s within 20s: %v", cmd.Path, addr, err)
		}
		time.Sleep(20 * time.Millisecond) // polling a process we started, with a deadline
	}
}

// loadResult is one round of new-connection load against one address.
type loadResult struct {
	conns, errors int
	perSec        float64
	p50, p99      time.Duration
}

// connLoad opens connections to targets (round robin per worker) from workers
// goroutines for d: each dials, sends "R", reads the 64-byte answer and closes with
// a reset (no TIME_WAIT on loopback's ports). The latency is dial to answer.
func connLoad(targets []string, workers int, d time.Duration) loadResult {
	var mu sync.Mutex
	var lat []time.Duration
	var errs atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(d)
	start := time.Now()
	for w := range workers {
		wg.Go(func() {
			buf := make([]byte, 64)
			local := make([]time.Duration, 0, 4096)
			for i := w; time.Now().Before(stop); i++ {
				t0 := time.Now()
				c, err := net.DialTimeout("tcp", targets[i%len(targets)], 5*time.Second)
				if err != nil {
					errs.Add(1)
					continue
				}
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err = c.Write([]byte{'R'}); err == nil {
					_, err = io.ReadFull(c, buf)
				}
				if err != nil {
					errs.Add(1)
				} else {
					local = append(local, time.Since(t0))
				}
				_ = c.(*net.TCPConn).SetLinger(0)
				_ = c.Close()
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		})
	}
	wg.Wait()
	el := time.Since(start)
	slices.Sort(lat)
	r := loadResult{conns: len(lat), errors: int(errs.Load()), perSec: float64(len(lat)) / el.Seconds()}
	if len(lat) > 0 {
		r.p50, r.p99 = lat[len(lat)/2], lat[len(lat)*99/100]
	}
	return r
}

// throughput streams size bytes from a backend through addr on one connection.
func throughput(addr string, size int) (float64, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	req := make([]byte, 9)
	req[0] = 'S'
	binary.BigEndian.PutUint64(req[1:], uint64(size))
	t0 := time.Now()
	if _, err := c.Write(req); err != nil {
		return 0, err
	}
	n, err := io.Copy(io.Discard, c)
	if err != nil {
		return 0, err
	}
	if int(n) != size {
		return 0, fmt.Errorf("got %d bytes, want %d", n, size)
	}
	return float64(size) / time.Since(t0).Seconds() / 1e6, nil
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkProxyVsHAProxy compares the proxy with HAProxy on the same four backends,
// in one run, rounds interleaved: new connections per second (32 clients, a 64-byte
// exchange each), the p99 connection setup latency each adds over connecting to the
// backends directly, and one connection's throughput (256 MB). Run it with
// -benchtime 1x; RUMOR_PROXYBENCH_ROUNDS (3), RUMOR_PROXYBENCH_SECONDS (2) and
// RUMOR_PROXYBENCH_CLIENTS (32) set the rounds, their length and the concurrent
// clients (1 shows what each proxy adds to one connection's latency);
// RUMOR_PROXYBENCH_ENGINE and RUMOR_PROXYBENCH_LOOPS the rumor proxy's Engine and
// Loops (their defaults when unset).
func BenchmarkProxyVsHAProxy(b *testing.B) {
	haproxy, err := exec.LookPath("haproxy")
	if err != nil {
		b.Skip("haproxy is not installed (apt-get install haproxy)")
	}
	rounds, secs := 3, 2
	if v, err := strconv.Atoi(os.Getenv("RUMOR_PROXYBENCH_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	if v, err := strconv.Atoi(os.Getenv("RUMOR_PROXYBENCH_SECONDS")); err == nil && v > 0 {
		secs = v
	}
	clients := 32
	if v, err := strconv.Atoi(os.Getenv("RUMOR_PROXYBENCH_CLIENTS")); err == nil && v > 0 {
		clients = v
	}
	var backends []string
	var ports []string
	for range 4 {
		p := benchBackend(b)
		ports = append(ports, strconv.Itoa(p))
		backends = append(backends, "127.0.0.1:"+strconv.Itoa(p))
	}
	// rumor's proxy, as a process of its own.
	rPort := freePort(b)
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	rc := exec.Command(self)
	rc.Env = append(os.Environ(), childEnv+"="+strconv.Itoa(rPort)+","+strings.Join(ports, ","))
	rAddr := "127.0.0.1:" + strconv.Itoa(rPort)
	startProcess(b, rc, rAddr)
	// HAProxy, with the same backends, least connections, TCP mode.
	hPort := freePort(b)
	hAddr := "127.0.0.1:" + strconv.Itoa(hPort)
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "global\n  maxconn 8000\ndefaults\n  mode tcp\n  timeout connect 2s\n  timeout client 30s\n  timeout server 30s\n")
	fmt.Fprintf(&cfg, "frontend f\n  bind %s\n  default_backend b\nbackend b\n  balance leastconn\n", hAddr)
	for i, a := range backends {
		fmt.Fprintf(&cfg, "  server s%d %s\n", i, a)
	}
	cfgPath := filepath.Join(b.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	startProcess(b, exec.Command(haproxy, "-db", "-f", cfgPath), hAddr)

	d := time.Duration(secs) * time.Second
	var rRate, hRate, rAdd, hAdd, rP99, hP99, dP99, rMB, hMB []float64
	var failed int
	b.ResetTimer()
	for range b.N {
		for range rounds {
			direct := connLoad(backends, clients, d)
			r := connLoad([]string{rAddr}, clients, d)
			h := connLoad([]string{hAddr}, clients, d)
			failed += r.errors + h.errors
			rRate, hRate = append(rRate, r.perSec), append(hRate, h.perSec)
			ms := func(x time.Duration) float64 { return float64(x) / 1e6 }
			dP99, rP99, hP99 = append(dP99, ms(direct.p99)), append(rP99, ms(r.p99)), append(hP99, ms(h.p99))
			rAdd, hAdd = append(rAdd, ms(r.p99-direct.p99)), append(hAdd, ms(h.p99-direct.p99))
			rt, err := throughput(rAddr, 256<<20)
			if err != nil {
				b.Fatalf("rumor throughput: %v", err)
			}
			ht, err := throughput(hAddr, 256<<20)
			if err != nil {
				b.Fatalf("haproxy throughput: %v", err)
			}
			rMB, hMB = append(rMB, rt), append(hMB, ht)
			b.Logf("round: direct %.0f conn/s p99 %.2fms | rumor %.0f conn/s p99 %.2fms %.0f MB/s | haproxy %.0f conn/s p99 %.2fms %.0f MB/s | errors %d/%d",
				direct.perSec, ms(direct.p99), r.perSec, ms(r.p99), rt, h.perSec, ms(h.p99), ht, r.errors, h.errors)
		}
	}
	b.StopTimer()
	b.ReportMetric(median(rRate), "rumor-conns/s")
	b.ReportMetric(median(hRate), "haproxy-conns/s")
	b.ReportMetric(100*median(rRate)/median(hRate), "conns-%-of-haproxy")
	b.ReportMetric(median(dP99), "direct-p99-ms")
	b.ReportMetric(median(rP99), "rumor-p99-ms")
	b.ReportMetric(median(hP99), "haproxy-p99-ms")
	b.ReportMetric(median(rAdd), "rumor-added-p99-ms")
	b.ReportMetric(median(hAdd), "haproxy-added-p99-ms")
	b.ReportMetric(median(rAdd)-median(hAdd), "added-p99-over-haproxy-ms")
	b.ReportMetric(100*median(rMB)/median(hMB), "MB/s-%-of-haproxy")
	b.ReportMetric(median(rMB), "rumor-MB/s")
	b.ReportMetric(median(hMB), "haproxy-MB/s")
	b.ReportMetric(float64(failed), "failed-conns")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkConnection opens one connection after another (a 1-byte request, a
// 64-byte answer, closed with a reset) to four backends, directly and through an
// in-process proxy: the difference between the two is what the proxy costs a
// connection, in time and allocations (the client's and the backends' are in both),
// with each engine.
func BenchmarkConnection(b *testing.B) {
	cat, _ := catalogtest.New(b, catalog.Config{})
	var backends []string
	for i := range 4 {
		port := benchBackend(b)
		backends = append(backends, "127.0.0.1:"+strconv.Itoa(port))
		node := "n" + strconv.Itoa(i)
		w := catalog.NewWriter(node, 1)
		if _, err := cat.Apply(w.PutNode(catalogtest.Node(node, "127.0.0.1")),
			w.PutService(catalogtest.Service("web-"+node, "web", port))); err != nil {
			b.Fatal(err)
		}
	}
	via := map[proxy.Engine]string{}
	for _, eng := range testEngines {
		px, err := proxy.New(proxy.Config{Catalog: cat, SlowStart: -1, Engine: eng})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = px.Close() })
		if err := px.Set([]proxy.Upstream{{Service: "web", LocalBindAddress: "127.0.0.1"}}); err != nil {
			b.Fatal(err)
		}
		via[eng] = px.Upstreams()[0].Listen
	}
	exchange := func(b *testing.B, addr string) {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		var buf [64]byte
		if _, err = c.Write([]byte{'R'}); err == nil {
			_, err = io.ReadFull(c, buf[:])
		}
		_ = c.(*net.TCPConn).SetLinger(0)
		_ = c.Close()
		if err != nil {
			b.Fatal(err)
		}
	}
	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			exchange(b, backends[i%len(backends)])
		}
	})
	for _, eng := range testEngines {
		b.Run("proxy-"+string(eng), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				exchange(b, via[eng])
			}
		})
	}
}
