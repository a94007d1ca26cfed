package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
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

// errorCase is a request and the error that must answer it: status, a substring of
// the plain-text body, and the Allow header for a 405.
type errorCase struct {
	name, method, target, body string
	code                       int
	want, allow                string
}

// checkErrors runs each case against f's handler.
func (f *fixture) checkErrors(t *testing.T, cases []errorCase) {
	t.Helper()
	for _, c := range cases {
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
}

// TestErrors covers the errors of the Must endpoints: bodies, fields, methods,
// query values.
func TestErrors(t *testing.T) {
	f := newFixture(t)
	big := `{"Name": "x", "Meta": {"k": "` + strings.Repeat("a", MaxBodyBytes) + `"}}`
	f.checkErrors(t, []errorCase{
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
	})
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

// TestErrorsWithChecks covers the errors of the endpoints that need Checks, and of
// the reads beyond the Must set: malformed and oversized bodies, unknown fields,
// wrong methods, bad query values.
func TestErrorsWithChecks(t *testing.T) {
	f, fc := newChecksFixture(t)
	big := `{"Name": "x", "TTL": "1s", "Notes": "` + strings.Repeat("a", MaxBodyBytes) + `"}`
	f.checkErrors(t, []errorCase{
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
	})
	if len(fc.defs) != 0 {
		t.Errorf("a refused registration reached the agent: %+v", fc.defs)
	}
	if got := fc.took(); len(got) != 0 {
		t.Errorf("refused requests changed state: %v", got)
	}
}

// TestBlockingReads checks that the reads beyond the Must set block on their topic
// and wake on a change to it.
func TestBlockingReads(t *testing.T) {
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
