package localstate

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/definition"
)

// memStore is a Store that keeps what it is given and fails on demand.
type memStore struct {
	saves   int
	touched [][]string
	fail    error
	last    []byte
}

func (m *memStore) Save(st *State, touched []string) error {
	m.saves++
	m.touched = append(m.touched, touched)
	if m.fail != nil {
		return m.fail
	}
	var ids []string
	for id := range st.Services {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	m.last = []byte(strings.Join(ids, ","))
	return nil
}

func newCore(t *testing.T, st *State, p definition.Policy) (*Core, *memStore) {
	t.Helper()
	store := &memStore{}
	c, err := New(Config{Writer: catalog.NewWriter("n1", 1), Store: store, Policy: p, State: st})
	if err != nil {
		t.Fatal(err)
	}
	c.SetNode(catalog.Node{ID: "00000000-0000-4000-8000-000000000001", Name: "n1", Datacenter: "dc1"})
	return c, store
}

func ttl(id string) definition.Check { return definition.Check{ID: id, TTL: 30 * time.Second} }

func web(checks ...definition.Check) definition.Service {
	return definition.Service{Name: "web", Port: 80, Checks: checks}
}

// keys describes records as "put service:web", "del check:x", in order.
func keys(recs []catalog.Record) []string {
	var out []string
	for _, r := range recs {
		op := "put"
		if r.Deleted {
			op = "del"
		}
		kind := "node"
		switch r.Key.Kind {
		case catalog.KindService:
			kind = "service"
		case catalog.KindCheck:
			kind = "check"
		case catalog.KindMove:
			kind = "move"
		}
		out = append(out, op+" "+kind+":"+r.Key.ID)
	}
	return out
}

func ids(cs []definition.Check) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.ID+"@"+c.Status.String())
	}
	return out
}

// must returns a change's Ready, failing the test on its error.
func must(t *testing.T) func(Ready, error) Ready {
	return func(rd Ready, err error) Ready {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return rd
	}
}

func equal(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s = %q, want %q", what, got, want)
	}
}

// TestRegisterService: the records and checks of a registration, a re-registration
// (only what differs; kept checks keep their status), and a deregistration.
func TestRegisterService(t *testing.T) {
	c, store := newCore(t, nil, definition.Policy{})
	rd := must(t)(c.RegisterService(web(ttl("a"), ttl("b"))))
	equal(t, "records", keys(rd.Records), []string{"put service:web", "put check:a", "put check:b"})
	equal(t, "start", ids(rd.Start), []string{"a@invalid(0)", "b@invalid(0)"})
	equal(t, "touched", store.touched[0], []string{"web"})

	rd = must(t)(c.SetCheckStatus("a", catalog.StatusPassing, "ok"))
	equal(t, "status records", keys(rd.Records), []string{"put check:a"})
	if len(rd.Start)+len(rd.Stop) != 0 {
		t.Errorf("a status change restarts checks: %+v", rd)
	}
	if rd, err := c.SetCheckStatus("a", catalog.StatusPassing, "ok"); err != nil || len(rd.Records) != 0 {
		t.Errorf("an unchanged status = %+v, %v; want nothing", rd, err)
	}

	// Identical: nothing to publish. Then a new port, a changed check b and no c.
	rd = must(t)(c.RegisterService(web(ttl("a"), ttl("b"))))
	if len(rd.Records)+len(rd.Start)+len(rd.Stop) != 0 {
		t.Errorf("re-registering the same = %+v, want nothing", rd)
	}
	changed := web(ttl("a"), definition.Check{ID: "b", TTL: time.Minute}, ttl("c"))
	changed.Port = 81
	rd = must(t)(c.RegisterService(changed))
	equal(t, "records", keys(rd.Records), []string{"put service:web", "put check:b", "put check:c"})
	equal(t, "start", ids(rd.Start), []string{"b@invalid(0)", "c@invalid(0)"})
	rd = must(t)(c.RegisterService(web(ttl("a"))))
	equal(t, "records", keys(rd.Records), []string{"put service:web", "del check:b", "del check:c"})
	equal(t, "stop", rd.Stop, []string{"b", "c"})
	if st := c.Checks()[0].Check; st.ID != "a" || st.Status != catalog.StatusPassing || st.Output != "ok" {
		t.Errorf("check a after re-registration = %+v, want its passing status kept", st)
	}

	rd = must(t)(c.SetMaintenance("web", true, ""))
	equal(t, "maintenance", keys(rd.Records), []string{"put check:_service_maintenance:web"})
	rd = must(t)(c.DeregisterService("web"))
	equal(t, "records", keys(rd.Records), []string{"del service:web", "del check:a", "del check:_service_maintenance:web"})
	equal(t, "stop", rd.Stop, []string{"a"})
	if _, err := c.DeregisterService("web"); !errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("deregistering again: %v, want ErrNotFound", err)
	}
}

