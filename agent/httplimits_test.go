package agent

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/internal/testkit"
)

// rawRequest sends req on a new connection to the agent's HTTP API.
func rawRequest(t *testing.T, a *Agent, req string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", a.HTTPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	return c
}

// readUntilClosed reads c until the server closes it, failing if that takes past
// the deadline; it returns what was read.
func readUntilClosed(t *testing.T, c net.Conn, deadline time.Duration) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(deadline))
	b, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %v; read so far: %q", deadline, b)
	}
	return string(b)
}

// TestHeldBodyClosed: a request that declares a body and never sends it is answered
// or closed within the body timeout, on endpoints that read their body and on
// those that never do (GET /v1/agent/self, the keyring, the UI), which held the
// connection forever (issue 11 item 8).
func TestHeldBodyClosed(t *testing.T) {
	cfg := testConfig(t, "n1", "", nil)
	cfg.HTTPBodyTimeout = 300 * time.Millisecond
	a := startAgent(t, cfg)
	for _, req := range []string{
		"GET /v1/agent/self HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n",
		"GET /v1/operator/keyring HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n",
		"GET /ui/ HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n",
		"PUT /v1/agent/service/register HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"Name\":",
		"PUT /v1/agent/service/register HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"Nam\r\n",
	} {
		t.Run(strings.Fields(req)[1], func(t *testing.T) {
			c := rawRequest(t, a, req)
			readUntilClosed(t, c, 10*time.Second) // the timeout is 300 ms: 10 s is a bound, not a wait
		})
	}
}

// TestBodyTimeoutSparesLongRequests: the body deadline bounds the body only: a
// blocking query (with a small body, as some clients send) waits longer than it and
// is answered, and a keep-alive connection stays usable.
func TestBodyTimeoutSparesLongRequests(t *testing.T) {
	cfg := testConfig(t, "n1", "", nil)
	cfg.HTTPBodyTimeout = 200 * time.Millisecond
	a := startAgent(t, cfg)
	c := rawRequest(t, a, "PUT /v1/agent/service/register HTTP/1.1\r\nHost: x\r\nContent-Length: 14\r\n\r\n{\"Name\":\"web\"}")
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("register: %v %v", resp, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	idx := resp.Header.Get("X-Consul-Index")
	if idx == "" {
		idx = fmt.Sprint(a.cat.Index())
	}
	start := time.Now()
	fmt.Fprintf(c, "GET /v1/catalog/services?index=%s&wait=1s HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}", idx)
	resp, err = http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("X-Consul-Index") == "" {
		t.Fatalf("blocking query after %v: %v %v", time.Since(start), resp, err)
	}
	if b, err := io.ReadAll(resp.Body); err != nil || !strings.Contains(string(b), "web") {
		t.Fatalf("blocking query body %q: %v", b, err)
	}
}

// TestBodyTooLarge: a declared body over the limit is refused at once, unread.
func TestBodyTooLarge(t *testing.T) {
	a := startAgent(t, testConfig(t, "n1", "", nil))
	c := rawRequest(t, a, "PUT /v1/agent/service/register HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n")
	if got := readUntilClosed(t, c, 10*time.Second); !strings.HasPrefix(got, "HTTP/1.1 413") {
		t.Fatalf("answer %q, want 413", got)
	}
}

// TestHTTPMaxConns: connections beyond the cap are closed at once; a slot freed is
// usable again.
func TestHTTPMaxConns(t *testing.T) {
	cfg := testConfig(t, "n1", "", nil)
	cfg.HTTPMaxConns = 3
	a := startAgent(t, cfg)
	var held []net.Conn
	for range 3 {
		held = append(held, rawRequest(t, a, ""))
	}
	// The kernel queues connections in order: the fourth is accepted after the
	// first three, and closed.
	extra := rawRequest(t, a, "")
	readUntilClosed(t, extra, 10*time.Second)
	held[0].Close()
	testkit.Poll(t, 10*time.Second, testkit.PollInterval, "a freed slot", func() error {
		c := rawRequest(t, a, "GET /v1/agent/self HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		if got := readUntilClosed(t, c, 10*time.Second); !strings.HasPrefix(got, "HTTP/1.1 200") {
			return fmt.Errorf("answer %.40q", got)
		}
		return nil
	})
}
