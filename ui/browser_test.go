package ui_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/rumor-sd/rumor/agent"
	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/definition"
	"github.com/rumor-sd/rumor/internal/testkit"
	"github.com/rumor-sd/rumor/ui/uitest"
)

// Browser tests: a real headless Chromium (uitest) against real agents on loopback
// that gossip with each other. The pages' script keeps them live over server-sent
// events (https://html.spec.whatwg.org/multipage/server-sent-events.html).

// startAgent starts an agent on loopback (dev mode: gossip on 127.0.0.1, a port of
// its own), joined to join if given.
func startAgent(t *testing.T, name string, cfg agent.Config, join ...string) *agent.Agent {
	t.Helper()
	cfg.NodeName, cfg.Dev, cfg.DataDir, cfg.HTTPAddr, cfg.Join = name, true, t.TempDir(), "127.0.0.1:0", join
	a, err := agent.New(cfg)
	return testkit.Running(t, a, err)
}

func uiURL(a *agent.Agent, path string) string {
	return "http://" + a.HTTPAddr().String() + path
}

// waitJS waits until the JavaScript expression js is true in the tab, for at most
// within. A poll that a navigation interrupts (its page's context goes away) is
// started again on the new page.
func waitJS(ctx context.Context, within time.Duration, js string) error {
	deadline := time.Now().Add(within)
	for {
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](js, chromedp.WithPollingTimeout(time.Until(deadline))))
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
	}
}

// The page's live stream replaces <main> whenever the server's rendering changes, so
// a node found by one DevTools call may be gone by the next ("Could not find node with
// given id"). The helpers below act and read in one script evaluation instead, which
// the page cannot interleave with a replacement.

// clickJS clicks the first element matching sel, waiting up to 5 s for it.
func clickJS(ctx context.Context, sel string) error {
	return waitJS(ctx, 5*time.Second, fmt.Sprintf(`(function(){var e=document.querySelector(%q);if(!e)return false;e.click();return true})()`, sel))
}

// textJS returns the text of the first element matching sel, waiting up to 5 s for it.
func textJS(ctx context.Context, sel string) (string, error) {
	if err := waitJS(ctx, 5*time.Second, fmt.Sprintf(`document.querySelector(%q) !== null`, sel)); err != nil {
		return "", fmt.Errorf("no element %s: %w", sel, err)
	}
	return chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`(function(){var e=document.querySelector(%q);return e?e.innerText:""})()`, sel)))
}

// waitLive waits until the page's live stream is open (its badge says "live").
func waitLive(ctx context.Context) error {
	return waitJS(ctx, 5*time.Second, `(function(){var b=document.getElementById("live-state");return b&&!b.hidden&&b.textContent==="live"})()`)
}

// TestBrowserFailingNow: a check that goes critical on another agent is on this
// agent's landing page within 1 s, with its output, and leaves it when it passes
// again; the page is never reloaded.
func TestBrowserFailingNow(t *testing.T) {
	br := uitest.Start(t)
	a := startAgent(t, "alpha", agent.Config{})
	b := startAgent(t, "beta", agent.Config{}, a.GossipAddr().String())
	err := a.RegisterService(t.Context(), definition.Service{Name: "pay", ID: "pay-1", Port: 9100,
		Checks: []definition.Check{{ID: "pay-ttl", Name: "pay heartbeat", TTL: time.Hour, Status: catalog.StatusPassing}}})
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "beta to know pay", func() bool {
		return len(b.Catalog().ServiceInstances("pay", catalog.Filter{})) == 1
	})
	tab := br.Tab(t, 60*time.Second)
	if err := chromedp.Do(tab, chromedp.Navigate(uiURL(b, "/ui/"))); err != nil {
		t.Fatal(err)
	}
	if err := waitLive(tab); err != nil {
		t.Fatalf("the page's live stream did not open: %v", err)
	}
	row := `document.querySelector('[data-check="alpha/pay-ttl"]')`
	if got, _ := chromedp.Run(tab, chromedp.Evaluate[bool](row+` !== null`)); got {
		t.Fatal("pay-ttl is listed before it failed")
	}
	start := time.Now()
	if err := a.UpdateTTL(t.Context(), "pay-ttl", catalog.StatusCritical, "upstream 10.1.2.3:443 refused the connection"); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(tab, chromedp.Poll[bool](row+` !== null`, chromedp.WithPollingTimeout(time.Second))); err != nil {
		t.Fatalf("the critical check on alpha was not on beta's page within 1s: %v", err)
	}
	t.Logf("critical on alpha → listed on beta's page after %s", time.Since(start))
	text, err := textJS(tab, `[data-check="alpha/pay-ttl"]`)
	if err != nil || !strings.Contains(text, "refused the connection") || !strings.Contains(text, "critical") {
		t.Errorf("the row says %q (%v), want its status and output", text, err)
	}
	start = time.Now()
	if err := a.UpdateTTL(t.Context(), "pay-ttl", catalog.StatusPassing, "ok"); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(tab, chromedp.Poll[bool](row+` === null`, chromedp.WithPollingTimeout(time.Second))); err != nil {
		t.Fatalf("the recovered check stayed on the page for more than 1s: %v", err)
	}
	t.Logf("passing on alpha → gone from beta's page after %s", time.Since(start))
}

