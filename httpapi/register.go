package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/rumor-sd/rumor/catalog"
)

// serviceRegistration is Consul's AgentServiceRegistration as it arrives. Field names
// match case-insensitively and with or without underscores (Consul accepts both the
// API's "EnableTagOverride" and config files' "enable_tag_override"); unknown fields
// are an error naming the field.
type serviceRegistration struct {
	Kind            string
	ID              string
	Name            string
	Tags            []string
	Port            int
	Address         string
	TaggedAddresses map[string]serviceAddress
	Meta            map[string]string
	Weights         *weights
	Check           *serviceCheck
	Checks          []*serviceCheck

	// EnableTagOverride is accepted and ignored: it lets Consul servers' anti-entropy
	// keep tags changed through the catalog API, and rumor has neither.
	EnableTagOverride bool

	// Accepted only empty, so clients that send them by default still work; anything
	// else asks for a feature rumor lacks.
	Namespace  string
	Partition  string
	SocketPath string
	Proxy      json.RawMessage
	Connect    json.RawMessage
	Locality   json.RawMessage
}

// serviceCheck is Consul's AgentServiceCheck. The agent validates and runs it.
type serviceCheck struct {
	CheckID                        string
	Name                           string
	ScriptArgs                     []string
	DockerContainerID              string
	Shell                          string
	Interval                       durationValue
	Timeout                        durationValue
	TTL                            durationValue
	HTTP                           string
	Header                         map[string][]string
	Method                         string
	Body                           string
	DisableRedirects               bool
	TCP                            string
	TCPUseTLS                      bool
	UDP                            string
	Status                         string
	Notes                          string
	TLSServerName                  string
	TLSSkipVerify                  bool
	GRPC                           string
	GRPCUseTLS                     bool
	H2PING                         string
	H2PingUseTLS                   bool
	OSService                      string
	AliasNode                      string
	AliasService                   string
	SuccessBeforePassing           int
	FailuresBeforeWarning          int
	FailuresBeforeCritical         int
	DeregisterCriticalServiceAfter durationValue
	OutputMaxSize                  int
}

// aliases maps other spellings Consul accepts (normalised: lower case, no
// underscores) to the field they fill, per struct.
var aliases = map[reflect.Type]map[string]string{
	reflect.TypeFor[serviceCheck](): {"id": "CheckID", "args": "ScriptArgs"},
}

// durationValue is a duration as Consul accepts it: a string such as "10s", or a
// number of nanoseconds. It keeps the text so errors can name the field.
type durationValue string

// UnmarshalJSON implements json.Unmarshaler.
func (d *durationValue) UnmarshalJSON(b []byte) error {
	switch {
	case string(b) == "null":
		*d = ""
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*d = durationValue(s)
	default:
		n, err := strconv.ParseInt(string(b), 10, 64)
		if err != nil {
			return fmt.Errorf("duration %s: want a string such as \"10s\" or nanoseconds", b)
		}
		*d = durationValue(strconv.FormatInt(n, 10) + "ns")
	}
	return nil
}

func (d durationValue) parse(field string) (time.Duration, error) {
	if d == "" {
		return 0, nil
	}
	// The same rules as health.ParseDuration, which this package may not import
	// (adapters never import each other): a unit is required, negatives are refused.
	v, err := time.ParseDuration(strings.TrimSpace(string(d)))
	if _, nerr := strconv.ParseFloat(strings.TrimSpace(string(d)), 64); err != nil && nerr == nil {
		return 0, fmt.Errorf("%s: invalid duration %q: it has no unit: write e.g. \"%ss\" or \"%sms\"", field, string(d), string(d), string(d))
	}
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%s: invalid duration %q: want e.g. \"10s\" or \"1m30s\"", field, string(d))
	}
	return v, nil
}

// decodeRegistration reads and converts a registration body (at most MaxBodyBytes).
func decodeRegistration(w http.ResponseWriter, r *http.Request) (Registration, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		return Registration{}, err
	}
	return ParseRegistration(body)
}

