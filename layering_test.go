package rumor_test

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The dependency rules of docs/ARCHITECTURE.md, checked on every test run:
// cmd → config → agent → adapters → definition → catalog; adapters never import each
// other; catalog and definition import only the standard library (and definition
// catalog); each outside library is confined to its adapter; production code never
// imports "testing" (test helpers live in *test packages and internal/testkit); and
// the shipped binary links no test support (TestShippedBinary).

const module = "github.com/rumor-sd/rumor"

// layer says which packages of this module a package may import, by path prefix
// relative to the module ("" = none).
var mayImport = map[string][]string{
	"catalog":             nil,
	"catalog/catalogtest": {"catalog"},
	"definition":          {"catalog"}, // Consul's service and check definitions: domain, like catalog
	"gossip":              {"catalog"},
	"mdns":                {"catalog", "definition"},
	"health":              {"catalog", "definition"},
	"httpapi":             {"catalog", "definition"},
	"dnsserver":           {"catalog", "definition"},
	"docker":              {"catalog", "definition"},
	"proxy":               {"catalog", "definition"},
	"reachability":        {"catalog"},
	"ui":                  {"catalog"},                     // the web UI: reads the catalog and the agent through interfaces it declares
	"ui/uitest":           {"catalog", "internal/testkit"}, // a headless Chromium for the UI's browser tests
	"agent":               {"catalog", "definition", "gossip", "mdns", "health", "httpapi", "dnsserver", "docker", "proxy", "reachability", "ui", "internal/"},
	"agent/localstate":    {"catalog", "definition"},                // the local-state core: no adapters
	"config":              {"catalog", "definition", "agent"},       // config files → agent.Config and service definitions
	"sim":                 {"catalog", "gossip", "internal/memnet"}, // real gossip nodes on a simulated network
	"sim/netbench":        {"sim", "internal/"},                     // runs agent processes; shares sim's table
	"sim/idlebytes":       {"agent", "definition", "gossip"},        // agents in process, their gossip counted by message type
	"cmd/":                {""},                                     // the CLI may use anything
	"internal/":           {"catalog"},
	"internal/netemagent": {"agent", "gossip"}, // a test binary: an agent whose gossip goes through gossip/netem

	// The simulator's tiers share sim/scenario (scripts and reports, standard library
	// only); the model and the plots use nothing else of this module.
	"sim/scenario": nil,
	"sim/model":    {"sim/scenario"},
	"sim/plot":     {"sim/scenario"},
}

// The simulator's real tier (sim) reads scenarios and writes reports of sim/scenario.
func init() { mayImport["sim"] = append(mayImport["sim"], "sim/scenario") }

// testSupport reports whether a package of this module is test support, which the
// shipped binary must not link: *test packages, gossip/netem (delays for tests on
// kernels without tc netem), and the internal test tools.
func testSupport(rel string) bool {
	return strings.HasSuffix(rel, "test") || rel == "gossip/netem" ||
		slices.ContainsFunc([]string{"internal/testnet", "internal/testkit", "internal/netemagent", "internal/clustertest"},
			func(p string) bool { return rel == p || strings.HasPrefix(rel, p+"/") })
}

// thirdParty confines each outside module to the packages that adapt it.
var thirdParty = map[string][]string{
	"github.com/hashicorp/memberlist":  {"gossip", "sim", "internal/memnet", "internal/netemagent"},
	"github.com/hashicorp/serf":        {"gossip", "sim"},
	"github.com/miekg/dns":             {"dnsserver", "mdns"},
	"github.com/moby/moby":             {"docker"},
	"github.com/containerd/errdefs":    {"docker"}, // the moby client's error kinds (IsNotFound)
	"github.com/spf13/cobra":           {"cmd/"},
	"github.com/spf13/pflag":           {"cmd/"},
	"github.com/prometheus/":           {"agent", "httpapi", "gossip", "dnsserver", "health", "cmd/", "mdns", "proxy"},
	"github.com/hashicorp/go-metrics":  {"gossip", "agent"},
	"github.com/hashicorp/hcl":         {"config"},
	"github.com/go-viper/mapstructure": {"config"},
	"github.com/hashicorp/go-bexpr":    {"httpapi"},
	"google.golang.org/grpc":           {"health"},
	"golang.org/x/sys":                 {"internal/", "agent", "mdns", "cmd/", "dnsserver", "proxy"},
	"golang.org/x/net":                 {"mdns", "internal/"},

	"go.uber.org/goleak": {"internal/testkit"},

	// Browser tests of the web UI drive a headless Chromium; never in the binary.
	"github.com/chromedp/": {"ui/uitest"},

	// go-bexpr's selector errors wrap this module's sentinels (httpapi's ?filter=).
	"github.com/mitchellh/pointerstructure": {"httpapi"},
}

