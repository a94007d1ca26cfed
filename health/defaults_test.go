package health

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/catalog"
)

func TestDefinitionValidate(t *testing.T) {
	valid := map[string]Definition{
		"http":                      {ID: "web", HTTP: "http://127.0.0.1:8080/health", Interval: 10 * time.Second},
		"https":                     {ID: "web", HTTP: "https://example.com/", Method: "post", Header: map[string][]string{"X-A": {"1"}}, Interval: time.Second, Timeout: time.Second},
		"tcp":                       {ID: "db", TCP: "localhost:5432", Interval: 10 * time.Second},
		"tcp v6":                    {ID: "db", TCP: "[::1]:5432", Interval: 10 * time.Second},
		"grpc":                      {ID: "g", GRPC: "127.0.0.1:9090/my.Service", GRPCUseTLS: true, Interval: 10 * time.Second},
		"script":                    {ID: "s", Args: []string{"/bin/true"}, Interval: 10 * time.Second},
		"ttl":                       {ID: "t", TTL: 30 * time.Second},
		"ttl with interval ignored": {ID: "t", TTL: 30 * time.Second, Interval: time.Second},
		"thresholds": {ID: "web", ServiceID: "web", HTTP: "http://x/", Interval: time.Second,
			SuccessBeforePassing: 2, FailuresBeforeWarning: 1, FailuresBeforeCritical: 3,
			DeregisterCriticalServiceAfter: time.Minute, InitialStatus: catalog.StatusPassing},
	}
	for name, d := range valid {
		t.Run("valid/"+name, func(t *testing.T) {
			if err := d.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
		})
	}

	invalid := []struct {
		name string
		def  Definition
		want []string // substrings of the error
	}{
		{"no type", Definition{ID: "x", Interval: time.Second}, []string{"no check type", "http, tcp, grpc, args (script) or ttl"}},
		{"ambiguous", Definition{ID: "x", HTTP: "http://a/", TCP: "a:1", Interval: time.Second}, []string{"ambiguous check type: http, tcp"}},
		{"missing interval", Definition{ID: "x", HTTP: "http://a/"}, []string{"check.interval", "required for http checks"}},
		{"missing interval script", Definition{ID: "x", Args: []string{"/bin/true"}}, []string{"required for script checks"}},
		{"negative interval", Definition{ID: "x", TCP: "a:1", Interval: -time.Second}, []string{"check.interval", "must not be negative"}},
		{"negative timeout", Definition{ID: "x", TCP: "a:1", Interval: time.Second, Timeout: -1}, []string{"check.timeout", "must not be negative"}},
		{"timeout beyond interval", Definition{ID: "x", TCP: "a:1", Interval: time.Second, Timeout: 2 * time.Second}, []string{"check.timeout", "longer than the interval"}},
		{"negative ttl", Definition{ID: "x", TTL: -time.Second}, []string{"check.ttl", "must not be negative"}},
		{"negative thresholds", Definition{ID: "x", TTL: time.Second, SuccessBeforePassing: -1, FailuresBeforeWarning: -2, FailuresBeforeCritical: -3},
			[]string{"check.success_before_passing: -1", "check.failures_before_warning: -2", "check.failures_before_critical: -3"}},
		{"negative deregister", Definition{ID: "x", ServiceID: "s", TTL: time.Second, DeregisterCriticalServiceAfter: -time.Second}, []string{"check.deregister_critical_service_after", "negative"}},
		{"deregister without service", Definition{ID: "x", TTL: time.Second, DeregisterCriticalServiceAfter: time.Second}, []string{"applies only to service checks"}},
		{"no id", Definition{TTL: time.Second}, []string{"check.id", "must not be empty"}},
		{"bad url", Definition{ID: "x", HTTP: "ftp://a/", Interval: time.Second}, []string{"check.http", "http:// or https://"}},
		{"url without host", Definition{ID: "x", HTTP: "http:///x", Interval: time.Second}, []string{"check.http", "no host"}},
		{"bad method", Definition{ID: "x", HTTP: "http://a/", Method: "GE T", Interval: time.Second}, []string{"check.method"}},
		{"bad header", Definition{ID: "x", HTTP: "http://a/", Header: map[string][]string{"a b": nil}, Interval: time.Second}, []string{"check.header"}},
		{"tcp without port", Definition{ID: "x", TCP: "localhost", Interval: time.Second}, []string{"check.tcp", "not host:port"}},
		{"tcp port out of range", Definition{ID: "x", TCP: "localhost:70000", Interval: time.Second}, []string{"outside 1–65535"}},
		{"grpc without port", Definition{ID: "x", GRPC: "localhost/svc", Interval: time.Second}, []string{"check.grpc", "host:port/service"}},
		{"empty program", Definition{ID: "x", Args: []string{""}, Interval: time.Second}, []string{"check.args"}},
		{"maintenance initial status", Definition{ID: "x", TTL: time.Second, InitialStatus: catalog.StatusMaintenance}, []string{"initial status maintenance"}},
		{"long notes", Definition{ID: "x", TTL: time.Second, Notes: strings.Repeat("n", catalog.MaxNotesLen+1)}, []string{"check.notes"}},
	}
	for _, tt := range invalid {
		t.Run("invalid/"+tt.name, func(t *testing.T) {
			err := tt.def.Validate()
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
}

func TestDefinitionDefaults(t *testing.T) {
	tests := []struct {
		name string
		def  Definition
		want func(d Definition) bool
	}{
		{"initial status critical", Definition{ID: "x", TTL: time.Second},
			func(d Definition) bool { return d.InitialStatus == catalog.StatusCritical }},
		{"method GET", Definition{ID: "x", HTTP: "http://a/", Interval: time.Minute},
			func(d Definition) bool { return d.Method == "GET" && d.Timeout == DefaultTimeout }},
		{"timeout capped by interval", Definition{ID: "x", TCP: "a:1", Interval: 2 * time.Second},
			func(d Definition) bool { return d.Timeout == 2*time.Second }},
		{"script timeout", Definition{ID: "x", Args: []string{"a"}, Interval: time.Hour},
			func(d Definition) bool { return d.Timeout == DefaultScriptTimeout }},
		{"warning threshold follows critical", Definition{ID: "x", TTL: time.Second, FailuresBeforeCritical: 3},
			func(d Definition) bool { return d.FailuresBeforeWarning == 3 }},
		{"ttl has no interval", Definition{ID: "x", TTL: time.Second, Interval: time.Second, Timeout: time.Second},
			func(d Definition) bool { return d.Interval == 0 && d.Timeout == 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.def.withDefaults(); !tt.want(got) {
				t.Errorf("withDefaults = %+v", got)
			}
		})
	}

	t.Run("deep copy", func(t *testing.T) {
		d := Definition{ID: "x", HTTP: "http://a/", Interval: time.Second, Header: map[string][]string{"A": {"1"}}}
		n := d.withDefaults()
		d.Header["A"][0] = "2"
		if n.Header["A"][0] != "1" {
			t.Error("withDefaults aliases the caller's header map")
		}
	})

	t.Run("Check record", func(t *testing.T) {
		d := Definition{ID: "web", Name: "Web", ServiceID: "web1", HTTP: "http://a/", Interval: time.Second, Notes: "n"}
		got := d.Check()
		want := catalog.Check{ID: "web", Name: "Web", ServiceID: "web1", Status: catalog.StatusCritical, Notes: "n",
			Type: TypeHTTP, Interval: time.Second, Timeout: time.Second}
		if got != want {
			t.Errorf("Check() = %+v, want %+v", got, want)
		}
		if err := got.Validate(); err != nil {
			t.Errorf("record invalid: %v", err)
		}
	})
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{"", 0, ""},
		{"  ", 0, ""},
		{"0", 0, ""},
		{"10s", 10 * time.Second, ""},
		{"1m30s", 90 * time.Second, ""},
		{"500ms", 500 * time.Millisecond, ""},
		{" 2h ", 2 * time.Hour, ""},
		{"10", 0, `duration "10" has no unit: write e.g. "10s" or "10ms"`},
		{"1.5", 0, "has no unit"},
		{"ten seconds", 0, `want a number with a unit, e.g. "10s"`},
		{"-5s", 0, "must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseDuration(tt.in)
			if tt.wantErr == "" {
				if err != nil || got != tt.want {
					t.Fatalf("ParseDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, catalog.ErrInvalid) {
				t.Fatalf("ParseDuration(%q) error %v, want one containing %q and wrapping ErrInvalid", tt.in, err, tt.wantErr)
			}
		})
	}
}
