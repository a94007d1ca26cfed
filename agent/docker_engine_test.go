package agent

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/docker"
	"github.com/rumor-sd/rumor/docker/dockertest"
	"github.com/rumor-sd/rumor/internal/testkit"
)

// TestDockerEngine runs the watcher inside agents against this machine's real
// Docker engine, with an image of the static test server built in the test (there
// is no registry). It needs the engine: skipped without one on a developer
// machine, failed in CI. Everything it creates is named dockertest.Prefix+PID and
// removed at the end, failed or not; ports are published on 127.0.0.1 only.
func TestDockerEngine(t *testing.T) {
	if testing.Short() {
		t.Skip("runs containers")
	}
	cli := dockertest.RequireEngine(t)
	image := dockertest.BuildImage(t, cli)
	// The other tests' containers on this engine are registered too: every test
	// looks only at the services of the containers it started.
	t.Run("web", func(t *testing.T) { testDockerWeb(t, cli, image) })
	t.Run("ports, ignore and udp", func(t *testing.T) { testDockerPorts(t, cli, image) })
	t.Run("internal", func(t *testing.T) { testDockerInternal(t, cli, image) })
	t.Run("healthcheck", func(t *testing.T) { testDockerHealthcheck(t, cli, image) })
	t.Run("agent restart", func(t *testing.T) { testDockerAgentRestart(t, cli, image) })
	t.Run("engine unreachable", func(t *testing.T) { testDockerUnreachable(t, cli, image) })
}

// realDocker returns a config for an agent with real gossip on loopback and the
// watcher on the real engine, reconciling every reconcile.
func realDocker(t *testing.T, name, dir string, reconcile time.Duration) Config {
	return Config{NodeName: name, DataDir: dir, BindAddr: "127.0.0.1", BindPort: 0, GossipProfile: "local",
		HTTPAddr: "127.0.0.1:0", Docker: DockerConfig{Enabled: true, ReconcileInterval: reconcile,
			retryMin: 20 * time.Millisecond, retryMax: 200 * time.Millisecond}}
}

// instances returns the instances of name on a's catalog that n's containers
// registered, by service ID.
func instances(a *Agent, name, node string) map[string]catalog.Instance {
	out := map[string]catalog.Instance{}
	for _, in := range a.Catalog().ServiceInstances(name, catalog.Filter{}) {
		if in.Node.Node.Name == node {
			out[in.Service.ID] = in
		}
	}
	return out
}

// passing reports whether every check of in passes and there are want of them
// beyond the node's serfHealth.
func passing(in catalog.Instance, want int) bool {
	n := 0
	for _, c := range in.Checks {
		if c.Status != catalog.StatusPassing {
			return false
		}
		if c.ServiceID != "" {
			n++
		}
	}
	return n == want
}

func stopContainer(t *testing.T, cli *client.Client, id string) {
	t.Helper()
	timeout := 5
	if _, err := cli.ContainerStop(context.Background(), id, client.ContainerStopOptions{Timeout: &timeout}); err != nil {
		t.Fatalf("docker stop: %v", err)
	}
}

// testDockerWeb: a container with SERVICE_NAME=web and a published port is in the
// catalog with its HTTP check passing, and on a second agent through gossip;
// `docker stop` removes it from both.
func testDockerWeb(t *testing.T, cli *client.Client, image string) {
	a := startAgent(t, realDocker(t, "d1", t.TempDir(), time.Minute))
	cfg2 := Config{NodeName: "d2", DataDir: t.TempDir(), BindAddr: "127.0.0.1", GossipProfile: "local",
		HTTPAddr: "127.0.0.1:0", Join: []string{a.GossipAddr().String()}}
	b := startAgent(t, cfg2)
	name := dockertest.Name("web")
	id := dockertest.Run(t, cli, dockertest.Spec{Name: name, Image: image, Publish: []string{"8080/tcp"},
		Env: []string{"SERVICE_NAME=web", "SERVICE_CHECK_HTTP=/health", "SERVICE_CHECK_INTERVAL=1s", "SERVICE_TAGS=v1"}})
	port := dockertest.HostPort(t, cli, id, "8080/tcp")
	sid := "d1:" + name + ":8080"
	for _, ag := range []*Agent{a, b} {
		testkit.Eventually(t, 60*time.Second, "web passing on "+ag.NodeName(), func() bool {
			in, ok := instances(ag, "web", "d1")[sid]
			return ok && in.Service.Address == "127.0.0.1" && in.Service.Port == port &&
				slices.Equal(in.Service.Tags, []string{"v1"}) && passing(in, 2)
		})
	}
	stopContainer(t, cli, id)
	for _, ag := range []*Agent{a, b} {
		testkit.Eventually(t, 60*time.Second, "web gone on "+ag.NodeName(), func() bool { _, ok := instances(ag, "web", "d1")[sid]; return !ok })
	}
}

