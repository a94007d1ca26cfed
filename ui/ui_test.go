package ui_test

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/catalog/catalogtest"
	"github.com/rumor-sd/rumor/internal/testkit"
	"github.com/rumor-sd/rumor/ui"
)

// fakeAgent is this node for the UI's unit tests.
type fakeAgent struct {
	mu       sync.Mutex
	members  []ui.Member
	requests uint64
	dns      uint64 // DNS queries answered
	unreach  []ui.Unreachable
	// reachVersion moves with unreach (fakeReach.Version).
	reachVersion uint64
	ups          []ui.Upstream
}

func (f *fakeAgent) Self() ui.Self {
	return ui.Self{Name: "n000", ID: catalogtest.NodeID("n000"), Datacenter: "dc1", Address: "10.0.0.0", Version: "test"}
}

func (f *fakeAgent) Members() []ui.Member {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]ui.Member(nil), f.members...)
}

func (f *fakeAgent) Counters() ui.Counters {
	f.mu.Lock()
	defer f.mu.Unlock()
	return ui.Counters{HTTPRequests: f.requests, DNSQueries: f.dns}
}

// fakeReach is the UI's Config.Reachability in tests: the fake agent's unreach
// list, whose version moves with every setUnreachable.
type fakeReach struct{ f *fakeAgent }

func (r fakeReach) Unreachable() []ui.Unreachable {
	r.f.mu.Lock()
	defer r.f.mu.Unlock()
	return append([]ui.Unreachable(nil), r.f.unreach...)
}

func (r fakeReach) Version() uint64 {
	r.f.mu.Lock()
	defer r.f.mu.Unlock()
	return r.f.reachVersion
}

// setUnreachable replaces the unreachable list and moves its version.
func (f *fakeAgent) setUnreachable(es []ui.Unreachable) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unreach = es
	f.reachVersion++
}

func (f *fakeAgent) Upstreams() []ui.Upstream {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]ui.Upstream(nil), f.ups...)
}

func (f *fakeAgent) LocalSources() map[string]string {
	return map[string]string{"web-0": ui.SourceFile}
}

// fixture is a UI over a catalog of n nodes, each with a "web" instance (tags v1 and
// primary on even nodes, v2 on odd ones, meta version) and a service of its own.
type fixture struct {
	cat *catalog.Catalog
	clk *catalogtest.Clock
	ag  *fakeAgent
	ui  *ui.UI
	srv *httptest.Server
	ws  map[string]*catalog.Writer
}

func newFixture(t *testing.T, n int, cfg ui.Config) *fixture {
	t.Helper()
	cat, clk := catalogtest.New(t, catalog.Config{})
	f := &fixture{cat: cat, clk: clk, ag: &fakeAgent{}, ws: map[string]*catalog.Writer{}}
	for i := range n {
		name := fmt.Sprintf("n%03d", i)
		w := catalog.NewWriter(name, 1)
		f.ws[name] = w
		node := catalogtest.Node(name, fmt.Sprintf("10.0.0.%d", i))
		node.Meta = map[string]string{"rack": fmt.Sprintf("r%d", i%3)}
		web := catalogtest.Service(fmt.Sprintf("web-%d", i), "web", 8080, "v1", "primary")
		if i%2 == 1 {
			web.Tags = []string{"v2"}
		}
		web.Meta = map[string]string{"version": fmt.Sprintf("1.%d", i%2)}
		own := catalogtest.Service("svc", fmt.Sprintf("svc-%03d", i), 9000)
		f.apply(t, w.PutNode(node), w.PutService(web), w.PutCheck(catalogtest.Check("web-check", web.ID, catalog.StatusPassing)),
			w.PutService(own))
		f.ag.members = append(f.ag.members, ui.Member{Name: name, State: catalog.LivenessAlive, RTT: time.Duration(i+1) * time.Millisecond})
	}
	cfg.Catalog, cfg.Agent, cfg.Now = cat, f.ag, clk.Now
	if cfg.Reachability == nil {
		cfg.Reachability = fakeReach{f.ag}
	}
	cfg.Coalesce = cmp.Or(cfg.Coalesce, 10*time.Millisecond)
	cfg.SampleEvery = cmp.Or(cfg.SampleEvery, 10*time.Millisecond)
	u, err := ui.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	u.Start()
	f.ui = u
	f.srv = httptest.NewServer(u)
	t.Cleanup(func() {
		f.srv.CloseClientConnections()
		_ = u.Close()
		f.srv.Close()
	})
	return f
}

