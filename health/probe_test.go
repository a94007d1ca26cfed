package health

// Each probe type against real servers on 127.0.0.1, on real time: network I/O does
// not advance a synctest bubble. Timeouts are short and waits poll a deadline.

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	grpchealth "google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/definition"
	"github.com/rumor-sd/rumor/internal/testkit"
)

// slack is how much longer than its timeout a timed-out probe may take: scheduling
// on a loaded CI machine, not protocol work.
const slack = time.Second

// realProber returns the prober a Manager builds for def (validated and defaulted).
func realProber(t *testing.T, def definition.Check) (prober, definition.Check) {
	t.Helper()
	if err := def.Validate(definition.Policy{EnableScriptChecks: true}); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	m, err := New(Config{Sink: &recSink{}, EnableScriptChecks: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	d := withDefaults(def)
	return m.newProber(&d), d
}

// runProbe runs one probe under the definition's timeout and says how long it took.
func runProbe(t *testing.T, def definition.Check) (catalog.Status, string, time.Duration) {
	t.Helper()
	p, d := realProber(t, def)
	ctx, cancel := context.WithTimeout(t.Context(), d.Timeout)
	defer cancel()
	start := time.Now()
	st, out := p.probe(ctx)
	return st, clampOutput(out), time.Since(start)
}

// closedPort returns a 127.0.0.1 address nobody listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// blackHole returns a 127.0.0.1 address whose connection attempts hang: a listener
// with a full accept queue, so the kernel drops every further SYN.
func blackHole(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
	for range 16 { // fill the queue until a connection attempt hangs
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return addr
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Fatal("could not fill the accept queue of a backlog-0 listener")
	return ""
}

// silentServer accepts connections and never answers: an HTTP black hole.
func silentServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return ln.Addr().String()
}

func assertTimedOut(t *testing.T, st catalog.Status, out string, took, timeout time.Duration) {
	t.Helper()
	if st != C {
		t.Errorf("status %v, want critical; output %q", st, out)
	}
	if took > timeout+slack {
		t.Errorf("took %v with a %v timeout", took, timeout)
	}
	if took < timeout*9/10 {
		t.Errorf("gave up after %v, before its %v timeout: %q", took, timeout, out)
	}
}

func TestHTTPProbe(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "fine") })
	mux.HandleFunc("/busy", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTooManyRequests)
		io.WriteString(w, "slow down")
	})
	mux.HandleFunc("/err", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, "boom")
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ok", http.StatusFound) })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat("a", HTTPBodyLimit)+strings.Repeat("b", 6000))
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got := fmt.Sprintf("%s host=%s x=%s ua=%s body=%s", r.Method, r.Host, strings.Join(r.Header.Values("X-Test"), ","), r.UserAgent(), body)
		if r.Method != "POST" || r.Host != "svc.example" || r.Header.Get("X-Test") == "" || string(body) != "ping" {
			w.WriteHeader(http.StatusBadRequest)
		}
		io.WriteString(w, got)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	tests := []struct {
		name       string
		def        definition.Check
		wantStatus catalog.Status
		wantOutput string // exact, or prefix when ending in "*"
	}{
		{"200 is passing", definition.Check{HTTP: srv.URL + "/ok"}, P, "HTTP GET " + srv.URL + "/ok: 200 OK Output: fine"},
		{"429 is warning", definition.Check{HTTP: srv.URL + "/busy"}, W, "HTTP GET " + srv.URL + "/busy: 429 Too Many Requests Output: slow down"},
		{"500 is critical", definition.Check{HTTP: srv.URL + "/err"}, C, "HTTP GET " + srv.URL + "/err: 500 Internal Server Error Output: boom"},
		{"404 is critical", definition.Check{HTTP: srv.URL + "/nope"}, C, "HTTP GET " + srv.URL + "/nope: 404 Not Found*"},
		{"redirects are followed", definition.Check{HTTP: srv.URL + "/redirect"}, P, "HTTP GET " + srv.URL + "/redirect: 200 OK Output: fine"},
		{"method, headers, host and body", definition.Check{HTTP: srv.URL + "/echo", Method: "post", Body: "ping",
			Header: map[string][]string{"x-test": {"1", "2"}, "Host": {"svc.example"}, "User-Agent": {"custom"}}},
			P, "HTTP POST " + srv.URL + "/echo: 200 OK Output: POST host=svc.example x=1,2 ua=custom body=ping"},
		{"connection refused", definition.Check{HTTP: "http://" + closedPort(t) + "/"}, C, "HTTP GET http://127.0.0.1:*"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.def.ID, tt.def.Interval, tt.def.Timeout = "web", 5*time.Second, 5*time.Second
			st, out, _ := runProbe(t, tt.def)
			if st != tt.wantStatus {
				t.Errorf("status %v, want %v (output %q)", st, tt.wantStatus, out)
			}
			if p, ok := strings.CutSuffix(tt.wantOutput, "*"); ok {
				if !strings.HasPrefix(out, p) {
					t.Errorf("output %q, want prefix %q", out, p)
				}
			} else if out != tt.wantOutput {
				t.Errorf("output %q\nwant       %q", out, tt.wantOutput)
			}
		})
	}

	t.Run("body cut at 4 KiB", func(t *testing.T) {
		st, out, _ := runProbe(t, definition.Check{ID: "web", HTTP: srv.URL + "/big", Interval: 5 * time.Second})
		_, body, _ := strings.Cut(out, " Output: ")
		if st != P || len(out) > catalog.MaxOutputLen || !strings.HasSuffix(out, truncationMark) {
			t.Fatalf("status %v, %d bytes of output", st, len(out))
		}
		if strings.Contains(body, "b") {
			t.Errorf("output holds body past the first %d bytes", HTTPBodyLimit)
		}
	})

	t.Run("slow handler times out", func(t *testing.T) {
		timeout := 300 * time.Millisecond
		st, out, took := runProbe(t, definition.Check{ID: "web", HTTP: srv.URL + "/slow", Interval: time.Second, Timeout: timeout})
		assertTimedOut(t, st, out, took, timeout)
	})

	t.Run("black-holed server times out", func(t *testing.T) {
		timeout := 300 * time.Millisecond
		st, out, took := runProbe(t, definition.Check{ID: "web", HTTP: "http://" + silentServer(t) + "/", Interval: time.Second, Timeout: timeout})
		assertTimedOut(t, st, out, took, timeout)
	})

	t.Run("black-holed connect times out", func(t *testing.T) {
		timeout := 300 * time.Millisecond
		st, out, took := runProbe(t, definition.Check{ID: "web", HTTP: "http://" + blackHole(t) + "/", Interval: time.Second, Timeout: timeout})
		assertTimedOut(t, st, out, took, timeout)
	})
}

