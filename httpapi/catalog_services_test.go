package httpapi

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/rumor-sd/rumor/catalog/catalogtest"
)

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
