package lantest

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
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/internal/testkit"
	"github.com/rumor-sd/rumor/internal/testnet"
)

// rumorBin is the rumor binary, built once for all tests.
var rumorBin string

func TestMain(m *testing.M) {
	testkit.GuardMDNS() // agents may run mDNS only inside the testbed's namespaces
	dir, err := os.MkdirTemp("", "rumor-lantest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	rumorBin = filepath.Join(dir, "rumor")
	build := exec.Command("go", "build", "-o", rumorBin, "github.com/rumor-sd/rumor/cmd/rumor")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build rumor:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// avahiTools are the programs the Avahi tests need.
var avahiTools = []string{"avahi-daemon", "avahi-browse", "avahi-publish", "dbus-daemon", "unshare"}

const httpAddr = "127.0.0.1:8500"

// lan is a testbed whose hosts run agents and Avahi daemons.
type lan struct {
	t       testing.TB
	tb      *testnet.Testbed
	agents  map[int]*testnet.Process
	clients map[int]*http.Client
}

func newLAN(t testing.TB, n int, tools ...string) *lan {
	t.Helper()
	testnet.Require(t, tools...)
	l := &lan{t: t, tb: testnet.NewConfig(t, testnet.Config{Hosts: n, DisableIPv6: true}),
		agents: map[int]*testnet.Process{}, clients: map[int]*http.Client{}}
	t.Cleanup(func() {
		if t.Failed() {
			for i, p := range l.agents {
				out := p.Output()
				t.Logf("agent on host %d (last 3000 bytes):\n%s", i, out[max(0, len(out)-3000):])
			}
		}
	})
	return l
}

func (l *lan) host(i int) *testnet.Host { return l.tb.Hosts()[i] }

// agent starts `rumor agent` on host i with no join flags: mDNS (on by default in the
// CLI) is how it finds its peers.
func (l *lan) agent(i int, node string, extra ...string) *testnet.Process {
	l.t.Helper()
	h := l.host(i)
	args := append([]string{"agent", "--node", node, "--bind", h.IP().String() + ":7946",
		"--data-dir", l.t.TempDir(), "--http-addr", httpAddr}, extra...)
	p, err := h.Start(rumorBin, args...)
	if err != nil {
		l.t.Fatalf("start agent %s: %v", node, err)
	}
	l.agents[i] = p
	return p
}

// client returns an HTTP client whose connections are dialled in host i.
func (l *lan) client(i int) *http.Client {
	if c := l.clients[i]; c != nil {
		return c
	}
	c := &http.Client{Transport: &http.Transport{DialContext: l.host(i).DialContext}, Timeout: 15 * time.Second}
	l.clients[i] = c
	l.t.Cleanup(c.CloseIdleConnections)
	return c
}

// do sends a request to host i's agent and returns the body of a 200 answer.
func (l *lan) do(i int, method, path, body string) (string, error) {
	req, err := http.NewRequest(method, "http://"+httpAddr+path, strings.NewReader(body))
	if err != nil {
		return "", err
	}
	resp, err := l.client(i).Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, b)
	}
	return string(b), err
}

// members returns the alive members host i's agent sees, sorted.
func (l *lan) members(i int) ([]string, error) {
	body, err := l.do(i, "GET", "/v1/agent/members", "")
	if err != nil {
		return nil, err
	}
	var ms []struct {
		Name   string
		Status int
	}
	if err := json.Unmarshal([]byte(body), &ms); err != nil {
		return nil, err
	}
	var out []string
	for _, m := range ms {
		if m.Status == 1 {
			out = append(out, m.Name)
		}
	}
	slices.Sort(out)
	return out, nil
}

// sees returns a condition: host i's agent sees exactly want as alive members.
func (l *lan) sees(i int, want ...string) func() error {
	return func() error {
		got, err := l.members(i)
		if err != nil {
			return err
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("host %d sees %v, want %v", i, got, want)
		}
		return nil
	}
}

// catalogService returns "node/serviceID:port" for each instance of name host i sees.
func (l *lan) catalogService(i int, name string) ([]string, []map[string]string, error) {
	body, err := l.do(i, "GET", "/v1/catalog/service/"+name, "")
	if err != nil {
		return nil, nil, err
	}
	var es []struct {
		Node, ServiceID string
		ServicePort     int
		ServiceMeta     map[string]string
	}
	if err := json.Unmarshal([]byte(body), &es); err != nil {
		return nil, nil, err
	}
	var out []string
	var metas []map[string]string
	for _, e := range es {
		out = append(out, fmt.Sprintf("%s/%s:%d", e.Node, e.ServiceID, e.ServicePort))
		metas = append(metas, e.ServiceMeta)
	}
	return out, metas, nil
}

