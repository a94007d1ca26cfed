package docker

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/definition"
)

// Labels and metadata rumor itself reads and writes; the SERVICE_* settings are
// Registrator's (see the package documentation).
const (
	// LabelDeregister says what becomes of a container's services when it exits:
	// "always" (the default) deregisters them; "on-success" only after a clean exit
	// (code 0, or killed by a signal, as `docker stop` does), keeping them, critical,
	// after a failure; "never" keeps them, critical, until the container is removed.
	LabelDeregister = "rumor.deregister"
	// LabelNetwork names the network whose address --docker-internal registers, for
	// a container on several networks.
	LabelNetwork = "rumor.network"
	// MetaContainer is the service metadata key holding the container's short ID:
	// it ties a registration to its container across agent restarts.
	MetaContainer = "docker_container"
	// DefaultCheckInterval is the interval of a SERVICE_CHECK_HTTP/_HTTPS/_TCP
	// check without SERVICE_CHECK_INTERVAL, as Registrator's.
	DefaultCheckInterval = 10 * time.Second
)

// policy is a container's rumor.deregister label.
type policy string

const (
	always    policy = "always"
	onSuccess policy = "on-success"
	never     policy = "never"
)

// spec is what the watcher derives from one inspected container: the services it
// should have registered, and the status of their container check.
type spec struct {
	id      string // full container ID
	short   string // MetaContainer
	name    string
	listing string // as listing() gives it for the container in this state
	// live is true while the container runs (paused included): its services must be
	// registered. A container that exited keeps the services it registered, as they
	// are, only if its policy says so (keep).
	live bool
	keep bool
	// status and output are the container check's: running, paused, exited, and
	// Docker's HEALTHCHECK.
	status   catalog.Status
	output   string
	services []definition.Service
	// problems are settings that could not be honoured; each names the container
	// and the setting. A port whose settings are wrong registers nothing.
	problems []error
}

// builder turns inspected containers into service definitions.
type builder struct {
	node     string
	internal bool
	ttl      time.Duration
}

// build derives c's spec. It is pure: the same container gives the same services,
// so a restarted agent registers exactly what it registered before.
func (b *builder) build(c *container.InspectResponse) spec {
	s := spec{id: c.ID, short: shortID(c.ID), name: strings.TrimPrefix(c.Name, "/")}
	var cfg container.Config
	if c.Config != nil {
		cfg = *c.Config
	}
	st := c.State
	if st == nil {
		st = &container.State{}
	}
	s.listing = string(st.Status) + "/" + c.Name
	s.live = st.Running && !st.Restarting
	s.status, s.output = containerStatus(st)
	if !s.live {
		// Its ports are gone with its network: what it registered is kept as it is,
		// or not at all.
		switch p := policyOf(cfg.Labels); {
		case st.Status == container.StateCreated:
		case p == never:
			s.keep = true
		case p == onSuccess:
			s.keep = st.ExitCode != 0 && st.ExitCode&128 == 0 // not a clean exit, not a signal
		}
		return s
	}
	if p := cfg.Labels[LabelDeregister]; p != "" && policyOf(cfg.Labels) == always && p != string(always) {
		s.problems = append(s.problems, fmt.Errorf("container %s: label %s=%q: want always, on-success or never; using always", s.name, LabelDeregister, p))
	}
	raw := settings(cfg.Labels, cfg.Env)
	ports, addr, err := b.ports(c, &cfg)
	if err != nil {
		s.problems = append(s.problems, err)
	}
	for _, p := range ports {
		svc, err := b.service(&s, &cfg, raw, p, addr, len(ports) > 1)
		switch {
		case err != nil:
			s.problems = append(s.problems, fmt.Errorf("container %s, port %s: %w", s.name, p.port, err))
		case svc != nil:
			s.services = append(s.services, *svc)
		}
	}
	return s
}

