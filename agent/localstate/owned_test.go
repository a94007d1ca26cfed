package localstate

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/definition"
)

func ownedSvc(id string, checks ...definition.Check) definition.Service {
	return definition.Service{ID: id, Name: "web", Port: 80, Checks: checks}
}

// TestApplyOwned: a source's batch is one change (one save); what another source
// holds, invalid definitions, repeated IDs and taken check IDs are refused, each
// by ID, while the rest goes ahead; replacements keep their checks' status.
func TestApplyOwned(t *testing.T) {
	c, store := newCore(t, nil, definition.Policy{})
	if _, err := c.RegisterService(ownedSvc("api-svc", ttl("taken"))); err != nil {
		t.Fatal(err)
	}
	saves := store.saves
	refused, rd, err := c.ApplyOwned(SourceDocker, []definition.Service{
		ownedSvc("a", ttl("a-check")), ownedSvc("b"), ownedSvc("api-svc"), {ID: "bad", Name: "has space"},
		ownedSvc("b"), ownedSvc("clash", ttl("taken")),
	}, []string{"api-svc", "nothing"})
	if err != nil {
		t.Fatal(err)
	}
	if store.saves != saves+1 {
		t.Errorf("%d saves for one batch, want 1", store.saves-saves)
	}
	want := map[string]string{
		"api-svc": "already registered by the API", "bad": "service.name", "b": "given twice",
		"clash": `check ID "taken" is taken by service "api-svc"`, "nothing": "not found",
	}
	for id, msg := range want {
		if err := refused[id]; err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("refused[%q] = %v, want it to say %q", id, err, msg)
		}
	}
	if len(refused) != len(want) {
		t.Errorf("refused %v, want %d entries", refused, len(want))
	}
	if got := keys(rd.Records); !slices.Equal(got, []string{"put service:a", "put check:a-check", "put service:b"}) {
		t.Errorf("records %v", got)
	}
	var owned []string
	for _, s := range c.Owned(SourceDocker) {
		owned = append(owned, s.ID)
	}
	if !slices.Equal(owned, []string{"a", "b"}) {
		t.Errorf("owned %v, want a and b (not the API's)", owned)
	}

	// A status set since is kept by a replacement that keeps the check.
	if _, err := c.SetCheckStatus("a-check", catalog.StatusPassing, ""); err != nil {
		t.Fatal(err)
	}
	changed := ownedSvc("a", ttl("a-check"))
	changed.Tags = []string{"v2"}
	if _, rd, err = c.ApplyOwned(SourceDocker, []definition.Service{changed}, []string{"b"}); err != nil {
		t.Fatal(err)
	}
	if got := keys(rd.Records); !slices.Equal(got, []string{"put service:a", "del service:b"}) {
		t.Errorf("records %v, want the changed service and b's deletion only", got)
	}
	for _, lc := range c.Checks() {
		if lc.Check.ID == "a-check" && lc.Check.Status != catalog.StatusPassing {
			t.Errorf("a-check is %s after the replacement, want passing", lc.Check.Status)
		}
	}

	// The API cannot take a watcher's ID.
	if _, err := c.RegisterService(ownedSvc("a")); err == nil || !strings.Contains(err.Error(), "registered by the docker watcher") {
		t.Errorf("API registration over a docker service: %v", err)
	}
}

// TestApplyOwnedWithinLimits: a batch past the node's limits registers what fits
// (deregistrations first, then in order) and refuses the rest by ID with the limit,
// like any other source; it is not a failed save.
func TestApplyOwnedWithinLimits(t *testing.T) {
	c := limited(t, nil, Limits{MaxServices: 2, MaxChecks: 10, MaxChecksPerService: 1})
	if _, _, err := c.ApplyOwned(SourceDocker, []definition.Service{ownedSvc("d1")}, nil); err != nil {
		t.Fatal(err)
	}
	refused, _, err := c.ApplyOwned(SourceDocker,
		[]definition.Service{ownedSvc("d2"), ownedSvc("d3"), ownedSvc("d4", ttl("c1"), ttl("c2"))}, []string{"d1"})
	if err != nil {
		t.Fatalf("ApplyOwned past a limit: err = %v, want refusals only", err)
	}
	var ids []string
	for _, s := range c.Owned(SourceDocker) {
		ids = append(ids, s.ID)
	}
	if got, want := strings.Join(ids, ","), "d2,d3"; got != want {
		t.Errorf("owned after the batch = %s, want %s", got, want)
	}
	var le *LimitError
	if len(refused) != 1 || !errors.As(refused["d4"], &le) {
		t.Errorf("refused = %v, want d4 refused with a *LimitError", refused)
	}
}
