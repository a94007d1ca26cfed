package config

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/rumor-sd/rumor/definition"
)

// fileConfig is one config file: the agent keys rumor understands (Consul's names)
// and service definitions. Pointers and nil slices/maps mean "not given", so a later
// file or a flag can tell what this one set.
type fileConfig struct {
	NodeName           *string
	Datacenter         *string
	DataDir            *string
	BindAddr           *string
	AdvertiseAddr      *string
	ClientAddr         *string
	Addresses          *addressesConfig
	Ports              *portsConfig
	RetryJoin          []string
	StartJoin          []string
	Encrypt            *string
	NodeMeta           map[string]string
	EnableScriptChecks *bool
	LogLevel           *string
	ReconnectTimeout   *time.Duration // alias reap_after: how long failed nodes' services stay
	HTTPToken          *string        // rumor's own: the token HTTP API writes require
	HTTPTokenReads     *bool          // rumor's own: reads require it too
	CertFile           *string        // Consul's (legacy, top-level) HTTPS certificate
	KeyFile            *string        // and its key

	// EnableLocalScriptChecks (Consul's enable_local_script_checks): script checks
	// from config files only.
	EnableLocalScriptChecks *bool

	// UIConfig is Consul's ui_config block (only "enabled"); UI is its older
	// top-level "ui" key. Both say whether the agent serves the web UI at /ui/.
	UIConfig *uiConfig
	UI       *bool

	// The DNS server's keys (dns.go).
	Domain    *string
	AltDomain *string
	Recursors []string
	DNSConfig *dnsFileConfig

	Service  *definition.Service
	Services []definition.Service

	// Upstreams are the local proxy's listeners of the agent itself (rumor's own
	// key; a service's own upstreams sit in its definition).
	Upstreams []definition.Upstream

	// MoveRetention and MoveWindow (rumor's own keys) are how long this node keeps
	// a forward pointer of a moved instance, and how long after a deregistration it
	// watches for the instance to appear elsewhere (agent.Config's fields).
	MoveRetention *time.Duration
	MoveWindow    *time.Duration
}

// addressesConfig is Consul's "addresses" block: per-interface listen addresses.
type addressesConfig struct {
	HTTP *string
	DNS  *string
}

// uiConfig is Consul's "ui_config" block. Of its keys rumor takes "enabled": the UI
// is built in, so dir and content_path have no meaning here.
type uiConfig struct {
	Enabled *bool
}

// portsConfig is Consul's "ports" block.
type portsConfig struct {
	HTTP    *int
	SerfLAN *int // the gossip port
	DNS     *int // the DNS port; -1 turns DNS off
}

// aliases are the other spellings of the agent keys, by struct type: normalised key
// (definition.NormKey) → Go field name. The definition types' own aliases are
// definition.Field's.
var aliases = map[reflect.Type]map[string]string{
	reflect.TypeFor[fileConfig](): {"reapafter": "ReconnectTimeout"},
}

// display overrides the name a field is reported under, where Consul's config files
// spell it otherwise than its snake_case Go name.
var display = map[reflect.Type]map[string]string{
	reflect.TypeFor[definition.Check](): {"ScriptArgs": "args"},
}

// rejected are fields of the definition types that a file must not set, with why:
// a file's checks are all a service's.
var rejected = map[reflect.Type]map[string]string{
	reflect.TypeFor[definition.Check](): {
		"ServiceID": "a service's check belongs to that service; leave service_id out",
	},
}

