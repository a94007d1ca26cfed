package docker

import (
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/definition"
)

const testID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// ctr describes a container for the table tests; inspect renders it as the engine
// would.
type ctr struct {
	name, image string
	env         []string
	labels      map[string]string
	published   map[string][]string // container port → host bindings "ip:port"
	exposed     []string
	nets        map[string][2]string // network → IPv4, IPv6
	mode        string
	state       container.State
}

func (c ctr) inspect() container.InspectResponse {
	cfg := &container.Config{Image: c.image, Env: c.env, Labels: c.labels, ExposedPorts: network.PortSet{}}
	ns := &container.NetworkSettings{Ports: network.PortMap{}, Networks: map[string]*network.EndpointSettings{}}
	for _, p := range c.exposed {
		cfg.ExposedPorts[network.MustParsePort(p)] = struct{}{}
		ns.Ports[network.MustParsePort(p)] = nil
	}
	for p, binds := range c.published {
		pp := network.MustParsePort(p)
		cfg.ExposedPorts[pp] = struct{}{}
		for _, b := range binds {
			ap := netip.MustParseAddrPort(b)
			ns.Ports[pp] = append(ns.Ports[pp], network.PortBinding{HostIP: ap.Addr(), HostPort: strconv.Itoa(int(ap.Port()))})
		}
	}
	for name, ips := range c.nets {
		ep := &network.EndpointSettings{}
		if ips[0] != "" {
			ep.IPAddress = netip.MustParseAddr(ips[0])
		}
		if ips[1] != "" {
			ep.GlobalIPv6Address = netip.MustParseAddr(ips[1])
		}
		ns.Networks[name] = ep
	}
	st := c.state
	if st.Status == "" {
		st = container.State{Status: container.StateRunning, Running: true}
	}
	mode := c.mode
	if mode == "" {
		mode = "bridge"
	}
	return container.InspectResponse{ID: testID, Name: "/" + c.name, State: &st, Config: cfg, NetworkSettings: ns,
		HostConfig: &container.HostConfig{NetworkMode: container.NetworkMode(mode)}}
}

// svc is a wanted service in the tables: what the test checks of it.
type svc struct {
	ID, Name, Address string
	Port              int
	Tags              []string
	Meta              map[string]string // besides MetaContainer
	Check             *definition.Check // the Registrator check, ID and name left out
	Tagged            map[string]string
}

