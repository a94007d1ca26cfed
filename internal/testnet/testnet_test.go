package testnet_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/internal/testnet"
)

func TestHostsReachEachOther(t *testing.T) {
	t.Parallel()
	requireTestbed(t)
	before := rootInterfaces(t)
	tb := testnet.New(t, 3)
	hosts := tb.Hosts()

	if got, want := len(hosts), 3; got != want {
		t.Fatalf("len(Hosts()) = %d, want %d", got, want)
	}
	ownPrefix := fmt.Sprintf("%s-%d-", testnet.DefaultPrefix, os.Getpid())
	seenIP := map[netip.Addr]bool{}
	for _, h := range hosts {
		if !tb.Subnet().Contains(h.IP()) || seenIP[h.IP()] {
			t.Errorf("%s: IP %s is outside %s or repeated", h, h.IP(), tb.Subnet())
		}
		seenIP[h.IP()] = true
		if !strings.HasPrefix(h.Name(), ownPrefix) {
			t.Errorf("host name %q: want prefix %q", h.Name(), ownPrefix)
		}
	}

	var routes []route
	for _, a := range hosts {
		for _, b := range hosts {
			if a != b {
				routes = append(routes, route{a, b, true})
			}
		}
	}
	checkRoutes(t, routes...)

	// No default route: traffic for outside addresses is refused before it is sent.
	// 192.0.2.1 is TEST-NET-1 (RFC 5737); "ip route get" sends nothing.
	out, err := hosts[0].Command(t.Context(), "ip", "route", "get", "192.0.2.1").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "unreachable") {
		t.Errorf("ip route get 192.0.2.1 in %s: got %q (err %v), want network unreachable", hosts[0], out, err)
	}

	// Nothing was added to the root namespace: no address of the testbed's subnet, no
	// new interface.
	after := rootInterfaces(t)
	for name, addrs := range after {
		if _, ok := before[name]; !ok && testbedInterface.MatchString(name) {
			t.Errorf("root namespace gained interface %s", name)
		}
		for _, a := range addrs {
			if tb.Subnet().Contains(a) {
				t.Errorf("root namespace interface %s has testbed address %s", name, a)
			}
		}
	}
}

// testbedInterface matches the names of the interfaces a testbed makes (in its own
// namespaces), so that one appearing in the root namespace is caught, while interfaces
// that other software adds there meanwhile are ignored.
var testbedInterface = regexp.MustCompile(`^(br0|eth0|v[0-9]+)$`)

// rootInterfaces lists the test process's own (root namespace) interfaces and their
// addresses.
func rootInterfaces(t *testing.T) map[string][]netip.Addr {
	t.Helper()
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	m := map[string][]netip.Addr{}
	for _, ifi := range ifs {
		addrs, err := ifi.Addrs()
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil {
				m[ifi.Name] = append(m[ifi.Name], p.Addr())
			}
		}
		if m[ifi.Name] == nil {
			m[ifi.Name] = []netip.Addr{}
		}
	}
	return m
}

func TestCutRestore(t *testing.T) {
	t.Parallel()
	requireTestbed(t)
	tb := testnet.New(t, 3)
	h := tb.Hosts()
	ctx := t.Context()

	if err := tb.Cut(ctx, h[0]); err != nil {
		t.Fatal(err)
	}
	checkRoutes(t,
		route{h[0], h[1], false},
		route{h[2], h[0], false},
		route{h[1], h[2], true},
	)

	if err := tb.Restore(ctx, h[0]); err != nil {
		t.Fatal(err)
	}
	reachable(t, h[0], h[1])
	reachable(t, h[2], h[0])
}