// ParseRegistration decodes a JSON service registration in Consul's schema (the
// body of PUT /v1/agent/service/register, or the value of a definition file's
// "service" key) into a Registration. Errors name the offending field.
func ParseRegistration(body []byte) (Registration, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return Registration{}, errors.New("the body is empty: send a JSON service registration such as {\"Name\": \"web\", \"Port\": 80}")
	}
	canon, err := canonicalKeys(body, reflect.TypeFor[serviceRegistration]())
	if err != nil {
		return Registration{}, err
	}
	dec := json.NewDecoder(bytes.NewReader(canon))
	dec.DisallowUnknownFields()
	var sr serviceRegistration
	if err := dec.Decode(&sr); err != nil {
		return Registration{}, describeJSONError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Registration{}, errors.New("unexpected data after the registration object: send exactly one JSON object")
	}
	return sr.convert()
}

// describeJSONError rewrites encoding/json's errors in the API's words.
func describeJSONError(err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		return fmt.Errorf("field %s: got a JSON %s, want %s", te.Field, te.Value, jsonKind(te.Type))
	case errors.As(err, &se):
		return fmt.Errorf("invalid JSON at byte %d: %v", se.Offset, se)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return fmt.Errorf("unknown field %s: see Consul's service registration fields", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return err
}

func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int64, reflect.Uint8, reflect.Uint16, reflect.Uint64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice:
		return "a list"
	case reflect.Map, reflect.Struct, reflect.Pointer:
		return "an object"
	}
	return t.String()
}

// normKey folds a field name for matching: lower case, underscores dropped.
func normKey(s string) string { return strings.ToLower(strings.ReplaceAll(s, "_", "")) }

