package httpapi

import (
	"testing"

	"github.com/rumor-sd/rumor/catalog/catalogtest"
)

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
