package agent

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/definition"
	"github.com/rumor-sd/rumor/internal/testkit"
)

// configFiles stands in for the config package: what the "files" define now, or the
// error reading them gives.
type configFiles struct {
	mu   sync.Mutex
	defs []ConfigService
	err  error
}

func (f *configFiles) set(err error, defs ...ConfigService) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.defs, f.err = defs, err
}

func (f *configFiles) load() ([]ConfigService, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.defs), f.err
}

func def(file string, svc definition.Service, checks ...definition.Check) ConfigService {
	return ConfigService{Service: with(svc, checks...), File: file}
}

func svc(id string, port int, tags ...string) definition.Service {
	return definition.Service{ID: id, Name: id, Port: port, Tags: tags}
}

// versions returns the version of each of the node's records, by key.
func versions(a *Agent) map[catalog.Key]catalog.Version {
	out := map[catalog.Key]catalog.Version{}
	for _, r := range a.Catalog().Records(a.NodeName()) {
		if !r.Deleted {
			out[r.Key] = r.Version
		}
	}
	return out
}

func (f *fakeCluster) publishedKeys() map[catalog.Key]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[catalog.Key]int{}
	for _, r := range f.published {
		out[r.Key]++
	}
	return out
}

var (
	svcKey   = func(id string) catalog.Key { return catalog.Key{Kind: catalog.KindService, ID: id} }
	checkKey = func(id string) catalog.Key { return catalog.Key{Kind: catalog.KindCheck, ID: id} }
)

func checkStatus(t *testing.T, a *Agent, id string) catalog.Status {
	t.Helper()
	for _, c := range a.LocalChecks() {
		if c.Check.ID == id {
			return c.Check.Status
		}
	}
	t.Fatalf("no check %q", id)
	return 0
}

// TestReloadDiff walks add, change, remove and unchanged through reloads, with an
// API registration beside them that no reload may touch.
func TestReloadDiff(t *testing.T) {
	var files configFiles
	files.set(nil,
		def("web.json", svc("web", 80), ttlCheck("web-ttl")),
		def("old.json", svc("old", 81), ttlCheck("old-ttl")))
	var fc *fakeCluster
	cfg := testConfig(t, "n1", t.TempDir(), &fc)
	cfg.ConfigServices = files.load
	a := startAgent(t, cfg)
	ctx := t.Context()
	if got := len(a.LocalServices()); got != 2 {
		t.Fatalf("%d services after start, want the 2 of the files", got)
	}
	if err := a.RegisterService(ctx, with(svc("manual", 90), ttlCheck("manual-ttl"))); err != nil {
		t.Fatal(err)
	}
	if err := a.UpdateTTL(ctx, "web-ttl", catalog.StatusPassing, "ok"); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "web-ttl passing", func() bool { return checkStatus(t, a, "web-ttl") == catalog.StatusPassing })

	// Step 1: web unchanged, old removed, db added.
	before, pubBefore := versions(a), fc.publishedKeys()
	files.set(nil,
		def("web.json", svc("web", 80), ttlCheck("web-ttl")),
		def("db.hcl", svc("db", 5432), ttlCheck("db-ttl")))
	r, err := a.Reload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := ReloadResult{Added: []string{"db"}, Removed: []string{"old"}, Unchanged: []string{"web"}}
	if !equalResult(r, want) {
		t.Errorf("reload = %+v, want %+v", r, want)
	}
	after, pubAfter := versions(a), fc.publishedKeys()
	for _, k := range []catalog.Key{svcKey("web"), checkKey("web-ttl"), svcKey("manual"), checkKey("manual-ttl")} {
		if before[k] != after[k] {
			t.Errorf("%s: version %v → %v: an unchanged service was republished", k, before[k], after[k])
		}
		if pubBefore[k] != pubAfter[k] {
			t.Errorf("%s was broadcast again by the reload", k)
		}
	}
	for _, k := range []catalog.Key{svcKey("old"), checkKey("old-ttl")} {
		if _, ok := after[k]; ok {
			t.Errorf("%s still in the catalog after its file went away", k)
		}
	}
	for _, k := range []catalog.Key{svcKey("db"), checkKey("db-ttl")} {
		if _, ok := after[k]; !ok || pubAfter[k] == 0 {
			t.Errorf("%s not published after it was added", k)
		}
	}
	if st := checkStatus(t, a, "web-ttl"); st != catalog.StatusPassing {
		t.Errorf("web-ttl = %v after reload, want passing kept", st)
	}

	// Step 2: web changed (a tag): republished, its kept check keeps its status.
	files.set(nil,
		def("web.json", svc("web", 80, "v2"), ttlCheck("web-ttl")),
		def("db.hcl", svc("db", 5432), ttlCheck("db-ttl")))
	r, err = a.Reload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := (ReloadResult{Changed: []string{"web"}, Unchanged: []string{"db"}}); !equalResult(r, want) {
		t.Errorf("reload = %+v, want %+v", r, want)
	}
	v := versions(a)
	if !after[svcKey("web")].Less(v[svcKey("web")]) {
		t.Errorf("web's version did not move on change: %v → %v", after[svcKey("web")], v[svcKey("web")])
	}
	if v[svcKey("db")] != after[svcKey("db")] || v[svcKey("manual")] != after[svcKey("manual")] {
		t.Error("an unchanged service's record moved")
	}
	if st := checkStatus(t, a, "web-ttl"); st != catalog.StatusPassing {
		t.Errorf("web-ttl = %v after change, want passing kept", st)
	}
	inst := a.Catalog().ServiceInstances("web", catalog.Filter{})
	if len(inst) != 1 || !slices.Equal(inst[0].Service.Tags, []string{"v2"}) {
		t.Errorf("catalog web = %+v, want the new tag", inst)
	}

	// Step 2b: web's check replaced: the old check's record and runner go away.
	files.set(nil,
		def("web.json", svc("web", 80, "v2"), ttlCheck("web-ttl2")),
		def("db.hcl", svc("db", 5432), ttlCheck("db-ttl")))
	if r, err = a.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if want := (ReloadResult{Changed: []string{"web"}, Unchanged: []string{"db"}}); !equalResult(r, want) {
		t.Errorf("reload = %+v, want %+v", r, want)
	}
	v = versions(a)
	if _, ok := v[checkKey("web-ttl")]; ok {
		t.Error("the replaced check web-ttl is still in the catalog")
	}
	if _, ok := v[checkKey("web-ttl2")]; !ok {
		t.Error("the new check web-ttl2 is not in the catalog")
	}
	if err := a.UpdateTTL(ctx, "web-ttl", catalog.StatusPassing, ""); !errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("UpdateTTL of the replaced check: %v, want ErrNotFound", err)
	}
	if err := a.UpdateTTL(ctx, "web-ttl2", catalog.StatusPassing, ""); err != nil {
		t.Errorf("UpdateTTL of the new check: %v", err)
	}

	// Step 3: everything removed from the files; the API service stays.
	files.set(nil)
	if r, err = a.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if want := (ReloadResult{Removed: []string{"db", "web"}}); !equalResult(r, want) {
		t.Errorf("reload = %+v, want %+v", r, want)
	}
	if got := a.LocalServices(); len(got) != 1 || got[0].ID != "manual" {
		t.Errorf("services = %+v, want only the API's", got)
	}
}

