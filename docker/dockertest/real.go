package dockertest

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// Everything the tests create on the real engine (containers, images, networks) is
// named with Prefix and the test process's PID, and labelled LabelTest=<pid>: a
// test removes what it created when it ends, failed or not, and Sweep removes what
// a crashed run left behind.
const (
	Prefix    = "rumortest-"
	LabelTest = "rumor.test"
)

var seq atomic.Int64

// Name returns a name unique to this process for something a test creates:
// "rumortest-<pid>-<n>-<what>".
func Name(what string) string {
	return fmt.Sprintf("%s%d-%d-%s", Prefix, os.Getpid(), seq.Add(1), what)
}

// RequireEngine returns a client of the real Docker engine ($DOCKER_HOST, else the
// default socket), negotiated down to its API version. Without a reachable engine
// the test is skipped on a developer machine and fails in CI (CI=true): the tests
// that need the engine must run there. It sweeps what crashed runs left behind.
func RequireEngine(t testing.TB) *client.Client {
	t.Helper()
	cli, err := client.New(client.FromEnv)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err = cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
		cancel()
	}
	if err != nil {
		if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
			t.Fatalf("dockertest: no Docker engine: %v (CI=true: the Docker tests must run, not skip; scripts/test.sh installs and starts one)", err)
		}
		t.Skipf("dockertest: no Docker engine: %v", err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	Sweep(t, cli)
	return cli
}

// Sweep removes the containers, images and networks that test processes no longer
// running left behind (their LabelTest names a dead PID).
func Sweep(t testing.TB, cli *client.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f := make(client.Filters).Add("label", LabelTest)
	cs, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		t.Fatalf("dockertest: sweep: %v", err)
	}
	for _, c := range cs.Items {
		if dead(c.Labels[LabelTest]) {
			_, _ = cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true})
		}
	}
	if ns, err := cli.NetworkList(ctx, client.NetworkListOptions{Filters: f}); err == nil {
		for _, n := range ns.Items {
			if dead(n.Labels[LabelTest]) {
				_, _ = cli.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{})
			}
		}
	}
	if is, err := cli.ImageList(ctx, client.ImageListOptions{Filters: f}); err == nil {
		for _, i := range is.Items {
			if dead(i.Labels[LabelTest]) {
				_, _ = cli.ImageRemove(ctx, i.ID, client.ImageRemoveOptions{Force: true, PruneChildren: true})
			}
		}
	}
}

// dead reports whether the test process with this PID is gone.
func dead(pid string) bool {
	n, err := strconv.Atoi(pid)
	if err != nil || n <= 0 {
		return true
	}
	return errors.Is(syscall.Kill(n, 0), syscall.ESRCH)
}

// BuildImage builds the test server (package testserver) statically and an image
// FROM scratch holding it, with the server as entrypoint; it returns the image's
// tag and removes the image when the test ends.
func BuildImage(t testing.TB, cli *client.Client) string {
	t.Helper()
	dir := t.TempDir()
	_, self, _, _ := runtime.Caller(0)
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("dockertest: the go command builds the test server: %v", err)
	}
	build := exec.Command(goBin, "build", "-trimpath", "-o", filepath.Join(dir, "server"), "./testserver")
	build.Dir = filepath.Dir(self)
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOTOOLCHAIN=local", "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("dockertest: build the test server: %v\n%s", err, out)
	}
	bin, err := os.ReadFile(filepath.Join(dir, "server"))
	if err != nil {
		t.Fatal(err)
	}
	var ctxTar bytes.Buffer
	tw := tar.NewWriter(&ctxTar)
	for _, f := range []struct {
		name string
		mode int64
		body []byte
	}{
		{"Dockerfile", 0o644, []byte("FROM scratch\nCOPY server /server\nENTRYPOINT [\"/server\"]\n")},
		{"server", 0o755, bin},
	} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.body))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	tag := Name("server") + ":test"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := cli.ImageBuild(ctx, &ctxTar, client.ImageBuildOptions{
		Tags: []string{tag}, Remove: true, ForceRemove: true,
		Labels: map[string]string{LabelTest: strconv.Itoa(os.Getpid())},
	})
	if err != nil {
		t.Fatalf("dockertest: build image: %v", err)
	}
	defer res.Body.Close()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := cli.ImageRemove(ctx, tag, client.ImageRemoveOptions{Force: true, PruneChildren: true}); err != nil {
			t.Errorf("dockertest: remove image %s: %v", tag, err)
		}
	})
	// The build streams JSON messages; an error arrives as one of them.
	dec := json.NewDecoder(res.Body)
	for {
		var m struct {
			Stream, Error string
		}
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("dockertest: build image: %v", err)
		}
		if m.Error != "" {
			t.Fatalf("dockertest: build image: %s", m.Error)
		}
	}
	return tag
}

