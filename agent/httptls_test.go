package agent

import (
	"crypto/tls"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/internal/testkit"
)

func TestHTTPTLS(t *testing.T) {
	cert := testkit.SelfSigned(t)
	certFile, keyFile := cert.Write(t, t.TempDir())
	cfg := testConfig(t, "n1", "", nil)
	cfg.HTTPTLSCert, cfg.HTTPTLSKey = certFile, keyFile
	a := startAgent(t, cfg)
	addr := a.HTTPAddr().String()

	// Both HTTP/1.1 and HTTP/2 (which multiplexes many blocking queries on one
	// connection) are served.
	for _, h2 := range []bool{false, true} {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cert.Pool}, ForceAttemptHTTP2: h2}
		hc := &http.Client{Timeout: 10 * time.Second, Transport: tr}
		resp, err := hc.Get("https://" + addr + "/v1/agent/self")
		if err != nil {
			t.Fatalf("HTTPS request (h2 %t): %v", h2, err)
		}
		_ = resp.Body.Close()
		tr.CloseIdleConnections()
		if want := map[bool]int{false: 1, true: 2}[h2]; resp.StatusCode != http.StatusOK || resp.TLS == nil || resp.ProtoMajor != want {
			t.Errorf("HTTPS (h2 %t): %d, %s, TLS %v", h2, resp.StatusCode, resp.Proto, resp.TLS != nil)
		}
	}
	// Plain HTTP is not served: the TLS server answers it with 400.
	plain := &http.Client{Timeout: 10 * time.Second}
	if resp, err := plain.Get("http://" + addr + "/v1/agent/self"); err == nil {
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP answered 200 on a TLS-only API")
		}
	}
}

func TestHTTPTLSConfigErrors(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := testkit.SelfSigned(t).Write(t, dir)
	for _, c := range []struct {
		name, cert, key string
		atNew           bool // refused by New rather than Start
		want            string
	}{
		{"cert without key", certFile, "", true, "--http-tls-key"},
		{"key without cert", "", keyFile, true, "--http-tls-cert"},
		{"missing files", filepath.Join(dir, "nope.pem"), keyFile, false, "nope.pem"},
		{"key is not a key", certFile, certFile, false, "load certificate"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := testConfig(t, "n1", "", nil)
			cfg.HTTPTLSCert, cfg.HTTPTLSKey = c.cert, c.key
			a, err := New(cfg)
			if err == nil {
				err = a.Start(t.Context())
				if err == nil {
					_ = a.Shutdown()
				}
				if c.atNew {
					t.Errorf("New accepted the config")
				}
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error = %v, want one containing %q", err, c.want)
			}
		})
	}
	cfg := testConfig(t, "n1", "", nil)
	cfg.HTTPTokenReads = true
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "--http-token") {
		t.Errorf("token reads without a token: %v", err)
	}
}
