package compat

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	consulapi "github.com/hashicorp/consul/api"

	"github.com/rumor-sd/rumor/httpapi"
)

// The tests below drive agents with github.com/hashicorp/consul/api exactly as a
// program would, and check the answers against what a Consul agent returns for the
// same calls.

// webRegistration is a service with two tags, metadata, a 127.x address (nothing
// scrapes it here, but Prometheus would) and a TTL check, critical until its first
// heartbeat, as Consul starts every check.
func webRegistration(id string) *consulapi.AgentServiceRegistration {
	return &consulapi.AgentServiceRegistration{
		ID: id, Name: "web", Tags: []string{"v1", "primary"}, Port: 8080, Address: "127.0.0.2",
		Meta:  map[string]string{"version": "1.2.3"},
		Check: &consulapi.AgentServiceCheck{Name: "web alive", TTL: "30s"},
	}
}

func TestAgentSelfAndNodeName(t *testing.T) {
	a := startAgent(t, "alpha")
	self, err := a.client.Agent().Self()
	if err != nil {
		t.Fatalf("Agent().Self(): %v", err)
	}
	cfg := self["Config"]
	for key, want := range map[string]string{"NodeName": "alpha", "Datacenter": "dc1", "Version": httpapi.ConsulVersion} {
		if got, ok := cfg[key].(string); !ok || got != want {
			t.Errorf("Self()[Config][%s] = %#v, want string %q", key, cfg[key], want)
		}
	}
	if id, _ := cfg["NodeID"].(string); len(id) != 36 || strings.Count(id, "-") != 4 {
		t.Errorf("Self()[Config][NodeID] = %#v, want a UUID", cfg["NodeID"])
	}
	name, err := a.client.Agent().NodeName()
	if err != nil || name != "alpha" {
		t.Errorf("Agent().NodeName() = %q, %v; want alpha", name, err)
	}
}

func TestAgentMembers(t *testing.T) {
	a := startAgent(t, "alpha")
	ms, err := a.client.Agent().Members(false)
	if err != nil {
		t.Fatalf("Agent().Members(false): %v", err)
	}
	host, port, _ := net.SplitHostPort(a.gossip)
	if len(ms) != 1 {
		t.Fatalf("Members() = %d members, want 1: %+v", len(ms), ms)
	}
	m := ms[0]
	if m.Name != "alpha" || m.Addr != host || strconv.Itoa(int(m.Port)) != port || m.Status != serfAlive {
		t.Errorf("Members()[0] = %s %s:%d status %d, want alpha %s status %d (alive)", m.Name, m.Addr, m.Port, m.Status, a.gossip, serfAlive)
	}
	if m.Tags["dc"] != "dc1" {
		t.Errorf("Members()[0].Tags = %v, want dc=dc1", m.Tags)
	}
}

// checkOf returns the check with the given ID, or nil.
func checkOf(checks consulapi.HealthChecks, id string) *consulapi.HealthCheck {
	for _, c := range checks {
		if c.CheckID == id {
			return c
		}
	}
	return nil
}

// passingWeb returns the IDs of web's instances that consul/api reports passing, on
// client c, filtered by tags.
func passingWeb(t *testing.T, c *consulapi.Client, tags ...string) []string {
	t.Helper()
	entries, meta, err := c.Health().ServiceMultipleTags("web", tags, true, nil)
	if err != nil {
		t.Fatalf("Health().ServiceMultipleTags(web, %v, passing): %v", tags, err)
	}
	if meta.LastIndex == 0 {
		t.Errorf("Health().ServiceMultipleTags: X-Consul-Index 0; Consul never sends 0")
	}
	var ids []string
	for _, e := range entries {
		ids = append(ids, e.Service.ID)
	}
	return ids
}

