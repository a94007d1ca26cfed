package ui_test

import (
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/rumor-sd/rumor/catalog/catalogtest"
	"github.com/rumor-sd/rumor/internal/testkit"
	"github.com/rumor-sd/rumor/ui"
)

// codeLines returns the copyable lines of a page (<div class="copy"><code>).
func codeLines(doc *html.Node) []string {
	var out []string
	for _, n := range find(doc, func(n *html.Node) bool { return n.Data == "code" }) {
		out = append(out, text(n))
	}
	return out
}

// TestDigLine: with Config.DNSAddr a service's page has a copyable dig line asking
// the agent's DNS server for the service's SRV records (Consul's
// <name>.service.<domain>); a wildcard address shows as loopback, port 53 needs no
// -p; without DNSAddr, or for a name that is no DNS label, there is none.
func TestDigLine(t *testing.T) {
	for _, c := range []struct {
		name, addr, domain, service, want string
	}{
		{"loopback", "127.0.0.1:8600", "", "web", "dig @127.0.0.1 -p 8600 web.service.consul SRV"},
		{"wildcard", "0.0.0.0:8600", "", "web", "dig @127.0.0.1 -p 8600 web.service.consul SRV"},
		{"IPv6 wildcard, port 53, own domain", "[::]:53", "rumor.", "web", "dig @::1 web.service.rumor SRV"},
		{"no DNS", "", "", "web", ""},
		{"not a DNS label", "127.0.0.1:8600", "", "web_api", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, 1, ui.Config{DNSAddr: c.addr, DNSDomain: c.domain})
			if c.service != "web" {
				w := f.ws["n000"]
				f.apply(t, w.PutService(catalogtest.Service(c.service, c.service, 80)))
			}
			doc := f.waitFor(t, "/ui/services/"+c.service, "the service's page", func(d *html.Node) bool {
				return len(find(d, func(n *html.Node) bool { return n.Data == "tr" && attr(n, "data-instance") != "" })) > 0
			})
			var got string
			for _, l := range codeLines(doc) {
				if strings.HasPrefix(l, "dig ") {
					got = l
				}
			}
			if got != c.want {
				t.Errorf("dig line %q, want %q (copyable lines %q)", got, c.want, codeLines(doc))
			}
		})
	}
	f := newFixture(t, 0, ui.Config{})
	if _, err := ui.New(ui.Config{Catalog: f.cat, Agent: f.ag, DNSAddr: "8600"}); err == nil || !strings.Contains(err.Error(), "DNSAddr") {
		t.Errorf("DNSAddr without a host: %v, want an error naming DNSAddr", err)
	}
}

// rateRow returns the rate shown in the agent page's row named th, "" if none.
func rateRow(doc *html.Node, th string) string {
	for _, tr := range find(doc, func(n *html.Node) bool { return n.Data == "tr" }) {
		cells := find(tr, func(n *html.Node) bool { return n.Data == "th" || n.Data == "td" })
		if len(cells) >= 2 && text(cells[0]) == th {
			return strings.TrimSpace(text(cells[1]))
		}
	}
	return ""
}

// TestDNSRate: with Config.DNSAddr the agent's page shows the DNS query rate from
// Counters.DNSQueries (a sparkline and the last rate); without it, no DNS row.
func TestDNSRate(t *testing.T) {
	f := newFixture(t, 1, ui.Config{DNSAddr: "127.0.0.1:8600"})
	testkit.Eventually(t, 5*time.Second, "100 DNS queries a second on the agent's page", func() bool {
		f.clk.Advance(time.Second)
		f.ag.mu.Lock()
		f.ag.dns += 100
		f.ag.mu.Unlock()
		_, doc := f.get(t, "/ui/agent")
		return rateRow(doc, "DNS queries") == "100/s"
	})
	g := newFixture(t, 1, ui.Config{})
	_, doc := g.get(t, "/ui/agent")
	if rateRow(doc, "HTTP requests") == "" {
		t.Fatalf("no HTTP requests row on the agent's page")
	}
	if got := rateRow(doc, "DNS queries"); got != "" {
		t.Errorf("without DNSAddr the agent's page shows a DNS rate %q", got)
	}
}
