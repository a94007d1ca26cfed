package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/agent"
	"github.com/rumor-sd/rumor/internal/testkit"
)

// result is one CLI run.
type result struct {
	code           int
	stdout, stderr string
}

// rumor runs the CLI in-process with env as its environment.
func rumor(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	return rumorIn(t, env, "", args...)
}

// rumorIn is rumor with stdin.
func rumorIn(t *testing.T, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	var out, errb testkit.Buffer
	code := run(t.Context(), args, strings.NewReader(stdin), &out, &errb, func(k string) string { return env[k] })
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// startAgent starts a dev agent with a data dir on free ports and returns the
// environment that points the CLI at it.
func startAgent(t *testing.T) (*agent.Agent, map[string]string) {
	t.Helper()
	a, err := agent.New(agent.Config{NodeName: "node1", Dev: true, DataDir: t.TempDir(),
		BindPort: 0, HTTPAddr: "127.0.0.1:0"})
	a = testkit.Running(t, a, err)
	return a, map[string]string{"RUMOR_HTTP_ADDR": a.HTTPAddr().String()}
}

func TestClientCommands(t *testing.T) {
	a, env := startAgent(t)
	defFile := filepath.Join(t.TempDir(), "db.json")
	if err := os.WriteFile(defFile, []byte(`{"service": {"name": "db", "id": "db-1", "port": 5432, "tags": ["primary"],
		"checks": [{"id": "db-ttl", "ttl": "30s", "status": "passing"}]}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	multi := filepath.Join(t.TempDir(), "multi.json")
	if err := os.WriteFile(multi, []byte(`{"services": [{"name": "a"}, {"name": "b", "id": "b-1"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	runCases(t, env, []cliCase{
		{"members", []string{"members"}, 0, []string{"NODE", "node1", "alive", "dc1", "127.0.0.1:"}, nil},
		{"no services yet", []string{"services"}, 0, []string{"SERVICE"}, nil},
		{"register", []string{"register", "--name", "web", "--port", "80", "--tag", "v1", "--meta", "team=a"}, 0, []string{"Registered service web (ID web)."}, nil},
		{"register with id", []string{"register", "--name", "web", "--id", "web-2", "--port", "81", "--tag", "v2", "--address", "127.0.0.2"}, 0, []string{"(ID web-2)"}, nil},
		{"register file", []string{"register", "-f", defFile}, 0, []string{"Registered service db (ID db-1)."}, nil},
		{"register file with services", []string{"register", "-f", multi, "--json"}, 0, []string{`"id": "b-1"`, `"name": "a"`}, nil},
		{"services", []string{"services"}, 0, []string{"web", "v1,v2", "db", "primary"}, nil},
		{"services by tag", []string{"services", "--tag", "primary"}, 0, []string{"db"}, nil},
		{"services local", []string{"services", "--local"}, 0, []string{"ID", "web-2", "127.0.0.2", "81", "db-1"}, nil},
		{"deregister", []string{"deregister", "web-2"}, 0, []string{"Deregistered service web-2."}, nil},
		{"deregister unknown", []string{"deregister", "web-2"}, 1, nil, []string{`no service with ID "web-2"`, "rumor services --local"}},
		{"register invalid", []string{"register", "--name", "bad name"}, 1, nil, []string{`the agent refused service "bad name"`, "service.name"}},
		{"register empty file", []string{"register", "-f", "-"}, 2, nil, []string{"-: not a JSON object"}},
		{"register needs name", []string{"register", "--port", "80"}, 2, nil, []string{"--name is required"}},
		{"register file and flags", []string{"register", "-f", defFile, "--name", "x"}, 2, nil, []string{"not both"}},
		{"register missing file", []string{"register", "-f", "/nonexistent.json"}, 2, nil, []string{"no such file"}},
		{"bad flag", []string{"services", "--bogus"}, 2, nil, []string{"unknown flag: --bogus"}},
		{"bad args", []string{"deregister"}, 2, nil, []string{"accepts 1 arg"}},
		{"no agent", []string{"members", "--http-addr", "127.0.0.1:1"}, 3, nil, []string{"no agent at 127.0.0.1:1: is `rumor agent` running?"}},
		// A bad --http-addr is a usage error, not "no agent" (issue 11 item 18).
		{"port out of range", []string{"members", "--http-addr", "127.0.0.1:99999"}, 2, nil, []string{`--http-addr "127.0.0.1:99999": port "99999": want 1–65535`}},
		{"port not a number", []string{"services", "--http-addr", "127.0.0.1:http"}, 2, nil, []string{`--http-addr "127.0.0.1:http"`}},
		{"bad scheme", []string{"members", "--http-addr", "ftp://127.0.0.1:8500"}, 2, nil, []string{`scheme "ftp": want http:// or https://`}},
		{"version", []string{"version"}, 0, []string{"rumor dev"}, nil},
		{"keygen", []string{"keygen"}, 0, []string{"="}, nil},
	})
	r := rumorIn(t, env, `{"service": {"name": "x", "bogus": 1}}`, "register", "-f", "-")
	if r.code != 1 || !strings.Contains(r.stderr, `the agent refused service "x"`) || !strings.Contains(r.stderr, `unknown field "bogus"`) {
		t.Errorf("register from stdin with an unknown field: exit %d, stderr %s", r.code, r.stderr)
	}
	// The registrations reached the agent, which persisted them.
	ids := []string{}
	for _, s := range a.LocalServices() {
		ids = append(ids, s.ID)
	}
	if strings.Join(ids, ",") != "a,b-1,db-1,web" {
		t.Errorf("local services = %v", ids)
	}
}

func TestJSONOutput(t *testing.T) {
	_, env := startAgent(t)
	if r := rumor(t, env, "register", "--name", "web", "--port", "80", "--tag", "v1"); r.code != 0 {
		t.Fatalf("register: %+v", r)
	}
	r := rumor(t, env, "services", "--json")
	var svcs map[string][]string
	if err := json.Unmarshal([]byte(r.stdout), &svcs); err != nil || len(svcs["web"]) != 1 || svcs["web"][0] != "v1" {
		t.Errorf("services --json = %q (%v)", r.stdout, err)
	}
	r = rumor(t, env, "members", "--json")
	var ms []memberJSON
	if err := json.Unmarshal([]byte(r.stdout), &ms); err != nil || len(ms) != 1 || ms[0].Name != "node1" || ms[0].Status != "alive" {
		t.Errorf("members --json = %q (%v)", r.stdout, err)
	}
	r = rumor(t, env, "services", "--local", "--json")
	var local []localService
	if err := json.Unmarshal([]byte(r.stdout), &local); err != nil || len(local) != 1 || local[0].ID != "web" || local[0].Port != 80 {
		t.Errorf("services --local --json = %q (%v)", r.stdout, err)
	}
}

// TestServicesLocalName: `services --local` shows each service's name, in the
// SERVICE column and as "name" in JSON, which were empty (issue 11 item 16).
func TestServicesLocalName(t *testing.T) {
	_, env := startAgent(t)
	if r := rumor(t, env, "register", "--name", "web", "--id", "web-1", "--port", "80"); r.code != 0 {
		t.Fatalf("register: %+v", r)
	}
	r := rumor(t, env, "services", "--local", "--json")
	var local []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &local); err != nil || len(local) != 1 || local[0]["name"] != "web" || local[0]["id"] != "web-1" {
		t.Errorf("services --local --json = %q (%v), want name web, id web-1", r.stdout, err)
	}
	r = rumor(t, env, "services", "--local")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 2 || !slices.Equal(strings.Fields(lines[1])[:2], []string{"web-1", "web"}) {
		t.Errorf("services --local:\n%s\nwant a row web-1 web …", r.stdout)
	}
}

func TestHelpTeaches(t *testing.T) {
	for _, cmd := range []string{"agent", "members", "services", "register", "deregister", "keygen"} {
		r := rumor(t, nil, cmd, "--help")
		if r.code != 0 || !strings.Contains(r.stdout, "Examples:") || !strings.Contains(r.stdout, "rumor "+cmd) {
			t.Errorf("rumor %s --help: exit %d, output lacks examples:\n%s", cmd, r.code, r.stdout)
		}
	}
}

// TestAgentCommand runs `rumor agent --dev` in-process, talks to it with the client
// commands, then interrupts it: it must leave gracefully and exit 0.
func TestAgentCommand(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var out, errb testkit.Buffer
	done := make(chan int, 1)
	dir := t.TempDir()
	go func() {
		done <- run(ctx, []string{"agent", "--dev", "--node", "dev1", "--bind", "127.0.0.1:0",
			"--http-addr", "127.0.0.1:0", "--data-dir", dir, "--node-meta", "rack=r1", "--dns-addr", "127.0.0.1:0"}, strings.NewReader(""), &out, &errb, func(string) string { return "" })
	}()
	addr := waitForAgent(t, &errb, done)
	env := map[string]string{"RUMOR_HTTP_ADDR": addr}
	if r := rumor(t, env, "register", "--name", "web", "--port", "80"); r.code != 0 {
		t.Fatalf("register: %+v", r)
	}
	if r := rumor(t, env, "members"); r.code != 0 || !strings.Contains(r.stdout, "dev1") {
		t.Errorf("members: %+v", r)
	}
	if !strings.Contains(errb.String(), "Dev agent ready") {
		t.Errorf("dev banner missing:\n%s", errb.String())
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("agent exit code %d, want 0:\n%s", code, errb.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("agent did not stop")
	}
	if !strings.Contains(errb.String(), "leaving the pool") {
		t.Errorf("no graceful leave in the log:\n%s", errb.String())
	}
	// The registration was persisted in the data dir.
	b, err := os.ReadFile(filepath.Join(dir, "services.log"))
	if err != nil || !strings.Contains(string(b), `"Name":"web"`) {
		t.Errorf("services.log = %s (%v)", b, err)
	}
}

func TestAgentCommandErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"bad bind", []string{"agent", "--dev", "--bind", "nowhere"}, 2, "--bind"},
		{"bad advertise", []string{"agent", "--dev", "--advertise", "x"}, 2, "--advertise"},
		{"bad profile", []string{"agent", "--dev", "--gossip-profile", "fast"}, 2, "gossip profile"},
		{"bad key", []string{"agent", "--dev", "--encrypt", "short"}, 2, "encrypt key"},
		{"bad meta", []string{"agent", "--dev", "--node-meta", "x"}, 2, "--node-meta"},
		{"bad log level", []string{"agent", "--dev", "--log-level", "loud"}, 2, "--log-level"},
		{"tls cert without key", []string{"agent", "--dev", "--http-tls-cert", "c.pem"}, 2, "--http-tls-cert and --http-tls-key go together"},
		{"token reads without token", []string{"agent", "--dev", "--http-token-reads"}, 2, "--http-token-reads needs a token"},
		{"join unreachable", []string{"agent", "--dev", "--bind", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--dns-addr", "127.0.0.1:0", "--join", "127.0.0.1:1"}, 1, "retry-join"},
		{"docker host without docker", []string{"agent", "--dev", "--docker-host", "/run/podman/podman.sock"}, 2, "add --docker"},
		{"docker bad host", []string{"agent", "--dev", "--bind", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--dns-addr", "127.0.0.1:0", "--docker", "--docker-host", "ftp://engine"}, 1, `engine address "ftp://engine"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := rumor(t, nil, c.args...)
			if r.code != c.code || !strings.Contains(r.stderr, c.want) {
				t.Errorf("exit %d, stderr:\n%s\nwant exit %d mentioning %q", r.code, r.stderr, c.code, c.want)
			}
		})
	}
}

func TestAgentFlagEnableScriptChecks(t *testing.T) {
	c := &cli{stdout: io.Discard, stderr: io.Discard, getenv: func(string) string { return "" }}
	for _, on := range []bool{false, true} {
		cfg, _, err := agentConfig(c, &agentFlags{dev: true, enableScriptChecks: on})
		if err != nil {
			t.Fatal(err)
		}
		if cfg.EnableScriptChecks != on {
			t.Errorf("--enable-script-checks=%t: Config.EnableScriptChecks = %t", on, cfg.EnableScriptChecks)
		}
	}
	for _, on := range []bool{false, true} {
		cfg, _, err := agentConfig(c, &agentFlags{dev: true, enableLocalScriptChecks: on})
		if err != nil {
			t.Fatal(err)
		}
		if cfg.EnableLocalScriptChecks != on || cfg.EnableScriptChecks {
			t.Errorf("--enable-local-script-checks=%t: Config.EnableLocalScriptChecks = %t, EnableScriptChecks = %t", on, cfg.EnableLocalScriptChecks, cfg.EnableScriptChecks)
		}
	}
	cmd := newRootCmd(c)
	agentCmd, _, err := cmd.Find([]string{"agent"})
	if err != nil || agentCmd.Flags().Lookup("enable-script-checks") == nil || agentCmd.Flags().Lookup("enable-local-script-checks") == nil {
		t.Errorf("agent lacks --enable-script-checks or --enable-local-script-checks (%v)", err)
	}
	// --help says what each allows, and that the API needs a token (issue 11 item 14).
	r := rumor(t, nil, "agent", "--help")
	for _, want := range []string{"--enable-local-script-checks", "config files only", "only when --http-token is set"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("agent --help lacks %q", want)
		}
	}
}
