package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/catalog/catalogtest"
	"github.com/rumor-sd/rumor/definition"
)

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

// fakeCoords is a Coordinates with fixed round-trip times.
type fakeCoords map[string]map[string]time.Duration

func (c fakeCoords) RTTsFrom(from string) (map[string]time.Duration, bool) {
	m, ok := c[from]
	return m, ok
}

// names lists one string per element of a JSON list answer.
func names[T any](t *testing.T, rec *httptest.ResponseRecorder, name func(*T) string) []string {
	t.Helper()
	checkReadHeaders(t, rec)
	if strings.TrimSpace(rec.Body.String()) == "null" {
		t.Fatalf("null body, want a list")
	}
	var out []string
	for _, x := range decode[[]T](t, rec) {
		out = append(out, name(&x))
	}
	return out
}

func checkName(c *healthCheck) string { return c.Node + "/" + c.CheckID }

func TestCatalogNode(t *testing.T) {
	f := newFixture(t)
	rec := f.do(t, "GET", "/v1/catalog/node/n2", "")
	checkReadHeaders(t, rec)
	got := decode[catalogNode](t, rec)
	if got.Node.Node != "n2" || got.Node.ID != catalogtest.NodeID("n2") || got.Node.Address != "10.0.0.2" || got.Node.Datacenter != "dc1" {
		t.Errorf("Node = %+v", got.Node)
	}
	if len(got.Services) != 2 || got.Services["web-2"].Port != 8080 || got.Services["web-2"].Service != "web" ||
		!slices.Equal(got.Services["web-2"].Tags, []string{"v2"}) || got.Services["db"].Port != 5432 {
		t.Errorf("Services = %+v", got.Services)
	}

	// consul/api decodes an unknown node as nil: 200 and null, as Consul answers.
	rec = f.do(t, "GET", "/v1/catalog/node/nope", "")
	checkReadHeaders(t, rec)
	if body := strings.TrimSpace(rec.Body.String()); body != "null" {
		t.Errorf("unknown node: body %q, want null", body)
	}

	rec = f.do(t, "GET", "/v1/catalog/node/n2?filter="+urlq(`Service == "db"`), "")
	if got := decode[catalogNode](t, rec); len(got.Services) != 1 || got.Services["db"].ID != "db" {
		t.Errorf("filtered services = %+v", got.Services)
	}
}

func TestCatalogDatacenters(t *testing.T) {
	f := newFixture(t)
	rec := f.do(t, "GET", "/v1/catalog/datacenters", "")
	checkReadHeaders(t, rec)
	if got := decode[[]string](t, rec); !slices.Equal(got, []string{"dc1"}) {
		t.Errorf("datacenters = %v, want [dc1]", got)
	}
}

