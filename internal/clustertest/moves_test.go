package clustertest

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Moves (issue 17), with real agents on three hosts: web-1 moves from A to B
// (`rumor service move` on A). C's watch stream carries a "moved" event, C's
// /v1/rumor/moves lists the pointer, C's DNS answers A's instance name with a CNAME to
// B's, and C's local proxy sends every new connection to B.
func TestMoveAcrossHosts(t *testing.T) {
	c := newCluster(t, 3, func(i int) []string {
		if i == 2 {
			return []string{"--upstream", "web=127.0.0.1:9001"}
		}
		return nil
	})
	all := rangeHosts(0, 3)
	c.eventually(30*time.Second, "3 members alive everywhere", func() bool { return c.allMembersAlive(all) })
	c.greet(0, "h1")
	c.greet(1, "h2")
	if out, err := c.rumor(0, "register", "--http-addr", httpAddr, "--name", "web", "--id", "web-1", "--port", "8080"); err != nil {
		t.Fatalf("register on A: %v\n%s", err, out)
	}
	c.eventually(30*time.Second, "C's proxy to reach web-1 on A", func() bool {
		got, err := c.viaProxy(2)
		return err == nil && got == "h1"
	})

	// C's watch stream, open before the move (a client without the pollers' timeout).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{DialContext: c.tb.Hosts()[2].DialContext}}
	defer hc.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+httpAddr+"/v1/rumor/watch?service=web", nil)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	moved := make(chan string, 10)
	synced := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(resp.Body)
		event := ""
		for sc.Scan() {
			l := sc.Text()
			if v, ok := strings.CutPrefix(l, "event: "); ok {
				event = v
				if v == "synced" {
					close(synced)
				}
			}
			if v, ok := strings.CutPrefix(l, "data: "); ok && event == "moved" {
				moved <- v
			}
		}
	}()
	select {
	case <-synced:
	case <-time.After(10 * time.Second):
		t.Fatal("C's watch stream did not sync within 10s")
	}

	if out, err := c.rumor(1, "register", "--http-addr", httpAddr, "--name", "web", "--id", "web-1", "--port", "8080"); err != nil {
		t.Fatalf("register on B: %v\n%s", err, out)
	}
	c.eventually(10*time.Second, "A to hold B's node record (a move's target must be in the catalog)", func() bool {
		body, ok := c.get(0, "/v1/catalog/node/h2")
		return ok && strings.Contains(body, `"Node":"h2"`) // Consul answers null for an unknown node
	})
	start := time.Now()
	if out, err := c.rumor(0, "service", "move", "web-1", "--to", "h2", "--http-addr", httpAddr); err != nil {
		t.Fatalf("rumor service move on A: %v\n%s", err, out)
	}
	select {
	case data := <-moved:
		var ev struct{ Service, From, ServiceID, To, ToServiceID string }
		if err := json.Unmarshal([]byte(data), &ev); err != nil || ev.From != "h1" || ev.To != "h2" || ev.ServiceID != "web-1" || ev.Service != "web" {
			t.Errorf("moved event %s (%v)", data, err)
		}
		t.Logf("C's watch stream said moved %s after the command", time.Since(start).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("no moved event on C's watch stream within 10s")
	}
	if body, ok := c.get(2, "/v1/rumor/moves"); !ok || !strings.Contains(body, `"From":"h1"`) || !strings.Contains(body, `"To":"h2"`) {
		t.Errorf("C's /v1/rumor/moves = %s", body)
	}
	c.eventually(10*time.Second, "C's DNS to answer A's instance name with a CNAME to B's", func() bool {
		dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer dcancel()
		out, err := c.tb.Hosts()[2].Command(dctx, "dig", "@127.0.0.1", "-p", "8600", "+short", "+tries=1", "+time=2",
			"web-1-h1._web._tcp.consul", "SRV").CombinedOutput()
		return err == nil && strings.Contains(string(out), "web-1-h2._web._tcp.consul.") && strings.Contains(string(out), "8080 h2.node.dc1.consul.")
	})
	c.eventually(10*time.Second, "C's proxy to follow the move", func() bool {
		got, err := c.viaProxy(2)
		return err == nil && got == "h2"
	})
	for n := range 10 {
		if got, err := c.viaProxy(2); err != nil || got != "h2" {
			t.Fatalf("connection %d through C's proxy after the move: %q, %v (want h2)", n, got, err)
		}
	}
}