func TestCutPair(t *testing.T) {
	t.Parallel()
	requireTestbed(t)
	tb := testnet.New(t, 3)
	a, b, c := tb.Hosts()[0], tb.Hosts()[1], tb.Hosts()[2]
	ctx := t.Context()

	if err := tb.CutPair(ctx, a, b); err != nil {
		t.Fatal(err)
	}
	if err := tb.CutPair(ctx, b, a); err != nil {
		t.Fatalf("cutting a cut pair again: %v", err)
	}
	checkRoutes(t,
		route{a, b, false},
		route{b, a, false},
		route{a, c, true},
		route{b, c, true},
		route{c, a, true},
	)

	if err := tb.RestorePair(ctx, a, b); err != nil {
		t.Fatal(err)
	}
	if err := tb.RestorePair(ctx, a, b); err != nil {
		t.Fatalf("restoring a pair that is not cut: %v", err)
	}
	reachable(t, a, b)
	reachable(t, b, a)

	if err := tb.CutPair(ctx, a, a); err == nil {
		t.Error("CutPair(a, a): got nil error, want one")
	}
}

func TestSplitHeal(t *testing.T) {
	t.Parallel()
	requireTestbed(t)
	tb := testnet.New(t, 4)
	h := tb.Hosts()
	ctx := t.Context()

	if err := tb.Split(ctx, h[:2], h[2:]); err != nil {
		t.Fatal(err)
	}
	checkRoutes(t,
		route{h[0], h[1], true},
		route{h[3], h[2], true},
		route{h[0], h[2], false},
		route{h[1], h[3], false},
		route{h[3], h[0], false},
	)

	if err := tb.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	reachable(t, h[0], h[2])
	reachable(t, h[1], h[3])
	reachable(t, h[3], h[0])

	if err := tb.Split(ctx, h[:2], h[1:]); err == nil {
		t.Error("Split with a host in both groups: got nil error, want one")
	}
}

func TestLoss(t *testing.T) {
	t.Parallel()
	requireTestbed(t)
	tb := testnet.New(t, 3)
	h := tb.Hosts()
	ctx := t.Context()

	if err := tb.Loss(ctx, h[1], 100); err != nil {
		t.Fatal(err)
	}
	checkRoutes(t,
		route{h[0], h[1], false}, // requests dropped
		route{h[1], h[2], false}, // replies dropped
		route{h[0], h[2], true},
	)

	if err := tb.ClearLoss(ctx, h[1]); err != nil {
		t.Fatal(err)
	}
	if err := tb.ClearLoss(ctx, h[1]); err != nil {
		t.Fatalf("clearing twice: %v", err)
	}
	checkRoutes(t,
		route{h[0], h[1], true},
		route{h[1], h[2], true},
	)

	for _, pct := range []int{-1, 101} {
		if err := tb.Loss(ctx, h[1], pct); err == nil {
			t.Errorf("Loss(%d): got nil error, want one", pct)
		}
	}
}

func TestLossRate(t *testing.T) {
	t.Parallel()
	requireTestbed(t)
	tb := testnet.New(t, 2)
	h := tb.Hosts()
	addr := netip.AddrPortFrom(h[1].IP(), 15300).String()
	echo := startHelper(t, h[1], "udp-echo", addr)
	waitOutput(t, echo, "ready", 1)
	eventually(t, "echo answers", func() error { return udpRoundTrip(h[0], addr, "ping") })

	if err := tb.Loss(t.Context(), h[1], 50); err != nil {
		t.Fatal(err)
	}
	// Only requests are dropped (at h[1]'s input), so echoes count the requests that
	// got through. Binomial(200, 0.5) is within [60, 140] but with probability 1e-8.
	var c net.Conn
	if err := h[0].Do(func() (err error) { c, err = net.Dial("udp4", addr); return err }); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const sent = 200
	for i := range sent {
		if _, err := fmt.Fprintf(c, "%d", i); err != nil {
			t.Fatal(err)
		}
	}
	got := 0
	buf := make([]byte, 64)
	for {
		// Echoes of a local exchange arrive within microseconds; 500 ms of silence
		// means the rest were dropped.
		if err := c.SetReadDeadline(time.Now().Add(500 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(buf); err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatal(err)
			}
			break
		}
		got++
	}
	if got < 60 || got > 140 {
		t.Errorf("50%% loss: %d of %d datagrams got through, want 60 to 140", got, sent)
	}
}