func TestRegisterWithChecksAndTTL(t *testing.T) {
	a := startAgent(t, "alpha")
	ag := a.client.Agent()
	if err := ag.ServiceRegister(webRegistration("web-1")); err != nil {
		t.Fatalf("ServiceRegister(web-1): %v", err)
	}
	// Two checks: Consul numbers them service:<id>:1, :2.
	db := &consulapi.AgentServiceRegistration{ID: "db-1", Name: "db", Port: 5432, Checks: consulapi.AgentServiceChecks{
		{Name: "db alive", TTL: "30s"},
		{Name: "db replicating", TTL: "1m", Status: consulapi.HealthPassing},
	}}
	if err := ag.ServiceRegister(db); err != nil {
		t.Fatalf("ServiceRegister(db-1): %v", err)
	}

	svcs, err := ag.Services()
	if err != nil {
		t.Fatalf("Agent().Services(): %v", err)
	}
	web := svcs["web-1"]
	if web == nil || web.Service != "web" || !slices.Equal(web.Tags, []string{"v1", "primary"}) ||
		web.Port != 8080 || web.Address != "127.0.0.2" || web.Meta["version"] != "1.2.3" || web.Datacenter != "dc1" {
		t.Errorf("Agent().Services()[web-1] = %+v, want web [v1 primary] 127.0.0.2:8080 meta version=1.2.3 dc1", web)
	}
	if svcs["db-1"] == nil || len(svcs) != 2 {
		t.Errorf("Agent().Services() has %v, want db-1 and web-1", keys(svcs))
	}

	checks, err := ag.Checks()
	if err != nil {
		t.Fatalf("Agent().Checks(): %v", err)
	}
	wantChecks := map[string]string{"service:web-1": "critical", "service:db-1:1": "critical", "service:db-1:2": "passing"}
	for id, status := range wantChecks {
		c := checks[id]
		if c == nil {
			t.Errorf("Agent().Checks() has %v, want %s", keys(checks), id)
			continue
		}
		if c.Status != status || c.Type != "ttl" || c.Node != "alpha" {
			t.Errorf("Agent().Checks()[%s] = status %q type %q node %q, want %s ttl alpha", id, c.Status, c.Type, c.Node, status)
		}
	}
	if c := checks["service:web-1"]; c != nil && (c.ServiceID != "web-1" || c.ServiceName != "web" || c.Name != "web alive") {
		t.Errorf("Agent().Checks()[service:web-1] = service %q/%q name %q, want web-1/web, web alive", c.ServiceID, c.ServiceName, c.Name)
	}

	// Critical until the first heartbeat.
	if got := passingWeb(t, a.client); len(got) != 0 {
		t.Errorf("passing web before any heartbeat = %v, want none", got)
	}
	if err := ag.PassTTL("service:web-1", "all good"); err != nil {
		t.Fatalf("PassTTL: %v", err)
	}
	checks, err = ag.Checks()
	if err != nil {
		t.Fatalf("Agent().Checks(): %v", err)
	}
	if c := checks["service:web-1"]; c == nil || c.Status != "passing" || c.Output != "all good" {
		t.Errorf("after PassTTL, check = %+v, want passing with output \"all good\"", c)
	}
	if got := passingWeb(t, a.client); !slices.Equal(got, []string{"web-1"}) {
		t.Errorf("passing web after PassTTL = %v, want [web-1]", got)
	}
	if got := passingWeb(t, a.client, "v1", "primary"); !slices.Equal(got, []string{"web-1"}) {
		t.Errorf("passing web tagged v1+primary = %v, want [web-1]", got)
	}
	if got := passingWeb(t, a.client, "v1", "canary"); len(got) != 0 {
		t.Errorf("passing web tagged v1+canary = %v, want none (every tag must match)", got)
	}

	// The full answer of a health query, as Prometheus and Traefik read it.
	entries, _, err := a.client.Health().Service("web", "v1", true, nil)
	if err != nil || len(entries) != 1 {
		t.Fatalf("Health().Service(web, v1, passing) = %d entries, %v; want 1", len(entries), err)
	}
	e := entries[0]
	if e.Node.Node != "alpha" || e.Node.Address != "127.0.0.1" || e.Node.Datacenter != "dc1" || e.Node.ID == "" {
		t.Errorf("entry node = %+v, want alpha at 127.0.0.1 in dc1 with an ID", e.Node)
	}
	if e.Service.Address != "127.0.0.2" || e.Service.Port != 8080 {
		t.Errorf("entry service at %s:%d, want 127.0.0.2:8080", e.Service.Address, e.Service.Port)
	}
	if c := checkOf(e.Checks, "serfHealth"); c == nil || c.Status != "passing" {
		t.Errorf("entry checks = %s, want serfHealth passing (Consul's node check)", describeChecks(e.Checks))
	}
	if got := e.Checks.AggregatedStatus(); got != consulapi.HealthPassing {
		t.Errorf("entry AggregatedStatus = %q, want passing", got)
	}

	// UpdateTTL carries an output and moves the check to warning: no longer passing.
	if err := ag.UpdateTTL("service:web-1", "slow disk", "warn"); err != nil {
		t.Fatalf("UpdateTTL(warn): %v", err)
	}
	checks, err = ag.Checks()
	if err != nil {
		t.Fatalf("Agent().Checks(): %v", err)
	}
	if c := checks["service:web-1"]; c == nil || c.Status != "warning" || c.Output != "slow disk" {
		t.Errorf("after UpdateTTL(warn), check = %+v, want warning with output \"slow disk\"", c)
	}
	if got := passingWeb(t, a.client); len(got) != 0 {
		t.Errorf("passing web while warning = %v, want none", got)
	}
	all, _, err := a.client.Health().Service("web", "", false, nil)
	if err != nil || len(all) != 1 || all[0].Checks.AggregatedStatus() != consulapi.HealthWarning {
		t.Errorf("Health().Service(web, any) = %d entries, %v; want 1 whose aggregated status is warning", len(all), err)
	}
	if err := ag.UpdateTTL("service:web-1", "recovered", consulapi.HealthPassing); err != nil {
		t.Fatalf("UpdateTTL(passing): %v", err)
	}
	if got := passingWeb(t, a.client); !slices.Equal(got, []string{"web-1"}) {
		t.Errorf("passing web after UpdateTTL(passing) = %v, want [web-1]", got)
	}

	// Heartbeats for unknown checks are refused, and change nothing.
	if err := ag.PassTTL("service:nope", ""); err == nil {
		t.Errorf("PassTTL(unknown check) succeeded, want an error")
	}
	if err := ag.UpdateTTL("service:nope", "", "pass"); err == nil {
		t.Errorf("UpdateTTL(unknown check) succeeded, want an error")
	}
}