func TestHealthNodeChecksState(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		target string
		want   []string
	}{
		{"/v1/health/node/n2", []string{"n2/serfHealth", "n2/web-2-http"}},
		{"/v1/health/node/n1", []string{"n1/serfHealth"}},
		{"/v1/health/node/nope", nil},
		{"/v1/health/checks/web", []string{"n2/web-2-http"}},
		{"/v1/health/checks/db", nil},
		{"/v1/health/checks/nope", nil},
		{"/v1/health/checks/web?node-meta=rack:r1", nil},
		{"/v1/health/state/any", []string{"n1/serfHealth", "n2/serfHealth", "n2/web-2-http"}},
		{"/v1/health/state/passing", []string{"n1/serfHealth", "n2/serfHealth"}},
		{"/v1/health/state/critical", []string{"n2/web-2-http"}},
		{"/v1/health/state/warning", nil},
		{"/v1/health/state/maintenance", nil},
		{"/v1/health/state/any?node-meta=rack:r1", []string{"n1/serfHealth"}},
	} {
		t.Run(c.target, func(t *testing.T) {
			got := names(t, f.do(t, "GET", c.target, ""), checkName)
			if !slices.Equal(got, c.want) {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
	// Every field of a service's check, as Consul's HealthCheck.
	hc := decode[[]healthCheck](t, f.do(t, "GET", "/v1/health/state/critical", ""))[0]
	if hc.Name != "HTTP" || hc.Status != "critical" || hc.Output != "connection refused" || hc.ServiceID != "web-2" ||
		hc.ServiceName != "web" || !slices.Equal(hc.ServiceTags, []string{"v2"}) || hc.Type != "http" ||
		hc.Definition.Interval != "10s" || hc.Definition.DeregisterCriticalServiceAfter != "0s" || hc.CreateIndex == 0 {
		t.Errorf("check = %+v", hc)
	}
	// A failed node's serfHealth is critical.
	f.cat.SetLiveness("n2", catalog.LivenessFailed)
	got := names(t, f.do(t, "GET", "/v1/health/state/critical", ""), checkName)
	if !slices.Equal(got, []string{"n2/serfHealth", "n2/web-2-http"}) {
		t.Errorf("critical with n2 failed = %v", got)
	}
}

func TestStatus(t *testing.T) {
	f := newFixture(t)
	rec := f.do(t, "GET", "/v1/status/leader", "")
	checkReadHeaders(t, rec)
	// A quoted address, as Consul sends: consul/api decodes it into a string.
	if body := strings.TrimSpace(rec.Body.String()); body != `"10.0.0.1:7946"` {
		t.Errorf("leader = %s, want \"10.0.0.1:7946\"", body)
	}
	rec = f.do(t, "GET", "/v1/status/peers", "")
	checkReadHeaders(t, rec)
	// n1 (itself) and n2 (suspect, still a member); not n3 (failed) or n4 (left).
	if got := decode[[]string](t, rec); !slices.Equal(got, []string{"10.0.0.1:7946", "10.0.0.2:7946"}) {
		t.Errorf("peers = %v", got)
	}
}

func TestRumorMembers(t *testing.T) {
	f := newFixture(t)
	since := time.Date(2026, 11, 25, 7, 0, 0, 0, time.UTC)
	f.ag.members[1].Since = since
	f.ag.members[1].Coordinate = &Coordinate{Vec: []float64{0.001, 0, 0, 0, 0, 0, 0, 0}, Error: 0.5, Height: 1e-5}
	f.ag.members[1].RTT = 1500 * time.Microsecond
	rec := f.do(t, "GET", "/v1/rumor/members", "")
	checkReadHeaders(t, rec)
	got := decode[[]map[string]any](t, rec)
	if len(got) != 4 {
		t.Fatalf("%d members, want 4", len(got))
	}
	n2 := got[1]
	coord, _ := n2["Coordinate"].(map[string]any)
	if n2["Name"] != "n2" || n2["State"] != "suspect" || n2["Addr"] != "10.0.0.2" || n2["Port"] != 7946.0 ||
		n2["StateSince"] != "2026-11-25T07:00:00Z" || n2["RTT"] != "1.5ms" || n2["RTTSeconds"] != 0.0015 ||
		coord == nil || coord["Error"] != 0.5 || len(coord["Vec"].([]any)) != 8 {
		t.Errorf("n2 = %v", n2)
	}
	if n1 := got[0]; n1["Coordinate"] != nil || n1["StateSince"] != "" || n1["RTT"] != "" {
		t.Errorf("n1 without coordinate or time = %v", n1)
	}
	if got := names(t, f.do(t, "GET", "/v1/rumor/members?filter="+urlq(`State != "alive"`), ""),
		func(m *rumorMember) string { return m.Name + "/" + m.State }); !slices.Equal(got, []string{"n2/suspect", "n3/failed", "n4/left"}) {
		t.Errorf("filtered members = %v", got)
	}
}

func TestNear(t *testing.T) {
	f := newFixture(t)
	w := catalog.NewWriter("n3", 1)
	if _, err := f.cat.Apply(w.PutNode(catalogtest.Node("n3", "10.0.0.3")),
		w.PutService(catalogtest.Service("web-3", "web", 80))); err != nil {
		t.Fatal(err)
	}
	coords := fakeCoords{
		// n3 has no coordinate: it goes last.
		"n1": {"n1": 0, "n2": 5 * time.Millisecond},
		"n2": {"n2": 0, "n1": 5 * time.Millisecond},
	}
	h, err := New(Config{Catalog: f.cat, Agent: f.ag, Coordinates: coords})
	if err != nil {
		t.Fatal(err)
	}
	f.h = h
	svc := func(s *catalogService) string { return s.Node }
	entry := func(e *serviceEntry) string { return e.Node.Node }
	nd := func(n *node) string { return n.Node }
	for _, c := range []struct {
		target string
		got    func(*httptest.ResponseRecorder) []string
		want   []string
	}{
		{"/v1/catalog/service/web", func(r *httptest.ResponseRecorder) []string { return names(t, r, svc) }, []string{"n1", "n2", "n3"}},
		{"/v1/catalog/service/web?near=n2", func(r *httptest.ResponseRecorder) []string { return names(t, r, svc) }, []string{"n2", "n1", "n3"}},
		{"/v1/catalog/service/web?near=_agent", func(r *httptest.ResponseRecorder) []string { return names(t, r, svc) }, []string{"n1", "n2", "n3"}},
		{"/v1/catalog/service/web?near=n3", func(r *httptest.ResponseRecorder) []string { return names(t, r, svc) }, []string{"n1", "n2", "n3"}}, // no coordinate: order kept
		{"/v1/health/service/web?near=n2", func(r *httptest.ResponseRecorder) []string { return names(t, r, entry) }, []string{"n2", "n1", "n3"}},
		{"/v1/catalog/nodes?near=n2", func(r *httptest.ResponseRecorder) []string { return names(t, r, nd) }, []string{"n2", "n1", "n3"}},
		{"/v1/health/state/passing?near=n2", func(r *httptest.ResponseRecorder) []string { return names(t, r, checkName) },
			[]string{"n2/serfHealth", "n1/serfHealth", "n3/serfHealth"}},
		{"/v1/health/checks/web?near=n2", func(r *httptest.ResponseRecorder) []string { return names(t, r, checkName) }, []string{"n2/web-2-http"}},
	} {
		t.Run(c.target, func(t *testing.T) {
			if got := c.got(f.do(t, "GET", c.target, "")); !slices.Equal(got, c.want) {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
}

func urlq(s string) string {
	r := strings.NewReplacer(" ", "%20", `"`, "%22", "=", "%3D", "!", "%21", "&", "%26", "{", "%7B", "}", "%7D")
	return r.Replace(s)
}

func TestFilter(t *testing.T) {
	f, _ := newChecksFixture(t)
	count := func(t *testing.T, rec *httptest.ResponseRecorder) int {
		t.Helper()
		checkReadHeaders(t, rec)
		switch strings.TrimSpace(rec.Body.String())[0] {
		case '[':
			return len(decode[[]any](t, rec))
		default:
			return len(decode[map[string]any](t, rec))
		}
	}
	for _, c := range []struct {
		path, filter string
		want         int
	}{
		{"/v1/catalog/services", `ServiceTags contains "v2"`, 1},
		{"/v1/catalog/services", `NodeMeta.rack == "r1"`, 1},
		{"/v1/catalog/service/web", `ServicePort == 8080`, 1},
		{"/v1/catalog/service/web", `ServiceMeta.version == "1"`, 1},
		{"/v1/catalog/service/web", `ServiceMeta.missing == "1"`, 0},
		{"/v1/catalog/nodes", `Meta.rack == "r1"`, 1},
		{"/v1/catalog/nodes", `Node matches "^n"`, 2},
		{"/v1/health/service/web", `Service.Port == 80 and Node.Node == "n1"`, 1},
		{"/v1/health/service/web", `any Checks as c { c.Status == "critical" }`, 1},
		{"/v1/health/checks/web", `Status == "critical"`, 1},
		{"/v1/health/state/any", `CheckID == "serfHealth"`, 2},
		{"/v1/health/node/n2", `ServiceName == "web"`, 1},
		{"/v1/agent/services", `Port == 80`, 1},
		{"/v1/agent/checks", `Type == "ttl"`, 1},
		{"/v1/agent/members", `Status == 4`, 1},
	} {
		t.Run(c.path+"?filter="+c.filter, func(t *testing.T) {
			if got := count(t, f.do(t, "GET", c.path+"?filter="+urlq(c.filter), "")); got != c.want {
				t.Errorf("%d results, want %d", got, c.want)
			}
		})
	}
}

func TestFilterErrors(t *testing.T) {
	f, _ := newChecksFixture(t)
	for _, c := range []struct{ name, target, want string }{
		{"syntax", "/v1/catalog/nodes?filter=" + urlq(`Meta.rack ==`), `invalid filter "Meta.rack =="`},
		{"unknown field", "/v1/health/service/web?filter=" + urlq(`Service.Bogus == 1`), `invalid filter "Service.Bogus == 1"`},
		{"unknown field, empty answer", "/v1/catalog/service/nope?filter=" + urlq(`Bogus == 1`), "Bogus"},
		{"wrong type", "/v1/catalog/service/web?filter=" + urlq(`ServicePort == "abc"`), "invalid filter"},
		{"agent self", "/v1/agent/self?filter=" + urlq(`Name == "x"`), "not supported on /v1/agent/self"},
		{"datacenters", "/v1/catalog/datacenters?filter=" + urlq(`x == "y"`), "not supported"},
		{"status", "/v1/status/leader?filter=" + urlq(`x == "y"`), "not supported"},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := f.do(t, "GET", c.target, "")
			if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), c.want) {
				t.Errorf("%s: %d %q, want 400 containing %q", c.target, rec.Code, rec.Body, c.want)
			}
		})
	}
	// A bad filter is refused before the request blocks.
	idx := checkReadHeaders(t, f.do(t, "GET", "/v1/catalog/services", ""))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, "GET", fmt.Sprintf("/v1/catalog/services?index=%d&wait=10m&filter=%s", idx, urlq(`Nope == 1`)), nil)
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	if rec.Code != http.StatusBadRequest || ctx.Err() != nil {
		t.Errorf("blocking query with a bad filter: %d %q (ctx %v), want an immediate 400", rec.Code, rec.Body, ctx.Err())
	}
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

// TestExtraErrors covers the errors of every endpoint this file's handlers serve:
// malformed and oversized bodies, unknown fields, wrong methods, bad query values.
func TestExtraErrors(t *testing.T) {
	f, fc := newChecksFixture(t)
	big := `{"Name": "x", "TTL": "1s", "Notes": "` + strings.Repeat("a", MaxBodyBytes) + `"}`
	for _, c := range []struct {
		name, method, target, body string
		code                       int
		want, allow                string
	}{
		{"malformed JSON", "PUT", "/v1/agent/check/register", `{"Name": `, 400, "Request decode failed", ""},
		{"not an object", "PUT", "/v1/agent/check/register", `[1]`, 400, "Request decode failed", ""},
		{"null", "PUT", "/v1/agent/check/register", `null`, 400, "null", ""},
		{"empty body", "PUT", "/v1/agent/check/register", ``, 400, "the body is empty", ""},
		{"unknown field", "PUT", "/v1/agent/check/register", `{"Name": "x", "TTL": "1s", "Bogus": 1}`, 400, `unknown field "Bogus"`, ""},
		{"wrong type", "PUT", "/v1/agent/check/register", `{"Name": "x", "TTL": "1s", "ServiceID": 5}`, 400, "field ServiceID: got a JSON number, want a string", ""},
		{"bad duration", "PUT", "/v1/agent/check/register", `{"Name": "x", "TTL": "soon"}`, 400, `check.TTL: "soon" is not a duration`, ""},
		{"bad status", "PUT", "/v1/agent/check/register", `{"Name": "x", "TTL": "1s", "Status": "green"}`, 400, "check.Status", ""},
		{"namespace", "PUT", "/v1/agent/check/register", `{"Name": "x", "TTL": "1s", "Namespace": "team"}`, 400, "no namespaces", ""},
		{"duplicate key", "PUT", "/v1/agent/check/register", `{"Name": "x", "TTL": "1s", "ServiceID": "a", "service_id": "b"}`, 400, "given twice", ""},
		{"agent refuses", "PUT", "/v1/agent/check/register", `{"Name": "x", "TTL": "1s", "ServiceID": "nope"}`, 400, "Invalid check registration: check.ServiceID", ""},
		{"too large", "PUT", "/v1/agent/check/register", big, 413, "too large", ""},
		{"update too large", "PUT", "/v1/agent/check/update/ttl", `{"Status": "passing", "Output": "` + strings.Repeat("a", MaxBodyBytes) + `"}`, 413, "too large", ""},
		{"register GET", "GET", "/v1/agent/check/register", "", 405, "not allowed", "PUT"},
		{"deregister unknown", "PUT", "/v1/agent/check/deregister/nope", "", 404, `Unknown check ID "nope"`, ""},
		{"deregister maintenance", "PUT", "/v1/agent/check/deregister/_node_maintenance", "", 400, "maintenance", ""},
		{"deregister POST", "POST", "/v1/agent/check/deregister/ttl", "", 405, "not allowed", "PUT"},
		{"node PUT", "PUT", "/v1/catalog/node/n1", "", 405, "not allowed", "GET, HEAD"},
		{"datacenters DELETE", "DELETE", "/v1/catalog/datacenters", "", 405, "not allowed", "GET, HEAD"},
		{"health node POST", "POST", "/v1/health/node/n1", "", 405, "not allowed", "GET, HEAD"},
		{"health checks PUT", "PUT", "/v1/health/checks/web", "", 405, "not allowed", "GET, HEAD"},
		{"health state PUT", "PUT", "/v1/health/state/any", "", 405, "not allowed", "GET, HEAD"},
		{"leader PUT", "PUT", "/v1/status/leader", "", 405, "not allowed", "GET, HEAD"},
		{"members PUT", "PUT", "/v1/rumor/members", "", 405, "not allowed", "GET, HEAD"},
		{"bad state", "GET", "/v1/health/state/green", "", 400, `invalid state "green"`, ""},
		{"bad index", "GET", "/v1/health/state/any?index=x", "", 400, "invalid index", ""},
		{"bad wait", "GET", "/v1/catalog/node/n1?index=1&wait=forever", "", 400, "invalid wait", ""},
		{"bad index node", "GET", "/v1/health/node/n1?index=-5", "", 400, "invalid index", ""},
		{"bad wait checks", "GET", "/v1/health/checks/web?wait=5", "", 400, "invalid wait", ""},
		{"bad node-meta", "GET", "/v1/health/state/any?node-meta=x", "", 400, "invalid node-meta", ""},
		{"other dc", "GET", "/v1/catalog/node/n1?dc=dc9", "", 500, "No path to datacenter", ""},
		{"other dc members", "GET", "/v1/rumor/members?dc=dc9", "", 500, "No path to datacenter", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := f.do(t, c.method, c.target, c.body)
			if rec.Code != c.code || !strings.Contains(rec.Body.String(), c.want) {
				t.Errorf("%s %s: %d %q, want %d containing %q", c.method, c.target, rec.Code, rec.Body, c.code, c.want)
			}
			if c.allow != "" && rec.Header().Get("Allow") != c.allow {
				t.Errorf("Allow = %q, want %q", rec.Header().Get("Allow"), c.allow)
			}
		})
	}
	if len(fc.defs) != 0 {
		t.Errorf("a refused registration reached the agent: %+v", fc.defs)
	}
	if got := fc.took(); len(got) != 0 {
		t.Errorf("refused requests changed state: %v", got)
	}
}

func TestOutOfScope(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct{ method, path, want string }{
		{"GET", "/v1/kv/foo", "key/value store"},
		{"PUT", "/v1/kv/foo", "key/value store"},
		{"PUT", "/v1/session/create", "sessions"},
		{"GET", "/v1/acl/tokens", "ACLs"},
		{"GET", "/v1/connect/ca/roots", "Connect"},
		{"GET", "/v1/agent/connect/ca/roots", "Connect"},
		{"GET", "/v1/query", "prepared queries"},
		{"PUT", "/v1/txn", "transactions"},
		{"GET", "/v1/snapshot", "snapshots"},
		{"GET", "/v1/config/proxy-defaults", "config entries"},
	} {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			rec := f.do(t, c.method, c.path, "")
			if rec.Code != http.StatusNotImplemented || !strings.Contains(rec.Body.String(), "rumor does not implement") ||
				!strings.Contains(rec.Body.String(), c.want) {
				t.Errorf("%d %q, want 501 naming %q", rec.Code, rec.Body, c.want)
			}
		})
	}
}