func (f *fixture) apply(t *testing.T, recs ...catalog.Record) {
	t.Helper()
	if _, err := f.cat.Apply(recs...); err != nil {
		t.Fatal(err)
	}
}

// get fetches a page and parses it.
func (f *fixture) get(t *testing.T, path string, hdr ...string) (*http.Response, *html.Node) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, f.srv.URL+path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	doc, err := html.Parse(resp.Body)
	if err != nil {
		t.Fatalf("%s: parse HTML: %v", path, err)
	}
	return resp, doc
}

// waitFor polls a page until its document satisfies cond (the model follows the
// catalog on its own goroutine).
func (f *fixture) waitFor(t *testing.T, path, what string, cond func(*html.Node) bool) *html.Node {
	t.Helper()
	var doc *html.Node
	testkit.Eventually(t, 5*time.Second, what, func() bool {
		_, doc = f.get(t, path)
		return cond(doc)
	})
	return doc
}

// find returns the elements matching pred, in document order.
func find(n *html.Node, pred func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	for d := range n.Descendants() {
		if d.Type == html.ElementNode && pred(d) {
			out = append(out, d)
		}
	}
	return out
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// withAttr matches elements having attribute key (with value val, unless "").
func withAttr(key, val string) func(*html.Node) bool {
	return func(n *html.Node) bool {
		for _, a := range n.Attr {
			if a.Key == key && (val == "" || a.Val == val) {
				return true
			}
		}
		return false
	}
}

func text(n *html.Node) string {
	var b strings.Builder
	for d := range n.Descendants() {
		if d.Type == html.TextNode {
			b.WriteString(d.Data)
		}
	}
	return strings.Join(strings.Fields(b.String()), " ")
}

// rows returns the data-<key> values of a table's rows.
func rows(doc *html.Node, key string) []string {
	var out []string
	for _, n := range find(doc, withAttr("data-"+key, "")) {
		out = append(out, attr(n, "data-"+key))
	}
	return out
}

// TestPagesRenderWithoutJavaScript: every page is whole as first sent, parsed here
// as a browser without JavaScript would get it, loads nothing from outside the agent,
// and carries a CSP that forbids it.
func TestPagesRenderWithoutJavaScript(t *testing.T) {
	f := newFixture(t, 3, ui.Config{})
	w1 := f.ws["n001"]
	f.apply(t, w1.PutCheck(&catalog.Check{ID: "web-check", Name: "web http", ServiceID: "web-1", Status: catalog.StatusCritical,
		Output: "HTTP GET http://10.0.0.1:8080/health: 503 Service Unavailable", Type: "http"}))
	f.clk.Advance(time.Second)
	f.cat.SetLiveness("n002", catalog.LivenessSuspect)
	doc := f.waitFor(t, "/ui/", "the failing page to list n001's check and n002", func(d *html.Node) bool {
		return len(rows(d, "check")) == 1 && len(rows(d, "node")) == 1
	})
	if got := rows(doc, "check"); got[0] != "n001/web-check" {
		t.Errorf("failing checks = %v, want [n001/web-check]", got)
	}
	if txt := text(doc); !strings.Contains(txt, "503 Service Unavailable") || !strings.Contains(txt, "Agent suspected of failure") {
		t.Errorf("the failing page lacks the check output or why n002 is suspect:\n%s", txt)
	}

	cases := []struct {
		path, key string
		want      []string
		contains  []string
	}{
		{"/ui/services", "service", []string{"svc-000", "svc-001", "svc-002", "web"}, []string{"2 critical", "1 passing", "v1", "primary"}},
		{"/ui/services/web", "instance", []string{"n001/web-1", "n002/web-2", "n000/web-0"}, // worst first
			[]string{"503 Service Unavailable", "curl -s 'http://", "/v1/health/service/web?passing'", "10.0.0.1:8080", "version=1.1", "file"}},
		{"/ui/nodes", "node", []string{"n000", "n001", "n002"}, []string{"suspect", "rack=r1", "2.00 ms"}},
		{"/ui/nodes/n001", "", nil, []string{"web-1", "503 Service Unavailable", "rack=r1"}},
		{"/ui/agent", "", nil, []string{"n000", "dc1", "HTTP requests", "catalog changes"}},
	}
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			// The RTTs come with the sampler's first round.
			f.waitFor(t, c.path, "the page's content", func(d *html.Node) bool {
				txt := text(d)
				for _, s := range c.contains {
					if !strings.Contains(txt, s) {
						return false
					}
				}
				return true
			})
			resp, doc := f.get(t, c.path)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if c.key != "" {
				if got := rows(doc, c.key); strings.Join(got, " ") != strings.Join(c.want, " ") {
					t.Errorf("rows = %v, want %v", got, c.want)
				}
			}
			txt := text(doc)
			for _, s := range c.contains {
				if !strings.Contains(txt, s) {
					t.Errorf("page lacks %q:\n%s", s, txt)
				}
			}
			checkSelfContained(t, resp, doc)
		})
	}
	for _, path := range []string{"/ui/services/nope", "/ui/nodes/nope", "/ui/nothing"} {
		if resp, doc := f.get(t, path); resp.StatusCode != http.StatusNotFound || !strings.Contains(text(doc), "nope") && path != "/ui/nothing" {
			t.Errorf("%s: status %d, want 404 with a page naming it", path, resp.StatusCode)
		}
	}
}