func TestHTTPProbeTLS(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "secure") }))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	st, out, _ := runProbe(t, definition.Check{ID: "web", HTTP: srv.URL, TLSSkipVerify: true, Interval: 5 * time.Second})
	if st != P || !strings.HasSuffix(out, "200 OK Output: secure") {
		t.Errorf("skip-verify: %v %q, want passing", st, out)
	}
	st, out, _ = runProbe(t, definition.Check{ID: "web", HTTP: srv.URL, Interval: 5 * time.Second})
	if st != C || !strings.Contains(out, "certificate") {
		t.Errorf("verified against a self-signed certificate: %v %q, want critical naming the certificate", st, out)
	}
}

func TestTCPProbe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	open, closed := ln.Addr().String(), closedPort(t)

	st, out, _ := runProbe(t, definition.Check{ID: "db", TCP: open, Interval: 5 * time.Second})
	if st != P || out != "TCP connect "+open+": Success" {
		t.Errorf("listening port: %v %q", st, out)
	}
	st, out, _ = runProbe(t, definition.Check{ID: "db", TCP: closed, Interval: 5 * time.Second})
	if st != C || !strings.Contains(out, "connection refused") || !strings.HasPrefix(out, "TCP connect "+closed+": ") {
		t.Errorf("closed port: %v %q", st, out)
	}
	timeout := 300 * time.Millisecond
	st, out, took := runProbe(t, definition.Check{ID: "db", TCP: blackHole(t), Interval: time.Second, Timeout: timeout})
	assertTimedOut(t, st, out, took, timeout)
}

// grpcHealthServer starts grpc's own health service: "" and "up" serving, "down" not.
func grpcHealthServer(t *testing.T, opts ...grpc.ServerOption) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(opts...)
	hs := grpchealth.NewServer()
	hs.SetServingStatus("up", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("down", healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(s, hs)
	var wg sync.WaitGroup
	wg.Go(func() { s.Serve(ln) })
	t.Cleanup(func() { s.Stop(); wg.Wait() })
	return ln.Addr().String()
}

func TestGRPCProbe(t *testing.T) {
	addr := grpcHealthServer(t)
	tests := []struct {
		name       string
		target     string
		wantStatus catalog.Status
		wantOutput string // substring
	}{
		{"server as a whole", addr, P, "gRPC " + addr + ": SERVING"},
		{"serving service", addr + "/up", P, "gRPC " + addr + "/up: SERVING"},
		{"not serving service", addr + "/down", C, "gRPC " + addr + "/down: NOT_SERVING"},
		{"unknown service", addr + "/nope", C, "NotFound"},
		{"closed port", closedPort(t), C, "Unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, out, _ := runProbe(t, definition.Check{ID: "g", GRPC: tt.target, Interval: 5 * time.Second})
			if st != tt.wantStatus || !strings.Contains(out, tt.wantOutput) {
				t.Errorf("%v %q, want %v containing %q", st, out, tt.wantStatus, tt.wantOutput)
			}
		})
	}
	t.Run("black hole times out", func(t *testing.T) {
		timeout := 300 * time.Millisecond
		st, out, took := runProbe(t, definition.Check{ID: "g", GRPC: blackHole(t) + "/up", Interval: time.Second, Timeout: timeout})
		assertTimedOut(t, st, out, took, timeout)
	})
}

