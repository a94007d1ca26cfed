package definition

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/catalog"
)

var scripts = Policy{EnableScriptChecks: true}

func TestCheckValidate(t *testing.T) {
	valid := map[string]Check{
		"http":                      {ID: "web", HTTP: "http://127.0.0.1:8080/health", Interval: 10 * time.Second},
		"https":                     {ID: "web", HTTP: "https://example.com/", Method: "post", Header: map[string][]string{"X-A": {"1"}}, Interval: time.Second, Timeout: time.Second},
		"tcp":                       {ID: "db", TCP: "localhost:5432", Interval: 10 * time.Second},
		"tcp v6":                    {ID: "db", TCP: "[::1]:5432", Interval: 10 * time.Second},
		"grpc":                      {ID: "g", GRPC: "127.0.0.1:9090/my.Service", GRPCUseTLS: true, Interval: 10 * time.Second},
		"script":                    {ID: "s", ScriptArgs: []string{"/bin/true"}, Interval: 10 * time.Second},
		"ttl":                       {ID: "t", TTL: 30 * time.Second},
		"ttl with interval ignored": {ID: "t", TTL: 30 * time.Second, Interval: time.Second},
		"thresholds": {ID: "web", ServiceID: "web", HTTP: "http://x/", Interval: time.Second,
			SuccessBeforePassing: 2, FailuresBeforeWarning: 1, FailuresBeforeCritical: 3,
			DeregisterCriticalServiceAfter: time.Minute, Status: catalog.StatusPassing},
	}
	for name, c := range valid {
		t.Run("valid/"+name, func(t *testing.T) {
			if err := c.Validate(scripts); err != nil {
				t.Fatalf("Validate: %v", err)
			}
		})
	}

	invalid := []struct {
		name  string
		check Check
		want  []string // substrings of the error
	}{
		{"no kind", Check{ID: "x", Interval: time.Second}, []string{"check: says nothing to check"}},
		{"two kinds", Check{ID: "x", HTTP: "http://a/", TCP: "a:1", Interval: time.Second}, []string{"gives 2 kinds of check at once"}},
		{"missing interval", Check{ID: "x", HTTP: "http://a/"}, []string{"check.interval", "required for http checks"}},
		{"missing interval script", Check{ID: "x", ScriptArgs: []string{"/bin/true"}}, []string{"required for script checks"}},
		{"negative interval", Check{ID: "x", TCP: "a:1", Interval: -time.Second}, []string{"check.interval", "must not be negative"}},
		{"negative timeout", Check{ID: "x", TCP: "a:1", Interval: time.Second, Timeout: -1}, []string{"check.timeout", "must not be negative"}},
		{"timeout beyond interval", Check{ID: "x", TCP: "a:1", Interval: time.Second, Timeout: 2 * time.Second}, []string{"check.timeout", "longer than the interval"}},
		{"negative ttl", Check{ID: "x", TTL: -time.Second}, []string{"check.ttl", "must not be negative"}},
		{"negative thresholds", Check{ID: "x", TTL: time.Second, SuccessBeforePassing: -1, FailuresBeforeWarning: -2, FailuresBeforeCritical: -3},
			[]string{"check.success_before_passing: -1", "check.failures_before_warning: -2", "check.failures_before_critical: -3"}},
		{"negative deregister", Check{ID: "x", ServiceID: "s", TTL: time.Second, DeregisterCriticalServiceAfter: -time.Second}, []string{"check.deregister_critical_service_after", "negative"}},
		{"deregister without service", Check{ID: "x", TTL: time.Second, DeregisterCriticalServiceAfter: time.Second}, []string{"applies only to service checks"}},
		{"no id", Check{TTL: time.Second}, []string{"check.id", "must not be empty"}},
		{"bad url", Check{ID: "x", HTTP: "ftp://a/", Interval: time.Second}, []string{"check.http", "http:// or https://"}},
		{"url without host", Check{ID: "x", HTTP: "http:///x", Interval: time.Second}, []string{"check.http", "no host"}},
		{"bad method", Check{ID: "x", HTTP: "http://a/", Method: "GE T", Interval: time.Second}, []string{"check.method"}},
		{"bad header", Check{ID: "x", HTTP: "http://a/", Header: map[string][]string{"a b": nil}, Interval: time.Second}, []string{"check.header"}},
		{"tcp without port", Check{ID: "x", TCP: "localhost", Interval: time.Second}, []string{"check.tcp", "not host:port"}},
		{"tcp port out of range", Check{ID: "x", TCP: "localhost:70000", Interval: time.Second}, []string{"outside 1–65535"}},
		{"grpc without port", Check{ID: "x", GRPC: "localhost/svc", Interval: time.Second}, []string{"check.grpc", "host:port/service"}},
		{"empty program", Check{ID: "x", ScriptArgs: []string{""}, Interval: time.Second}, []string{"check.args"}},
		{"maintenance initial status", Check{ID: "x", TTL: time.Second, Status: catalog.StatusMaintenance}, []string{"initial status must be passing, warning or critical"}},
		{"long notes", Check{ID: "x", TTL: time.Second, Notes: strings.Repeat("n", catalog.MaxNotesLen+1)}, []string{"check.notes"}},
		{"alias", Check{ID: "x", AliasService: "web"}, []string{"rumor does not run alias checks"}},
		{"docker", Check{ID: "x", DockerContainerID: "c", ScriptArgs: []string{"true"}, Interval: time.Second}, []string{"rumor does not run docker checks"}},
		{"docker without args", Check{ID: "x", DockerContainerID: "c"}, []string{"DockerContainerID needs ScriptArgs"}},
		{"unsupported option", Check{ID: "x", TCP: "a:1", TCPUseTLS: true, Interval: time.Second}, []string{"TCPUseTLS", "not supported"}},
	}
	for _, tt := range invalid {
		t.Run("invalid/"+tt.name, func(t *testing.T) {
			err := tt.check.Validate(scripts)
			if err == nil {
				t.Fatal("Validate: no error")
			}
			if !errors.Is(err, catalog.ErrInvalid) {
				t.Errorf("error %v does not wrap catalog.ErrInvalid", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}

	t.Run("script checks disabled", func(t *testing.T) {
		c := Check{ID: "s", ScriptArgs: []string{"/bin/true"}, Interval: time.Second}
		err := c.Validate(Policy{})
		var fe *catalog.FieldError
		if !errors.As(err, &fe) || fe.Field != "check.args" || fe.Reason != ErrScriptChecksDisabled.Error() {
			t.Errorf("Validate without script checks: %v, want check.args: %v", err, ErrScriptChecksDisabled)
		}
	})
}

// TestServiceNormalize: Consul's defaults for a service and its checks.
func TestServiceNormalize(t *testing.T) {
	s := Service{Name: "web", Check: &Check{TTL: time.Second}, Checks: []Check{{ID: "own", TTL: time.Second}, {Name: "named", TTL: time.Second}}}
	s.Normalize()
	if s.ID != "web" || s.Weights != catalog.DefaultWeights || s.Check != nil || len(s.Checks) != 3 {
		t.Fatalf("normalized service = %+v", s)
	}
	for i, want := range []struct{ id, name string }{{"service:web:1", "Service 'web' check"}, {"own", "Service 'web' check"}, {"service:web:3", "named"}} {
		if c := s.Checks[i]; c.ID != want.id || c.Name != want.name || c.ServiceID != "web" {
			t.Errorf("check %d = %+v, want ID %q, Name %q, ServiceID web", i, c, want.id, want.name)
		}
	}
	again := s.Clone()
	again.Normalize()
	if !again.Equal(&s) {
		t.Errorf("Normalize is not idempotent: %+v then %+v", s, again)
	}

	one := Service{ID: "w1", Name: "web", Checks: []Check{{TTL: time.Second}}}
	one.Normalize()
	if one.Checks[0].ID != "service:w1" {
		t.Errorf("single check ID %q, want service:w1", one.Checks[0].ID)
	}

	alone := Check{Name: "mem", TTL: time.Second}
	alone.Normalize()
	if alone.ID != "mem" {
		t.Errorf("a check on its own gets ID %q, want its name", alone.ID)
	}
}

func TestServiceValidate(t *testing.T) {
	tests := []struct {
		name string
		svc  Service
		want string
	}{
		{"no name", Service{Port: 80}, "service.name"},
		{"bad port", Service{Name: "web", Port: -1}, "service.port"},
		{"check kind missing", Service{Name: "web", Checks: []Check{{}}}, "service.checks[0]: says nothing to check"},
		{"two kinds", Service{Name: "web", Checks: []Check{{HTTP: "http://x", TCP: "x:1", Interval: time.Second}}}, "2 kinds"},
		{"no interval", Service{Name: "web", Check: &Check{HTTP: "http://x"}}, "service.checks[0].interval: is required"},
		{"dup check", Service{Name: "web", Checks: []Check{{ID: "c", TTL: time.Second}, {ID: "c", TTL: time.Second}}}, `service.checks[1].id: "c" is used twice`},
		{"foreign service", Service{Name: "web", Checks: []Check{{ServiceID: "db", TTL: time.Second}}}, `service.checks[0].service_id: "db": a service's check belongs to that service ("web")`},
		{"tagged port", Service{Name: "web", Port: 80, TaggedAddresses: map[string]ServiceAddress{"wan": {Address: "192.0.2.1", Port: 81}}},
			`service.tagged_addresses["wan"].port: 81 differs from the service's port 80`},
		{"long check name", Service{Name: "web", Checks: []Check{{Name: strings.Repeat("n", catalog.MaxNameLen+1), TTL: time.Second}}}, "service.checks[0].name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.svc.Clone()
			s.Normalize()
			err := s.Validate(scripts)
			if !errors.Is(err, catalog.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate: %v, want ErrInvalid mentioning %q", err, tt.want)
			}
		})
	}
	ok := Service{Name: "web", Port: 80, TaggedAddresses: map[string]ServiceAddress{"wan": {Address: "192.0.2.1", Port: 80}, "lan": {Address: "10.0.0.1"}},
		Check: &Check{HTTP: "http://127.0.0.1/", Interval: time.Second}}
	ok.Normalize()
	if err := ok.Validate(scripts); err != nil {
		t.Errorf("Validate(valid) = %v", err)
	}
}

// TestRecords: the records a definition publishes.
func TestRecords(t *testing.T) {
	s := Service{ID: "w1", Name: "web", Tags: []string{"a"}, Port: 80, Meta: map[string]string{"k": "v"},
		TaggedAddresses: map[string]ServiceAddress{"wan": {Address: "192.0.2.1", Port: 80}},
		Checks:          []Check{{HTTP: "http://x/", Interval: time.Second, Timeout: time.Second / 2, Notes: "n"}}}
	s.Normalize()
	r := s.Record()
	if r.ID != "w1" || r.Name != "web" || r.Weights != catalog.DefaultWeights || r.TaggedAddresses["wan"] != "192.0.2.1" || r.Meta["k"] != "v" {
		t.Errorf("Record = %+v", r)
	}
	s.Tags[0], s.Meta["k"] = "changed", "changed"
	if r.Tags[0] != "a" || r.Meta["k"] != "v" {
		t.Error("Record aliases the definition's tags or meta")
	}
	c := s.Checks[0].Record()
	want := catalog.Check{ID: "service:w1", Name: "Service 'web' check", ServiceID: "w1", Status: catalog.StatusCritical,
		Notes: "n", Type: TypeHTTP, Interval: time.Second, Timeout: time.Second / 2}
	if c != want {
		t.Errorf("check Record = %+v, want %+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("check record invalid: %v", err)
	}
}

func TestServiceEqual(t *testing.T) {
	a := Service{Name: "web", Tags: []string{}, Meta: map[string]string{}, Checks: []Check{{TTL: time.Second, Header: map[string][]string{}}}}
	b := Service{Name: "web", Checks: []Check{{TTL: time.Second}}}
	if !a.Equal(&b) {
		t.Error("empty and absent lists and maps differ")
	}
	b.Checks[0].TTL = 2 * time.Second
	if a.Equal(&b) {
		t.Error("different TTLs compare equal")
	}
}
