package catalog_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/catalog/catalogtest"
)

func manyMeta(n int) map[string]string {
	m := make(map[string]string, n)
	for i := range n {
		m[fmt.Sprintf("k%d", i)] = "v"
	}
	return m
}

func TestServiceValidate(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(s *catalog.Service)
		wantIn string // substring of the error; "" means valid
	}{
		{"valid", func(*catalog.Service) {}, ""},
		{"empty name", func(s *catalog.Service) { s.Name = "" }, "service.name: must not be empty"},
		{"empty id", func(s *catalog.Service) { s.ID = "" }, "service.id: must not be empty"},
		{"oversized name", func(s *catalog.Service) { s.Name = strings.Repeat("a", 256) }, "service.name: is 256 bytes, more than the 255 allowed"},
		{"name with space", func(s *catalog.Service) { s.Name = "my web" }, "service.name: has an invalid character ' '"},
		{"name with control char", func(s *catalog.Service) { s.Name = "web\n" }, "invalid character"},
		{"port too big", func(s *catalog.Service) { s.Port = 65536 }, "service.port: 65536 is outside 0–65535"},
		{"negative port", func(s *catalog.Service) { s.Port = -1 }, "service.port: -1 is outside 0–65535"},
		{"port max ok", func(s *catalog.Service) { s.Port = 65535 }, ""},
		{"port zero ok", func(s *catalog.Service) { s.Port = 0 }, ""},
		{"64 meta keys ok", func(s *catalog.Service) { s.Meta = manyMeta(64) }, ""},
		{"65 meta keys", func(s *catalog.Service) { s.Meta = manyMeta(65) }, "service.meta: has 65 keys, more than the 64 allowed"},
		{"meta key 128 ok", func(s *catalog.Service) { s.Meta = map[string]string{strings.Repeat("k", 128): "v"} }, ""},
		{"meta key too long", func(s *catalog.Service) { s.Meta = map[string]string{strings.Repeat("k", 129): "v"} }, "key is 129 bytes, more than the 128 allowed"},
		{"meta value 512 ok", func(s *catalog.Service) { s.Meta = map[string]string{"k": strings.Repeat("v", 512)} }, ""},
		{"meta value too long", func(s *catalog.Service) { s.Meta = map[string]string{"k": strings.Repeat("v", 513)} }, "value is 513 bytes, more than the 512 allowed"},
		{"meta key bad char", func(s *catalog.Service) { s.Meta = map[string]string{"a.b": "v"} }, "key may hold only letters"},
		{"meta key empty", func(s *catalog.Service) { s.Meta = map[string]string{"": "v"} }, "key must not be empty"},
		{"empty tag", func(s *catalog.Service) { s.Tags = []string{"a", ""} }, "service.tags[1]: must not be empty"},
		{"too many tags", func(s *catalog.Service) { s.Tags = strings.Split(strings.Repeat("t,", 65)[:129], ",") }, "service.tags: has 65 tags"},
		{"tag too long", func(s *catalog.Service) { s.Tags = []string{strings.Repeat("t", 256)} }, "service.tags[0]: is 256 bytes"},
		{"ip address ok", func(s *catalog.Service) { s.Address = "10.0.0.1" }, ""},
		{"ipv6 address ok", func(s *catalog.Service) { s.Address = "fe80::1" }, ""},
		{"hostname ok", func(s *catalog.Service) { s.Address = "web-1.example.internal." }, ""},
		{"bad address", func(s *catalog.Service) { s.Address = "http://x" }, "service.address: \"http://x\" is neither an IP address nor a host name"},
		{"zero passing weight", func(s *catalog.Service) { s.Weights.Passing = 0 }, "service.weights.passing: 0 must be at least 1"},
		{"negative warning weight", func(s *catalog.Service) { s.Weights.Warning = -1 }, "service.weights.warning: -1 must not be negative"},
		{"tagged address empty", func(s *catalog.Service) { s.TaggedAddresses = map[string]string{"lan": ""} }, "address must not be empty"},
		{"tagged address bad", func(s *catalog.Service) { s.TaggedAddresses = map[string]string{"lan": "a b"} }, "neither an IP address"},
		{"kind too long", func(s *catalog.Service) { s.Kind = strings.Repeat("k", 65) }, "service.kind: is 65 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := catalogtest.Service("web-1", "web", 80, "v1")
			tt.edit(s)
			checkValidation(t, s.Validate(), tt.wantIn)
		})
	}
}

func checkValidation(t *testing.T, err error, wantIn string) {
	t.Helper()
	if wantIn == "" {
		if err != nil {
			t.Fatalf("Validate() = %v, want nil", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("Validate() = nil, want an error containing %q", wantIn)
	}
	if !errors.Is(err, catalog.ErrInvalid) {
		t.Errorf("Validate() = %v, does not wrap ErrInvalid", err)
	}
	if !strings.Contains(err.Error(), wantIn) {
		t.Errorf("Validate() = %q, want it to contain %q", err, wantIn)
	}
}

func TestServiceValidateReportsEveryError(t *testing.T) {
	s := &catalog.Service{Port: 70000, Weights: catalog.DefaultWeights}
	err := s.Validate()
	for _, want := range []string{"service.id", "service.name", "service.port"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to name %s", err, want)
		}
	}
	var fe *catalog.FieldError
	if !errors.As(err, &fe) {
		t.Errorf("Validate() = %v, want *FieldError inside", err)
	}
}

func TestNodeValidate(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(n *catalog.Node)
		wantIn string
	}{
		{"valid", func(*catalog.Node) {}, ""},
		{"bad uuid", func(n *catalog.Node) { n.ID = "not-a-uuid" }, "node.id: \"not-a-uuid\" is not a UUID"},
		{"uuid wrong dashes", func(n *catalog.Node) { n.ID = "0123456789abcdef0123456789abcdef0123" }, "is not a UUID"},
		{"empty name", func(n *catalog.Node) { n.Name = "" }, "node.name: must not be empty"},
		{"empty datacenter", func(n *catalog.Node) { n.Datacenter = "" }, "node.datacenter: must not be empty"},
		{"bad datacenter", func(n *catalog.Node) { n.Datacenter = "dc 1" }, "node.datacenter: \"dc 1\" must be"},
		{"bad address", func(n *catalog.Node) { n.Address = "-bad-" }, "node.address"},
		{"too much meta", func(n *catalog.Node) { n.Meta = manyMeta(65) }, "node.meta: has 65 keys"},
		{"bad tagged address name", func(n *catalog.Node) { n.TaggedAddresses = map[string]string{"a b": "1.2.3.4"} }, "name must be"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := catalogtest.Node("n1", "10.0.0.1")
			tt.edit(n)
			checkValidation(t, n.Validate(), tt.wantIn)
		})
	}
}

