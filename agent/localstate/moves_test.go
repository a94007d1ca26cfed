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

func moveTo(node string) catalog.Move {
	at := time.Unix(1_700_000_000, 0)
	return catalog.Move{Service: "web", ToNode: node, ToServiceID: "web", At: at, Until: at.Add(time.Hour)}
}

func TestMovesInTheCore(t *testing.T) {
	c, _ := newCore(t, nil, definition.Policy{})
	if _, err := c.RegisterService(web()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutMove("web", moveTo("n2")); err == nil || !strings.Contains(err.Error(), "still registered") {
		t.Fatalf("PutMove of a registered service = %v, want refused", err)
	}
	if _, err := c.DeregisterService("web"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutMove("web", moveTo("n1")); err == nil || !strings.Contains(err.Error(), "move.to_node") {
		t.Fatalf("PutMove to this node = %v, want refused naming move.to_node", err)
	}
	rd, err := c.PutMove("web", moveTo("n2"))
	if err != nil || !rd.MovesChanged || !slices.Equal(keys(rd.Records), []string{"put move:web"}) {
		t.Fatalf("PutMove = %v %+v", err, rd)
	}
	if got := c.Moves(); len(got) != 1 || got["web"].ToNode != "n2" {
		t.Errorf("Moves = %+v", got)
	}
	if all := keys(c.All()); !slices.Contains(all, "put move:web") {
		t.Errorf("All = %q, want the pointer republished", all)
	}
	// Registering the service again deletes its pointer, in the same change.
	rd, err = c.RegisterService(web())
	if err != nil || !rd.MovesChanged || !slices.Contains(keys(rd.Records), "del move:web") {
		t.Fatalf("RegisterService = %v %q, want the pointer deleted", err, keys(rd.Records))
	}
	if len(c.Moves()) != 0 {
		t.Errorf("Moves after the service came back = %+v", c.Moves())
	}
	if _, err := c.DeleteMove("web"); !errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("DeleteMove of none = %v, want ErrNotFound", err)
	}
	// A restored state: a saved pointer for a registered service is dropped.
	r, err := New(Config{Writer: catalog.NewWriter("n1", 2), State: &State{Services: map[string]*Service{
		"web": {Source: SourceAPI, Service: catalog.Service{ID: "web", Name: "web", Weights: catalog.DefaultWeights}}}},
		Moves: map[string]catalog.Move{"web": moveTo("n2"), "old": moveTo("n3")}})
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Moves(); len(got) != 1 || got["old"].ToNode != "n3" {
		t.Errorf("restored Moves = %+v, want only old's", got)
	}
}
