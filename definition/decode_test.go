package definition

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/catalog"
)

// TestDecodeService decodes Consul's AgentServiceRegistration in the API's spelling
// and in config files' (Consul accepts both on either path).
func TestDecodeService(t *testing.T) {
	api := `{
		"Name": "api", "ID": "api-1", "Tags": ["a"], "Port": 9000, "Address": "10.0.0.1",
		"Meta": {"k": "v", "a_b": "c"}, "Weights": {"Passing": 5, "Warning": 2},
		"TaggedAddresses": {"wan": {"Address": "1.2.3.4", "Port": 9000}},
		"EnableTagOverride": true, "Kind": "",
		"Check": {"CheckID": "api-ttl", "TTL": "30s", "Status": "passing"},
		"Checks": [{"HTTP": "http://127.0.0.1:9000/health", "Interval": "10s", "Timeout": 1000000000, "Header": {"X-A": ["b"]}}],
		"Connect": null, "Proxy": null, "Namespace": "", "Partition": "default", "SocketPath": "", "Locality": null
	}`
	want := Service{ID: "api-1", Name: "api", Tags: []string{"a"}, Port: 9000, Address: "10.0.0.1",
		Meta: map[string]string{"k": "v", "a_b": "c"}, Weights: catalog.Weights{Passing: 5, Warning: 2},
		TaggedAddresses: map[string]ServiceAddress{"wan": {Address: "1.2.3.4", Port: 9000}}, EnableTagOverride: true,
		Check: &Check{ID: "api-ttl", TTL: 30 * time.Second, Status: catalog.StatusPassing},
		Checks: []Check{{HTTP: "http://127.0.0.1:9000/health", Interval: 10 * time.Second, Timeout: time.Second,
			Header: map[string][]string{"X-A": {"b"}}}}}
	got, err := DecodeService([]byte(api))
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("DecodeService(API spelling) = %+v, %v\nwant %+v", got, err, want)
	}

	snake := `{"name": "cron", "port": 1, "enable-tag-override": false,
		"checks": [{"id": "c1", "args": ["/bin/true"], "interval": "1m", "deregister_critical_service_after": "90m",
		"tls_skip_verify": true, "success_before_passing": 2}]}`
	got, err = DecodeService([]byte(snake))
	wantSnake := Service{Name: "cron", Port: 1, Checks: []Check{{ID: "c1", ScriptArgs: []string{"/bin/true"}, Interval: time.Minute,
		DeregisterCriticalServiceAfter: 90 * time.Minute, TLSSkipVerify: true, SuccessBeforePassing: 2}}}
	if err != nil || !reflect.DeepEqual(got, wantSnake) {
		t.Fatalf("DecodeService(config spelling) = %+v, %v\nwant %+v", got, err, wantSnake)
	}
}

