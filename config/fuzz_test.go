package config_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/rumor-sd/rumor/config"
	"github.com/rumor-sd/rumor/definition"
)

// fuzzLoad checks Load's promises on arbitrary input: no panic; either a config
// whose services the agent accepts, or errors that each name the file and a reason.
func fuzzLoad(f *testing.F, ext string) {
	seeds, _ := filepath.Glob("testdata/*" + ext)
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "f"+ext)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := config.Load([]string{p}, config.Options{})
		if err != nil {
			es := config.AsErrors(err)
			if c != nil || len(es) == 0 {
				t.Fatalf("Load: config %v with error %v", c, err)
			}
			for _, e := range es {
				if e.File != p || e.Reason == "" {
					t.Fatalf("error without file or reason: %+v", e)
				}
			}
			return
		}
		scripts := c.Settings.EnableScriptChecks != nil && *c.Settings.EnableScriptChecks
		for _, s := range c.Services {
			d := s.Service.Clone()
			d.Normalize()
			if err := d.Validate(definition.Policy{EnableScriptChecks: scripts}); err != nil {
				t.Fatalf("Load accepted a service the agent refuses: %v", err)
			}
		}
	})
}

func FuzzLoadJSON(f *testing.F) { fuzzLoad(f, ".json") }

func FuzzLoadHCL(f *testing.F) { fuzzLoad(f, ".hcl") }
