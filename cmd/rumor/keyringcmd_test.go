package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/rumor-sd/rumor/agent"
	"github.com/rumor-sd/rumor/internal/testkit"
)

func TestKeyringCommand(t *testing.T) {
	key1 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	key2 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{2}, 16))
	a, err := agent.New(agent.Config{NodeName: "node1", Dev: true, DataDir: t.TempDir(),
		BindPort: 0, HTTPAddr: "127.0.0.1:0", EncryptKey: key1})
	a = testkit.Running(t, a, err)
	env := map[string]string{"RUMOR_HTTP_ADDR": a.HTTPAddr().String()}

	listJSON := func() keyringJSON {
		t.Helper()
		r := rumor(t, env, "keyring", "--json")
		var k keyringJSON
		if err := json.Unmarshal([]byte(r.stdout), &k); r.code != 0 || err != nil {
			t.Fatalf("keyring --json: %d %q %q (%v)", r.code, r.stdout, r.stderr, err)
		}
		return k
	}
	if k := listJSON(); k.NumNodes != 1 || !reflect.DeepEqual(k.Keys, map[string]int{key1: 1}) || k.Datacenter != "dc1" {
		t.Fatalf("initial keyring %+v", k)
	}
	for _, step := range [][]string{{"--install", key2}, {"--use", key2}, {"--remove", key1}} {
		r := rumor(t, env, append([]string{"keyring"}, step...)...)
		if r.code != 0 || !strings.Contains(r.stdout, "on all 1 nodes") {
			t.Fatalf("keyring %v: %d %q %q", step, r.code, r.stdout, r.stderr)
		}
	}
	if k := listJSON(); !reflect.DeepEqual(k.Keys, map[string]int{key2: 1}) || !reflect.DeepEqual(k.PrimaryKeys, map[string]int{key2: 1}) {
		t.Fatalf("after rotation %+v", k)
	}
	r := rumor(t, env, "keyring", "--list")
	if r.code != 0 || !strings.Contains(r.stdout, key2) || !strings.Contains(r.stdout, "1/1") || !strings.Contains(r.stdout, "primary on 1") {
		t.Errorf("keyring --list table: %d %q", r.code, r.stdout)
	}
	if r := rumor(t, env, "keyring", "--list", "--local-only", "--json"); r.code != 0 || !strings.Contains(r.stdout, key2) {
		t.Errorf("--local-only: %d %q %q", r.code, r.stdout, r.stderr)
	}

	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"two operations", []string{"--install", key1, "--use", key1}, exitUsage, "--install and --use"},
		{"not base64", []string{"--install", "!!"}, exitUsage, `--install "!!": not base64`},
		{"wrong size", []string{"--use", "c2hvcnQ="}, exitUsage, "decodes to 5 bytes"},
		{"local-only with a change", []string{"--install", key1, "--local-only"}, exitUsage, "--local-only goes with --list"},
		{"primary", []string{"--remove", key2}, exitFailed, "primary"},
		{"not installed", []string{"--use", key1}, exitFailed, "1 of 1 nodes failed"},
	} {
		r := rumor(t, env, append([]string{"keyring"}, tc.args...)...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%s: exit %d stderr %q, want %d mentioning %q", tc.name, r.code, r.stderr, tc.code, tc.want)
		}
	}
	if r := rumor(t, map[string]string{"RUMOR_HTTP_ADDR": "127.0.0.1:1"}, "keyring"); r.code != exitNoAgent {
		t.Errorf("no agent: exit %d, want %d", r.code, exitNoAgent)
	}
	if k := listJSON(); !reflect.DeepEqual(k.Keys, map[string]int{key2: 1}) {
		t.Errorf("refused operations changed the keyring: %+v", k)
	}
}