// snake spells a Go field name as Consul's config files do: "TCPUseTLS" →
// "tcp_use_tls", "H2PingUseTLS" → "h2ping_use_tls".
func snake(name string) string {
	rs := []rune(name)
	var b strings.Builder
	for i, r := range rs {
		if i > 0 && unicode.IsUpper(r) {
			prev := rs[i-1]
			nextLower := i+1 < len(rs) && unicode.IsLower(rs[i+1])
			if unicode.IsLower(prev) || unicode.IsUpper(prev) && nextLower {
				b.WriteByte('_')
			}
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// displayName is how errors name field f of struct type t.
func displayName(t reflect.Type, f reflect.StructField) string {
	if d, ok := display[t][f.Name]; ok {
		return d
	}
	return snake(f.Name)
}

// fieldFor finds the field of struct type t that key names, as the HTTP API does
// (definition.Field), with the agent keys' aliases.
func fieldFor(t reflect.Type, key string) (reflect.StructField, bool) {
	if a, ok := aliases[t][definition.NormKey(key)]; ok {
		return t.FieldByName(a)
	}
	return definition.Field(t, key)
}

// shaper turns a file's generic tree (from JSON or HCL) into the shape mapstructure
// decodes into the schema: keys renamed to Go field names, HCL's one-element block
// lists unwrapped where the schema wants one object, and every unknown or duplicate
// key reported. It records, for each path as mapstructure names it, the path as the
// user should read it, so decode errors name the user's fields.
type shaper struct {
	errs  []fieldError
	paths map[string]string // mapstructure path → display path
}

// fieldError is a problem at a display path, before its file is known.
type fieldError struct{ field, reason string }

func (s *shaper) fail(field, format string, args ...any) {
	s.errs = append(s.errs, fieldError{field, fmt.Sprintf(format, args...)})
}

// describe names the JSON/HCL type of v for messages.
func describe(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number, int, int64, float64:
		return "a number"
	case []any, []map[string]any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// object is v as the one object the schema wants there (HCL's one-element block list
// unwrapped); otherwise it reports why at disp.
func (s *shaper) object(v any, disp string) (map[string]any, bool) {
	u, n := one(v)
	m, ok := u.(map[string]any)
	switch {
	case ok:
		return m, true
	case n > 1:
		s.fail(disp, "is given %d times; give it once", n)
	default:
		s.fail(disp, "want an object, got %s", describe(v))
	}
	return nil, false
}

// one unwraps HCL's block lists: a list holding one object stands for that object.
// n is how many objects v held (1 when unwrapped); object reports n > 1 as repeated.
func one(v any) (any, int) {
	switch l := v.(type) {
	case []map[string]any:
		if len(l) == 1 {
			return l[0], 1
		}
		return v, len(l)
	case []any:
		if len(l) == 1 {
			if m, isMap := l[0].(map[string]any); isMap {
				return m, 1
			}
		}
		return v, len(l)
	}
	return v, 1
}

// shape reshapes v for type t at path (mapstructure's spelling) / disp (the user's).
func (s *shaper) shape(v any, t reflect.Type, path, disp string) any {
	s.paths[path] = disp
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == reflect.TypeFor[time.Duration]() {
		return v
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := s.object(v, disp)
		if !ok {
			return nil
		}
		out := make(map[string]any, len(m))
		given := map[string]string{}
		for _, k := range slices.Sorted(maps.Keys(m)) {
			f, ok := fieldFor(t, k)
			kd := join(disp, k)
			if !ok || !f.IsExported() {
				s.fail(kd, "unknown key%s", hint(t, k))
				continue
			}
			if why, bad := rejected[t][f.Name]; bad {
				s.fail(kd, "%s", why)
				continue
			}
			if prev, dup := given[f.Name]; dup {
				s.fail(kd, "is the same key as %q: give it once", prev)
				continue
			}
			given[f.Name] = k
			out[f.Name] = s.shape(m[k], f.Type, join(path, f.Name), join(disp, displayName(t, f)))
		}
		return out
	case reflect.Slice:
		et := t.Elem()
		for et.Kind() == reflect.Pointer {
			et = et.Elem()
		}
		var list []any
		switch l := v.(type) {
		case []any:
			list = l
		case []map[string]any:
			for _, m := range l {
				list = append(list, m)
			}
		default:
			if et.Kind() == reflect.Struct {
				s.fail(disp, "want a list of objects, got %s", describe(v))
			} else {
				s.fail(disp, "want a list such as [\"a\", \"b\"], got %s", describe(v))
			}
			return nil
		}
		out := make([]any, len(list))
		for i, e := range list {
			out[i] = s.shape(e, et, fmt.Sprintf("%s[%d]", path, i), fmt.Sprintf("%s[%d]", disp, i))
		}
		return out
	case reflect.Map:
		m, ok := s.object(v, disp)
		if !ok {
			return nil
		}
		out := make(map[string]any, len(m))
		for k, e := range m {
			out[k] = s.shape(e, t.Elem(), fmt.Sprintf("%s[%s]", path, k), fmt.Sprintf("%s[%q]", disp, k))
		}
		return out
	}
	return v
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// hint suggests the key meant, for a few well-known mistakes.
func hint(t reflect.Type, key string) string {
	k := definition.NormKey(key)
	switch {
	case t == reflect.TypeFor[fileConfig]() && (k == "check" || k == "checks"):
		return ": node-level checks are not supported; put checks inside a service"
	case t == reflect.TypeFor[fileConfig]() && k == "server":
		return ": rumor has no servers; every agent is the same"
	case t == reflect.TypeFor[definition.Service]() && (k == "connect" || k == "proxy"):
		return ": rumor does not do Connect (service mesh)"
	case t == reflect.TypeFor[definition.Service]() && k == "token":
		return ": rumor has no ACL tokens"
	}
	return ""
}
