package agent

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/rumor-sd/rumor/internal/testkit"
)

// scrape reads a running agent's /metrics and returns its families by name.
func scrape(t *testing.T, a *Agent) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + a.HTTPAddr().String() + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("scrape: %d %s", resp.StatusCode, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("scrape: parse: %v", err)
	}
	return mfs
}

// value returns the value of the series of family name whose labels include want
// ("k=v" pairs), or -1 if there is none.
func value(mfs map[string]*dto.MetricFamily, name string, want ...string) float64 {
	mf := mfs[name]
	if mf == nil {
		return -1
	}
next:
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for _, kv := range want {
			k, v, _ := strings.Cut(kv, "=")
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		case m.Summary != nil:
			return float64(m.GetSummary().GetSampleCount())
		}
	}
	return -1
}

// TestMetricsOfARunningAgent scrapes a real agent's /metrics and checks that every
// component's series are there and move.
func TestMetricsOfARunningAgent(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real gossip")
	}
	a := startAgent(t, Config{NodeName: "m1", DataDir: t.TempDir(), BindAddr: "127.0.0.1", BindPort: 0,
		GossipProfile: "local", HTTPAddr: "127.0.0.1:0"})
	base := "http://" + a.HTTPAddr().String()

	testkit.Eventually(t, 10*time.Second, "members{state=alive} = 1", func() bool {
		return value(scrape(t, a), "rumor_gossip_members", "state=alive") == 1
	})
	mfs := scrape(t, a)
	for _, c := range []struct {
		name string
		want float64
	}{{"rumor_catalog_nodes", 1}, {"rumor_catalog_services", 0}, {"rumor_catalog_instances", 0}} {
		if got := value(mfs, c.name); got != c.want {
			t.Errorf("%s = %v, want %v", c.name, got, c.want)
		}
	}
	for _, name := range []string{"rumor_gossip_push_pull_total", "rumor_gossip_broadcasts_queued_total",
		"rumor_catalog_records", "rumor_catalog_index", "go_goroutines", "process_open_fds"} {
		if mfs[name] == nil {
			t.Errorf("no %s", name)
		}
	}
	if value(mfs, "rumor_gossip_broadcasts_queued_total") < 1 {
		t.Errorf("broadcasts_queued = %v: the node record was broadcast at start", value(mfs, "rumor_gossip_broadcasts_queued_total"))
	}
	testkit.Eventually(t, 10*time.Second, "memberlist's own metrics", func() bool {
		for name := range scrape(t, a) {
			if strings.HasPrefix(name, "rumor_memberlist_") {
				return true
			}
		}
		return false
	})

	// HTTP requests are counted by route pattern and code.
	self := func() float64 {
		return value(scrape(t, a), "rumor_http_request_duration_seconds", "route=GET /v1/agent/self", "code=200")
	}
	before := self()
	for range 3 {
		resp, err := http.Get(base + "/v1/agent/self")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if got := self(); got != max(before, 0)+3 {
		t.Errorf("GET /v1/agent/self count went from %v to %v, want +3", before, got)
	}

	// A registration moves the catalog gauges; a TTL heartbeat counts as a check run.
	body := `{"Name": "web", "ID": "web-1", "Port": 80, "Check": {"CheckID": "web-ttl", "TTL": "30s"}}`
	for _, req := range []struct{ path, body string }{
		{"/v1/agent/service/register", body},
		{"/v1/agent/check/pass/web-ttl", ""},
	} {
		r, _ := http.NewRequest("PUT", base+req.path, strings.NewReader(req.body))
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("PUT %s: %d %s", req.path, resp.StatusCode, b)
		}
	}
	mfs = scrape(t, a)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"rumor_catalog_services", nil, 1},
		{"rumor_catalog_instances", nil, 1},
		{"rumor_health_check_runs_total", []string{"type=ttl", "status=passing"}, 1},
		{"rumor_http_request_duration_seconds", []string{"route=PUT /v1/agent/service/register", "code=200"}, 1},
		{"rumor_local_state_records_total", nil, 2}, // the registration and the status change
	} {
		if got := value(mfs, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}

	if got := value(mfs, "rumor_local_state_fsyncs_total"); got < 1 {
		t.Errorf("rumor_local_state_fsyncs_total = %v: the registration was answered unsynced", got)
	}

	// A second node joins: members and gossip traffic move.
	startAgent(t, Config{NodeName: "m2", DataDir: t.TempDir(), BindAddr: "127.0.0.1", BindPort: 0,
		GossipProfile: "local", HTTPAddr: "127.0.0.1:0", Join: []string{a.GossipAddr().String()}})
	testkit.Eventually(t, 10*time.Second, "members{state=alive} = 2 and state messages received", func() bool {
		mfs = scrape(t, a)
		return value(mfs, "rumor_gossip_members", "state=alive") == 2 &&
			value(mfs, "rumor_gossip_messages_received_total", "type=state") >= 1
	})
	if t.Failed() {
		var names []string
		for n := range mfs {
			names = append(names, n)
		}
		sort.Strings(names)
		t.Logf("families: %s", strings.Join(names, ", "))
	}
}

// Two agents in one process each serve their own series.
func TestMetricsArePerAgent(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real gossip")
	}
	var agents []*Agent
	for i := range 2 {
		agents = append(agents, startAgent(t, Config{NodeName: fmt.Sprintf("p%d", i), DataDir: t.TempDir(),
			BindAddr: "127.0.0.1", BindPort: 0, GossipProfile: "local", HTTPAddr: "127.0.0.1:0"}))
	}
	if err := agents[0].RegisterService(t.Context(), web("web", 80)); err != nil {
		t.Fatal(err)
	}
	// They have not joined: only the first holds a service.
	if got := value(scrape(t, agents[0]), "rumor_catalog_instances"); got != 1 {
		t.Errorf("p0 instances = %v, want 1", got)
	}
	if got := value(scrape(t, agents[1]), "rumor_catalog_instances"); got != 0 {
		t.Errorf("p1 instances = %v, want 0", got)
	}
}
