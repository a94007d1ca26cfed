package clustertest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"
)

// greet serves name and a newline to every connection on port 8080 of host i, until
// the test ends.
func (c *cluster) greet(i int, name string) {
	c.t.Helper()
	var ln net.Listener
	if err := c.tb.Hosts()[i].Do(func() (err error) {
		ln, err = net.Listen("tcp", ":8080")
		return err
	}); err != nil {
		c.t.Fatalf("listen on h%d: %v", i+1, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(conn, name+"\n")
			_ = conn.Close()
		}
	}()
	c.t.Cleanup(func() { _ = ln.Close(); <-done })
}

// reachable returns the nodes of web's instances host i's agent answers with
// ?reachable, sorted, or "?".
func (c *cluster) reachable(i int) string {
	body, ok := c.get(i, "/v1/health/service/web?reachable")
	if !ok {
		return "?"
	}
	var entries []struct{ Node struct{ Node string } }
	if json.Unmarshal([]byte(body), &entries) != nil {
		return "?"
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Node.Node)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// viaDNS returns the hosts whose addresses host i's agent answers for web's A
// records, asked with dig inside host i, sorted, or "?".
func (c *cluster) viaDNS(i int) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := c.tb.Hosts()[i].Command(ctx, "dig", "@127.0.0.1", "-p", "8600", "+short", "+time=2", "+tries=1",
		"web.service.consul", "A").Output()
	if err != nil {
		return "?"
	}
	byIP := map[string]string{}
	for n, h := range c.tb.Hosts() {
		byIP[h.IP().String()] = fmt.Sprintf("h%d", n+1)
	}
	var hosts []string
	for _, ip := range strings.Fields(string(out)) {
		h, ok := byIP[ip]
		if !ok {
			return "?" + ip // an answer naming no host of the testbed
		}
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	return strings.Join(hosts, ",")
}

// viaProxy connects through host i's local proxy (127.0.0.1:9001) and returns the
// backend's greeting.
func (c *cluster) viaProxy(i int) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := c.tb.Hosts()[i].DialContext(ctx, "tcp", "127.0.0.1:9001")
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	return strings.TrimSpace(line), err
}

// The firewall problem (issue 17): a rule blocks A ↔ C only. A's answers drop C's
// instance within 10 s (HTTP ?reachable, and DNS with --dns-only-reachable) while B
// still gets it and nobody marks it critical; A's local proxy keeps every connection
// working (it ejects C); after the rule goes, A gets C back in both.
func TestProxyFirewall(t *testing.T) {
	if _, err := exec.LookPath("dig"); err != nil {
		t.Fatalf("dig is needed (Debian package dnsutils): %v", err)
	}
	c := newCluster(t, 3, func(i int) []string {
		args := []string{"--probe-reachability", "--dns-only-reachable"}
		if i == 0 {
			args = append(args, "--upstream", "web=127.0.0.1:9001")
		}
		return args
	})
	all := rangeHosts(0, 3)
	c.eventually(30*time.Second, "3 members alive everywhere", func() bool { return c.allMembersAlive(all) })
	c.greet(1, "h2")
	c.greet(2, "h3")
	c.register(1, "web", 8080)
	c.register(2, "web", 8080)
	c.eventually(30*time.Second, "A to see both instances passing", c.allSee([]int{0}, "web", "h2=passing,h3=passing"))
	c.eventually(15*time.Second, "A to reach both", func() bool { return c.reachable(0) == "h2,h3" })
	c.eventually(15*time.Second, "A's DNS to answer both", func() bool { return c.viaDNS(0) == "h2,h3" })
	for n := range 10 {
		if got, err := c.viaProxy(0); err != nil || (got != "h2" && got != "h3") {
			t.Fatalf("connection %d through A's proxy: %q, %v", n, got, err)
		}
	}

	a, cHost := c.tb.Hosts()[0], c.tb.Hosts()[2]
	ctx := context.Background()
	if err := c.tb.CutPair(ctx, a, cHost); err != nil {
		t.Fatal(err)
	}
	cutAt := time.Now()
	took := c.eventually(10*time.Second, "A's ?reachable to leave C out", func() bool { return c.reachable(0) == "h2" })
	t.Logf("A's ?reachable dropped C's instance %s after the cut", took.Round(10*time.Millisecond))
	// DNS reads the same tracker; it too must leave C out within 10 s of the cut.
	c.eventually(10*time.Second-time.Since(cutAt), "A's DNS to leave C out", func() bool { return c.viaDNS(0) == "h2" })
	t.Logf("A's DNS dropped C's instance %s after the cut", time.Since(cutAt).Round(10*time.Millisecond))
	if got := c.reachable(1); got != "h2,h3" {
		t.Errorf("B's ?reachable = %q, want both: reachability is A's own knowledge", got)
	}
	if got := c.viaDNS(1); got != "h2,h3" {
		t.Errorf("B's DNS answer = %q, want both: reachability is A's own knowledge", got)
	}
	if got := c.instances(0, "web"); got != "h2=passing,h3=passing" {
		t.Errorf("A's plain answer = %q, want both passing: reachability never changes health", got)
	}
	for n := range 10 {
		if got, err := c.viaProxy(0); err != nil || got != "h2" {
			t.Fatalf("connection %d through A's proxy during the cut: %q, %v (want h2)", n, got, err)
		}
	}
	if body, ok := c.get(0, "/v1/rumor/reachability"); !ok || !strings.Contains(body, cHost.IP().String()+":8080") {
		t.Errorf("/v1/rumor/reachability on A = %s, want C's instance", body)
	}

	if err := c.tb.RestorePair(ctx, a, cHost); err != nil {
		t.Fatal(err)
	}
	c.eventually(15*time.Second, "A to reach C again", func() bool { return c.reachable(0) == "h2,h3" })
	c.eventually(15*time.Second, "A's DNS to answer C again", func() bool { return c.viaDNS(0) == "h2,h3" })
}
