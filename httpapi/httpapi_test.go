package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/catalog/catalogtest"
	"github.com/rumor-sd/rumor/definition"
)

// fakeAgent is an Agent over a real catalog: registrations become records of origin
// "n1" applied directly.
type fakeAgent struct {
	mu      sync.Mutex
	cat     *catalog.Catalog
	w       *catalog.Writer
	node    catalog.Node
	members []Member
	local   map[string]catalog.Service
	regs    []definition.Service
	failErr error // returned by RegisterService when set
}

func newFakeAgent(cat *catalog.Catalog) *fakeAgent {
	a := &fakeAgent{cat: cat, w: catalog.NewWriter("n1", 1), local: map[string]catalog.Service{},
		node: *catalogtest.Node("n1", "10.0.0.1")}
	a.node.Meta = map[string]string{"rack": "r1"}
	a.members = []Member{
		{Name: "n1", Addr: netip.MustParseAddrPort("10.0.0.1:7946"), State: catalog.LivenessAlive},
		{Name: "n2", Addr: netip.MustParseAddrPort("10.0.0.2:7946"), State: catalog.LivenessSuspect},
		{Name: "n3", Addr: netip.MustParseAddrPort("10.0.0.3:7946"), State: catalog.LivenessFailed},
		{Name: "n4", Addr: netip.MustParseAddrPort("10.0.0.4:7946"), State: catalog.LivenessLeft},
	}
	if _, err := cat.Apply(a.w.PutNode(&a.node)); err != nil {
		panic(err)
	}
	return a
}

func (a *fakeAgent) Self() Self {
	return Self{Node: a.node, GossipAddr: netip.MustParseAddrPort("10.0.0.1:7946"), Version: "test"}
}

func (a *fakeAgent) Members() []Member { return a.members }

func (a *fakeAgent) LocalServices() []catalog.Service {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []catalog.Service
	for _, s := range a.local {
		out = append(out, s)
	}
	return out
}

func (a *fakeAgent) RegisterService(_ context.Context, reg definition.Service) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.regs = append(a.regs, reg)
	if a.failErr != nil {
		return a.failErr
	}
	reg = reg.Clone()
	reg.Normalize()
	if err := reg.Validate(definition.Policy{EnableScriptChecks: true}); err != nil {
		return err
	}
	s := reg.Record()
	if err := s.Validate(); err != nil {
		return err
	}
	a.local[s.ID] = s
	_, err := a.cat.Apply(a.w.PutService(&s))
	return err
}

func (a *fakeAgent) DeregisterService(_ context.Context, id string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.local[id]; !ok {
		return fmt.Errorf("no %q: %w", id, catalog.ErrNotFound)
	}
	delete(a.local, id)
	_, err := a.cat.Apply(a.w.Delete(catalog.Key{Kind: catalog.KindService, ID: id}))
	return err
}

// svcDef is the definition of a service record, for registering it through Agent.
func svcDef(s catalog.Service) definition.Service {
	d := definition.Service{ID: s.ID, Name: s.Name, Tags: s.Tags, Address: s.Address, Port: s.Port, Meta: s.Meta,
		Kind: s.Kind, Weights: s.Weights}
	for k, a := range s.TaggedAddresses {
		if d.TaggedAddresses == nil {
			d.TaggedAddresses = map[string]definition.ServiceAddress{}
		}
		d.TaggedAddresses[k] = definition.ServiceAddress{Address: a}
	}
	return d
}

