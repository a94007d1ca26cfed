package httpapi

import (
	"net/http"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/catalog"
)

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
