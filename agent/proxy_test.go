package agent

import (
	"bufio"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/definition"
	"github.com/rumor-sd/rumor/internal/testkit"
)

// greeter is a TCP server that writes name and a newline to every connection.
func greeter(t *testing.T, name string) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, name+"\n")
			_ = c.Close()
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); <-done })
	return ln.Addr().(*net.TCPAddr).Port
}

func greeting(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// listenOf returns the address the proxy listens on for service.
func listenOf(a *Agent, service string) string {
	for _, u := range a.Upstreams() {
		if u.Service == service {
			return u.Listen
		}
	}
	return ""
}

// Upstreams from the config and from a service's definition are served, follow
// registrations and survive a restart (the definition is persisted).
func TestProxyUpstreams(t *testing.T) {
	port := greeter(t, "backend")
	dir := t.TempDir()
	cfg := testConfig(t, "n1", dir, nil)
	cfg.Proxy.Upstreams = []definition.Upstream{{Service: "web", LocalBindPort: 0}}
	a := startAgent(t, cfg)
	ctx := t.Context()
	if err := a.RegisterService(ctx, web("web-1", port)); err != nil {
		t.Fatal(err)
	}
	addr := listenOf(a, "web")
	testkit.Eventually(t, 5*time.Second, "the proxy to forward to web-1", func() bool {
		got, err := greeting(addr)
		return err == nil && got == "backend"
	})

	app := definition.Service{ID: "app", Name: "app", Upstreams: []definition.Upstream{{Service: "web", Tag: "", LocalBindPort: 0, LocalBindAddress: "127.0.0.2", Near: "_agent"}}}
	if err := a.RegisterService(ctx, app); err != nil {
		t.Fatal(err)
	}
	if n := len(a.Upstreams()); n != 2 {
		t.Fatalf("%d upstreams after registering a service with one, want 2", n)
	}
	bad := app
	bad.Upstreams = []definition.Upstream{{Service: "", LocalBindPort: 99999}}
	if err := a.RegisterService(ctx, bad); err == nil || !strings.Contains(err.Error(), "service.upstreams[0].service") {
		t.Fatalf("registering a bad upstream: %v, want an error naming service.upstreams[0].service", err)
	}
	if n := len(a.Upstreams()); n != 2 {
		t.Fatalf("a refused registration changed the upstreams: %d", n)
	}
	if err := a.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if _, err := greeting(addr); err == nil {
		t.Fatal("the proxy still listens after Shutdown")
	}

	// The next start restores the service's upstream from the data dir.
	cfg = testConfig(t, "n1", dir, nil)
	b := startAgent(t, cfg)
	if n := len(b.Upstreams()); n != 1 || b.Upstreams()[0].Service != "web" {
		t.Fatalf("after restart: %+v, want the service's upstream of web", b.Upstreams())
	}
	if err := b.DeregisterService(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	if n := len(b.Upstreams()); n != 0 {
		t.Fatalf("%d upstreams after deregistering the service that asked for it", n)
	}
}

// A port already in use for an agent's own upstream fails Start, naming it.
func TestProxyPortTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	cfg := testConfig(t, "n1", "", nil)
	cfg.Proxy.Upstreams = []definition.Upstream{{Service: "web", LocalBindPort: port}}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = a.Start(t.Context())
	if err == nil || !strings.Contains(err.Error(), strconv.Itoa(port)) {
		t.Fatalf("Start with the upstream's port taken: %v, want an error naming it", err)
	}
}