// TestBrowserServices: the services page's filters (a form, submitted) and paging
// (links), and a service's page with its instances and check output.
func TestBrowserServices(t *testing.T) {
	br := uitest.Start(t)
	a := startAgent(t, "alpha", agent.Config{})
	for i := range 55 {
		svc := definition.Service{Name: fmt.Sprintf("svc-%02d", i), Port: 9000 + i, Tags: []string{"v1"}}
		if i%10 == 0 {
			svc.Tags = []string{"v2", "canary"}
			svc.Checks = []definition.Check{{ID: svc.Name + "-ttl", Name: "ttl", TTL: time.Hour, Status: catalog.StatusWarning}}
		}
		if err := a.RegisterService(t.Context(), svc); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.UpdateTTL(t.Context(), "svc-20-ttl", catalog.StatusCritical, "disk /var 97% full"); err != nil {
		t.Fatal(err)
	}
	tab := br.Tab(t, 60*time.Second)
	rowsJS := `Array.from(document.querySelectorAll("[data-service]")).map(function(r){return r.dataset.service}).join(" ")`
	waitRows := func(what, want string) {
		t.Helper()
		js := fmt.Sprintf(`(%s) === %q`, rowsJS, want)
		if err := waitJS(tab, 5*time.Second, js); err != nil {
			got, _ := chromedp.Run(tab, chromedp.Evaluate[string](rowsJS))
			t.Fatalf("%s: rows %q, want %q", what, got, want)
		}
	}
	if err := chromedp.Do(tab, chromedp.Navigate(uiURL(a, "/ui/services"))); err != nil {
		t.Fatal(err)
	}
	var first50 []string
	for i := range 50 {
		first50 = append(first50, fmt.Sprintf("svc-%02d", i))
	}
	waitRows("page 1", strings.Join(first50, " "))
	if err := clickJS(tab, `a[rel="next"]`); err != nil {
		t.Fatal(err)
	}
	waitRows("page 2", "svc-50 svc-51 svc-52 svc-53 svc-54")
	// The filter form: tag canary and health warning.
	fill := `(function(){var f=document.querySelector("form.filters");if(!f)return false;` +
		`f.querySelector('input[name="tag"]').value="canary";f.querySelector('select[name="health"]').value="warning";` +
		`f.querySelector("button").click();return true})()`
	if err := waitJS(tab, 5*time.Second, fill); err != nil {
		t.Fatal(err)
	}
	waitRows("tag=canary, health=warning", "svc-00 svc-10 svc-30 svc-40 svc-50")
	loc, _ := chromedp.Run(tab, chromedp.Evaluate[string](`location.search`))
	if !strings.Contains(loc, "tag=canary") || !strings.Contains(loc, "health=warning") {
		t.Errorf("the filters are not in the URL (%q): a filtered page must be linkable", loc)
	}
	// A service's page: its instance and the check output.
	if err := chromedp.Do(tab, chromedp.Navigate(uiURL(a, "/ui/services/svc-20"))); err != nil {
		t.Fatal(err)
	}
	text, err := textJS(tab, `[data-instance="alpha/svc-20"]`)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"critical", "disk /var 97% full", "127.0.0.1:9020", "canary", "api"} {
		if !strings.Contains(text, want) {
			t.Errorf("the instance row lacks %q: %q", want, text)
		}
	}
	curl, _ := textJS(tab, `.copy code`)
	if !strings.HasPrefix(curl, "curl -s 'http://"+a.HTTPAddr().String()+"/v1/health/service/svc-20?passing'") {
		t.Errorf("copyable line %q", curl)
	}
}

// TestBrowserToken: with --http-token-reads the browser gets the login form, and
// after logging in, pages and their live streams (EventSource sends the cookie) work.
func TestBrowserToken(t *testing.T) {
	br := uitest.Start(t)
	a := startAgent(t, "alpha", agent.Config{HTTPToken: "tok-123", HTTPTokenReads: true})
	tab := br.Tab(t, 60*time.Second)
	if err := chromedp.Do(tab, chromedp.Navigate(uiURL(a, "/ui/nodes"))); err != nil {
		t.Fatal(err)
	}
	h1, err := chromedp.Run(tab, chromedp.Text(`h1`))
	if err != nil || !strings.Contains(h1, "token") {
		t.Fatalf("without the token: h1 %q (%v), want the login page", h1, err)
	}
	if err := chromedp.Do(tab, chromedp.SendKeys(`input[name="token"]`, "wrong"), chromedp.Submit(`form.login`)); err != nil {
		t.Fatal(err)
	}
	if err := waitJS(tab, 5*time.Second, `document.querySelector(".problem") !== null`); err != nil {
		t.Fatalf("a wrong token was not refused: %v", err)
	}
	if err := chromedp.Do(tab, chromedp.SendKeys(`input[name="token"]`, "tok-123"), chromedp.Submit(`form.login`)); err != nil {
		t.Fatal(err)
	}
	if err := waitJS(tab, 5*time.Second, `document.querySelector('[data-node="alpha"]') !== null`); err != nil {
		t.Fatalf("after logging in, the nodes page did not show: %v", err)
	}
	if err := waitLive(tab); err != nil {
		t.Fatalf("the live stream did not open with the cookie: %v", err)
	}
	// The cookie is no API token: the API still refuses the browser's reads.
	status, _ := chromedp.Run(tab, chromedp.Evaluate[float64](`fetch("/v1/agent/self").then(function(r){return r.status})`,
		chromedp.EvalAwaitPromise))
	if status != 403 {
		t.Errorf("GET /v1/agent/self from the logged-in browser: %v, want 403", status)
	}
}
