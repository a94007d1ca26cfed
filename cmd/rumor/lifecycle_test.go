package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/agent"
	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/internal/testkit"
)

// TestMain lets a test run this binary as the rumor command: with RUMOR_TEST_MAIN=1
// it is `rumor` with the arguments it was started with.
func TestMain(m *testing.M) {
	testkit.GuardMDNS() // no test runs an mDNS agent in the root namespace
	if os.Getenv("RUMOR_TEST_MAIN") == "1" {
		main()
	}
	os.Exit(m.Run())
}

// child is `rumor agent` running as a separate process, so real signals reach it.
type child struct {
	cmd      *exec.Cmd
	stderr   *testkit.Buffer
	done     chan struct{}
	exitCode int
	httpAddr string
}

var runningRe = regexp.MustCompile(`rumor agent running".*http=(\S+)`)

// startChild runs the test binary as `rumor args...` and waits until its agent runs.
func startChild(t *testing.T, bin string, env []string, cred *syscall.Credential, args ...string) *child {
	t.Helper()
	c := &child{cmd: exec.Command(bin, args...), stderr: &testkit.Buffer{}, done: make(chan struct{})}
	c.cmd.Env = append(append(os.Environ(), "RUMOR_TEST_MAIN=1"), env...)
	c.cmd.Stdout = io.Discard
	c.cmd.Stderr = c.stderr
	if cred != nil {
		c.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := c.cmd.Wait()
		c.exitCode = 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			c.exitCode = ee.ExitCode()
		} else if err != nil {
			c.exitCode = -1
		}
		close(c.done)
	}()
	t.Cleanup(func() {
		_ = c.cmd.Process.Kill()
		<-c.done
	})
	testkit.Eventually(t, 20*time.Second, "the child agent to run", func() bool {
		select {
		case <-c.done:
			t.Fatalf("the child exited with %d:\n%s", c.exitCode, c.stderr)
		default:
		}
		if m := runningRe.FindStringSubmatch(c.stderr.String()); m != nil {
			c.httpAddr = m[1]
			return true
		}
		return false
	})
	return c
}

// signal sends sig to the child.
func (c *child) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := c.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// wait waits for the child to exit and returns its exit code.
func (c *child) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-c.done:
		return c.exitCode
	case <-time.After(30 * time.Second):
		t.Fatalf("the child did not exit:\n%s", c.stderr)
		return -1
	}
}

// startJoinedChild runs a dev agent named child in a child process, joined to peer,
// and waits until peer sees it and the service it registers.
func startJoinedChild(t *testing.T, peer *agent.Agent) *child {
	t.Helper()
	c := startChild(t, os.Args[0], nil, nil, "agent", "--dev", "--node", "child", "--bind", "127.0.0.1:0",
		"--http-addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--join", peer.GossipAddr().String(), "--dns-addr", "127.0.0.1:0")
	if r := rumor(t, map[string]string{"RUMOR_HTTP_ADDR": c.httpAddr}, "register", "--name", "web", "--port", "80"); r.code != 0 {
		t.Fatalf("register on the child: %+v", r)
	}
	testkit.Eventually(t, 20*time.Second, "the peer to see the child's service", func() bool {
		return len(peer.Catalog().ServiceInstances("web", catalog.Filter{})) == 1
	})
	return c
}

// TestAgentSIGTERMLeavesGracefully: SIGTERM makes `rumor agent` leave the pool (its
// peer sees it left and drops its service at once) and exit 0.
func TestAgentSIGTERMLeavesGracefully(t *testing.T) {
	if testing.Short() {
		t.Skip("runs agents in child processes")
	}
	peer, _ := startPeer(t, "peer")
	c := startJoinedChild(t, peer)
	c.signal(t, syscall.SIGTERM)
	if code := c.wait(t); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0:\n%s", code, c.stderr)
	}
	// The goodbye reached the peer before the child exited; the peer applies it on
	// its own goroutine, at once, not after a failure-detection timeout.
	testkit.Eventually(t, 20*time.Second, "the peer to see the child left, its service gone", func() bool {
		return liveness(peer, "child") == catalog.LivenessLeft && len(peer.Catalog().ServiceInstances("web", catalog.Filter{})) == 0
	})
	for _, s := range []string{"leaving the pool", "left the pool; bye"} {
		if !strings.Contains(c.stderr.String(), s) {
			t.Errorf("the child's log lacks %q:\n%s", s, c.stderr)
		}
	}
}

// TestAgentSecondSignalExitsAtOnce: a second SIGINT while the agent is still leaving
// exits at once with status 1. A client that opened a connection and sent half a
// request keeps the agent's HTTP shutdown waiting (up to 5 s), so the leave is
// still under way when the second signal arrives; without it, the agent would exit 0.
func TestAgentSecondSignalExitsAtOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("runs agents in child processes")
	}
	peer, _ := startPeer(t, "peer")
	c := startJoinedChild(t, peer)
	conn, err := net.Dial("tcp", c.httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /v1/agent/self HTTP/1.1\r\nHost: x\r\n"); err != nil {
		t.Fatal(err)
	}
	c.signal(t, syscall.SIGINT)
	testkit.Eventually(t, 20*time.Second, "the child to start leaving", func() bool { return strings.Contains(c.stderr.String(), "leaving the pool") })
	c.signal(t, syscall.SIGINT)
	if code := c.wait(t); code != 1 {
		t.Errorf("exit code %d after a second signal, want 1:\n%s", code, c.stderr)
	}
	if !strings.Contains(c.stderr.String(), "interrupted again: exiting without finishing the graceful leave") {
		t.Errorf("no message about the second signal:\n%s", c.stderr)
	}
}

