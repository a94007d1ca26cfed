package ui

import (
	"fmt"
	"html/template"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/catalog/catalogtest"
)

// stubAgent is the least Agent for the live tests.
type stubAgent struct{}

func (stubAgent) Self() Self                      { return Self{Name: "a"} }
func (stubAgent) Members() []Member               { return nil }
func (stubAgent) Counters() Counters              { return Counters{} }
func (stubAgent) LocalSources() map[string]string { return nil }
func (stubAgent) Upstreams() []Upstream           { return nil }

// TestLiveRendersOnlyWhatChanged drives the live entries by hand (no goroutines):
// a change to the catalog rebuilds each open page's data, but renders, frames and
// wakes the streams only of the pages whose data it changed.
func TestLiveRendersOnlyWhatChanged(t *testing.T) {
	cat, clk := catalogtest.New(t, catalog.Config{})
	ws := map[string]*catalog.Writer{}
	for _, name := range []string{"a", "b"} {
		w := catalog.NewWriter(name, 1)
		ws[name] = w
		s := catalogtest.Service("web-"+name, "web", 80)
		if _, err := cat.Apply(w.PutNode(catalogtest.Node(name, "10.0.0.1")), w.PutService(s),
			w.PutCheck(catalogtest.Check("c", s.ID, catalog.StatusPassing))); err != nil {
			t.Fatal(err)
		}
	}
	u, err := New(Config{Catalog: cat, Agent: stubAgent{}, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = u.Close() })
	u.model.refresh()
	open := func(path, pattern string) *liveEntry {
		r := httptest.NewRequest("GET", path, nil)
		return u.live.join(path, u.pages[pattern], r)
	}
	failing := open("/ui/", "GET /ui/{$}")
	critical := open("/ui/services?health=critical", "GET /ui/services")
	u.update(failing, u.versions())
	u.update(critical, u.versions())
	if got := u.Renders(); got != 2 {
		t.Fatalf("renders after opening two pages = %d, want 2", got)
	}
	_, seqCritical, wake := u.current(critical, false)
	_, seqFailing, _ := u.current(failing, false)

	// A warning: on the failing page, not among the critical services.
	clk.Advance(time.Second)
	if _, err := cat.Apply(ws["b"].PutCheck(catalogtest.Check("c", "web-b", catalog.StatusWarning))); err != nil {
		t.Fatal(err)
	}
	u.model.refresh()
	v := u.versions()
	u.update(failing, v)
	u.update(critical, v)
	if got := u.Renders(); got != 3 {
		t.Errorf("renders after a warning = %d, want 3 (the failing page only)", got)
	}
	if _, seq, _ := u.current(failing, false); seq == seqFailing {
		t.Error("the failing page's event did not move with the warning")
	}
	if _, seq, _ := u.current(critical, false); seq != seqCritical {
		t.Error("the critical services' event moved although its data did not")
	}
	select {
	case <-wake:
		t.Error("the critical services' streams were woken for nothing")
	default:
	}
	// The same versions again: nothing is even rebuilt.
	u.update(failing, v)
	if got := u.Renders(); got != 3 {
		t.Errorf("renders at unchanged versions = %d, want 3", got)
	}
	// Critical now: both pages show it.
	if _, err := cat.Apply(ws["b"].PutCheck(catalogtest.Check("c", "web-b", catalog.StatusCritical))); err != nil {
		t.Fatal(err)
	}
	u.model.refresh()
	v = u.versions()
	u.update(failing, v)
	u.update(critical, v)
	if got := u.Renders(); got != 5 {
		t.Errorf("renders after a critical check = %d, want 5", got)
	}
	select {
	case <-wake:
	default:
		t.Error("the critical services' streams were not woken")
	}
}