// checkSelfContained checks a page references only the agent's own paths and forbids
// anything else by CSP.
func checkSelfContained(t *testing.T, resp *http.Response, doc *html.Node) {
	t.Helper()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("Content-Security-Policy = %q", csp)
	}
	for _, n := range find(doc, func(n *html.Node) bool {
		return attr(n, "src") != "" || attr(n, "href") != "" || attr(n, "action") != ""
	}) {
		for _, k := range []string{"src", "href", "action"} {
			if v := attr(n, k); v != "" && !strings.HasPrefix(v, "/ui/") && v != "/ui" {
				t.Errorf("<%s %s=%q> points outside the UI", n.Data, k, v)
			}
		}
	}
	if scripts := find(doc, func(n *html.Node) bool { return n.Data == "script" }); len(scripts) != 1 || attr(scripts[0], "src") != "/ui/assets/ui.js" {
		t.Errorf("want exactly one script, /ui/assets/ui.js")
	}
}

// TestServicesFiltersAndPaging: each filter of the services page, and paging of 120
// services 50 at a time.
func TestServicesFiltersAndPaging(t *testing.T) {
	f := newFixture(t, 119, ui.Config{})
	w := f.ws["n005"]
	f.apply(t, w.PutCheck(&catalog.Check{ID: "web-check", Name: "web", ServiceID: "web-5", Status: catalog.StatusWarning}))
	f.waitFor(t, "/ui/services?health=warning", "web listed as warning", func(d *html.Node) bool {
		return strings.Join(rows(d, "service"), " ") == "web"
	})
	cases := []struct {
		query string
		want  string // the rows, or their count as "#N"
	}{
		{"", "#50"},
		{"page=3", "#20"},
		{"q=SVC-01", "svc-010 svc-011 svc-012 svc-013 svc-014 svc-015 svc-016 svc-017 svc-018 svc-019"},
		{"tag=primary", "web"},
		{"tag=nope", ""},
		{"meta=version=1.1", "web"},
		{"meta=version:1.0", "web"},
		{"meta=version", "web"},
		{"health=passing", "#50"},
		{"health=passing&page=3", "#19"}, // 118 of the svc-*, web is not all passing
		{"health=critical", ""},
		{"source=file", "web"}, // web-0 on this agent came from a file
		{"source=agent", "#50"},
		{"node=n007", "svc-007 web"},
		{"node=n007&tag=v1", "web"}, // n007's web has v2 only, but web has v1 elsewhere: filters apply per service
		{"node=n007&tag=v2&q=svc", ""},
	}
	for _, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			resp, doc := f.get(t, "/ui/services?"+c.query)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			got := rows(doc, "service")
			if strings.HasPrefix(c.want, "#") {
				if fmt.Sprintf("#%d", len(got)) != c.want {
					t.Errorf("%d rows, want %s", len(got), c.want)
				}
				return
			}
			if strings.Join(got, " ") != c.want {
				t.Errorf("rows = %v, want %q", got, c.want)
			}
		})
	}
	// Paging links keep the filter and step by one.
	_, doc := f.get(t, "/ui/services?health=passing&page=2")
	next := find(doc, withAttr("rel", "next"))
	prev := find(doc, withAttr("rel", "prev"))
	if len(next) != 1 || len(prev) != 1 {
		t.Fatalf("page 2 has %d next and %d prev links", len(next), len(prev))
	}
	u, _ := url.Parse(attr(next[0], "href"))
	if u.Query().Get("page") != "3" || u.Query().Get("health") != "passing" {
		t.Errorf("next link %q", attr(next[0], "href"))
	}
	if !strings.Contains(text(doc), "51–100 of 119") {
		t.Errorf("page 2 does not say 51–100 of 119: %s", text(doc))
	}
	// A bad filter says what is wrong rather than showing everything.
	if _, doc := f.get(t, "/ui/services?health=sick"); !strings.Contains(text(doc), `"sick" is not`) {
		t.Errorf("health=sick: no complaint: %s", text(doc))
	}
}

