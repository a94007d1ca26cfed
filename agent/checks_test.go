package agent

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/definition"
	"github.com/rumor-sd/rumor/internal/testkit"
)

// api is a client of one agent's HTTP API.
type api struct {
	t     *testing.T
	base  string
	token string // sent as X-Consul-Token when set
}

func newAPI(t *testing.T, a *Agent) *api {
	t.Helper()
	return &api{t: t, base: "http://" + a.HTTPAddr().String()}
}

// do sends a request and returns the status code and body.
func (c *api) do(method, path, body string) (int, string) {
	c.t.Helper()
	req, err := http.NewRequestWithContext(c.t.Context(), method, c.base+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if c.token != "" {
		req.Header.Set("X-Consul-Token", c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// must sends a request that must answer 200.
func (c *api) must(method, path, body string) string {
	c.t.Helper()
	code, b := c.do(method, path, body)
	if code != http.StatusOK {
		c.t.Fatalf("%s %s = %d %s, want 200", method, path, code, b)
	}
	return b
}

// checks returns GET /v1/agent/checks.
func (c *api) checks() map[string]map[string]any {
	c.t.Helper()
	var out map[string]map[string]any
	if err := json.Unmarshal([]byte(c.must("GET", "/v1/agent/checks", "")), &out); err != nil {
		c.t.Fatal(err)
	}
	return out
}

// status returns the status of check id, or "" if there is none.
func (c *api) status(id string) string {
	c.t.Helper()
	s, _ := c.checks()[id]["Status"].(string)
	return s
}

// passing returns how many instances /v1/health/service/name?passing lists.
func (c *api) passing(name string) int {
	c.t.Helper()
	var out []any
	if err := json.Unmarshal([]byte(c.must("GET", "/v1/health/service/"+name+"?passing", "")), &out); err != nil {
		c.t.Fatal(err)
	}
	return len(out)
}

func TestTTLCheck(t *testing.T) {
	a := startAgent(t, testConfig(t, "n1", "", nil))
	c := newAPI(t, a)
	c.must("PUT", "/v1/agent/service/register", `{"Name": "x", "Port": 80, "Check": {"CheckID": "x-ttl", "TTL": "10s"}}`)
	if got := c.status("x-ttl"); got != "critical" {
		t.Fatalf("initial status = %q, want critical", got)
	}
	if got := c.passing("x"); got != 0 {
		t.Fatalf("passing instances before a heartbeat = %d, want 0", got)
	}
	c.must("PUT", "/v1/agent/check/pass/x-ttl?note=all+good", "")
	testkit.Eventually(t, 10*time.Second, "x passing", func() bool { return c.passing("x") == 1 })
	if out := c.checks()["x-ttl"]["Output"]; out != "all good" {
		t.Errorf("output = %q, want the note", out)
	}
	c.must("PUT", "/v1/agent/check/update/x-ttl", `{"Status": "warning", "Output": "slow"}`)
	testkit.Eventually(t, 10*time.Second, "x warning", func() bool { return c.status("x-ttl") == "warning" })
	c.must("PUT", "/v1/agent/check/fail/x-ttl", "")
	testkit.Eventually(t, 10*time.Second, "x critical", func() bool { return c.passing("x") == 0 && c.status("x-ttl") == "critical" })

	// No heartbeat within the TTL: critical.
	c.must("PUT", "/v1/agent/service/register", `{"Name": "y", "Check": {"CheckID": "y-ttl", "TTL": "300ms"}}`)
	c.must("PUT", "/v1/agent/check/pass/y-ttl", "")
	testkit.Eventually(t, 10*time.Second, "y expired", func() bool {
		ch := c.checks()["y-ttl"]
		out, _ := ch["Output"].(string)
		return ch["Status"] == "critical" && strings.HasPrefix(out, "TTL expired")
	})
	if got := c.passing("y"); got != 0 {
		t.Errorf("passing y after expiry = %d, want 0", got)
	}
}

func TestHTTPCheck(t *testing.T) {
	var code atomic.Int32
	code.Store(http.StatusOK)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(int(code.Load()))
	}))
	t.Cleanup(srv.Close)
	a := startAgent(t, testConfig(t, "n1", "", nil))
	c := newAPI(t, a)
	c.must("PUT", "/v1/agent/service/register",
		`{"Name": "web", "Port": 80, "Check": {"CheckID": "web-http", "HTTP": "`+srv.URL+`", "Interval": "1s", "Timeout": "500ms"}}`)
	testkit.Eventually(t, 10*time.Second, "web passing", func() bool { return c.passing("web") == 1 })
	def, _ := c.checks()["web-http"]["Definition"].(map[string]any)
	if def["Interval"] != "1s" || def["Timeout"] != "500ms" || def["DeregisterCriticalServiceAfter"] != "0s" || def["HTTP"] != srv.URL {
		t.Errorf("Definition = %v", def)
	}
	code.Store(http.StatusInternalServerError)
	testkit.Eventually(t, 10*time.Second, "web critical", func() bool { return c.passing("web") == 0 && c.status("web-http") == "critical" })
}

func TestMaintenance(t *testing.T) {
	a := startAgent(t, testConfig(t, "n1", "", nil))
	c := newAPI(t, a)
	c.must("PUT", "/v1/agent/service/register", `{"ID": "x1", "Name": "x", "Check": {"TTL": "1m", "Status": "passing"}}`)
	if got := c.passing("x"); got != 1 {
		t.Fatalf("passing = %d, want 1", got)
	}
	for _, tc := range []struct{ name, on, off, id string }{
		{"service", "/v1/agent/service/maintenance/x1?enable=true&reason=deploy", "/v1/agent/service/maintenance/x1?enable=false", "_service_maintenance:x1"},
		{"node", "/v1/agent/maintenance?enable=true&reason=deploy", "/v1/agent/maintenance?enable=false", "_node_maintenance"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newAPI(t, a)
			c.must("PUT", tc.on, "")
			if got := c.passing("x"); got != 0 {
				t.Errorf("passing in maintenance = %d, want 0", got)
			}
			ch := c.checks()[tc.id]
			if ch["Status"] != "maintenance" || ch["Notes"] != "deploy" {
				t.Errorf("maintenance check = %v", ch)
			}
			c.must("PUT", tc.off, "")
			if got := c.passing("x"); got != 1 {
				t.Errorf("passing after maintenance = %d, want 1", got)
			}
			if _, ok := c.checks()[tc.id]; ok {
				t.Errorf("maintenance check %s still listed", tc.id)
			}
		})
	}
	if code, _ := c.do("PUT", "/v1/agent/service/maintenance/nope?enable=true", ""); code != http.StatusNotFound {
		t.Errorf("maintenance of an unknown service = %d, want 404", code)
	}
}