func TestBuild(t *testing.T) {
	web := map[string][]string{"8080/tcp": {"127.0.0.1:32768"}}
	tests := []struct {
		name     string
		c        ctr
		internal bool
		want     []svc
		problem  string // a problem reported, if any
	}{
		{name: "SERVICE_NAME and a published port", // Registrator: SERVICE_NAME, ID <host>:<container>:<port>
			c:    ctr{name: "web-1", image: "example/web:1", env: []string{"SERVICE_NAME=web"}, published: web},
			want: []svc{{ID: "n1:web-1:8080", Name: "web", Address: "127.0.0.1", Port: 32768}}},
		{name: "name from the image without registry, path, tag or digest",
			c:    ctr{name: "a", image: "registry:5000/team/api:1.2@sha256:00", published: web},
			want: []svc{{ID: "n1:a:8080", Name: "api", Address: "127.0.0.1", Port: 32768}}},
		{name: "published on every address: the node's address",
			c:    ctr{name: "a", image: "api", published: map[string][]string{"80/tcp": {"0.0.0.0:8000", "[::]:8000"}}},
			want: []svc{{ID: "n1:a:80", Name: "api", Port: 8000}}},
		{name: "published on IPv6 only",
			c: ctr{name: "a", image: "api", env: []string{"SERVICE_CHECK_HTTP=health"},
				published: map[string][]string{"80/tcp": {"[::1]:8000"}}},
			want: []svc{{ID: "n1:a:80", Name: "api", Address: "::1", Port: 8000,
				Check: &definition.Check{HTTP: "http://[::1]:8000/health", Interval: DefaultCheckInterval}}}},
		{name: "exposed but not published: nothing",
			c: ctr{name: "a", image: "api", exposed: []string{"80/tcp"}}},
		{name: "several ports: names suffixed unless the port names itself",
			c: ctr{name: "a", image: "api", env: []string{"SERVICE_9090_NAME=metrics"},
				published: map[string][]string{"8080/tcp": {"127.0.0.1:1"}, "9090/tcp": {"127.0.0.1:2"}}},
			want: []svc{{ID: "n1:a:8080", Name: "api-8080", Address: "127.0.0.1", Port: 1},
				{ID: "n1:a:9090", Name: "metrics", Address: "127.0.0.1", Port: 2}}},
		{name: "udp: ID suffix and tag",
			c: ctr{name: "dns", image: "coredns", env: []string{"SERVICE_TAGS=a"},
				published: map[string][]string{"53/udp": {"127.0.0.1:5353"}}},
			want: []svc{{ID: "n1:dns:53:udp", Name: "coredns", Address: "127.0.0.1", Port: 5353, Tags: []string{"a", "udp"}}}},
		{name: "SERVICE_IGNORE", c: ctr{name: "a", image: "api", env: []string{"SERVICE_IGNORE=1"}, published: web}},
		{name: "SERVICE_IGNORE=false registers",
			c:    ctr{name: "a", image: "api", env: []string{"SERVICE_IGNORE=false"}, published: web},
			want: []svc{{ID: "n1:a:8080", Name: "api", Address: "127.0.0.1", Port: 32768}}},
		{name: "SERVICE_<port>_IGNORE skips that port",
			c: ctr{name: "a", image: "api", labels: map[string]string{"SERVICE_9090_IGNORE": "yes"},
				published: map[string][]string{"8080/tcp": {"127.0.0.1:1"}, "9090/tcp": {"127.0.0.1:2"}}},
			want: []svc{{ID: "n1:a:8080", Name: "api-8080", Address: "127.0.0.1", Port: 1}}},
		{name: "tags with an escaped comma, meta, env over labels",
			c: ctr{name: "a", image: "api", published: web,
				labels: map[string]string{"SERVICE_NAME": "fromlabel", "SERVICE_TAGS": "x", "SERVICE_META_TEAM": "ops"},
				env:    []string{"SERVICE_NAME=fromenv", `SERVICE_TAGS=a,b\,c, ,d`, "SERVICE_META_VERSION=1.2", "PATH=/bin"}},
			want: []svc{{ID: "n1:a:8080", Name: "fromenv", Address: "127.0.0.1", Port: 32768, Tags: []string{"a", "b,c", "d"},
				Meta: map[string]string{"team": "ops", "version": "1.2"}}}},
		{name: "SERVICE_ID; one for several ports is kept apart",
			c: ctr{name: "a", image: "api", env: []string{"SERVICE_ID=mine", "SERVICE_9090_ID=metrics-id"},
				published: map[string][]string{"8080/tcp": {"127.0.0.1:1"}, "9090/tcp": {"127.0.0.1:2"}, "7070/tcp": {"127.0.0.1:3"}}},
			want: []svc{{ID: "mine:7070", Name: "api-7070", Address: "127.0.0.1", Port: 3},
				{ID: "mine:8080", Name: "api-8080", Address: "127.0.0.1", Port: 1},
				{ID: "metrics-id", Name: "api-9090", Address: "127.0.0.1", Port: 2}}},
		{name: "HTTP check with interval and timeout", // Registrator: SERVICE_CHECK_HTTP, _INTERVAL, _TIMEOUT
			c: ctr{name: "a", image: "api", published: web,
				env: []string{"SERVICE_CHECK_HTTP=/health", "SERVICE_CHECK_INTERVAL=5s", "SERVICE_CHECK_TIMEOUT=2s"}},
			want: []svc{{ID: "n1:a:8080", Name: "api", Address: "127.0.0.1", Port: 32768,
				Check: &definition.Check{HTTP: "http://127.0.0.1:32768/health", Interval: 5 * time.Second, Timeout: 2 * time.Second}}}},
		{name: "HTTP check of a port published everywhere probes loopback",
			c: ctr{name: "a", image: "api", env: []string{"SERVICE_CHECK_HTTP=/"},
				published: map[string][]string{"80/tcp": {"0.0.0.0:8000"}}},
			want: []svc{{ID: "n1:a:80", Name: "api", Port: 8000,
				Check: &definition.Check{HTTP: "http://127.0.0.1:8000/", Interval: DefaultCheckInterval}}}},
		{name: "TCP check, port-specific, initial status, deregister after",
			c: ctr{name: "a", image: "api", published: web,
				env: []string{"SERVICE_8080_CHECK_TCP=true", "SERVICE_CHECK_INITIAL_STATUS=passing", "SERVICE_CHECK_DEREGISTER_AFTER=1m"}},
			want: []svc{{ID: "n1:a:8080", Name: "api", Address: "127.0.0.1", Port: 32768,
				Check: &definition.Check{TCP: "127.0.0.1:32768", Interval: DefaultCheckInterval, Status: catalog.StatusPassing, DeregisterCriticalServiceAfter: time.Minute}}}},
		{name: "TTL check",
			c:    ctr{name: "a", image: "api", published: web, env: []string{"SERVICE_CHECK_TTL=30s"}},
			want: []svc{{ID: "n1:a:8080", Name: "api", Address: "127.0.0.1", Port: 32768, Check: &definition.Check{TTL: 30 * time.Second}}}},
		{name: "a bad interval registers nothing and says why",
			c:       ctr{name: "a", image: "api", published: web, env: []string{"SERVICE_CHECK_HTTP=/", "SERVICE_CHECK_INTERVAL=10"}},
			problem: `container a, port 8080/tcp: SERVICE_CHECK_INTERVAL="10"`},
		{name: "script checks are refused",
			c:       ctr{name: "a", image: "api", published: web, env: []string{"SERVICE_CHECK_SCRIPT=/bin/true"}},
			problem: "SERVICE_CHECK_SCRIPT and SERVICE_CHECK_CMD are not supported"},
		{name: "a bad name is refused by validation",
			c:       ctr{name: "a", image: "api", published: web, env: []string{"SERVICE_NAME=has space"}},
			problem: "service.name"},
		{name: "internal: container address, exposed ports", internal: true,
			c: ctr{name: "a", image: "api", exposed: []string{"8080/tcp"}, published: map[string][]string{"9090/tcp": {"0.0.0.0:1"}},
				nets: map[string][2]string{"bridge": {"172.17.0.5", ""}}},
			want: []svc{{ID: "n1:a:8080", Name: "api-8080", Address: "172.17.0.5", Port: 8080},
				{ID: "n1:a:9090", Name: "api-9090", Address: "172.17.0.5", Port: 9090}}},
		{name: "internal: the network the label names", internal: true,
			c: ctr{name: "a", image: "api", exposed: []string{"80/tcp"}, labels: map[string]string{LabelNetwork: "back"},
				nets: map[string][2]string{"bridge": {"172.17.0.5", ""}, "back": {"10.9.0.7", ""}, "front": {"10.8.0.7", ""}}},
			want: []svc{{ID: "n1:a:80", Name: "api", Address: "10.9.0.7", Port: 80}}},
		{name: "internal: the network mode's network", internal: true,
			c: ctr{name: "a", image: "api", exposed: []string{"80/tcp"}, mode: "front",
				nets: map[string][2]string{"back": {"10.9.0.7", ""}, "front": {"10.8.0.7", ""}}},
			want: []svc{{ID: "n1:a:80", Name: "api", Address: "10.8.0.7", Port: 80}}},
		{name: "internal: a label naming another network", internal: true,
			c: ctr{name: "a", image: "api", exposed: []string{"80/tcp"}, labels: map[string]string{LabelNetwork: "nope"},
				nets: map[string][2]string{"bridge": {"172.17.0.5", ""}}},
			problem: `label rumor.network="nope", but the container is not on that network (it is on bridge)`},
		{name: "internal: dual stack gets tagged addresses", internal: true,
			c: ctr{name: "a", image: "api", exposed: []string{"80/tcp"},
				nets: map[string][2]string{"v6net": {"10.1.0.2", "fd00::2"}}},
			want: []svc{{ID: "n1:a:80", Name: "api", Address: "10.1.0.2", Port: 80,
				Tagged: map[string]string{"lan_ipv4": "10.1.0.2", "lan_ipv6": "fd00::2"}}}},
		{name: "internal: IPv6 only", internal: true,
			c: ctr{name: "a", image: "api", exposed: []string{"80/tcp"}, env: []string{"SERVICE_CHECK_TCP=1"},
				nets: map[string][2]string{"v6net": {"", "fd00::2"}}},
			want: []svc{{ID: "n1:a:80", Name: "api", Address: "fd00::2", Port: 80,
				Check: &definition.Check{TCP: "[fd00::2]:80", Interval: DefaultCheckInterval}}}},
		{name: "internal: no address", internal: true,
			c:       ctr{name: "a", image: "api", exposed: []string{"80/tcp"}, mode: "none"},
			problem: "no IP address"},
		{name: "host network: exposed ports at the node's address",
			c:    ctr{name: "a", image: "api", exposed: []string{"80/tcp"}, mode: "host"},
			want: []svc{{ID: "n1:a:80", Name: "api", Port: 80}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := builder{node: "n1", internal: tt.internal, ttl: time.Minute}
			in := tt.c.inspect()
			s := b.build(&in)
			probs := ""
			for _, p := range s.problems {
				probs += p.Error() + "\n"
			}
			if tt.problem == "" && probs != "" || !strings.Contains(probs, tt.problem) {
				t.Errorf("problems:\n%s\nwant one containing %q", probs, tt.problem)
			}
			if len(s.services) != len(tt.want) {
				t.Fatalf("got %d services %+v, want %d", len(s.services), s.services, len(tt.want))
			}
			for i, w := range tt.want {
				got := s.services[i]
				meta := map[string]string{MetaContainer: "0123456789ab"}
				for k, v := range w.Meta {
					meta[k] = v
				}
				if got.ID != w.ID || got.Name != w.Name || got.Address != w.Address || got.Port != w.Port ||
					!reflect.DeepEqual(got.Tags, w.Tags) || !reflect.DeepEqual(got.Meta, meta) {
					t.Errorf("service %d = %s %s %s:%d tags %v meta %v\nwant %s %s %s:%d tags %v meta %v", i,
						got.ID, got.Name, got.Address, got.Port, got.Tags, got.Meta, w.ID, w.Name, w.Address, w.Port, w.Tags, meta)
				}
				tagged := map[string]string{}
				for k, a := range got.TaggedAddresses {
					tagged[k] = a.Address
				}
				if len(tagged) > 0 || len(w.Tagged) > 0 {
					if !reflect.DeepEqual(tagged, w.Tagged) {
						t.Errorf("tagged addresses %v, want %v", tagged, w.Tagged)
					}
				}
				wantChecks := 1
				if w.Check != nil {
					wantChecks = 2
					c := got.Checks[0]
					want := *w.Check
					want.ID, want.Name, want.ServiceID = "service:"+w.ID, "Service '"+w.Name+"' check", w.ID
					if !reflect.DeepEqual(c, want) {
						t.Errorf("check = %+v\nwant %+v", c, want)
					}
				}
				if len(got.Checks) != wantChecks {
					t.Fatalf("%d checks, want %d: %+v", len(got.Checks), wantChecks, got.Checks)
				}
				cc := got.Checks[len(got.Checks)-1]
				if cc.ID != ContainerCheckID(w.ID) || cc.TTL != time.Minute || cc.Status != catalog.StatusPassing {
					t.Errorf("container check = %+v", cc)
				}
			}
		})
	}
}

