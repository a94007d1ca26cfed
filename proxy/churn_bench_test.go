package proxy_test

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The churn benchmark: an open-loop load of new connections through a proxy while
// its backend set changes many times a second, counting the requests that fail.
// Backends really start and stop: a new one listens before the proxy hears of it; one
// that leaves (removed, or failed and drained) is taken out of the proxy first, then
// stops accepting after churnGrace and waits for its open connections. So a failed
// request is the proxy's doing, not a backend that vanished under it.

// churnGrace is how long a backend that left the proxy's set keeps accepting: both
// proxies have applied the change long before (rumor's set within a few ms, which
// its child confirms; a HAProxy reload when the new process listens).
const churnGrace = time.Second

// churnBackend is a backend that can stop gracefully: it answers "R" with 64 bytes,
// then waits for the client to close.
type churnBackend struct {
	ln   net.Listener
	port int
	wg   sync.WaitGroup
	mu   sync.Mutex
	open map[net.Conn]struct{}
}

func startChurnBackend() (*churnBackend, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("backend: %w", err)
	}
	cb := &churnBackend{ln: ln, port: ln.Addr().(*net.TCPAddr).Port, open: map[net.Conn]struct{}{}}
	resp := make([]byte, 64)
	cb.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			cb.mu.Lock()
			cb.open[c] = struct{}{}
			cb.mu.Unlock()
			cb.wg.Go(func() {
				defer func() {
					cb.mu.Lock()
					delete(cb.open, c)
					cb.mu.Unlock()
					_ = c.Close()
				}()
				var op [1]byte
				if _, err := io.ReadFull(c, op[:]); err != nil || op[0] != 'R' {
					return
				}
				if _, err := c.Write(resp); err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, c)
			})
		}
	})
	return cb, nil
}

// stop closes the listener, waits up to wait for the open connections to end, then
// closes those left; it returns how many it had to close.
func (cb *churnBackend) stop(wait time.Duration) int {
	_ = cb.ln.Close()
	done := make(chan struct{})
	go func() { cb.wg.Wait(); close(done) }() // ends when every connection has
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-done:
		return 0
	case <-t.C:
	}
	cb.mu.Lock()
	forced := len(cb.open)
	for c := range cb.open {
		_ = c.Close()
	}
	cb.mu.Unlock()
	<-done
	return forced
}

// churnDriver changes one proxy's backend set. Calls are serialized by the caller.
type churnDriver interface {
	addr() string
	// set makes ports the proxy's backends; drained names one that failed rather
	// than left (rumor drains it by its check; HAProxy cannot tell the two apart).
	set(ports []int, added, removed int, drained bool) error
	// forget drops a stopped, drained backend from the catalog (no set change).
	forget(port int) error
	close()
}

// rumorDriver is rumor's proxy as a child process (benchChild), told of changes on
// its stdin.
type rumorDriver struct {
	listen string
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    *bufio.Scanner
}

func startRumorDriver(b *testing.B, ports []int) *rumorDriver {
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	lp := freePort(b)
	spec := []string{strconv.Itoa(lp)}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), childEnv+"="+strings.Join(spec, ","))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	d := &rumorDriver{listen: "127.0.0.1:" + strconv.Itoa(lp), cmd: cmd, in: in, out: bufio.NewScanner(out)}
	if !d.out.Scan() || d.out.Text() != "ready" {
		d.close()
		b.Fatalf("rumor proxy child did not start: %q %v", d.out.Text(), d.out.Err())
	}
	for _, p := range ports {
		if err := d.do("add", p); err != nil {
			d.close()
			b.Fatal(err)
		}
	}
	return d
}

func (d *rumorDriver) addr() string { return d.listen }

func (d *rumorDriver) do(op string, port int) error {
	if _, err := fmt.Fprintf(d.in, "%s %d\n", op, port); err != nil {
		return fmt.Errorf("rumor child: %w", err)
	}
	if !d.out.Scan() {
		return fmt.Errorf("rumor child: %s %d: no answer: %v", op, port, d.out.Err())
	}
	if got := d.out.Text(); got != "ok" {
		return fmt.Errorf("rumor child: %s %d: %s", op, port, got)
	}
	return nil
}

