package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rumor-sd/rumor/config"
)

// TestBounds: files nested too deep or too large are refused before parsing, with
// an error naming the file and the limit (an 8 MB nested HCL file overflowed the
// stack, a fatal error, in `rumor validate` and on SIGHUP); nesting within the limit
// goes on to the schema's checks.
func TestBounds(t *testing.T) {
	deepHCL := strings.Repeat("a {\n", 2_000_000) + strings.Repeat("}\n", 2_000_000) // 12 MB
	tests := []struct {
		name, file, content string
		want                string // in the only error; "" = no depth or size error
	}{
		{"deep HCL blocks", "deep.hcl", deepHCL, "nested more than 64 levels deep"},
		{"deep HCL lists", "lists.hcl", "a = " + strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000), "nested more than 64 levels deep"},
		{"deep HCL block keys", "keys.hcl", strings.Repeat("a ", 100_000) + "{}", "nested more than 64 levels deep"},
		{"JSON in an HCL file", "json.hcl", `{"a":` + strings.Repeat(`{"a":`, 1000) + "1" + strings.Repeat("}", 1001), "nested more than 64 levels deep"},
		{"deep JSON", "deep.json", `{"a":` + strings.Repeat("[", 1_000_000) + strings.Repeat("]", 1_000_000) + "}", "nested more than 64 levels deep"},
		{"HCL within the limit", "ok.hcl", "node_meta " + strings.Repeat("a {\n", 60) + strings.Repeat("}\n", 60), ""},
		{"JSON within the limit", "ok.json", `{"node_meta":` + strings.Repeat(`{"a":`, 60) + "1" + strings.Repeat("}", 61), ""},
		{"braces in strings and comments", "str.hcl", "# {{{{{{{{\nnode_name = \"" + strings.Repeat("{[", 100) + "\"\n/* " + strings.Repeat("{", 100) + " */\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), tt.file)
			if err := os.WriteFile(p, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := config.Load([]string{p}, config.Options{})
			es := config.AsErrors(err)
			if tt.want == "" {
				for _, e := range es {
					if strings.Contains(e.Reason, "nested") || strings.Contains(e.Reason, "larger than") {
						t.Fatalf("refused within the limits: %v", e)
					}
				}
				return
			}
			if len(es) != 1 || es[0].File != p || !strings.Contains(es[0].Reason, tt.want) {
				t.Fatalf("Load = %v, want one error for %s: %q", err, p, tt.want)
			}
			// register -f reads HCL through ServiceFile: the same bound.
			if strings.HasSuffix(tt.file, ".hcl") {
				_, err := config.ServiceFile("x.hcl", []byte(tt.content), true)
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("ServiceFile = %v, want %q", err, tt.want)
				}
			}
		})
	}
}

// TestFileSizeBound: a file over MaxFileSize is refused without being read whole.
func TestFileSizeBound(t *testing.T) {
	p := filepath.Join(t.TempDir(), "big.json")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(config.MaxFileSize + 1); err != nil { // sparse: no disk used
		t.Fatal(err)
	}
	f.Close()
	_, err = config.Load([]string{p}, config.Options{})
	es := config.AsErrors(err)
	if len(es) != 1 || es[0].File != p || !strings.Contains(es[0].Reason, "larger than 16 MiB") {
		t.Fatalf("Load = %v, want %s larger than 16 MiB", err, p)
	}
}
