package health

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/definition"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// prober runs one probe of a check. The context carries the run's timeout and is
// cancelled when the check is removed or the Manager closed; probe must return soon
// after. It returns the raw result, before anti-flapping, and an output for humans.
// A prober is used by one goroutine at a time.
type prober interface {
	probe(ctx context.Context) (catalog.Status, string)
}

// newProber builds the prober for a valid, defaulted definition of an interval check.
func (m *Manager) newProber(d *definition.Check) prober {
	switch d.Type() {
	case definition.TypeHTTP:
		t := m.httpTransport
		if d.TLSSkipVerify {
			t = m.httpInsecureTransport
		}
		return &httpProber{client: &http.Client{Transport: t}, method: d.Method, url: d.HTTP, header: d.Header, body: d.Body}
	case definition.TypeTCP:
		return &tcpProber{addr: d.TCP}
	case definition.TypeGRPC:
		target, service, _ := strings.Cut(d.GRPC, "/")
		return &grpcProber{raw: d.GRPC, target: target, service: service, useTLS: d.GRPCUseTLS, skipVerify: d.TLSSkipVerify}
	case definition.TypeScript:
		return &scriptProber{args: d.ScriptArgs, timeout: d.Timeout}
	}
	return nil // ttl checks have no prober
}

// newHTTPTransport returns the transport HTTP checks share. Keep-alives are off, as in
// Consul: every probe opens a fresh connection, so it tests what a new client would
// meet, and 1,000 checks hold no idle connections. Proxies are not used: a check
// probes the address it names.
func newHTTPTransport(skipVerify bool) *http.Transport {
	return &http.Transport{
		DialContext:         (&net.Dialer{}).DialContext,
		DisableKeepAlives:   true,
		TLSHandshakeTimeout: DefaultTimeout,
		// Skipping verification only where the definition asks for it (TLSSkipVerify).
		TLSClientConfig: &tls.Config{InsecureSkipVerify: skipVerify},
	}
}

// httpProber: 2xx is passing, 429 Too Many Requests warning, anything else critical.
type httpProber struct {
	client *http.Client
	method string
	url    string
	header map[string][]string
	body   string
}

func (p *httpProber) probe(ctx context.Context) (catalog.Status, string) {
	var body io.Reader
	if p.body != "" {
		body = strings.NewReader(p.body)
	}
	req, err := http.NewRequestWithContext(ctx, p.method, p.url, body)
	if err != nil {
		return catalog.StatusCritical, fmt.Sprintf("HTTP %s %s: %v", p.method, p.url, err)
	}
	for k, vs := range p.header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if host := req.Header.Get("Host"); host != "" {
		req.Host = host
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "rumor health check")
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "text/plain, text/*, */*")
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return catalog.StatusCritical, fmt.Sprintf("HTTP %s %s: %v", p.method, p.url, err)
	}
	defer resp.Body.Close()
	// A body cut short by the timeout still leaves a status code worth reporting.
	b, _ := io.ReadAll(io.LimitReader(resp.Body, HTTPBodyLimit))
	out := fmt.Sprintf("HTTP %s %s: %s Output: %s", p.method, p.url, resp.Status, b)
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode <= 299:
		return catalog.StatusPassing, out
	case resp.StatusCode == http.StatusTooManyRequests:
		return catalog.StatusWarning, out
	default:
		return catalog.StatusCritical, out
	}
}

// tcpProber: passing when a connection is established within the timeout.
type tcpProber struct{ addr string }

func (p *tcpProber) probe(ctx context.Context) (catalog.Status, string) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return catalog.StatusCritical, fmt.Sprintf("TCP connect %s: %v", p.addr, err)
	}
	conn.Close()
	return catalog.StatusPassing, fmt.Sprintf("TCP connect %s: Success", p.addr)
}

// grpcProber speaks the standard grpc.health.v1 protocol: SERVING is passing, any
// other answer or error critical. It dials afresh on every probe, as Consul does, so
// a server that stopped accepting connections is noticed.
type grpcProber struct {
	raw        string // as written in the definition, for the output
	target     string // host:port
	service    string // "" asks about the server as a whole
	useTLS     bool
	skipVerify bool
}

func (p *grpcProber) probe(ctx context.Context) (catalog.Status, string) {
	creds := insecure.NewCredentials()
	if p.useTLS {
		// Skipping verification only where the definition asks for it (TLSSkipVerify).
		creds = credentials.NewTLS(&tls.Config{InsecureSkipVerify: p.skipVerify})
	}
	// passthrough: resolve the host at dial time with the system resolver, without a
	// resolver goroutine per probe.
	conn, err := grpc.NewClient("passthrough:///"+p.target, grpc.WithTransportCredentials(creds))
	if err != nil {
		return catalog.StatusCritical, fmt.Sprintf("gRPC %s: %v", p.raw, err)
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: p.service})
	if err != nil {
		return catalog.StatusCritical, fmt.Sprintf("gRPC %s: %v", p.raw, err)
	}
	out := fmt.Sprintf("gRPC %s: %s", p.raw, resp.GetStatus())
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return catalog.StatusCritical, out
	}
	return catalog.StatusPassing, out
}

// truncationMark ends an output that was cut to catalog.MaxOutputLen.
const truncationMark = " ... (truncated)"

// clampOutput makes an output fit a catalog record: valid UTF-8, at most
// catalog.MaxOutputLen bytes, cut at a rune boundary and marked when cut.
func clampOutput(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if len(s) <= catalog.MaxOutputLen {
		return s
	}
	cut := catalog.MaxOutputLen - len(truncationMark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + truncationMark
}