// TestScriptChecks: a script check runs a program as the agent's user. From config
// files it needs --enable-script-checks or --enable-local-script-checks; through the
// HTTP API it needs --enable-script-checks and a write token (issue 11 item 14, as
// Consul learned: an API without a token lets any local user run anything).
func TestScriptChecks(t *testing.T) {
	const reg = `{"Name": "s", "Check": {"CheckID": "s-script", "Args": ["sh", "-c", "exit 0"], "Interval": "1s"}}`
	fileService := ConfigService{File: "/etc/rumor.d/f.json", Service: definition.Service{Name: "f",
		Checks: []definition.Check{{ID: "f-script", ScriptArgs: []string{"sh", "-c", "exit 0"}, Interval: time.Second}}}}
	for _, tc := range []struct {
		name         string
		scripts      bool // --enable-script-checks
		local        bool // --enable-local-script-checks
		token        string
		apiRefused   string // "" = the API's script check is taken
		filesRefused bool   // the config file's script check refused: Start fails
	}{
		{name: "off", apiRefused: "--enable-script-checks to run them", filesRefused: true},
		{name: "enabled without a token", scripts: true, apiRefused: "need a write token: start the agent with --http-token"},
		{name: "local only", local: true, apiRefused: "--enable-script-checks to run them"},
		{name: "local only with a token", local: true, token: "secret", apiRefused: "--enable-script-checks to run them"},
		{name: "enabled with a token", scripts: true, token: "secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, "n1", "", nil)
			cfg.EnableScriptChecks, cfg.EnableLocalScriptChecks, cfg.HTTPToken = tc.scripts, tc.local, tc.token
			cfg.ConfigServices = func() ([]ConfigService, error) { return []ConfigService{fileService}, nil }
			a, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			err = a.Start(t.Context())
			if tc.filesRefused {
				if err == nil || !strings.Contains(err.Error(), "--enable-script-checks") {
					t.Fatalf("Start with a config file's script check = %v, want refused naming --enable-script-checks", err)
				}
				cfg.ConfigServices = nil // then the API on its own
				a = startAgent(t, cfg)
			} else {
				if err != nil {
					t.Fatalf("Start: %v", err)
				}
				t.Cleanup(func() { _ = a.Shutdown() })
			}
			c := newAPI(t, a)
			c.token = tc.token
			if !tc.filesRefused {
				testkit.Eventually(t, 10*time.Second, "the config file's script check passing", func() bool { return c.passing("f") == 1 })
			}
			code, body := c.do("PUT", "/v1/agent/service/register", reg)
			if tc.apiRefused != "" {
				if code != http.StatusBadRequest || !strings.Contains(body, tc.apiRefused) {
					t.Errorf("API script check = %d %q, want 400 with %q", code, body, tc.apiRefused)
				}
				if _, ok := c.checks()["s-script"]; ok {
					t.Error("a refused registration left its check")
				}
				// Nor as a node check.
				code, body = c.do("PUT", "/v1/agent/check/register", `{"CheckID": "n-script", "Args": ["true"], "Interval": "1s"}`)
				if code != http.StatusBadRequest || !strings.Contains(body, tc.apiRefused) {
					t.Errorf("API node script check = %d %q, want 400 with %q", code, body, tc.apiRefused)
				}
				return
			}
			if code != http.StatusOK {
				t.Fatalf("API script check = %d %q, want 200", code, body)
			}
			testkit.Eventually(t, 10*time.Second, "the API's script check passing", func() bool { return c.passing("s") == 1 })
		})
	}
}

