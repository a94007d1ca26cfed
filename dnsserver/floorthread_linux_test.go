//go:build linux

package dnsserver

import (
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

	"golang.org/x/sys/unix"
)

// floorThreads is the floor responder with the server's UDP technique: threads of
// their own (runtime.LockOSThread) blocked in recvmmsg on blocking SO_REUSEPORT
// sockets the netpoller never sees, answering with sendmmsg. sockets sockets, each
// read by perSocket threads.
func floorThreads(b *testing.B, answer []byte, sockets, perSocket int, h *latHist) string {
	b.Helper()
	var fds []int
	addr := netip.MustParseAddrPort("127.0.0.1:0")
	for range sockets {
		fd, bound, err := blockingUDP(addr, 4<<20)
		if err != nil {
			b.Fatal(err)
		}
		addr = bound
		fds = append(fds, fd)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	b.Cleanup(func() {
		stop.Store(true)
		for _, fd := range fds {
			_ = unix.Shutdown(fd, unix.SHUT_RDWR)
		}
		wg.Wait()
		for _, fd := range fds {
			_ = unix.Close(fd)
		}
	})
	for _, fd := range fds {
		for range perSocket {
			wg.Go(func() {
				runtime.LockOSThread()
				in := newMmsgBatch(64, 512, oobSize)
				out := newMmsgBatch(64, len(answer), 0)
				for i := range out.bufs {
					copy(out.bufs[i], answer)
					out.iovs[i].SetLen(len(answer))
				}
				for !stop.Load() {
					n, err := recvmmsg(fd, in, unix.MSG_WAITFORONE)
					if err != nil || stop.Load() {
						continue
					}
					k := 0
					for i := range n {
						if in.hdrs[i].n < 2 {
							continue
						}
						out.bufs[k][0], out.bufs[k][1] = in.bufs[i][0], in.bufs[i][1]
						out.hdrs[k].hdr.Name = in.hdrs[i].hdr.Name
						out.hdrs[k].hdr.Namelen = in.hdrs[i].hdr.Namelen
						k++
					}
					sendmmsg(fd, out.hdrs[:k])
					now := time.Now().UnixNano()
					for i := range n {
						if t := kernelTime(in.oobs[i][:in.hdrs[i].hdr.Controllen]); t > 0 {
							h.add(now - t)
						}
					}
				}
			})
		}
	}
	return addr.String()
}

// bestFloor is the floor BenchmarkDNSPerf measures: threads in recvmmsg, one
// socket and thread per core, as the server reads UDP.
func bestFloor(b *testing.B, answer []byte) string {
	return floorThreads(b, answer, runtime.GOMAXPROCS(0), 1, new(latHist))
}

// BenchmarkFloorCompare runs dnsperf at DNSPERF_RATE queries/s (default 26,000)
// against the netpoller floor and the thread floor, alternating, FLOOR_ROUNDS times.
func BenchmarkFloorCompare(b *testing.B) {
	rate := 26000.0
	if v, err := strconv.ParseFloat(os.Getenv("DNSPERF_RATE"), 64); err == nil {
		rate = v
	}
	rounds := 2
	if v, err := strconv.Atoi(os.Getenv("FLOOR_ROUNDS")); err == nil {
		rounds = v
	}
	srv := perfServer(b)
	ph, th, sh := new(latHist), new(latHist), new(latHist)
	poll := floorServer(b, floorAnswer(b, srv), ph)
	answer := floorAnswer(b, srv)
	procs := runtime.GOMAXPROCS(0)
	thr := floorThreads(b, answer, procs, 1, th)
	shared := floorThreads(b, answer, 1, procs, sh)
	for r := range rounds {
		for _, f := range []struct {
			name, addr string
			h          *latHist
		}{{"netpoll", poll, ph}, {"threads", thr, th}, {"threads-1sock", shared, sh}} {
			b.Run(f.name+"-"+strconv.Itoa(r), func(b *testing.B) {
				f.h.reset()
				res := runDNSPerf(b, f.addr, 10, rate)
				b.ReportMetric(f.h.quantile(0.99), "resp-p99-ms")
				b.ReportMetric(f.h.quantile(0.999), "resp-p99.9-ms")
				b.ReportMetric(res.qps, "queries/s")
				b.ReportMetric(ms(res.p50), "p50-ms")
				b.ReportMetric(ms(res.p99), "p99-ms")
				b.ReportMetric(ms(res.p999), "p99.9-ms")
				b.ReportMetric(100*float64(res.sent-res.answered)/float64(res.sent), "lost-pct")
			})
		}
	}
}

// BenchmarkDNSPerfVariants runs dnsperf at DNSPERF_RATE queries/s (default 26,000)
// against the thread floor and the server, in turn, once per variant and round
// (FLOOR_ROUNDS, default 2). DNSPERF_VARIANTS lists the variants, separated by
// ";": each is "pipe" or "file" (where dnsperf's output goes, see dnsperfOut)
// followed by extra dnsperf arguments; by default "pipe;file".
func BenchmarkDNSPerfVariants(b *testing.B) {
	rate := 26000.0
	if v, err := strconv.ParseFloat(os.Getenv("DNSPERF_RATE"), 64); err == nil {
		rate = v
	}
	rounds := 2
	if v, err := strconv.Atoi(os.Getenv("FLOOR_ROUNDS")); err == nil {
		rounds = v
	}
	variants := "pipe;file"
	if v := os.Getenv("DNSPERF_VARIANTS"); v != "" {
		variants = v
	}
	srv := perfServer(b)
	fh := new(latHist)
	floor := floorThreads(b, floorAnswer(b, srv), runtime.GOMAXPROCS(0), 1, fh)
	for r := range rounds {
		for _, v := range strings.Split(variants, ";") {
			f := strings.Fields(v)
			if len(f) == 0 {
				continue
			}
			out := dnsperfToFile
			switch f[0] {
			case "pipe":
				out = dnsperfToPipe
			case "file":
			default:
				b.Fatalf("variant %q: want pipe or file first", v)
			}
			name := strings.Join(f, "")
			b.Run("floor-"+name+"-"+strconv.Itoa(r), func(b *testing.B) {
				fh.reset()
				res := runDNSPerfOut(b, floor, 10, rate, out, f[1:]...)
				b.ReportMetric(fh.quantile(0.99), "resp-p99-ms")
				reportPerf(b, res)
			})
			b.Run("server-"+name+"-"+strconv.Itoa(r), func(b *testing.B) {
				_, h0 := serverHist(b, srv)
				res := runDNSPerfOut(b, srv.Addr().String(), 10, rate, out, f[1:]...)
				b.ReportMetric(serverP99(b, srv, h0), "server-p99-ms")
				reportPerf(b, res)
			})
		}
	}
}

// reportPerf reports a fixed-rate dnsperf run's rate, percentiles and loss.
func reportPerf(b *testing.B, r perfResult) {
	b.ReportMetric(r.qps, "queries/s")
	b.ReportMetric(ms(r.p50), "p50-ms")
	b.ReportMetric(ms(r.p99), "p99-ms")
	b.ReportMetric(ms(r.p999), "p99.9-ms")
	b.ReportMetric(100*float64(r.sent-r.answered)/float64(r.sent), "lost-pct")
}

// startDNSPerf starts cmd. With DNSPERF_SLICE (a duration), dnsperf runs with that
// EEVDF slice (sched_setattr's sched_runtime for SCHED_OTHER, Linux 6.12+): the
// same weight, so the same share of the CPU, but an earlier deadline, so that its
// woken threads preempt the task running on their CPU instead of waiting for that
// task's slice to end. With DNSPERF_TIMERSLACK (a duration; Linux's default is
// 50µs), dnsperf's sleeps between queries end that much closer to when they are
// due. Both are set on the thread that forks (the child and its threads inherit
// them) and restored after.
func startDNSPerf(b *testing.B, cmd *exec.Cmd) error {
	slice, slack := os.Getenv("DNSPERF_SLICE"), os.Getenv("DNSPERF_TIMERSLACK")
	if slice == "" && slack == "" {
		return cmd.Start()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if slice != "" {
		d, err := time.ParseDuration(slice)
		if err != nil {
			return fmt.Errorf("DNSPERF_SLICE: %w", err)
		}
		attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_NORMAL, Runtime: uint64(d)}
		if err := unix.SchedSetAttr(0, &attr, 0); err != nil {
			return fmt.Errorf("sched_setattr slice %v: %w", d, err)
		}
		defer func() {
			attr.Runtime = 0 // back to the default slice
			if err := unix.SchedSetAttr(0, &attr, 0); err != nil {
				b.Logf("sched_setattr: restoring the slice: %v", err)
			}
		}()
	}
	if slack != "" {
		d, err := time.ParseDuration(slack)
		if err != nil || d <= 0 {
			return fmt.Errorf("DNSPERF_TIMERSLACK %q: want a positive duration", slack)
		}
		old, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
		if err != nil {
			return fmt.Errorf("prctl get timer slack: %w", err)
		}
		if err := unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(d), 0, 0, 0); err != nil {
			return fmt.Errorf("prctl timer slack %v: %w", d, err)
		}
		defer func() {
			if err := unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(old), 0, 0, 0); err != nil {
				b.Logf("prctl: restoring the timer slack: %v", err)
			}
		}()
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	if data, err := os.ReadFile(fmt.Sprintf("/proc/%d/sched", cmd.Process.Pid)); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(l, "se.slice") {
				b.Logf("dnsperf (pid %d): %s", cmd.Process.Pid, strings.Join(strings.Fields(l), " "))
			}
		}
	}
	if data, err := os.ReadFile(fmt.Sprintf("/proc/%d/timerslack_ns", cmd.Process.Pid)); err == nil {
		b.Logf("dnsperf (pid %d): timerslack_ns %s", cmd.Process.Pid, strings.TrimSpace(string(data)))
	}
	return nil
}