// fixture is a handler over a catalog holding n1 (the local node) and n2 (a peer)
// with a few services and checks.
type fixture struct {
	h   *Handler
	cat *catalog.Catalog
	ag  *fakeAgent
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	cat, _ := catalogtest.New(t, catalog.Config{})
	ag := newFakeAgent(cat)
	for _, s := range []catalog.Service{
		{ID: "web-1", Name: "web", Port: 80, Tags: []string{"v1", "primary"}, Weights: catalog.DefaultWeights,
			TaggedAddresses: map[string]string{"lan": "10.0.0.1"}, Meta: map[string]string{"version": "1"}},
	} {
		if err := ag.RegisterService(t.Context(), svcDef(s)); err != nil {
			t.Fatal(err)
		}
	}
	w := catalog.NewWriter("n2", 1)
	if _, err := cat.Apply(
		w.PutNode(catalogtest.Node("n2", "10.0.0.2")),
		w.PutService(catalogtest.Service("web-2", "web", 8080, "v2")),
		w.PutCheck(&catalog.Check{ID: "web-2-http", Name: "HTTP", ServiceID: "web-2", Status: catalog.StatusCritical,
			Type: "http", Interval: 10 * time.Second, Output: "connection refused"}),
		w.PutService(catalogtest.Service("db", "db", 5432)),
	); err != nil {
		t.Fatal(err)
	}
	h, err := New(Config{Catalog: cat, Agent: ag})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{h: h, cat: cat, ag: ag}
}

func (f *fixture) do(t *testing.T, method, target, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequestWithContext(t.Context(), method, target, strings.NewReader(body))
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	return rec
}

func decode[T any](t *testing.T, rec *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("decode %s: %v", rec.Body, err)
	}
	return v
}

