package agent

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/definition"
	"github.com/rumor-sd/rumor/internal/testkit"
)

// keyringCall sends one /v1/operator/keyring request to a and returns the status and
// body.
func keyringCall(t *testing.T, a *Agent, method, key string) (int, string) {
	t.Helper()
	var body io.Reader
	if key != "" {
		body = strings.NewReader(`{"Key": "` + key + `"}`)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, "http://"+a.HTTPAddr().String()+"/v1/operator/keyring", body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestKeyringRotationOverHTTP rotates the key of three real agents through one
// agent's /v1/operator/keyring (install, use, remove the old one), with services
// registered between the steps still spreading to every node.
func TestKeyringRotationOverHTTP(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real gossip")
	}
	key1 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	key2 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{2}, 32))
	var agents []*Agent
	var cfgs []Config
	for i := range 3 {
		cfg := Config{NodeName: fmt.Sprintf("k%d", i), DataDir: t.TempDir(), BindAddr: "127.0.0.1", BindPort: 0,
			GossipProfile: "local", HTTPAddr: "127.0.0.1:0", EncryptKey: key1}
		if i > 0 {
			cfg.Join = []string{agents[0].GossipAddr().String()}
		}
		cfgs = append(cfgs, cfg)
		agents = append(agents, startAgent(t, cfg))
	}
	for _, a := range agents {
		testkit.Eventually(t, 10*time.Second, a.NodeName()+" sees 3 alive", func() bool {
			n := 0
			for _, m := range a.Members() {
				if m.State == catalog.LivenessAlive {
					n++
				}
			}
			return n == 3
		})
	}
	list := func() (keys, primary map[string]int) {
		t.Helper()
		code, body := keyringCall(t, agents[0], "GET", "")
		var got []struct {
			WAN         bool
			Datacenter  string
			Keys        map[string]int
			PrimaryKeys map[string]int
			NumNodes    int
			Messages    map[string]string
		}
		if err := json.Unmarshal([]byte(body), &got); code != 200 || err != nil || len(got) != 1 || got[0].NumNodes != 3 || len(got[0].Messages) != 0 {
			t.Fatalf("list: %d %s (%v)", code, body, err)
		}
		return got[0].Keys, got[0].PrimaryKeys
	}
	spread := func(id string) {
		t.Helper()
		if err := agents[2].RegisterService(t.Context(), definition.Service{ID: id, Name: id, Port: 80}); err != nil {
			t.Fatal(err)
		}
		for _, a := range agents {
			testkit.Eventually(t, 10*time.Second, id+" on "+a.NodeName(), func() bool { return len(a.Catalog().ServiceInstances(id, catalog.Filter{})) == 1 })
		}
	}
	if keys, primary := list(); !reflect.DeepEqual(keys, map[string]int{key1: 3}) || !reflect.DeepEqual(primary, map[string]int{key1: 3}) {
		t.Fatalf("before: keys %v primary %v", keys, primary)
	}
	for _, step := range []struct{ method, key string }{{"POST", key2}, {"PUT", key2}, {"DELETE", key1}} {
		if code, body := keyringCall(t, agents[0], step.method, step.key); code != 200 {
			t.Fatalf("%s %s: %d %s", step.method, step.key, code, body)
		}
		spread("after-" + strings.ToLower(step.method))
	}
	if keys, primary := list(); !reflect.DeepEqual(keys, map[string]int{key2: 3}) || !reflect.DeepEqual(primary, map[string]int{key2: 3}) {
		t.Fatalf("after rotation: keys %v primary %v", keys, primary)
	}

	// Refusals: the primary key, a malformed key. Nothing changes.
	if code, body := keyringCall(t, agents[1], "DELETE", key2); code != 400 || !strings.Contains(body, "primary") {
		t.Errorf("removing the primary key: %d %s", code, body)
	}
	if code, body := keyringCall(t, agents[1], "POST", "bm90LWEta2V5"); code != 400 || !strings.Contains(body, `"bm90LWEta2V5"`) {
		t.Errorf("installing a 9-byte key: %d %s", code, body)
	}
	if keys, _ := list(); !reflect.DeepEqual(keys, map[string]int{key2: 3}) {
		t.Errorf("after refusals: keys %v", keys)
	}

	// Every node saved the rotated keyring; a node restarted with its old --encrypt
	// uses it and rejoins (issue 11 item 15: the change was lost on restart, and the
	// node, back on key1, could not join).
	for _, c := range cfgs {
		checkKeyringFile(t, c.DataDir, key2)
	}
	if err := agents[2].Shutdown(); err != nil {
		t.Fatal(err)
	}
	agents[2] = startAgent(t, cfgs[2]) // Join fails, and so Start, unless it uses key2
	spread("after-restart")
	res, err := apiKeyring{agents[2]}.LocalKeys()
	if err != nil || !reflect.DeepEqual(res.Keys, map[string]int{key2: 1}) || !reflect.DeepEqual(res.PrimaryKeys, map[string]int{key2: 1}) {
		t.Errorf("after a restart: %+v %v, want only %s", res, err, key2)
	}
}