// fieldFor finds the struct field key names in t.
func fieldFor(t reflect.Type, key string) (reflect.StructField, bool) {
	k := normKey(key)
	if alias, ok := aliases[t][k]; ok {
		k = normKey(alias)
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.IsExported() && normKey(f.Name) == k {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// canonicalKeys rewrites the keys of every JSON object that decodes into a struct of
// type t (recursively) to the Go field names, so snake_case and aliases decode. Keys
// of maps (Meta, Header) are data and stay as they are. Malformed JSON is returned
// unchanged for the decoder to report.
func canonicalKeys(raw []byte, t reflect.Type) ([]byte, error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		var obj map[string]json.RawMessage
		if json.Unmarshal(raw, &obj) != nil || obj == nil {
			return raw, nil
		}
		out := make(map[string]json.RawMessage, len(obj))
		from := make(map[string]string, len(obj))
		for k, v := range obj {
			f, ok := fieldFor(t, k)
			if !ok {
				out[k] = v // unknown: the decoder names it
				continue
			}
			if prev, dup := from[f.Name]; dup {
				return nil, fmt.Errorf("field %s is given twice, as %q and %q", f.Name, prev, k)
			}
			cv, err := canonicalKeys(v, f.Type)
			if err != nil {
				return nil, err
			}
			out[f.Name], from[f.Name] = cv, k
		}
		return json.Marshal(out)
	case reflect.Slice, reflect.Map:
		et := t.Elem()
		for et.Kind() == reflect.Pointer {
			et = et.Elem()
		}
		if et.Kind() != reflect.Struct {
			return raw, nil
		}
		if t.Kind() == reflect.Slice {
			var arr []json.RawMessage
			if json.Unmarshal(raw, &arr) != nil || arr == nil {
				return raw, nil
			}
			for i := range arr {
				cv, err := canonicalKeys(arr[i], et)
				if err != nil {
					return nil, err
				}
				arr[i] = cv
			}
			return json.Marshal(arr)
		}
		var m map[string]json.RawMessage
		if json.Unmarshal(raw, &m) != nil || m == nil {
			return raw, nil
		}
		for k, v := range m {
			cv, err := canonicalKeys(v, et)
			if err != nil {
				return nil, err
			}
			m[k] = cv
		}
		return json.Marshal(m)
	}
	return raw, nil
}

// present reports whether an optional JSON value was given (not absent, not null).
func present(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return s != "" && s != "null"
}

// convert turns the wire form into a Registration, rejecting what rumor cannot keep.
func (sr *serviceRegistration) convert() (Registration, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if sr.Namespace != "" && sr.Namespace != "default" || sr.Partition != "" && sr.Partition != "default" {
		bad("Namespace/Partition: rumor has no namespaces or partitions; leave them empty or \"default\"")
	}
	if sr.SocketPath != "" {
		bad("SocketPath: rumor registers network services only; give Address and Port")
	}
	if present(sr.Proxy) || present(sr.Connect) {
		bad("Proxy/Connect: rumor does not do Connect (service mesh)")
	}
	if present(sr.Locality) {
		bad("Locality: rumor does not support service locality")
	}
	svc := catalog.Service{
		ID: sr.ID, Name: sr.Name, Tags: sr.Tags, Address: sr.Address, Port: sr.Port,
		Meta: sr.Meta, Kind: sr.Kind, Weights: catalog.DefaultWeights,
	}
	if sr.Weights != nil {
		svc.Weights = catalog.Weights{Passing: sr.Weights.Passing, Warning: sr.Weights.Warning}
	}
	if len(sr.TaggedAddresses) > 0 {
		svc.TaggedAddresses = make(map[string]string, len(sr.TaggedAddresses))
		for k, a := range sr.TaggedAddresses {
			if a.Port != 0 && a.Port != sr.Port {
				bad("TaggedAddresses[%q].Port: %d differs from the service's port %d; rumor keeps one port per service", k, a.Port, sr.Port)
			}
			svc.TaggedAddresses[k] = a.Address
		}
	}
	reg := Registration{Service: svc}
	checks := sr.Checks
	if sr.Check != nil {
		checks = append([]*serviceCheck{sr.Check}, checks...)
	}
	for i, c := range checks {
		if c == nil {
			continue
		}
		field := fmt.Sprintf("Checks[%d]", i)
		if sr.Check != nil {
			field = "Check"
			if i > 0 {
				field = fmt.Sprintf("Checks[%d]", i-1)
			}
		}
		def, err := c.convert(field)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		reg.Checks = append(reg.Checks, def)
	}
	return reg, errors.Join(errs...)
}

func (c *serviceCheck) convert(field string) (CheckDefinition, error) {
	d := CheckDefinition{
		ID: c.CheckID, Name: c.Name, Notes: c.Notes,
		ScriptArgs: c.ScriptArgs, DockerContainerID: c.DockerContainerID, Shell: c.Shell,
		HTTP: c.HTTP, Method: c.Method, Header: c.Header, Body: c.Body,
		DisableRedirects: c.DisableRedirects, TLSServerName: c.TLSServerName,
		TLSSkipVerify: c.TLSSkipVerify, TCP: c.TCP, TCPUseTLS: c.TCPUseTLS, UDP: c.UDP,
		GRPC: c.GRPC, GRPCUseTLS: c.GRPCUseTLS, H2PING: c.H2PING, H2PingUseTLS: c.H2PingUseTLS,
		OSService: c.OSService, AliasNode: c.AliasNode, AliasService: c.AliasService,
		SuccessBeforePassing: c.SuccessBeforePassing, FailuresBeforeWarning: c.FailuresBeforeWarning,
		FailuresBeforeCritical: c.FailuresBeforeCritical, OutputMaxSize: c.OutputMaxSize,
	}
	var errs []error
	var err error
	for _, p := range []struct {
		name string
		v    durationValue
		dst  *time.Duration
	}{
		{"Interval", c.Interval, &d.Interval},
		{"Timeout", c.Timeout, &d.Timeout},
		{"TTL", c.TTL, &d.TTL},
		{"DeregisterCriticalServiceAfter", c.DeregisterCriticalServiceAfter, &d.DeregisterCriticalServiceAfter},
	} {
		if *p.dst, err = p.v.parse(field + "." + p.name); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Status != "" {
		st, err := catalog.ParseStatus(c.Status)
		if err != nil || st == catalog.StatusMaintenance {
			errs = append(errs, fmt.Errorf("%s.Status: %q: want passing, warning or critical", field, c.Status))
		}
		d.Status = st
	}
	return d, errors.Join(errs...)
}