func checkReadHeaders(t *testing.T, rec *httptest.ResponseRecorder) uint64 {
	t.Helper()
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	idx, err := strconv.ParseUint(rec.Header().Get("X-Consul-Index"), 10, 64)
	if err != nil || idx == 0 {
		t.Errorf("X-Consul-Index = %q, want a positive number", rec.Header().Get("X-Consul-Index"))
	}
	if rec.Header().Get("X-Consul-KnownLeader") != "true" || rec.Header().Get("X-Consul-LastContact") != "0" {
		t.Errorf("leader headers: %v", rec.Header())
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	return idx
}

func TestAgentSelf(t *testing.T) {
	f := newFixture(t)
	rec := f.do(t, "GET", "/v1/agent/self", "")
	checkReadHeaders(t, rec)
	// consul/api decodes the answer as map[string]map[string]any.
	got := decode[map[string]map[string]any](t, rec)
	cfg := got["Config"]
	if cfg["Datacenter"] != "dc1" || cfg["NodeName"] != "n1" || cfg["NodeID"] != catalogtest.NodeID("n1") {
		t.Errorf("Config = %v", cfg)
	}
	if m := got["Member"]; m["Name"] != "n1" || m["Addr"] != "10.0.0.1" || m["Port"] != 7946.0 || m["Status"] != 1.0 {
		t.Errorf("Member = %v", m)
	}
	if got["Meta"]["rack"] != "r1" {
		t.Errorf("Meta = %v", got["Meta"])
	}
}

func TestAgentMembers(t *testing.T) {
	f := newFixture(t)
	rec := f.do(t, "GET", "/v1/agent/members", "")
	checkReadHeaders(t, rec)
	got := decode[[]agentMember](t, rec)
	want := []struct {
		name   string
		status int
	}{{"n1", 1}, {"n2", 1}, {"n3", 4}, {"n4", 3}} // suspect shows as alive, as in Consul
	if len(got) != len(want) {
		t.Fatalf("%d members, want %d", len(got), len(want))
	}
	for i, w := range want {
		if got[i].Name != w.name || got[i].Status != w.status {
			t.Errorf("member %d = %s status %d, want %s status %d", i, got[i].Name, got[i].Status, w.name, w.status)
		}
	}
	if got[1].Tags["id"] != catalogtest.NodeID("n2") || got[1].Tags["dc"] != "dc1" || got[1].Port != 7946 {
		t.Errorf("n2 = %+v", got[1])
	}
	if _, ok := got[2].Tags["id"]; ok {
		t.Errorf("n3 has no node record but tags %v", got[2].Tags)
	}
}

func TestCatalogServices(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		target string
		want   map[string][]string
	}{
		{"/v1/catalog/services", map[string][]string{"db": {}, "web": {"primary", "v1", "v2"}}},
		{"/v1/catalog/services?node-meta=rack:r1", map[string][]string{"web": {"primary", "v1"}}},
		{"/v1/catalog/services?stale&cached&consistent&dc=dc1", map[string][]string{"db": {}, "web": {"primary", "v1", "v2"}}},
	} {
		t.Run(c.target, func(t *testing.T) {
			rec := f.do(t, "GET", c.target, "")
			checkReadHeaders(t, rec)
			got := decode[map[string][]string](t, rec)
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
}

func TestCatalogService(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		target string
		want   []string // node/service ID
	}{
		{"/v1/catalog/service/web", []string{"n1/web-1", "n2/web-2"}},
		{"/v1/catalog/service/web?tag=v1", []string{"n1/web-1"}},
		{"/v1/catalog/service/web?tag=v1&tag=primary", []string{"n1/web-1"}},
		{"/v1/catalog/service/web?tag=v1&tag=v2", nil},
		{"/v1/catalog/service/nope", nil},
	} {
		t.Run(c.target, func(t *testing.T) {
			rec := f.do(t, "GET", c.target, "")
			checkReadHeaders(t, rec)
			if strings.TrimSpace(rec.Body.String()) == "null" {
				t.Fatal("null body, want a list")
			}
			got := decode[[]catalogService](t, rec)
			var ids []string
			for _, s := range got {
				ids = append(ids, s.Node+"/"+s.ServiceID)
			}
			if !slices.Equal(ids, c.want) {
				t.Errorf("got %v, want %v", ids, c.want)
			}
		})
	}
	rec := f.do(t, "GET", "/v1/catalog/service/web?tag=v1", "")
	s := decode[[]catalogService](t, rec)[0]
	if s.ID != catalogtest.NodeID("n1") || s.Address != "10.0.0.1" || s.Datacenter != "dc1" || s.ServiceName != "web" ||
		s.ServicePort != 80 || s.ServiceMeta["version"] != "1" || s.NodeMeta["rack"] != "r1" ||
		s.ServiceTaggedAddresses["lan"] != (serviceAddress{Address: "10.0.0.1", Port: 80}) ||
		s.ServiceWeights != (weights{Passing: 1, Warning: 1}) {
		t.Errorf("entry = %+v", s)
	}
}

func TestHealthService(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		target string
		want   []string
	}{
		{"/v1/health/service/web", []string{"n1/web-1", "n2/web-2"}},
		{"/v1/health/service/web?passing", []string{"n1/web-1"}},
		{"/v1/health/service/web?passing=1", []string{"n1/web-1"}},
		{"/v1/health/service/web?passing=false", []string{"n1/web-1", "n2/web-2"}},
		{"/v1/health/service/web?tag=v2", []string{"n2/web-2"}},
		{"/v1/health/service/web?tag=v2&passing", nil},
		{"/v1/health/service/nope?passing", nil},
	} {
		t.Run(c.target, func(t *testing.T) {
			rec := f.do(t, "GET", c.target, "")
			checkReadHeaders(t, rec)
			got := decode[[]serviceEntry](t, rec)
			var ids []string
			for _, e := range got {
				ids = append(ids, e.Node.Node+"/"+e.Service.ID)
			}
			if !slices.Equal(ids, c.want) {
				t.Errorf("got %v, want %v", ids, c.want)
			}
		})
	}
	rec := f.do(t, "GET", "/v1/health/service/web?tag=v2", "")
	e := decode[[]serviceEntry](t, rec)[0]
	if len(e.Checks) != 2 || e.Checks[0].CheckID != "serfHealth" || e.Checks[0].Status != "passing" ||
		e.Checks[1].CheckID != "web-2-http" || e.Checks[1].Status != "critical" || e.Checks[1].ServiceName != "web" ||
		e.Checks[1].Definition.Interval != "10s" || e.Checks[0].Definition.Interval != "0s" || e.Checks[1].Node != "n2" {
		t.Errorf("checks = %+v", e.Checks)
	}
	if e.Node.ID != catalogtest.NodeID("n2") || e.Service.Service != "web" || e.Service.Port != 8080 {
		t.Errorf("entry = %+v", e)
	}
	// A failed node's instances are critical through serfHealth.
	f.cat.SetLiveness("n1", catalog.LivenessFailed)
	rec = f.do(t, "GET", "/v1/health/service/web?passing", "")
	if got := decode[[]serviceEntry](t, rec); len(got) != 0 {
		t.Errorf("passing instances with n1 failed: %d, want 0", len(got))
	}
}

func TestCatalogNodes(t *testing.T) {
	f := newFixture(t)
	rec := f.do(t, "GET", "/v1/catalog/nodes", "")
	checkReadHeaders(t, rec)
	got := decode[[]node](t, rec)
	if len(got) != 2 || got[0].Node != "n1" || got[1].Node != "n2" || got[1].ID != catalogtest.NodeID("n2") || got[0].Meta["rack"] != "r1" {
		t.Errorf("nodes = %+v", got)
	}
	rec = f.do(t, "GET", "/v1/catalog/nodes?node-meta=rack:r1", "")
	if got := decode[[]node](t, rec); len(got) != 1 {
		t.Errorf("nodes with rack r1 = %+v", got)
	}
}

func TestAgentServicesAndRegistration(t *testing.T) {
	f := newFixture(t)
	rec := f.do(t, "PUT", "/v1/agent/service/register", `{
		"Name": "api", "ID": "api-1", "Tags": ["a"], "Port": 9000, "Address": "10.0.0.1",
		"Meta": {"k": "v"}, "Weights": {"Passing": 5, "Warning": 2},
		"TaggedAddresses": {"wan": {"Address": "1.2.3.4", "Port": 9000}},
		"EnableTagOverride": true, "Kind": "",
		"Check": {"CheckID": "api-ttl", "TTL": "30s", "Status": "passing"},
		"Checks": [{"HTTP": "http://127.0.0.1:9000/health", "Interval": "10s", "Timeout": "1s", "Header": {"X-A": ["b"]}}],
		"Connect": null, "Proxy": null, "Namespace": ""
	}`)
	if rec.Code != http.StatusOK {
		t.Fatalf("register: %d %s", rec.Code, rec.Body)
	}
	reg := f.ag.regs[len(f.ag.regs)-1]
	s := reg
	if s.ID != "api-1" || s.Name != "api" || s.Port != 9000 || s.Weights != (catalog.Weights{Passing: 5, Warning: 2}) ||
		s.TaggedAddresses["wan"].Address != "1.2.3.4" || s.Meta["k"] != "v" {
		t.Errorf("service = %+v", s)
	}
	if reg.Check == nil || reg.Check.ID != "api-ttl" || reg.Check.TTL != 30*time.Second || reg.Check.Status != catalog.StatusPassing {
		t.Errorf("check = %+v", reg.Check)
	}
	if len(reg.Checks) != 1 || reg.Checks[0].Interval != 10*time.Second ||
		reg.Checks[0].Header["X-A"][0] != "b" {
		t.Errorf("checks = %+v", reg.Checks)
	}

	// Consul's config-file spelling: lower case and snake_case, "args", "id".
	rec = f.do(t, "PUT", "/v1/agent/service/register", `{"name": "cron", "port": 1, "enable_tag_override": false,
		"checks": [{"id": "c1", "args": ["/bin/true"], "interval": "1m", "deregister_critical_service_after": "90m"}]}`)
	if rec.Code != http.StatusOK {
		t.Fatalf("snake_case register: %d %s", rec.Code, rec.Body)
	}
	reg = f.ag.regs[len(f.ag.regs)-1]
	if reg.Name != "cron" || len(reg.Checks) != 1 || reg.Checks[0].ID != "c1" || reg.Checks[0].ScriptArgs[0] != "/bin/true" ||
		reg.Checks[0].DeregisterCriticalServiceAfter != 90*time.Minute {
		t.Errorf("snake_case registration = %+v", reg)
	}

	rec = f.do(t, "GET", "/v1/agent/services", "")
	checkReadHeaders(t, rec)
	got := decode[map[string]agentService](t, rec)
	if len(got) != 3 || got["api-1"].Service != "api" || got["api-1"].Weights.Passing != 5 || got["web-1"].Port != 80 || got["api-1"].Datacenter != "dc1" {
		t.Errorf("agent services = %+v", got)
	}

	rec = f.do(t, "PUT", "/v1/agent/service/deregister/api-1", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("deregister: %d %s", rec.Code, rec.Body)
	}
	if got := decode[map[string]agentService](t, f.do(t, "GET", "/v1/agent/services", "")); len(got) != 2 {
		t.Errorf("after deregistration: %v", got)
	}
}

func TestErrors(t *testing.T) {
	f := newFixture(t)
	big := `{"Name": "x", "Meta": {"k": "` + strings.Repeat("a", MaxBodyBytes) + `"}}`
	for _, c := range []struct {
		name, method, target, body string
		code                       int
		want                       string // in the body
		allow                      string
	}{
		{"unknown field", "PUT", "/v1/agent/service/register", `{"Name": "x", "Bogus": 1}`, 400, `unknown field "Bogus"`, ""},
		{"unknown check field", "PUT", "/v1/agent/service/register", `{"Name": "x", "Check": {"TTL": "1s", "Nope": 1}}`, 400, `unknown field "Nope"`, ""},
		{"malformed JSON", "PUT", "/v1/agent/service/register", `{"Name": `, 400, "Request decode failed", ""},
		{"trailing garbage", "PUT", "/v1/agent/service/register", `{"Name": "x"} {`, 400, "Request decode failed", ""},
		{"wrong type", "PUT", "/v1/agent/service/register", `{"Name": "x", "Port": "80"}`, 400, "field Port: got a JSON string, want a number", ""},
		{"empty body", "PUT", "/v1/agent/service/register", ``, 400, "the body is empty", ""},
		{"bad duration", "PUT", "/v1/agent/service/register", `{"Name": "x", "Check": {"TTL": "soon"}}`, 400, `Check.TTL: "soon" is not a duration`, ""},
		{"bad check status", "PUT", "/v1/agent/service/register", `{"Name": "x", "Checks": [{"TTL": "1s", "Status": "maintenance"}]}`, 400, "Checks[0].Status", ""},
		{"connect", "PUT", "/v1/agent/service/register", `{"Name": "x", "Connect": {"Native": true}}`, 400, "does not do Connect", ""},
		{"namespace", "PUT", "/v1/agent/service/register", `{"Name": "x", "Namespace": "team"}`, 400, "no namespaces", ""},
		{"tagged port", "PUT", "/v1/agent/service/register", `{"Name": "x", "Port": 80, "TaggedAddresses": {"wan": {"Address": "1.2.3.4", "Port": 81}}}`, 400, "one port per service", ""},
		{"duplicate key", "PUT", "/v1/agent/service/register", `{"Name": "x", "name": "y"}`, 400, "given twice", ""},
		{"invalid service", "PUT", "/v1/agent/service/register", `{"Name": "x", "Port": 70000}`, 400, "Invalid service registration", ""},
		{"too large", "PUT", "/v1/agent/service/register", big, 413, "too large", ""},
		{"deregister unknown", "PUT", "/v1/agent/service/deregister/nope", "", 404, `Unknown service ID "nope"`, ""},
		{"register GET", "GET", "/v1/agent/service/register", "", 405, "not allowed", "PUT"},
		{"services POST", "POST", "/v1/catalog/services", "", 405, "not allowed", "GET, HEAD"},
		{"deregister GET", "GET", "/v1/agent/service/deregister/x", "", 405, "not allowed", "PUT"},
		{"bad index", "GET", "/v1/catalog/services?index=abc", "", 400, "invalid index", ""},
		{"negative index", "GET", "/v1/health/service/web?index=-1", "", 400, "invalid index", ""},
		{"bad wait", "GET", "/v1/catalog/service/web?index=1&wait=10", "", 400, "invalid wait", ""},
		{"negative wait", "GET", "/v1/catalog/services?wait=-1s", "", 400, "invalid wait", ""},
		{"bad passing", "GET", "/v1/health/service/web?passing=maybe", "", 400, "invalid passing", ""},
		{"bad node-meta", "GET", "/v1/catalog/nodes?node-meta=rack", "", 400, "invalid node-meta", ""},
		{"bad filter", "GET", "/v1/health/service/web?filter=Service.Nope==80", "", 400, "invalid filter", ""},
		{"other dc", "GET", "/v1/catalog/services?dc=dc2", "", 500, "No path to datacenter", ""},
		{"unknown endpoint", "GET", "/v1/agent/nope", "", 404, "no such endpoint", ""},
		{"kv", "GET", "/v1/kv/foo", "", 501, "key/value store", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := f.do(t, c.method, c.target, c.body)
			if rec.Code != c.code || !strings.Contains(rec.Body.String(), c.want) {
				t.Errorf("%s %s: %d %q, want %d containing %q", c.method, c.target, rec.Code, rec.Body, c.code, c.want)
			}
			if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("Content-Type = %q, want plain text", ct)
			}
			if c.allow != "" && rec.Header().Get("Allow") != c.allow {
				t.Errorf("Allow = %q, want %q", rec.Header().Get("Allow"), c.allow)
			}
		})
	}
	f.ag.failErr = fmt.Errorf("disk full")
	rec := f.do(t, "PUT", "/v1/agent/service/register", `{"Name": "x"}`)
	if rec.Code != 500 || !strings.Contains(rec.Body.String(), "disk full") {
		t.Errorf("agent failure: %d %q, want 500 naming it", rec.Code, rec.Body)
	}
}

