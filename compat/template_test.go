package compat

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"
)

// consul-template is built by scripts/compat-tools.sh.
const consulTemplateDir, consulTemplateBin = "consul-template-v0.41.1", "consul-template"

// renderTimeout bounds how long consul-template takes to render after a change.
const renderTimeout = 30 * time.Second

// serviceTemplate lists the catalog's services with `services` (which blocks on
// /v1/catalog/services) and web's passing instances with `service "web"` (which
// blocks on /v1/health/service/web?passing).
const serviceTemplate = `{{- range services }}service {{ .Name }}
{{ end -}}
{{- range service "web" }}instance {{ .ID }} on {{ .Node }} at {{ .Address }}:{{ .Port }} tags {{ join "," .Tags }}
{{ end -}}
`

// templateFiles writes serviceTemplate into a temporary directory and returns the
// template's path and the path consul-template renders to.
func templateFiles(t *testing.T) (in, out string) {
	t.Helper()
	dir := t.TempDir()
	in, out = filepath.Join(dir, "services.tpl"), filepath.Join(dir, "services.txt")
	if err := os.WriteFile(in, []byte(serviceTemplate), 0o644); err != nil {
		t.Fatal(err)
	}
	return in, out
}

func startConsulTemplate(t *testing.T, bin string, a *agent, in, out string, extra ...string) *process {
	t.Helper()
	args := append([]string{"-consul-addr", a.http, "-template", in + ":" + out, "-log-level", "debug"}, extra...)
	p := startProcess(t, "consul-template", bin, args...)
	p.stopSignal = syscall.SIGINT // its default kill_signal; SIGTERM goes to a child command
	return p
}

// register adds db (no checks: passing) and, when web is true, web-1 with a passing
// check.
func registerServices(t *testing.T, a *agent, web bool) {
	t.Helper()
	regs := []*consulapi.AgentServiceRegistration{{ID: "db-1", Name: "db", Port: 5432}}
	if web {
		regs = append(regs, &consulapi.AgentServiceRegistration{ID: "web-1", Name: "web", Port: 8080, Address: "127.0.0.2",
			Tags: []string{"v1", "primary"}, Check: &consulapi.AgentServiceCheck{TTL: "1m", Status: consulapi.HealthPassing}})
	}
	for _, r := range regs {
		if err := a.client.Agent().ServiceRegister(r); err != nil {
			t.Fatalf("ServiceRegister(%s): %v", r.ID, err)
		}
	}
}

const (
	renderedDB  = "service db\n"
	renderedWeb = "service web\ninstance web-1 on alpha at 127.0.0.2:8080 tags primary,v1\n" // consul-template sorts tags
)

// TestConsulTemplateOnce renders once (-once): consul-template fetches every
// dependency, writes the file and exits 0.
func TestConsulTemplateOnce(t *testing.T) {
	bin := requireTool(t, consulTemplateDir, consulTemplateBin)
	a := startAgent(t, "alpha")
	registerServices(t, a, true)
	in, out := templateFiles(t)
	p := startConsulTemplate(t, bin, a, in, out, "-once")
	select {
	case <-p.done:
	case <-time.After(renderTimeout):
		t.Fatalf("consul-template -once did not exit within %s", renderTimeout)
	}
	if p.err != nil {
		t.Fatalf("consul-template -once: %v", p.err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if want := renderedDB + renderedWeb; string(got) != want {
		t.Errorf("rendered:\n%s\nwant:\n%s", got, want)
	}
}

// TestConsulTemplateRerenders runs consul-template as a daemon: it renders what is
// registered, then renders again when a service is registered and deregistered,
// woken by its blocking queries.
func TestConsulTemplateRerenders(t *testing.T) {
	bin := requireTool(t, consulTemplateDir, consulTemplateBin)
	a := startAgent(t, "alpha")
	registerServices(t, a, false)
	in, out := templateFiles(t)
	p := startConsulTemplate(t, bin, a, in, out)

	rendered := func(want string) func() string {
		return func() string {
			if p.exited() {
				t.Fatalf("consul-template exited: %v", p.err)
			}
			got, err := os.ReadFile(out)
			if err != nil {
				return err.Error()
			}
			if string(got) != want {
				return fmt.Sprintf("file holds %q, want %q", got, want)
			}
			return ""
		}
	}
	eventually(t, renderTimeout, "first render", rendered(renderedDB))

	registerServices(t, a, true)
	took := eventually(t, renderTimeout, "render after registering web-1", rendered(renderedDB+renderedWeb))
	t.Logf("re-rendered %s after the registration", took.Round(time.Millisecond))

	if err := a.client.Agent().ServiceDeregister("web-1"); err != nil {
		t.Fatalf("ServiceDeregister: %v", err)
	}
	took = eventually(t, renderTimeout, "render after deregistering web-1", rendered(renderedDB))
	t.Logf("re-rendered %s after the deregistration", took.Round(time.Millisecond))
	if s := p.out.String(); strings.Contains(s, "[ERR]") || strings.Contains(s, "[WARN]") {
		t.Errorf("consul-template logged errors or warnings:\n%s", tail(s, 4000))
	}
}
