package testnet

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// available caches Available's answer: the machine does not change during a test run.
var available = sync.OnceValue(probe)

// Available returns nil if this process can build testbeds, or an error that says
// precisely why not: not Linux, not root, ip(8) or nft(8) missing, or the kernel
// refusing a namespace, a bridge, a veth or an nftables bridge table. It tries each
// in a scratch namespace once per process and remembers the answer.
func Available() error { return available() }

func probe() error {
	if runtime.GOOS != "linux" {
		return fmt.Errorf("testnet: needs Linux network namespaces, not %s", runtime.GOOS)
	}
	if uid := os.Geteuid(); uid != 0 {
		return fmt.Errorf("testnet: needs root to create network namespaces (euid is %d)", uid)
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("testnet: %s not found (Debian packages iproute2 and nftables): %w", tool, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Named like a testbed's namespaces, so Sweep removes it if this process dies here.
	ns := fmt.Sprintf("%s-%d-probe%04x", DefaultPrefix, os.Getpid(), rand.N(1<<16))
	if err := run(ctx, "", "ip", "netns", "add", ns); err != nil {
		return fmt.Errorf("testnet: cannot create a network namespace: %w", err)
	}
	err := probeNamespace(ctx, ns)
	if derr := deleteNamespace(ctx, ns); derr != nil && err == nil {
		err = derr
	}
	return err
}

// probeNamespace tries, inside ns, everything a testbed needs from the kernel.
func probeNamespace(ctx context.Context, ns string) error {
	checks := []struct {
		what  string
		stdin string
		args  []string
	}{
		{"create a bridge", "", []string{"ip", "-n", ns, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0"}},
		{"create a veth pair", "", []string{"ip", "-n", ns, "link", "add", "va", "type", "veth", "peer", "name", "vb"}},
		{"create an nftables bridge table", "table bridge testnet { set cut { type ifname . ifname; }; }\n",
			[]string{"ip", "netns", "exec", ns, "nft", "-f", "-"}},
	}
	for _, c := range checks {
		if err := run(ctx, c.stdin, c.args[0], c.args[1:]...); err != nil {
			return fmt.Errorf("testnet: cannot %s in a namespace: %w", c.what, err)
		}
	}
	return nil
}

// Require skips t with the reason Available gives when this machine cannot build a
// testbed, or when one of the extra tools (looked up in PATH, e.g. "ping") is missing.
// When the environment variable CI is true, it fails t with that reason instead: CI
// installs every package and runs as root, so a testbed test that skips there is a bug.
func Require(t testing.TB, tools ...string) {
	t.Helper()
	err := Available()
	for _, tool := range tools {
		if _, lerr := exec.LookPath(tool); lerr != nil {
			err = errors.Join(err, fmt.Errorf("testnet: %s not found: %w", tool, lerr))
		}
	}
	if err == nil {
		return
	}
	if inCI(os.Getenv("CI")) {
		t.Fatalf("%v (CI=true: testbed tests must run, not skip)", err)
		return
	}
	t.Skipf("%v", err)
}

// inCI interprets the CI environment variable as CI services set it ("true", "1").
func inCI(v string) bool {
	ci, err := strconv.ParseBool(v)
	return err == nil && ci
}

// Sweep deletes the namespaces left behind by crashed runs: those whose name starts
// with prefix and whose owning process, the PID in the name, no longer exists. It kills
// any process still running in them first. Namespaces of live processes, other
// testbeds running concurrently included, are left alone. New and Open call it.
func Sweep(ctx context.Context, prefix string) error {
	if err := checkPrefix(prefix); err != nil {
		return err
	}
	out, err := output(ctx, "ip", "netns", "list")
	if err != nil {
		return fmt.Errorf("testnet: sweep %s: %w", prefix, err)
	}
	var errs []error
	for _, line := range strings.Split(out, "\n") {
		fields := strings.Fields(line) // "name" or "name (id: 3)"
		if len(fields) == 0 {
			continue
		}
		name := fields[0]
		pid, ok := ownerPID(prefix, name)
		if !ok || processAlive(pid) {
			continue
		}
		if err := deleteNamespace(ctx, name); err != nil {
			errs = append(errs, fmt.Errorf("testnet: sweep: %w", err))
		}
	}
	return errors.Join(errs...)
}

// ownerPID parses "<prefix>-<pid>-..." and returns the PID.
func ownerPID(prefix, name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, prefix+"-")
	if !ok {
		return 0, false
	}
	digits, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	pid, err := strconv.Atoi(digits)
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, true
}
