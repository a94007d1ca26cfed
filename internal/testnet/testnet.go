package testnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// DefaultPrefix starts the name of every namespace a testbed creates unless
// Config.Prefix says otherwise. Sweep(DefaultPrefix) finds the leftovers of crashed runs.
const DefaultPrefix = "rtn"

// ErrClosed is returned by calls made on a testbed, or on its hosts and processes,
// after Close has started.
var ErrClosed = errors.New("testnet: testbed closed")

// bridgeName is the bridge inside the testbed's bridge namespace. Names inside the
// testbed's own namespaces cannot collide with anything, so they are fixed.
const bridgeName = "br0"

// testbedSeq numbers the testbeds this process creates.
var testbedSeq atomic.Uint64

// setupTimeout bounds the whole of Open and of Close when they run on behalf of New.
const setupTimeout = 60 * time.Second

// Config describes a testbed. The zero value of every field means its default; Open
// does not modify the caller's Config.
type Config struct {
	// Hosts is the number of hosts, from 1 to 253. Required: Open rejects 0.
	Hosts int

	// Prefix starts the name of every namespace the testbed creates; it is followed by
	// "-<pid>-<unique>" so that testbeds never collide and Sweep can tell which ones
	// belong to dead processes. Lowercase letters and digits only, at most 16.
	// Default DefaultPrefix.
	Prefix string

	// Subnet is the IPv4 network the hosts share; host i (counted from 1) gets the i-th
	// address in it. Every testbed has its own bridge, so subnets of different testbeds
	// may overlap. It must be an IPv4 prefix of at most /30 holding Hosts addresses plus
	// the network and broadcast ones. Default: a random 10.x.y.0/24.
	Subnet netip.Prefix

	// DisableIPv6 turns IPv6 off in every host (so eth0 has no link-local IPv6
	// address), for tests that want IPv4 traffic only. Default false: IPv6 link-local
	// works between hosts.
	DisableIPv6 bool
}

// Testbed is a set of hosts on one bridge, with the faults injected into it and the
// processes started in it. Create one with New in a test or Open elsewhere; Close
// removes it.
type Testbed struct {
	id       string // "<prefix>-<pid>-<seq><random>"; every namespace name starts with it
	bridgeNS string
	subnet   netip.Prefix
	hosts    []*Host

	mu       sync.Mutex
	closed   bool
	procs    []*Process
	cutPairs map[[2]int]bool // pairs of host indexes (low, high) dropped by the bridge
	made     []string        // namespaces created so far, in creation order

	closeOnce sync.Once
	closeErr  error
}

// New creates a testbed of n hosts for t and removes it when t and its subtests finish,
// whether they pass, fail or panic. It first calls Require, so the test is skipped (or
// fails, in CI) when the machine cannot run a testbed, and it fails t if the testbed
// cannot be built. When t has failed, the output of every process the testbed started
// is logged before they are killed.
func New(t testing.TB, n int) *Testbed {
	t.Helper()
	return NewConfig(t, Config{Hosts: n})
}

// NewConfig is New with a full Config.
func NewConfig(t testing.TB, cfg Config) *Testbed {
	t.Helper()
	Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	tb, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			tb.logProcesses(t)
		}
		if err := tb.Close(); err != nil {
			t.Errorf("%v", err)
		}
	})
	return tb
}

// Open creates a testbed as cfg describes. ctx bounds the setup commands only. The
// caller must call Close; if Open fails, it has already removed what it created. Before
// creating anything, Open sweeps away namespaces with the same prefix whose owning
// process is dead.
func Open(ctx context.Context, cfg Config) (*Testbed, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := Sweep(ctx, cfg.Prefix); err != nil {
		return nil, err
	}
	if err := raiseNeighLimits(cfg.Hosts); err != nil {
		return nil, err
	}
	// The sequence number keeps this process's testbeds apart; the random part, a
	// leftover of an earlier process that had the same PID.
	id := fmt.Sprintf("%s-%d-%d%04x", cfg.Prefix, os.Getpid(), testbedSeq.Add(1), rand.N(1<<16))
	tb := &Testbed{
		id:       id,
		bridgeNS: id + "-br",
		subnet:   cfg.Subnet,
		cutPairs: make(map[[2]int]bool),
	}
	ip := cfg.Subnet.Addr()
	for i := 1; i <= cfg.Hosts; i++ {
		ip = ip.Next()
		tb.hosts = append(tb.hosts, &Host{
			tb:    tb,
			index: i,
			name:  fmt.Sprintf("%s-%d", id, i),
			ip:    ip,
		})
	}
	if err := tb.build(ctx, cfg); err != nil {
		return nil, errors.Join(err, tb.Close())
	}
	return tb, nil
}