// testingAllowed lists packages whose production code may import "testing".
func testingAllowed(rel string) bool {
	return strings.HasSuffix(rel, "test") || strings.HasPrefix(rel, "internal/testnet") || rel == "internal/testkit"
}

type pkg struct {
	ImportPath string
	Imports    []string
	Standard   bool
}

func rules(rel string, table map[string][]string) ([]string, bool) {
	best := ""
	found := false
	for prefix := range table {
		match := rel == prefix || strings.HasSuffix(prefix, "/") && strings.HasPrefix(rel, prefix) ||
			strings.HasPrefix(rel, prefix+"/")
		if match && len(prefix) >= len(best) {
			best, found = prefix, true
		}
	}
	return table[best], found
}

func allowedBy(list []string, rel string) bool {
	for _, p := range list {
		if p == "" && len(list) == 1 {
			return true
		}
		if p != "" && (rel == p || strings.HasPrefix(rel, strings.TrimSuffix(p, "/")+"/") || strings.HasSuffix(p, "/") && strings.HasPrefix(rel, p)) {
			return true
		}
	}
	return false
}

func TestLayering(t *testing.T) {
	out, err := exec.Command("go", "list", "-json", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	checked := 0
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		if rel == "" {
			continue // this test's own package
		}
		checked++
		internal, known := rules(rel, mayImport)
		if !known {
			t.Errorf("package %s has no layering rule: add it to mayImport", rel)
			continue
		}
		for _, imp := range p.Imports {
			switch {
			case imp == "testing" && !testingAllowed(rel):
				t.Errorf("%s imports testing in production code: move helpers to a *test package", rel)
			case strings.HasPrefix(imp, module+"/"):
				target := strings.TrimPrefix(imp, module+"/")
				if strings.HasPrefix(target, rel+"/") {
					continue // its own subpackages
				}
				if !allowedBy(internal, target) {
					t.Errorf("%s imports %s: not allowed (may import %v)", rel, target, internal)
				}
			case strings.Contains(strings.Split(imp, "/")[0], "."):
				allowed := false
				known := false
				for modPrefix, pkgs := range thirdParty {
					if strings.HasPrefix(imp, modPrefix) {
						known = true
						allowed = allowed || allowedBy(pkgs, rel)
					}
				}
				if rel == "catalog" || rel == "definition" || !known || !allowed {
					if rel == "catalog" || rel == "definition" || known {
						t.Errorf("%s imports %s: outside libraries stay in their adapter", rel, imp)
					} else if !strings.HasPrefix(rel, "cmd/") {
						t.Errorf("%s imports %s, which no rule names: add it to thirdParty", rel, imp)
					}
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("go list found no packages")
	}
}

// TestShippedBinary checks what `rumor` links, not only what packages import: no test
// support of this module (see testSupport) and not the testing package, however
// indirectly.
func TestShippedBinary(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "./cmd/rumor").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, module+"/agent") {
		t.Fatalf("go list -deps ./cmd/rumor does not list the agent: %v", deps)
	}
	for _, p := range deps {
		rel, ours := strings.CutPrefix(p, module+"/")
		switch {
		case p == "testing":
			t.Errorf("rumor links the testing package")
		case ours && testSupport(rel):
			t.Errorf("rumor links test support %s: keep it out of cmd/rumor's dependencies", rel)
		}
	}
}