// TestContainerStatus: Docker's HEALTHCHECK and the container's state become the
// container check's status (issue: healthy → passing, starting → warning,
// unhealthy → critical).
func TestContainerStatus(t *testing.T) {
	log := []*container.HealthcheckResult{{Output: "first"}, {Output: "connection refused\n"}}
	tests := []struct {
		name   string
		st     container.State
		status catalog.Status
		output string
	}{
		{"running, no healthcheck", container.State{Running: true}, catalog.StatusPassing, ""},
		{"healthy", container.State{Running: true, Health: &container.Health{Status: container.Healthy}}, catalog.StatusPassing, ""},
		{"starting", container.State{Running: true, Health: &container.Health{Status: container.Starting}}, catalog.StatusWarning, "container running, HEALTHCHECK starting"},
		{"unhealthy", container.State{Running: true, Health: &container.Health{Status: container.Unhealthy, Log: log}}, catalog.StatusCritical, "container running, HEALTHCHECK unhealthy: connection refused"},
		{"paused", container.State{Running: true, Paused: true}, catalog.StatusCritical, "container paused"},
		{"exited", container.State{Status: container.StateExited, ExitCode: 3}, catalog.StatusCritical, "container exited with code 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, out := containerStatus(&tt.st)
			if st != tt.status || out != tt.output {
				t.Errorf("got %s %q, want %s %q", st, out, tt.status, tt.output)
			}
		})
	}
}

