package health

import (
	"testing"
	"time"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/definition"
)

func TestDefaults(t *testing.T) {
	tests := []struct {
		name string
		def  definition.Check
		want func(d definition.Check) bool
	}{
		{"initial status critical", definition.Check{ID: "x", TTL: time.Second},
			func(d definition.Check) bool { return d.Status == catalog.StatusCritical }},
		{"method GET", definition.Check{ID: "x", HTTP: "http://a/", Interval: time.Minute},
			func(d definition.Check) bool { return d.Method == "GET" && d.Timeout == DefaultTimeout }},
		{"timeout capped by interval", definition.Check{ID: "x", TCP: "a:1", Interval: 2 * time.Second},
			func(d definition.Check) bool { return d.Timeout == 2*time.Second }},
		{"script timeout", definition.Check{ID: "x", ScriptArgs: []string{"a"}, Interval: time.Hour},
			func(d definition.Check) bool { return d.Timeout == DefaultScriptTimeout }},
		{"warning threshold follows critical", definition.Check{ID: "x", TTL: time.Second, FailuresBeforeCritical: 3},
			func(d definition.Check) bool { return d.FailuresBeforeWarning == 3 }},
		{"ttl has no interval", definition.Check{ID: "x", TTL: time.Second, Interval: time.Second, Timeout: time.Second},
			func(d definition.Check) bool { return d.Interval == 0 && d.Timeout == 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := withDefaults(tt.def); !tt.want(got) {
				t.Errorf("withDefaults = %+v", got)
			}
		})
	}

	t.Run("deep copy", func(t *testing.T) {
		d := definition.Check{ID: "x", HTTP: "http://a/", Interval: time.Second, Header: map[string][]string{"A": {"1"}}}
		n := withDefaults(d)
		d.Header["A"][0] = "2"
		if n.Header["A"][0] != "1" {
			t.Error("withDefaults aliases the caller's header map")
		}
	})

	t.Run("record", func(t *testing.T) {
		d := withDefaults(definition.Check{ID: "web", Name: "Web", ServiceID: "web1", HTTP: "http://a/", Interval: time.Second, Notes: "n"})
		got := d.Record()
		want := catalog.Check{ID: "web", Name: "Web", ServiceID: "web1", Status: catalog.StatusCritical, Notes: "n",
			Type: definition.TypeHTTP, Interval: time.Second, Timeout: time.Second}
		if got != want {
			t.Errorf("Record() = %+v, want %+v", got, want)
		}
	})
}
