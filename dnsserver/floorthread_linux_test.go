//go:build linux

package dnsserver

import (
	"time"

	"net/netip"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

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
