package agent

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/definition"
	"github.com/rumor-sd/rumor/internal/testkit"
)

// TestUIShowsProxyAndReachability: the web UI reads the agent's proxy and
// reachability tracker through uiAgent: the upstream is on the agent page, and an
// instance's address found unreachable is on the landing page, named as that
// instance.
func TestUIShowsProxyAndReachability(t *testing.T) {
	cfg := testConfig(t, "n1", "", nil)
	cfg.Proxy.Upstreams = []definition.Upstream{{Service: "web", LocalBindPort: 0}}
	a := startAgent(t, cfg)
	if err := a.RegisterService(t.Context(), web("web-1", greeter(t, "backend"))); err != nil {
		t.Fatal(err)
	}
	api := newAPI(t, a)
	listen := listenOf(a, "web")
	page := api.must(http.MethodGet, "/ui/agent", "")
	if !strings.Contains(page, `data-upstream="`+listen+`"`) {
		t.Errorf("the agent page has no row for the upstream at %s", listen)
	}
	// A refused connect counts as reachable (the host answered), and a timeout
	// needs an address outside loopback: report the instance's address as the
	// proxy does after a connect timed out.
	var addr string
	testkit.Poll(t, 10*time.Second, testkit.PollInterval, "the upstream to hold web-1", func() error {
		for _, u := range a.Upstreams() {
			for _, in := range u.Instances {
				if in.ServiceID == "web-1" {
					addr = in.Address
					return nil
				}
			}
		}
		return fmt.Errorf("upstreams %+v", a.Upstreams())
	})
	a.reach.Report(addr, false)
	page = api.must(http.MethodGet, "/ui/", "")
	if !strings.Contains(page, `data-unreachable="`+addr+`"`) || !strings.Contains(page, "web-1</span> on") {
		t.Errorf("the landing page lacks %s named as web-1", addr)
	}
}