func TestDeregister(t *testing.T) {
	a := startAgent(t, "alpha")
	ag := a.client.Agent()
	if err := ag.ServiceRegister(webRegistration("web-1")); err != nil {
		t.Fatalf("ServiceRegister: %v", err)
	}
	if err := ag.ServiceDeregister("web-1"); err != nil {
		t.Fatalf("ServiceDeregister: %v", err)
	}
	svcs, err := ag.Services()
	if err != nil || len(svcs) != 0 {
		t.Errorf("Agent().Services() after deregister = %v, %v; want none", keys(svcs), err)
	}
	checks, err := ag.Checks()
	if err != nil || checks["service:web-1"] != nil {
		t.Errorf("Agent().Checks() after deregister = %v, %v; want no service:web-1", keys(checks), err)
	}
	names, _, err := a.client.Catalog().Services(nil)
	if _, ok := names["web"]; err != nil || ok {
		t.Errorf("Catalog().Services() after deregister = %v, %v; want no web", names, err)
	}
	// An unknown service is an empty list, not an error, as in Consul.
	entries, meta, err := a.client.Health().Service("web", "", false, nil)
	if err != nil || len(entries) != 0 || meta.LastIndex == 0 {
		t.Errorf("Health().Service(web) after deregister = %d entries, index %d, %v; want none, a non-zero index, no error",
			len(entries), meta.LastIndex, err)
	}
	if err := ag.ServiceDeregister("web-1"); err == nil {
		t.Errorf("second ServiceDeregister(web-1) succeeded, want an error (unknown service ID)")
	} else if se := (consulapi.StatusError{}); errors.As(err, &se) && se.Code != 404 {
		t.Errorf("second ServiceDeregister(web-1): %v, want status 404", err)
	}
}

