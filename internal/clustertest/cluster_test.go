// Package clustertest runs real `rumor agent` processes on separate hosts (network
// namespaces from internal/testnet) and checks what an operator would: registrations
// spread, crashes go critical then away, leaves are seen at once, partitions heal by
// themselves, restarts keep their identity, loss causes no false failures, and a wrong
// key cannot join. It needs root and iproute2/nftables; in CI it must run.
package clustertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/internal/testkit"
	"github.com/rumor-sd/rumor/internal/testnet"
)

// rumorBin is the rumor binary and netemAgentBin the test agent whose gossip is
// delayed (internal/netemagent, a stand-in for `rumor agent`), built once for all
// tests.
var rumorBin, netemAgentBin string

// TestMain builds the binaries once for all tests.
func TestMain(m *testing.M) {
	testkit.GuardMDNS() // agents run mDNS only inside the testbed's namespaces
	dir, err := os.MkdirTemp("", "rumor-clustertest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	rumorBin, netemAgentBin = filepath.Join(dir, "rumor"), filepath.Join(dir, "netemagent")
	for bin, pkg := range map[string]string{rumorBin: "github.com/rumor-sd/rumor/cmd/rumor",
		netemAgentBin: "github.com/rumor-sd/rumor/internal/netemagent"} {
		build := exec.Command("go", "build", "-o", bin, pkg)
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build", pkg+":", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// cluster is N agents, one per namespace host.
type cluster struct {
	t       *testing.T
	tb      *testnet.Testbed
	procs   []*testnet.Process
	dirs    []string
	clients map[int]*http.Client // by host, made on first use
}

const httpAddr = "127.0.0.1:8500"

// agentArgs are the flags of host i's agent; host 0 is everyone's seed.
func (c *cluster) agentArgs(i int, extra ...string) []string {
	h := c.tb.Hosts()[i]
	args := []string{"agent", "--node", fmt.Sprintf("h%d", i+1), "--bind", h.IP().String() + ":7946",
		"--data-dir", c.dirs[i], "--http-addr", httpAddr, "--reap-after", "20s"}
	if i > 0 {
		args = append(args, "--retry-join", c.tb.Hosts()[0].IP().String())
	}
	return append(args, extra...)
}

func newCluster(t *testing.T, n int, extra func(i int) []string) *cluster {
	t.Helper()
	return newClusterOf(t, rumorBin, n, extra)
}

// newClusterOf is newCluster with agents running bin, rumor or a stand-in for
// `rumor agent` taking the same flags.
func newClusterOf(t *testing.T, bin string, n int, extra func(i int) []string) *cluster {
	t.Helper()
	testnet.Require(t)
	c := &cluster{t: t, tb: testnet.NewConfig(t, testnet.Config{Hosts: n, DisableIPv6: true})}
	for i := range n {
		c.dirs = append(c.dirs, t.TempDir())
		var more []string
		if extra != nil {
			more = extra(i)
		}
		p, err := c.tb.Hosts()[i].Start(bin, c.agentArgs(i, more...)...)
		if err != nil {
			t.Fatalf("start agent %d: %v", i+1, err)
		}
		c.procs = append(c.procs, p)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for i, p := range c.procs {
				t.Logf("agent h%d output (last 3000 bytes):\n%s", i+1, tail(p.Output(), 3000))
			}
		}
	})
	return c
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// get fetches path from host i's agent API; ok is false if the agent did not answer.
func (c *cluster) get(i int, path string) (string, bool) {
	resp, err := c.client(i).Get("http://" + httpAddr + path)
	if err != nil {
		return "", false
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), err == nil && resp.StatusCode == http.StatusOK
}

// client returns an HTTP client for host i's agent. The agents' APIs listen on each
// namespace's own loopback, so its connections are dialled inside the namespace; they
// are kept alive, so polling costs neither a process nor a dial, which matters when a
// test measures how fast the agents converge on a 2-core machine.
func (c *cluster) client(i int) *http.Client {
	if hc := c.clients[i]; hc != nil {
		return hc
	}
	hc := &http.Client{
		Transport: &http.Transport{DialContext: c.tb.Hosts()[i].DialContext},
		Timeout:   3 * time.Second,
	}
	if c.clients == nil {
		c.clients = make(map[int]*http.Client)
	}
	c.clients[i] = hc
	// Registered after the testbed's own cleanup, so it runs first: no connection
	// outlives the namespaces.
	c.t.Cleanup(hc.CloseIdleConnections)
	return hc
}

// rumor runs the rumor CLI inside host i.
func (c *cluster) rumor(i int, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := c.tb.Hosts()[i].Command(ctx, rumorBin, args...).CombinedOutput()
	return string(out), err
}

// instances returns "node=status" of a service's instances as host i sees them, or
// "?" if its agent does not answer.
func (c *cluster) instances(i int, svc string) string {
	body, ok := c.get(i, "/v1/health/service/"+svc)
	if !ok {
		return "?"
	}
	var entries []struct {
		Node   struct{ Node string }
		Checks []struct{ Status string }
	}
	if err := json.Unmarshal([]byte(body), &entries); err != nil {
		return "?"
	}
	var out []string
	for _, e := range entries {
		status := "passing"
		for _, ch := range e.Checks {
			if ch.Status != "passing" {
				status = ch.Status
			}
		}
		out = append(out, e.Node.Node+"="+status)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// eventually polls cond every 200 ms until it holds or d passes: each poll asks
// every agent, which costs the 2-core machine the agents are timed on.
func (c *cluster) eventually(d time.Duration, what string, cond func() bool) time.Duration {
	c.t.Helper()
	return testkit.Poll(c.t, d, 200*time.Millisecond, what, func() error {
		if cond() {
			return nil
		}
		return errors.New("not yet")
	})
}

// allSee reports whether every listed host sees svc as want.
func (c *cluster) allSee(hosts []int, svc, want string) func() bool {
	return func() bool {
		for _, i := range hosts {
			if c.instances(i, svc) != want {
				return false
			}
		}
		return true
	}
}

func rangeHosts(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

// membersAlive reports whether host i sees exactly n members, all alive (serf status 1).
func (c *cluster) membersAlive(i, n int) bool {
	body, ok := c.get(i, "/v1/agent/members")
	if !ok {
		return false
	}
	var ms []struct{ Status int }
	if json.Unmarshal([]byte(body), &ms) != nil || len(ms) != n {
		return false
	}
	for _, m := range ms {
		if m.Status != 1 {
			return false
		}
	}
	return true
}

// allMembersAlive reports whether every listed host sees all of them alive.
func (c *cluster) allMembersAlive(hosts []int) bool {
	for _, i := range hosts {
		if !c.membersAlive(i, len(hosts)) {
			return false
		}
	}
	return true
}

func (c *cluster) register(i int, name string, port int) {
	c.t.Helper()
	if out, err := c.rumor(i, "register", "--http-addr", httpAddr, "--name", name, "--port", fmt.Sprint(port)); err != nil {
		c.t.Fatalf("register %s on h%d: %v\n%s", name, i+1, err, out)
	}
}

func TestThreeAgents(t *testing.T) {
	c := newCluster(t, 3, nil)
	all := rangeHosts(0, 3)
	c.eventually(30*time.Second, "3 members alive everywhere", func() bool {
		return c.allMembersAlive(all)
	})

	c.register(2, "web", 80)
	took := c.eventually(10*time.Second, "registration visible on all", c.allSee(all, "web", "h3=passing"))
	t.Logf("registration visible on all 3 after %s", took)

	if out, err := c.rumor(2, "deregister", "--http-addr", httpAddr, "web"); err != nil {
		t.Fatalf("deregister: %v\n%s", err, out)
	}
	c.eventually(10*time.Second, "deregistration visible on all", c.allSee(all, "web", ""))

	// Restart h2 with the same data dir: same node ID, services re-announced.
	c.register(1, "db", 5432)
	c.eventually(10*time.Second, "db visible", c.allSee(all, "db", "h2=passing"))
	idBefore, _ := c.get(1, "/v1/agent/self")
	if err := c.procs[1].Kill(); err != nil {
		t.Fatal(err)
	}
	if err := c.procs[1].Restart(); err != nil {
		t.Fatal(err)
	}
	c.eventually(20*time.Second, "h2 back with db", func() bool {
		return c.membersAlive(0, 3) && c.allSee(all, "db", "h2=passing")()
	})
	idAfter, _ := c.get(1, "/v1/agent/self")
	if nodeID(idBefore) == "" || nodeID(idBefore) != nodeID(idAfter) {
		t.Errorf("node ID changed across restart: %q → %q", nodeID(idBefore), nodeID(idAfter))
	}

	// kill -9 h3 after it registers: critical everywhere, then reaped (--reap-after 20s).
	c.register(2, "api", 8080)
	c.eventually(10*time.Second, "api visible", c.allSee(all, "api", "h3=passing"))
	if err := c.procs[2].Kill(); err != nil {
		t.Fatal(err)
	}
	took = c.eventually(30*time.Second, "crash seen as critical", c.allSee([]int{0, 1}, "api", "h3=critical"))
	t.Logf("kill -9 seen as critical on all after %s", took)
	c.eventually(40*time.Second, "crashed node reaped", c.allSee([]int{0, 1}, "api", ""))

	// Graceful leave of h2 (SIGTERM): its services are gone from h1 at once.
	if err := syscall.Kill(c.procs[1].Pid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	took = c.eventually(5*time.Second, "leave seen at once", c.allSee([]int{0}, "db", ""))
	t.Logf("graceful leave seen after %s", took)
}

func nodeID(selfJSON string) string {
	var self struct{ Config struct{ NodeID string } }
	_ = json.Unmarshal([]byte(selfJSON), &self)
	return self.Config.NodeID
}

func TestPartitionHealsAndLossCausesNoFalseFailures(t *testing.T) {
	c := newCluster(t, 5, nil)
	all := rangeHosts(0, 5)
	c.eventually(40*time.Second, "5 members alive everywhere", func() bool { return c.allMembersAlive(all) })
	ctx := context.Background()
	hosts := c.tb.Hosts()

	// 10% loss on every host for 60 s: nobody is declared failed.
	for _, h := range hosts {
		if err := c.tb.Loss(ctx, h, 10); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		for _, i := range all {
			if body, ok := c.get(i, "/v1/agent/members"); ok && strings.Contains(body, `"Status":4`) {
				t.Fatalf("h%d declared a member failed under 10%% loss: %s", i+1, body)
			}
		}
		<-time.After(time.Second)
	}
	for _, h := range hosts {
		if err := c.tb.ClearLoss(ctx, h); err != nil {
			t.Fatal(err)
		}
	}

	// Split 2+3 for 40 s (longer than the suspicion timeout), change both sides, heal.
	if err := c.tb.Split(ctx, hosts[:2], hosts[2:]); err != nil {
		t.Fatal(err)
	}
	c.register(0, "left", 1)
	c.register(4, "right", 2)
	<-time.After(40 * time.Second) // the partition's duration is the scenario, not a wait for a condition
	if got := c.instances(0, "right"); got != "" {
		t.Errorf("h1 saw the right side's change during the split: %q", c.instances(0, "right"))
	}
	if err := c.tb.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			for _, i := range all {
				m, _ := c.get(i, "/v1/agent/members")
				t.Logf("h%d: left=%q right=%q members=%s", i+1, c.instances(i, "left"), c.instances(i, "right"), m)
			}
		}
	}()
	// Membership is logged apart from the catalogs, so a slow heal shows which part
	// was slow: finding the other side again, or exchanging what changed.
	healed := time.Now()
	membersAlive := "not seen"
	took := c.eventually(5*time.Second, "catalogs equal after heal", func() bool {
		if membersAlive == "not seen" && c.allMembersAlive(all) {
			membersAlive = "seen after " + time.Since(healed).String()
		}
		return c.allSee(all, "left", "h1=passing")() && c.allSee(all, "right", "h5=passing")()
	})
	t.Logf("partition healed: catalogs equal %s after the heal (all members alive everywhere: %s)", took, membersAlive)
}

func TestWrongKeyCannotJoin(t *testing.T) {
	testnet.Require(t)
	key1 := "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	key2 := "HxwdHhscGRoYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgE="
	c := &cluster{t: t, tb: testnet.NewConfig(t, testnet.Config{Hosts: 2, DisableIPv6: true})}
	c.dirs = []string{t.TempDir(), t.TempDir()}
	p, err := c.tb.Hosts()[0].Start(rumorBin, c.agentArgs(0, "--encrypt", key1)...)
	if err != nil {
		t.Fatal(err)
	}
	c.procs = append(c.procs, p)
	c.eventually(10*time.Second, "h1 up", func() bool { return c.membersAlive(0, 1) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := []string{"agent", "--node", "h2", "--bind", c.tb.Hosts()[1].IP().String() + ":7946", "--data-dir", c.dirs[1],
		"--http-addr", httpAddr, "--join", c.tb.Hosts()[0].IP().String(), "--encrypt", key2}
	out, err := c.tb.Hosts()[1].Command(ctx, rumorBin, args...).CombinedOutput()
	if err == nil {
		t.Fatalf("agent with the wrong key started and joined:\n%s", out)
	}
	if !strings.Contains(string(out), "--encrypt") {
		t.Errorf("error does not say what to do:\n%s", out)
	}
}

func TestTenAgents(t *testing.T) {
	c := newCluster(t, 10, nil)
	all := rangeHosts(0, 10)
	c.eventually(60*time.Second, "10 members alive everywhere", func() bool { return c.allMembersAlive(all) })
	c.register(9, "web", 80)
	took := c.eventually(10*time.Second, "registration visible on all 10", c.allSee(all, "web", "h10=passing"))
	t.Logf("registration visible on all 10 after %s", took)
	if out, err := c.rumor(9, "deregister", "--http-addr", httpAddr, "web"); err != nil {
		t.Fatalf("deregister: %v\n%s", err, out)
	}
	c.eventually(10*time.Second, "deregistration visible on all 10", c.allSee(all, "web", ""))
}

// TestDelayAndJitter gives every agent 30 ± 20 ms of delay on everything it sends
// (the test agent internal/netemagent, which wraps gossip's transport with
// gossip/netem: the kernel has no tc netem), so each hop takes 10–50 ms and packets
// reorder: a registration still reaches every agent, and over 30 s no healthy agent
// is declared failed by anyone.
func TestDelayAndJitter(t *testing.T) {
	const n = 5
	c := newClusterOf(t, netemAgentBin, n, func(int) []string {
		return []string{"--delay", "30ms", "--jitter", "20ms"}
	})
	all := rangeHosts(0, n)
	c.eventually(40*time.Second, "5 members alive everywhere", func() bool { return c.allMembersAlive(all) })
	for i, p := range c.procs {
		if !strings.Contains(p.Output(), "debug gossip delay is on") {
			t.Fatalf("agent h%d does not say its gossip is delayed:\n%s", i+1, tail(p.Output(), 2000))
		}
	}
	c.register(4, "web", 80)
	took := c.eventually(10*time.Second, "registration visible on all", c.allSee(all, "web", "h5=passing"))
	t.Logf("registration visible on all %d agents after %s with 30±20 ms per hop", n, took)

	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, i := range all {
			if body, ok := c.get(i, "/v1/agent/members"); ok && strings.Contains(body, `"Status":4`) {
				t.Fatalf("h%d declared a member failed under 30±20 ms delay: %s", i+1, body)
			}
		}
		<-time.After(time.Second) // the polling interval of the observation window
	}
	// Every agent is still there and sees the registration.
	for _, i := range all {
		if !c.membersAlive(i, n) {
			t.Errorf("h%d does not see %d alive members after the window", i+1, n)
		}
	}
	if !c.allSee(all, "web", "h5=passing")() {
		t.Error("registration no longer visible everywhere")
	}
}
