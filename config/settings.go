package config

import (
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rumor-sd/rumor/agent"
	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/definition"
)

// Settings are the agent keys given in config files; a nil pointer or an empty slice
// or map means no file gave it. A later file overrides an earlier one's values;
// lists are appended and maps merged, as in Consul.
type Settings struct {
	NodeName           *string
	Datacenter         *string
	DataDir            *string
	BindAddr           *string
	BindPort           *int // ports.serf_lan
	AdvertiseAddr      *string
	HTTPAddr           *string // from client_addr, addresses.http and ports.http
	Join               []string
	RetryJoin          []string
	EncryptKey         *string
	NodeMeta           map[string]string
	EnableScriptChecks *bool
	LogLevel           *slog.Level
	ReapAfter          *time.Duration // reconnect_timeout
	HTTPToken          *string        // http_token
	HTTPTokenReads     *bool          // http_token_reads
	HTTPTLSCert        *string        // cert_file
	HTTPTLSKey         *string        // key_file

	// EnableLocalScriptChecks is enable_local_script_checks.
	EnableLocalScriptChecks *bool

	// UIEnabled is ui_config.enabled (or the older top-level ui): whether the agent
	// serves the web UI at /ui/.
	UIEnabled *bool

	// DNS are the DNS server's keys (dns.go); nil when no file gave any.
	DNS *DNSSettings `json:",omitempty"`
	// Upstreams are the local proxy's own listeners ("upstreams"), appended across
	// files.
	Upstreams []definition.Upstream `json:",omitempty"`
	// MoveRetention and MoveWindow are move_retention and move_window (moves).
	MoveRetention *time.Duration `json:",omitempty"`
	MoveWindow    *time.Duration `json:",omitempty"`
}

// Apply sets the fields of cfg that the files gave.
func (s *Settings) Apply(cfg *agent.Config) {
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	set(&cfg.NodeName, s.NodeName)
	if s.DNS != nil {
		s.DNS.Apply(cfg)
	}
	set(&cfg.Datacenter, s.Datacenter)
	set(&cfg.DataDir, s.DataDir)
	set(&cfg.BindAddr, s.BindAddr)
	set(&cfg.AdvertiseAddr, s.AdvertiseAddr)
	set(&cfg.HTTPAddr, s.HTTPAddr)
	set(&cfg.EncryptKey, s.EncryptKey)
	set(&cfg.HTTPToken, s.HTTPToken)
	set(&cfg.HTTPTLSCert, s.HTTPTLSCert)
	set(&cfg.HTTPTLSKey, s.HTTPTLSKey)
	if s.HTTPTokenReads != nil {
		cfg.HTTPTokenReads = *s.HTTPTokenReads
	}
	if s.BindPort != nil {
		cfg.BindPort = *s.BindPort
	}
	cfg.Join = append(slices.Clone(cfg.Join), s.Join...)
	cfg.RetryJoin = append(slices.Clone(cfg.RetryJoin), s.RetryJoin...)
	if len(s.NodeMeta) > 0 {
		m := maps.Clone(cfg.NodeMeta)
		if m == nil {
			m = map[string]string{}
		}
		maps.Copy(m, s.NodeMeta)
		cfg.NodeMeta = m
	}
	if s.EnableScriptChecks != nil {
		cfg.EnableScriptChecks = *s.EnableScriptChecks
	}
	if s.EnableLocalScriptChecks != nil {
		cfg.EnableLocalScriptChecks = *s.EnableLocalScriptChecks
	}
	if s.ReapAfter != nil {
		cfg.ReapAfter = *s.ReapAfter
	}
	if s.MoveRetention != nil {
		cfg.MoveRetention = *s.MoveRetention
	}
	if s.MoveWindow != nil {
		cfg.MoveWindow = *s.MoveWindow
	}
	if s.UIEnabled != nil {
		cfg.DisableUI = !*s.UIEnabled
	}
	cfg.Proxy.Upstreams = append(slices.Clone(cfg.Proxy.Upstreams), s.Upstreams...)
}

// httpParts are the pieces of the HTTP address, merged across files.
type httpParts struct {
	clientAddr, httpAddr *string
	port                 *int
}

// addr is the HTTP address the parts give, or nil if no file gave any.
func (h *httpParts) addr() *string {
	if h.clientAddr == nil && h.httpAddr == nil && h.port == nil {
		return nil
	}
	host, port := DefaultClientAddr, DefaultHTTPPort
	if h.clientAddr != nil {
		host = *h.clientAddr
	}
	if h.httpAddr != nil {
		host = *h.httpAddr
	}
	if h.port != nil {
		port = *h.port
	}
	a := net.JoinHostPort(host, strconv.Itoa(port))
	return &a
}

