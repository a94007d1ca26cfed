package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/internal/testkit"
)

func TestDNSFlags(t *testing.T) {
	cfg, _, err := resolve(t, nil, "--dev")
	if err != nil || cfg.DNS.Addr != "127.0.0.1:8600" {
		t.Fatalf("default: %q, %v; want DNS on 127.0.0.1:8600", cfg.DNS.Addr, err)
	}
	cfg, _, err = resolve(t, nil, "--dev", "--dns-addr", "off")
	if err != nil || cfg.DNS.Addr != "" {
		t.Fatalf("off: %q, %v", cfg.DNS.Addr, err)
	}
	cfg, _, err = resolve(t, map[string]string{"RUMOR_DNS_ADDR": "127.0.0.1:0"}, "--dev", "--dns-domain", "rumor",
		"--dns-alt-domain", "sd.example", "--dns-recursor", "1.1.1.1", "--dns-recursor", "9.9.9.9:53", "--dns-only-passing",
		"--dns-node-ttl", "5s", "--dns-service-ttl", "web=30s", "--dns-service-ttl", "db*=1m", "--dns-negative-ttl", "0s",
		"--dns-a-record-limit", "3", "--dns-max-udp-size", "4096", "--dns-near", "--dns-only-reachable")
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.DNS
	if d.Addr != "127.0.0.1:0" || d.Domain != "rumor" || d.AltDomain != "sd.example" || len(d.Recursors) != 2 || !d.OnlyPassing ||
		d.NodeTTL != 5*time.Second || d.ServiceTTL["web"] != 30*time.Second || d.ServiceTTL["db*"] != time.Minute ||
		d.NegativeTTL != -1 || d.ARecordLimit != 3 || d.MaxUDPSize != 4096 || !d.OrderNear || !d.OnlyReachable {
		t.Errorf("DNS config: %+v", d)
	}
	// Config files, then flags over them.
	dir := t.TempDir()
	file := filepath.Join(dir, "dns.json")
	if err := os.WriteFile(file, []byte(`{"ports": {"dns": 8653}, "domain": "filezone", "dns_config": {"a_record_limit": 2, "only_reachable": true}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, _, err = resolve(t, nil, "--dev", "--config-file", file, "--dns-a-record-limit", "4")
	if err != nil || cfg.DNS.Addr != "127.0.0.1:8653" || cfg.DNS.Domain != "filezone" || cfg.DNS.ARecordLimit != 4 || !cfg.DNS.OnlyReachable {
		t.Errorf("file + flag: %+v, %v", cfg.DNS, err)
	}
	for _, tt := range []struct{ args []string }{
		{[]string{"--dns-addr", "nowhere"}}, {[]string{"--dns-service-ttl", "web"}}, {[]string{"--dns-service-ttl", "web=soon"}},
		{[]string{"--dns-a-record-limit", "-1"}}, {[]string{"--dns-max-udp-size", "100"}}, {[]string{"--dns-node-ttl", "-1s"}},
	} {
		if r := rumor(t, nil, append([]string{"agent", "--dev"}, tt.args...)...); r.code != 2 || !strings.Contains(r.stderr, tt.args[0]) {
			t.Errorf("%v: exit %d, %q; want 2 naming %s", tt.args, r.code, r.stderr, tt.args[0])
		}
	}
}

func TestDNSSetup(t *testing.T) {
	r := rumor(t, map[string]string{"RUMOR_DNS_ADDR": "127.0.0.1:8653"}, "dns", "setup")
	want := "[Resolve]\nDNS=127.0.0.1:8653\nDomains=~consul\n"
	if r.code != 0 || !strings.Contains(r.stdout, want) {
		t.Fatalf("exit %d:\n%s\nwant it to hold\n%s", r.code, r.stdout, want)
	}
	path := filepath.Join(t.TempDir(), "resolved.conf.d", "rumor.conf")
	r = rumor(t, nil, "dns", "setup", "--write", "--path", path, "--domain", "rumor.")
	if r.code != 0 {
		t.Fatalf("--write: %+v", r)
	}
	b, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(b), "DNS=127.0.0.1:8600\nDomains=~rumor\n") {
		t.Fatalf("written: %q, %v", b, err)
	}
	if r := rumor(t, nil, "dns", "setup", "--domain", "a b"); r.code != 2 || !strings.Contains(r.stderr, "--domain") {
		t.Errorf("bad domain: %+v", r)
	}
}

// TestDNSQuery: an agent started by the CLI serves DNS, and `rumor dns query` reads
// a registration back.
func TestDNSQuery(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var out, errb testkit.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"agent", "--dev", "--node", "dev1", "--bind", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
			"--dns-addr", "127.0.0.1:0"}, strings.NewReader(""), &out, &errb, func(string) string { return "" })
	}()
	addr := waitForAgent(t, &errb, done)
	m := regexp.MustCompile(`DNS interface listening.*dns=(127\.0\.0\.1:\d+)`).FindStringSubmatch(errb.String())
	if m == nil {
		t.Fatalf("no DNS address in the log:\n%s", errb.String())
	}
	env := map[string]string{"RUMOR_HTTP_ADDR": addr, "RUMOR_DNS_ADDR": m[1]}
	if r := rumor(t, env, "register", "--name", "web", "--port", "8080", "--tag", "v1"); r.code != 0 {
		t.Fatalf("register: %+v", r)
	}
	for _, q := range []struct {
		args []string
		want string
	}{
		{[]string{"web.service.consul"}, "web.service.consul.\t0\tIN\tSRV\t1 1 8080 dev1.node.dc1.consul."},
		{[]string{"v1.web.service.consul", "A", "--tcp"}, "v1.web.service.consul.\t0\tIN\tA\t127.0.0.1"},
		{[]string{"nope.service.consul"}, "status: NXDOMAIN"},
	} {
		r := rumor(t, env, append([]string{"dns", "query"}, q.args...)...)
		if r.code != 0 || !strings.Contains(r.stdout, q.want) {
			t.Errorf("dns query %v: exit %d\n%s%s\nwant %q", q.args, r.code, r.stdout, r.stderr, q.want)
		}
	}
	if r := rumor(t, env, "dns", "query", "web.service.consul", "BOGUS"); r.code != 2 {
		t.Errorf("bad type: %+v", r)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("agent exited %d", code)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("agent did not stop:\n%s", errb.String())
	}
}
