package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/agent"
)

func TestClientSendsToken(t *testing.T) {
	a, err := agent.New(agent.Config{NodeName: "node1", Dev: true, BindPort: 0, HTTPAddr: "127.0.0.1:0", HTTPToken: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := a.Shutdown(); err != nil {
			t.Error(err)
		}
	})
	env := map[string]string{"RUMOR_HTTP_ADDR": a.HTTPAddr().String()}
	r := rumor(t, env, "register", "--name", "web")
	if r.code != 1 || !strings.Contains(r.stderr, "Permission denied") {
		t.Errorf("register without token: exit %d, stderr %q; want 1 and Permission denied", r.code, r.stderr)
	}
	env["RUMOR_HTTP_TOKEN"] = "s3cret"
	if r := rumor(t, env, "register", "--name", "web"); r.code != 0 {
		t.Errorf("register with RUMOR_HTTP_TOKEN: exit %d, stderr %q", r.code, r.stderr)
	}
	if n := len(a.LocalServices()); n != 1 {
		t.Errorf("%d services, want 1", n)
	}
}

func TestAgentTokenAndTLSFlags(t *testing.T) {
	env := map[string]string{"RUMOR_HTTP_TOKEN": "from-env"}
	c := &cli{stdout: io.Discard, stderr: io.Discard, getenv: func(k string) string { return env[k] }}
	cfg, _, err := agentConfig(c, &agentFlags{dev: true, httpTokenReads: true, httpTLSCert: "c.pem", httpTLSKey: "k.pem"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPToken != "from-env" || !cfg.HTTPTokenReads || cfg.HTTPTLSCert != "c.pem" || cfg.HTTPTLSKey != "k.pem" {
		t.Errorf("config = token %q reads %t cert %q key %q", cfg.HTTPToken, cfg.HTTPTokenReads, cfg.HTTPTLSCert, cfg.HTTPTLSKey)
	}
	cfg, _, err = agentConfig(c, &agentFlags{dev: true, httpToken: "from-flag"})
	if err != nil || cfg.HTTPToken != "from-flag" {
		t.Errorf("--http-token: %q, %v; the flag wins over the environment", cfg.HTTPToken, err)
	}
}

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key into dir.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for f, b := range map[string]*pem.Block{certFile: {Type: "CERTIFICATE", Bytes: der}, keyFile: {Type: "EC PRIVATE KEY", Bytes: kb}} {
		if err := os.WriteFile(f, pem.EncodeToMemory(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return certFile, keyFile
}

func TestClientHTTPS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := selfSigned(t, dir)
	a, err := agent.New(agent.Config{NodeName: "node1", Dev: true, BindPort: 0, HTTPAddr: "127.0.0.1:0",
		HTTPTLSCert: certFile, HTTPTLSKey: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := a.Shutdown(); err != nil {
			t.Error(err)
		}
	})
	env := map[string]string{"RUMOR_HTTP_ADDR": "https://" + a.HTTPAddr().String()}
	if r := rumor(t, env, "members"); r.code == 0 {
		t.Errorf("members against an untrusted certificate: exit 0, want a failure")
	}
	env["RUMOR_HTTP_CACERT"] = certFile
	if r := rumor(t, env, "members"); r.code != 0 || !strings.Contains(r.stdout, "node1") {
		t.Errorf("members with RUMOR_HTTP_CACERT: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	env["RUMOR_HTTP_CACERT"] = keyFile
	if r := rumor(t, env, "members"); r.code != 2 || !strings.Contains(r.stderr, "RUMOR_HTTP_CACERT") {
		t.Errorf("members with a CA file that is not a certificate: exit %d, stderr %q; want 2 naming RUMOR_HTTP_CACERT", r.code, r.stderr)
	}
}
