//go:build linux

package dnsserver

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// The open-loop load generator: dnsperf offers at most 1.6 times a saturating rate
// from one core (pinned), short of the twice. This one sends with sendmmsg
// from one thread on schedule whatever the answers do (open loop), over loadgenSockets
// connected sockets (as many flows for SO_REUSEPORT to spread), and reads answers
// with recvmmsg on a thread per socket. It measures each answer twice: when the
// generator's kernel received it (SO_TIMESTAMPNS: the server's and loopback's share)
// and when the generator read it (what a client sees, its own scheduling included,
// as dnsperf measures). It runs in a child process (TestLoadgenHelper), so that it
// can be pinned apart from the server as dnsperf is.

const loadgenSockets = 4

// loadgenResult is what one run measured; latencies in µs.
type loadgenResult struct {
	sent, answered    int64
	kp50, kp99, kp999 float64 // kernel receive − send
	up50, up99, up999 float64 // read − send
}

// loadgen offers rate queries/s of web.service.consul SRV to addr for secs seconds.
func loadgen(addr netip.AddrPort, rate float64, secs int) (loadgenResult, error) {
	m := new(dns.Msg)
	m.SetQuestion("web.service.consul.", dns.TypeSRV)
	query, err := m.Pack()
	if err != nil {
		return loadgenResult{}, err
	}
	var fds []int
	defer func() {
		for _, fd := range fds {
			_ = unix.Close(fd)
		}
	}()
	for range loadgenSockets {
		fd, _, err := blockingUDP(netip.MustParseAddrPort("127.0.0.1:0"), 4<<20)
		if err != nil {
			return loadgenResult{}, err
		}
		fds = append(fds, fd)
		if err := unix.Connect(fd, &unix.SockaddrInet4{Port: int(addr.Port()), Addr: addr.Addr().As4()}); err != nil {
			return loadgenResult{}, fmt.Errorf("connect: %w", err)
		}
	}
	var sentAt [loadgenSockets][1 << 16]atomic.Int64
	var kh, uh latHist
	var answered, late atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	for i, fd := range fds {
		wg.Go(func() {
			runtime.LockOSThread()
			in := newMmsgBatch(64, 2048, oobSize)
			for {
				n, err := recvmmsg(fd, in, unix.MSG_WAITFORONE)
				if stop.Load() {
					return
				}
				if err != nil {
					continue
				}
				now := time.Now().UnixNano()
				for j := range n {
					h := &in.hdrs[j]
					if h.n < 12 {
						continue
					}
					id := uint16(in.bufs[j][0])<<8 | uint16(in.bufs[j][1])
					t0 := sentAt[i][id].Swap(0)
					if t0 == 0 {
						continue
					}
					if now-t0 > int64(time.Second) { // dnsperf's -t 1: a timeout
						late.Add(1)
						continue
					}
					answered.Add(1)
					uh.add(now - t0)
					if kt := kernelTime(in.oobs[j][:h.hdr.Controllen]); kt > 0 {
						kh.add(kt - t0)
					}
				}
			}
		})
	}
	// The sender: on schedule, in batches of what is due (at most 64).
	out := newMmsgBatch(64, len(query), 0)
	for j := range out.bufs {
		copy(out.bufs[j], query)
		out.iovs[j].SetLen(len(query))
		out.hdrs[j].hdr.Name, out.hdrs[j].hdr.Namelen = nil, 0
	}
	runtime.LockOSThread()
	var ids [loadgenSockets]uint16
	start := time.Now()
	end := start.Add(time.Duration(secs) * time.Second)
	var sent int64
	sock := 0
	for {
		now := time.Now()
		if !now.Before(end) {
			break
		}
		due := int64(rate*now.Sub(start).Seconds()) - sent
		if due <= 0 {
			time.Sleep(time.Duration(float64(time.Second) / rate))
			continue
		}
		n := int(min(due, 64))
		stamp := now.UnixNano()
		for j := range n {
			ids[sock]++
			id := ids[sock]
			out.bufs[j][0], out.bufs[j][1] = byte(id>>8), byte(id)
			sentAt[sock][id].Store(stamp)
		}
		sendmmsg(fds[sock], out.hdrs[:n])
		sent += int64(n)
		sock = (sock + 1) % loadgenSockets
	}
	runtime.UnlockOSThread()
	time.Sleep(time.Second) // the last answers' timeout
	stop.Store(true)
	for _, fd := range fds {
		_ = unix.Shutdown(fd, unix.SHUT_RDWR)
	}
	wg.Wait()
	us := func(h *latHist, q float64) float64 { return h.quantile(q) * 1e3 }
	return loadgenResult{sent: sent, answered: answered.Load(),
		kp50: us(&kh, 0.5), kp99: us(&kh, 0.99), kp999: us(&kh, 0.999),
		up50: us(&uh, 0.5), up99: us(&uh, 0.99), up999: us(&uh, 0.999)}, nil
}

