package config_test

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/agent"
	"github.com/rumor-sd/rumor/config"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/*.txt with the current output")

// render prints Load's outcome for one file in a stable, readable form: the errors,
// one per line, or the settings and services as indented JSON.
func render(t *testing.T, c *config.Config, err error) string {
	t.Helper()
	if err != nil {
		var es config.Errors
		if !errors.As(err, &es) {
			t.Fatalf("Load error is %T, want config.Errors: %v", err, err)
		}
		var b strings.Builder
		for _, e := range es {
			fmt.Fprintln(&b, e.Error())
		}
		return b.String()
	}
	out, err := json.MarshalIndent(struct {
		Settings config.Settings
		Services []agent.ConfigService
	}{c.Settings, c.Services}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(out) + "\n"
}

// TestGolden loads every testdata file alone and compares the outcome with its golden
// file: both formats, both schemas (service and services), both spellings, and
// every error path.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.*")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 10 {
		t.Fatalf("found only %d test files", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			c, err := config.Load([]string{f}, config.Options{})
			got := render(t, c, err)
			golden := filepath.Join("testdata", "golden", filepath.Base(f)+".txt")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./config -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("outcome differs from %s (-update rewrites it)\ngot:\n%s\nwant:\n%s", golden, got, want)
			}
			// Files named bad_* must fail, the others must load: a golden file
			// cannot silently bless the wrong outcome.
			bad := strings.HasPrefix(filepath.Base(f), "bad_") || strings.HasPrefix(filepath.Base(f), "dup_") ||
				strings.HasPrefix(filepath.Base(f), "unknown_") || filepath.Base(f) == "empty.json" || filepath.Base(f) == "toplevel_list.json"
			if bad != (c == nil) {
				t.Errorf("loaded = %v, want %v", c != nil, !bad)
			}
		})
	}
}

// TestErrorsNameFileAndField spells out the promise made to users on one example.
func TestErrorsNameFileAndField(t *testing.T) {
	_, err := config.Load([]string{"testdata/bad_duration.json"}, config.Options{})
	es := config.AsErrors(err)
	want := `testdata/bad_duration.json: services[1].checks[0].interval: "10" is not a duration (use 10s)`
	if len(es) == 0 || es[0].Error() != want {
		t.Fatalf("first error = %v, want %s", es, want)
	}
	if len(es) != 4 {
		t.Errorf("got %d errors, want all 4: %v", len(es), es)
	}
}

func write(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDirectoryAndMerge loads a file and a directory: the directory contributes its
// .json and .hcl files in name order (others and subdirectories skipped), later
// files override scalars, lists append and maps merge.
func TestDirectoryAndMerge(t *testing.T) {
	dir := t.TempDir()
	base := write(t, t.TempDir(), "base.json", `{"node_name": "a", "datacenter": "dc9", "retry_join": ["10.0.0.1"], "node_meta": {"x": "1", "y": "1"}}`)
	write(t, dir, "20-web.hcl", `service { name = "web" }`+"\n"+`node_name = "c"`)
	write(t, dir, "10-api.json", `{"service": {"name": "api"}, "node_name": "b", "retry_join": ["10.0.0.2"], "node_meta": {"y": "2"}}`)
	write(t, dir, "README.md", `not config`)
	write(t, dir, "old.json.bak", `{`)
	if err := os.Mkdir(filepath.Join(dir, "sub.json"), 0o755); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load([]string{base, dir}, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	wantFiles := []string{base, filepath.Join(dir, "10-api.json"), filepath.Join(dir, "20-web.hcl")}
	if !slices.Equal(c.Files, wantFiles) {
		t.Errorf("files = %v, want %v", c.Files, wantFiles)
	}
	var names []string
	for _, s := range c.Services {
		names = append(names, s.Service.Name+"@"+filepath.Base(s.File))
	}
	if want := []string{"api@10-api.json", "web@20-web.hcl"}; !slices.Equal(names, want) {
		t.Errorf("services = %v, want %v", names, want)
	}
	s := c.Settings
	if *s.NodeName != "c" || *s.Datacenter != "dc9" {
		t.Errorf("node_name, datacenter = %q, %q, want c (last file), dc9 (only file)", *s.NodeName, *s.Datacenter)
	}
	if !slices.Equal(s.RetryJoin, []string{"10.0.0.1", "10.0.0.2"}) {
		t.Errorf("retry_join = %v, want both files' entries", s.RetryJoin)
	}
	if s.NodeMeta["x"] != "1" || s.NodeMeta["y"] != "2" {
		t.Errorf("node_meta = %v, want merged with the later file winning", s.NodeMeta)
	}
	cfg := agent.Config{Datacenter: "default", RetryJoin: []string{"flag"}}
	s.Apply(&cfg)
	if cfg.NodeName != "c" || cfg.Datacenter != "dc9" || !slices.Equal(cfg.RetryJoin, []string{"flag", "10.0.0.1", "10.0.0.2"}) {
		t.Errorf("Apply gave %+v", cfg)
	}
}

// TestLoadReportsEveryFile: problems in several files are all reported, missing
// paths and unknown formats included, and no partial result comes back.
func TestLoadReportsEveryFile(t *testing.T) {
	dir := t.TempDir()
	a := write(t, dir, "a.json", `{"service": {"name": "a", "port": "x"}}`)
	b := write(t, dir, "b.hcl", `service { name = "b" nope = 1 }`)
	y := write(t, dir, "c.yaml", `service: {}`)
	missing := filepath.Join(dir, "missing.json")
	c, err := config.Load([]string{a, b, y, missing}, config.Options{})
	if c != nil {
		t.Errorf("got a config despite errors: %+v", c)
	}
	got := config.AsErrors(err).Error()
	for _, want := range []string{
		a + `: service.port: want a whole number, got a string`,
		b + `: service.nope: unknown key`,
		y + `: unknown format: name config files *.json or *.hcl`,
		missing + `: cannot read: no such file or directory`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("errors lack %q:\n%s", want, got)
		}
	}
}

// TestScriptChecksOption: a flag's --enable-script-checks overrides the files'
// setting when validating script checks, both ways.
func TestScriptChecksOption(t *testing.T) {
	dir := t.TempDir()
	on := write(t, dir, "on.json", `{"enable_script_checks": true, "service": {"name": "s", "check": {"args": ["true"], "interval": "1s"}}}`)
	off := write(t, dir, "off.json", `{"service": {"name": "s", "check": {"args": ["true"], "interval": "1s"}}}`)
	local := write(t, dir, "local.json", `{"enable_local_script_checks": true, "service": {"name": "s", "check": {"args": ["true"], "interval": "1s"}}}`)
	yes, no := true, false
	for _, tc := range []struct {
		file        string
		opt, optLoc *bool
		wantOK      bool
	}{
		{on, nil, nil, true}, {on, &no, nil, false}, {off, nil, nil, false}, {off, &yes, nil, true},
		// enable_local_script_checks allows the files' script checks too (issue 11 item 14).
		{local, nil, nil, true}, {local, nil, &no, false}, {off, nil, &yes, true}, {on, &no, &yes, true},
	} {
		_, err := config.Load([]string{tc.file}, config.Options{EnableScriptChecks: tc.opt, EnableLocalScriptChecks: tc.optLoc})
		if (err == nil) != tc.wantOK {
			t.Errorf("%s with option %v: err = %v, want ok=%v", filepath.Base(tc.file), tc.opt, err, tc.wantOK)
		}
		if err != nil && !strings.Contains(err.Error(), "service.check.args: script checks are disabled") {
			t.Errorf("error does not name the field: %v", err)
		}
	}
}

func TestParseLogLevel(t *testing.T) {
	for in, want := range map[string]string{"TRACE": "DEBUG", "debug": "DEBUG", "Info": "INFO", "warn": "WARN", "err": "ERROR", "error": "ERROR"} {
		got, err := config.ParseLogLevel(in)
		if err != nil || got.String() != want {
			t.Errorf("ParseLogLevel(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	if _, err := config.ParseLogLevel("loud"); err == nil {
		t.Error("ParseLogLevel(loud) succeeded")
	}
}

// TestDurationsDecode checks that HCL and JSON give the same durations.
func TestDurationsDecode(t *testing.T) {
	c, err := config.Load([]string{"testdata/service.hcl"}, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Services[0].Service.Check.Interval; got != 10*time.Second {
		t.Errorf("interval = %v, want 10s", got)
	}
}

// TestServiceFile reads single definition files as `rumor register -f` does: both
// syntaxes, and the errors that only a services-only file has.
func TestServiceFile(t *testing.T) {
	defs, err := config.ServiceFile("web.json", []byte(`{"services": [{"name": "web", "port": 80, "check": {"ttl": "10s"}}, {"name": "db"}]}`), false)
	if err != nil || len(defs) != 2 || defs[0].Service.Port != 80 || defs[0].Service.Check == nil || defs[0].Service.Check.TTL != 10*time.Second || defs[1].Service.Name != "db" {
		t.Fatalf("ServiceFile(JSON) = %+v, %v", defs, err)
	}
	defs, err = config.ServiceFile("web.hcl", []byte(`service { name = "web", checks = [{ args = ["true"], interval = "5s" }] }`), true)
	if err != nil || len(defs) != 1 || len(defs[0].Service.Checks) != 1 {
		t.Fatalf("ServiceFile(HCL) with a script check = %+v, %v (the agent decides on script checks)", defs, err)
	}
	for _, c := range []struct {
		content string
		want    string
	}{
		{`{"datacenter": "x", "service": {"name": "web"}}`, `x.json: datacenter: an agent setting`},
		{`{}`, `x.json: no service definition`},
		{`{"services": [{"name": "a"}, {"name": "a"}]}`, `services[1].id: service ID "a" is also defined`},
		{`{"service": {"name": "a b"}}`, `x.json: service.name`},
	} {
		_, err := config.ServiceFile("x.json", []byte(c.content), false)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ServiceFile(%s) = %v, want an error containing %q", c.content, err, c.want)
		}
	}
}

// TestDNSNearKey: dns_config.near turns on --dns-near's ordering; a later file's false
// turns it off again, a file without the key leaves the flag's value, and a value that
// is not a boolean is an error naming the key.
func TestDNSNearKey(t *testing.T) {
	dir := t.TempDir()
	on := write(t, dir, "on.json", `{"dns_config": {"near": true}}`)
	off := write(t, dir, "off.hcl", `dns_config { near = false }`)
	none := write(t, dir, "none.json", `{"dns_config": {"only_passing": true}}`)
	for _, tc := range []struct {
		name  string
		files []string
		flag  bool // OrderNear before Apply, as a flag set it
		want  bool
	}{
		{"on", []string{on}, false, true},
		{"later file turns it off", []string{on, off}, false, false},
		{"not given keeps the flag", []string{none}, true, true},
		{"not given keeps the default", []string{none}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := config.Load(tc.files, config.Options{})
			if err != nil {
				t.Fatal(err)
			}
			cfg := agent.Config{DNS: agent.DNSConfig{OrderNear: tc.flag}}
			c.Settings.DNS.Apply(&cfg)
			if cfg.DNS.OrderNear != tc.want {
				t.Errorf("OrderNear = %v, want %v", cfg.DNS.OrderNear, tc.want)
			}
		})
	}
	bad := write(t, dir, "bad.json", `{"dns_config": {"near": "closest"}}`)
	if _, err := config.Load([]string{bad}, config.Options{}); err == nil || !strings.Contains(err.Error(), "near") {
		t.Errorf("near = \"closest\": error %v, want one naming dns_config.near", err)
	}
}
