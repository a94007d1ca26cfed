package httpapi

import (
	"slices"
	"strings"
	"testing"

	"github.com/rumor-sd/rumor/catalog/catalogtest"
)

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
