// Command testserver is the program of the container image the Docker tests build
// (FROM scratch, so it is built static): it serves HTTP on the given ports, with a
// health endpoint the test can turn failing, echoes UDP, and doubles as the probe of
// a Docker HEALTHCHECK. It is a test fixture: never part of rumor.
//
//	testserver -http 8080,9090 -udp 5353 [-failing]   serve
//	testserver -probe http://127.0.0.1:8080/health   exit 0 if it answers 200, else 1
//
// Endpoints: GET /health answers 200 "ok", or 500 after POST /fail (until POST
// /ok); POST /exit?code=N exits with status N. SIGTERM exits 0 at once.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	httpPorts := flag.String("http", "8080", "comma-separated TCP ports to serve HTTP on")
	udpPorts := flag.String("udp", "", "comma-separated UDP ports to echo on")
	probe := flag.String("probe", "", "probe this URL and exit 0 if it answers 200")
	failAtStart := flag.Bool("failing", false, "start with /health failing (until POST /ok)")
	flag.Parse()
	if *probe != "" {
		os.Exit(probeURL(*probe))
	}
	var failing atomic.Bool
	failing.Store(*failAtStart)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		if failing.Load() {
			http.Error(w, "failing on request", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("POST /fail", func(http.ResponseWriter, *http.Request) { failing.Store(true) })
	mux.HandleFunc("POST /ok", func(http.ResponseWriter, *http.Request) { failing.Store(false) })
	mux.HandleFunc("POST /exit", func(_ http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.URL.Query().Get("code"))
		os.Exit(code)
	})
	for _, p := range split(*httpPorts) {
		ln, err := net.Listen("tcp", ":"+p)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
	}
	for _, p := range split(*udpPorts) {
		pc, err := net.ListenPacket("udp", ":"+p)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		go echo(pc)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	os.Exit(0)
}

func split(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func echo(pc net.PacketConn) {
	buf := make([]byte, 1500)
	for {
		n, addr, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		_, _ = pc.WriteTo(buf[:n], addr)
	}
}

func probeURL(u string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Println("status", resp.StatusCode)
		return 1
	}
	return 0
}