func equalResult(a, b ReloadResult) bool {
	return slices.Equal(a.Added, b.Added) && slices.Equal(a.Changed, b.Changed) &&
		slices.Equal(a.Removed, b.Removed) && slices.Equal(a.Unchanged, b.Unchanged)
}

// TestReloadInvalidKeepsState: a bad file, a bad definition or a clash with an API
// registration leaves everything as it was, and the error names the file.
func TestReloadInvalidKeepsState(t *testing.T) {
	var files configFiles
	files.set(nil, def("web.json", svc("web", 80), ttlCheck("web-ttl")))
	dir := t.TempDir()
	cfg := testConfig(t, "n1", dir, nil)
	cfg.ConfigServices = files.load
	a := startAgent(t, cfg)
	ctx := t.Context()
	if err := a.RegisterService(ctx, with(svc("manual", 90), ttlCheck("manual-ttl"))); err != nil {
		t.Fatal(err)
	}
	if err := a.UpdateTTL(ctx, "web-ttl", catalog.StatusPassing, ""); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "web-ttl passing", func() bool { return checkStatus(t, a, "web-ttl") == catalog.StatusPassing })
	before := versions(a)
	state := readState(t, dir)

	for name, tc := range map[string]struct {
		err      error
		defs     []ConfigService
		wantText string
	}{
		"unparsable file": {err: errors.New(`web.json: services[0].checks[0].interval: "10" is not a duration (use 10s)`),
			wantText: `web.json: services[0].checks[0].interval`},
		"invalid check": {defs: []ConfigService{def("bad.json", svc("web", 80), definition.Check{HTTP: "http://x/"})},
			wantText: `bad.json: service "web": service.checks[0].interval`},
		"clash with the API": {defs: []ConfigService{def("web.json", svc("web", 80)), def("m.json", svc("manual", 1))},
			wantText: `m.json: service "manual": this ID is registered through the api`},
		"check ID taken": {defs: []ConfigService{def("web.json", svc("web", 80), ttlCheck("manual-ttl"))},
			wantText: `check ID "manual-ttl" is taken by service "manual"`},
		"duplicate": {defs: []ConfigService{def("a.json", svc("web", 80)), def("b.json", svc("web", 81))},
			wantText: `b.json: service "web" is also defined in a.json`},
	} {
		t.Run(name, func(t *testing.T) {
			files.set(tc.err, tc.defs...)
			_, err := a.Reload(ctx)
			if !errors.Is(err, catalog.ErrInvalid) || !strings.Contains(err.Error(), tc.wantText) {
				t.Fatalf("Reload: %v, want ErrInvalid naming %q", err, tc.wantText)
			}
			if got := versions(a); !maps.Equal(got, before) {
				t.Errorf("records changed after a refused reload:\n%v\n%v", before, got)
			}
			if got := readState(t, dir); got != state {
				t.Error("state file changed after a refused reload")
			}
			if st := checkStatus(t, a, "web-ttl"); st != catalog.StatusPassing {
				t.Errorf("web-ttl = %v, want passing kept", st)
			}
		})
	}
}