// TestCheckIDsUnique: one rule, whoever holds the ID (RegisterService,
// RegisterCheck, ApplyConfig).
func TestCheckIDsUnique(t *testing.T) {
	c, _ := newCore(t, nil, definition.Policy{})
	must(t)(c.RegisterService(web(ttl("x"))))
	must(t)(c.RegisterCheck(definition.Check{Name: "mem", TTL: time.Minute}))
	db := definition.Service{Name: "db", Checks: []definition.Check{ttl("x")}}
	if _, err := c.RegisterService(db); !errors.Is(err, catalog.ErrInvalid) || !strings.Contains(err.Error(), `check ID "x" is taken by service "web"`) {
		t.Errorf("register db with web's check ID: %v", err)
	}
	db.Checks[0].ID = "mem"
	if _, err := c.RegisterService(db); err == nil || !strings.Contains(err.Error(), `"mem" is taken by a node check`) {
		t.Errorf("register db with a node check's ID: %v", err)
	}
	if _, err := c.RegisterCheck(definition.Check{ID: "x", Name: "x", TTL: time.Minute}); err == nil || !strings.Contains(err.Error(), `taken by service "web"`) {
		t.Errorf("register a node check with web's check ID: %v", err)
	}
	_, _, err := c.ApplyConfig([]ConfigService{{Service: definition.Service{Name: "api", Checks: []definition.Check{ttl("x")}}, File: "api.json"}})
	if !errors.Is(err, catalog.ErrInvalid) || !strings.Contains(err.Error(), `api.json: service "api": check ID "x" is taken by service "web"`) {
		t.Errorf("config service with web's check ID: %v", err)
	}
	// Replacing a check of the same owner is no clash.
	rd := must(t)(c.RegisterCheck(definition.Check{ID: "x", Name: "x", ServiceID: "web", TTL: time.Hour}))
	equal(t, "records", keys(rd.Records), []string{"put check:x"})
}

// TestRegisterCheck: checks on their own, of the node or of a service, and their
// refusals.
func TestRegisterCheck(t *testing.T) {
	c, _ := newCore(t, nil, definition.Policy{})
	rd := must(t)(c.RegisterCheck(definition.Check{Name: "mem", TTL: time.Minute}))
	equal(t, "records", keys(rd.Records), []string{"put check:mem"})
	must(t)(c.SetCheckStatus("mem", catalog.StatusWarning, "high"))
	rd = must(t)(c.RegisterCheck(definition.Check{Name: "mem", TTL: 2 * time.Minute, Notes: "n"}))
	if st := c.Checks()[0].Check; st.Status != catalog.StatusWarning || st.Notes != "n" || len(rd.Start) != 1 || rd.Start[0].Status != catalog.StatusWarning {
		t.Errorf("replaced node check = %+v, start %+v; want its warning kept", st, rd.Start)
	}
	for _, tt := range []struct {
		check definition.Check
		want  string
	}{
		{definition.Check{TTL: time.Minute}, "check.Name: missing"},
		{definition.Check{Name: "_node_maintenance", TTL: time.Minute}, "reserved by rumor"},
		{definition.Check{Name: "x", ServiceID: "nope", TTL: time.Minute}, `no service with ID "nope"`},
		{definition.Check{Name: "x", ScriptArgs: []string{"true"}, Interval: time.Second}, "script checks are disabled"},
	} {
		if _, err := c.RegisterCheck(tt.check); !errors.Is(err, catalog.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("RegisterCheck(%+v) = %v, want ErrInvalid with %q", tt.check, err, tt.want)
		}
	}
	if _, err := c.DeregisterCheck("_node_maintenance"); !errors.Is(err, catalog.ErrInvalid) {
		t.Errorf("deregister a maintenance check: %v", err)
	}
	rd = must(t)(c.DeregisterCheck("mem"))
	equal(t, "records", keys(rd.Records), []string{"del check:mem"})
	equal(t, "stop", rd.Stop, []string{"mem"})
}

// TestSaveFailure: a change that cannot be saved is undone and published nowhere;
// a reported status stands and is published anyway.
func TestSaveFailure(t *testing.T) {
	c, store := newCore(t, nil, definition.Policy{})
	must(t)(c.RegisterService(web(ttl("a"))))
	store.fail = errors.New("disk full")
	if _, err := c.RegisterService(definition.Service{Name: "db"}); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("register with a failing store: %v", err)
	}
	if _, err := c.DeregisterService("web"); err == nil {
		t.Fatal("deregister with a failing store succeeded")
	}
	if got := c.Services(); len(got) != 1 || got[0].ID != "web" {
		t.Errorf("services after failed saves = %+v, want web alone", got)
	}
	rd, err := c.SetCheckStatus("a", catalog.StatusPassing, "")
	if err == nil || len(rd.Records) != 1 || c.Checks()[0].Check.Status != catalog.StatusPassing {
		t.Errorf("status change with a failing store = %+v, %v; want it kept, published and the error returned", rd, err)
	}
}

