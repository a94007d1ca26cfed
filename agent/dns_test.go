package agent

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/internal/testkit"
)

// needDig returns dig's path; without it the test skips, or fails in CI (CI=true),
// where scripts/test.sh installs dnsutils.
func needDig(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("dig")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("dig (Debian dnsutils) is missing: scripts/test.sh installs it")
		}
		t.Skip("dig (Debian dnsutils) is not installed")
	}
	return p
}

// dig runs the real dig against addr and returns its +short lines, sorted, and the
// status from its header.
func dig(t *testing.T, bin string, addr netip.AddrPort, args ...string) (lines []string, status string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	full := append([]string{"@" + addr.Addr().String(), "-p", fmt.Sprint(addr.Port()), "+tries=1", "+time=2"}, args...)
	out, err := exec.CommandContext(ctx, bin, full...).CombinedOutput()
	if err != nil {
		t.Fatalf("dig %s: %v\n%s", strings.Join(full, " "), err, out)
	}
	inAnswer := false
	for _, l := range strings.Split(string(out), "\n") {
		if _, rest, ok := strings.Cut(l, "status: "); ok {
			status, _, _ = strings.Cut(rest, ",")
		}
		switch {
		case strings.HasPrefix(l, ";; ANSWER SECTION:"):
			inAnswer = true
		case inAnswer && strings.TrimSpace(l) == "":
			inAnswer = false
		case inAnswer:
			f := strings.Fields(l)
			lines = append(lines, strings.Join(append([]string{f[0], f[3]}, f[4:]...), " "))
		}
	}
	slices.Sort(lines)
	return lines, status
}

// TestDNSAcrossTwoAgents: a service registered on one agent is answered by the
// other's DNS server, read with the real dig; its deregistration stops the answer.
func TestDNSAcrossTwoAgents(t *testing.T) {
	bin := needDig(t)
	var agents []*Agent
	for i := range 2 {
		cfg := Config{NodeName: fmt.Sprintf("n%d", i+1), DataDir: t.TempDir(), BindAddr: "127.0.0.1",
			GossipProfile: "local", HTTPAddr: "127.0.0.1:0", DNS: DNSConfig{Addr: "127.0.0.1:0", UDPReaders: 1, Workers: 1, OrderNear: i == 1}}
		if i > 0 {
			cfg.Join = []string{agents[0].GossipAddr().String()}
		}
		agents = append(agents, startAgent(t, cfg))
	}
	if !agents[1].DNSAddr().IsValid() {
		t.Fatal("DNSAddr is invalid with DNS on")
	}
	svc := web("web-1", 8080, "v1")
	svc.Meta = map[string]string{"version": "1.2"}
	if err := agents[0].RegisterService(t.Context(), svc); err != nil {
		t.Fatal(err)
	}
	want := []string{"web.service.consul. SRV 1 1 8080 n1.node.dc1.consul."}
	var got []string
	var status string
	testkit.Poll(t, 10*time.Second, testkit.PollInterval, "n2's DNS to answer web", func() error {
		got, status = dig(t, bin, agents[1].DNSAddr(), "web.service.consul", "SRV")
		if !slices.Equal(got, want) {
			return fmt.Errorf("dig: %s %q, want %q", status, got, want)
		}
		return nil
	})
	if got, _ := dig(t, bin, agents[1].DNSAddr(), "v1.web.service.consul", "A"); !slices.Equal(got, []string{"v1.web.service.consul. A 127.0.0.1"}) {
		t.Errorf("A by tag: %q", got)
	}
	if got, _ := dig(t, bin, agents[1].DNSAddr(), "web.service.consul", "TXT"); !slices.Equal(got, []string{`web.service.consul. TXT "version=1.2"`}) {
		t.Errorf("TXT: %q", got)
	}
	if got, _ := dig(t, bin, agents[1].DNSAddr(), "_web._tcp.consul", "PTR"); !slices.Equal(got, []string{"_web._tcp.consul. PTR web-1-n1._web._tcp.consul."}) {
		t.Errorf("DNS-SD PTR: %q", got)
	}
	if _, status := dig(t, bin, agents[1].DNSAddr(), "nope.service.consul", "SRV"); status != "NXDOMAIN" {
		t.Errorf("unknown service: status %s, want NXDOMAIN", status)
	}
	if got, _ := dig(t, bin, agents[1].DNSAddr(), "+tcp", "n1.node.consul", "A"); !slices.Equal(got, []string{"n1.node.consul. A 127.0.0.1"}) {
		t.Errorf("node over TCP: %q", got)
	}
	if err := agents[0].DeregisterService(t.Context(), "web-1"); err != nil {
		t.Fatal(err)
	}
	testkit.Poll(t, 10*time.Second, testkit.PollInterval, "web gone from n2's DNS", func() error {
		if _, status := dig(t, bin, agents[1].DNSAddr(), "web.service.consul", "SRV"); status != "NXDOMAIN" {
			return fmt.Errorf("status %s", status)
		}
		return nil
	})
}

