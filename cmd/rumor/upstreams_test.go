package main

import (
	"net"
	"strings"
	"testing"

	"github.com/rumor-sd/rumor/definition"
)

// --upstream (and RUMOR_UPSTREAM) become the agent's upstreams; a bad one is a usage
// error naming it; --probe-reachability turns probes on.
func TestUpstreamFlags(t *testing.T) {
	cfg, _, err := resolve(t, map[string]string{}, "--upstream", "web=9001", "--upstream", "db:primary=127.0.0.2:9002", "--probe-reachability")
	if err != nil {
		t.Fatal(err)
	}
	want := []definition.Upstream{{Service: "web", LocalBindPort: 9001}, {Service: "db", Tag: "primary", LocalBindAddress: "127.0.0.2", LocalBindPort: 9002}}
	if len(cfg.Proxy.Upstreams) != 2 || cfg.Proxy.Upstreams[0] != want[0] || cfg.Proxy.Upstreams[1] != want[1] || !cfg.ProbeReachability {
		t.Errorf("upstreams %+v probe %v, want %+v and probes on", cfg.Proxy.Upstreams, cfg.ProbeReachability, want)
	}
	cfg, _, err = resolve(t, map[string]string{"RUMOR_UPSTREAM": "web=9001,db=9002"})
	if err != nil || len(cfg.Proxy.Upstreams) != 2 {
		t.Errorf("RUMOR_UPSTREAM: %+v, %v", cfg.Proxy.Upstreams, err)
	}
	_, _, err = resolve(t, map[string]string{}, "--upstream", "web")
	if err == nil || !strings.Contains(err.Error(), `upstream "web": want service=`) {
		t.Errorf("a bad --upstream: %v", err)
	}
}

// rumor upstreams lists the agent's listeners and their instances.
func TestUpstreamsCommand(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, env := startPeer(t, "node1")
	port := ln.Addr().(*net.TCPAddr).Port
	if r := rumor(t, env, "register", "--name", "web", "--port", strings.TrimPrefix(ln.Addr().String(), "127.0.0.1:")); r.code != 0 {
		t.Fatalf("register: %s", r.stderr)
	}
	app := `{"service": {"name": "app", "upstreams": [{"service": "web", "local_bind_port": 0}]}}`
	if r := rumorIn(t, env, app, "register", "-f", "-"); r.code != 0 {
		t.Fatalf("register a service with an upstream: %s", r.stderr)
	}
	r := rumor(t, env, "upstreams")
	if r.code != 0 || !strings.Contains(r.stdout, "LISTEN") || !strings.Contains(r.stdout, "node1/web 127.0.0.1:"+ln.Addr().String()[len("127.0.0.1:"):]) {
		t.Errorf("rumor upstreams (port %d): exit %d\n%s%s", port, r.code, r.stdout, r.stderr)
	}
	r = rumor(t, env, "upstreams", "--json")
	if r.code != 0 || !strings.Contains(r.stdout, `"Service": "web"`) {
		t.Errorf("rumor upstreams --json: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
