package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/definition"
)

// fakeChecks is a Checks holding one ttl check "ttl", one tcp check "tcp" and a
// service "web-1"; it records heartbeats and maintenance changes.
type fakeChecks struct {
	mu    sync.Mutex
	calls []string
	defs  []definition.Check // what RegisterCheck received
}

func (f *fakeChecks) LocalChecks() []LocalCheck {
	return []LocalCheck{
		{Check: catalog.Check{ID: "ttl", Name: "heartbeat", ServiceID: "web-1", Status: catalog.StatusPassing, Type: "ttl", Output: "ok"},
			ServiceName: "web", ServiceTags: []string{"v1"}, Definition: definition.Check{TTL: 30 * time.Second}},
		{Check: catalog.Check{ID: "tcp", Name: "port", ServiceID: "web-1", Status: catalog.StatusCritical, Type: "tcp",
			Interval: 10 * time.Second, Timeout: time.Second},
			ServiceName: "web", Definition: definition.Check{TCP: "127.0.0.1:80", Interval: 10 * time.Second, Timeout: time.Second}},
		{Check: catalog.Check{ID: "_node_maintenance", Name: "Node Maintenance Mode", Status: catalog.StatusMaintenance, Notes: "deploy", Type: "maintenance"}},
	}
}

func (f *fakeChecks) UpdateTTL(_ context.Context, id string, status catalog.Status, output string) error {
	switch {
	case id == "tcp":
		return fmt.Errorf("check %q: %w: it is a tcp check, not a TTL check", id, catalog.ErrInvalid)
	case id != "ttl":
		return fmt.Errorf("check %q: %w", id, catalog.ErrNotFound)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("ttl %s %s %q", id, status, output))
	return nil
}

func (f *fakeChecks) SetMaintenance(_ context.Context, serviceID string, enable bool, reason string) error {
	if serviceID != "" && serviceID != "web-1" {
		return fmt.Errorf("service %q: %w", serviceID, catalog.ErrNotFound)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("maint %q %t %q", serviceID, enable, reason))
	return nil
}

func (f *fakeChecks) took() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.calls
	f.calls = nil
	return out
}

func newChecksFixture(t *testing.T) (*fixture, *fakeChecks) {
	t.Helper()
	f := newFixture(t)
	fc := &fakeChecks{}
	h, err := New(Config{Catalog: f.cat, Agent: f.ag, Checks: fc})
	if err != nil {
		t.Fatal(err)
	}
	f.h = h
	return f, fc
}

func TestAgentChecks(t *testing.T) {
	f, _ := newChecksFixture(t)
	rec := f.do(t, "GET", "/v1/agent/checks", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /v1/agent/checks = %d %s", rec.Code, rec.Body)
	}
	got := decode[map[string]map[string]any](t, rec)
	if len(got) != 3 {
		t.Fatalf("got %d checks, want 3: %v", len(got), got)
	}
	for _, c := range []struct {
		id, field string
		want      any
	}{
		{"ttl", "Node", "n1"},
		{"ttl", "CheckID", "ttl"},
		{"ttl", "Status", "passing"},
		{"ttl", "Output", "ok"},
		{"ttl", "ServiceName", "web"},
		{"ttl", "Type", "ttl"},
		{"ttl", "Definition.TTL", "30s"},
		{"ttl", "Definition.Interval", "0s"},
		{"ttl", "Definition.DeregisterCriticalServiceAfter", "0s"},
		{"tcp", "Status", "critical"},
		{"tcp", "Interval", "10s"},
		{"tcp", "Definition.TCP", "127.0.0.1:80"},
		{"tcp", "Definition.Timeout", "1s"},
		{"_node_maintenance", "Status", "maintenance"},
		{"_node_maintenance", "Notes", "deploy"},
		{"_node_maintenance", "ServiceID", ""},
		{"_node_maintenance", "Definition.Timeout", "0s"},
	} {
		v := any(got[c.id])
		for _, k := range strings.Split(c.field, ".") {
			m, _ := v.(map[string]any)
			v = m[k]
		}
		if v != c.want {
			t.Errorf("%s.%s = %#v, want %#v", c.id, c.field, v, c.want)
		}
	}
}