func TestToken(t *testing.T) {
	if _, err := New(Config{Catalog: newFixture(t).cat, Agent: newFixture(t).ag, TokenReads: true}); err == nil {
		t.Error("TokenReads without Token: no error")
	}
	const reg = `{"Name": "x"}`
	for _, c := range []struct {
		name       string
		reads      bool
		method     string
		target     string
		hdr, value string
		code       int
		want       string
	}{
		{"write without token", false, "PUT", "/v1/agent/service/register", "", "", 403, "Permission denied: this rumor agent requires a token for writes"},
		{"write, wrong token", false, "PUT", "/v1/agent/service/register", "X-Consul-Token", "guess", 403, "not this agent's token"},
		{"write, token prefix", false, "PUT", "/v1/agent/service/register", "X-Consul-Token", "s3cre", 403, "not this agent's token"},
		{"write, basic auth", false, "PUT", "/v1/agent/service/register", "Authorization", "Basic czNjcmV0", 403, "requires a token"},
		{"write, empty bearer", false, "PUT", "/v1/agent/service/register", "Authorization", "Bearer ", 403, "requires a token"},
		{"write, X-Consul-Token", false, "PUT", "/v1/agent/service/register", "X-Consul-Token", "s3cret", 200, ""},
		{"write, bearer", false, "PUT", "/v1/agent/service/register", "Authorization", "Bearer s3cret", 200, ""},
		{"write, bearer lower case", false, "PUT", "/v1/agent/service/register", "Authorization", "bearer s3cret", 200, ""},
		{"deregister without token", false, "PUT", "/v1/agent/service/deregister/web-1", "", "", 403, "requires a token"},
		{"read without token", false, "GET", "/v1/catalog/services", "", "", 200, ""},
		{"read, reads protected", true, "GET", "/v1/catalog/services", "", "", 403, "requires a token for every request"},
		{"read, reads protected, wrong", true, "GET", "/v1/agent/self", "X-Consul-Token", "nope", 403, "not this agent's token"},
		{"read, reads protected, token", true, "GET", "/v1/catalog/services", "X-Consul-Token", "s3cret", 200, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			h, err := New(Config{Catalog: f.cat, Agent: f.ag, Token: "s3cret", TokenReads: c.reads})
			if err != nil {
				t.Fatal(err)
			}
			before := len(f.ag.LocalServices())
			req := httptest.NewRequestWithContext(t.Context(), c.method, c.target, strings.NewReader(reg))
			if c.hdr != "" {
				req.Header.Set(c.hdr, c.value)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != c.code || !strings.Contains(rec.Body.String(), c.want) {
				t.Errorf("%d %q, want %d containing %q", rec.Code, rec.Body, c.code, c.want)
			}
			if after := len(f.ag.LocalServices()); c.code == 403 && after != before {
				t.Errorf("a refused write changed state: %d services, had %d", after, before)
			}
		})
	}
}

