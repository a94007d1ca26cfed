package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rumor-sd/rumor/agent"
	"github.com/rumor-sd/rumor/config"
	"github.com/rumor-sd/rumor/definition"
)

func TestUpstreams(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.hcl", `upstreams = [{ service = "web", local_bind_port = 9001 }, { service = "db", tag = "primary", local_bind_address = "127.0.0.2", local_bind_port = 9002 }]
service { name = "app", upstreams = [{ service = "cache", local_bind_port = 9003 }] }`)
	c, err := config.Load([]string{good}, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var cfg agent.Config
	c.Settings.Apply(&cfg)
	want := []definition.Upstream{{Service: "web", LocalBindPort: 9001}, {Service: "db", Tag: "primary", LocalBindAddress: "127.0.0.2", LocalBindPort: 9002}}
	if len(cfg.Proxy.Upstreams) != 2 || cfg.Proxy.Upstreams[0] != want[0] || cfg.Proxy.Upstreams[1] != want[1] {
		t.Errorf("agent upstreams %+v, want %+v", cfg.Proxy.Upstreams, want)
	}
	if len(c.Services) != 1 || len(c.Services[0].Service.Upstreams) != 1 || c.Services[0].Service.Upstreams[0].Service != "cache" {
		t.Errorf("service upstreams: %+v", c.Services)
	}

	bad := write("bad.json", `{"upstreams": [{"local_bind_port": 70000}, {"service": "x", "local_bind_address": "nowhere", "local_bind_port": 1}]}`)
	_, err = config.Load([]string{bad}, config.Options{})
	if err == nil {
		t.Fatal("a bad upstream was accepted")
	}
	for _, want := range []string{"upstreams[0].service", "upstreams[0].local_bind_port", "upstreams[1].local_bind_address", "bad.json"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}