// containerStatus maps a container's state to its check: running passes, unless
// its Docker HEALTHCHECK says starting (warning) or unhealthy (critical); paused,
// restarting and exited containers are critical.
func containerStatus(st *container.State) (catalog.Status, string) {
	switch {
	case st.Paused:
		return catalog.StatusCritical, "container paused"
	case st.Restarting:
		return catalog.StatusCritical, fmt.Sprintf("container restarting (last exit code %d)", st.ExitCode)
	case !st.Running:
		return catalog.StatusCritical, fmt.Sprintf("container %s with code %d", cmp.Or(string(st.Status), "exited"), st.ExitCode)
	}
	// Passing says it all: no output, so that renewing the check never changes it.
	h := st.Health
	if h == nil || h.Status == container.NoHealthcheck || h.Status == "" || h.Status == container.Healthy {
		return catalog.StatusPassing, ""
	}
	switch h.Status {
	case container.Starting:
		return catalog.StatusWarning, "container running, HEALTHCHECK starting"
	}
	out := fmt.Sprintf("container running, HEALTHCHECK %s", h.Status)
	if n := len(h.Log); n > 0 && h.Log[n-1] != nil {
		if last := strings.TrimSpace(h.Log[n-1].Output); last != "" {
			out += ": " + truncate(last, 512)
		}
	}
	return catalog.StatusCritical, out
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// policyOf reads the rumor.deregister label; always when absent or unknown.
func policyOf(labels map[string]string) policy {
	switch p := policy(strings.ToLower(strings.TrimSpace(labels[LabelDeregister]))); p {
	case onSuccess, never:
		return p
	}
	return always
}

// shortID is Docker's 12-character form of a container ID.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// settings collects the SERVICE_* keys of a container's labels and environment;
// the environment wins, as in Registrator.
func settings(labels map[string]string, env []string) map[string]string {
	m := map[string]string{}
	for k, v := range labels {
		if strings.HasPrefix(k, "SERVICE_") {
			m[k] = v
		}
	}
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "SERVICE_") {
			m[k] = v
		}
	}
	return m
}

// forPort returns the settings that apply to the container port num: each
// SERVICE_<key>, overridden by SERVICE_<num>_<key>, keyed by <key> in lower case;
// and which keys the port's own settings gave. Settings of other ports are left out.
func forPort(raw map[string]string, num string) (map[string]string, map[string]bool) {
	out, own := map[string]string{}, map[string]bool{}
	for k, v := range raw {
		key := strings.ToLower(strings.TrimPrefix(k, "SERVICE_"))
		first, rest, ok := strings.Cut(key, "_")
		if _, err := strconv.Atoi(first); err == nil && ok && rest != "" {
			if first == num {
				out[rest], own[rest] = v, true
			}
			continue
		}
		if !own[key] {
			out[key] = v
		}
	}
	return out, own
}

// port is one port of a container to register.
type port struct {
	port network.Port // the container's port: the SERVICE_<port>_ settings and the ID use its number
	// addr and num are where consumers reach it: the host binding's address ("" for
	// every address of the node) and port, or the container's address and port.
	addr netip.Addr
	num  uint16
}

// endpoint is the container address internal mode registers.
type endpoint struct {
	v4, v6 netip.Addr
}

// ports lists the ports of c to register, sorted, and in internal mode the
// container's address: published ports (or, on the host's network, the exposed
// ones) by default; every exposed port with internal.
func (b *builder) ports(c *container.InspectResponse, cfg *container.Config) ([]port, endpoint, error) {
	var ns container.NetworkSettings
	if c.NetworkSettings != nil {
		ns = *c.NetworkSettings
	}
	mode := ""
	if c.HostConfig != nil {
		mode = string(c.HostConfig.NetworkMode)
	}
	var out []port
	var ep endpoint
	name := strings.TrimPrefix(c.Name, "/")
	exposed := slices.Collect(maps.Keys(cfg.ExposedPorts))
	for p := range ns.Ports {
		if _, ok := cfg.ExposedPorts[p]; !ok {
			exposed = append(exposed, p)
		}
	}
	switch {
	case mode == "host":
		// The container shares the host's network: its ports are the host's.
		for _, p := range exposed {
			out = append(out, port{port: p, num: p.Num()})
		}
	case b.internal:
		var err error
		if ep, err = pickEndpoint(name, mode, cfg.Labels, ns.Networks); err != nil {
			return nil, ep, err
		}
		for _, p := range exposed {
			out = append(out, port{port: p, addr: cmp.Or(ep.v4, ep.v6), num: p.Num()})
		}
	default:
		for p, binds := range ns.Ports {
			addr, num, ok := hostBinding(binds)
			if ok {
				out = append(out, port{port: p, addr: addr, num: num})
			}
		}
	}
	slices.SortFunc(out, func(x, y port) int {
		return cmp.Or(cmp.Compare(x.port.Num(), y.port.Num()), cmp.Compare(x.port.Proto(), y.port.Proto()))
	})
	return out, ep, nil
}