// TestDeregisterPolicy: what an exited container keeps, by its rumor.deregister
// label (Registrator's -deregister: on-success deregisters after exit code 0 or a
// signal).
func TestDeregisterPolicy(t *testing.T) {
	tests := []struct {
		label string
		code  int
		keep  bool
	}{
		{"", 1, false}, {"always", 1, false},
		{"never", 0, true}, {"never", 1, true},
		{"on-success", 0, false}, {"on-success", 143, false}, {"on-success", 1, true}, {"ON-SUCCESS", 2, true},
	}
	for _, tt := range tests {
		c := ctr{name: "a", image: "api", labels: map[string]string{LabelDeregister: tt.label},
			state: container.State{Status: container.StateExited, ExitCode: tt.code}}
		in := c.inspect()
		s := (&builder{node: "n1", ttl: time.Minute}).build(&in)
		if s.live || s.keep != tt.keep || len(s.services) != 0 {
			t.Errorf("%s, exit %d: live %v keep %v services %d; want keep %v", tt.label, tt.code, s.live, s.keep, len(s.services), tt.keep)
		}
	}
	c := ctr{name: "a", image: "api", published: map[string][]string{"80/tcp": {"127.0.0.1:1"}}, labels: map[string]string{LabelDeregister: "sometimes"}}
	in := c.inspect()
	s := (&builder{node: "n1", ttl: time.Minute}).build(&in)
	if len(s.problems) != 1 || !strings.Contains(s.problems[0].Error(), `rumor.deregister="sometimes"`) {
		t.Errorf("problems %v, want one naming the bad label", s.problems)
	}
}