func TestServiceAndNodeMaintenance(t *testing.T) {
	a := startAgent(t, "alpha")
	ag := a.client.Agent()
	reg := webRegistration("web-1")
	reg.Check.Status = consulapi.HealthPassing
	if err := ag.ServiceRegister(reg); err != nil {
		t.Fatalf("ServiceRegister: %v", err)
	}
	if got := passingWeb(t, a.client); !slices.Equal(got, []string{"web-1"}) {
		t.Fatalf("passing web = %v, want [web-1]", got)
	}

	steps := []struct {
		name    string
		enable  func() error
		disable func() error
		checkID string
		reason  string
	}{
		{"service", func() error { return ag.EnableServiceMaintenance("web-1", "deploying") },
			func() error { return ag.DisableServiceMaintenance("web-1") }, "_service_maintenance:web-1", "deploying"},
		{"node", func() error { return ag.EnableNodeMaintenance("kernel upgrade") },
			ag.DisableNodeMaintenance, "_node_maintenance", "kernel upgrade"},
	}
	for _, s := range steps {
		if err := s.enable(); err != nil {
			t.Fatalf("enable %s maintenance: %v", s.name, err)
		}
		checks, err := ag.Checks()
		if err != nil {
			t.Fatalf("Agent().Checks(): %v", err)
		}
		c := checks[s.checkID]
		// Consul reports a maintenance check as critical with type "maintenance";
		// rumor reports the status "maintenance", which consul/api also understands.
		if c == nil || c.Notes != s.reason || (c.Status != consulapi.HealthCritical && c.Status != consulapi.HealthMaint) {
			t.Errorf("%s maintenance: check %s = %+v, want critical (or maintenance) with notes %q", s.name, s.checkID, c, s.reason)
		}
		if got := passingWeb(t, a.client); len(got) != 0 {
			t.Errorf("%s maintenance: passing web = %v, want none", s.name, got)
		}
		all, _, err := a.client.Health().Service("web", "", false, nil)
		if err != nil || len(all) != 1 || all[0].Checks.AggregatedStatus() != consulapi.HealthMaint {
			t.Errorf("%s maintenance: Health().Service(web) = %d entries, %v; want 1 whose aggregated status is maintenance", s.name, len(all), err)
		}
		if err := s.disable(); err != nil {
			t.Fatalf("disable %s maintenance: %v", s.name, err)
		}
		if checks, err := ag.Checks(); err != nil || checks[s.checkID] != nil {
			t.Errorf("after disabling %s maintenance, Agent().Checks() = %v, %v; want no %s", s.name, keys(checks), err, s.checkID)
		}
		if got := passingWeb(t, a.client); !slices.Equal(got, []string{"web-1"}) {
			t.Errorf("after disabling %s maintenance, passing web = %v, want [web-1]", s.name, got)
		}
	}
	if err := ag.EnableServiceMaintenance("nope", ""); err == nil {
		t.Errorf("EnableServiceMaintenance(unknown service) succeeded, want an error")
	}
}

