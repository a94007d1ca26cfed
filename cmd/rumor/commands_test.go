package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/agent"
	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/internal/testkit"
)

// startPeer starts a dev agent named name with real gossip on loopback, joined to
// join if given, and returns it with the environment pointing the CLI at it.
func startPeer(t *testing.T, name string, join ...string) (*agent.Agent, map[string]string) {
	t.Helper()
	a, err := agent.New(agent.Config{NodeName: name, Dev: true, DataDir: t.TempDir(),
		BindPort: 0, HTTPAddr: "127.0.0.1:0", Join: join})
	a = testkit.Running(t, a, err)
	return a, map[string]string{"RUMOR_HTTP_ADDR": a.HTTPAddr().String()}
}

// liveness is how a sees node.
func liveness(a *agent.Agent, node string) catalog.Liveness {
	st, _ := a.Catalog().Liveness(node)
	return st
}

type cliCase struct {
	name string
	args []string
	code int
	out  []string // substrings of stdout
	err  []string // substrings of stderr
}

func runCases(t *testing.T, env map[string]string, cases []cliCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := rumor(t, env, c.args...)
			if r.code != c.code {
				t.Errorf("rumor %s: exit code %d, want %d\nstdout: %s\nstderr: %s", strings.Join(c.args, " "), r.code, c.code, r.stdout, r.stderr)
			}
			for _, s := range c.out {
				if !strings.Contains(r.stdout, s) {
					t.Errorf("stdout lacks %q:\n%s", s, r.stdout)
				}
			}
			for _, s := range c.err {
				if !strings.Contains(r.stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, r.stderr)
				}
			}
		})
	}
}

func TestServiceCheckMaintCommands(t *testing.T) {
	_, env := startAgent(t)
	if r := rumorIn(t, env, `{"services": [
		{"name": "web", "id": "web-1", "port": 80, "tags": ["v1"], "checks": [{"id": "web-ttl", "ttl": "30s"}]},
		{"name": "web", "id": "web-2", "port": 81, "address": "127.0.0.2", "tags": ["v2"], "checks": [{"id": "web2-ttl", "ttl": "30s", "status": "passing"}]},
		{"name": "db", "id": "db-1", "port": 5432, "checks": [{"id": "db-ttl", "ttl": "30s"}]}]}`, "register", "-f", "-"); r.code != 0 {
		t.Fatalf("register: %+v", r)
	}
	runCases(t, env, []cliCase{
		{"service", []string{"service", "web"}, 0,
			[]string{"NODE", "STATUS", "CHECKS", "node1  web-1  127.0.0.1:80", "critical", "serfHealth=passing,web-ttl=critical", "127.0.0.2:81", "passing"}, nil},
		{"service passing", []string{"service", "web", "--passing"}, 0, []string{"web-2"}, nil},
		{"service by tag", []string{"service", "web", "--tag", "v1"}, 0, []string{"web-1"}, nil},
		{"service none passing", []string{"service", "db", "--passing"}, 1, nil, []string{`no passing instances of service "db"`}},
		{"service unknown", []string{"service", "nope"}, 1, nil, []string{`no instances of service "nope"`, "rumor services"}},
		{"service needs a name", []string{"service"}, 2, nil, []string{"accepts 1 arg"}},
		{"services passing", []string{"services", "--passing"}, 0, []string{"web"}, nil},
		{"services passing and local", []string{"services", "--passing", "--local"}, 2, nil, []string{"--passing applies to the catalog listing"}},
		{"check list", []string{"check", "list"}, 0, []string{"ID", "db-ttl", "db-1", "ttl", "critical", "web2-ttl"}, nil},
		{"check pass", []string{"check", "pass", "db-ttl", "--note", "all good"}, 0, []string{"Check db-ttl is passing."}, nil},
		{"service after pass", []string{"service", "db", "--passing", "--json"}, 0, []string{`"status": "passing"`, `"output": "all good"`}, nil},
		{"services passing now", []string{"services", "--passing"}, 0, []string{"db", "web"}, nil},
		{"check warn", []string{"check", "warn", "db-ttl"}, 0, []string{"Check db-ttl is warning."}, nil},
		{"check fail json", []string{"check", "fail", "db-ttl", "--json"}, 0, []string{`"status": "critical"`}, nil},
		{"check unknown", []string{"check", "pass", "nosuch"}, 1, nil, []string{`no check with ID "nosuch"`, "rumor check list"}},
		{"check no subcommand arg", []string{"check", "bogus"}, 2, nil, []string{`unknown command "bogus"`}},
		{"check pass needs id", []string{"check", "pass"}, 2, nil, []string{"accepts 1 arg"}},
		{"maint enable", []string{"maint", "enable", "--reason", "upgrade"}, 0, []string{"Maintenance mode enabled for the node."}, nil},
		{"service in maint", []string{"service", "web"}, 0, []string{"maintenance", "_node_maintenance=maintenance"}, nil},
		{"no passing in maint", []string{"service", "web", "--passing"}, 1, nil, []string{"no passing instances"}},
		{"maint disable", []string{"maint", "disable"}, 0, []string{"Maintenance mode disabled for the node."}, nil},
		{"maint service", []string{"maint", "enable", "--service", "web-2", "--json"}, 0, []string{`"maintenance": true`, `"service": "web-2"`}, nil},
		{"service maint", []string{"service", "web", "--tag", "v2"}, 0, []string{"maintenance", "_service_maintenance:web-2=maintenance"}, nil},
		{"maint unknown service", []string{"maint", "enable", "--service", "nope"}, 1, nil, []string{`no service with ID "nope"`}},
		{"maint bad arg", []string{"maint", "on"}, 2, nil, []string{"say 'maint enable' or 'maint disable'"}},
		{"maint disable with reason", []string{"maint", "disable", "--reason", "x"}, 2, nil, []string{"--reason applies to 'maint enable' only"}},
		{"no agent", []string{"service", "web", "--http-addr", "127.0.0.1:1"}, 3, nil, []string{"no agent at 127.0.0.1:1: is `rumor agent` running?"}},
		{"check no agent", []string{"check", "pass", "x", "--http-addr", "127.0.0.1:1"}, 3, nil, []string{"no agent at 127.0.0.1:1"}},
		{"maint no agent", []string{"maint", "enable", "--http-addr", "127.0.0.1:1"}, 3, nil, []string{"no agent at 127.0.0.1:1"}},
	})
	r := rumor(t, env, "service", "web", "--json")
	var insts []instanceJSON
	if err := json.Unmarshal([]byte(r.stdout), &insts); err != nil || len(insts) != 2 {
		t.Fatalf("service --json = %q (%v)", r.stdout, err)
	}
	if insts[0].ID != "web-1" || insts[0].Status != "critical" || insts[0].Port != 80 || len(insts[0].Checks) != 2 ||
		insts[1].Address != "127.0.0.2" || insts[1].Status != "maintenance" {
		t.Errorf("service --json = %+v", insts)
	}
	r = rumor(t, env, "check", "list", "--json")
	var checks []localCheck
	if err := json.Unmarshal([]byte(r.stdout), &checks); err != nil || len(checks) != 4 || checks[1].ID != "db-ttl" || checks[1].Status != "critical" || checks[1].ServiceID != "db-1" {
		t.Errorf("check list --json = %q (%v)", r.stdout, err)
	}
}

