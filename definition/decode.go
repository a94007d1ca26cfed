package definition

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/rumor-sd/rumor/catalog"
)

// DecodeService decodes a service definition written in JSON in Consul's schema: the
// body of PUT /v1/agent/service/register, or the value of a definition file's
// "service" key. Keys match as Consul matches them (see [Field]); durations are
// strings such as "10s" or numbers of nanoseconds; a check's Status is its name.
// Unknown keys are errors; Namespace and Partition are accepted empty or "default",
// SocketPath empty, and Proxy, Connect and Locality absent or null, so clients that
// send them by default still work. Every error names its field ("Checks[0].TTL: …").
// The result is as written: call Normalize and Validate before using it.
func DecodeService(body []byte) (Service, error) {
	var s Service
	if len(bytes.TrimSpace(body)) == 0 {
		return s, errors.New("the body is empty: send a JSON service registration such as {\"Name\": \"web\", \"Port\": 80}")
	}
	return s, decodeInto(body, &s, "", "unexpected data after the registration object: send exactly one JSON object")
}

// DecodeCheck decodes a check registered on its own, written in JSON in Consul's
// schema (AgentCheckRegistration: the body of PUT /v1/agent/check/register): ID,
// Name, Notes, ServiceID and a check's fields, matched as DecodeService matches them.
// Errors name the field ("check.TTL: …").
func DecodeCheck(body []byte) (Check, error) {
	var c Check
	switch t := bytes.TrimSpace(body); {
	case len(t) == 0:
		return c, errors.New("the body is empty: send a JSON check such as {\"Name\": \"mem\", \"TTL\": \"30s\"}")
	case string(t) == "null":
		return c, errors.New("the body is null: send a JSON object")
	}
	return c, decodeInto(body, &c, "check", "unexpected data after the check object: send exactly one JSON object")
}

// decodeInto decodes one JSON value into dst (a pointer to a definition type),
// through the key matching and value conversions of canonical.
func decodeInto(body []byte, dst any, root, trailing string) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return describeJSONError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New(trailing)
	}
	var cz canonicalizer
	canon := cz.canonical(raw, reflect.TypeOf(dst).Elem(), root)
	if len(cz.errs) > 0 {
		return errors.Join(cz.errs...)
	}
	strict := json.NewDecoder(bytes.NewReader(canon))
	strict.DisallowUnknownFields()
	if err := strict.Decode(dst); err != nil {
		return describeJSONError(err)
	}
	return nil
}

// aliases are the other spellings Consul accepts for a field of a definition type:
// normalized key (see NormKey) → Go field name.
var aliases = map[reflect.Type]map[string]string{
	reflect.TypeFor[Check](): {"checkid": "ID", "args": "ScriptArgs"},
}

// tolerated are keys of Consul's JSON schema that name features rumor lacks, accepted
// only when they ask for nothing; the func returns why a value is refused.
var tolerated = map[reflect.Type]map[string]func(json.RawMessage) string{
	reflect.TypeFor[Service](): {
		"namespace":  onlyDefault("Namespace/Partition: rumor has no namespaces or partitions; leave them empty or \"default\""),
		"partition":  onlyDefault("Namespace/Partition: rumor has no namespaces or partitions; leave them empty or \"default\""),
		"socketpath": onlyEmpty("SocketPath: rumor registers network services only; give Address and Port"),
		"proxy":      onlyNull("Proxy/Connect: rumor does not do Connect (service mesh)"),
		"connect":    onlyNull("Proxy/Connect: rumor does not do Connect (service mesh)"),
		"locality":   onlyNull("Locality: rumor does not support service locality"),
	},
	reflect.TypeFor[Check](): {
		"namespace": onlyDefault("Namespace/Partition: rumor has no namespaces or partitions; leave them empty or \"default\""),
		"partition": onlyDefault("Namespace/Partition: rumor has no namespaces or partitions; leave them empty or \"default\""),
	},
}

func onlyDefault(why string) func(json.RawMessage) string {
	return func(v json.RawMessage) string {
		var s string
		if isNull(v) || json.Unmarshal(v, &s) == nil && (s == "" || s == "default") {
			return ""
		}
		return why
	}
}

func onlyEmpty(why string) func(json.RawMessage) string {
	return func(v json.RawMessage) string {
		var s string
		if isNull(v) || json.Unmarshal(v, &s) == nil && s == "" {
			return ""
		}
		return why
	}
}

func onlyNull(why string) func(json.RawMessage) string {
	return func(v json.RawMessage) string {
		if isNull(v) {
			return ""
		}
		return why
	}
}

func isNull(v json.RawMessage) bool {
	s := strings.TrimSpace(string(v))
	return s == "" || s == "null"
}