// TestLoadgenHelper is the generator's child process, not a test: it runs only
// with DNSFAST_LOADGEN=addr,rate,secs and prints one LOADGEN line.
func TestLoadgenHelper(t *testing.T) {
	spec := os.Getenv("DNSFAST_LOADGEN")
	if spec == "" {
		t.Skip("the load generator's child process (BenchmarkDNSPerf)")
	}
	f := strings.Split(spec, ",")
	addr := netip.MustParseAddrPort(f[0])
	rate, _ := strconv.ParseFloat(f[1], 64)
	secs, _ := strconv.Atoi(f[2])
	r, err := loadgen(addr, rate, secs)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("LOADGEN %d %d %g %g %g %g %g %g\n", r.sent, r.answered, r.kp50, r.kp99, r.kp999, r.up50, r.up99, r.up999)
}

// runLoadgen runs the generator in a child process (on DNSPERF_CPU when set) and
// reports its measures as b's metrics.
func runLoadgen(b *testing.B, addr string, rate float64, secs int) loadgenResult {
	b.Helper()
	b.ReportMetric(loadAvg(b), "loadavg")
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs+30)*time.Second)
	defer cancel()
	args := []string{os.Args[0], "-test.run", "^TestLoadgenHelper$", "-test.count", "1"}
	if cpus := os.Getenv("DNSPERF_CPU"); cpus != "" {
		args = append([]string{"taskset", "-c", cpus}, args...)
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = append(os.Environ(), fmt.Sprintf("DNSFAST_LOADGEN=%s,%g,%d", addr, rate, secs))
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("load generator: %v\n%s", err, out)
	}
	var r loadgenResult
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "LOADGEN ") {
			_, err = fmt.Sscanf(l, "LOADGEN %d %d %g %g %g %g %g %g", &r.sent, &r.answered, &r.kp50, &r.kp99, &r.kp999, &r.up50, &r.up99, &r.up999)
		}
	}
	if err != nil || r.sent == 0 {
		b.Fatalf("load generator said nothing usable (%v):\n%s", err, out)
	}
	b.ReportMetric(float64(r.sent)/float64(secs), "offered/s")
	b.ReportMetric(float64(r.answered)/float64(secs), "answered/s")
	b.ReportMetric(100*float64(r.sent-r.answered)/float64(r.sent), "unanswered-pct")
	b.ReportMetric(r.kp50/1e3, "kernel-p50-ms")
	b.ReportMetric(r.kp99/1e3, "kernel-p99-ms")
	b.ReportMetric(r.up50/1e3, "p50-ms")
	b.ReportMetric(r.up99/1e3, "p99-ms")
	b.ReportMetric(r.up999/1e3, "p99.9-ms")
	return r
}

// loadgenRuns are BenchmarkDNSPerf's runs with the open-loop generator: half the
// saturating rate and twice it, against the server and against the floor.
func loadgenRuns(b *testing.B, srv *Server, floor string, qps float64, overload int) {
	addr := srv.Addr().String()
	for _, r := range []struct {
		name, addr string
		rate       float64
		secs       int
	}{{"loadgen-half", addr, qps / 2, 10}, {"loadgen-overload", addr, 2 * qps, overload},
		{"loadgen-floor-half", floor, qps / 2, 10}, {"loadgen-floor-overload-rate", floor, 2 * qps, 10}} {
		b.Run(r.name, func(b *testing.B) {
			shed0 := shedTotal(srv)
			_, h0 := serverHist(b, srv)
			runLoadgen(b, r.addr, r.rate, r.secs)
			if r.addr == addr {
				b.ReportMetric(shedTotal(srv)-shed0, "shed")
				// The server's own share (kernel receive to sendmmsg returned).
				b.ReportMetric(serverP99(b, srv, h0), "server-p99-ms")
				b.ReportMetric(serverOverPct(b, srv, h0, 2.5e-3), "server-over-2.5ms-pct")
			}
		})
	}
}