// withDefaults validates cfg and fills in its defaults.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if err := checkPrefix(cfg.Prefix); err != nil {
		return cfg, err
	}
	if !cfg.Subnet.IsValid() {
		cfg.Subnet = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(rand.N(256)), byte(rand.N(256)), 0}), 24)
	}
	if !cfg.Subnet.Addr().Is4() || cfg.Subnet.Bits() > 30 || cfg.Subnet.Bits() < 8 {
		return cfg, fmt.Errorf("testnet: subnet %s: want an IPv4 prefix from /8 to /30", cfg.Subnet)
	}
	cfg.Subnet = cfg.Subnet.Masked()
	limit := 1<<(32-cfg.Subnet.Bits()) - 2
	if cfg.Hosts < 1 || cfg.Hosts > 253 || cfg.Hosts > limit {
		return cfg, fmt.Errorf("testnet: %d hosts: want 1 to %d in %s", cfg.Hosts, min(253, limit), cfg.Subnet)
	}
	return cfg, nil
}

// checkPrefix accepts short lowercase alphanumeric prefixes, so that "-" separates the
// prefix from the PID unambiguously in Sweep.
func checkPrefix(prefix string) error {
	if prefix == "" || len(prefix) > 16 || strings.Trim(prefix, "abcdefghijklmnopqrstuvwxyz0123456789") != "" {
		return fmt.Errorf("testnet: prefix %q: want 1 to 16 lowercase letters or digits", prefix)
	}
	return nil
}

// build creates the bridge namespace, then every host, then the bridge's nft table.
func (tb *Testbed) build(ctx context.Context, cfg Config) error {
	br := tb.bridgeNS
	if err := tb.addNamespace(ctx, br); err != nil {
		return err
	}
	steps := [][]string{
		{"-n", br, "link", "set", "lo", "up"},
		// IGMP snooping would forward a group only to ports that joined it; mDNS
		// responders may send before anyone has joined, so flood all multicast.
		{"-n", br, "link", "add", bridgeName, "type", "bridge", "mcast_snooping", "0"},
		{"-n", br, "link", "set", bridgeName, "up"},
	}
	if err := ipSteps(ctx, "create bridge in "+br, steps); err != nil {
		return err
	}
	for _, h := range tb.hosts {
		if err := tb.addHost(ctx, h, cfg.DisableIPv6); err != nil {
			return err
		}
	}
	// Pairs cut by CutPair and Split are elements of the set "cut"; the rule matches
	// (input port, output port), flooded frames included, since the bridge's forward
	// hook runs once per output port.
	const table = `table bridge testnet {
	set cut { type ifname . ifname; }
	chain forward {
		type filter hook forward priority filter; policy accept;
		iifname . oifname @cut drop
	}
}
`
	if err := nft(ctx, br, table); err != nil {
		return fmt.Errorf("testnet: create pair filter in %s: %w", br, err)
	}
	return nil
}

// addHost creates h's namespace and its veth, whose peer it plugs into the bridge.
func (tb *Testbed) addHost(ctx context.Context, h *Host, disableIPv6 bool) error {
	if err := tb.addNamespace(ctx, h.name); err != nil {
		return err
	}
	if disableIPv6 {
		// Before eth0 exists, so that it never gets a link-local address.
		err := h.Do(func() error {
			for _, k := range []string{"all", "default"} {
				p := "/proc/sys/net/ipv6/conf/" + k + "/disable_ipv6"
				if err := os.WriteFile(p, []byte("1"), 0o644); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("testnet: disable IPv6 in %s: %w", h.name, err)
		}
	}
	br, port := tb.bridgeNS, h.port()
	steps := [][]string{
		// Both ends are created directly in their namespaces: nothing ever appears in
		// the root namespace, so names cannot collide with the host's interfaces.
		{"link", "add", port, "netns", br, "type", "veth", "peer", "name", "eth0", "netns", h.name},
		{"-n", br, "link", "set", port, "master", bridgeName},
		{"-n", br, "link", "set", port, "up"},
		{"-n", h.name, "link", "set", "lo", "up"},
		{"-n", h.name, "addr", "add", netip.PrefixFrom(h.ip, tb.subnet.Bits()).String(), "dev", "eth0"},
		{"-n", h.name, "link", "set", "eth0", "up"},
		// Without a route an unbound sendto(224.0.0.251) fails with ENETUNREACH: there
		// is deliberately no default route.
		{"-n", h.name, "route", "add", "224.0.0.0/4", "dev", "eth0"},
	}
	if err := ipSteps(ctx, "create host "+h.name, steps); err != nil {
		return err
	}
	return h.waitLinkUp(ctx)
}

// linkUpTimeout bounds the wait for a link to come up after it was set up.
const linkUpTimeout = 5 * time.Second

// waitLinkUp returns once both ends of h's veth are operationally up. The kernel
// completes that asynchronously (in its link-watch work), and until then the first
// frames on the link may be dropped; waiting here lets tests count on the first ping.
func (h *Host) waitLinkUp(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, linkUpTimeout)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		var last error
		for _, l := range [][2]string{{h.tb.bridgeNS, h.port()}, {h.name, "eth0"}} {
			out, err := output(ctx, "ip", "-n", l[0], "-o", "link", "show", "dev", l[1])
			if err == nil && !strings.Contains(out, " state UP ") {
				err = fmt.Errorf("%s in %s is not up: %s", l[1], l[0], strings.TrimSpace(out))
			}
			if err != nil {
				last = err
				break
			}
		}
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("testnet: wait for %s's link: %w", h.name, last)
		case <-tick.C:
		}
	}
}