// TestConfigServicesAcrossRestart: config services are persisted with their source
// and check state; a restart re-reads the files, keeps the state of unchanged ones,
// drops those no longer defined, and keeps API registrations.
func TestConfigServicesAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	var files configFiles
	files.set(nil, def("web.json", svc("web", 80), ttlCheck("web-ttl")), def("old.json", svc("old", 81)))
	cfg := testConfig(t, "n1", dir, nil)
	cfg.ConfigServices = files.load
	a := startAgent(t, cfg)
	ctx := t.Context()
	if err := a.RegisterService(ctx, svc("manual", 90)); err != nil {
		t.Fatal(err)
	}
	if err := a.UpdateTTL(ctx, "web-ttl", catalog.StatusPassing, "fine"); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "web-ttl passing", func() bool { return checkStatus(t, a, "web-ttl") == catalog.StatusPassing })
	if err := a.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if s := readState(t, dir); !strings.Contains(s, `"Source":"config"`) || !strings.Contains(s, `"File":"web.json"`) {
		t.Errorf("state file does not record the source:\n%s", s)
	}

	files.set(nil, def("web.json", svc("web", 80), ttlCheck("web-ttl")))
	b := startAgent(t, cfg)
	var ids []string
	for _, s := range b.LocalServices() {
		ids = append(ids, s.ID)
	}
	if !slices.Equal(ids, []string{"manual", "web"}) {
		t.Errorf("services after restart = %v, want manual (API) and web (file); old left the files", ids)
	}
	if st := checkStatus(t, b, "web-ttl"); st != catalog.StatusPassing {
		t.Errorf("web-ttl = %v after restart, want its persisted passing", st)
	}

	// A broken file at start stops the agent instead of dropping services.
	if err := b.Shutdown(); err != nil {
		t.Fatal(err)
	}
	files.set(errors.New("web.json: service.port: want a whole number, got a string"))
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); !errors.Is(err, catalog.ErrInvalid) || !strings.Contains(err.Error(), "web.json: service.port") {
		t.Errorf("Start with a broken file: %v, want the file's error", err)
	}
	if s := readState(t, dir); !strings.Contains(s, `"web-ttl"`) {
		t.Error("a failed start changed the state file")
	}
}

// TestAPICannotOverwriteConfigService: the file owns its service; the API says so.
func TestAPICannotOverwriteConfigService(t *testing.T) {
	var files configFiles
	files.set(nil, def("/etc/rumor.d/web.json", svc("web", 80)))
	cfg := testConfig(t, "n1", "", nil)
	cfg.ConfigServices = files.load
	a := startAgent(t, cfg)
	err := a.RegisterService(t.Context(), svc("web", 8080))
	if !errors.Is(err, catalog.ErrInvalid) || !strings.Contains(err.Error(), "/etc/rumor.d/web.json") {
		t.Errorf("RegisterService over a config service: %v, want ErrInvalid naming the file", err)
	}
	if got := a.LocalServices(); len(got) != 1 || got[0].Port != 80 {
		t.Errorf("services = %+v, want the file's web on port 80", got)
	}
}

func TestReloadNotRunning(t *testing.T) {
	a, err := New(testConfig(t, "n1", "", nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Reload(t.Context()); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Reload before Start: %v, want ErrNotRunning", err)
	}
}

func readState(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, stateLogFile))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