// testDockerPorts: several published ports become one service each (named
// <image>-<port>), a UDP port gets its ":udp" ID and tag, and SERVICE_IGNORE
// containers and SERVICE_<port>_IGNORE ports are left out.
func testDockerPorts(t *testing.T, cli *client.Client, image string) {
	a := startAgent(t, realDocker(t, "d1", t.TempDir(), time.Minute))
	multi := dockertest.Name("multi")
	dockertest.Run(t, cli, dockertest.Spec{Name: multi, Image: image, Cmd: []string{"-http", "8080,9090,7070", "-udp", "5353"},
		Publish: []string{"8080/tcp", "9090/tcp", "7070/tcp", "5353/udp"},
		Env:     []string{"SERVICE_NAME=multi", "SERVICE_9090_NAME=metrics", "SERVICE_7070_IGNORE=1", "SERVICE_CHECK_TCP=true"}})
	ignored := dockertest.Name("ignored")
	dockertest.Run(t, cli, dockertest.Spec{Name: ignored, Image: image, Publish: []string{"8080/tcp"},
		Labels: map[string]string{"SERVICE_NAME": "ignored", "SERVICE_IGNORE": "true"}})
	want := map[string]string{ // ID → name
		"d1:" + multi + ":8080":     "multi-8080",
		"d1:" + multi + ":9090":     "metrics",
		"d1:" + multi + ":5353:udp": "multi-5353",
	}
	testkit.Eventually(t, 60*time.Second, "three services of "+multi, func() bool { return len(localIDs(a, "d1:"+multi)) == 3 })
	got := map[string]string{}
	for _, s := range a.LocalServices() {
		if strings.HasPrefix(s.ID, "d1:"+multi) {
			got[s.ID] = s.Name
			if strings.HasSuffix(s.ID, ":udp") && !slices.Contains(s.Tags, "udp") {
				t.Errorf("%s has tags %v, want udp", s.ID, s.Tags)
			}
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("services %v, want %v", got, want)
	}
	for _, n := range []string{"metrics", "multi-8080"} {
		testkit.Eventually(t, 60*time.Second, n+"'s TCP check passing", func() bool {
			for _, in := range instances(a, n, "d1") {
				return passing(in, 2)
			}
			return false
		})
	}
	if ids := localIDs(a, "d1:"+ignored); len(ids) != 0 {
		t.Errorf("SERVICE_IGNORE container registered: %v", ids)
	}
}

// testDockerInternal: --docker-internal registers the container's address on the
// network its label names, and the exposed port; the check reaches it there. The
// network is dual-stack: the IPv6 address is the lan_ipv6 tagged address.
func testDockerInternal(t *testing.T, cli *client.Client, image string) {
	cfg := realDocker(t, "d1", t.TempDir(), time.Minute)
	cfg.Docker.Internal = true
	a := startAgent(t, cfg)
	net1 := dockertest.Network(t, cli, true)
	name := dockertest.Name("internal")
	id := dockertest.Create(t, cli, dockertest.Spec{Name: name, Image: image, Expose: []string{"8080/tcp"}, Network: net1,
		Labels: map[string]string{"SERVICE_NAME": "internal", "SERVICE_CHECK_HTTP": "/health", "SERVICE_CHECK_INTERVAL": "1s",
			docker.LabelNetwork: net1}})
	if _, err := cli.ContainerStart(context.Background(), id, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	ep := dockertest.Inspect(t, cli, id).NetworkSettings.Networks[net1]
	if !ep.GlobalIPv6Address.IsValid() {
		t.Fatalf("no IPv6 address on the dual-stack network: %+v", ep)
	}
	testkit.Eventually(t, 60*time.Second, "internal passing at the container's address", func() bool {
		in, ok := instances(a, "internal", "d1")["d1:"+name+":8080"]
		return ok && in.Service.Address == ep.IPAddress.String() && in.Service.Port == 8080 && passing(in, 2) &&
			in.Service.TaggedAddresses["lan_ipv6"] == ep.GlobalIPv6Address.String()
	})
}

// testDockerHealthcheck: the container's Docker HEALTHCHECK drives its check:
// starting → warning, healthy → passing, unhealthy → critical. The server starts
// failing its probe, within the start period, so Docker says starting until the
// test turns it healthy.
func testDockerHealthcheck(t *testing.T, cli *client.Client, image string) {
	a := startAgent(t, realDocker(t, "d1", t.TempDir(), time.Minute))
	name := dockertest.Name("health")
	id := dockertest.Run(t, cli, dockertest.Spec{Name: name, Image: image, Publish: []string{"8080/tcp"},
		Cmd: []string{"-failing"}, Env: []string{"SERVICE_NAME=health"},
		Healthcheck: &container.HealthConfig{Test: []string{"CMD", "/server", "-probe", "http://127.0.0.1:8080/health"},
			Interval: time.Second, Timeout: 3 * time.Second, Retries: 1, StartPeriod: 10 * time.Minute}})
	check := docker.ContainerCheckID("d1:" + name + ":8080")
	status := func(want catalog.Status, out string) func() bool {
		return func() bool {
			c, ok := localCheck(a, check)
			return ok && c.Status == want && strings.Contains(c.Output, out)
		}
	}
	port := dockertest.HostPort(t, cli, id, "8080/tcp")
	post := func(path string) { // retried: the server may still be starting
		testkit.Eventually(t, 60*time.Second, "POST "+path, func() bool {
			resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d%s", port, path), "text/plain", nil)
			if err == nil {
				_ = resp.Body.Close()
			}
			return err == nil && resp.StatusCode == http.StatusOK
		})
	}
	testkit.Eventually(t, 60*time.Second, "starting: warning", status(catalog.StatusWarning, "HEALTHCHECK starting"))
	post("/ok")
	testkit.Eventually(t, 60*time.Second, "healthy: passing", status(catalog.StatusPassing, ""))
	post("/fail")
	testkit.Eventually(t, 60*time.Second, "unhealthy: critical", status(catalog.StatusCritical, "HEALTHCHECK unhealthy: status 500"))
	post("/ok")
	testkit.Eventually(t, 60*time.Second, "healthy again: passing", status(catalog.StatusPassing, ""))
}

// testDockerAgentRestart: containers that start and stop while the agent is down
// are reconciled when it comes back: nothing stale, nothing missing.
func testDockerAgentRestart(t *testing.T, cli *client.Client, image string) {
	dir := t.TempDir()
	a1 := startAgent(t, realDocker(t, "d1", dir, time.Minute)) // shut down halfway; Shutdown is idempotent
	spec := func(n string) dockertest.Spec {
		return dockertest.Spec{Name: n, Image: image, Publish: []string{"8080/tcp"}, Env: []string{"SERVICE_NAME=restart"}}
	}
	stays, stops := dockertest.Name("stays"), dockertest.Name("stops")
	dockertest.Run(t, cli, spec(stays))
	stopID := dockertest.Run(t, cli, spec(stops))
	testkit.Eventually(t, 60*time.Second, "both registered", func() bool { return len(localIDs(a1, "d1:"+dockertest.Prefix)) == 2 })
	if err := a1.Shutdown(); err != nil {
		t.Fatal(err)
	}
	stopContainer(t, cli, stopID)
	starts := dockertest.Name("starts")
	dockertest.Run(t, cli, spec(starts))
	a2 := startAgent(t, realDocker(t, "d1", dir, time.Minute))
	want := []string{"d1:" + starts + ":8080", "d1:" + stays + ":8080"}
	slices.Sort(want)
	testkit.Eventually(t, 60*time.Second, "reconciled", func() bool { return slices.Equal(localIDs(a2, "d1:"+dockertest.Prefix), want) })
}

// testDockerUnreachable: the agent is told to use a dead socket: it starts and
// serves anyway, its watcher check says why it cannot reach the engine, it
// retries, and when the engine answers there (a proxy to the real one) the
// containers started meanwhile are registered.
func testDockerUnreachable(t *testing.T, cli *client.Client, image string) {
	sock := filepath.Join(shortDir(t), "engine.sock")
	p := &unixProxy{path: sock, target: cli.DaemonHost()}
	p.dead(t)
	cfg := realDocker(t, "d1", t.TempDir(), time.Minute)
	cfg.Docker.Host = "unix://" + sock
	a := startAgent(t, cfg)
	testkit.Eventually(t, 60*time.Second, "the watcher's check critical", func() bool {
		c, ok := localCheck(a, docker.StatusCheckID)
		return ok && c.Status == catalog.StatusCritical && strings.Contains(c.Output, "cannot reach the Docker engine at unix://"+sock)
	})
	resp, err := http.Get("http://" + a.HTTPAddr().String() + "/v1/agent/self")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the agent does not serve while the engine is unreachable: %v %v", resp, err)
	}
	_ = resp.Body.Close()
	failures := a.docker.Stats().Failures
	testkit.Eventually(t, 60*time.Second, "retries", func() bool { return a.docker.Stats().Failures >= failures+2 })
	name := dockertest.Name("late")
	dockertest.Run(t, cli, dockertest.Spec{Name: name, Image: image, Publish: []string{"8080/tcp"}, Env: []string{"SERVICE_NAME=late"}})
	p.serve(t)
	testkit.Eventually(t, 60*time.Second, "registered once the engine answers", func() bool { return len(localIDs(a, "d1:"+name)) == 1 })
	testkit.Eventually(t, 60*time.Second, "the watcher's check passing", func() bool {
		c, _ := localCheck(a, docker.StatusCheckID)
		return c.Status == catalog.StatusPassing
	})
}

// shortDir is a fresh directory with a path short enough for a unix socket.
func shortDir(t *testing.T) string {
	d, err := os.MkdirTemp("", "rumor-sock")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(d) })
	return d
}

// unixProxy stands at a unix socket for the real engine: dead (the socket file is
// there, nobody accepts: connection refused) or forwarding every connection to the
// engine.
type unixProxy struct {
	path, target string
	wg           sync.WaitGroup
}

// dead leaves a socket file nobody listens on.
func (p *unixProxy) dead(t *testing.T) {
	ln, err := net.Listen("unix", p.path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	_ = ln.Close()
}

// serve forwards connections to the engine until the test ends.
func (p *unixProxy) serve(t *testing.T) {
	u, err := url.Parse(p.target)
	if err != nil {
		t.Fatal(err)
	}
	network, addr := u.Scheme, u.Host
	if network == "unix" {
		addr = u.Path
	}
	_ = os.Remove(p.path)
	ln, err := net.Listen("unix", p.path)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		p.wg.Wait()
	})
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial(network, addr)
			if err != nil {
				_ = c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, up)
			mu.Unlock()
			for _, pair := range [][2]net.Conn{{c, up}, {up, c}} {
				p.wg.Go(func() {
					_, _ = io.Copy(pair[0], pair[1]) // ends when either side closes
					_ = pair[0].Close()
					_ = pair[1].Close()
				})
			}
		}
	})
}
