package compat

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"
)

// rumorBin is the rumor binary TestMain builds for every test.
var rumorBin string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "rumor-compat-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "compat:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	rumorBin = filepath.Join(dir, "rumor")
	// Built inside the enclosing module, with its go.mod, exactly as users build it.
	build := exec.Command("go", "build", "-o", rumorBin, "./cmd/rumor")
	build.Dir = ".."
	build.Env = append(os.Environ(), "GOTOOLCHAIN=local")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "compat: build rumor:", err)
		return 1
	}
	return m.Run()
}

// Deadlines. They are generous because the machine running the tests may be busy;
// the 1 s wake-up of a blocking query is the one timing the tests assert, since it
// is what the issue promises clients.
const (
	startTimeout  = 20 * time.Second // an agent process prints that it is running
	stopTimeout   = 15 * time.Second // an agent leaves and exits after SIGTERM
	settleTimeout = 20 * time.Second // gossip converges, a change reaches a reader
	pollEvery     = 25 * time.Millisecond
)

// lockedBuffer collects a child process's output; tests read it while it runs.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// process is a child process whose output is kept, and which the test's cleanup
// stops: first with SIGTERM (a rumor agent leaves gracefully), then with SIGKILL.
type process struct {
	name string
	// stopSignal asks the process to exit: SIGTERM unless set before the test ends
	// (consul-template, for one, passes SIGTERM on to its child and keeps running).
	stopSignal os.Signal
	cmd        *exec.Cmd
	out        *lockedBuffer
	done       chan struct{} // closed when the process has exited
	err        error         // its exit status, set before done closes
}

// startProcess starts bin with args and stops it when the test ends, logging the
// tail of its output if the test failed.
func startProcess(t *testing.T, name, bin string, args ...string) *process {
	t.Helper()
	p := &process{name: name, stopSignal: syscall.SIGTERM, out: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = cleanEnv()
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("%s output (last 4000 bytes):\n%s", name, tail(p.out.String(), 4000))
		}
	})
	return p
}

// stop ends the process, gracefully if it can within stopTimeout.
func (p *process) stop(t *testing.T) {
	t.Helper()
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(p.stopSignal)
	select {
	case <-p.done:
		return
	case <-time.After(stopTimeout):
		t.Errorf("%s did not exit within %s of %v; killing it", p.name, stopTimeout, p.stopSignal)
	}
	_ = p.cmd.Process.Kill()
	<-p.done // SIGKILL cannot be ignored; Wait returns promptly
}

// exited reports whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// cleanEnv is this process's environment without Consul's client variables, so a
// developer's CONSUL_HTTP_ADDR or token cannot point a tool at another server.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CONSUL_") {
			env = append(env, kv)
		}
	}
	return env
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// eventually polls cond until it returns "" (done) or d passes, then fails the test
// with what cond last said was missing. It returns how long it took.
func eventually(t *testing.T, d time.Duration, what string, cond func() string) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		missing := cond()
		if missing == "" {
			return time.Since(start)
		}
		select {
		case <-deadline.C:
			t.Fatalf("%s: not within %s: %s", what, d, missing)
		case <-tick.C:
		}
	}
}

// agent is one running `rumor agent` process on loopback.
type agent struct {
	*process
	node   string
	http   string // host:port of its HTTP API
	gossip string // host:port of its gossip listener
	client *consulapi.Client
}

// runningLine is the line the agent logs once both listeners are up; it names the
// ports the kernel picked.
var runningLine = regexp.MustCompile(`msg="rumor agent running".* http=(\S+) gossip=(\S+)`)

// startAgent runs an agent named node on loopback with kernel-chosen ports, its own
// temporary data dir and the fast "local" gossip timing, plus the given flags (such
// as "--join", addr), and waits until it serves.
func startAgent(t *testing.T, node string, flags ...string) *agent {
	t.Helper()
	args := []string{"agent", "--node", node, "--bind", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--dns-addr", "127.0.0.1:0",
		"--data-dir", t.TempDir(), "--gossip-profile", "local", "--log-level", "debug"}
	args = append(args, flags...)
	a := &agent{process: startProcess(t, "agent "+node, rumorBin, args...), node: node}
	eventually(t, startTimeout, "agent "+node+" starts", func() string {
		if a.exited() {
			t.Fatalf("agent %s exited: %v\n%s", node, a.err, a.out.String())
		}
		m := runningLine.FindStringSubmatch(a.out.String())
		if m == nil {
			return "no \"rumor agent running\" line yet"
		}
		a.http, a.gossip = m[1], m[2]
		return ""
	})
	cfg := consulapi.DefaultNonPooledConfig()
	cfg.Address, cfg.Scheme, cfg.Token, cfg.Datacenter = a.http, "http", "", ""
	c, err := consulapi.NewClient(cfg)
	if err != nil {
		t.Fatalf("consul client for %s: %v", node, err)
	}
	a.client = c
	return a
}

// startCluster runs three agents, alpha, beta and gamma, the last two joining alpha,
// and waits until each sees all three alive.
func startCluster(t *testing.T) []*agent {
	t.Helper()
	a := startAgent(t, "alpha")
	agents := []*agent{a, startAgent(t, "beta", "--join", a.gossip), startAgent(t, "gamma", "--join", a.gossip)}
	for _, ag := range agents {
		eventually(t, settleTimeout, ag.node+" sees three alive members", func() string {
			ms, err := ag.client.Agent().Members(false)
			if err != nil {
				return err.Error()
			}
			alive := 0
			for _, m := range ms {
				if m.Status == serfAlive {
					alive++
				}
			}
			if alive != 3 {
				return fmt.Sprintf("%d alive of %d members", alive, len(ms))
			}
			return ""
		})
	}
	return agents
}

// toolsDir is where scripts/compat-tools.sh caches the client tools.
func toolsDir() string {
	if d := os.Getenv("RUMOR_TOOLS"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "rumor-tools")
	}
	return filepath.Join(home, ".cache", "rumor-tools")
}

// requireTool returns the path of a tool built by scripts/compat-tools.sh. When it is
// missing the test skips, naming the script to run, except under CI=true, where
// every compatibility test must run and a missing tool fails.
func requireTool(t *testing.T, dir, binary string) string {
	t.Helper()
	path := filepath.Join(toolsDir(), dir, binary)
	if st, err := os.Stat(path); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
		return path
	}
	msg := fmt.Sprintf("%s not found at %s: run scripts/compat-tools.sh (or scripts/compat.sh) to build it", binary, path)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " (CI=true: compatibility tests must run)")
	}
	t.Skip(msg)
	return ""
}

// serfAlive is serf's MemberStatus for an alive member, which AgentMember.Status
// carries; consul/api has no constant for it.
const serfAlive = 1