func (d *rumorDriver) set(_ []int, added, removed int, drained bool) error {
	switch {
	case added != 0:
		return d.do("add", added)
	case drained:
		return d.do("crit", removed)
	default:
		return d.do("del", removed)
	}
}

func (d *rumorDriver) forget(port int) error { return d.do("del", port) }

func (d *rumorDriver) close() {
	_ = d.in.Close() // the child exits on EOF
	t := time.AfterFunc(10*time.Second, func() { _ = d.cmd.Process.Kill() })
	_ = d.cmd.Wait()
	t.Stop()
}

// haproxyDriver reloads HAProxy for each change: a new process with the new
// configuration, started with -sf (the old process stops listening and finishes its
// connections), and with seamless also -x (the new process takes the old one's
// listening socket over its stats socket instead of binding its own).
type haproxyDriver struct {
	bin, dir, listen string
	seamless         bool
	gen              int
	cur              *exec.Cmd
	wg               sync.WaitGroup // waits for every process started
	mu               sync.Mutex
	procs            map[*exec.Cmd]struct{}
	stderr           *capWriter
}

// capWriter keeps the first 8 KB written to it (HAProxy's warnings, 17 times a
// second otherwise) and counts the lines.
type capWriter struct {
	mu    sync.Mutex
	buf   []byte
	lines int
}

func (w *capWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lines += strings.Count(string(p), "\n")
	if n := 8<<10 - len(w.buf); n > 0 {
		w.buf = append(w.buf, p[:min(n, len(p))]...)
	}
	return len(p), nil
}

func startHAProxyDriver(b *testing.B, bin string, seamless bool, ports []int) *haproxyDriver {
	dir, err := os.MkdirTemp("", "rumor-churn-") // short: unix socket paths are limited
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = os.RemoveAll(dir) })
	d := &haproxyDriver{bin: bin, dir: dir, listen: "127.0.0.1:" + strconv.Itoa(freePort(b)), seamless: seamless,
		procs: map[*exec.Cmd]struct{}{}, stderr: &capWriter{}}
	if err := d.set(ports, 0, 0, false); err != nil {
		d.close()
		b.Fatal(err)
	}
	return d
}

func (d *haproxyDriver) addr() string { return d.listen }

func (d *haproxyDriver) sock(gen int) string {
	return filepath.Join(d.dir, "g"+strconv.Itoa(gen)+".sock")
}

// set writes generation gen+1's configuration and starts its process, replacing the
// current one; it returns once the new process listens (its stats socket accepts:
// HAProxy binds every listener, then signals the old process).
func (d *haproxyDriver) set(ports []int, _, _ int, _ bool) error {
	d.gen++
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "global\n  maxconn 8000\n  stats socket %s mode 600 level admin expose-fd listeners\n", d.sock(d.gen))
	fmt.Fprintf(&cfg, "defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 30s\n  timeout server 30s\n  retries 3\n  option redispatch 1\n")
	fmt.Fprintf(&cfg, "frontend f\n  bind %s\n  default_backend b\nbackend b\n  balance leastconn\n", d.listen)
	for _, p := range ports {
		fmt.Fprintf(&cfg, "  server s%d 127.0.0.1:%d\n", p, p)
	}
	path := filepath.Join(d.dir, "g"+strconv.Itoa(d.gen)+".cfg")
	if err := os.WriteFile(path, []byte(cfg.String()), 0o600); err != nil {
		return fmt.Errorf("haproxy config: %w", err)
	}
	args := []string{"-db", "-f", path}
	if d.cur != nil {
		if d.seamless {
			args = append(args, "-x", d.sock(d.gen-1))
		}
		args = append(args, "-sf", strconv.Itoa(d.cur.Process.Pid))
	}
	cmd := exec.Command(d.bin, args...)
	cmd.Stderr = d.stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("haproxy reload: %w", err)
	}
	d.mu.Lock()
	d.procs[cmd] = struct{}{}
	d.mu.Unlock()
	d.wg.Go(func() { // the old process exits once its connections end
		_ = cmd.Wait()
		d.mu.Lock()
		delete(d.procs, cmd)
		d.mu.Unlock()
	})
	d.cur = cmd
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.Dial("unix", d.sock(d.gen))
		if err == nil {
			_ = c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("haproxy generation %d not listening after 10s: %w", d.gen, err)
		}
		time.Sleep(200 * time.Microsecond) // polling a process we started, with a deadline
	}
}

