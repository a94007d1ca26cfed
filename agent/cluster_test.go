package agent

import (
	"fmt"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/internal/testkit"
)

// TestThreeAgentsOnLoopback runs three real agents (real gossip, real sockets on
// 127.0.0.1, free ports) that join each other: a registration on one becomes visible
// on all, and so does its deregistration and a graceful leave.
func TestThreeAgentsOnLoopback(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real gossip")
	}
	var agents []*Agent
	for i := range 3 {
		cfg := Config{
			NodeName: fmt.Sprintf("n%d", i+1), DataDir: t.TempDir(),
			BindAddr: "127.0.0.1", BindPort: 0, GossipProfile: "local",
			HTTPAddr: "127.0.0.1:0",
		}
		if i > 0 {
			cfg.Join = []string{agents[0].GossipAddr().String()}
		}
		agents = append(agents, startAgent(t, cfg))
	}
	for _, a := range agents {
		testkit.Eventually(t, 10*time.Second, a.NodeName()+" to see 3 alive members", func() bool {
			alive := 0
			for _, m := range a.Members() {
				if m.State == catalog.LivenessAlive {
					alive++
				}
			}
			return alive == 3
		})
	}
	if err := agents[1].RegisterService(t.Context(), web("web", 80, "v1")); err != nil {
		t.Fatal(err)
	}
	for _, a := range agents {
		testkit.Eventually(t, 10*time.Second, "web on "+a.NodeName(), func() bool {
			insts := a.Catalog().ServiceInstances("web", catalog.Filter{Tags: []string{"v1"}, PassingOnly: true})
			return len(insts) == 1 && insts[0].Node.Node.Name == "n2" && insts[0].Node.Node.ID == agents[1].NodeID()
		})
	}
	if err := agents[1].DeregisterService(t.Context(), "web"); err != nil {
		t.Fatal(err)
	}
	for _, a := range agents {
		testkit.Eventually(t, 10*time.Second, "web gone on "+a.NodeName(), func() bool {
			return len(a.Catalog().ServiceInstances("web", catalog.Filter{})) == 0
		})
	}
	if err := agents[2].Leave(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, a := range agents[:2] {
		testkit.Eventually(t, 10*time.Second, "n3 left, seen by "+a.NodeName(), func() bool {
			st, _ := a.Catalog().Liveness("n3")
			_, _, err := a.Catalog().NodeServices("n3")
			return st == catalog.LivenessLeft && err != nil
		})
	}
}
