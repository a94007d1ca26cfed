package main

import (
	"strings"
	"testing"

	"github.com/rumor-sd/rumor/agent"
	"github.com/rumor-sd/rumor/internal/testkit"
)

func TestClientSendsToken(t *testing.T) {
	a, err := agent.New(agent.Config{NodeName: "node1", Dev: true, BindPort: 0, HTTPAddr: "127.0.0.1:0", HTTPToken: "s3cret"})
	a = testkit.Running(t, a, err)
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
	cfg, _, err := resolve(t, env, "--dev", "--http-token-reads", "--http-tls-cert", "c.pem", "--http-tls-key", "k.pem")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPToken != "from-env" || !cfg.HTTPTokenReads || cfg.HTTPTLSCert != "c.pem" || cfg.HTTPTLSKey != "k.pem" {
		t.Errorf("config = token %q reads %t cert %q key %q", cfg.HTTPToken, cfg.HTTPTokenReads, cfg.HTTPTLSCert, cfg.HTTPTLSKey)
	}
	cfg, _, err = resolve(t, env, "--dev", "--http-token", "from-flag")
	if err != nil || cfg.HTTPToken != "from-flag" {
		t.Errorf("--http-token: %q, %v; the flag wins over the environment", cfg.HTTPToken, err)
	}
	if _, _, err := resolve(t, nil, "--dev", "--http-token-reads"); err == nil || !strings.Contains(err.Error(), "needs a token") {
		t.Errorf("--http-token-reads without a token: %v, want an error saying it needs one", err)
	}
	if _, _, err := resolve(t, nil, "--dev", "--http-tls-cert", "c.pem"); err == nil || !strings.Contains(err.Error(), "go together") {
		t.Errorf("--http-tls-cert alone: %v, want an error saying both are needed", err)
	}
}

func TestClientHTTPS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := testkit.SelfSigned(t).Write(t, dir)
	a, err := agent.New(agent.Config{NodeName: "node1", Dev: true, BindPort: 0, HTTPAddr: "127.0.0.1:0",
		HTTPTLSCert: certFile, HTTPTLSKey: keyFile})
	a = testkit.Running(t, a, err)
	env := map[string]string{"RUMOR_HTTP_ADDR": "https://" + a.HTTPAddr().String()}
	// TLS failures say what failed and how to fix it, not "no agent" (issue 11 item 17).
	if r := rumor(t, env, "members"); r.code != 1 || !strings.Contains(r.stderr, "TLS: ") ||
		!strings.Contains(r.stderr, "does not trust") || !strings.Contains(r.stderr, "RUMOR_HTTP_CACERT") {
		t.Errorf("members against an untrusted certificate: exit %d, stderr %q; want 1, a TLS error naming RUMOR_HTTP_CACERT", r.code, r.stderr)
	}
	if r := rumor(t, map[string]string{"RUMOR_HTTP_ADDR": a.HTTPAddr().String()}, "members"); r.code != 1 ||
		!strings.Contains(r.stderr, "serves HTTPS: use https://") {
		t.Errorf("members over http:// against an HTTPS agent: exit %d, stderr %q; want 1 and use https://", r.code, r.stderr)
	}
	r := rumor(t, map[string]string{"RUMOR_HTTP_ADDR": a.HTTPAddr().String()}, "watch", "services")
	if r.code != 1 || !strings.Contains(r.stderr, "serves HTTPS") {
		t.Errorf("watch over http:// against an HTTPS agent: exit %d, stderr %q", r.code, r.stderr)
	}
	_, plainEnv := startAgent(t)
	plainEnv["RUMOR_HTTP_ADDR"] = "https://" + plainEnv["RUMOR_HTTP_ADDR"]
	if r := rumor(t, plainEnv, "members"); r.code != 1 || !strings.Contains(r.stderr, "serves plain HTTP, not HTTPS: use http://") {
		t.Errorf("members over https:// against a plain agent: exit %d, stderr %q; want 1 and use http://", r.code, r.stderr)
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

// TestHTTPSecurityFromFiles: http_token, http_token_reads, cert_file and key_file come
// from config files, below RUMOR_HTTP_TOKEN and the flags.
func TestHTTPSecurityFromFiles(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "http.json", `{"http_token": "from-file", "http_token_reads": true,
		"cert_file": "file.pem", "key_file": "file-key.pem"}`)
	cfg, _, err := resolve(t, nil, "--dev", "--config-file", file)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPToken != "from-file" || !cfg.HTTPTokenReads || cfg.HTTPTLSCert != "file.pem" || cfg.HTTPTLSKey != "file-key.pem" {
		t.Errorf("from the file: token %q reads %t cert %q key %q", cfg.HTTPToken, cfg.HTTPTokenReads, cfg.HTTPTLSCert, cfg.HTTPTLSKey)
	}
	cfg, _, err = resolve(t, map[string]string{"RUMOR_HTTP_TOKEN": "from-env"}, "--dev", "--config-file", file)
	if err != nil || cfg.HTTPToken != "from-env" {
		t.Errorf("RUMOR_HTTP_TOKEN over the file: %q, %v", cfg.HTTPToken, err)
	}
	cfg, _, err = resolve(t, map[string]string{"RUMOR_HTTP_TOKEN": "from-env"}, "--dev", "--config-file", file,
		"--http-token", "from-flag", "--http-token-reads=false", "--http-tls-cert", "flag.pem", "--http-tls-key", "flag-key.pem")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPToken != "from-flag" || cfg.HTTPTokenReads || cfg.HTTPTLSCert != "flag.pem" || cfg.HTTPTLSKey != "flag-key.pem" {
		t.Errorf("flags over the file: token %q reads %t cert %q key %q", cfg.HTTPToken, cfg.HTTPTokenReads, cfg.HTTPTLSCert, cfg.HTTPTLSKey)
	}
	half := writeFile(t, dir, "half.json", `{"cert_file": "file.pem"}`)
	if _, _, err := resolve(t, nil, "--dev", "--config-file", half); err == nil || !strings.Contains(err.Error(), "go together") {
		t.Errorf("cert_file without key_file: %v, want an error saying both are needed", err)
	}
}
