package ui_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/rumor-sd/rumor/agent"
	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/definition"
	"github.com/rumor-sd/rumor/ui/uitest"
)

// TestScreenshots writes the README's screenshots of the main pages, of three real
// agents on loopback, when RUMOR_UI_SCREENSHOTS names a directory:
//
//	RUMOR_UI_SCREENSHOTS=$PWD/docs go test ./ui -run TestScreenshots
//
// (an absolute path: tests run in the package directory). It is a tool, not a
// check: without the variable it does nothing.
func TestScreenshots(t *testing.T) {
	dir := os.Getenv("RUMOR_UI_SCREENSHOTS")
	if dir == "" {
		t.Skip("RUMOR_UI_SCREENSHOTS is not set: no screenshots wanted")
	}
	br := uitest.Start(t)
	a := startAgent(t, "web-1", agent.Config{NodeMeta: map[string]string{"rack": "r1"}})
	b := startAgent(t, "web-2", agent.Config{NodeMeta: map[string]string{"rack": "r2"}}, a.GossipAddr().String())
	c := startAgent(t, "db-1", agent.Config{NodeMeta: map[string]string{"rack": "r1"}}, a.GossipAddr().String())
	ttl := func(id string, st catalog.Status) []definition.Check {
		return []definition.Check{{ID: id, Name: id, TTL: time.Hour, Status: st}}
	}
	regs := []struct {
		on  *agent.Agent
		svc definition.Service
	}{
		{a, definition.Service{Name: "web", ID: "web", Port: 8080, Tags: []string{"v2", "primary"}, Meta: map[string]string{"version": "2.4.1"}, Checks: ttl("web-http", catalog.StatusPassing)}},
		{b, definition.Service{Name: "web", ID: "web", Port: 8080, Tags: []string{"v2"}, Meta: map[string]string{"version": "2.4.1"}, Checks: ttl("web-http", catalog.StatusPassing)}},
		{a, definition.Service{Name: "api", ID: "api", Port: 9000, Tags: []string{"v1"}, Checks: ttl("api-health", catalog.StatusPassing)}},
		{b, definition.Service{Name: "api", ID: "api", Port: 9000, Tags: []string{"v1"}, Checks: ttl("api-health", catalog.StatusPassing)}},
		{c, definition.Service{Name: "postgres", ID: "postgres", Port: 5432, Tags: []string{"primary"}, Checks: ttl("pg-ready", catalog.StatusPassing)}},
		{c, definition.Service{Name: "redis", ID: "redis", Port: 6379, Checks: ttl("redis-ping", catalog.StatusPassing)}},
	}
	for _, r := range regs {
		if err := r.on.RegisterService(t.Context(), r.svc); err != nil {
			t.Fatal(err)
		}
	}
	_ = b.UpdateTTL(t.Context(), "api-health", catalog.StatusCritical, "HTTP GET http://10.0.0.2:9000/health: 503 Service Unavailable\nupstream postgres: connection refused")
	_ = c.UpdateTTL(t.Context(), "redis-ping", catalog.StatusWarning, "PING took 840 ms (warn above 500 ms)")
	tab := br.Tab(t, 2*time.Minute)
	for _, p := range []struct{ file, path string }{
		{"ui-failing.png", "/ui/"}, {"ui-services.png", "/ui/services"}, {"ui-service.png", "/ui/services/api"},
		{"ui-nodes.png", "/ui/nodes"}, {"ui-agent.png", "/ui/agent"},
	} {
		url := fmt.Sprintf("http://%s%s", a.HTTPAddr(), p.path)
		if err := chromedp.Do(tab, chromedp.Navigate(url)); err != nil {
			t.Fatal(err)
		}
		if err := waitJS(tab, 10*time.Second, `document.querySelectorAll("[data-check],[data-service],[data-instance],[data-node],ol.events li").length >= 2`); err != nil {
			t.Fatalf("%s: %v", p.path, err)
		}
		png, err := chromedp.Run(tab, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p.file), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