// TestApplyConfig: a reload's diff, and that API services are the API's.
func TestApplyConfig(t *testing.T) {
	c, _ := newCore(t, nil, definition.Policy{})
	must(t)(c.RegisterService(definition.Service{Name: "manual"}))
	file := func(name, f string, port int, checks ...definition.Check) ConfigService {
		return ConfigService{Service: definition.Service{Name: name, Port: port, Checks: checks}, File: f}
	}
	res, rd, err := c.ApplyConfig([]ConfigService{file("web", "web.json", 80, ttl("web-ttl")), file("old", "old.json", 1)})
	if err != nil || !slices.Equal(res.Added, []string{"old", "web"}) {
		t.Fatalf("first apply = %+v, %v", res, err)
	}
	equal(t, "records", keys(rd.Records), []string{"put service:old", "put service:web", "put check:web-ttl"})
	must(t)(c.SetCheckStatus("web-ttl", catalog.StatusPassing, ""))

	res, rd, err = c.ApplyConfig([]ConfigService{file("web", "moved.json", 80, ttl("web-ttl")), file("db", "db.json", 5432)})
	if err != nil || !slices.Equal(res.Added, []string{"db"}) || !slices.Equal(res.Unchanged, []string{"web"}) || !slices.Equal(res.Removed, []string{"old"}) {
		t.Fatalf("second apply = %+v, %v", res, err)
	}
	equal(t, "records", keys(rd.Records), []string{"put service:db", "del service:old"})
	if e := c.st.Services["web"]; e.File != "moved.json" || e.Status["web-ttl"].Status != catalog.StatusPassing {
		t.Errorf("web after moving files = %+v, want the new file and its status kept", e)
	}

	res, rd, err = c.ApplyConfig([]ConfigService{file("web", "moved.json", 8080, ttl("web-ttl")), file("db", "db.json", 5432)})
	if err != nil || !slices.Equal(res.Changed, []string{"web"}) {
		t.Fatalf("third apply = %+v, %v", res, err)
	}
	equal(t, "records", keys(rd.Records), []string{"put service:web"})
	if len(rd.Start) != 0 {
		t.Errorf("an unchanged check of a changed service restarts: %+v", rd.Start)
	}

	before := c.Services()
	for _, bad := range [][]ConfigService{
		{file("manual", "m.json", 1)},
		{file("a", "a.json", 1), file("a", "b.json", 2)},
		{file("x", "x.json", -1)},
	} {
		if _, _, err := c.ApplyConfig(bad); !errors.Is(err, catalog.ErrInvalid) {
			t.Errorf("ApplyConfig(%+v) = %v, want ErrInvalid", bad, err)
		}
	}
	if got := c.Services(); len(got) != len(before) {
		t.Errorf("a refused configuration changed the services: %+v", got)
	}
	if _, err := c.RegisterService(definition.Service{Name: "web"}); err == nil || !strings.Contains(err.Error(), "defined in config file moved.json") {
		t.Errorf("the API overwrote a config service: %v", err)
	}
}

// TestRestore: a saved state comes back validated, and what runs comes back at its
// status; an invalid saved entry is refused by name.
func TestRestore(t *testing.T) {
	st := &State{
		Services: map[string]*Service{"web": {Source: SourceAPI, Service: catalog.Service{ID: "web", Name: "web", Weights: catalog.DefaultWeights},
			Checks: []definition.Check{{ID: "t", Name: "t", ServiceID: "web", TTL: time.Minute},
				{ID: "s", Name: "s", ServiceID: "web", ScriptArgs: []string{"true"}, Interval: time.Minute}},
			Status: map[string]CheckState{"t": {Status: catalog.StatusPassing}}}},
		Node: &Service{Maintenance: new("deploy")},
	}
	c, _ := newCore(t, st, definition.Policy{})
	equal(t, "runnable", ids(c.Runnable()), []string{"t@passing"}) // the script check is kept, not run
	equal(t, "all", keys(c.All()), []string{"put node:", "put check:_node_maintenance", "put service:web", "put check:t", "put check:s"})
	if recs, ok := c.Supersede(catalog.Version{Gen: 5, Counter: 1}); !ok || c.Generation() <= 5 || len(recs) != 5 {
		t.Errorf("Supersede = %d records, %v; generation %d", len(recs), ok, c.Generation())
	}
	if _, ok := c.Supersede(catalog.Version{Gen: 1}); ok {
		t.Error("Supersede by an older generation")
	}

	st.Services["web"].Service.Name = ""
	if _, err := New(Config{Writer: catalog.NewWriter("n1", 1), State: st}); err == nil || !strings.Contains(err.Error(), `service "web"`) {
		t.Errorf("New with an invalid saved service: %v", err)
	}
}