// TestDNSOffByDefault: the Go API serves no DNS unless Config.DNS.Addr is set.
func TestDNSOffByDefault(t *testing.T) {
	a := startAgent(t, Config{NodeName: "n1", Dev: true, BindAddr: "127.0.0.1", HTTPAddr: "127.0.0.1:0"})
	if a.DNSAddr().IsValid() {
		t.Fatalf("DNS on at %s without Config.DNS", a.DNSAddr())
	}
}

// TestDNSBadConfig: New names what is wrong in the DNS config.
func TestDNSBadConfig(t *testing.T) {
	_, err := New(Config{NodeName: "n1", Dev: true, DNS: DNSConfig{Addr: "127.0.0.1:0", Domain: "."}})
	if err == nil || !strings.Contains(err.Error(), "root zone") {
		t.Fatalf("New: %v, want an error about the root zone", err)
	}
}

// TestUIShowsDNS: with DNS on, the web UI's service page carries the dig line for
// the port DNS really listens on (here an ephemeral one), and the agent page counts
// the queries answered.
func TestUIShowsDNS(t *testing.T) {
	bin := needDig(t)
	a := startAgent(t, Config{NodeName: "n1", Dev: true, BindAddr: "127.0.0.1", HTTPAddr: "127.0.0.1:0",
		DNS: DNSConfig{Addr: "127.0.0.1:0", UDPReaders: 1, Workers: 1}})
	if err := a.RegisterService(t.Context(), web("web-1", 8080)); err != nil {
		t.Fatal(err)
	}
	api := newAPI(t, a)
	get := func(path string) string { return api.must(http.MethodGet, path, "") }
	want := fmt.Sprintf("dig @127.0.0.1 -p %d web.service.consul SRV", a.DNSAddr().Port())
	if page := get("/ui/services/web"); !strings.Contains(page, want) {
		t.Errorf("the service page lacks %q", want)
	}
	if got, _ := dig(t, bin, a.DNSAddr(), "web.service.consul", "SRV"); len(got) != 1 {
		t.Fatalf("dig web: %q", got)
	}
	if n := a.dns.Answered(); n < 1 {
		t.Errorf("Answered() = %d after a query", n)
	}
	// The row shows once the UI has sampled the counter (every 2 s).
	testkit.Poll(t, 10*time.Second, testkit.PollInterval, "a DNS queries row on the agent page", func() error {
		if !strings.Contains(get("/ui/agent"), "DNS queries") {
			return fmt.Errorf("no DNS queries row")
		}
		return nil
	})
}

// TestDNSOnlyReachable: an instance this host cannot reach (as the local proxy
// reports it) is left out of the agent's DNS answers with OnlyReachable, and comes
// back once reachable again, though the catalog did not change.
func TestDNSOnlyReachable(t *testing.T) {
	a := startAgent(t, Config{NodeName: "n1", Dev: true, BindAddr: "127.0.0.1", HTTPAddr: "127.0.0.1:0",
		DNS: DNSConfig{Addr: "127.0.0.1:0", UDPReaders: 1, Workers: 1, OnlyReachable: true}})
	for i, port := range []int{9001, 9002} {
		if err := a.RegisterService(t.Context(), web(fmt.Sprintf("web-%d", i+1), port)); err != nil {
			t.Fatal(err)
		}
	}
	srvPorts := func() (string, error) {
		out, err := DNSLookup(t.Context(), a.DNSAddr().String(), "web.service.consul", "SRV", false)
		if err != nil {
			return "", err
		}
		var ports []string
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) == 8 && f[3] == "SRV" {
				ports = append(ports, f[6])
			}
		}
		slices.Sort(ports)
		return strings.Join(ports, " "), nil
	}
	expect := func(what, want string) {
		t.Helper()
		testkit.Poll(t, 10*time.Second, testkit.PollInterval, what, func() error {
			got, err := srvPorts()
			if err == nil && got != want {
				err = fmt.Errorf("SRV ports %q, want %q", got, want)
			}
			return err
		})
	}
	expect("both instances answered", "9001 9002")
	a.reach.Report("127.0.0.1:9002", false)
	expect("web-2 left out", "9001")
	a.reach.Report("127.0.0.1:9002", true)
	expect("web-2 back", "9001 9002")
}
