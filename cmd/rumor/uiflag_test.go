package main

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/rumor-sd/rumor/agent"
	"github.com/rumor-sd/rumor/internal/testkit"
)

// TestUIFlagAndConfig: the web UI is on by default; --ui=false, RUMOR_UI=false,
// ui_config.enabled = false (Consul's key, JSON or HCL) or the older ui = false turn it
// off; the flag wins over the files, ui_config over ui.
func TestUIFlagAndConfig(t *testing.T) {
	dir := t.TempDir()
	off := writeFile(t, dir, "off.json", `{"ui_config": {"enabled": false}}`)
	offHCL := writeFile(t, dir, "off.hcl", "ui_config {\n  enabled = false\n}\n")
	legacyOff := writeFile(t, dir, "legacy.json", `{"ui": false}`)
	both := writeFile(t, dir, "both.json", `{"ui": false, "ui_config": {"enabled": true}}`)
	for _, tc := range []struct {
		name   string
		env    map[string]string
		args   []string
		wantOn bool
	}{
		{"default", nil, nil, true},
		{"--ui=false", nil, []string{"--ui=false"}, false},
		{"RUMOR_UI=false", map[string]string{"RUMOR_UI": "false"}, nil, false},
		{"ui_config JSON", nil, []string{"--config-file", off}, false},
		{"ui_config HCL", nil, []string{"--config-file", offHCL}, false},
		{"legacy ui", nil, []string{"--config-file", legacyOff}, false},
		{"ui_config over ui", nil, []string{"--config-file", both}, true},
		{"--ui over the file", nil, []string{"--config-file", off, "--ui"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _, err := resolve(t, tc.env, append([]string{"--dev"}, tc.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			if got := !cfg.DisableUI; got != tc.wantOn {
				t.Errorf("UI on = %t, want %t", got, tc.wantOn)
			}
		})
	}
	bad := writeFile(t, dir, "bad.json", `{"ui_config": {"enabled": true, "content_path": "/x/"}}`)
	if _, _, err := resolve(t, nil, "--dev", "--config-file", bad); err == nil || !strings.Contains(err.Error(), "content_path") {
		t.Errorf("ui_config.content_path: %v, want an error naming it (rumor's UI is built in)", err)
	}
}

// TestUIDisabledIsNotServed: with DisableUI, /ui/ is not found and the API still
// answers; by default /ui/ serves the UI.
func TestUIDisabledIsNotServed(t *testing.T) {
	for _, disable := range []bool{false, true} {
		a, err := agent.New(agent.Config{NodeName: "node1", Dev: true, BindPort: 0, HTTPAddr: "127.0.0.1:0", DisableUI: disable})
		a = testkit.Running(t, a, err)
		base := "http://" + a.HTTPAddr().String()
		resp, err := http.Get(base + "/ui/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := map[bool]int{false: http.StatusOK, true: http.StatusNotFound}[disable]; resp.StatusCode != want {
			t.Errorf("DisableUI=%t: GET /ui/ = %d, want %d", disable, resp.StatusCode, want)
		}
		if !disable && !strings.Contains(string(body), "Failing now") {
			t.Errorf("GET /ui/ does not look like the UI's landing page:\n%.300s", body)
		}
		if resp, err := http.Get(base + "/v1/agent/self"); err != nil || resp.StatusCode != http.StatusOK {
			t.Errorf("DisableUI=%t: GET /v1/agent/self: %v", disable, err)
		} else {
			resp.Body.Close()
		}
	}
}