// Spec describes a container for Run.
type Spec struct {
	Name   string // default: Name("c")
	Image  string // required
	Env    []string
	Labels map[string]string
	Cmd    []string // arguments of the test server, e.g. "-http", "8080,9090"
	// Publish lists container ports ("8080/tcp") to publish on 127.0.0.1 at a port
	// the engine picks; Expose ports to expose without publishing.
	Publish, Expose []string
	Healthcheck     *container.HealthConfig
	Network         string // a network to attach to instead of the default bridge
}

// Run creates and starts a container and returns its ID; the container is removed
// (forced) when the test ends. Ports are published on 127.0.0.1 only.
func Run(t testing.TB, cli *client.Client, s Spec) string {
	t.Helper()
	id := Create(t, cli, s)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := cli.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		t.Fatalf("dockertest: start %s: %v", s.Name, err)
	}
	return id
}

// Create creates a container without starting it, removed when the test ends.
func Create(t testing.TB, cli *client.Client, s Spec) string {
	t.Helper()
	if s.Name == "" {
		s.Name = Name("c")
	}
	labels := map[string]string{LabelTest: strconv.Itoa(os.Getpid())}
	for k, v := range s.Labels {
		labels[k] = v
	}
	cfg := &container.Config{Image: s.Image, Env: s.Env, Labels: labels, Cmd: s.Cmd,
		ExposedPorts: network.PortSet{}, Healthcheck: s.Healthcheck}
	hc := &container.HostConfig{PortBindings: network.PortMap{}}
	loopback := netip.MustParseAddr("127.0.0.1")
	for _, p := range s.Publish {
		pp := network.MustParsePort(p)
		cfg.ExposedPorts[pp] = struct{}{}
		hc.PortBindings[pp] = []network.PortBinding{{HostIP: loopback}}
	}
	for _, p := range s.Expose {
		cfg.ExposedPorts[network.MustParsePort(p)] = struct{}{}
	}
	if s.Network != "" {
		hc.NetworkMode = container.NetworkMode(s.Network)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{Name: s.Name, Config: cfg, HostConfig: hc})
	if err != nil {
		t.Fatalf("dockertest: create %s: %v", s.Name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := cli.ContainerRemove(ctx, res.ID, client.ContainerRemoveOptions{Force: true}); err != nil && !strings.Contains(err.Error(), "No such container") {
			t.Errorf("dockertest: remove container %s: %v", s.Name, err)
		}
	})
	return res.ID
}

// Network creates a bridge network (IPv6 too when ipv6, on a ULA subnet) removed
// when the test ends, and returns its name.
func Network(t testing.TB, cli *client.Client, ipv6 bool) string {
	t.Helper()
	name := Name("net")
	opts := client.NetworkCreateOptions{Driver: "bridge", Labels: map[string]string{LabelTest: strconv.Itoa(os.Getpid())}}
	if ipv6 {
		on := true
		opts.EnableIPv6 = &on
		opts.IPAM = &network.IPAM{Config: []network.IPAMConfig{{Subnet: netip.MustParsePrefix(fmt.Sprintf("fd00:5eed:%x::/64", os.Getpid()&0xffff))}}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := cli.NetworkCreate(ctx, name, opts); err != nil {
		t.Fatalf("dockertest: create network: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := cli.NetworkRemove(ctx, name, client.NetworkRemoveOptions{}); err != nil {
			t.Errorf("dockertest: remove network %s: %v", name, err)
		}
	})
	return name
}

// Inspect inspects a container.
func Inspect(t testing.TB, cli *client.Client, id string) container.InspectResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatalf("dockertest: inspect %s: %v", id, err)
	}
	return res.Container
}

// HostPort returns the host port the engine published a container port ("8080/tcp")
// at.
func HostPort(t testing.TB, cli *client.Client, id, port string) int {
	t.Helper()
	ins := Inspect(t, cli, id)
	for _, b := range ins.NetworkSettings.Ports[network.MustParsePort(port)] {
		if n, err := strconv.Atoi(b.HostPort); err == nil && n > 0 {
			return n
		}
	}
	t.Fatalf("dockertest: %s: port %s is not published", id, port)
	return 0
}