// TestSame: the comparison that decides whether a reconcile writes ignores the
// checks' statuses and tagged addresses' ports, not a change of definition.
func TestSame(t *testing.T) {
	in := ctr{name: "a", image: "api", exposed: []string{"80/tcp"}, env: []string{"SERVICE_CHECK_HTTP=/"},
		nets: map[string][2]string{"n": {"10.0.0.2", "fd00::2"}}}.inspect()
	b := builder{node: "n1", internal: true, ttl: time.Minute}
	want := b.build(&in).services[0]
	stored := want.Clone()
	stored.Checks[1].Status = catalog.StatusCritical
	for k, a := range stored.TaggedAddresses {
		a.Port = 0
		stored.TaggedAddresses[k] = a
	}
	if !same(&stored, &want) {
		t.Error("a stored copy differing in check status and tagged ports is not the same")
	}
	changed := want.Clone()
	changed.Tags = []string{"x"}
	if same(&changed, &want) {
		t.Error("a changed tag compares the same")
	}
}

func TestSplitTagsAndImageName(t *testing.T) {
	if got := splitTags(`a,b\,c,,  d ,`); !reflect.DeepEqual(got, []string{"a", "b,c", "d"}) {
		t.Errorf("splitTags = %q", got)
	}
	for in, want := range map[string]string{"nginx": "nginx", "nginx:1.25": "nginx", "r:5000/x/y:2": "y", "y@sha256:ab": "y", "": ""} {
		if got := imageName(in); got != want {
			t.Errorf("imageName(%q) = %q, want %q", in, got, want)
		}
	}
}