func TestMulticast(t *testing.T) {
	t.Parallel()
	requireTestbed(t)
	tb := testnet.New(t, 3)
	h := tb.Hosts()
	const group = "224.0.0.250:15353" // like mDNS (224.0.0.251:5353), but not it

	listeners := []*testnet.Process{
		startHelper(t, h[1], "mcast-listen", group),
		startHelper(t, h[2], "mcast-listen", group),
	}
	for _, l := range listeners {
		waitOutput(t, l, "ready", 1)
	}

	var c net.Conn
	if err := h[0].Do(func() (err error) { c, err = net.Dial("udp4", group); return err }); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Send until both listeners have printed it: IGMP joins need not have reached the
	// bridge when "ready" is printed (though with snooping off they need not at all).
	eventually(t, "multicast reaches both listeners", func() error {
		if _, err := c.Write([]byte("hello")); err != nil {
			return err
		}
		for _, l := range listeners {
			if !strings.Contains(l.Output(), "got hello") {
				return fmt.Errorf("%s has not received it; output:\n%s", l.Host(), l.Output())
			}
		}
		return nil
	})
}

func TestProcessKillRestart(t *testing.T) {
	t.Parallel()
	requireTestbed(t)
	tb := testnet.New(t, 2)
	h := tb.Hosts()
	// The echo server listens on h[1]'s address, which exists only inside h[1]: that
	// it answers at all shows that Start ran it in the namespace.
	addr := netip.AddrPortFrom(h[1].IP(), 15300).String()
	p := startHelper(t, h[1], "udp-echo", addr)
	if p.Host() != h[1] {
		t.Errorf("Host() = %s, want %s", p.Host(), h[1])
	}
	waitOutput(t, p, "ready", 1)
	eventually(t, "echo answers", func() error { return udpRoundTrip(h[0], addr, "one") })
	firstPID := p.Pid()

	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	if !p.Exited() {
		t.Fatal("Exited() = false after Kill")
	}
	var exitErr *exec.ExitError
	if err := p.Wait(t.Context()); !errors.As(err, &exitErr) || exitErr.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("Wait after Kill: got %v, want killed by SIGKILL", err)
	}
	if err := p.Kill(); err != nil {
		t.Errorf("second Kill: %v", err)
	}
	if err := udpRoundTrip(h[0], addr, "two"); err == nil {
		t.Error("killed echo server still answers")
	}

	if err := p.Restart(); err != nil {
		t.Fatal(err)
	}
	if p.Pid() == firstPID {
		t.Errorf("Pid() after Restart = %d, the old PID", p.Pid())
	}
	waitOutput(t, p, "ready", 2)
	eventually(t, "restarted echo answers", func() error { return udpRoundTrip(h[0], addr, "three") })

	// Restarting a running process kills it first.
	if err := p.Restart(); err != nil {
		t.Fatal(err)
	}
	waitOutput(t, p, "ready", 3)
	if p.Exited() {
		t.Errorf("process exited after Restart; output:\n%s", p.Output())
	}
}

func TestCommandAndDo(t *testing.T) {
	t.Parallel()
	requireTestbed(t)
	tb := testnet.New(t, 2)
	h := tb.Hosts()[1]

	out, err := h.Command(t.Context(), "ip", "-4", "-o", "addr", "show", "dev", "eth0").CombinedOutput()
	if err != nil {
		t.Fatalf("ip addr in %s: %v: %s", h, err, out)
	}
	if !strings.Contains(string(out), " "+h.IP().String()+"/") {
		t.Errorf("ip addr in %s: got %q, want %s", h, out, h.IP())
	}

	var addrs []netip.Addr
	err = h.Do(func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		as, err := ifi.Addrs()
		for _, a := range as {
			addrs = append(addrs, netip.MustParsePrefix(a.String()).Addr())
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(addrs, h.IP()) {
		t.Errorf("Do: eth0 addresses %v, want %s among them", addrs, h.IP())
	}

	sentinel := errors.New("sentinel")
	if err := h.Do(func() error { return sentinel }); !errors.Is(err, sentinel) {
		t.Errorf("Do: got error %v, want %v", err, sentinel)
	}
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("Do: recovered %v, want the panic of f, boom", r)
			}
		}()
		_ = h.Do(func() error { panic("boom") })
	}()

	// DialContext reaches the host's own loopback, which another host's cannot.
	var ln net.Listener
	if err := h.Do(func() (err error) { ln, err = net.Listen("tcp4", "127.0.0.1:0"); return err }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Write([]byte("hello"))
			c.Close()
		}
	}()
	conn, err := h.DialContext(t.Context(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("DialContext in %s: %v", h, err)
	}
	got, err := io.ReadAll(conn)
	conn.Close()
	if err != nil || string(got) != "hello" {
		t.Errorf("DialContext in %s: read %q, %v; want hello", h, got, err)
	}
	if c, err := tb.Hosts()[0].DialContext(t.Context(), "tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Errorf("DialContext in %s reached %s's loopback listener", tb.Hosts()[0], h)
	}
}