// checkKeyringFile checks the data dir's keyring: keys, primary first, mode 0600.
func checkKeyringFile(t *testing.T, dir string, want ...string) {
	t.Helper()
	p := filepath.Join(dir, keyringFile)
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("%s: mode %v, want 0600", p, st.Mode().Perm())
	}
	var got []string
	if b, err := os.ReadFile(p); err != nil || json.Unmarshal(b, &got) != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %s (%v), want %q", p, b, err, want)
	}
}

// TestKeyringFile: --encrypt seeds the keyring of a fresh data dir; a data dir's
// keyring wins over --encrypt (with a warning) and keeps encryption on without it; a
// damaged keyring stops the start, naming the file.
func TestKeyringFile(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real gossip")
	}
	key1 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	key2 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{2}, 16))
	var logs testkit.Buffer
	cfg := Config{NodeName: "k", DataDir: t.TempDir(), BindAddr: "127.0.0.1", BindPort: 0, GossipProfile: "local",
		HTTPAddr: "127.0.0.1:0", EncryptKey: key1, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	primary := func(a *Agent) string {
		t.Helper()
		res, err := apiKeyring{a}.LocalKeys()
		if err != nil {
			t.Fatal(err)
		}
		for k := range res.PrimaryKeys {
			return k
		}
		return ""
	}
	a := startAgent(t, cfg)
	checkKeyringFile(t, cfg.DataDir, key1)
	if err := a.Shutdown(); err != nil {
		t.Fatal(err)
	}

	p := filepath.Join(cfg.DataDir, keyringFile)
	if err := os.WriteFile(p, []byte(`["`+key2+`","`+key1+`"]`), 0o600); err != nil {
		t.Fatal(err)
	}
	a = startAgent(t, cfg)
	if got := primary(a); got != key2 {
		t.Errorf("with a keyring and --encrypt: primary %s, want the keyring's %s", got, key2)
	}
	if err := a.Shutdown(); err != nil {
		t.Fatal(err)
	}
	cfg.EncryptKey = ""
	a = startAgent(t, cfg)
	if got := primary(a); got != key2 {
		t.Errorf("with a keyring, no --encrypt: primary %s, want %s", got, key2)
	}
	if err := a.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(`["`+key2+`"]`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.EncryptKey = key1
	a = startAgent(t, cfg)
	if !strings.Contains(logs.String(), "does not hold the --encrypt key") {
		t.Errorf("no warning that the keyring overrides --encrypt:\n%s", logs.String())
	}
	if err := a.Shutdown(); err != nil {
		t.Fatal(err)
	}

	for _, bad := range []string{`["not base64"]`, `[]`, `["` + key1 + `"] trailing`} {
		if err := os.WriteFile(p, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := startError(t, cfg); !strings.Contains(err.Error(), p) {
			t.Errorf("keyring %s: Start = %v, want an error naming %s", bad, err, p)
		}
	}
}

// An agent without encryption says so.
func TestKeyringWithoutEncryption(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real gossip")
	}
	a := startAgent(t, Config{NodeName: "plain", DataDir: t.TempDir(), BindAddr: "127.0.0.1", BindPort: 0,
		GossipProfile: "local", HTTPAddr: "127.0.0.1:0"})
	if code, body := keyringCall(t, a, "GET", ""); code != 400 || !strings.Contains(body, "--encrypt") {
		t.Errorf("list without encryption: %d %s", code, body)
	}
}