// hostBinding picks the host address and port of a published port: an IPv4 (or
// every-address) binding before an IPv6 one, as Docker publishes both by default.
// An unspecified address comes back zero: the service is at the node's address.
func hostBinding(binds []network.PortBinding) (netip.Addr, uint16, bool) {
	best := -1
	for i, b := range binds {
		if b.HostPort == "" {
			continue
		}
		if best < 0 || binds[best].HostIP.Is6() && !b.HostIP.Is6() {
			best = i
		}
	}
	if best < 0 {
		return netip.Addr{}, 0, false
	}
	n, err := strconv.ParseUint(binds[best].HostPort, 10, 16)
	if err != nil || n == 0 {
		return netip.Addr{}, 0, false
	}
	addr := binds[best].HostIP
	if addr.IsUnspecified() {
		addr = netip.Addr{}
	}
	return addr.Unmap(), uint16(n), true
}

// pickEndpoint chooses the network whose address internal mode registers: the one
// the rumor.network label names, else the container's network mode when it names
// one of its networks, else its only network, else "bridge", else the first by
// name.
func pickEndpoint(name, mode string, labels map[string]string, nets map[string]*network.EndpointSettings) (endpoint, error) {
	names := slices.Sorted(maps.Keys(nets))
	pick := ""
	if want := labels[LabelNetwork]; want != "" {
		if nets[want] == nil {
			return endpoint{}, fmt.Errorf("container %s: label %s=%q, but the container is not on that network (it is on %s)", name, LabelNetwork, want, orNone(names))
		}
		pick = want
	} else {
		switch {
		case nets[mode] != nil:
			pick = mode
		case len(names) == 1:
			pick = names[0]
		case nets["bridge"] != nil:
			pick = "bridge"
		case len(names) > 0:
			pick = names[0]
		}
	}
	var ep endpoint
	if e := nets[pick]; e != nil {
		ep = endpoint{v4: e.IPAddress.Unmap(), v6: e.GlobalIPv6Address}
	}
	if !ep.v4.IsValid() && !ep.v6.IsValid() {
		return ep, fmt.Errorf("container %s: no IP address on network %q (network mode %q): internal mode needs one; publish the ports instead, or attach the container to a network", name, pick, mode)
	}
	return ep, nil
}

func orNone(names []string) string {
	if len(names) == 0 {
		return "no network"
	}
	return strings.Join(names, ", ")
}

// service builds the service definition of one port of a container, from its
// settings for that port; nil when SERVICE_IGNORE says to skip it.
func (b *builder) service(s *spec, cfg *container.Config, raw map[string]string, p port, ep endpoint, group bool) (*definition.Service, error) {
	num := p.port.Port()
	set, own := forPort(raw, num)
	if ignored(set["ignore"]) {
		return nil, nil
	}
	udp := p.port.Proto() == network.UDP
	svc := &definition.Service{
		Name: cmp.Or(set["name"], imageName(cfg.Image), s.name),
		ID:   b.node + ":" + s.name + ":" + num,
		Port: int(p.num),
		Tags: splitTags(set["tags"]),
		Meta: map[string]string{},
	}
	if group && !own["name"] {
		svc.Name += "-" + num
	}
	if udp {
		svc.ID += ":udp"
		svc.Tags = append(svc.Tags, "udp")
	}
	if id := set["id"]; id != "" {
		svc.ID = id
		if group && !own["id"] {
			svc.ID += ":" + num // one SERVICE_ID for several ports: keep the IDs apart
		}
	}
	if p.addr.IsValid() {
		svc.Address = p.addr.String()
	}
	if b.internal && ep.v4.IsValid() && ep.v6.IsValid() {
		svc.TaggedAddresses = map[string]definition.ServiceAddress{
			"lan_ipv4": {Address: ep.v4.String(), Port: svc.Port},
			"lan_ipv6": {Address: ep.v6.String(), Port: svc.Port},
		}
	}
	for _, k := range slices.Sorted(maps.Keys(set)) {
		if mk, ok := strings.CutPrefix(k, "meta_"); ok && mk != "" {
			svc.Meta[mk] = set[k]
		}
	}
	svc.Meta[MetaContainer] = s.short
	if udp { // nothing to probe over HTTP or TCP: only a TTL check applies
		delete(set, "check_http")
		delete(set, "check_https")
		delete(set, "check_tcp")
	}
	check, err := registratorCheck(set, checkHost(p.addr), int(p.num))
	if err != nil {
		return nil, err
	}
	if check != nil {
		check.ID = "service:" + svc.ID
		svc.Checks = append(svc.Checks, *check)
	}
	svc.Checks = append(svc.Checks, definition.Check{
		ID:     ContainerCheckID(svc.ID),
		Name:   "Docker container " + s.name,
		TTL:    b.ttl,
		Status: s.status,
	})
	svc.Normalize()
	if err := svc.Validate(definition.Policy{}); err != nil {
		return nil, err
	}
	return svc, nil
}