// TestServicePagePaging: a service's instances, 50 a page, worst first.
func TestServicePagePaging(t *testing.T) {
	f := newFixture(t, 60, ui.Config{})
	f.apply(t, f.ws["n042"].PutCheck(&catalog.Check{ID: "web-check", Name: "web", ServiceID: "web-42",
		Status: catalog.StatusCritical, Output: "dial tcp 10.0.0.42:8080: connection refused"}))
	doc := f.waitFor(t, "/ui/services/web", "n042 first", func(d *html.Node) bool {
		r := rows(d, "instance")
		return len(r) == 50 && r[0] == "n042/web-42"
	})
	if !strings.Contains(text(doc), "connection refused") {
		t.Error("the critical check's output is missing")
	}
	if _, doc := f.get(t, "/ui/services/web?page=2"); len(rows(doc, "instance")) != 10 {
		t.Errorf("page 2 has %d instances, want 10", len(rows(doc, "instance")))
	}
	if _, doc := f.get(t, "/ui/services/web?health=critical"); strings.Join(rows(doc, "instance"), " ") != "n042/web-42" {
		t.Errorf("health=critical: %v", rows(doc, "instance"))
	}
}

// TestTokenRules: with TokenReads the UI needs the API's token, in a header or the
// login cookie; its assets and login form are open; without TokenReads it is open.
func TestTokenRules(t *testing.T) {
	const token = "s3cret-token"
	f := newFixture(t, 1, ui.Config{Token: token, TokenReads: true})
	noRedirect := *f.srv.Client()
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	status := func(method, path string, body io.Reader, hdr ...string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, f.srv.URL+path, body)
		if body != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	for _, c := range []struct {
		name string
		resp *http.Response
		want int
	}{
		{"no token", status("GET", "/ui/services", nil), http.StatusForbidden},
		{"live stream, no token", status("GET", "/ui/", nil, "Accept", "text/event-stream"), http.StatusForbidden},
		{"wrong header", status("GET", "/ui/", nil, "X-Consul-Token", "nope"), http.StatusForbidden},
		{"X-Consul-Token", status("GET", "/ui/services", nil, "X-Consul-Token", token), http.StatusOK},
		{"Bearer", status("GET", "/ui/nodes", nil, "Authorization", "Bearer "+token), http.StatusOK},
		{"the raw token is not a cookie", status("GET", "/ui/", nil, "Cookie", "rumor_ui="+token), http.StatusForbidden},
		{"assets are open", status("GET", "/ui/assets/ui.css", nil), http.StatusOK},
		{"wrong login", status("POST", "/ui/login", strings.NewReader("token=nope")), http.StatusForbidden},
	} {
		if c.resp.StatusCode != c.want {
			t.Errorf("%s: status %d, want %d", c.name, c.resp.StatusCode, c.want)
		}
	}
	// The login page is what a browser without the token gets.
	resp, doc := f.get(t, "/ui/services?tag=v1")
	if resp.StatusCode != http.StatusForbidden || len(find(doc, withAttr("name", "token"))) != 1 {
		t.Fatalf("no login form on 403")
	}
	if next := find(doc, withAttr("name", "next")); len(next) != 1 || attr(next[0], "value") != "/ui/services?tag=v1" {
		t.Errorf("the login form does not return to the page asked for")
	}
	login := status("POST", "/ui/login", strings.NewReader(url.Values{"token": {token}, "next": {"/ui/nodes"}}.Encode()))
	if login.StatusCode != http.StatusSeeOther || login.Header.Get("Location") != "/ui/nodes" {
		t.Fatalf("login: %d to %q", login.StatusCode, login.Header.Get("Location"))
	}
	var cookie *http.Cookie
	for _, c := range login.Cookies() {
		if c.Name == "rumor_ui" {
			cookie = c
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Path != "/ui/" || strings.Contains(cookie.Value, token) {
		t.Fatalf("login cookie %+v: want HttpOnly, SameSite=Strict, Path=/ui/, not the token itself", cookie)
	}
	if r := status("GET", "/ui/", nil, "Cookie", cookie.String()); r.StatusCode != http.StatusOK {
		t.Errorf("with the cookie: %d", r.StatusCode)
	}
	// An open redirect through next= is refused.
	evil := status("POST", "/ui/login", strings.NewReader(url.Values{"token": {token}, "next": {"//evil.example/"}}.Encode()))
	if evil.Header.Get("Location") != "/ui/" {
		t.Errorf("next=//evil.example/ redirected to %q", evil.Header.Get("Location"))
	}

	// A token without TokenReads guards writes only: the UI, which only reads, is open.
	open := newFixture(t, 1, ui.Config{Token: token})
	if resp, _ := open.get(t, "/ui/"); resp.StatusCode != http.StatusOK {
		t.Errorf("Token without TokenReads: %d, want 200", resp.StatusCode)
	}
}

// TestLiveStream: a page's live stream sends its <main> again when what it shows
// changes, coalesced, and ends when the UI closes.
func TestLiveStream(t *testing.T) {
	f := newFixture(t, 2, ui.Config{})
	f.waitFor(t, "/ui/", "the model loaded", func(d *html.Node) bool { return strings.Contains(text(d), "all passing") })
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.srv.URL+"/ui/", nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	if !resp.Uncompressed { // the client asked for gzip and inflated it as it came
		t.Error("the stream was not gzipped")
	}
	events := readEvents(resp.Body)
	first := <-events
	if !strings.Contains(first, "all passing") {
		t.Fatalf("first event is not the page's main: %q", first)
	}
	f.apply(t, f.ws["n001"].PutCheck(&catalog.Check{ID: "web-check", Name: "web", ServiceID: "web-1",
		Status: catalog.StatusCritical, Output: "boom"}))
	select {
	case ev := <-events:
		if !strings.Contains(ev, `data-check="n001/web-check"`) || !strings.Contains(ev, "boom") {
			t.Errorf("update lacks the critical check: %q", ev)
		}
	case <-ctx.Done():
		t.Fatal("no update within 10s")
	}
	if n := f.ui.Streams(); n != 1 {
		t.Errorf("Streams() = %d, want 1", n)
	}
	_ = f.ui.Close()
	for range events { // the stream ends with the UI
	}
}

// readEvents returns the data of each "main" event read from r, lines joined.
func readEvents(r io.Reader) <-chan string {
	ch := make(chan string, 16)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 1<<20), 1<<22)
		var data []string
		name := ""
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if name == "main" {
					ch <- strings.Join(data, "\n")
				}
				data, name = nil, ""
			case strings.HasPrefix(line, "event: "):
				name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				data = append(data, strings.TrimPrefix(line, "data: "))
			}
		}
	}()
	return ch
}