// addNamespace creates a namespace and records it for Close.
func (tb *Testbed) addNamespace(ctx context.Context, name string) error {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if tb.closed {
		return ErrClosed
	}
	if err := run(ctx, "", "ip", "netns", "add", name); err != nil {
		return fmt.Errorf("testnet: create namespace %s: %w", name, err)
	}
	tb.made = append(tb.made, name)
	return nil
}

// Hosts returns the testbed's hosts in order: Hosts()[i] has the (i+1)-th address.
func (tb *Testbed) Hosts() []*Host {
	return append([]*Host(nil), tb.hosts...)
}

// Subnet returns the network the hosts' addresses belong to.
func (tb *Testbed) Subnet() netip.Prefix { return tb.subnet }

// Namespaces returns the names of every namespace the testbed made: its hosts' and its
// bridge's. They stay valid after Close, to check that they are gone.
func (tb *Testbed) Namespaces() []string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return append([]string(nil), tb.made...)
}

// Close kills every process the testbed started (and any other process still running in
// its namespaces) and deletes every namespace it created. It is idempotent: later calls
// return the first call's result.
func (tb *Testbed) Close() error {
	tb.closeOnce.Do(func() { tb.closeErr = tb.close() })
	return tb.closeErr
}

func (tb *Testbed) close() error {
	tb.mu.Lock()
	tb.closed = true
	procs, made := tb.procs, tb.made
	tb.mu.Unlock()

	var errs []error
	for _, p := range procs {
		if err := p.kill(); err != nil {
			errs = append(errs, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	// Hosts first, bridge last: the reverse of creation.
	for i := len(made) - 1; i >= 0; i-- {
		if err := deleteNamespace(ctx, made[i]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// deleteNamespace kills every process in a namespace, then removes its name. The kernel
// frees the namespace, and the veths in it, once its last process has died.
func deleteNamespace(ctx context.Context, name string) error {
	if _, err := os.Stat(nsPath(name)); errors.Is(err, os.ErrNotExist) {
		return nil // already gone, e.g. removed by a concurrent Sweep
	}
	out, err := output(ctx, "ip", "netns", "pids", name)
	if err != nil {
		if _, serr := os.Stat(nsPath(name)); errors.Is(serr, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("testnet: list processes in %s: %w", name, err)
	}
	for _, f := range strings.Fields(out) {
		// Never this process: while Host.Do runs f on the main thread, the kernel
		// reports the whole process as being in that namespace.
		if pid, err := strconv.Atoi(f); err == nil && pid > 0 && pid != os.Getpid() {
			_ = killPID(pid) // the only failure is ESRCH: it died meanwhile
		}
	}
	if err := run(ctx, "", "ip", "netns", "del", name); err != nil {
		if _, serr := os.Stat(nsPath(name)); errors.Is(serr, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("testnet: delete namespace %s: %w", name, err)
	}
	return nil
}

// logProcesses writes the output of every process the testbed started to t's log.
func (tb *Testbed) logProcesses(t testing.TB) {
	t.Helper()
	tb.mu.Lock()
	procs := append([]*Process(nil), tb.procs...)
	tb.mu.Unlock()
	for _, p := range procs {
		t.Logf("testnet: output of %s in %s:\n%s", p.describe(), p.host.name, p.Output())
	}
}

// hostIndex checks that h belongs to tb and returns its index (counted from 1).
func (tb *Testbed) hostIndex(h *Host) (int, error) {
	if h == nil || h.tb != tb {
		return 0, errors.New("testnet: host does not belong to this testbed")
	}
	return h.index, nil
}

// nsPath is where ip(8) keeps the bind mount that names a namespace.
func nsPath(name string) string { return "/var/run/netns/" + name }

// ipSteps runs "ip args..." for each step, stopping at the first failure.
func ipSteps(ctx context.Context, what string, steps [][]string) error {
	for _, s := range steps {
		if err := run(ctx, "", "ip", s...); err != nil {
			return fmt.Errorf("testnet: %s: %w", what, err)
		}
	}
	return nil
}

// nft loads an nft script into namespace ns in one transaction.
func nft(ctx context.Context, ns, script string) error {
	return run(ctx, script, "ip", "netns", "exec", ns, "nft", "-f", "-")
}

// run runs a command and folds its combined output into the error, if any.
func run(ctx context.Context, stdin, name string, args ...string) error {
	_, err := runCmd(ctx, stdin, name, args...)
	return err
}

// output runs a command and returns its standard output.
func output(ctx context.Context, name string, args ...string) (string, error) {
	return runCmd(ctx, "", name, args...)
}

func runCmd(ctx context.Context, stdin, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := bytes.TrimSpace(append(stdout.Bytes(), stderr.Bytes()...))
		return "", fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, msg)
	}
	return stdout.String(), nil
}