// ContainerCheckID is the ID of the check that reports the state of the container
// behind the service with this ID.
func ContainerCheckID(serviceID string) string { return "service:" + serviceID + ":docker" }

// ignored reads SERVICE_IGNORE: any value but "", "0", "false" or "no" skips the
// port (Registrator skips any non-empty value).
func ignored(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "0", "false", "no":
		return false
	}
	return true
}

// imageName is Registrator's default service name: the image's last path element
// without tag or digest ("registry:5000/team/api:1.2" → "api").
func imageName(image string) string {
	base := path.Base(image)
	base, _, _ = strings.Cut(base, "@")
	base, _, _ = strings.Cut(base, ":")
	if base == "." || base == "/" {
		return ""
	}
	return base
}

// splitTags splits SERVICE_TAGS on commas, except escaped ones ("a\,b"), dropping
// empty tags and surrounding space.
func splitTags(s string) []string {
	var tags []string
	var cur strings.Builder
	flush := func() {
		if t := strings.TrimSpace(cur.String()); t != "" {
			tags = append(tags, t)
		}
		cur.Reset()
	}
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s) && s[i+1] == ',':
			cur.WriteByte(',')
			i++
		case s[i] == ',':
			flush()
		default:
			cur.WriteByte(s[i])
		}
	}
	flush()
	return tags
}

// checkHost is the address the agent probes a port at: the registered address, or
// loopback for a port published on every address (the agent runs on that host).
func checkHost(addr netip.Addr) string {
	if !addr.IsValid() {
		return "127.0.0.1"
	}
	return addr.String()
}

// registratorCheck builds the check of Registrator's SERVICE_CHECK_* settings:
// HTTP (a path on the service), HTTPS, TCP, or TTL, with INTERVAL (default 10s),
// TIMEOUT, INITIAL_STATUS and DEREGISTER_AFTER; nil when there is none.
func registratorCheck(set map[string]string, host string, port int) (*definition.Check, error) {
	var c definition.Check
	hostPort := net.JoinHostPort(host, strconv.Itoa(port))
	var errs []error
	dur := func(key string) time.Duration {
		v := set[key]
		if v == "" {
			return 0
		}
		d, err := definition.ParseDuration(v)
		if err == nil && d < 0 {
			err = errors.New("must not be negative")
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("SERVICE_%s=%q: %w", strings.ToUpper(key), v, err))
		}
		return d
	}
	switch {
	case set["check_http"] != "":
		c.HTTP = "http://" + hostPort + withSlash(set["check_http"])
	case set["check_https"] != "":
		c.HTTP = "https://" + hostPort + withSlash(set["check_https"])
		c.TLSSkipVerify = true // the certificate names the service, not 127.0.0.1 or the container's IP
	case set["check_tcp"] != "" && !strings.EqualFold(set["check_tcp"], "false"):
		c.TCP = hostPort
	case set["check_ttl"] != "":
		if c.TTL = dur("check_ttl"); c.TTL == 0 && len(errs) == 0 {
			errs = append(errs, fmt.Errorf("SERVICE_CHECK_TTL=%q: want a duration such as 30s", set["check_ttl"]))
		}
	case set["check_script"] != "" || set["check_cmd"] != "":
		return nil, errors.New("SERVICE_CHECK_SCRIPT and SERVICE_CHECK_CMD are not supported: use SERVICE_CHECK_HTTP, _TCP or _TTL, or a Docker HEALTHCHECK")
	default:
		return nil, errors.Join(errs...)
	}
	if c.TTL == 0 {
		c.Interval = cmp.Or(dur("check_interval"), DefaultCheckInterval)
		c.Timeout = dur("check_timeout")
	}
	c.DeregisterCriticalServiceAfter = dur("check_deregister_after")
	switch st := strings.ToLower(set["check_initial_status"]); st {
	case "":
	case "passing", "warning", "critical":
		c.Status, _ = catalog.ParseStatus(st)
	default:
		errs = append(errs, fmt.Errorf("SERVICE_CHECK_INITIAL_STATUS=%q: want passing, warning or critical", set["check_initial_status"]))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &c, nil
}

func withSlash(p string) string {
	if !strings.HasPrefix(p, "/") {
		return "/" + p
	}
	return p
}