func (d *haproxyDriver) forget(int) error { return nil }

func (d *haproxyDriver) close() {
	d.mu.Lock()
	for cmd := range d.procs {
		_ = cmd.Process.Kill()
	}
	d.mu.Unlock()
	d.wg.Wait()
}

// churnResult is one phase of the churn benchmark.
type churnResult struct {
	sent, failed, dialFailed int
	changes                  int
	forced                   int // backend connections closed at a backend's stop
	p50, p99                 time.Duration
	firstErrs                []string
}

// churnLoad starts rate new connections a second to addr for d, open loop (each at
// its time whatever the others do), each a 1-byte request and a 64-byte answer, closed
// with a reset, and counts those that fail.
func churnLoad(addr string, rate float64, d time.Duration) churnResult {
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		lat    []time.Duration
		errs   []string
		failed atomic.Int64
		dialF  atomic.Int64
	)
	fail := func(err error) {
		mu.Lock()
		if len(errs) < 10 {
			errs = append(errs, err.Error())
		}
		mu.Unlock()
	}
	request := func() {
		t0 := time.Now()
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			failed.Add(1)
			dialF.Add(1)
			fail(err)
			return
		}
		defer func() { _ = c.(*net.TCPConn).SetLinger(0); _ = c.Close() }()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		var buf [64]byte
		if _, err = c.Write([]byte{'R'}); err == nil {
			_, err = io.ReadFull(c, buf[:])
		}
		if err != nil {
			failed.Add(1)
			fail(err)
			return
		}
		el := time.Since(t0)
		mu.Lock()
		lat = append(lat, el)
		mu.Unlock()
	}
	start := time.Now()
	sent := 0
	for {
		el := time.Since(start)
		if el >= d {
			break
		}
		for due := int(el.Seconds() * rate); sent < due; sent++ {
			wg.Go(request)
		}
		time.Sleep(time.Millisecond) // the pacer's tick
	}
	wg.Wait()
	slices.Sort(lat)
	r := churnResult{sent: sent, failed: int(failed.Load()), dialFailed: int(dialF.Load()), firstErrs: errs}
	if len(lat) > 0 {
		r.p50, r.p99 = lat[len(lat)/2], lat[len(lat)*99/100]
	}
	return r
}

// churnPhase runs the load against drv while changing its backend set perMin times a
// minute: each change adds a backend, removes one, or fails (drains) one, keeping
// between 3 and 6.
func churnPhase(b *testing.B, drv churnDriver, live []*churnBackend, rate float64, perMin int, d time.Duration) churnResult {
	var (
		stops   sync.WaitGroup
		forced  atomic.Int64
		changes int
		chErr   error
	)
	loadDone := make(chan churnResult)
	go func() { loadDone <- churnLoad(drv.addr(), rate, d) }() // owned here: received below
	rng := rand.New(rand.NewPCG(1, 2))
	ports := func() []int {
		ps := make([]int, len(live))
		for i, cb := range live {
			ps[i] = cb.port
		}
		return ps
	}
	interval := time.Minute / time.Duration(perMin)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	deadline := time.Now().Add(d)
	var drvMu sync.Mutex // set and forget come from different goroutines
	for time.Now().Before(deadline) && chErr == nil {
		<-tick.C
		op := rng.IntN(3) // 0 add, 1 remove, 2 fail and drain
		if len(live) <= 3 {
			op = 0
		} else if len(live) >= 6 {
			op = 1 + rng.IntN(2)
		}
		if op == 0 {
			cb, err := startChurnBackend()
			if err != nil {
				chErr = err
				break
			}
			live = append(live, cb)
			drvMu.Lock()
			chErr = drv.set(ports(), cb.port, 0, false)
			drvMu.Unlock()
			changes++
			continue
		}
		i := rng.IntN(len(live))
		cb := live[i]
		live = slices.Delete(live, i, i+1)
		drained := op == 2
		drvMu.Lock()
		chErr = drv.set(ports(), 0, cb.port, drained)
		drvMu.Unlock()
		changes++
		stops.Go(func() {
			time.Sleep(churnGrace) // the backend keeps accepting for churnGrace, then stops
			forced.Add(int64(cb.stop(5 * time.Second)))
			if drained {
				drvMu.Lock()
				if err := drv.forget(cb.port); err != nil {
					b.Error(err)
				}
				drvMu.Unlock()
			}
		})
	}
	r := <-loadDone
	stops.Wait()
	for _, cb := range live {
		forced.Add(int64(cb.stop(5 * time.Second)))
	}
	if chErr != nil {
		b.Fatalf("change %d: %v", changes, chErr)
	}
	r.changes, r.forced = changes, int(forced.Load())
	return r
}

