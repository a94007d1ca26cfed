package main

import (
	"io"
	"strings"
	"testing"

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