// TestEventsAndSince: the event log records joins, liveness changes, registrations
// and check changes; a failing check keeps the time it started failing.
func TestEventsAndSince(t *testing.T) {
	f := newFixture(t, 2, ui.Config{})
	f.waitFor(t, "/ui/agent", "loaded", func(d *html.Node) bool { return strings.Contains(text(d), "2 nodes") })
	w := catalog.NewWriter("n009", 1)
	f.apply(t, w.PutNode(catalogtest.Node("n009", "10.0.0.9")), w.PutService(catalogtest.Service("db", "db", 5432)))
	f.clk.Advance(time.Second)
	f.cat.SetLiveness("n001", catalog.LivenessFailed)
	f.apply(t, f.ws["n000"].PutCheck(&catalog.Check{ID: "web-check", Name: "web", ServiceID: "web-0", Status: catalog.StatusWarning}))
	doc := f.waitFor(t, "/ui/agent", "the events", func(d *html.Node) bool {
		txt := text(d)
		return strings.Contains(txt, "node n009 joined") && strings.Contains(txt, "service db (db) registered on n009") &&
			strings.Contains(txt, "node n001 is failed: Agent not live or unreachable") && strings.Contains(txt, "check web-check on n000 is warning")
	})
	_ = doc
	_, failing := f.get(t, "/ui/")
	times := find(failing, func(n *html.Node) bool { return n.Data == "time" })
	if len(times) == 0 {
		t.Fatal("no <time> on the failing page")
	}
	at := attr(times[0], "datetime")
	f.clk.Advance(time.Minute)
	f.apply(t, f.ws["n000"].PutCheck(&catalog.Check{ID: "web-check", Name: "web", ServiceID: "web-0", Status: catalog.StatusWarning, Output: "still"}))
	f.waitFor(t, "/ui/", "the new output", func(d *html.Node) bool { return strings.Contains(text(d), "still") })
	_, failing = f.get(t, "/ui/")
	for _, tm := range find(failing, func(n *html.Node) bool { return n.Data == "time" }) {
		if attr(tm, "datetime") == at {
			return // the check's since did not move with its output
		}
	}
	t.Errorf("the warning check's since moved when only its output changed (was %s)", at)
}

