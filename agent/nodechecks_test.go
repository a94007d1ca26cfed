package agent

import (
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/serf/coordinate"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/catalog/catalogtest"
	"github.com/rumor-sd/rumor/gossip"
	"github.com/rumor-sd/rumor/internal/testkit"
)

// healthNode returns the check IDs of GET /v1/health/node/<name> with their status.
func (c *api) healthNode(name string) map[string]string {
	c.t.Helper()
	var out []map[string]any
	if err := json.Unmarshal([]byte(c.must("GET", "/v1/health/node/"+name, "")), &out); err != nil {
		c.t.Fatal(err)
	}
	m := map[string]string{}
	for _, hc := range out {
		m[hc["CheckID"].(string)] = hc["Status"].(string)
	}
	return m
}

func TestNodeCheckRegister(t *testing.T) {
	dir := t.TempDir()
	a := startAgent(t, testConfig(t, "n1", dir, nil))
	c := newAPI(t, a)
	c.must("PUT", "/v1/agent/service/register", `{"Name": "web", "Port": 80}`)
	if n := c.passing("web"); n != 1 {
		t.Fatalf("%d passing web instances, want 1", n)
	}
	// A standalone node check: critical until its first heartbeat, as in Consul, and
	// a node check that is not passing takes every instance of the node with it.
	c.must("PUT", "/v1/agent/check/register", `{"Name": "disk", "TTL": "1h", "Notes": "free space"}`)
	ch := c.checks()["disk"]
	if ch["ServiceID"] != "" || ch["Status"] != "critical" || ch["Notes"] != "free space" || ch["Type"] != "ttl" {
		t.Errorf("node check = %v", ch)
	}
	if got := c.healthNode("n1"); got["disk"] != "critical" || got["serfHealth"] != "passing" {
		t.Errorf("health of n1 = %v", got)
	}
	if n := c.passing("web"); n != 0 {
		t.Errorf("%d passing web instances with a critical node check, want 0", n)
	}
	c.must("PUT", "/v1/agent/check/pass/disk", "")
	testkit.Eventually(t, 10*time.Second, "disk passing", func() bool { return c.status("disk") == "passing" })
	if n := c.passing("web"); n != 1 {
		t.Errorf("%d passing web instances with the node check passing, want 1", n)
	}

	// A check of a service, registered on its own.
	c.must("PUT", "/v1/agent/check/register", `{"ID": "web-ttl", "Name": "web alive", "ServiceID": "web", "TTL": "1h", "Status": "warning"}`)
	if ch := c.checks()["web-ttl"]; ch["ServiceID"] != "web" || ch["ServiceName"] != "web" || ch["Status"] != "warning" {
		t.Errorf("service check = %v", ch)
	}

	// Both survive a restart, at their last status.
	if err := a.Shutdown(); err != nil {
		t.Fatal(err)
	}
	a = startAgent(t, testConfig(t, "n1", dir, nil))
	c = newAPI(t, a)
	ch2 := c.checks()
	if ch2["disk"]["Status"] != "passing" || ch2["disk"]["Notes"] != "free space" || ch2["web-ttl"]["ServiceID"] != "web" {
		t.Fatalf("checks after restart = %v", ch2)
	}
	// And they still run: heartbeats are taken.
	c.must("PUT", "/v1/agent/check/fail/disk", "")
	testkit.Eventually(t, 10*time.Second, "disk critical", func() bool { return c.status("disk") == "critical" })

	// Deregistration removes them, persistently.
	c.must("PUT", "/v1/agent/check/deregister/disk", "")
	c.must("PUT", "/v1/agent/check/deregister/web-ttl", "")
	if got := c.checks(); len(got) != 0 {
		t.Errorf("checks after deregistration = %v", got)
	}
	if got := c.healthNode("n1"); len(got) != 1 {
		t.Errorf("health of n1 after deregistration = %v, want serfHealth only", got)
	}
	if err := a.Shutdown(); err != nil {
		t.Fatal(err)
	}
	r, err := replayLog(filepath.Join(dir, stateLogFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range append(slices.Collect(maps.Values(r.st.Services)), r.st.Node) {
		for _, d := range e.Checks {
			if d.ID == "disk" || d.ID == "web-ttl" {
				t.Errorf("the saved state still holds deregistered check %q", d.ID)
			}
		}
	}
}

func TestNodeCheckBadInput(t *testing.T) {
	a := startAgent(t, testConfig(t, "n1", "", nil))
	c := newAPI(t, a)
	c.must("PUT", "/v1/agent/service/register", `{"Name": "web", "Check": {"CheckID": "web-ttl", "TTL": "1m"}}`)
	c.must("PUT", "/v1/agent/check/register", `{"Name": "disk", "TTL": "1m"}`)
	c.must("PUT", "/v1/agent/maintenance?enable=true", "")
	before := c.must("GET", "/v1/agent/checks", "")
	for _, tc := range []struct {
		name, method, path, body string
		code                     int
		want                     string
	}{
		{"no name", "PUT", "/v1/agent/check/register", `{"TTL": "1m"}`, 400, "check.Name: missing"},
		{"unknown service", "PUT", "/v1/agent/check/register", `{"Name": "x", "TTL": "1m", "ServiceID": "nope"}`, 400, `check.ServiceID: no service with ID "nope"`},
		{"ID of a service check", "PUT", "/v1/agent/check/register", `{"ID": "web-ttl", "Name": "x", "TTL": "1m"}`, 400, `check.ID: taken by service "web"`},
		{"ID of a node check", "PUT", "/v1/agent/check/register", `{"ID": "disk", "Name": "x", "ServiceID": "web", "TTL": "1m"}`, 400, "check.ID: taken by a node check"},
		{"node check ID in a service", "PUT", "/v1/agent/service/register", `{"Name": "api", "Check": {"CheckID": "disk", "TTL": "1m"}}`, 400, "taken by a node check"},
		{"reserved ID", "PUT", "/v1/agent/check/register", `{"Name": "serfHealth", "TTL": "1m"}`, 400, "reserved"},
		{"maintenance ID", "PUT", "/v1/agent/check/register", `{"ID": "_node_maintenance", "Name": "m", "TTL": "1m"}`, 400, "reserved"},
		{"no kind", "PUT", "/v1/agent/check/register", `{"Name": "x"}`, 400, "says nothing to check"},
		{"two kinds", "PUT", "/v1/agent/check/register", `{"Name": "x", "TTL": "1m", "TCP": "127.0.0.1:1", "Interval": "1s"}`, 400, "2 kinds"},
		{"no interval", "PUT", "/v1/agent/check/register", `{"Name": "x", "HTTP": "http://127.0.0.1:1/"}`, 400, "interval"},
		{"unsupported kind", "PUT", "/v1/agent/check/register", `{"Name": "x", "UDP": "127.0.0.1:53", "Interval": "10s"}`, 400, "does not run udp"},
		{"script checks off", "PUT", "/v1/agent/check/register", `{"Name": "x", "Args": ["/bin/true"], "Interval": "10s"}`, 400, "script"},
		{"malformed", "PUT", "/v1/agent/check/register", `{"Name": "x",`, 400, "Request decode failed"},
		{"unknown field", "PUT", "/v1/agent/check/register", `{"Name": "x", "TTL": "1m", "Colour": "red"}`, 400, `unknown field "Colour"`},
		{"deregister unknown", "PUT", "/v1/agent/check/deregister/nope", "", 404, "nope"},
		{"deregister maintenance", "PUT", "/v1/agent/check/deregister/_node_maintenance", "", 400, "maintenance"},
		{"deregister serfHealth", "PUT", "/v1/agent/check/deregister/serfHealth", "", 400, "rumor's own"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := c.do(tc.method, tc.path, tc.body)
			if code != tc.code || !strings.Contains(body, tc.want) {
				t.Errorf("%s %s = %d %q, want %d containing %q", tc.method, tc.path, code, body, tc.code, tc.want)
			}
			if after := c.must("GET", "/v1/agent/checks", ""); after != before {
				t.Errorf("checks changed:\n got %s\nwant %s", after, before)
			}
		})
	}
}

// request builds a request to the agent.
func (c *api) request(method, path, body string) *http.Request {
	c.t.Helper()
	req, err := http.NewRequestWithContext(c.t.Context(), method, c.base+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	return req
}

// send sends req and returns its status code.
func (c *api) send(req *http.Request) int {
	c.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

func TestHTTPToken(t *testing.T) {
	cfg := testConfig(t, "n1", "", nil)
	cfg.HTTPToken = "s3cret"
	a := startAgent(t, cfg)
	c := newAPI(t, a)
	if code, body := c.do("PUT", "/v1/agent/service/register", `{"Name": "web"}`); code != 403 || !strings.Contains(body, "Permission denied") {
		t.Errorf("write without token = %d %q, want 403", code, body)
	}
	if n := len(a.LocalServices()); n != 0 {
		t.Errorf("%d services after a refused write", n)
	}
	c.must("GET", "/v1/agent/services", "") // reads stay open
	req := c.request("PUT", "/v1/agent/service/register", `{"Name": "web"}`)
	req.Header.Set("X-Consul-Token", "s3cret")
	if code := c.send(req); code != 200 || len(a.LocalServices()) != 1 {
		t.Errorf("write with the token = %d, %d services", code, len(a.LocalServices()))
	}
}

func TestMembersAndNear(t *testing.T) {
	var fc *fakeCluster
	a := startAgent(t, testConfig(t, "n1", "", &fc))
	c := newAPI(t, a)
	coord := func(x float64) *coordinate.Coordinate {
		k := coordinate.NewCoordinate(coordinate.DefaultConfig())
		k.Vec[0] = x
		return k
	}
	since := time.Date(2026, 11, 25, 7, 30, 0, 0, time.UTC)
	fc.mu.Lock()
	fc.members = []gossip.Member{
		{Name: "far", Addr: netip.MustParseAddrPort("127.0.0.3:7946"), State: catalog.LivenessAlive, Since: since, Coordinate: coord(0.050), RTT: 50 * time.Millisecond},
		{Name: "near", Addr: netip.MustParseAddrPort("127.0.0.2:7946"), State: catalog.LivenessSuspect, Since: since, Coordinate: coord(0.002), RTT: 2 * time.Millisecond},
	}
	fc.selfCoord = coord(0) // this node, at the origin
	fc.mu.Unlock()

	var members []map[string]any
	if err := json.Unmarshal([]byte(c.must("GET", "/v1/rumor/members", "")), &members); err != nil {
		t.Fatal(err)
	}
	byName := map[string]map[string]any{}
	for _, m := range members {
		byName[m["Name"].(string)] = m
	}
	if m := byName["near"]; m["State"] != "suspect" || m["StateSince"] != "2026-11-25T07:30:00Z" || m["RTT"] != "2ms" || m["Addr"] != "127.0.0.2" || m["Coordinate"] == nil {
		t.Errorf("near = %v", m)
	}

	// ?near=_agent orders by serf's estimate from this node; ?near=far from far.
	for id, node := range map[string]string{"s-far": "far", "s-near": "near", "s-self": "n1"} {
		w := catalog.NewWriter(node, 1)
		if node == "n1" {
			c.must("PUT", "/v1/agent/service/register", `{"ID": "`+id+`", "Name": "api", "Port": 1}`)
			continue
		}
		if _, err := a.Catalog().Apply(w.PutNode(catalogtest.Node(node, "127.0.0.9")),
			w.PutService(&catalog.Service{ID: id, Name: "api", Port: 1, Weights: catalog.DefaultWeights})); err != nil {
			t.Fatal(err)
		}
	}
	order := func(path string) string {
		var out []map[string]any
		if err := json.Unmarshal([]byte(c.must("GET", path, "")), &out); err != nil {
			t.Fatal(err)
		}
		var ns []string
		for _, e := range out {
			ns = append(ns, e["Node"].(string))
		}
		return strings.Join(ns, ",")
	}
	for path, want := range map[string]string{
		"/v1/catalog/service/api":             "far,n1,near", // by name
		"/v1/catalog/service/api?near=_agent": "n1,near,far",
		"/v1/catalog/service/api?near=far":    "far,near,n1",
	} {
		if got := order(path); got != want {
			t.Errorf("%s: nodes %s, want %s", path, got, want)
		}
	}
}
