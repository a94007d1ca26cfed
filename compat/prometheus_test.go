package compat

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"
)

// Prometheus is built by scripts/compat-tools.sh with only its Consul discovery
// (Debian's package has it compiled out).
const prometheusDir, prometheusBin = "prometheus-v0.316.0", "prometheus"

// discoverTimeout bounds how long Prometheus takes to show a change as a target: its
// discovery manager batches updates for 5 s before the scrape manager sees them.
const discoverTimeout = 60 * time.Second

// prometheus is a running Prometheus with a loopback web API.
type prometheus struct {
	*process
	addr string
}

// startPrometheus runs Prometheus with config on a free loopback port and waits
// until it is ready. The port is picked by listening on :0 and closing it, so another
// process could take it first: a start that fails to bind is retried on a new port.
func startPrometheus(t *testing.T, bin, config string) *prometheus {
	t.Helper()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	for attempt := 1; ; attempt++ {
		addr := freeLoopbackAddr(t)
		p := &prometheus{addr: addr, process: startProcess(t, "prometheus", bin,
			"--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
			"--web.listen-address="+addr, "--log.level=debug")}
		ready := false
		eventually(t, startTimeout, "prometheus ready", func() string {
			if p.exited() {
				return ""
			}
			resp, err := http.Get("http://" + addr + "/-/ready")
			if err != nil {
				return err.Error()
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return resp.Status
			}
			ready = true
			return ""
		})
		if ready {
			return p
		}
		if attempt == 3 || !strings.Contains(p.out.String(), "address already in use") {
			t.Fatalf("prometheus exited: %v\n%s", p.err, tail(p.out.String(), 4000))
		}
	}
}

func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// target is one of Prometheus' targets as GET /api/v1/targets describes it.
type target struct {
	DiscoveredLabels map[string]string `json:"discoveredLabels"`
	Labels           map[string]string `json:"labels"`
	ScrapePool       string            `json:"scrapePool"`
}

// targets returns Prometheus' active targets of scrape pool pool.
func (p *prometheus) targets(pool string) ([]target, error) {
	resp, err := http.Get("http://" + p.addr + "/api/v1/targets?state=active")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string
		Data   struct {
			ActiveTargets []target `json:"activeTargets"`
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("decode /api/v1/targets: %w", err)
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("/api/v1/targets: status %q", body.Status)
	}
	var out []target
	for _, tg := range body.Data.ActiveTargets {
		if tg.ScrapePool == pool {
			out = append(out, tg)
		}
	}
	return out, nil
}

// TestPrometheusConsulSD runs a real Prometheus whose consul_sd_configs points at a
// rumor agent, once watching the whole catalog (it blocks on /v1/catalog/services)
// and once a named service (it blocks on /v1/health/service/web): a registered
// service becomes a target with Consul's __meta_consul_* labels, and its
// deregistration removes the target.
func TestPrometheusConsulSD(t *testing.T) {
	bin := requireTool(t, prometheusDir, prometheusBin)
	for _, mode := range []struct{ name, services string }{
		{"whole catalog", ""},
		{"named service", "\n        services: [web]"},
	} {
		t.Run(mode.name, func(t *testing.T) {
			a := startAgent(t, "alpha", "--node-meta", "rack=r1")
			// A long scrape interval: the targets are not real exporters, and the test
			// reads what discovery produced, not scrape results. refresh_interval is
			// how long Prometheus pauses between two blocking queries (default 30 s).
			prom := startPrometheus(t, bin, fmt.Sprintf(`global:
  scrape_interval: 10m
scrape_configs:
  - job_name: rumor
    consul_sd_configs:
      - server: %q
        refresh_interval: 1s%s
`, a.http, mode.services))

			reg := &consulapi.AgentServiceRegistration{
				ID: "web-1", Name: "web", Tags: []string{"v1", "primary"}, Port: 8080, Address: "127.0.0.2",
				Meta:  map[string]string{"version": "1.2.3"},
				Check: &consulapi.AgentServiceCheck{TTL: "1m", Status: consulapi.HealthPassing},
			}
			if err := a.client.Agent().ServiceRegister(reg); err != nil {
				t.Fatalf("ServiceRegister: %v", err)
			}
			var found target
			took := eventually(t, discoverTimeout, "prometheus discovers web-1", func() string {
				ts, err := prom.targets("rumor")
				if err != nil {
					return err.Error()
				}
				if len(ts) != 1 {
					return fmt.Sprintf("%d targets in pool rumor", len(ts))
				}
				found = ts[0]
				return ""
			})
			t.Logf("target discovered %s after the registration", took.Round(time.Millisecond))

			want := map[string]string{
				"__address__":                            "127.0.0.2:8080",
				"__meta_consul_address":                  "127.0.0.1",
				"__meta_consul_dc":                       "dc1",
				"__meta_consul_health":                   "passing",
				"__meta_consul_node":                     "alpha",
				"__meta_consul_metadata_rack":            "r1",
				"__meta_consul_service":                  "web",
				"__meta_consul_service_address":          "127.0.0.2",
				"__meta_consul_service_id":               "web-1",
				"__meta_consul_service_port":             "8080",
				"__meta_consul_service_metadata_version": "1.2.3",
				"__meta_consul_tags":                     ",v1,primary,",
			}
			for k, v := range want {
				if got, ok := found.DiscoveredLabels[k]; !ok || got != v {
					t.Errorf("discovered label %s = %q (present %v), want %q", k, got, ok, v)
				}
			}
			if t.Failed() {
				t.Logf("discovered labels: %s", describeLabels(found.DiscoveredLabels))
			}
			if got := found.Labels["instance"]; got != "127.0.0.2:8080" {
				t.Errorf("target label instance = %q, want 127.0.0.2:8080", got)
			}

			if err := a.client.Agent().ServiceDeregister("web-1"); err != nil {
				t.Fatalf("ServiceDeregister: %v", err)
			}
			took = eventually(t, discoverTimeout, "prometheus drops web-1", func() string {
				ts, err := prom.targets("rumor")
				if err != nil {
					return err.Error()
				}
				if len(ts) != 0 {
					return fmt.Sprintf("%d targets in pool rumor", len(ts))
				}
				return ""
			})
			t.Logf("target dropped %s after the deregistration", took.Round(time.Millisecond))
			// Discovery worked; it must also have worked without complaints (a
			// decoding error, say, is logged and retried rather than fatal).
			for line := range strings.SplitSeq(prom.out.String(), "\n") {
				if strings.Contains(line, "discovery=consul") && (strings.Contains(line, "level=ERROR") || strings.Contains(line, "level=WARN")) {
					t.Errorf("prometheus' consul discovery complained: %s", line)
				}
			}
		})
	}
}

func describeLabels(m map[string]string) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%s=%q", k, v))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}