func TestInfoAndCompletion(t *testing.T) {
	a, env := startAgent(t)
	if r := rumor(t, env, "register", "--name", "web", "--port", "80"); r.code != 0 {
		t.Fatalf("register: %+v", r)
	}
	runCases(t, env, []cliCase{
		{"info", []string{"info"}, 0, []string{"node:              node1", "node id:           " + a.NodeID(), "datacenter:        dc1",
			"gossip address:    " + a.GossipAddr().String(), "version:           dev", "members alive:     1", "members failed:    0",
			"catalog nodes:     1", "catalog services:  1"}, nil},
		{"info no agent", []string{"info", "--http-addr", "127.0.0.1:1"}, 3, nil, []string{"no agent at 127.0.0.1:1"}},
		{"completion bash", []string{"completion", "bash"}, 0, []string{"bash completion", "__start_rumor"}, nil},
		{"completion zsh", []string{"completion", "zsh"}, 0, []string{"#compdef rumor"}, nil},
		{"completion fish", []string{"completion", "fish"}, 0, []string{"complete -c rumor"}, nil},
		{"completion powershell", []string{"completion", "powershell"}, 0, []string{"Register-ArgumentCompleter"}, nil},
		{"completion unknown shell", []string{"completion", "tcsh"}, 2, nil, []string{"tcsh"}},
	})
	r := rumor(t, env, "info", "--json")
	var info infoJSON
	if err := json.Unmarshal([]byte(r.stdout), &info); err != nil {
		t.Fatalf("info --json = %q: %v", r.stdout, err)
	}
	if info.Node != "node1" || info.NodeID != a.NodeID() || info.Members["alive"] != 1 || info.Services != 1 || info.Nodes != 1 || info.GossipAddr != a.GossipAddr().String() {
		t.Errorf("info --json = %+v", info)
	}
}