func TestCheckValidate(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(c *catalog.Check)
		wantIn string
	}{
		{"valid", func(*catalog.Check) {}, ""},
		{"node-level ok", func(c *catalog.Check) { c.ServiceID = "" }, ""},
		{"name with spaces ok", func(c *catalog.Check) { c.Name = "HTTP on port 80" }, ""},
		{"empty id", func(c *catalog.Check) { c.ID = "" }, "check.id: must not be empty"},
		{"zero status", func(c *catalog.Check) { c.Status = 0 }, "check.status: invalid(0)"},
		{"unknown status", func(c *catalog.Check) { c.Status = 9 }, "check.status: invalid(9)"},
		{"output too long", func(c *catalog.Check) { c.Output = strings.Repeat("o", 4097) }, "check.output: is 4097 bytes"},
		{"notes too long", func(c *catalog.Check) { c.Notes = strings.Repeat("n", 1025) }, "check.notes: is 1025 bytes"},
		{"negative interval", func(c *catalog.Check) { c.Interval = -time.Second }, "check.interval: -1s must not be negative"},
		{"negative timeout", func(c *catalog.Check) { c.Timeout = -time.Second }, "check.timeout"},
		{"bad service id", func(c *catalog.Check) { c.ServiceID = "a b" }, "check.service_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := catalogtest.Check("c1", "web-1", catalog.StatusPassing)
			tt.edit(c)
			checkValidation(t, c.Validate(), tt.wantIn)
		})
	}
}

func TestRecordValidate(t *testing.T) {
	w := catalog.NewWriter("n1", 1)
	good := w.PutService(catalogtest.Service("web-1", "web", 80))
	tests := []struct {
		name   string
		edit   func(r *catalog.Record)
		wantIn string
	}{
		{"valid", func(*catalog.Record) {}, ""},
		{"no origin", func(r *catalog.Record) { r.Origin = "" }, "record.origin: must not be empty"},
		{"generation zero", func(r *catalog.Record) { r.Version.Gen = 0 }, "generation must be at least 1"},
		{"no value", func(r *catalog.Record) { r.Service = nil }, "must carry exactly one value, has 0"},
		{"two values", func(r *catalog.Record) { r.Check = catalogtest.Check("c", "", catalog.StatusPassing) }, "exactly one value, has 2"},
		{"tombstone with value", func(r *catalog.Record) { r.Deleted = true }, "a tombstone must carry no value"},
		{"tombstone ok", func(r *catalog.Record) { r.Deleted, r.Service = true, nil }, ""},
		{"wrong value kind", func(r *catalog.Record) { r.Key.Kind = catalog.KindCheck }, "check record with the wrong value"},
		{"unknown kind", func(r *catalog.Record) { r.Key.Kind = 7 }, "unknown kind 7"},
		{"id mismatch", func(r *catalog.Record) { r.Key.ID = "web-2" }, "service.id: \"web-1\" differs from the record's key \"web-2\""},
		{"invalid value", func(r *catalog.Record) { r.Service.Port = 99999 }, "service.port"},
		{"node with id", func(r *catalog.Record) {
			r.Key = catalog.Key{Kind: catalog.KindNode, ID: "x"}
			r.Service, r.Node = nil, catalogtest.Node("n1", "")
		}, "a node record has no ID"},
		{"node named differently", func(r *catalog.Record) {
			r.Key = catalog.Key{Kind: catalog.KindNode}
			r.Service, r.Node = nil, catalogtest.Node("n2", "")
		}, "differs from the record's origin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := good
			r.Service = good.Service
			s := *good.Service
			r.Service = &s
			tt.edit(&r)
			checkValidation(t, r.Validate(), tt.wantIn)
		})
	}
}

func TestParseStatus(t *testing.T) {
	for _, s := range []string{"passing", "warning", "critical", "maintenance"} {
		st, err := catalog.ParseStatus(s)
		if err != nil || st.String() != s {
			t.Errorf("ParseStatus(%q) = %v, %v", s, st, err)
		}
	}
	for _, s := range []string{"", "Passing", "unknown", "ok"} {
		if _, err := catalog.ParseStatus(s); !errors.Is(err, catalog.ErrInvalid) {
			t.Errorf("ParseStatus(%q) error = %v, want ErrInvalid", s, err)
		}
	}
	var st catalog.Status
	if err := st.UnmarshalText([]byte("warning")); err != nil || st != catalog.StatusWarning {
		t.Errorf("UnmarshalText(warning) = %v, %v", st, err)
	}
	if _, err := catalog.Status(0).MarshalText(); err == nil {
		t.Error("MarshalText of the zero Status succeeded, want an error")
	}
}