func TestCatalogReads(t *testing.T) {
	a := startAgent(t, "alpha")
	if err := a.client.Agent().ServiceRegister(webRegistration("web-1")); err != nil {
		t.Fatalf("ServiceRegister: %v", err)
	}
	if err := a.client.Agent().ServiceRegister(&consulapi.AgentServiceRegistration{ID: "web-2", Name: "web", Tags: []string{"v2"}, Port: 8081}); err != nil {
		t.Fatalf("ServiceRegister: %v", err)
	}
	cat := a.client.Catalog()

	t.Run("Services", func(t *testing.T) {
		names, meta, err := cat.Services(nil)
		if err != nil {
			t.Fatalf("Catalog().Services(): %v", err)
		}
		tags := names["web"]
		sort.Strings(tags)
		if !slices.Equal(tags, []string{"primary", "v1", "v2"}) || meta.LastIndex == 0 || !meta.KnownLeader {
			t.Errorf("Catalog().Services() = %v (index %d, leader %v), want web with the union of tags [primary v1 v2], a non-zero index, a known leader",
				names, meta.LastIndex, meta.KnownLeader)
		}
	})
	t.Run("Service", func(t *testing.T) {
		got, _, err := cat.Service("web", "v1", nil)
		if err != nil || len(got) != 1 {
			t.Fatalf("Catalog().Service(web, v1) = %d, %v; want 1", len(got), err)
		}
		s := got[0]
		if s.Node != "alpha" || s.Address != "127.0.0.1" || s.ServiceID != "web-1" || s.ServiceAddress != "127.0.0.2" ||
			s.ServicePort != 8080 || s.ServiceMeta["version"] != "1.2.3" || s.Datacenter != "dc1" {
			t.Errorf("Catalog().Service(web, v1)[0] = %+v", s)
		}
		// The catalog view ignores health: web-1's check is still critical.
		all, _, err := cat.Service("web", "", nil)
		if err != nil || len(all) != 2 {
			t.Errorf("Catalog().Service(web) = %d, %v; want 2 (health does not filter the catalog)", len(all), err)
		}
		none, _, err := cat.Service("nope", "", nil)
		if err != nil || len(none) != 0 {
			t.Errorf("Catalog().Service(nope) = %v, %v; want an empty list", none, err)
		}
	})
	t.Run("Nodes", func(t *testing.T) {
		nodes, _, err := cat.Nodes(nil)
		if err != nil || len(nodes) != 1 {
			t.Fatalf("Catalog().Nodes() = %d, %v; want 1", len(nodes), err)
		}
		if n := nodes[0]; n.Node != "alpha" || n.Address != "127.0.0.1" || n.Datacenter != "dc1" || n.ID == "" {
			t.Errorf("Catalog().Nodes()[0] = %+v, want alpha at 127.0.0.1 in dc1 with an ID", n)
		}
	})
	t.Run("Node", func(t *testing.T) {
		n, meta, err := cat.Node("alpha", nil)
		if err != nil || n == nil || n.Node == nil {
			t.Fatalf("Catalog().Node(alpha) = %+v, %v; want the node and its services", n, err)
		}
		if n.Node.Node != "alpha" || n.Node.Address != "127.0.0.1" || meta.LastIndex == 0 {
			t.Errorf("Catalog().Node(alpha).Node = %+v (index %d)", n.Node, meta.LastIndex)
		}
		if s := n.Services["web-1"]; s == nil || s.Service != "web" || s.Port != 8080 || len(n.Services) != 2 {
			t.Errorf("Catalog().Node(alpha).Services = %v, want web-1 (web:8080) and web-2", keys(n.Services))
		}
		// Consul answers an unknown node with 200 and null, which consul/api returns
		// as a nil node and no error.
		missing, _, err := cat.Node("nope", nil)
		if err != nil || missing != nil {
			t.Errorf("Catalog().Node(nope) = %+v, %v; want nil, nil", missing, err)
		}
	})
	t.Run("Datacenters", func(t *testing.T) {
		dcs, err := cat.Datacenters()
		if err != nil || !slices.Equal(dcs, []string{"dc1"}) {
			t.Errorf("Catalog().Datacenters() = %v, %v; want [dc1]", dcs, err)
		}
	})
}

func TestHealthState(t *testing.T) {
	a := startAgent(t, "alpha")
	ag := a.client.Agent()
	if err := ag.ServiceRegister(webRegistration("web-1")); err != nil {
		t.Fatalf("ServiceRegister: %v", err)
	}
	reg := webRegistration("web-2")
	reg.Check.Status = consulapi.HealthPassing
	if err := ag.ServiceRegister(reg); err != nil {
		t.Fatalf("ServiceRegister: %v", err)
	}
	if err := ag.UpdateTTL("service:web-2", "slow", "warn"); err != nil {
		t.Fatalf("UpdateTTL: %v", err)
	}
	// web-1 is critical (no heartbeat yet), web-2 warning, and the node's serfHealth
	// passing, which Consul lists as a check like any other.
	want := map[string][]string{
		consulapi.HealthAny:      {"serfHealth", "service:web-1", "service:web-2"},
		consulapi.HealthPassing:  {"serfHealth"},
		consulapi.HealthWarning:  {"service:web-2"},
		consulapi.HealthCritical: {"service:web-1"},
	}
	for state, ids := range want {
		checks, meta, err := a.client.Health().State(state, nil)
		if err != nil {
			t.Errorf("Health().State(%s): %v", state, err)
			continue
		}
		var got []string
		for _, c := range checks {
			got = append(got, c.CheckID)
			if c.Node != "alpha" {
				t.Errorf("Health().State(%s): check %s on node %q, want alpha", state, c.CheckID, c.Node)
			}
		}
		sort.Strings(got)
		if !slices.Equal(got, ids) || meta.LastIndex == 0 {
			t.Errorf("Health().State(%s) = %v (index %d), want %v", state, got, meta.LastIndex, ids)
		}
	}
	if c := checkOf(mustState(t, a.client, consulapi.HealthWarning), "service:web-2"); c != nil &&
		(c.ServiceID != "web-2" || c.ServiceName != "web" || c.Output != "slow") {
		t.Errorf("Health().State(warning) service:web-2 = %+v, want service web-2/web with output slow", c)
	}
	if _, _, err := a.client.Health().State("bogus", nil); err == nil {
		t.Errorf("Health().State(bogus) succeeded, want an error")
	}
}