// TestAgentExitsAfterRumorLeave: `rumor leave` makes `rumor agent` leave and exit 0.
func TestAgentExitsAfterRumorLeave(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real gossip")
	}
	peer, _ := startPeer(t, "peer")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var errb testkit.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"agent", "--dev", "--node", "leaver", "--bind", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
			"--join", peer.GossipAddr().String(), "--dns-addr", "127.0.0.1:0"}, strings.NewReader(""), io.Discard, &errb, func(string) string { return "" })
	}()
	var addr string
	testkit.Eventually(t, 20*time.Second, "the agent to run", func() bool {
		if m := runningRe.FindStringSubmatch(errb.String()); m != nil {
			addr = m[1]
			return true
		}
		return false
	})
	testkit.Eventually(t, 20*time.Second, "the peer to see the agent", func() bool { return liveness(peer, "leaver") == catalog.LivenessAlive && len(peer.Members()) == 2 })
	if r := rumor(t, map[string]string{"RUMOR_HTTP_ADDR": addr}, "leave"); r.code != 0 {
		t.Fatalf("rumor leave: %+v", r)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("agent exit code %d after rumor leave, want 0:\n%s", code, errb.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the agent did not exit after rumor leave:\n%s", errb.String())
	}
	testkit.Eventually(t, 20*time.Second, "the peer to see the agent left", func() bool { return liveness(peer, "leaver") == catalog.LivenessLeft })
	if !strings.Contains(errb.String(), "left the pool at an API request") {
		t.Errorf("no log of the API leave:\n%s", errb.String())
	}
}

// TestAgentWithNoFlags runs `rumor agent` with no flags at all, as an unprivileged
// user so its data dir is $XDG_STATE_HOME/rumor (as root it would be /var/lib/rumor):
// it must start on the default ports, create its data dir there, answer on
// 127.0.0.1:8500, and exit 0 on SIGTERM. Skipped when a default port is taken.
func TestAgentWithNoFlags(t *testing.T) {
	if testing.Short() {
		t.Skip("runs an agent in a child process")
	}
	for _, p := range []struct{ network, addr string }{{"tcp", "127.0.0.1:8500"}, {"tcp", "0.0.0.0:7946"}, {"udp", "0.0.0.0:7946"}} {
		var err error
		if p.network == "udp" {
			var pc net.PacketConn
			if pc, err = net.ListenPacket(p.network, p.addr); err == nil {
				pc.Close()
			}
		} else {
			var ln net.Listener
			if ln, err = net.Listen(p.network, p.addr); err == nil {
				ln.Close()
			}
		}
		if err != nil {
			t.Skipf("default port %s/%s is taken: %v", p.addr, p.network, err)
		}
	}
	home := t.TempDir()
	bin := os.Args[0]
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		// Run as nobody, from a copy of the test binary it can read.
		if err := os.Chmod(filepath.Dir(home), 0o711); err != nil { // t.TempDir's parent
			t.Fatal(err)
		}
		if err := os.Chmod(home, 0o777); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(os.Args[0])
		if err != nil {
			t.Fatal(err)
		}
		bin = filepath.Join(home, "rumor.test")
		if err := os.WriteFile(bin, b, 0o755); err != nil {
			t.Fatal(err)
		}
		cred = &syscall.Credential{Uid: 65534, Gid: 65534}
	}
	state := filepath.Join(home, "state")
	c := startChild(t, bin, []string{"HOME=" + home, "XDG_STATE_HOME=" + state, "RUMOR_HTTP_ADDR=", "RUMOR_DNS_ADDR=127.0.0.1:0"}, cred, "agent")
	if c.httpAddr != "127.0.0.1:8500" {
		t.Errorf("HTTP API on %s, want 127.0.0.1:8500", c.httpAddr)
	}
	if !regexp.MustCompile(`gossip=\S+:7946`).MatchString(c.stderr.String()) {
		t.Errorf("gossip not on port 7946:\n%s", c.stderr)
	}
	if !strings.Contains(c.stderr.String(), "data_dir="+filepath.Join(state, "rumor")) {
		t.Errorf("the log does not name the data dir %s:\n%s", filepath.Join(state, "rumor"), c.stderr)
	}
	if _, err := os.Stat(filepath.Join(state, "rumor", "node-id")); err != nil {
		t.Errorf("no node ID in the default data dir: %v", err)
	}
	resp, err := http.Get("http://127.0.0.1:8500/v1/agent/self")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /v1/agent/self: %s", resp.Status)
	}
	c.signal(t, syscall.SIGTERM)
	if code := c.wait(t); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0:\n%s", code, c.stderr)
	}
}