func TestCheckBadInput(t *testing.T) {
	a := startAgent(t, testConfig(t, "n1", "", nil))
	c := newAPI(t, a)
	c.must("PUT", "/v1/agent/service/register", `{"Name": "web", "Check": {"CheckID": "ttl", "TTL": "1m"}}`)
	c.must("PUT", "/v1/agent/service/register", `{"Name": "tcp", "Check": {"CheckID": "tcp", "TCP": "127.0.0.1:1", "Interval": "1h"}}`)
	before := c.must("GET", "/v1/agent/checks", "")
	for _, tc := range []struct {
		name, method, path, body string
		code                     int
		want                     string
	}{
		{"unknown check", "PUT", "/v1/agent/check/pass/nope", "", 404, "nope"},
		{"unknown check update", "PUT", "/v1/agent/check/update/nope", `{"Status": "passing"}`, 404, "nope"},
		{"not a ttl check", "PUT", "/v1/agent/check/pass/tcp", "", 400, "not a TTL check"},
		{"unknown status", "PUT", "/v1/agent/check/update/ttl", `{"Status": "green"}`, 400, "green"},
		{"maintenance status", "PUT", "/v1/agent/check/update/ttl", `{"Status": "maintenance"}`, 400, "maintenance"},
		{"bad duration", "PUT", "/v1/agent/service/register", `{"Name": "web", "Check": {"TTL": "10"}}`, 400, `Check.TTL: "10" is not a duration (use 10s)`},
		{"bad interval", "PUT", "/v1/agent/service/register", `{"Name": "web", "Check": {"HTTP": "http://x/", "Interval": "soon"}}`, 400, "Check.Interval"},
		{"missing interval", "PUT", "/v1/agent/service/register", `{"Name": "web", "Check": {"TCP": "127.0.0.1:1"}}`, 400, "service.checks[0].interval: is required"},
		{"negative threshold", "PUT", "/v1/agent/service/register", `{"Name": "web", "Check": {"TTL": "1m", "FailuresBeforeCritical": -1}}`, 400, "failures_before_critical"},
		{"unsupported kind", "PUT", "/v1/agent/service/register", `{"Name": "web", "Check": {"UDP": "127.0.0.1:53", "Interval": "10s"}}`, 400, "does not run udp"},
		{"check ID of another service", "PUT", "/v1/agent/service/register", `{"Name": "other", "Check": {"CheckID": "ttl", "TTL": "1m"}}`, 400, "taken by service"},
		{"maintenance without enable", "PUT", "/v1/agent/maintenance", "", 400, "enable"},
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

func TestChecksSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	a := startAgent(t, testConfig(t, "n1", dir, nil))
	c := newAPI(t, a)
	c.must("PUT", "/v1/agent/service/register", `{"Name": "x", "Check": {"CheckID": "x-ttl", "TTL": "1s", "Notes": "heartbeat"}}`)
	c.must("PUT", "/v1/agent/service/maintenance/x?enable=true&reason=later", "")
	if err := a.Shutdown(); err != nil {
		t.Fatal(err)
	}

	b := startAgent(t, testConfig(t, "n1", dir, nil))
	c = newAPI(t, b)
	ch := c.checks()
	def, _ := ch["x-ttl"]["Definition"].(map[string]any)
	if ch["x-ttl"]["Notes"] != "heartbeat" || def["TTL"] != "1s" {
		t.Fatalf("check after restart = %v", ch["x-ttl"])
	}
	if ch["_service_maintenance:x"]["Notes"] != "later" {
		t.Errorf("maintenance after restart = %v", ch["_service_maintenance:x"])
	}
	// The check runs again: it takes heartbeats, and expires without them.
	c.must("PUT", "/v1/agent/check/pass/x-ttl", "")
	testkit.Eventually(t, 10*time.Second, "passing after restart", func() bool { return c.status("x-ttl") == "passing" })
	testkit.Eventually(t, 10*time.Second, "expiry after restart", func() bool { return c.status("x-ttl") == "critical" })
}

func TestDeregisterCriticalServiceAfter(t *testing.T) {
	a := startAgent(t, testConfig(t, "n1", "", nil))
	c := newAPI(t, a)
	c.must("PUT", "/v1/agent/service/register",
		`{"Name": "x", "Check": {"TTL": "200ms", "Status": "passing", "DeregisterCriticalServiceAfter": "100ms"}}`)
	testkit.Eventually(t, 10*time.Second, "x deregistered", func() bool { return len(a.LocalServices()) == 0 })
	if n := len(c.checks()); n != 0 {
		t.Errorf("%d checks left after deregistration", n)
	}
}