// settings checks this file's agent keys and merges them into s (and the HTTP
// address parts into h).
func (pf *parsedFile) settings(s *Settings, h *httpParts) Errors {
	var errs Errors
	fc := &pf.fc
	bad := func(field, format string, args ...any) {
		errs = append(errs, &Error{File: pf.path, Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	ip := func(field string, v *string) *string {
		if v == nil {
			return nil
		}
		if _, err := netip.ParseAddr(*v); err != nil {
			bad(field, "%q is not an IP address", *v)
			return nil
		}
		return v
	}
	port := func(field string, v *int) *int {
		if v != nil && (*v < 0 || *v > 65535) {
			bad(field, "%d is outside 0–65535", *v)
			return nil
		}
		return v
	}
	// Node identity follows the catalog's rules for node records.
	probe := catalog.Node{ID: "00000000-0000-4000-8000-000000000000", Name: "probe", Datacenter: "dc1", Meta: fc.NodeMeta}
	if fc.NodeName != nil {
		probe.Name = *fc.NodeName
	}
	if fc.Datacenter != nil {
		probe.Datacenter = *fc.Datacenter
	}
	if err := probe.Validate(); err != nil {
		forEachFieldError(err, func(field, why string) {
			field = strings.NewReplacer("node.name", "node_name", "node.datacenter", "datacenter", "node.meta", "node_meta").Replace(field)
			bad(field, "%s", why)
		})
	}
	if fc.NodeName != nil {
		s.NodeName = fc.NodeName
	}
	if fc.Datacenter != nil {
		s.Datacenter = fc.Datacenter
	}
	if fc.DataDir != nil {
		if *fc.DataDir == "" {
			bad("data_dir", "must not be empty; leave it out for the default")
		} else {
			s.DataDir = fc.DataDir
		}
	}
	if v := ip("bind_addr", fc.BindAddr); v != nil {
		s.BindAddr = v
	}
	if v := ip("advertise_addr", fc.AdvertiseAddr); v != nil {
		s.AdvertiseAddr = v
	}
	if fc.ClientAddr != nil && strings.ContainsAny(strings.TrimSpace(*fc.ClientAddr), " \t") {
		bad("client_addr", "%q: rumor listens on one address; give one IP", *fc.ClientAddr)
	} else if v := ip("client_addr", fc.ClientAddr); v != nil {
		h.clientAddr = v
	}
	if fc.Addresses != nil {
		if v := ip("addresses.http", fc.Addresses.HTTP); v != nil {
			h.httpAddr = v
		}
	}
	if fc.Ports != nil {
		if v := port("ports.http", fc.Ports.HTTP); v != nil {
			h.port = v
		}
		if v := port("ports.serf_lan", fc.Ports.SerfLAN); v != nil {
			s.BindPort = v
		}
	}
	for field, list := range map[string][]string{"retry_join": fc.RetryJoin, "start_join": fc.StartJoin} {
		for i, a := range list {
			if strings.TrimSpace(a) == "" {
				bad(fmt.Sprintf("%s[%d]", field, i), "must not be empty")
			}
		}
	}
	s.RetryJoin = append(s.RetryJoin, fc.RetryJoin...)
	s.Join = append(s.Join, fc.StartJoin...)
	if fc.Encrypt != nil {
		if err := agent.ValidateEncryptKey(*fc.Encrypt); err != nil {
			bad("encrypt", "%s", strings.TrimPrefix(err.Error(), "encrypt key: "))
		} else {
			s.EncryptKey = fc.Encrypt
		}
	}
	if len(fc.NodeMeta) > 0 {
		if s.NodeMeta == nil {
			s.NodeMeta = map[string]string{}
		}
		maps.Copy(s.NodeMeta, fc.NodeMeta)
	}
	if fc.EnableScriptChecks != nil {
		s.EnableScriptChecks = fc.EnableScriptChecks
	}
	if fc.EnableLocalScriptChecks != nil {
		s.EnableLocalScriptChecks = fc.EnableLocalScriptChecks
	}
	if fc.LogLevel != nil {
		lvl, err := ParseLogLevel(*fc.LogLevel)
		if err != nil {
			bad("log_level", "%v", err)
		} else {
			s.LogLevel = &lvl
		}
	}
	if fc.ReconnectTimeout != nil {
		s.ReapAfter = fc.ReconnectTimeout
	}
	if fc.MoveRetention != nil {
		if *fc.MoveRetention <= 0 {
			bad("move_retention", "%s must be positive", *fc.MoveRetention)
		} else {
			s.MoveRetention = fc.MoveRetention
		}
	}
	if fc.MoveWindow != nil {
		s.MoveWindow = fc.MoveWindow
	}
	for field, v := range map[string]*string{"http_token": fc.HTTPToken, "cert_file": fc.CertFile, "key_file": fc.KeyFile} {
		if v != nil && strings.TrimSpace(*v) == "" {
			bad(field, "must not be empty; leave it out for none")
		}
	}
	if fc.HTTPToken != nil {
		s.HTTPToken = fc.HTTPToken
	}
	if fc.HTTPTokenReads != nil {
		s.HTTPTokenReads = fc.HTTPTokenReads
	}
	if fc.CertFile != nil {
		s.HTTPTLSCert = fc.CertFile
	}
	if fc.KeyFile != nil {
		s.HTTPTLSKey = fc.KeyFile
	}
	// ui_config.enabled wins over the older ui key when a file gives both.
	if fc.UI != nil {
		s.UIEnabled = fc.UI
	}
	if fc.UIConfig != nil && fc.UIConfig.Enabled != nil {
		s.UIEnabled = fc.UIConfig.Enabled
	}
	if err := definition.ValidateUpstreams("upstreams", fc.Upstreams); err != nil {
		forEachFieldError(err, func(field, why string) { bad(field, "%s", why) })
	} else {
		s.Upstreams = append(s.Upstreams, fc.Upstreams...)
	}
	slices.SortStableFunc(errs, func(a, b *Error) int { return strings.Compare(a.Field, b.Field) })
	return errs
}

// ParseLogLevel reads a log level as Consul's log_level takes it: trace, debug,
// info, warn or err(or), any case.
func ParseLogLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "trace", "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "err", "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("%q: want debug, info, warn or error", s)
}
