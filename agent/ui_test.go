package agent

import (
	"bufio"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/definition"
	"github.com/rumor-sd/rumor/internal/testkit"
)

// TestUIShowsProxyAndReachability: the web UI reads the agent's proxy through
// uiAgent and its reachability tracker through uiReach: the upstream is on the agent
// page, and an instance's address found unreachable is on the landing page, named
// as that instance, and on a landing page already open, live.
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
	// A tab open on the landing page sees it too, with no change to the catalog: the
	// UI follows the tracker's version (uiReach).
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, api.base+"/ui/", nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	seen := make(chan struct{})
	go func() { // ends when the body closes with the test
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<22)
		for sc.Scan() {
			if strings.Contains(sc.Text(), `data-unreachable="`+addr+`"`) {
				close(seen)
				return
			}
		}
	}()
	a.reach.Report(addr, false)
	select {
	case <-seen:
	case <-time.After(10 * time.Second):
		t.Errorf("the open landing page did not show %s within 10s", addr)
	}
	page = api.must(http.MethodGet, "/ui/", "")
	if !strings.Contains(page, `data-unreachable="`+addr+`"`) || !strings.Contains(page, "web-1</span> on") {
		t.Errorf("the landing page lacks %s named as web-1", addr)
	}
}