func TestCheckUpdates(t *testing.T) {
	for _, c := range []struct {
		name, method, target, body string
		code                       int
		want                       string // in the body
		calls                      string // what reached the agent
	}{
		{"pass", "PUT", "/v1/agent/check/pass/ttl", "", 200, "", `ttl ttl passing ""`},
		{"pass with note", "PUT", "/v1/agent/check/pass/ttl?note=fine", "", 200, "", `ttl ttl passing "fine"`},
		{"warn", "PUT", "/v1/agent/check/warn/ttl?note=slow", "", 200, "", `ttl ttl warning "slow"`},
		{"fail", "PUT", "/v1/agent/check/fail/ttl", "", 200, "", `ttl ttl critical ""`},
		{"update", "PUT", "/v1/agent/check/update/ttl", `{"Status": "warning", "Output": "slow"}`, 200, "", `ttl ttl warning "slow"`},
		{"update lower case", "PUT", "/v1/agent/check/update/ttl", `{"status": "passing"}`, 200, "", `ttl ttl passing ""`},
		{"unknown check", "PUT", "/v1/agent/check/pass/nope", "", 404, `Unknown check ID "nope"`, ""},
		{"update unknown check", "PUT", "/v1/agent/check/update/nope", `{"Status": "passing"}`, 404, `Unknown check ID "nope"`, ""},
		{"not a ttl check", "PUT", "/v1/agent/check/fail/tcp", "", 400, "not a TTL check", ""},
		{"unknown status", "PUT", "/v1/agent/check/update/ttl", `{"Status": "green"}`, 400, `"green"`, ""},
		{"no status", "PUT", "/v1/agent/check/update/ttl", `{}`, 400, "Invalid check status", ""},
		{"maintenance status", "PUT", "/v1/agent/check/update/ttl", `{"Status": "maintenance"}`, 400, "want passing, warning or critical", ""},
		{"unknown field", "PUT", "/v1/agent/check/update/ttl", `{"Status": "passing", "Colour": 1}`, 400, "Colour", ""},
		{"malformed", "PUT", "/v1/agent/check/update/ttl", `{"Status": `, 400, "Request decode failed", ""},
		{"pass GET", "GET", "/v1/agent/check/pass/ttl", "", 405, "not allowed", ""},
		{"service maintenance on", "PUT", "/v1/agent/service/maintenance/web-1?enable=true&reason=deploy", "", 200, "", `maint "web-1" true "deploy"`},
		{"service maintenance off", "PUT", "/v1/agent/service/maintenance/web-1?enable=false", "", 200, "", `maint "web-1" false ""`},
		{"service maintenance unknown", "PUT", "/v1/agent/service/maintenance/nope?enable=true", "", 404, `Unknown service ID "nope"`, ""},
		{"service maintenance no enable", "PUT", "/v1/agent/service/maintenance/web-1", "", 400, "missing value for enable", ""},
		{"node maintenance on", "PUT", "/v1/agent/maintenance?enable=true&reason=kernel", "", 200, "", `maint "" true "kernel"`},
		{"node maintenance off", "PUT", "/v1/agent/maintenance?enable=FALSE", "", 200, "", `maint "" false ""`},
		{"node maintenance bad enable", "PUT", "/v1/agent/maintenance?enable=maybe", "", 400, "invalid value for enable", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			f, fc := newChecksFixture(t)
			rec := f.do(t, c.method, c.target, c.body)
			if rec.Code != c.code || !strings.Contains(rec.Body.String(), c.want) {
				t.Errorf("%s %s: %d %q, want %d containing %q", c.method, c.target, rec.Code, rec.Body, c.code, c.want)
			}
			if got := strings.Join(fc.took(), "; "); got != c.calls {
				t.Errorf("agent got %q, want %q", got, c.calls)
			}
		})
	}
}

func TestCheckEndpointsNeedChecks(t *testing.T) {
	f := newFixture(t) // no Config.Checks
	if rec := f.do(t, "GET", "/v1/agent/checks", ""); rec.Code != http.StatusNotFound {
		t.Errorf("GET /v1/agent/checks without Checks = %d, want 404", rec.Code)
	}
}

// RegisterCheck records a check registration; ServiceID "nope" is unknown.
func (f *fakeChecks) RegisterCheck(_ context.Context, def definition.Check) error {
	if def.ServiceID == "nope" {
		return fmt.Errorf("check.ServiceID: %w: no service with ID %q", catalog.ErrInvalid, def.ServiceID)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.defs = append(f.defs, def)
	return nil
}

// DeregisterCheck knows the checks LocalChecks lists.
func (f *fakeChecks) DeregisterCheck(_ context.Context, id string) error {
	switch id {
	case "_node_maintenance":
		return fmt.Errorf("check %q: %w: use maintenance mode", id, catalog.ErrInvalid)
	case "ttl", "tcp":
		f.mu.Lock()
		defer f.mu.Unlock()
		f.calls = append(f.calls, "deregister "+id)
		return nil
	}
	return fmt.Errorf("check %q: %w", id, catalog.ErrNotFound)
}

func TestCheckRegister(t *testing.T) {
	f, fc := newChecksFixture(t)
	rec := f.do(t, "PUT", "/v1/agent/check/register", `{"ID": "mem", "Name": "Memory", "Notes": "n", "ServiceID": "web-1",
		"TTL": "30s", "Status": "passing", "Namespace": ""}`)
	if rec.Code != http.StatusOK {
		t.Fatalf("register: %d %s", rec.Code, rec.Body)
	}
	// Config-file spelling.
	rec = f.do(t, "PUT", "/v1/agent/check/register", `{"name": "disk", "args": ["/bin/true"], "interval": "1m", "service_id": ""}`)
	if rec.Code != http.StatusOK {
		t.Fatalf("snake_case register: %d %s", rec.Code, rec.Body)
	}
	if len(fc.defs) != 2 {
		t.Fatalf("defs = %+v", fc.defs)
	}
	d := fc.defs[0]
	if d.ID != "mem" || d.Name != "Memory" || d.Notes != "n" || d.ServiceID != "web-1" || d.TTL != 30*time.Second || d.Status != catalog.StatusPassing {
		t.Errorf("def = %+v", d)
	}
	if d := fc.defs[1]; d.Name != "disk" || d.ServiceID != "" || !slices.Equal(d.ScriptArgs, []string{"/bin/true"}) || d.Interval != time.Minute {
		t.Errorf("snake_case def = %+v", d)
	}
	if rec := f.do(t, "PUT", "/v1/agent/check/deregister/ttl", ""); rec.Code != http.StatusOK {
		t.Errorf("deregister: %d %s", rec.Code, rec.Body)
	}
	if got := fc.took(); !slices.Equal(got, []string{"deregister ttl"}) {
		t.Errorf("calls = %v", got)
	}
}