// BenchmarkChurnUnderLoad opens 1,000 new connections a second (open loop, a 64-byte
// exchange each) through a proxy for 60 s while its backend set changes 1,000 times a
// minute, and counts the requests that fail: through rumor's proxy (a process of its
// own, changes through its catalog), through HAProxy reloaded for each change with
// -sf, and with a seamless reload (-x, the listening socket handed over). Target: 0
// failed requests through rumor's. Run it with -benchtime 1x.
// RUMOR_CHURN_SECONDS (60), RUMOR_CHURN_RATE (1000 connections/s),
// RUMOR_CHURN_CHANGES (1000 a minute) and RUMOR_CHURN_PROXIES
// (rumor,haproxy,haproxy-seamless) set the run; without haproxy installed only
// rumor's proxy runs.
func BenchmarkChurnUnderLoad(b *testing.B) {
	secs, rate, perMin := 60, 1000.0, 1000
	if v, err := strconv.Atoi(os.Getenv("RUMOR_CHURN_SECONDS")); err == nil && v > 0 {
		secs = v
	}
	if v, err := strconv.Atoi(os.Getenv("RUMOR_CHURN_RATE")); err == nil && v > 0 {
		rate = float64(v)
	}
	if v, err := strconv.Atoi(os.Getenv("RUMOR_CHURN_CHANGES")); err == nil && v > 0 {
		perMin = v
	}
	proxies := []string{"rumor", "haproxy", "haproxy-seamless"}
	if v := os.Getenv("RUMOR_CHURN_PROXIES"); v != "" {
		proxies = strings.Split(v, ",")
	}
	haproxy, herr := exec.LookPath("haproxy")
	d := time.Duration(secs) * time.Second
	b.ResetTimer()
	for range b.N {
		for _, name := range proxies {
			var live []*churnBackend
			var ports []int
			for range 4 {
				cb, err := startChurnBackend()
				if err != nil {
					b.Fatal(err)
				}
				live, ports = append(live, cb), append(ports, cb.port)
			}
			var drv churnDriver
			switch name {
			case "rumor":
				drv = startRumorDriver(b, ports)
			case "haproxy", "haproxy-seamless":
				if herr != nil {
					b.Logf("%s: skipped, haproxy is not installed", name)
					for _, cb := range live {
						cb.stop(time.Second)
					}
					continue
				}
				drv = startHAProxyDriver(b, haproxy, name == "haproxy-seamless", ports)
			default:
				b.Fatalf("RUMOR_CHURN_PROXIES: unknown proxy %q", name)
			}
			r := churnPhase(b, drv, live, rate, perMin, d)
			drv.close()
			if h, ok := drv.(*haproxyDriver); ok && h.stderr.lines > 0 {
				b.Logf("%s: %d lines on stderr, the first: %s", name, h.stderr.lines, firstLines(string(h.stderr.buf), 3))
			}
			b.Logf("%s: %d requests, %d failed (%d at connect), %d set changes (%.0f a minute), %d backend connections cut at a stop, p50 %v p99 %v; first errors %q",
				name, r.sent, r.failed, r.dialFailed, r.changes, float64(r.changes)/d.Minutes(), r.forced, r.p50, r.p99, r.firstErrs)
			b.ReportMetric(float64(r.failed), name+"-failed")
			b.ReportMetric(float64(r.sent), name+"-requests")
			b.ReportMetric(float64(r.changes)/d.Minutes(), name+"-changes/min")
			b.ReportMetric(float64(r.p99)/1e6, name+"-p99-ms")
		}
	}
	b.ReportMetric(0, "ns/op")
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], " | ")
}