// TestFailingShowsUnreachable: the landing page lists the addresses this host
// cannot reach, for how long, naming the proxy's instance at an address it forwards
// to; with none, it says all is well.
func TestFailingShowsUnreachable(t *testing.T) {
	f := newFixture(t, 2, ui.Config{})
	doc := f.waitFor(t, "/ui/", "loaded", func(d *html.Node) bool { return strings.Contains(text(d), "all passing") })
	if got := rows(doc, "unreachable"); len(got) != 0 {
		t.Fatalf("unreachable rows with none: %q", got)
	}
	now := f.clk.Now()
	f.ag.mu.Lock()
	f.ag.unreach = []ui.Unreachable{
		{Addr: "10.0.0.1:8080", Since: now.Add(-90 * time.Second), Checked: now.Add(-time.Second), Source: "proxy"},
		{Addr: "10.9.9.9:80", Since: now.Add(-time.Hour), Checked: now, Source: "probe"},
	}
	f.ag.ups = []ui.Upstream{{Service: "web", Listen: "127.0.0.1:9191", Instances: []ui.UpstreamInstance{
		{Node: "n000", ServiceID: "web-0", Address: "10.0.0.0:8080", Weight: 1},
		{Node: "n001", ServiceID: "web-1", Address: "10.0.0.1:8080", Failures: 3, Ejections: 1, EjectedUntil: now.Add(time.Minute)},
	}}}
	f.ag.mu.Unlock()
	resp, doc := f.get(t, "/ui/")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if got := rows(doc, "unreachable"); len(got) != 2 || got[0] != "10.0.0.1:8080" || got[1] != "10.9.9.9:80" {
		t.Fatalf("unreachable rows = %q, want 10.0.0.1:8080 and 10.9.9.9:80", got)
	}
	row := find(doc, withAttr("data-unreachable", "10.0.0.1:8080"))[0]
	if txt := text(row); !strings.Contains(txt, "web web-1 on n001") || !strings.Contains(txt, "proxy") {
		t.Errorf("the proxied address's row = %q: want its instance web-1 on n001 and source proxy", txt)
	}
	if links := find(row, withAttr("href", "/ui/nodes/n001")); len(links) != 1 {
		t.Errorf("the row does not link node n001: %q", text(row))
	}
	var since string
	for _, tm := range find(row, func(n *html.Node) bool { return n.Data == "time" }) {
		since = attr(tm, "datetime")
		break
	}
	if want := now.Add(-90 * time.Second).UTC().Format(time.RFC3339); !strings.HasPrefix(since, want[:19]) {
		t.Errorf("the row's first time is %q, want the since %s", since, want)
	}
	probed := find(doc, withAttr("data-unreachable", "10.9.9.9:80"))[0]
	if txt := text(probed); !strings.Contains(txt, "probed") || !strings.Contains(txt, "probe") {
		t.Errorf("the probed address's row = %q", txt)
	}
	if txt := text(doc); !strings.Contains(txt, "2 unreachable from here") || strings.Contains(txt, "all passing") {
		t.Errorf("the summary does not count the unreachable addresses: %q", txt)
	}
}

