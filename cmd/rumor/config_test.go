package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/rumor-sd/rumor/agent"
	"github.com/rumor-sd/rumor/internal/testkit"
)

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// resolve parses agent flags with env as the environment and returns the config the
// agent would get.
func resolve(t *testing.T, env map[string]string, args ...string) (agent.Config, slog.Level, error) {
	t.Helper()
	c := &cli{stdout: io.Discard, stderr: io.Discard, getenv: func(k string) string { return env[k] }}
	fs := pflag.NewFlagSet("agent", pflag.ContinueOnError)
	f := &agentFlags{fs: fs}
	addAgentFlags(fs, f)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	if err := applyEnv(c, fs); err != nil {
		return agent.Config{}, 0, err
	}
	cfg, level, err := agentConfig(c, f)
	if err != nil {
		return cfg, 0, err
	}
	return cfg, level.Level(), nil
}

// TestPrecedence: flags > RUMOR_* environment > config files > defaults, setting by
// setting.
func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "agent.json", `{"node_name": "file-node", "datacenter": "file-dc", "data_dir": "/file",
		"log_level": "warn", "retry_join": ["file-peer"], "ports": {"http": 8600, "serf_lan": 8301},
		"node_meta": {"rack": "file", "zone": "file"}, "enable_script_checks": true, "reconnect_timeout": "1h"}`)
	env := map[string]string{"RUMOR_DATACENTER": "env-dc", "RUMOR_RETRY_JOIN": "env-1, env-2", "RUMOR_LOG_LEVEL": "error",
		"RUMOR_CONFIG_FILE": file, "RUMOR_ENABLE_SCRIPT_CHECKS": "false"}

	cfg, level, err := resolve(t, env, "--datacenter", "flag-dc", "--bind", "10.0.0.1", "--node-meta", "rack=flag")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ what, got, want string }{
		{"datacenter (flag > env > file)", cfg.Datacenter, "flag-dc"},
		{"retry_join (env > file)", strings.Join(cfg.RetryJoin, ","), "env-1,env-2"},
		{"log level (env > file)", level.String(), "ERROR"},
		{"node name (file > default)", cfg.NodeName, "file-node"},
		{"data dir (file)", cfg.DataDir, "/file"},
		{"http addr (file ports.http)", cfg.HTTPAddr, "127.0.0.1:8600"},
		{"bind (flag IP, file port)", cfg.BindAddr + ":" + itoa(cfg.BindPort), "10.0.0.1:8301"},
		{"node meta rack (flag)", cfg.NodeMeta["rack"], "flag"},
		{"node meta zone (file)", cfg.NodeMeta["zone"], "file"},
		{"script checks (env false > file true)", boolStr(cfg.EnableScriptChecks), "false"},
		{"reap after (file)", cfg.ReapAfter.String(), "1h0m0s"},
		{"gossip profile (default)", cfg.GossipProfile, ""},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
		}
	}
	if cfg.ConfigServices == nil {
		t.Error("no ConfigServices loader with a config file")
	}

	// Without env and flags, the file decides; without the file, defaults.
	cfg, level, err = resolve(t, map[string]string{"RUMOR_CONFIG_FILE": file})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Datacenter != "file-dc" || level != slog.LevelWarn || !slices.Equal(cfg.RetryJoin, []string{"file-peer"}) || !cfg.EnableScriptChecks {
		t.Errorf("file only: %+v, level %v", cfg, level)
	}
	cfg, level, err = resolve(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Datacenter != "" || cfg.NodeName != "" || cfg.BindPort != agent.DefaultBindPort || level != slog.LevelInfo || cfg.ConfigServices != nil {
		t.Errorf("defaults: %+v, level %v", cfg, level)
	}
	// RUMOR_HTTP_ADDR (env) beats the file's ports.http.
	cfg, _, err = resolve(t, map[string]string{"RUMOR_CONFIG_FILE": file, "RUMOR_HTTP_ADDR": "127.0.0.1:9999"})
	if err != nil || cfg.HTTPAddr != "127.0.0.1:9999" {
		t.Errorf("RUMOR_HTTP_ADDR: %q, %v", cfg.HTTPAddr, err)
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func boolStr(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

func TestPrecedenceErrors(t *testing.T) {
	dir := t.TempDir()
	bad := writeFile(t, dir, "bad.json", `{"datacenter": "a b", "service": {"name": "web", "check": {"ttl": "10"}}}`)
	for _, c := range []struct {
		name string
		env  map[string]string
		args []string
		want []string
	}{
		{"bad env duration", map[string]string{"RUMOR_REAP_AFTER": "soon"}, nil, []string{`RUMOR_REAP_AFTER="soon"`}},
		{"bad env bool", map[string]string{"RUMOR_DEV": "maybe"}, nil, []string{`RUMOR_DEV="maybe"`}},
		{"bad file", nil, []string{"--config-file", bad}, []string{
			bad + `: datacenter: "a b" must be 1–64 letters`,
			bad + `: service.check.ttl: "10" is not a duration (use 10s)`}},
		{"missing dir", map[string]string{"RUMOR_CONFIG_DIR": "/nonexistent"}, nil, []string{"/nonexistent: cannot read"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := resolve(t, c.env, c.args...)
			var ee exitError
			if err == nil || !asExit(err, &ee) || ee.code != exitUsage {
				t.Fatalf("err = %v, want a usage error", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
	// Through the CLI: exit 2 and every problem on stderr.
	r := rumor(t, nil, "agent", "--dev", "--config-file", bad)
	if r.code != exitUsage || !strings.Contains(r.stderr, "service.check.ttl") || !strings.Contains(r.stderr, "datacenter") {
		t.Errorf("agent with a bad file: exit %d, stderr:\n%s", r.code, r.stderr)
	}
}

func asExit(err error, ee *exitError) bool {
	e, ok := err.(exitError)
	if ok {
		*ee = e
	}
	return ok
}

func TestValidateCommand(t *testing.T) {
	good := t.TempDir()
	writeFile(t, good, "web.json", `{"service": {"name": "web", "port": 80, "check": {"http": "http://localhost/", "interval": "10s"}}}`)
	writeFile(t, good, "db.hcl", "services {\n name = \"db\"\n}\nservices {\n name = \"cache\"\n id = \"cache-1\"\n}\n")
	bad := t.TempDir()
	badFile := writeFile(t, bad, "web.json", `{"services": [{"name": "ok"}, {"name": "web", "checks": [{"tcp": "x:1", "interval": "10"}]}], "bogus": 1}`)
	script := writeFile(t, t.TempDir(), "s.json", `{"service": {"name": "s", "check": {"args": ["true"], "interval": "5s"}}}`)
	// 8 MB of nested blocks overflowed the stack, a fatal error (issue 11 item 7).
	deep := writeFile(t, t.TempDir(), "deep.hcl", strings.Repeat("a {\n", 1_400_000)+strings.Repeat("}\n", 1_400_000))

	runCases(t, nil, []cliCase{
		{"valid dir", []string{"validate", good}, 0, []string{"Configuration is valid: 2 files, 3 services (db, cache-1, web)."}, nil},
		{"invalid", []string{"validate", good, bad}, 1, []string{
			badFile + `: bogus: unknown key`,
			badFile + `: services[1].checks[0].interval: "10" is not a duration (use 10s)`}, []string{"2 problems found"}},
		{"script checks off", []string{"validate", script}, 1, []string{"service.check.args: script checks are disabled"}, nil},
		{"script checks on", []string{"validate", "--enable-script-checks", script}, 0, []string{"valid: 1 file, 1 service (s)"}, nil},
		{"local script checks on", []string{"validate", "--enable-local-script-checks", script}, 0, []string{"valid: 1 file, 1 service (s)"}, nil},
		{"nested too deep", []string{"validate", deep}, 1, []string{deep + ": nested more than 64 levels deep"}, nil},
		{"missing", []string{"validate", "/nonexistent.json"}, 1, []string{"/nonexistent.json: cannot read"}, nil},
		{"no args", []string{"validate"}, 2, nil, []string{"requires at least 1 arg"}},
	})

	r := rumor(t, nil, "validate", "--json", bad)
	var v validateJSON
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || r.code != 1 || v.Valid || len(v.Errors) != 2 ||
		v.Errors[1].Field != "services[1].checks[0].interval" || v.Errors[1].File != badFile {
		t.Errorf("validate --json (bad): exit %d, %+v (%v)\n%s", r.code, v, err, r.stdout)
	}
	r = rumor(t, nil, "validate", "--json", good)
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || r.code != 0 || !v.Valid || len(v.Files) != 2 || len(v.Errors) != 0 {
		t.Errorf("validate --json (good): exit %d, %+v (%v)", r.code, v, err)
	}
}

// TestReloadAndSIGHUP runs `rumor agent --config-dir` in-process, then edits the
// directory and reloads with `rumor reload` and with SIGHUP.
func TestReloadAndSIGHUP(t *testing.T) {
	confDir := t.TempDir()
	writeFile(t, confDir, "web.json", `{"service": {"name": "web", "port": 80, "check": {"id": "web-ttl", "ttl": "1h"}}}`)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var out, errb testkit.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"agent", "--dev", "--node", "dev1", "--bind", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
			"--data-dir", t.TempDir(), "--dns-addr", "127.0.0.1:0"}, strings.NewReader(""), &out, &errb,
			func(k string) string { return map[string]string{"RUMOR_CONFIG_DIR": confDir}[k] })
	}()
	addr := waitForAgent(t, &errb, done)
	env := map[string]string{"RUMOR_HTTP_ADDR": addr}
	local := func() string { return rumor(t, env, "services", "--local").stdout }
	if !strings.Contains(local(), "web") {
		t.Fatalf("config service missing after start:\n%s", local())
	}
	if r := rumor(t, env, "register", "--name", "manual", "--port", "90"); r.code != 0 {
		t.Fatalf("register: %+v", r)
	}
	if err := newClient(&clientFlags{httpAddr: addr}).do(ctx, "PUT", "/v1/agent/check/pass/web-ttl", nil, nil); err != nil {
		t.Fatal(err)
	}

	// rumor reload: db added, web unchanged (keeps passing).
	writeFile(t, confDir, "db.hcl", "service {\n name = \"db\"\n port = 5432\n}\n")
	r := rumor(t, env, "reload")
	if r.code != 0 || !strings.Contains(r.stdout, "Reloaded: 1 (db) added, 0 changed, 0 removed, 1 unchanged.") {
		t.Fatalf("reload: %+v", r)
	}
	if s := local(); !strings.Contains(s, "db") || !strings.Contains(s, "manual") {
		t.Errorf("services after reload:\n%s", s)
	}
	if st := checkStatusOf(t, addr, "web-ttl"); st != "passing" {
		t.Errorf("web-ttl = %q after reload, want passing kept", st)
	}

	// An invalid file: exit 1 naming file and field; nothing changes.
	bad := writeFile(t, confDir, "zz-bad.json", `{"service": {"name": "x", "check": {"ttl": "10"}}}`)
	r = rumor(t, env, "reload")
	if r.code != 1 || !strings.Contains(r.stderr, bad+`: service.check.ttl: "10" is not a duration (use 10s)`) {
		t.Errorf("reload with a bad file: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	if s := local(); !strings.Contains(s, "db") || !strings.Contains(s, "web") {
		t.Errorf("services after a refused reload:\n%s", s)
	}
	if log := errb.String(); !strings.Contains(log, "reload refused") || !strings.Contains(log, "zz-bad.json: service.check.ttl") {
		t.Errorf("the agent did not log the refused reload:\n%s", log)
	}
	r = rumor(t, env, "reload", "--json")
	if r.code != 1 {
		t.Errorf("reload --json with a bad file: exit %d", r.code)
	}
	// A file nested too deep: refused by its name, the agent keeps running as it was.
	if err := os.Remove(bad); err != nil {
		t.Fatal(err)
	}
	bad = writeFile(t, confDir, "zz-deep.hcl", strings.Repeat("a {\n", 1_400_000)+strings.Repeat("}\n", 1_400_000))
	r = rumor(t, env, "reload")
	if r.code != 1 || !strings.Contains(r.stderr, bad+": nested more than 64 levels deep") {
		t.Errorf("reload with a deep file: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	if s := local(); !strings.Contains(s, "db") || !strings.Contains(s, "web") || !strings.Contains(s, "manual") {
		t.Errorf("services after a refused deep reload:\n%s", s)
	}

	// SIGHUP: the bad file fixed, web removed.
	if err := os.Remove(bad); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(confDir, "web.json")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testkit.Poll(t, 10*time.Second, testkit.PollInterval, "SIGHUP to reload", func() error {
		if s := local(); strings.Contains(s, "web ") {
			return fmt.Errorf("services:\n%s\nlog:\n%s", s, errb.String())
		}
		return nil
	})
	if s := local(); !strings.Contains(s, "db") || !strings.Contains(s, "manual") {
		t.Errorf("services after SIGHUP:\n%s", s)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("agent exit %d:\n%s", code, errb.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("agent did not stop")
	}
}

// waitForAgent waits for an in-process agent's "running" log line and returns its
// HTTP address.
func waitForAgent(t *testing.T, errb *testkit.Buffer, done <-chan int) string {
	t.Helper()
	re := regexp.MustCompile(`rumor agent running".*http=(127\.0\.0\.1:\d+)`)
	var addr string
	testkit.Poll(t, 10*time.Second, testkit.PollInterval, "the agent to start", func() error {
		select {
		case code := <-done:
			t.Fatalf("agent exited with %d:\n%s", code, errb.String())
		default:
		}
		m := re.FindStringSubmatch(errb.String())
		if m == nil {
			return fmt.Errorf("log so far:\n%s", errb.String())
		}
		addr = m[1]
		return nil
	})
	return addr
}

func checkStatusOf(t *testing.T, addr, id string) string {
	t.Helper()
	var checks map[string]struct{ Status string }
	if err := newClient(&clientFlags{httpAddr: addr}).do(t.Context(), "GET", "/v1/agent/checks", nil, &checks); err != nil {
		t.Fatal(err)
	}
	return checks[id].Status
}

func TestConfigHelp(t *testing.T) {
	for _, cmd := range []string{"validate", "reload"} {
		r := rumor(t, nil, cmd, "--help")
		if r.code != 0 || !strings.Contains(r.stdout, "Examples:") || !strings.Contains(r.stdout, "rumor "+cmd) {
			t.Errorf("rumor %s --help: exit %d, output lacks examples:\n%s", cmd, r.code, r.stdout)
		}
	}
	r := rumor(t, nil, "agent", "--help")
	for _, want := range []string{"flags;", "RUMOR_DATA_DIR", "config files", "defaults", "--config-dir", "--config-file", "SIGHUP"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("agent --help does not document %q", want)
		}
	}
}

// TestReloadAppliesLogLevel: a reload applies the files' log_level (back to the
// default when the key goes away), unless --log-level fixes it.
func TestReloadAppliesLogLevel(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "agent.json", `{"log_level": "warn"}`)
	for _, c := range []struct {
		name  string
		args  []string
		after []slog.Level // after the file says debug, then drops the key
	}{
		{"from files", []string{"--config-file", file}, []slog.Level{slog.LevelDebug, slog.LevelInfo}},
		{"fixed by the flag", []string{"--config-file", file, "--log-level", "error"}, []slog.Level{slog.LevelError, slog.LevelError}},
	} {
		t.Run(c.name, func(t *testing.T) {
			writeFile(t, dir, "agent.json", `{"log_level": "warn"}`)
			cl := &cli{stdout: io.Discard, stderr: io.Discard, getenv: func(string) string { return "" }}
			fs := pflag.NewFlagSet("agent", pflag.ContinueOnError)
			f := &agentFlags{fs: fs}
			addAgentFlags(fs, f)
			if err := fs.Parse(c.args); err != nil {
				t.Fatal(err)
			}
			cfg, level, err := agentConfig(cl, f)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := cfg.ConfigServices(); err != nil { // Start's call: the files read already
				t.Fatal(err)
			}
			for i, content := range []string{`{"log_level": "debug"}`, `{}`} {
				writeFile(t, dir, "agent.json", content)
				if _, err := cfg.ConfigServices(); err != nil { // a reload
					t.Fatal(err)
				}
				if got := level.Level(); got != c.after[i] {
					t.Errorf("after reloading %s: level %v, want %v", content, got, c.after[i])
				}
			}
			// An invalid file changes nothing.
			writeFile(t, dir, "agent.json", `{"log_level": "loud"}`)
			if _, err := cfg.ConfigServices(); err == nil {
				t.Fatal("reload of an invalid log_level succeeded")
			}
			if got := level.Level(); got != c.after[1] {
				t.Errorf("after a failed reload: level %v, want %v kept", got, c.after[1])
			}
		})
	}
}