// TestBlockingExtra checks that the new reads block on their topic and wake on a
// change to it.
func TestBlockingExtra(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		name, target string
		change       func()
	}{
		{"catalog node", "/v1/catalog/node/n2", func() { f.cat.SetLiveness("n2", catalog.LivenessSuspect) }},
		{"catalog node appears", "/v1/catalog/node/n9", func() {
			w := catalog.NewWriter("n9", 1)
			if _, err := f.cat.Apply(w.PutNode(catalogtest.Node("n9", "10.0.0.9"))); err != nil {
				t.Error(err)
			}
		}},
		{"health node", "/v1/health/node/n2", func() { f.cat.SetLiveness("n2", catalog.LivenessFailed) }},
		{"health checks", "/v1/health/checks/web", func() { f.register(t, "web-7", "web") }},
		{"health state", "/v1/health/state/critical", func() { f.cat.SetLiveness("n2", catalog.LivenessAlive) }},
		{"rumor members", "/v1/rumor/members", func() { f.cat.SetLiveness("n2", catalog.LivenessLeft) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			idx := checkReadHeaders(t, f.do(t, "GET", c.target, ""))
			done := make(chan *httptest.ResponseRecorder, 1)
			go func() {
				req := httptest.NewRequest("GET", fmt.Sprintf("%s?index=%d&wait=30s", c.target, idx), nil)
				rec := httptest.NewRecorder()
				f.h.ServeHTTP(rec, req)
				done <- rec
			}()
			c.change()
			select {
			case rec := <-done:
				if got := checkReadHeaders(t, rec); got <= idx {
					t.Errorf("index after wake = %d, want > %d", got, idx)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("blocking query did not wake")
			}
		})
	}
}