func TestNewCommandsTeach(t *testing.T) {
	for _, cmd := range [][]string{{"service"}, {"check"}, {"check", "pass"}, {"check", "list"}, {"maint"},
		{"join"}, {"leave"}, {"force-leave"}, {"watch"}, {"info"}, {"completion"}} {
		r := rumor(t, nil, append(cmd, "--help")...)
		if r.code != 0 || !strings.Contains(r.stdout, "Examples:") || !strings.Contains(r.stdout, "rumor "+cmd[0]) {
			t.Errorf("rumor %s --help: exit %d, output lacks examples:\n%s", strings.Join(cmd, " "), r.code, r.stdout)
		}
	}
}

// TestJoinLeaveForceLeave runs three real agents: the CLI joins the second and third
// to the first, force-leaves one that crashed, and makes another leave.
func TestJoinLeaveForceLeave(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real gossip")
	}
	a1, env1 := startPeer(t, "n1")
	a2, env2 := startPeer(t, "n2")
	a3, env3 := startPeer(t, "n3")
	runCases(t, env2, []cliCase{
		{"join", []string{"join", a1.GossipAddr().String()}, 0, []string{"Joined the pool via " + a1.GossipAddr().String()}, nil},
		{"join some unreachable", []string{"join", "127.0.0.1:1", a1.GossipAddr().String(), "--json"}, 0,
			[]string{`"joined": [`, `"127.0.0.1:1": "Failed to join`}, []string{"could not join via 127.0.0.1:1"}},
		{"join none reachable", []string{"join", "127.0.0.1:1"}, 1, nil, []string{"could not join via 127.0.0.1:1", "no address answered"}},
		{"join needs an address", []string{"join"}, 2, nil, []string{"requires at least 1 arg"}},
		{"join no agent", []string{"join", "10.0.0.1", "--http-addr", "127.0.0.1:1"}, 3, nil, []string{"no agent at 127.0.0.1:1"}},
	})
	if r := rumor(t, env3, "join", a1.GossipAddr().String()); r.code != 0 {
		t.Fatalf("join n3: %+v", r)
	}
	if r := rumor(t, env3, "register", "--name", "cache", "--port", "6379"); r.code != 0 {
		t.Fatalf("register: %+v", r)
	}
	testkit.Eventually(t, 20*time.Second, "n1 to see 3 members and n3's service", func() bool {
		return len(a1.Members()) == 3 && len(a1.Catalog().ServiceInstances("cache", catalog.Filter{})) == 1
	})

	runCases(t, env1, []cliCase{
		{"force-leave alive", []string{"force-leave", "n3"}, 1, nil, []string{`Cannot force node "n3" to leave: it has not failed`, "rumor leave"}},
		{"force-leave unknown", []string{"force-leave", "ghost"}, 1, nil, []string{`no node "ghost" in the pool`, "rumor members"}},
	})
	// n3 crashes: no goodbye. Its service stays, critical, until forced out.
	if err := a3.Shutdown(); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 20*time.Second, "n1 to see n3 failed", func() bool { return liveness(a1, "n3") == catalog.LivenessFailed })
	if n := len(a1.Catalog().ServiceInstances("cache", catalog.Filter{})); n != 1 {
		t.Fatalf("n3's service is gone before the force-leave (%d instances)", n)
	}
	runCases(t, env1, []cliCase{
		{"members shows failed", []string{"members"}, 0, []string{"n3", "failed"}, nil},
		{"force-leave", []string{"force-leave", "n3"}, 0, []string{"Node n3 is now marked left"}, nil},
	})
	for _, a := range []*agent.Agent{a1, a2} {
		testkit.Eventually(t, 20*time.Second, a.NodeName()+" to see n3 left and its service gone", func() bool {
			return liveness(a, "n3") == catalog.LivenessLeft && len(a.Catalog().ServiceInstances("cache", catalog.Filter{})) == 0
		})
	}
	runCases(t, env1, []cliCase{
		{"force-leave prune", []string{"force-leave", "n3", "--prune", "--json"}, 0, []string{`"pruned": true`}, nil},
	})
	if r := rumor(t, env1, "members"); strings.Contains(r.stdout, "n3") {
		t.Errorf("members still lists n3 after --prune:\n%s", r.stdout)
	}

	// rumor leave: n2 leaves gracefully; n1 sees it left.
	runCases(t, env2, []cliCase{
		{"leave", []string{"leave"}, 0, []string{"left the pool and is shutting down"}, nil},
	})
	testkit.Eventually(t, 20*time.Second, "n1 to see n2 left", func() bool { return liveness(a1, "n2") == catalog.LivenessLeft })
	select {
	case <-a2.LeaveRequested():
	default:
		t.Error("the agent was not told to shut down after rumor leave")
	}
	// The left agent refuses further joins until it is shut down.
	if r := rumor(t, env2, "join", a1.GossipAddr().String()); r.code != 1 {
		t.Errorf("join after leave: %+v", r)
	}
	resp, err := http.Get("http://" + env1["RUMOR_HTTP_ADDR"] + "/v1/agent/self")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}