// TestLiveUnreachable: the landing page's live stream shows an address becoming
// unreachable, and reachable again, with no change to the catalog: the UI follows
// reachability's version, not only the catalog's.
func TestLiveUnreachable(t *testing.T) {
	// No sampling during the test: only reachability's version can wake the stream.
	f := newFixture(t, 2, ui.Config{SampleEvery: time.Hour})
	f.waitFor(t, "/ui/", "the model loaded", func(d *html.Node) bool { return strings.Contains(text(d), "all passing") })
	events := f.stream(t, "/ui/")
	if first := <-events; !strings.Contains(first, "all passing") {
		t.Fatalf("first event is not the page's main: %q", first)
	}
	idx := f.cat.Index()
	now := f.clk.Now()
	f.ag.setUnreachable([]ui.Unreachable{{Addr: "10.0.0.1:8080", Since: now, Checked: now, Source: "probe"}})
	want := `data-unreachable="10.0.0.1:8080"`
	if ev := nextEvent(t, events, "the unreachable address"); !strings.Contains(ev, want) {
		t.Fatalf("the update lacks the unreachable address: %q", ev)
	}
	f.ag.setUnreachable(nil)
	if ev := nextEvent(t, events, "the address reachable again"); strings.Contains(ev, want) || !strings.Contains(ev, "all passing") {
		t.Fatalf("the update still lists the address: %q", ev)
	}
	if got := f.cat.Index(); got != idx {
		t.Fatalf("the catalog moved (%d -> %d): the test must change reachability only", idx, got)
	}
}

// stream opens a page's live stream, not compressed (TestLiveStream reads a gzipped
// one), and returns its "main" events; it ends with the test.
func (f *fixture) stream(t *testing.T, path string) <-chan string {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.srv.URL+path, nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return readEvents(resp.Body)
}