// poll waits up to within for cond, every 100 ms.
func poll(t testing.TB, within time.Duration, what string, cond func() error) time.Duration {
	t.Helper()
	return testkit.Poll(t, within, 100*time.Millisecond, what, cond)
}

// all combines conditions.
func all(conds ...func() error) func() error {
	return func() error {
		for _, c := range conds {
			if err := c(); err != nil {
				return err
			}
		}
		return nil
	}
}

// avahi is an avahi-daemon in a host, with a private D-Bus system bus and a private
// mount namespace (its own /etc/avahi/services and /run/avahi-daemon).
type avahi struct {
	l   *lan
	i   int
	env []string
}

// avahi starts Avahi in host i under the host name name and waits until it is ready.
func (l *lan) avahi(i int, name string) *avahi {
	l.t.Helper()
	dir := l.t.TempDir()
	for _, d := range []string{"services", "run"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			l.t.Fatal(err)
		}
	}
	conf := fmt.Sprintf("[server]\nhost-name=%s\ndomain-name=local\nuse-ipv4=yes\nuse-ipv6=no\nallow-interfaces=eth0\n"+
		"enable-dbus=yes\nratelimit-interval-usec=1000000\nratelimit-burst=1000\n[wide-area]\nenable-wide-area=no\n"+
		"[publish]\npublish-hinfo=no\npublish-workstation=no\n", name)
	sock := filepath.Join(dir, "run", "bus.sock")
	bus := `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>system</type><listen>unix:path=` + sock + `</listen><auth>EXTERNAL</auth>
<policy context="default"><allow user="*"/><allow own="*"/><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/></policy>
</busconfig>`
	for f, s := range map[string]string{"avahi-daemon.conf": conf, "bus.conf": bus} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(s), 0o644); err != nil {
			l.t.Fatal(err)
		}
	}
	h := l.host(i)
	if _, err := h.Start("dbus-daemon", "--config-file="+filepath.Join(dir, "bus.conf"), "--nofork", "--nopidfile"); err != nil {
		l.t.Fatalf("dbus-daemon: %v", err)
	}
	poll(l.t, 10*time.Second, "the private D-Bus socket", func() error { _, err := os.Stat(sock); return err })
	a := &avahi{l: l, i: i, env: []string{"DBUS_SYSTEM_BUS_ADDRESS=unix:path=" + sock}}
	p, err := h.StartEnv(a.env, "unshare", "--mount", "--propagation", "private", "bash", "-c",
		`mount --bind "$1/services" /etc/avahi/services && mkdir -p /run/avahi-daemon && mount -t tmpfs tmpfs /run/avahi-daemon &&
		exec avahi-daemon -f "$1/avahi-daemon.conf" --no-drop-root --no-chroot --no-rlimits --no-proc-title`, "_", dir)
	if err != nil {
		l.t.Fatalf("avahi-daemon: %v", err)
	}
	poll(l.t, 15*time.Second, "avahi-daemon ready", func() error {
		if strings.Contains(p.Output(), "Server startup complete") {
			return nil
		}
		if p.Exited() {
			return fmt.Errorf("avahi-daemon exited: %s", p.Output())
		}
		return errors.New("not yet")
	})
	return a
}

// browse runs avahi-browse -rtp typ and returns its resolved ("=") lines.
func (a *avahi) browse(typ string) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := a.l.host(a.i).Command(ctx, "avahi-browse", "-rtpk", typ)
	cmd.Env = append(os.Environ(), a.env...)
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("avahi-browse: %w: %s", err, out)
	}
	var lines []string
	for line := range strings.SplitSeq(string(out), "\n") {
		if strings.HasPrefix(line, "=") {
			lines = append(lines, line)
		}
	}
	return lines, nil
}

// publish runs avahi-publish -s in the host; killing the process withdraws it.
func (a *avahi) publish(name, typ string, port int, txt ...string) *testnet.Process {
	a.l.t.Helper()
	args := append([]string{"-s", name, typ, fmt.Sprint(port)}, txt...)
	p, err := a.l.host(a.i).StartEnv(a.env, "avahi-publish", args...)
	if err != nil {
		a.l.t.Fatalf("avahi-publish: %v", err)
	}
	return p
}

// rumor runs the rumor CLI in host i.
func (l *lan) rumor(i int, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := l.host(i).Command(ctx, rumorBin, args...).CombinedOutput()
	return string(out), err
}