func TestDisableIPv6(t *testing.T) {
	t.Parallel()
	requireTestbed(t)
	cases := []struct {
		name        string
		disableIPv6 bool
		want        bool // whether eth0 has a link-local IPv6 address
	}{
		{"default", false, true},
		{"disabled", true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tb := testnet.NewConfig(t, testnet.Config{Hosts: 1, DisableIPv6: tc.disableIPv6})
			h := tb.Hosts()[0]
			hasLinkLocal := func() (bool, error) {
				out, err := h.Command(t.Context(), "ip", "-6", "-o", "addr", "show", "dev", "eth0").CombinedOutput()
				if err != nil {
					return false, fmt.Errorf("ip -6 addr in %s: %w: %s", h, err, out)
				}
				return strings.Contains(string(out), "fe80::"), nil
			}
			if !tc.want {
				// IPv6 was off before eth0 existed, so this cannot change later.
				if got, err := hasLinkLocal(); err != nil || got {
					t.Errorf("link-local IPv6 on eth0: got %v (err %v), want none", got, err)
				}
				return
			}
			// The kernel adds the address when the link comes up, asynchronously.
			eventually(t, "eth0 has a link-local IPv6 address", func() error {
				got, err := hasLinkLocal()
				if err == nil && !got {
					err = errors.New("none yet")
				}
				return err
			})
		})
	}
}

func TestCloseLeavesNothing(t *testing.T) {
	t.Parallel()
	requireTestbed(t)
	ctx := t.Context()
	tb, err := testnet.Open(ctx, testnet.Config{Hosts: 2, Subnet: netip.MustParsePrefix("10.255.7.0/24")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tb.Close() }) // in case the test fails before Close
	h := tb.Hosts()
	if got := h[1].IP(); got != netip.MustParseAddr("10.255.7.2") {
		t.Errorf("second host's IP = %s, want 10.255.7.2", got)
	}

	owned := startHelper(t, h[0], "udp-echo", ":15300")
	waitOutput(t, owned, "ready", 1)
	// A process started with Command and never waited for: Close kills it too.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	stray := h[1].Command(context.Background(), exe)
	stray.Env = append(os.Environ(), "TESTNET_HELPER=udp-echo", "TESTNET_HELPER_ADDR=:15300")
	strayOut := &strings.Builder{}
	stray.Stdout = strayOut
	if err := stray.Start(); err != nil {
		t.Fatal(err)
	}
	strayDone := make(chan error, 1)
	go func() { strayDone <- stray.Wait() }()

	names := tb.Namespaces()
	if got, want := len(names), 3; got != want {
		t.Fatalf("Namespaces() = %v, want %d of them", names, want)
	}
	eventually(t, "the stray process runs in its namespace", func() error {
		return udpRoundTrip(h[0], netip.AddrPortFrom(h[1].IP(), 15300).String(), "x")
	})

	if err := tb.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tb.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	out, err := exec.CommandContext(ctx, "ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	for _, n := range names {
		if strings.Contains(string(out), n) {
			t.Errorf("namespace %s still listed after Close:\n%s", n, out)
		}
	}
	if !owned.Exited() {
		t.Errorf("process %d started with Start still running after Close", owned.Pid())
	}
	if err := syscall.Kill(owned.Pid(), 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("kill -0 %d after Close: got %v, want ESRCH", owned.Pid(), err)
	}
	select {
	case <-strayDone:
	case <-time.After(waitTimeout):
		t.Errorf("process %d started with Command still running %v after Close", stray.Process.Pid, waitTimeout)
	}

	if _, err := h[0].Start("true"); !errors.Is(err, testnet.ErrClosed) {
		t.Errorf("Start after Close: got %v, want ErrClosed", err)
	}
	if err := tb.Cut(ctx, h[0]); !errors.Is(err, testnet.ErrClosed) {
		t.Errorf("Cut after Close: got %v, want ErrClosed", err)
	}
}