func mustState(t *testing.T, c *consulapi.Client, state string) consulapi.HealthChecks {
	t.Helper()
	checks, _, err := c.Health().State(state, nil)
	if err != nil {
		t.Fatalf("Health().State(%s): %v", state, err)
	}
	return checks
}

// TestThreeAgents registers on alpha and reads on gamma: every catalog and health
// read sees the gossiped service, and every node.
func TestThreeAgents(t *testing.T) {
	agents := startCluster(t)
	alpha, gamma := agents[0], agents[2]
	reg := webRegistration("web-1")
	reg.Check.Status = consulapi.HealthPassing
	if err := alpha.client.Agent().ServiceRegister(reg); err != nil {
		t.Fatalf("ServiceRegister on alpha: %v", err)
	}
	took := eventually(t, settleTimeout, "gamma sees alpha's web-1 passing", func() string {
		if got := passingWeb(t, gamma.client); !slices.Equal(got, []string{"web-1"}) {
			return fmt.Sprintf("passing web on gamma = %v", got)
		}
		return ""
	})
	t.Logf("alpha's registration passing on gamma after %s", took)

	entries, _, err := gamma.client.Health().Service("web", "primary", true, nil)
	if err != nil || len(entries) != 1 || entries[0].Node.Node != "alpha" || entries[0].Service.Address != "127.0.0.2" {
		t.Errorf("gamma: Health().Service(web, primary, passing) = %d entries, %v; want alpha's web-1 at 127.0.0.2", len(entries), err)
	}
	svcs, _, err := gamma.client.Catalog().Service("web", "", nil)
	if err != nil || len(svcs) != 1 || svcs[0].Node != "alpha" {
		t.Errorf("gamma: Catalog().Service(web) = %d, %v; want alpha's web-1", len(svcs), err)
	}
	nodes, _, err := gamma.client.Catalog().Nodes(nil)
	var names []string
	for _, n := range nodes {
		names = append(names, n.Node)
	}
	sort.Strings(names)
	if err != nil || !slices.Equal(names, []string{"alpha", "beta", "gamma"}) {
		t.Errorf("gamma: Catalog().Nodes() = %v, %v; want alpha beta gamma", names, err)
	}
	n, _, err := gamma.client.Catalog().Node("alpha", nil)
	if err != nil || n == nil || n.Services["web-1"] == nil {
		t.Errorf("gamma: Catalog().Node(alpha) = %+v, %v; want alpha with web-1", n, err)
	}
	// gamma's own agent endpoints list only gamma's services.
	if local, err := gamma.client.Agent().Services(); err != nil || len(local) != 0 {
		t.Errorf("gamma: Agent().Services() = %v, %v; want none (web-1 is alpha's)", keys(local), err)
	}

	if err := alpha.client.Agent().ServiceDeregister("web-1"); err != nil {
		t.Fatalf("ServiceDeregister on alpha: %v", err)
	}
	eventually(t, settleTimeout, "gamma drops alpha's web-1", func() string {
		entries, _, err := gamma.client.Health().Service("web", "", false, nil)
		if err != nil || len(entries) != 0 {
			return fmt.Sprintf("%d entries, %v", len(entries), err)
		}
		return ""
	})
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func describeChecks(cs consulapi.HealthChecks) string {
	var parts []string
	for _, c := range cs {
		parts = append(parts, c.CheckID+"="+c.Status)
	}
	return "[" + strings.Join(parts, " ") + "]"
}