// nextEvent waits up to 10 s for the next event.
func nextEvent(t *testing.T, events <-chan string, what string) string {
	t.Helper()
	select {
	case ev, ok := <-events:
		if !ok {
			t.Fatalf("%s: the stream ended", what)
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no update within 10s", what)
	}
	return ""
}

// TestAgentShowsUpstreams: the agent page lists the proxy's upstreams with their
// instances counted by state.
func TestAgentShowsUpstreams(t *testing.T) {
	f := newFixture(t, 1, ui.Config{})
	_, doc := f.get(t, "/ui/agent")
	if got := rows(doc, "upstream"); len(got) != 0 || !strings.Contains(text(doc), "no upstreams") {
		t.Fatalf("upstream rows with none: %q", got)
	}
	now := f.clk.Now()
	f.ag.mu.Lock()
	f.ag.ups = []ui.Upstream{
		{Service: "db", Tag: "primary", Listen: "127.0.0.1:5433", Instances: []ui.UpstreamInstance{}},
		{Service: "web", Listen: "127.0.0.1:9191", Instances: []ui.UpstreamInstance{
			{Node: "n000", ServiceID: "web-0", Address: "10.0.0.0:8080", Active: 2, Ejections: 1},
			{Node: "n001", ServiceID: "web-1", Address: "10.0.0.1:8080", Ejections: 2, EjectedUntil: now.Add(time.Minute)},
			{Node: "n002", ServiceID: "web-2", Address: "10.0.0.2:8080", Active: 1, Draining: true},
			{Node: "n003", ServiceID: "web-3", Address: "10.0.0.3:8080", EjectedUntil: now.Add(-time.Second)}, // over
		}},
	}
	f.ag.mu.Unlock()
	_, doc = f.get(t, "/ui/agent")
	if got := rows(doc, "upstream"); len(got) != 2 || got[0] != "127.0.0.1:5433" || got[1] != "127.0.0.1:9191" {
		t.Fatalf("upstream rows = %q", got)
	}
	var cells []string
	for _, td := range find(find(doc, withAttr("data-upstream", "127.0.0.1:9191"))[0], func(n *html.Node) bool { return n.Data == "td" }) {
		cells = append(cells, text(td))
	}
	want := []string{"127.0.0.1:9191", "web", "4", "2", "1", "1", "3", "3"}
	if strings.Join(cells, "|") != strings.Join(want, "|") {
		t.Errorf("web's row = %q, want %q (listen, service, instances, in rotation, ejected, draining, connections, ejections)", cells, want)
	}
	if txt := text(find(doc, withAttr("data-upstream", "127.0.0.1:5433"))[0]); !strings.Contains(txt, "db tag primary") {
		t.Errorf("db's row = %q: want its tag", txt)
	}
}

// TestLANPage: the LAN page lists the instances imported from mDNS (origins
// "mdns:<iface>@<node>") with their addresses and who imports them, and nothing
// else; with none it says so.
func TestLANPage(t *testing.T) {
	f := newFixture(t, 2, ui.Config{})
	doc := f.waitFor(t, "/ui/lan", "the empty LAN page", func(d *html.Node) bool {
		return strings.Contains(text(d), "No agent imports from mDNS")
	})
	if got := rows(doc, "lan"); len(got) != 0 {
		t.Fatalf("LAN rows with no import: %q", got)
	}
	w := catalog.NewWriter("mdns:eth0@n001", 1)
	origin := catalogtest.Node("mdns:eth0@n001", "10.0.0.1")
	printer := catalogtest.Service("printer-a", "ipp", 631, "color")
	printer.Address = "192.168.1.20"
	f.apply(t, w.PutNode(origin), w.PutService(printer), w.PutService(catalogtest.Service("nas", "smb", 445)))
	doc = f.waitFor(t, "/ui/lan", "the imported instances", func(d *html.Node) bool { return len(rows(d, "lan")) == 2 })
	if got := rows(doc, "lan"); got[0] != "mdns:eth0@n001/printer-a" || got[1] != "mdns:eth0@n001/nas" {
		t.Errorf("LAN rows = %q, want printer-a (ipp) then nas (smb)", got)
	}
	row := text(find(doc, withAttr("data-lan", "mdns:eth0@n001/printer-a"))[0])
	for _, want := range []string{"ipp", "192.168.1.20:631", "passing", "color", "eth0 of n001"} {
		if !strings.Contains(row, want) {
			t.Errorf("printer-a's row %q lacks %q", row, want)
		}
	}
	if got := text(find(doc, withAttr("data-lan", "mdns:eth0@n001/nas"))[0]); !strings.Contains(got, "10.0.0.1:445") {
		t.Errorf("nas's row %q lacks the origin's address 10.0.0.1:445", got)
	}
	if got := rows(doc, "origin"); len(got) != 1 || got[0] != "mdns:eth0@n001" {
		t.Errorf("origins = %q", got)
	}
	if txt := text(doc); !strings.Contains(txt, "2 instances of 2 services imported from mDNS by 1 interface") {
		t.Errorf("the summary: %q", txt)
	}
	resp, doc := f.get(t, "/ui/lan")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	checkSelfContained(t, resp, doc)
	// The services page's source filter finds the same.
	_, doc = f.get(t, "/ui/services?source=mdns")
	if got := rows(doc, "service"); len(got) != 2 || got[0] != "ipp" || got[1] != "smb" {
		t.Errorf("services with source mdns = %q, want ipp and smb", got)
	}
}
