package localstate

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/definition"
)

func limited(t *testing.T, st *State, l Limits) *Core {
	t.Helper()
	c, err := New(Config{Writer: catalog.NewWriter("n1", 1), Store: &memStore{}, State: st, Limits: l})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func svc(id string, checks ...string) definition.Service {
	s := definition.Service{ID: id, Name: "svc"}
	for _, c := range checks {
		s.Checks = append(s.Checks, ttl(c))
	}
	return s
}

// refused checks that err is the limit named field at count over limit, a 400 for
// the HTTP API (catalog.ErrInvalid), saying how to raise it.
func refused(t *testing.T, what string, err error, field string, count, limit int) {
	t.Helper()
	var le *LimitError
	if !errors.As(err, &le) || !errors.Is(err, catalog.ErrInvalid) {
		t.Fatalf("%s: %v, want a LimitError wrapping ErrInvalid", what, err)
	}
	if le.Field != field || le.Count != count || le.Limit != limit {
		t.Errorf("%s: %+v, want %s at %d over %d", what, le, field, count, limit)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("limit of %d", limit)) || !strings.Contains(err.Error(), "rumor agent --max-") {
		t.Errorf("%s: %q does not name the limit and its flag", what, err)
	}
}

// TestLimits: issue 11 (item 9) — one request made 25,000 checks. Every way of adding
// services and checks is bounded the same, refusals change nothing, and what does
// not add (re-registering, deregistering, statuses) is never refused.
func TestLimits(t *testing.T) {
	c := limited(t, nil, Limits{MaxServices: 2, MaxChecks: 3, MaxChecksPerService: 2})

	_, err := c.RegisterService(svc("a", "a1", "a2", "a3"))
	refused(t, "3 checks in one service", err, "service.checks", 3, 2)
	must(t)(c.RegisterService(svc("a", "a1", "a2")))
	must(t)(c.RegisterService(svc("b", "b1")))
	_, err = c.RegisterService(svc("c"))
	refused(t, "a third service", err, "services", 3, 2)
	_, err = c.RegisterService(svc("b", "b1", "b2"))
	refused(t, "a fourth check by re-registration", err, "checks", 4, 3)
	_, err = c.RegisterCheck(definition.Check{Name: "mem", TTL: time.Minute})
	refused(t, "a fourth check on the node", err, "checks", 4, 3)
	_, err = c.RegisterCheck(definition.Check{ID: "a3", Name: "a3", ServiceID: "a", TTL: time.Minute})
	refused(t, "a third check in a service", err, "service.checks", 3, 2)
	if got := len(c.Checks()); got != 3 || c.Len() != 2 {
		t.Errorf("after refusals: %d checks, %d services; want 3 and 2", got, c.Len())
	}

	// What does not add passes at the limit.
	must(t)(c.RegisterService(svc("b", "b9")))
	must(t)(c.SetCheckStatus("b9", catalog.StatusPassing, ""))
	must(t)(c.SetMaintenance("a", true, ""))
	must(t)(c.DeregisterService("b"))
	must(t)(c.RegisterCheck(definition.Check{Name: "mem", TTL: time.Minute}))

	// Config files: the file and service named, nothing changed.
	file := func(id, f string, checks ...string) ConfigService {
		return ConfigService{Service: svc(id, checks...), File: f}
	}
	_, _, err = c.ApplyConfig([]ConfigService{file("x", "x.json", "x1", "x2", "x3")})
	refused(t, "a file's service with 3 checks", err, "service.checks", 3, 2)
	if !strings.Contains(err.Error(), `x.json: service "x": service.checks: 3 checks`) {
		t.Errorf("config over the per-service limit: %q, want file, service and field named", err)
	}
	_, _, err = c.ApplyConfig([]ConfigService{file("x", "x.json"), file("y", "y.json")})
	refused(t, "two files' services beside one", err, "services", 3, 2)
	if !strings.Contains(err.Error(), `y.json: service "y": services: 3 services`) {
		t.Errorf("config over the node's limit: %q, want the file that goes past it named", err)
	}
	if c.Len() != 1 {
		t.Errorf("a refused configuration added services: %v", c.Services())
	}
	// Replacing config services counts what they replace.
	must3(t)(c.ApplyConfig([]ConfigService{file("x", "x.json")}))
	must3(t)(c.ApplyConfig([]ConfigService{file("y", "y.json")}))
}

// TestLimitsOfALoadedState: a state saved past the limits (they were lowered since)
// loads whole; changes that do not add still pass, those that add are refused.
func TestLimitsOfALoadedState(t *testing.T) {
	big := &State{Services: map[string]*Service{}}
	for _, id := range []string{"a", "b", "c"} {
		p, err := prepare(svc(id, id+"1", id+"2", id+"3"), definition.Policy{})
		if err != nil {
			t.Fatal(err)
		}
		big.Services[id] = p
	}
	c := limited(t, big, Limits{MaxServices: 1, MaxChecks: 1, MaxChecksPerService: 1})
	if c.Len() != 3 || len(c.Checks()) != 9 {
		t.Fatalf("loaded %d services, %d checks; want 3 and 9", c.Len(), len(c.Checks()))
	}
	again := svc("a", "a1", "a2", "a3")
	again.Port = 81
	must(t)(c.RegisterService(again))
	must(t)(c.DeregisterService("c"))
	_, err := c.RegisterService(svc("d"))
	refused(t, "a new service past the limit", err, "services", 3, 1)
	_, err = c.RegisterService(svc("b", "b1", "b2", "b3", "b4"))
	refused(t, "more checks past the limit", err, "service.checks", 4, 1)
}

func TestLimitsNegative(t *testing.T) {
	if _, err := New(Config{Writer: catalog.NewWriter("n1", 1), Limits: Limits{MaxChecks: -1}}); err == nil {
		t.Error("New accepted a negative limit")
	}
}

// TestRestoreRefusesDuplicateCheckIDs: a saved state never holds a check ID twice,
// so one that does is damage, refused by name rather than loaded with one check lost.
func TestRestoreRefusesDuplicateCheckIDs(t *testing.T) {
	entry := func(id string, checks ...string) *Service {
		p, err := prepare(svc(id, checks...), definition.Policy{})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	node := &Service{Checks: []definition.Check{{ID: "x", Name: "x", TTL: time.Minute}}}
	for _, tt := range []struct {
		name string
		st   *State
		want string
	}{
		{"two services", &State{Services: map[string]*Service{"a": entry("a", "x"), "b": entry("b", "x")}},
			`check ID "x" is held by both service "a" and service "b"`},
		{"a service and the node", &State{Services: map[string]*Service{"a": entry("a", "x")}, Node: node},
			`check ID "x" is held by both a node check and service "a"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(Config{Writer: catalog.NewWriter("n1", 1), State: tt.st}); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: %v, want %q", err, tt.want)
			}
		})
	}
}

func must3(t *testing.T) func(ConfigResult, Ready, error) {
	return func(_ ConfigResult, _ Ready, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
}
