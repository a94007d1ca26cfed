package main

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/spf13/cobra"
)

// agentSelf is the part of Consul's /v1/agent/self the CLI reads.
type agentSelf struct {
	Config struct {
		NodeName   string
		NodeID     string
		Datacenter string
	}
	Member consulMember
	Stats  map[string]map[string]string
}

// infoJSON is what `rumor info --json` prints.
type infoJSON struct {
	Node       string         `json:"node"`
	NodeID     string         `json:"node_id"`
	Datacenter string         `json:"datacenter"`
	GossipAddr string         `json:"gossip_addr"`
	HTTPAddr   string         `json:"http_addr"`
	Version    string         `json:"version"`
	Members    map[string]int `json:"members"`
	Nodes      int            `json:"catalog_nodes"`
	Services   int            `json:"catalog_services"`
}

func newInfoCmd(c *cli) *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "info",
		Short: "Show what the agent is and what it sees",
		Long: `Show the agent this CLI talks to: its node name and ID, datacenter, gossip
address and version, how many members of the pool it sees in each state
(alive, left, failed), and how many nodes and services its catalog holds.`,
		Example: `  rumor info
  rumor info --json | jq .members.failed`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl := newClient(&f)
			ctx := cmd.Context()
			var self agentSelf
			if err := cl.do(ctx, http.MethodGet, "/v1/agent/self", nil, &self); err != nil {
				return describe(err)
			}
			var members []consulMember
			if err := cl.do(ctx, http.MethodGet, "/v1/agent/members", nil, &members); err != nil {
				return describe(err)
			}
			var services map[string][]string
			if err := cl.do(ctx, http.MethodGet, "/v1/catalog/services", nil, &services); err != nil {
				return describe(err)
			}
			var nodes []struct{ Node string }
			if err := cl.do(ctx, http.MethodGet, "/v1/catalog/nodes", nil, &nodes); err != nil {
				return describe(err)
			}
			out := infoJSON{
				Node: self.Config.NodeName, NodeID: self.Config.NodeID, Datacenter: self.Config.Datacenter,
				GossipAddr: hostPort(self.Member.Addr, self.Member.Port), HTTPAddr: f.httpAddr,
				Version: self.Stats["rumor"]["version"],
				Members: map[string]int{"alive": 0, "left": 0, "failed": 0},
				Nodes:   len(nodes), Services: len(services),
			}
			for _, m := range members {
				st := memberStatusNames[m.Status]
				if st == "" {
					st = "unknown"
				}
				out.Members[st]++
			}
			if f.json {
				return printJSON(c.stdout, out)
			}
			rows := [][]string{
				{"node:", out.Node},
				{"node id:", out.NodeID},
				{"datacenter:", out.Datacenter},
				{"gossip address:", out.GossipAddr},
				{"HTTP address:", out.HTTPAddr},
				{"version:", out.Version},
			}
			for _, st := range sortedKeys(out.Members) {
				rows = append(rows, []string{"members " + st + ":", strconv.Itoa(out.Members[st])})
			}
			rows = append(rows, []string{"catalog nodes:", strconv.Itoa(out.Nodes)},
				[]string{"catalog services:", strconv.Itoa(out.Services)})
			for _, r := range rows {
				fmt.Fprintf(c.stdout, "%-18s %s\n", r[0], r[1])
			}
			return nil
		},
	}
	addClientFlags(c, cmd, &f)
	return cmd
}

// teachCompletion gives cobra's completion command an example. Cobra adds the command
// itself when the root runs; creating it here lets us reach it.
func teachCompletion(root *cobra.Command) {
	root.InitDefaultCompletionCmd()
	for _, cmd := range root.Commands() {
		if cmd.Name() != "completion" {
			continue
		}
		cmd.Args = args(cobra.NoArgs) // an unknown shell is a usage error, not help
		cmd.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
		cmd.Example = `  # bash, this shell only; or save it under /etc/bash_completion.d/rumor
  source <(rumor completion bash)
  # zsh
  rumor completion zsh > "${fpath[1]}/_rumor"
  # fish
  rumor completion fish > ~/.config/fish/completions/rumor.fish
  # PowerShell
  rumor completion powershell | Out-String | Invoke-Expression`
	}
}