// NormKey folds a key for matching: lower case, underscores and dashes dropped, so
// "enable_tag_override", "EnableTagOverride" and "enable-tag-override" are one key,
// as Consul's decoders treat them.
func NormKey(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '_' || r == '-' {
			return -1
		}
		return unicode.ToLower(r)
	}, s)
}

// Field finds the field of struct type t that a key names, as Consul matches keys in
// its HTTP API and config files: case, underscores and dashes do not matter, and the
// definition types' aliases count (a check's "CheckID" is its ID, "args" its
// ScriptArgs). The config reader matches its own keys with it too.
func Field(t reflect.Type, key string) (reflect.StructField, bool) {
	k := NormKey(key)
	if a, ok := aliases[t][k]; ok {
		return t.FieldByName(a)
	}
	for i := range t.NumField() {
		if f := t.Field(i); f.IsExported() && NormKey(f.Name) == k {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// canonicalizer rewrites a JSON value into the form encoding/json decodes into a
// definition type: keys renamed to Go field names, durations to nanoseconds, statuses
// checked, tolerated keys dropped. It collects every problem it finds.
type canonicalizer struct{ errs []error }

func (cz *canonicalizer) fail(path, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = path + ": " + msg
	}
	cz.errs = append(cz.errs, errors.New(msg))
}

// canonical returns raw rewritten for type t at path. Values of the wrong JSON type
// are left for encoding/json to report.
func (cz *canonicalizer) canonical(raw json.RawMessage, t reflect.Type, path string) json.RawMessage {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == reflect.TypeFor[time.Duration]():
		return cz.duration(raw, path)
	case t == reflect.TypeFor[catalog.Status]():
		return cz.status(raw, path)
	}
	switch t.Kind() {
	case reflect.Struct:
		var obj map[string]json.RawMessage
		if json.Unmarshal(raw, &obj) != nil || obj == nil {
			return raw
		}
		out := make(map[string]json.RawMessage, len(obj))
		from := make(map[string]string, len(obj))
		for _, k := range slices.Sorted(maps.Keys(obj)) {
			v := obj[k]
			f, ok := Field(t, k)
			if !ok {
				if check, tol := tolerated[t][NormKey(k)]; tol {
					if why := check(v); why != "" {
						cz.fail(path, "%s", why)
					}
					continue
				}
				cz.fail(path, "unknown field %q: see Consul's service registration fields", k)
				continue
			}
			if prev, dup := from[f.Name]; dup {
				cz.fail(path, "field %s is given twice, as %q and %q", f.Name, prev, k)
				continue
			}
			out[f.Name], from[f.Name] = cz.canonical(v, f.Type, join(path, f.Name)), k
		}
		b, _ := json.Marshal(out) // cannot fail: valid JSON values
		return b
	case reflect.Slice:
		var arr []json.RawMessage
		if json.Unmarshal(raw, &arr) != nil || arr == nil {
			return raw
		}
		for i := range arr {
			arr[i] = cz.canonical(arr[i], t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
		b, _ := json.Marshal(arr)
		return b
	case reflect.Map:
		var m map[string]json.RawMessage
		if json.Unmarshal(raw, &m) != nil || m == nil {
			return raw
		}
		for k, v := range m {
			m[k] = cz.canonical(v, t.Elem(), fmt.Sprintf("%s[%q]", path, k))
		}
		b, _ := json.Marshal(m)
		return b
	}
	return raw
}

// duration turns a duration given as a string ("10s") into nanoseconds; a number is
// nanoseconds already, as in Consul's API.
func (cz *canonicalizer) duration(raw json.RawMessage, path string) json.RawMessage {
	if isNull(raw) {
		return json.RawMessage("0")
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		d, err := ParseDuration(s)
		if err != nil {
			cz.fail(path, "%v", err)
			return json.RawMessage("0")
		}
		return json.RawMessage(strconv.FormatInt(int64(d), 10))
	}
	var n int64
	if json.Unmarshal(raw, &n) != nil || n < 0 {
		cz.fail(path, "%s is not a duration: want a string such as \"10s\", or nanoseconds", raw)
		return json.RawMessage("0")
	}
	return raw
}

// status checks an initial status given by name; "" means the default.
func (cz *canonicalizer) status(raw json.RawMessage, path string) json.RawMessage {
	var s string
	switch {
	case isNull(raw):
		return json.RawMessage("null")
	case json.Unmarshal(raw, &s) != nil:
		cz.fail(path, "want passing, warning or critical, got %s", raw)
		return json.RawMessage("null")
	case s == "":
		return json.RawMessage("null")
	}
	if _, err := ParseInitialStatus(s); err != nil {
		cz.fail(path, "%q: want passing, warning or critical", s)
		return json.RawMessage("null")
	}
	return raw
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
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
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return errors.New("invalid JSON: the body ends in the middle of a value")
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