// TestModelFollowsNodeChanges: the model reads what moved from the catalog's log of
// node changes, and compares every node when the log no longer reaches back: either
// way it ends with the catalog's nodes, a node that left gone.
func TestModelFollowsNodeChanges(t *testing.T) {
	cat, _ := catalogtest.New(t, catalog.Config{})
	put := func(name string) {
		t.Helper()
		w := catalog.NewWriter(name, 1)
		if _, err := cat.Apply(w.PutNode(catalogtest.Node(name, "10.0.0.1")), w.PutService(catalogtest.Service("web-"+name, "web", 80))); err != nil {
			t.Fatal(err)
		}
	}
	put("a")
	put("b")
	m := newModel(cat, stubAgent{}, time.Now)
	m.refresh()
	check := func(what string, want int, without string) {
		t.Helper()
		m.mu.RLock()
		defer m.mu.RUnlock()
		if len(m.nodes) != want || m.nodes[without] != nil || m.instances != want || len(m.names) != want {
			t.Fatalf("%s: %d nodes (%d instances, %d names), want %d without %q", what, len(m.nodes), m.instances, len(m.names), want, without)
		}
	}
	check("first look", 2, "")
	put("c")
	cat.SetLiveness("a", catalog.LivenessLeft)
	m.refresh()
	check("from the log", 2, "a")
	for i := range 5000 { // more moves than the catalog's log keeps
		put(fmt.Sprintf("n%04d", i))
	}
	cat.SetLiveness("b", catalog.LivenessLeft)
	m.refresh()
	check("past the log", 5001, "b")
}

// TestCheckRowAsTemplate: a failing check's row, written once and completed with
// its age at each rendering (checkRow), is what the page's template would write.
func TestCheckRowAsTemplate(t *testing.T) {
	const row = `{{define "row"}}<tr data-check="{{.F.Node}}/{{.F.CheckID}}"><td>{{template "badge" (status .F.Status)}}</td><td>{{since .F.Since .Now .F.Approx}}</td><td><a href="/ui/nodes/{{.F.Node}}">{{.F.Node}}</a></td><td>{{if .F.ServiceName}}<a href="/ui/services/{{.F.ServiceName}}">{{.F.ServiceName}}</a> <span class="dim">{{.F.ServiceID}}</span>{{else}}<span class="dim">node</span>{{end}}</td><td>{{.F.Name}} <span class="dim">{{.F.CheckID}}</span></td><td>{{if .F.Output}}<pre class="output">{{trunc .F.Output 600}}</pre>{{end}}</td></tr>{{end}}`
	tmpl := template.Must(template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")).Parse(row))
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, f := range []failView{
		{Node: "n1", CheckID: "web-check", Name: "web", ServiceID: "web-1", ServiceName: "web", Status: catalog.StatusCritical,
			Output: "HTTP GET http://10.0.0.1/health?x=1&y=2: 503 <b>down</b> \"quoted\"", Since: now.Add(-90 * time.Second)},
		{Node: "a b/ü", CheckID: "node'check", Name: "disk <full>", Status: catalog.StatusWarning, Since: now.Add(-time.Hour), Approx: true},
	} {
		var want strings.Builder
		if err := tmpl.ExecuteTemplate(&want, "row", struct {
			F   failView
			Now time.Time
		}{f, now}); err != nil {
			t.Fatal(err)
		}
		f.head, f.tail = checkRowHTML(&f)
		if got := string(checkRow(&f, now)); got != want.String() {
			t.Errorf("checkRow:\n got %s\nwant %s", got, want.String())
		}
	}
}

// TestEventListAsTemplate: the event log's items, written once and completed with
// their age at each rendering (eventList), are what a template would write.
func TestEventListAsTemplate(t *testing.T) {
	const list = `{{define "list"}}{{range .Events}}<li class="ev-{{.Kind}}">{{since .Time $.Now false}} <span class="kind">{{.Kind}}</span> {{.Text}}</li>{{end}}{{end}}`
	tmpl := template.Must(template.New("list").Funcs(funcs).Parse(list))
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	evs := eventsData{Now: now, Events: []Event{
		{Time: now.Add(-time.Minute), Kind: "check", Text: `check c on n1 is critical: <b>503</b> & "x" 'y'`},
		{Time: now.Add(-3 * time.Hour), Kind: "join", Text: "node ü joined (alive)"},
	}}
	var want strings.Builder
	if err := tmpl.ExecuteTemplate(&want, "list", evs); err != nil {
		t.Fatal(err)
	}
	if got := string(eventList(evs)); got != want.String() {
		t.Errorf("eventList:\n got %s\nwant %s", got, want.String())
	}
}