func TestGRPCProbeTLS(t *testing.T) {
	cert := testkit.SelfSigned(t).TLS
	addr := grpcHealthServer(t, grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}})))
	tests := []struct {
		name       string
		useTLS     bool
		skipVerify bool
		want       catalog.Status
	}{
		{"tls, skip verify", true, true, P},
		{"tls, verify a self-signed certificate", true, false, C},
		{"plaintext to a tls server", false, false, C},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, out, _ := runProbe(t, definition.Check{ID: "g", GRPC: addr + "/up", GRPCUseTLS: tt.useTLS, TLSSkipVerify: tt.skipVerify,
				Interval: 2 * time.Second})
			if st != tt.want {
				t.Errorf("%v %q, want %v", st, out, tt.want)
			}
		})
	}
}

// writeScript writes a shell script to a temporary directory. It is run through
// /bin/sh rather than executed, which sidesteps ETXTBSY races with concurrent forks.
func writeScript(t *testing.T, body string) []string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "check.sh")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"/bin/sh", path}
}

func TestScriptProbe(t *testing.T) {
	tests := []struct {
		name       string
		script     string
		wantStatus catalog.Status
		wantOutput string
	}{
		{"exit 0 is passing", "echo all good; exit 0", P, "all good\n"},
		{"exit 1 is warning", "echo degraded; exit 1", W, "degraded\n"},
		{"exit 2 is critical", "echo broken; exit 2", C, "broken\n"},
		{"exit 127 is critical", "exit 127", C, ""},
		{"stderr is captured", "echo out; echo err >&2; exit 2", C, "out\nerr\n"},
		{"killed by a signal is critical", "kill -9 $$", C, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, out, _ := runProbe(t, definition.Check{ID: "s", ScriptArgs: writeScript(t, tt.script), Interval: 10 * time.Second})
			if st != tt.wantStatus || out != tt.wantOutput {
				t.Errorf("%v %q, want %v %q", st, out, tt.wantStatus, tt.wantOutput)
			}
		})
	}

	t.Run("long output is truncated", func(t *testing.T) {
		st, out, _ := runProbe(t, definition.Check{ID: "s", Interval: 10 * time.Second,
			ScriptArgs: writeScript(t, "i=0; while [ $i -lt 2000 ]; do echo line-$i; i=$((i+1)); done")})
		if st != P || len(out) > catalog.MaxOutputLen || !strings.HasPrefix(out, "line-0\n") || !strings.HasSuffix(out, truncationMark) {
			t.Fatalf("%v, %d bytes, ends %q", st, len(out), out[max(0, len(out)-30):])
		}
	})

	t.Run("missing program is critical", func(t *testing.T) {
		st, out, _ := runProbe(t, definition.Check{ID: "s", ScriptArgs: []string{filepath.Join(t.TempDir(), "nope")}, Interval: 10 * time.Second})
		if st != C || !strings.Contains(out, "no such file") {
			t.Fatalf("%v %q", st, out)
		}
	})

	t.Run("timeout kills the process group", func(t *testing.T) {
		pidFile := filepath.Join(t.TempDir(), "child.pid")
		args := writeScript(t, fmt.Sprintf("sleep 60 & echo $! > %s; echo started; wait", pidFile))
		timeout := 500 * time.Millisecond
		st, out, took := runProbe(t, definition.Check{ID: "s", ScriptArgs: args, Interval: time.Second, Timeout: timeout})
		assertTimedOut(t, st, out, took, timeout)
		if !strings.HasPrefix(out, "Timed out (500ms) running check; output so far: started") {
			t.Errorf("output %q", out)
		}
		b, err := os.ReadFile(pidFile)
		if err != nil {
			t.Fatal(err)
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		testkit.Eventually(t, 5*time.Second, fmt.Sprintf("the script's child %d to end", pid), func() bool { return !processAlive(pid) })
	})
}

// processAlive reports whether pid runs; a zombie (killed, not yet reaped by init)
// does not count.
func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || (s[i+2] != 'Z' && s[i+2] != 'X')
}