// TestDecodeErrors: every refusal names the field at fault.
func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name, body string
		want       []string
	}{
		{"empty", ``, []string{"the body is empty"}},
		{"malformed", `{"Name": `, []string{"invalid JSON"}},
		{"trailing data", `{"Name": "x"} {`, []string{"unexpected data after the registration object"}},
		{"unknown field", `{"Name": "x", "Bogus": 1}`, []string{`unknown field "Bogus"`}},
		{"unknown check field", `{"Name": "x", "Check": {"TTL": "1s", "Nope": 1}}`, []string{`Check: unknown field "Nope"`}},
		{"wrong type", `{"Name": "x", "Port": "80"}`, []string{"field Port: got a JSON string, want a number"}},
		{"duplicate key", `{"Name": "x", "name": "y"}`, []string{`field Name is given twice, as "Name" and "name"`}},
		{"id and check id", `{"Name": "x", "Check": {"ID": "a", "CheckID": "b", "TTL": "1s"}}`, []string{"Check: field ID is given twice"}},
		{"duration without unit", `{"Name": "x", "Check": {"TTL": "10"}}`, []string{`Check.TTL: "10" is not a duration (use 10s)`}},
		{"bad duration", `{"Name": "x", "Checks": [{"Interval": "soon"}]}`, []string{`Checks[0].Interval: "soon" is not a duration (use e.g. 10s, 500ms or 1m30s)`}},
		{"negative duration", `{"Name": "x", "Checks": [{"TTL": "-1s"}]}`, []string{`Checks[0].TTL: "-1s" must not be negative`}},
		{"negative nanoseconds", `{"Name": "x", "Checks": [{"TTL": -5}]}`, []string{"Checks[0].TTL: -5 is not a duration"}},
		{"fractional nanoseconds", `{"Name": "x", "Checks": [{"TTL": 1.5}]}`, []string{"Checks[0].TTL: 1.5 is not a duration"}},
		{"maintenance status", `{"Name": "x", "Checks": [{"TTL": "1s", "Status": "maintenance"}]}`, []string{`Checks[0].Status: "maintenance": want passing, warning or critical`}},
		{"numeric status", `{"Name": "x", "Checks": [{"TTL": "1s", "Status": 1}]}`, []string{"Checks[0].Status: want passing, warning or critical, got 1"}},
		{"namespace", `{"Name": "x", "Namespace": "team-a"}`, []string{"rumor has no namespaces or partitions"}},
		{"socket path", `{"Name": "x", "SocketPath": "/run/x.sock"}`, []string{"SocketPath: rumor registers network services only"}},
		{"connect", `{"Name": "x", "Connect": {"Native": true}}`, []string{"Proxy/Connect: rumor does not do Connect"}},
		{"locality", `{"Name": "x", "Locality": {"Region": "r"}}`, []string{"Locality: rumor does not support service locality"}},
		{"several at once", `{"Name": "x", "Bogus": 1, "Check": {"TTL": "10"}}`, []string{`unknown field "Bogus"`, `Check.TTL: "10" is not a duration`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeService([]byte(tt.body))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestDecodeCheck decodes Consul's AgentCheckRegistration.
func TestDecodeCheck(t *testing.T) {
	got, err := DecodeCheck([]byte(`{"ID": "mem", "Name": "Memory", "service_id": "web", "TTL": "30s", "Status": "warning", "Namespace": "default"}`))
	want := Check{ID: "mem", Name: "Memory", ServiceID: "web", TTL: 30 * time.Second, Status: catalog.StatusWarning}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("DecodeCheck = %+v, %v; want %+v", got, err, want)
	}
	for body, wantErr := range map[string]string{
		``:                                       "the body is empty",
		`null`:                                   "the body is null",
		`[1]`:                                    "got a JSON array",
		`{"Name": "x", "TTL": "soon"}`:           `check.TTL: "soon" is not a duration`,
		`{"Name": "x", "TTL": "1s", "Bogus": 1}`: `check: unknown field "Bogus"`,
		`{"Name": "x", "Partition": "p"}`:        "no namespaces or partitions",
	} {
		if _, err := DecodeCheck([]byte(body)); err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("DecodeCheck(%s) error %v, want one containing %q", body, err, wantErr)
		}
	}
}

// TestEncodeRoundTrip: encoding/json writes a definition as the decoder reads it, so
// the CLI can send what the config reader decoded and the agent can persist it.
func TestEncodeRoundTrip(t *testing.T) {
	in := Service{ID: "w", Name: "web", Port: 80, Weights: catalog.Weights{Passing: 3, Warning: 1},
		TaggedAddresses: map[string]ServiceAddress{"wan": {Address: "192.0.2.1"}},
		Check:           &Check{HTTP: "http://x/", Interval: time.Second, Status: catalog.StatusPassing},
		Checks:          []Check{{ID: "t", ScriptArgs: []string{"a", "b"}, Interval: time.Minute, Timeout: time.Second}}}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := DecodeService(b)
	if err != nil || !reflect.DeepEqual(in, out) {
		t.Errorf("round trip through %s = %+v, %v; want %+v", b, out, err, in)
	}
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
		{"10", 0, `"10" is not a duration (use 10s)`},
		{"1.5", 0, `(use 1.5s)`},
		{"ten seconds", 0, `"ten seconds" is not a duration (use e.g. 10s, 500ms or 1m30s)`},
		{"-5s", 0, `"-5s" must not be negative`},
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

func TestNormKeyAndField(t *testing.T) {
	for _, k := range []string{"EnableTagOverride", "enable_tag_override", "enable-tag-override", "ENABLETAGOVERRIDE"} {
		if f, ok := Field(reflectType[Service](), k); !ok || f.Name != "EnableTagOverride" {
			t.Errorf("Field(Service, %q) = %v, %v", k, f.Name, ok)
		}
	}
	for k, want := range map[string]string{"CheckID": "ID", "check_id": "ID", "id": "ID", "args": "ScriptArgs", "ScriptArgs": "ScriptArgs", "h2ping": "H2PING"} {
		if f, ok := Field(reflectType[Check](), k); !ok || f.Name != want {
			t.Errorf("Field(Check, %q) = %v, %v; want %s", k, f.Name, ok, want)
		}
	}
	if _, ok := Field(reflectType[Check](), "intervall"); ok {
		t.Error("Field found a field for a misspelt key")
	}
}

func reflectType[T any]() reflect.Type { return reflect.TypeFor[T]() }

func FuzzDecodeService(f *testing.F) {
	for _, s := range []string{`{"Name": "web", "Port": 80, "Check": {"TTL": "10s"}}`,
		`{"name": "web", "checks": [{"args": ["x"], "interval": "1s"}]}`, `null`, `[]`, `"x"`, `{"Checks": null}`,
		`{"Checks": [null]}`, `{"TaggedAddresses": null}`, `{"Weights": null, "Check": null}`, `{"Check": {"TTL": 1000000000}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeService(b)
		if err != nil {
			return
		}
		// What is accepted encodes to JSON that decodes to the same definition.
		enc, err := json.Marshal(s)
		if err != nil {
			t.Fatalf("encode %+v: %v", s, err)
		}
		again, err := DecodeService(enc)
		if err != nil || !s.Equal(&again) {
			t.Fatalf("re-decoding %s = %+v, %v; want %+v", enc, again, err, s)
		}
	})
}

func FuzzDecodeCheck(f *testing.F) {
	f.Add([]byte(`{"ID": "mem", "Name": "Memory", "ServiceID": "web", "TTL": "30s", "Status": "passing"}`))
	f.Add([]byte(`{"name": "disk", "args": ["/bin/true"], "interval": "1m", "service_id": ""}`))
	f.Add([]byte(`{"Name": "x", "Header": {"a": ["b"]}, "HTTP": "http://x/", "Interval": 1000000000}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCheck(b)
		if err == nil && (c.TTL < 0 || c.Interval < 0 || c.Timeout < 0) {
			t.Errorf("accepted a negative duration: %+v", c)
		}
	})
}

// sampleValue returns a JSON value for a field of type t that decodes to a non-zero
// value, and the value it decodes to.
func sampleValue(t *testing.T, ft reflect.Type) (string, any) {
	t.Helper()
	switch {
	case ft == reflect.TypeFor[time.Duration]():
		return `"7s"`, 7 * time.Second
	case ft == reflect.TypeFor[catalog.Status]():
		return `"warning"`, catalog.StatusWarning
	}
	switch ft.Kind() {
	case reflect.String:
		return `"x"`, "x"
	case reflect.Bool:
		return `true`, true
	case reflect.Int:
		return `3`, 3
	case reflect.Slice:
		return `["a"]`, []string{"a"}
	case reflect.Map:
		return `{"K": ["v"]}`, map[string][]string{"K": {"v"}}
	}
	t.Fatalf("no sample for %s", ft)
	return "", nil
}

// TestEveryCheckFieldDecodes: a field added to Check is decoded from JSON, in its Go
// name and in config files' snake_case, with no other change: the decoder finds
// fields by reflection. (The config reader's own test does the same for files.)
func TestEveryCheckFieldDecodes(t *testing.T) {
	ct := reflect.TypeFor[Check]()
	for i := range ct.NumField() {
		f := ct.Field(i)
		raw, want := sampleValue(t, f.Type)
		for _, key := range []string{f.Name, snakeCase(f.Name)} {
			c, err := DecodeCheck([]byte(`{"` + key + `": ` + raw + `}`))
			if err != nil {
				t.Errorf("%s as %q: %v", f.Name, key, err)
				continue
			}
			if got := reflect.ValueOf(c).Field(i).Interface(); !reflect.DeepEqual(got, want) {
				t.Errorf("%s as %q decoded to %v, want %v", f.Name, key, got, want)
			}
		}
	}
}

// snakeCase spells a Go field name as Consul's config files do ("TCPUseTLS" →
// "tcp_use_tls").
func snakeCase(name string) string {
	var b strings.Builder
	rs := []rune(name)
	for i, r := range rs {
		lower := strings.ToLower(string(r))
		if i > 0 && lower != string(r) && (strings.ToLower(string(rs[i-1])) == string(rs[i-1]) ||
			i+1 < len(rs) && strings.ToLower(string(rs[i+1])) == string(rs[i+1])) {
			b.WriteByte('_')
		}
		b.WriteString(lower)
	}
	return b.String()
}
