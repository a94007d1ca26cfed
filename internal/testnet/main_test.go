package testnet_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/internal/testkit"
	"github.com/rumor-sd/rumor/internal/testnet"
)

// The test binary doubles as the helper programs that tests start inside hosts: when
// TESTNET_HELPER names one, TestMain runs it instead of the tests. This keeps the tests
// free of tools beyond ip, nft and ping, and of "go run".
const (
	helperEnv = "TESTNET_HELPER"
	addrEnv   = "TESTNET_HELPER_ADDR"
)

func TestMain(m *testing.M) {
	helper := os.Getenv(helperEnv)
	if helper == "" {
		os.Exit(m.Run())
	}
	var err error
	switch helper {
	case "udp-echo":
		err = udpEcho(os.Getenv(addrEnv))
	case "mcast-listen":
		err = mcastListen(os.Getenv(addrEnv))
	default:
		err = fmt.Errorf("unknown helper %q", helper)
	}
	fmt.Fprintf(os.Stderr, "helper %s: %v\n", helper, err)
	os.Exit(1)
}

// udpEcho answers every UDP datagram on addr with the same bytes, after printing
// "ready" once it listens.
func udpEcho(addr string) error {
	c, err := net.ListenPacket("udp4", addr)
	if err != nil {
		return err
	}
	fmt.Println("ready")
	buf := make([]byte, 2048)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return err
		}
		if _, err := c.WriteTo(buf[:n], from); err != nil {
			return err
		}
	}
}

// mcastListen joins the group addr on eth0, prints "ready", then prints "got <payload>"
// for every datagram.
func mcastListen(addr string) error {
	group, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		return err
	}
	ifi, err := net.InterfaceByName("eth0")
	if err != nil {
		return err
	}
	c, err := net.ListenMulticastUDP("udp4", ifi, group)
	if err != nil {
		return err
	}
	fmt.Println("ready")
	buf := make([]byte, 2048)
	for {
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			return err
		}
		fmt.Printf("got %s\n", buf[:n])
	}
}

// startHelper starts one of TestMain's helpers in h as a testbed process.
func startHelper(t *testing.T, h *testnet.Host, helper, addr string) *testnet.Process {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p, err := h.StartEnv([]string{helperEnv + "=" + helper, addrEnv + "=" + addr}, exe)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// waitTimeout bounds every wait for a condition that should become true.
const waitTimeout = 10 * time.Second

// eventually polls cond every 50 ms until it returns nil, and fails t with cond's last
// error if that does not happen within waitTimeout.
func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	testkit.Poll(t, waitTimeout, 50*time.Millisecond, what, cond)
}

// ping sends one echo request from one host to another and waits 1 s for the reply.
func ping(from, to *testnet.Host) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := from.Command(ctx, "ping", "-c1", "-W1", "-n", "-q", to.IP().String()).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ping %s -> %s: %w: %s", from, to, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// route is a reachability expectation: whether from can ping to.
type route struct {
	from, to *testnet.Host
	ok       bool
}

// checkRoutes pings every route at once and fails t for each one that does not match.
// Faults are applied synchronously, so one ping per route decides; a failed ping
// takes 1 s, which is why they run in parallel.
func checkRoutes(t *testing.T, routes ...route) {
	t.Helper()
	errs := make([]error, len(routes))
	done := make(chan int)
	for i, r := range routes {
		go func() {
			errs[i] = ping(r.from, r.to)
			done <- i
		}()
	}
	for range routes {
		<-done
	}
	for i, r := range routes {
		switch {
		case r.ok && errs[i] != nil:
			t.Errorf("%s -> %s: got unreachable, want reachable: %v", r.from, r.to, errs[i])
		case !r.ok && errs[i] == nil:
			t.Errorf("%s -> %s: got reachable, want unreachable", r.from, r.to)
		}
	}
}

// reachable waits until from can ping to: after Restore or Heal, ARP may need a retry.
func reachable(t *testing.T, from, to *testnet.Host) {
	t.Helper()
	eventually(t, fmt.Sprintf("%s reaches %s", from, to), func() error { return ping(from, to) })
}

// requireTestbed is testnet.Require plus the ping these tests use.
func requireTestbed(t *testing.T) {
	t.Helper()
	testnet.Require(t, "ping")
}

// waitOutput waits until p's output contains want n times.
func waitOutput(t *testing.T, p *testnet.Process, want string, n int) {
	t.Helper()
	eventually(t, fmt.Sprintf("%q ×%d in output of pid %d", want, n, p.Pid()), func() error {
		out := p.Output()
		if got := strings.Count(out, want); got < n {
			return fmt.Errorf("seen %d times; output so far:\n%s", got, out)
		}
		return nil
	})
}

// udpRoundTrip sends payload from host h to addr and waits up to 300 ms for the echo.
// The socket is opened inside h with Host.Do and used from the test goroutine.
func udpRoundTrip(h *testnet.Host, addr, payload string) error {
	var c net.Conn
	if err := h.Do(func() error {
		var err error
		c, err = net.Dial("udp4", addr)
		return err
	}); err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(300 * time.Millisecond)); err != nil {
		return err
	}
	if _, err := c.Write([]byte(payload)); err != nil {
		return err
	}
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	if got := string(buf[:n]); got != payload {
		return fmt.Errorf("echo: got %q, want %q", got, payload)
	}
	return nil
}