func TestPretty(t *testing.T) {
	f := newFixture(t)
	rec := f.do(t, "GET", "/v1/catalog/services?pretty", "")
	if !strings.Contains(rec.Body.String(), "\n    \"db\"") {
		t.Errorf("pretty body = %q", rec.Body)
	}
}

// TestBlockingQueries checks that ?index blocks until the topic moves, and only its
// own topic, and that ?wait bounds the wait.
func TestBlockingQueries(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		name, target string
		change       func()
	}{
		{"catalog services", "/v1/catalog/services", func() { f.register(t, "new", "new") }},
		{"catalog service", "/v1/catalog/service/web", func() { f.register(t, "web-9", "web") }},
		{"health service", "/v1/health/service/web", func() { f.cat.SetLiveness("n2", catalog.LivenessSuspect) }},
		{"catalog nodes", "/v1/catalog/nodes", func() { f.cat.SetLiveness("n2", catalog.LivenessFailed) }},
		{"agent services", "/v1/agent/services", func() { f.register(t, "local-2", "other") }},
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
			// A change to another topic must not wake it.
			f.register(t, "unrelated-"+strconv.FormatUint(idx, 10), "unrelated-"+strconv.FormatUint(idx, 10))
			if c.name == "catalog services" || c.name == "agent services" {
				// those topics do move with any new service: skip the negative check
			} else {
				select {
				case rec := <-done:
					t.Fatalf("woke on an unrelated change: %d %s", rec.Code, rec.Body)
				case <-time.After(50 * time.Millisecond):
				}
			}
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
	t.Run("wait ends", func(t *testing.T) {
		idx := checkReadHeaders(t, f.do(t, "GET", "/v1/catalog/service/db", ""))
		start := time.Now()
		rec := f.do(t, "GET", fmt.Sprintf("/v1/catalog/service/db?index=%d&wait=50ms", idx), "")
		if got := checkReadHeaders(t, rec); got != idx {
			t.Errorf("index after timeout = %d, want %d", got, idx)
		}
		if el := time.Since(start); el < 50*time.Millisecond || el > 5*time.Second {
			t.Errorf("waited %s, want about 50ms (+ jitter)", el)
		}
	})
	t.Run("client ahead answers at once", func(t *testing.T) {
		rec := f.do(t, "GET", "/v1/catalog/services?index=999999&wait=10m", "")
		if got := checkReadHeaders(t, rec); got >= 999999 {
			t.Errorf("index = %d, want the catalog's own", got)
		}
	})
}

func (f *fixture) register(t *testing.T, id, name string) {
	t.Helper()
	if err := f.ag.RegisterService(t.Context(), svcDef(catalog.Service{ID: id, Name: name, Weights: catalog.DefaultWeights})); err != nil {
		t.Fatal(err)
	}
}