func TestSweep(t *testing.T) {
	t.Parallel()
	requireTestbed(t)
	ctx := t.Context()
	const prefix = "rtnsweeptest"

	// A PID that belonged to a process that has exited: a crashed test run's.
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	dead := fmt.Sprintf("%s-%d-0000-1", prefix, gone.ProcessState.Pid())
	live := fmt.Sprintf("%s-%d-0000-1", prefix, os.Getpid())
	other := fmt.Sprintf("%sx-%d-0000-1", prefix, gone.ProcessState.Pid()) // another prefix
	for _, n := range []string{dead, live, other} {
		if out, err := exec.CommandContext(ctx, "ip", "netns", "add", n).CombinedOutput(); err != nil {
			t.Fatalf("ip netns add %s: %v: %s", n, err, out)
		}
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", n).Run() })
	}
	// A process left running in the dead run's namespace.
	leftover := exec.Command("ip", "netns", "exec", dead, "sleep", "60")
	if err := leftover.Start(); err != nil {
		t.Fatal(err)
	}
	leftoverDone := make(chan error, 1)
	go func() { leftoverDone <- leftover.Wait() }()

	if err := testnet.Sweep(ctx, prefix); err != nil {
		t.Fatal(err)
	}

	for n, want := range map[string]bool{dead: false, live: true, other: true} {
		_, err := os.Stat("/var/run/netns/" + n)
		if got := err == nil; got != want {
			t.Errorf("namespace %s exists after Sweep: got %v, want %v", n, got, want)
		}
	}
	select {
	case <-leftoverDone:
	case <-time.After(waitTimeout):
		t.Errorf("process %d in a swept namespace still running after %v", leftover.Process.Pid, waitTimeout)
	}

	if err := testnet.Sweep(ctx, "bad-prefix"); err == nil {
		t.Error("Sweep with a prefix containing '-': got nil error, want one")
	}
}

// TestBytesSent sends 100 datagrams of 1,000 bytes from one host to another: the
// sender's count grows by at least their payload, the idle third host's by far less.
func TestBytesSent(t *testing.T) {
	t.Parallel()
	tb := testnet.NewConfig(t, testnet.Config{Hosts: 3, DisableIPv6: true})
	h := tb.Hosts()
	before, err := tb.BytesSent(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(before) != 3 {
		t.Fatalf("BytesSent returned %d counters, want 3", len(before))
	}
	// Unconnected, so that the ICMP "port unreachable" answers fail no write.
	var c net.PacketConn
	if err := h[0].Do(func() (err error) { c, err = net.ListenPacket("udp4", ":0"); return err }); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	to := net.UDPAddrFromAddrPort(netip.AddrPortFrom(h[1].IP(), 15301))
	payload := make([]byte, 1000)
	for range 100 {
		if _, err := c.WriteTo(payload, to); err != nil {
			t.Fatal(err)
		}
	}
	after, err := tb.BytesSent(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if d := after[0] - before[0]; d < 100_000 {
		t.Errorf("sender's count grew by %d bytes, want at least the 100,000 sent", d)
	}
	if d := after[2] - before[2]; d >= 10_000 {
		t.Errorf("idle host's count grew by %d bytes", d)
	}
}
