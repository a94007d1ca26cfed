package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/catalog"
)

// TestRegisterHCLFile registers services from HCL definition files (a *.hcl file and
// stdin) and checks that every field the file gives reaches the agent: the CLI turns
// the config reader's definitions back into API registrations, so a field lost in
// that translation shows here.
func TestRegisterHCLFile(t *testing.T) {
	a, env := startAgent(t)
	file := filepath.Join(t.TempDir(), "web.hcl")
	if err := os.WriteFile(file, []byte(`
service {
  name    = "web"
  id      = "web-1"
  port    = 8080
  address = "127.0.0.9"
  tags    = ["v1", "primary"]
  meta { version = "2" }
  weights { passing = 5, warning = 2 }
  tagged_addresses { lan { address = "127.0.0.10", port = 8080 } }
  check {
    id       = "web-http"
    name     = "web answers"
    http     = "http://127.0.0.9:8080/health"
    method   = "HEAD"
    header { X-Probe = ["rumor"] }
    interval = "15s"
    timeout  = "2s"
    status   = "passing"
    deregister_critical_service_after = "90m"
    failures_before_critical = 3
  }
  checks = [{ id = "web-ttl", ttl = "30s" }]
}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := rumor(t, env, "register", "-f", file); r.code != 0 || !strings.Contains(r.stdout, "Registered service web (ID web-1).") {
		t.Fatalf("register -f web.hcl: %+v", r)
	}
	r := rumorIn(t, env, `services = [{ name = "db", port = 5432 }, { name = "cache", id = "cache-1" }]`, "register", "-f", "-", "--json")
	if r.code != 0 || !strings.Contains(r.stdout, `"id": "cache-1"`) || !strings.Contains(r.stdout, `"name": "db"`) {
		t.Fatalf("register -f - (HCL on stdin): %+v", r)
	}

	byID := map[string]catalog.Service{}
	for _, s := range a.LocalServices() {
		byID[s.ID] = s
	}
	web := byID["web-1"]
	want := catalog.Service{ID: "web-1", Name: "web", Port: 8080, Address: "127.0.0.9", Tags: []string{"v1", "primary"},
		Meta: map[string]string{"version": "2"}, Weights: catalog.Weights{Passing: 5, Warning: 2},
		TaggedAddresses: map[string]string{"lan": "127.0.0.10"}}
	if !reflect.DeepEqual(web, want) {
		t.Errorf("web on the agent = %+v\nwant %+v", web, want)
	}
	if byID["db"].Port != 5432 || byID["cache-1"].Name != "cache" {
		t.Errorf("services from stdin = %+v, %+v", byID["db"], byID["cache-1"])
	}
	checks := map[string]bool{}
	for _, c := range a.LocalChecks() {
		checks[c.Check.ID] = true
		d := c.Definition
		switch c.Check.ID {
		case "web-http":
			if d.HTTP != "http://127.0.0.9:8080/health" || d.Method != "HEAD" || d.Interval != 15*time.Second ||
				d.Timeout != 2*time.Second || d.DeregisterCriticalServiceAfter != 90*time.Minute ||
				d.FailuresBeforeCritical != 3 || d.Name != "web answers" ||
				!reflect.DeepEqual(d.Header, map[string][]string{"X-Probe": {"rumor"}}) {
				t.Errorf("web-http on the agent = %+v", d)
			}
			if c.Check.Status != catalog.StatusPassing {
				t.Errorf("web-http starts %s, want its initial status passing", c.Check.Status)
			}
		case "web-ttl":
			if d.TTL != 30*time.Second {
				t.Errorf("web-ttl on the agent = %+v", d)
			}
		}
	}
	if !checks["web-http"] || !checks["web-ttl"] {
		t.Errorf("checks on the agent: %v, want web-http and web-ttl", checks)
	}

	// Bad files are refused before anything is sent, naming file and field.
	before := len(a.LocalServices())
	bad := filepath.Join(t.TempDir(), "bad.hcl")
	for _, c := range []struct{ name, content, stderr string }{
		{"syntax", `service { name = `, "invalid HCL"},
		{"agent key", `node_name = "x"` + "\nservice { name = \"x\" }", "node_name: an agent setting"},
		{"bad field", `service { name = "x", port = "eighty" }`, "service.port"},
		{"unknown key", `service { name = "x", colour = "red" }`, "service.colour"},
		{"no service", `# nothing`, `no service definition`},
	} {
		if err := os.WriteFile(bad, []byte(c.content), 0o600); err != nil {
			t.Fatal(err)
		}
		r := rumor(t, env, "register", "-f", bad)
		if r.code != 2 || !strings.Contains(r.stderr, c.stderr) || !strings.Contains(r.stderr, "bad.hcl") {
			t.Errorf("%s: exit %d, stderr %q; want 2 and %q naming the file", c.name, r.code, r.stderr, c.stderr)
		}
	}
	if n := len(a.LocalServices()); n != before {
		t.Errorf("refused files changed the agent: %d services, had %d", n, before)
	}
}
